"""What several processes sharing one database coordinate through it: the pacing of creates
for the whole Replicate account (a token bucket every process draws from, under a row lock),
and a cancel asked of a job that another process runs (a request that process answers)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from bot.pacing import draw
from bot.storage.database import Database, Transaction


@dataclass(frozen=True)
class CancelRequest:
    job_id: int
    guild_id: int


class Processes:
    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock

    async def pace(self, name: str, per_minute: float, burst: float, count: int = 1
                   ) -> float:
        """Take `count` slots of `name` (`per_minute`, bursts of `burst`); returns the seconds
        to wait before using the last (0: at once). Slots are promised in order across every
        process: a burst queues instead of exceeding the account's rate."""
        async def take(tx: Transaction) -> float:
            now = self.clock()
            await tx.execute("INSERT INTO pacing (name, tokens, updated_at) VALUES (?, ?, ?)"
                             " ON CONFLICT (name) DO NOTHING", (name, burst, now))
            row = await tx.fetchone("SELECT tokens, updated_at FROM pacing WHERE name = ?"
                                    + tx.for_update, (name,))
            tokens, wait = draw(row["tokens"], row["updated_at"], now, per_minute, burst,
                                count)
            await tx.execute("UPDATE pacing SET tokens = ?, updated_at = ? WHERE name = ?",
                             (tokens, now, name))
            return wait

        return await self.db.batch(take)

    # -- cancels across processes -----------------------------------------------------------

    async def ask_cancel(self, job_id: int, guild_id: int, by: int) -> None:
        await self.db.execute(
            "INSERT INTO cancel_requests (job_id, guild_id, requested_by, requested_at)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (job_id) DO UPDATE SET outcome = NULL,"
            " answered_at = NULL, requested_at = excluded.requested_at",
            (job_id, guild_id, by, self.clock()))

    async def cancel_outcome(self, job_id: int) -> str | None:
        row = await self.db.fetchone("SELECT outcome FROM cancel_requests WHERE job_id = ?",
                                     (job_id,))
        return row["outcome"] if row else None

    async def forget_cancel(self, job_id: int) -> None:
        await self.db.execute("DELETE FROM cancel_requests WHERE job_id = ?", (job_id,))

    async def open_cancels(self) -> list[CancelRequest]:
        rows = await self.db.fetchall(
            "SELECT job_id, guild_id FROM cancel_requests WHERE outcome IS NULL")
        return [CancelRequest(int(r["job_id"]), int(r["guild_id"])) for r in rows]

    async def prune_cancels(self, older_than: float) -> None:
        """Forget answers the asking process gave up waiting for."""
        await self.db.execute("DELETE FROM cancel_requests WHERE answered_at < ?",
                              (self.clock() - older_than,))

    async def answer_cancel(self, job_id: int, outcome: str) -> None:
        await self.db.execute(
            "UPDATE cancel_requests SET outcome = ?, answered_at = ? WHERE job_id = ?",
            (outcome, self.clock(), job_id))
