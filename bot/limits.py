"""The bounds an admin sets in `[limits]`, inside the model's own: applied the same way to
/imagine, the buttons and `flux-lora-bot generate`."""

from __future__ import annotations

import re

from bot.config import LimitsSettings
from bot.errors import OptionError
from bot.text import clean, fold

MAX_PROMPT = 6000  # the most the bot sends, trigger words included


def banned_word(prompt: str, words: list[str]) -> str | None:
    """The first banned word in `prompt`, compared folded (ＢＡＤ is bad) and whole."""
    folded = fold(prompt)
    for word in words:
        w = fold(word).strip()
        if not w:
            continue
        pattern = rf"(?<!\w){re.escape(w)}(?!\w)" if w.isascii() else re.escape(w)
        if re.search(pattern, folded):
            return word
    return None


def check_prompt(prompt: str, limits: LimitsSettings) -> str:
    """The prompt cleaned, or `OptionError` when it is too long or has a banned word."""
    prompt = clean(prompt)
    if len(prompt) > limits.max_prompt_length:
        raise OptionError("check.prompt_too_long", length=len(prompt),
                          limit=limits.max_prompt_length)
    word = banned_word(prompt, limits.banned_words)
    if word is not None:
        raise OptionError("check.banned_word", word=word.replace("`", "ˋ"))
    return prompt


def check_counts(num_outputs: int, steps: int, image: str | None,
                 limits: LimitsSettings) -> None:
    """Outputs, steps and image-to-image within what the admin allows."""
    if num_outputs > limits.max_num_outputs:
        raise OptionError("check.too_many_outputs", value=num_outputs,
                          limit=limits.max_num_outputs)
    if steps > limits.max_steps:
        raise OptionError("check.too_many_steps", value=steps, limit=limits.max_steps)
    if image and not limits.allow_img2img:
        raise OptionError("check.img2img_off")


def check_length(prompt: str) -> None:
    if len(prompt) > MAX_PROMPT:
        raise OptionError("check.prompt_too_long", length=len(prompt), limit=MAX_PROMPT)
