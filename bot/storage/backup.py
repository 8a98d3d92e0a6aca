"""A consistent copy of the SQLite database while the bot writes to it (SQLite's own backup
API), readable by its owner only, never over an existing file."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path


def backup(source: str | Path, dest: str | Path) -> int:
    """Copy `source` to the new file `dest` (0600); returns the pages copied. Raises
    `FileExistsError` rather than overwrite, `ValueError` if `source` is not a database."""
    source = Path(source)
    if not source.is_file():
        raise ValueError(f"{source} is not a file")
    fd = os.open(dest, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    os.close(fd)
    try:
        with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as src, \
                sqlite3.connect(dest) as out:
            src.backup(out)
            pages = out.execute("PRAGMA page_count").fetchone()[0]
        out.close()
    except sqlite3.Error as exc:
        os.unlink(dest)
        raise ValueError(f"{source} is not an SQLite database ({exc})") from None
    return int(pages)
