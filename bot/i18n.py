"""Per-locale message catalogues (en-US, zh-CN) and the lookup every user-facing text goes through.

Catalogues are flat TOML files in `bot/locales/`; a key missing in a locale falls back to en-US,
and a test keeps both catalogues in step.
"""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path
from typing import Any

LOCALES = ("en-US", "zh-CN")
FALLBACK = "en-US"
_DIR = Path(__file__).with_name("locales")

# Discord sends locales such as "zh-CN", "en-GB", "zh-TW"; map them onto what we ship.
_ALIASES = {"zh": "zh-CN", "zh-CN": "zh-CN", "zh-TW": "zh-CN", "zh-HK": "zh-CN"}

_default_locale = FALLBACK
MAX_ECHO = 300  # characters of one value a message repeats


def set_default_locale(locale: str) -> None:
    """Set the locale used when a reader's own is unknown (`discord.default_locale`)."""
    global _default_locale
    _default_locale = resolve(locale)


def resolve(locale: str | None) -> str:
    """The shipped locale closest to `locale` (Discord's names, e.g. `zh-CN`, `en-GB`)."""
    if not locale:
        return _default_locale
    locale = str(locale)
    if locale in LOCALES:
        return locale
    if locale in _ALIASES:
        return _ALIASES[locale]
    if locale.startswith("en"):
        return "en-US"
    return _default_locale


def _flatten(table: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in table.items():
        key = f"{prefix}{name}"
        if isinstance(value, dict):
            out.update(_flatten(value, key + "."))
        else:
            out[key] = str(value)
    return out


@cache
def catalogue(locale: str) -> dict[str, str]:
    """All messages of one shipped locale, keyed `section.name`."""
    with (_DIR / f"{locale}.toml").open("rb") as fh:
        return _flatten(tomllib.load(fh))


def translate(key: str, locale: str | None = None, /, **params: Any) -> str:
    """The message `key` in `locale`, its `{placeholders}` filled from `params`."""
    messages = catalogue(resolve(locale))
    template = messages.get(key) or catalogue(FALLBACK).get(key)
    if template is None:
        return key
    # a value echoed back (a refused option, a LoRA) is shortened: a message must fit Discord
    params = {k: (v[:MAX_ECHO - 1] + "…" if isinstance(v, str) and len(v) > MAX_ECHO else v)
              for k, v in params.items()}
    try:
        return template.format(**params)
    except (KeyError, IndexError, ValueError):
        return template


t = translate
