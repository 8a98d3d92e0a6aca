"""Member text made safe to send and to compare: control and invisible characters removed,
and a folded form that banned-word checks cannot be dodged around."""

from __future__ import annotations

import re
import unicodedata

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SPACES = re.compile(r"[ \t]+")


def _visible(text: str) -> str:
    # Cf: zero-width spaces and joiners, bidi overrides, BOM; none of them help a prompt
    return "".join(c for c in text if unicodedata.category(c) != "Cf")


def clean(text: str) -> str:
    """The text without control or invisible characters, spaces collapsed, ends trimmed."""
    text = _CONTROL.sub("", _visible(text.replace("\r\n", "\n").replace("\r", "\n")))
    return "\n".join(_SPACES.sub(" ", line).strip() for line in text.split("\n")).strip()


def fold(text: str) -> str:
    """For comparisons only: compatibility forms unified (ｂａｄ is bad), case folded."""
    return unicodedata.normalize("NFKC", _visible(text)).casefold()
