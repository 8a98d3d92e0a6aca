"""The SQLite connection: WAL, foreign keys, a busy timeout, numbered migrations, and
transactions that cannot interleave.

One connection serves the whole bot. aiosqlite runs it on its own thread; an asyncio lock
makes each transaction whole, so two coroutines never share one by accident and a
reservation's read-check-write happens as one step.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from bot.errors import StartupError

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
BATCH = 64  # writes in one shared transaction at most
T = TypeVar("T")
Write = Callable[["Transaction"], Awaitable[T]]
_MIGRATION_NAME = re.compile(r"(\d{4})_[\w-]+\.sql")


def _create_private(path: Path) -> None:
    """The folder (0700) and the file (0600): only the bot's user can read the data."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder, not a file")
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))


def _cannot_open(path: str, exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return (f"storage.database: cannot create {path} (permission denied for uid "
                f"{os.getuid()}: make its folder writable by that user)")
    return f"storage.database: cannot open {path} ({exc.strerror or type(exc).__name__})"


def _migrations(folder: Path) -> list[tuple[int, str, str]]:
    """(version, name, SQL) of every `NNNN_name.sql` in `folder`, in order."""
    found = []
    for file in sorted(folder.glob("*.sql")):
        match = _MIGRATION_NAME.fullmatch(file.name)
        if match is not None:
            found.append((int(match.group(1)), file.stem, file.read_text(encoding="utf-8")))
    return found


class Database:
    """A small async API over one SQLite file; every statement is parameterized."""

    def __init__(self, connection: aiosqlite.Connection, path: str) -> None:
        self.connection = connection
        self.path = path
        self._lock = asyncio.Lock()
        self._pending: list[tuple[Write[Any], asyncio.Future[Any]]] = []
        self._writer: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, path: str | Path, *, migrations: Path = MIGRATIONS,
                   busy_timeout_ms: int = 5000) -> Database:
        """Open (creating the folder and file, readable by the owner only) and migrate."""
        path = str(path)
        try:
            if path != ":memory:":
                _create_private(Path(path))
            connection = await aiosqlite.connect(path, isolation_level=None)
        except OSError as exc:
            raise StartupError(_cannot_open(path, exc)) from None
        except sqlite3.Error as exc:
            raise StartupError(f"storage.database: cannot open {path} ({exc})") from None
        try:
            connection.row_factory = aiosqlite.Row
            for pragma in ("journal_mode = WAL", "synchronous = NORMAL", "foreign_keys = ON",
                           f"busy_timeout = {int(busy_timeout_ms)}"):
                await connection.execute(f"PRAGMA {pragma}")
            db = cls(connection, path)
            await db.migrate(migrations)
        except sqlite3.DatabaseError as exc:
            await connection.close()  # its thread would keep the process alive
            if "not a database" in str(exc) or "malformed" in str(exc):
                raise StartupError(f"storage.database: {path} is not an SQLite database "
                                   "(point the key at a new path, or restore a backup)") from None
            raise StartupError(f"storage.database: {path}: {exc}") from None
        except BaseException:
            await connection.close()
            raise
        return db

    async def close(self) -> None:
        if self._writer is not None:  # the writes already asked for land first
            await asyncio.wait({self._writer})
        async with self._lock:
            await self.connection.close()

    # -- migrations -------------------------------------------------------------------------

    async def migrate(self, folder: Path = MIGRATIONS) -> list[int]:
        """Apply every `NNNN_name.sql` not yet recorded in `schema_version`, each in its own
        transaction; returns the versions applied (none on a second run)."""
        async with self._lock:
            await self.connection.execute(
                "CREATE TABLE IF NOT EXISTS schema_version ("
                "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)")
            rows = await self.connection.execute_fetchall("SELECT version FROM schema_version")
            done = {row[0] for row in rows}
            applied = []
            for version, name, script in _migrations(folder):
                if version in done:
                    continue
                try:
                    await self.connection.executescript(
                        f"BEGIN IMMEDIATE;\n{script}\n;"
                        f"INSERT INTO schema_version (version, name, applied_at) "
                        f"VALUES ({version}, '{name}', {time.time()!r});\nCOMMIT;")
                except Exception:
                    if self.connection.in_transaction:
                        await self.connection.execute("ROLLBACK")
                    raise
                log.info("database migrated to version %d (%s)", version, name)
                applied.append(version)
            return applied

    async def schema_version(self) -> int:
        row = await self.fetchone("SELECT COALESCE(MAX(version), 0) AS v FROM schema_version")
        return int(row["v"]) if row else 0

    # -- statements -------------------------------------------------------------------------

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """`BEGIN IMMEDIATE` … `COMMIT` (or `ROLLBACK` on any error), alone on the connection."""
        async with self._lock:
            try:
                await self.connection.execute("BEGIN IMMEDIATE")
                yield Transaction(self.connection)
            except BaseException:
                # also when canceled while BEGIN was queued: the database thread runs it
                # anyway, and this ROLLBACK after it, in order
                await self._rollback()
                raise
            else:
                await self.connection.execute("COMMIT")

    async def _rollback(self) -> None:
        with contextlib.suppress(sqlite3.OperationalError):  # the transaction never began
            await self.connection.execute("ROLLBACK")

    async def fetchone(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()
                       ) -> aiosqlite.Row | None:
        async with self._lock:
            return await Transaction(self.connection).fetchone(sql, params)

    async def fetchall(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()
                       ) -> list[aiosqlite.Row]:
        async with self._lock:
            return await Transaction(self.connection).fetchall(sql, params)

    async def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> int:
        """One write in its own transaction; returns the rows changed."""
        async with self.transaction() as tx:
            return await tx.execute(sql, params)

    # -- group commit -----------------------------------------------------------------------

    async def batch(self, write: Write[T]) -> T:
        """`write(tx)` in a transaction shared with every write waiting at the same moment:
        one BEGIN and COMMIT for a burst of jobs instead of one each. Should the shared
        transaction fail, each write is run again alone, so that one bad write fails only
        itself. The write happens even if the caller stops waiting."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append((write, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.ensure_future(self._write_batches())
        return await asyncio.shield(future)

    async def _write_batches(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:BATCH], self._pending[BATCH:]
            if not await self._write(batch) and len(batch) > 1:
                for one in batch:
                    await self._write([one])

    async def _write(self, batch: list[tuple[Write[Any], asyncio.Future[Any]]]) -> bool:
        try:
            async with self.transaction() as tx:
                results = [await write(tx) for write, _ in batch]
        except Exception as error:
            if len(batch) == 1 and not batch[0][1].done():
                batch[0][1].set_exception(error)
            return False
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)
        return True


class Transaction:
    """Statements inside one `Database.transaction()`. Each call is one trip to the database
    thread (a cursor's open, fetch and close would be three)."""

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self.connection = connection

    async def fetchone(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()
                       ) -> aiosqlite.Row | None:
        rows = await self.connection.execute_fetchall(sql, params)
        return next(iter(rows), None)

    async def fetchall(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()
                       ) -> list[aiosqlite.Row]:
        return list(await self.connection.execute_fetchall(sql, params))

    async def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> int:
        """Run a write; returns the rows changed."""
        cursor = await self.connection.execute(sql, params)
        return cursor.rowcount

    async def insert(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> int:
        """Run an INSERT; returns the new row id."""
        cursor = await self.connection.execute(sql, params)
        return int(cursor.lastrowid or 0)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        await self.connection.executemany(sql, rows)
