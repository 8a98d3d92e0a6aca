"""Errors a person can read: each carries a message key and its parameters, so the same failure
is told in the reader's language (see `bot.i18n`), and never as a traceback."""

from __future__ import annotations

from typing import Any


class UserError(Exception):
    """An error that ends in a message to a person, never in a traceback.

    `key` names the message in the locale catalogues; `params` fill its placeholders.
    `str(error)` is the en-US text, for logs and the CLI.
    """

    key: str = "error.unexpected"

    def __init__(self, key: str | None = None, /, **params: Any) -> None:
        if key is not None:
            self.key = key
        self.params: dict[str, Any] = params
        super().__init__(self.key)

    def message(self, locale: str | None = None) -> str:
        from bot.i18n import translate

        return translate(self.key, locale, **self.params)

    def __str__(self) -> str:
        return self.message(None)


class OptionError(UserError):
    """A generation option is out of bounds or malformed; caught before anything is charged."""


class StartupError(Exception):
    """The bot cannot start: one line for the operator, naming the key to fix."""
