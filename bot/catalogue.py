"""Turning what a member typed in `lora` into a reference: a catalogue name (with its trigger
words and default scale) or a raw reference the model accepts."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from bot.errors import OptionError
from bot.lora import check_lora_ref


@dataclass(frozen=True)
class LoraChoice:
    """A resolved LoRA: the reference to send, and what the catalogue adds to it."""

    ref: str
    name: str | None = None  # catalogue name, None for a raw reference
    trigger: str = ""
    scale: float | None = None
    description: str = ""


def resolve_lora(value: str, catalogue: Iterable[LoraChoice], *, allow_custom: bool = True
                 ) -> LoraChoice:
    """A catalogue entry by name (case-insensitive), else `value` as a raw reference.

    Raises `OptionError` for a raw reference when custom LoRAs are off, or when the model
    would not accept it.
    """
    wanted = value.strip().casefold()
    entries = list(catalogue)
    for entry in entries:
        if entry.name is not None and entry.name.casefold() == wanted:
            return entry
    for entry in entries:  # a catalogue LoRA given by its reference (e.g. a reroll)
        if entry.ref.casefold() == wanted:
            return entry
    names = [e.name for e in entries if e.name]
    close = difflib.get_close_matches(wanted, [n.casefold() for n in names], n=1, cutoff=0.75)
    if not allow_custom:
        raise OptionError("lora.catalogue_only", value=value.strip()[:80].replace("`", "ˋ"))
    try:
        return LoraChoice(ref=check_lora_ref(value))
    except OptionError:
        if close:  # a catalogue name mistyped, more likely than a reference
            name = next(n for n in names if n.casefold() == close[0])
            raise OptionError("lora.did_you_mean", value=value.strip()[:80].replace("`", "ˋ"),
                              name=name.replace("`", "ˋ")) from None
        raise


def add_trigger(prompt: str, trigger: str) -> str:
    """Append the LoRA's trigger words unless the prompt already has them."""
    trigger = trigger.strip()
    if not trigger:
        return prompt
    if re.search(rf"(?<!\w){re.escape(trigger)}(?!\w)", prompt, re.IGNORECASE):
        return prompt
    return f"{prompt.rstrip().rstrip(',')}, {trigger}"
