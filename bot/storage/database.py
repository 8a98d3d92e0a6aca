"""The database behind one small async API, on SQLite (a file path, the default) or PostgreSQL
(a `postgresql://` URL): the stores (quota, history, moderation, …) write their SQL once, in
the portable subset both engines speak, with `?` or `:name` parameters; the PostgreSQL driver
turns those into `$1…`. The few real differences are methods of the transaction, never a second
copy of a query: `for_update` (a row lock, which SQLite's whole-file write lock makes
needless), `next_ids` (a sequence, or MAX + 1 for the single SQLite writer) and `lock` (an
advisory lock serializing processes, needless on SQLite). Schema changes are numbered SQL files
per engine (`migrations/sqlite`, `migrations/postgresql`), the same numbers in both.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, TypeVar

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
BATCH = 64  # writes in one shared transaction at most
T = TypeVar("T")
Params = Sequence[Any] | dict[str, Any]
Write = Callable[["Transaction"], Awaitable[T]]
_MIGRATION_NAME = re.compile(r"(\d{4})_[\w-]+\.sql")


def is_postgres(location: str | Path) -> bool:
    return str(location).startswith(("postgresql://", "postgres://"))


def migrations_in(folder: Path) -> list[tuple[int, str, str]]:
    """(version, name, SQL) of every `NNNN_name.sql` in `folder`, in order."""
    found = []
    for file in sorted(folder.glob("*.sql")):
        match = _MIGRATION_NAME.fullmatch(file.name)
        if match is not None:
            found.append((int(match.group(1)), file.stem, file.read_text(encoding="utf-8")))
    return found


class Transaction:
    """Statements inside one transaction (the engines implement them)."""

    dialect = ""

    @property
    def for_update(self) -> str:
        """Appended to a SELECT that must lock the rows it reads until the end."""
        return ""

    async def fetchone(self, sql: str, params: Params = ()) -> Any:
        raise NotImplementedError

    async def fetchall(self, sql: str, params: Params = ()) -> list[Any]:
        raise NotImplementedError

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run a write; returns the rows changed."""
        raise NotImplementedError

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        raise NotImplementedError

    async def insert_rows(self, table: str, columns: Sequence[str],
                          rows: Sequence[Sequence[Any]]) -> None:
        """Insert many rows at once (PostgreSQL: its COPY protocol, several times faster than
        one INSERT per row for the batches of a burst)."""
        marks = ", ".join("?" for _ in columns)
        await self.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",
                               rows)

    async def next_ids(self, table: str, count: int) -> list[int]:
        """Ids for `count` new rows of `table`, which no other writer can take."""
        raise NotImplementedError

    async def lock(self, kind: int, keys: Iterable[int]) -> None:
        """Hold, until this transaction ends, a lock per key (in sorted order: no deadlock)
        that every process writing the same keys takes too."""


class Database:
    """Opened with `Database.open`; `transaction()` gives a `Transaction`."""

    dialect = ""

    def __init__(self) -> None:
        self.trips = 0  # calls that went to the database (a thread hop, a round trip)
        self._pending: list[tuple[Write[Any], asyncio.Future[Any]]] = []
        self._writer: asyncio.Task[None] | None = None

    @staticmethod
    async def open(location: str | Path, *, migrations: Path | None = None) -> Database:
        """The database at `location` (a file path, or a `postgresql://` URL), migrated."""
        if is_postgres(location):
            from bot.storage.postgres import PostgresDatabase

            return await PostgresDatabase.connect(str(location), migrations=migrations)
        from bot.storage.sqlite import SqliteDatabase

        return await SqliteDatabase.open_file(location, migrations=migrations)

    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        raise NotImplementedError

    async def fetchone(self, sql: str, params: Params = ()) -> Any:
        async with self.transaction() as tx:
            return await tx.fetchone(sql, params)

    async def fetchall(self, sql: str, params: Params = ()) -> list[Any]:
        async with self.transaction() as tx:
            return await tx.fetchall(sql, params)

    async def execute(self, sql: str, params: Params = ()) -> int:
        """One write in its own transaction; returns the rows changed."""
        async with self.transaction() as tx:
            return await tx.execute(sql, params)

    async def run_all(self, writes: Sequence[Write[Any]]) -> list[Any]:
        """Each of `writes` in turn, in one transaction; their results. (SQLite makes it one
        trip to its thread.)"""
        async with self.transaction() as tx:
            return [await write(tx) for write in writes]

    async def atomic(self, write: Write[T]) -> T:
        """`write(tx)` in a transaction of its own."""
        (result,) = await self.run_all([write])
        return result

    async def listen(self, channel: str, callback: Callable[[str], None]) -> bool:
        """Hear what other processes `notify` on `channel`; False when the engine cannot
        (SQLite)."""
        return False

    async def notify(self, channel: str, payload: str) -> None:
        """Tell every process listening on `channel` (PostgreSQL's NOTIFY)."""

    async def migrate(self, folder: Path | None = None) -> list[int]:
        raise NotImplementedError

    async def schema_version(self) -> int:
        row = await self.fetchone("SELECT COALESCE(MAX(version), 0) AS v FROM schema_version")
        return int(row["v"]) if row else 0

    async def close(self) -> None:
        raise NotImplementedError

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

    async def flush(self) -> None:
        """Wait for the writes already asked for (before closing)."""
        if self._writer is not None:
            await asyncio.wait({self._writer})

    async def _write_batches(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:BATCH], self._pending[BATCH:]
            if not await self._write(batch) and len(batch) > 1:
                for one in batch:
                    await self._write([one])

    async def _write(self, batch: list[tuple[Write[Any], asyncio.Future[Any]]]) -> bool:
        try:
            results = await self.run_all([write for write, _ in batch])
        except Exception as error:
            if len(batch) == 1 and not batch[0][1].done():
                batch[0][1].set_exception(error)
            return False
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)
        return True


__all__ = ["Database", "Transaction", "is_postgres", "migrations_in"]
