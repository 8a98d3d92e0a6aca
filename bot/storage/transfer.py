"""`flux-lora-bot migrate-db`: move an SQLite database to PostgreSQL, whole (history, the
credit ledger and the money's, jobs in flight, overrides, bans, settings, LoRAs, budgets, the
audit log), in one transaction, into a database that must be empty; then the row counts and
both ledgers' sums are compared on both sides, so that the move is known to be exact before
the bot uses it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from bot.storage.database import Database, Transaction, is_postgres

# parents before children (foreign keys); every table but schema_version
TABLES = ("generations", "jobs", "ledger", "quota_overrides", "bans", "user_settings",
          "guild_loras", "audit_log", "cancel_requests", "pacing", "spend", "guild_budgets",
          "budget_notices")
SERIAL = ("generations", "ledger", "audit_log", "spend")  # `id` from a sequence on PostgreSQL
CHUNK = 2000  # rows read and written at a time
SPEND_SUMS = ("SELECT kind, COUNT(*) AS n, SUM(micros) AS micros FROM spend GROUP BY kind"
              " ORDER BY kind")
LEDGER_SUMS = ("SELECT kind, source, COUNT(*) AS n, SUM(amount) AS amount, SUM(credits) AS"
               " credits FROM ledger GROUP BY kind, source ORDER BY kind, source")


class TransferError(Exception):
    """The move cannot be made (or did not check out); nothing was written."""


@dataclass(frozen=True)
class Moved:
    counts: dict[str, int]  # rows per table, equal on both sides
    ledger: list[tuple[str, str, int, int, int]]  # (kind, source, rows, amount, credits)


async def _counts(db: Database | Transaction) -> dict[str, int]:
    return {table: int((await db.fetchone(f"SELECT COUNT(*) AS n FROM {table}"))["n"])
            for table in TABLES}


async def _ledger(db: Database | Transaction) -> list[tuple[str, str, int, int, int]]:
    """The credit ledger's sums, then the money's (as kind, "usd", rows, micros, 0)."""
    return [(r["kind"], r["source"], int(r["n"]), int(r["amount"]), int(r["credits"]))
            for r in await db.fetchall(LEDGER_SUMS)] + \
        [(r["kind"], "usd", int(r["n"]), int(r["micros"]), 0)
         for r in await db.fetchall(SPEND_SUMS)]


async def _copy_table(source: Database, tx: Transaction, table: str) -> None:
    last = 0
    while True:  # in rowid order, a chunk at a time: memory stays flat whatever the size
        rows = await source.fetchall(f"SELECT rowid AS rowid_, * FROM {table} WHERE rowid > ?"
                                     f" ORDER BY rowid LIMIT {CHUNK}", (last,))
        if not rows:
            return
        columns = [c for c in rows[0].keys() if c != "rowid_"]  # noqa: SIM118 (rows iterate values)
        marks = ", ".join("?" for _ in columns)
        await tx.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",
                             [tuple(row[c] for c in columns) for row in rows])
        last = rows[-1]["rowid_"]


async def transfer(source: str | Path, target: str) -> Moved:
    """Copy the SQLite database `source` into the empty PostgreSQL database `target`."""
    if is_postgres(source) or not await asyncio.to_thread(Path(source).is_file):
        raise TransferError(f"{source} is not an SQLite database file")
    if not is_postgres(target):
        raise TransferError("the target must be a postgresql:// URL")
    src = await Database.open(source)  # brought to the latest schema, as the target will be
    try:
        dst = await Database.open(target)
        try:
            return await _move(src, dst)
        finally:
            await dst.close()
    finally:
        await src.close()


async def _move(src: Database, dst: Database) -> Moved:
    if occupied := {t: n for t, n in (await _counts(dst)).items() if n}:
        raise TransferError("the target database is not empty (" + ", ".join(
            f"{t}: {n} rows" for t, n in occupied.items()) + "); nothing was written")
    async with dst.transaction() as tx:
        for table in TABLES:
            await _copy_table(src, tx, table)
        for table in SERIAL:  # the next id after the copied ones
            await tx.fetchone(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                              f" COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)")
        counts, ledger = await _counts(src), await _ledger(src)
        if await _counts(tx) != counts or await _ledger(tx) != ledger:  # before the commit
            raise TransferError("the copy does not match the source (row counts or ledger"
                                " sums); nothing was written")
    return Moved(counts, ledger)
