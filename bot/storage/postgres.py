"""PostgreSQL (asyncpg): several processes, one database. Transactions run on a pool's
connections in READ COMMITTED; what must stay exact across processes takes the database's own
locks: a row lock (`FOR UPDATE`) on the job being settled, an advisory lock per server while
reserving credits, and one advisory lock around the migrations, so two processes starting
together apply each once."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

import asyncpg

from bot.config import masked_url
from bot.errors import StartupError
from bot.storage.database import MIGRATIONS, Database, Params, Transaction, migrations_in

log = logging.getLogger("bot.storage.database")

MIGRATION_LOCK = 7_236_511  # the advisory lock the migrating process holds
_TOKENS = re.compile(r"'(?:[^']|'')*'|::|\?|(?<![:\w]):([A-Za-z_]\w*)")


@lru_cache(maxsize=512)
def _translate(sql: str) -> tuple[str, tuple[str | int, ...]]:
    """`?` and `:name` parameters as `$1…`; the order of the values to pass."""
    order: list[str | int] = []
    names: dict[str, int] = {}

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token.startswith("'") or token == "::":
            return token
        if token == "?":
            order.append(len(order))
            return f"${len(order)}"
        name = match.group(1)
        if name not in names:
            order.append(name)
            names[name] = len(order)
        return f"${names[name]}"

    return _TOKENS.sub(replace, sql), tuple(order)


def _args(order: tuple[str | int, ...], params: Params) -> list[Any]:
    if isinstance(params, dict):
        return [params[key] for key in order]  # type: ignore[index]
    return list(params)





class PostgresTransaction(Transaction):
    dialect = "postgresql"

    def __init__(self, connection: asyncpg.Connection) -> None:
        self.connection = connection

    @property
    def for_update(self) -> str:
        return " FOR UPDATE"

    async def fetchone(self, sql: str, params: Params = ()) -> Any:
        text, order = _translate(sql)
        return await self.connection.fetchrow(text, *_args(order, params))

    async def fetchall(self, sql: str, params: Params = ()) -> list[Any]:
        text, order = _translate(sql)
        return list(await self.connection.fetch(text, *_args(order, params)))

    async def execute(self, sql: str, params: Params = ()) -> int:
        text, order = _translate(sql)
        status = await self.connection.execute(text, *_args(order, params))
        count = status.rsplit(" ", 1)[-1]
        return int(count) if count.isdigit() else 0

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        text, _ = _translate(sql)
        await self.connection.executemany(text, [tuple(r) for r in rows])

    async def insert_rows(self, table: str, columns: Sequence[str],
                          rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            await self.connection.copy_records_to_table(table, records=rows,
                                                        columns=list(columns))

    async def next_ids(self, table: str, count: int) -> list[int]:
        rows = await self.connection.fetch(
            f"SELECT nextval(pg_get_serial_sequence('{table}', 'id')) FROM generate_series(1, $1)",
            count)
        return [int(r[0]) for r in rows]

    async def lock(self, kind: int, keys: Iterable[int]) -> None:
        for key in sorted(set(keys)):
            await self.connection.execute("SELECT pg_advisory_xact_lock($1, $2)", kind,
                                          key % 2_147_483_647)


class PostgresDatabase(Database):
    """A pool of connections to one PostgreSQL database."""

    dialect = "postgresql"

    def __init__(self, pool: asyncpg.Pool, url: str) -> None:
        super().__init__()
        self.pool = pool
        self.url = url
        self._listening: asyncpg.Connection | None = None

    async def listen(self, channel: str, callback: Callable[[str], None]) -> bool:
        """Call `callback(payload)` for every NOTIFY on `channel`, from any process."""
        if self._listening is None:
            self._listening = await asyncpg.connect(self.url)
        await self._listening.add_listener(
            channel, lambda _connection, _pid, _channel, payload: callback(payload))
        return True

    async def notify(self, channel: str, payload: str) -> None:
        self.trips += 1
        await self.pool.execute("SELECT pg_notify($1, $2)", channel, payload)

    @classmethod
    async def connect(cls, url: str, *, migrations: Path | None = None,
                      size: int = 10) -> PostgresDatabase:
        try:
            pool = await asyncpg.create_pool(url, min_size=1, max_size=size,
                                             command_timeout=60)
        except (OSError, asyncpg.PostgresError, ValueError) as exc:
            raise StartupError(f"storage.database: cannot connect to {masked_url(url)} "
                               f"({type(exc).__name__}: {exc})") from None
        assert pool is not None
        db = cls(pool, url)
        try:
            await db.migrate(migrations)
        except BaseException:
            await pool.close()
            raise
        return db

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresTransaction]:
        async with self.pool.acquire() as connection, connection.transaction():
            yield PostgresTransaction(connection)

    async def fetchone(self, sql: str, params: Params = ()) -> Any:
        async with self.pool.acquire() as connection:
            return await PostgresTransaction(connection).fetchone(sql, params)

    async def fetchall(self, sql: str, params: Params = ()) -> list[Any]:
        async with self.pool.acquire() as connection:
            return await PostgresTransaction(connection).fetchall(sql, params)

    async def migrate(self, folder: Path | None = None) -> list[int]:
        """Apply the migrations not yet recorded, under an advisory lock: a second process
        starting at the same moment waits, then finds them applied."""
        applied = []
        async with self.pool.acquire() as connection:
            await connection.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
            try:
                await connection.execute(
                    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY,"
                    " name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)")
                done = {r[0] for r in await connection.fetch(
                    "SELECT version FROM schema_version")}
                for version, name, script in migrations_in(folder or MIGRATIONS / "postgresql"):
                    if version in done:
                        continue
                    async with connection.transaction():
                        await connection.execute(script)
                        await connection.execute(
                            "INSERT INTO schema_version (version, name, applied_at)"
                            " VALUES ($1, $2, $3)", version, name, time.time())
                    log.info("database migrated to version %d (%s)", version, name)
                    applied.append(version)
            finally:
                await connection.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
        return applied

    async def close(self) -> None:
        await self.flush()
        if self._listening is not None:
            await self._listening.close()
        await self.pool.close()
