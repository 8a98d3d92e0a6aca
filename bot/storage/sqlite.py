"""SQLite, the embedded default: one file, one process.

One connection serves the whole bot. aiosqlite runs it on its own thread; an asyncio lock makes
each transaction whole (`BEGIN IMMEDIATE`), so two coroutines never share one by accident and a
reservation's read-check-write happens as one step.

A transaction of the stores (an `async def` over `Transaction`, written once for both engines)
is run whole on that thread in one trip (`run_all`): its statements there complete at once, so
the coroutine never suspends and is driven to its end in a single `send`. One that awaits
anything else is rolled back and run again the ordinary way, a trip per statement.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from bot.errors import StartupError
from bot.storage.database import MIGRATIONS, Database, Transaction, Write, migrations_in

log = logging.getLogger("bot.storage.database")


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


async def _use_wal(connection: aiosqlite.Connection, patience: float) -> None:
    """Switch a new file to WAL. The switch needs the file alone, and SQLite answers "locked"
    at once (no busy wait) while another process opening it at the same moment holds it: try
    again for a while. Once the file is in WAL, this is a no-op."""
    deadline = time.monotonic() + patience
    pause = 0.005
    while True:
        try:
            await connection.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.1)


class SqliteDatabase(Database):
    """One SQLite file: WAL, foreign keys, a busy timeout; one connection, on aiosqlite's
    thread, whose transactions an asyncio lock keeps whole."""

    dialect = "sqlite"

    def __init__(self, connection: aiosqlite.Connection, path: str) -> None:
        super().__init__()
        self.connection = connection
        self.path = path
        self._lock = asyncio.Lock()

    @classmethod
    async def open_file(cls, path: str | Path, *, migrations: Path | None = None,
                        busy_timeout_ms: int = 5000) -> SqliteDatabase:
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
            # the busy timeout first: processes opening the file at once wait for each other
            await connection.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            await _use_wal(connection, busy_timeout_ms / 1000)
            for pragma in ("synchronous = NORMAL", "foreign_keys = ON"):
                await connection.execute(f"PRAGMA {pragma}")
            db = cls(connection, path)
            await db.migrate(migrations or MIGRATIONS / "sqlite")
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
        await self.flush()
        async with self._lock:
            await self.connection.close()

    # -- migrations -------------------------------------------------------------------------

    async def migrate(self, folder: Path | None = None) -> list[int]:
        """Apply every `NNNN_name.sql` not yet recorded in `schema_version`, each in its own
        transaction; returns the versions applied (none on a second run)."""
        async with self._lock:
            await self.connection.executescript(  # the write lock taken up front: another
                # process doing the same waits for it instead of failing as "locked"
                "BEGIN IMMEDIATE; CREATE TABLE IF NOT EXISTS schema_version (version INTEGER"
                " PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL); COMMIT;")
            rows = await self.connection.execute_fetchall("SELECT version FROM schema_version")
            done = {row[0] for row in rows}
            applied = []
            for version, name, script in migrations_in(folder or MIGRATIONS / "sqlite"):
                if version in done:
                    continue
                try:  # recorded first: a process that started at the same moment and
                    # migrated while this one waited for the write lock makes it fail here
                    await self.connection.executescript(
                        f"BEGIN IMMEDIATE;\nINSERT INTO schema_version (version, name, "
                        f"applied_at) VALUES ({version}, '{name}', {time.time()!r});\n"
                        f"{script}\n;COMMIT;")
                except sqlite3.IntegrityError:
                    if self.connection.in_transaction:
                        await self.connection.execute("ROLLBACK")
                    if await self.connection.execute_fetchall(
                            "SELECT 1 FROM schema_version WHERE version = ?", (version,)):
                        continue  # applied by the other process
                    raise
                except Exception:
                    if self.connection.in_transaction:
                        await self.connection.execute("ROLLBACK")
                    raise
                log.info("database migrated to version %d (%s)", version, name)
                applied.append(version)
            return applied

    # -- statements -------------------------------------------------------------------------

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SqliteTransaction]:
        """`BEGIN IMMEDIATE` … `COMMIT` (or `ROLLBACK` on any error), alone on the connection."""
        async with self._lock:
            try:
                self.trips += 1
                await self.connection.execute("BEGIN IMMEDIATE")
                yield SqliteTransaction(self.connection, self)
            except BaseException:
                # also when canceled while BEGIN was queued: the database thread runs it
                # anyway, and this ROLLBACK after it, in order
                await self._rollback()
                raise
            else:
                self.trips += 1
                await self.connection.execute("COMMIT")

    async def run_all(self, writes: Sequence[Write[Any]]) -> list[Any]:
        """The whole transaction in one trip to the database thread (see the module)."""
        async with self._lock:
            self.trips += 1
            try:
                return await self.connection._execute(_run_on_thread, self.connection._conn,
                                                      writes)
            except _Suspended:
                pass
        log.debug("a transaction awaited more than the database; run statement by statement")
        return await super().run_all(writes)

    async def _rollback(self) -> None:
        with contextlib.suppress(sqlite3.OperationalError):  # the transaction never began
            await self.connection.execute("ROLLBACK")

    async def fetchone(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()
                       ) -> aiosqlite.Row | None:
        async with self._lock:
            return await SqliteTransaction(self.connection, self).fetchone(sql, params)

    async def fetchall(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()
                       ) -> list[aiosqlite.Row]:
        async with self._lock:
            return await SqliteTransaction(self.connection, self).fetchall(sql, params)

    async def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> int:
        """One write in its own transaction; returns the rows changed."""
        async with self.transaction() as tx:
            return await tx.execute(sql, params)


class SqliteTransaction(Transaction):
    """Statements inside one transaction. Each call is one trip to the database thread (a
    cursor's open, fetch and close would be three)."""

    dialect = "sqlite"

    def __init__(self, connection: aiosqlite.Connection, db: SqliteDatabase) -> None:
        self.connection = connection
        self.db = db

    async def fetchone(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()
                       ) -> aiosqlite.Row | None:
        self.db.trips += 1
        rows = await self.connection.execute_fetchall(sql, params)
        return next(iter(rows), None)

    async def fetchall(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()
                       ) -> list[aiosqlite.Row]:
        self.db.trips += 1
        return list(await self.connection.execute_fetchall(sql, params))

    async def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> int:
        """Run a write; returns the rows changed."""
        self.db.trips += 1
        cursor = await self.connection.execute(sql, params)
        return cursor.rowcount

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self.db.trips += 1
        await self.connection.executemany(sql, rows)

    async def next_ids(self, table: str, count: int) -> list[int]:
        """Ids for `count` new rows: the one writer holds the file, MAX + 1 is safe."""
        row = await self.fetchone(f"SELECT COALESCE(MAX(id), 0) FROM {table}")
        first = int(row[0] if row else 0) + 1
        return list(range(first, first + count))


class _Suspended(Exception):
    """A transaction awaited something besides its own statements."""


class _OnThread(SqliteTransaction):
    """Statements called directly on the database thread: each completes at once."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.raw = connection

    async def fetchone(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Any:
        return self.raw.execute(sql, params).fetchone()

    async def fetchall(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()
                       ) -> list[Any]:
        return self.raw.execute(sql, params).fetchall()

    async def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> int:
        return self.raw.execute(sql, params).rowcount

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self.raw.executemany(sql, rows)


def _complete(coroutine: Any) -> Any:
    """Drive a coroutine that never suspends to its end."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    except RuntimeError as error:  # it asked for the event loop, which this thread lacks
        raise _Suspended from error
    coroutine.close()
    raise _Suspended


def _run_on_thread(connection: sqlite3.Connection, writes: Sequence[Write[Any]]
                   ) -> list[Any]:
    tx = _OnThread(connection)
    connection.execute("BEGIN IMMEDIATE")
    try:
        results = [_complete(write(tx)) for write in writes]
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")
    return results
