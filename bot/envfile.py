"""Secrets from an env file (`.env` in the working folder, or `$FLUX_BOT_ENV_FILE`), so that a
token is never typed on a command line, where shell history keeps it. The process environment
wins over the file, as it wins over the config."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Mapping
from pathlib import Path

log = logging.getLogger(__name__)

ENV_FILE = "FLUX_BOT_ENV_FILE"
DEFAULT_ENV_FILE = ".env"


def parse_env_file(text: str) -> dict[str, str]:
    """`KEY=value` lines (`export`, quotes and comments as shells and compose take them)."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        key, value = key.strip(), value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        if key.isidentifier():
            values[key] = value
    return values


def environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The process environment over the env file's values (if there is one)."""
    env = dict(os.environ if env is None else env)
    path = Path(env.get(ENV_FILE) or DEFAULT_ENV_FILE)
    try:
        text = path.read_text(encoding="utf-8")
        mode = path.stat().st_mode
    except FileNotFoundError:
        if ENV_FILE in env:
            log.warning("%s: %s does not exist", ENV_FILE, path)
        return env
    except (OSError, UnicodeDecodeError) as exc:
        log.warning("%s: cannot be read (%s)", path, type(exc).__name__)
        return env
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        log.warning("%s can be read by other users; chmod 600 %s", path, path)
    return {**parse_env_file(text), **env}
