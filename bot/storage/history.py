"""Generations: the record of every job, what members browse with /history, what moderators
count with /mod stats, and what a restart reads to resume the jobs in flight."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.storage.database import Database, Transaction


@dataclass(frozen=True)
class Generation:
    id: int
    guild_id: int
    channel_id: int
    user_id: int
    prompt: str
    options: dict[str, Any]
    lora: str | None
    lora_scale: float | None
    parent_id: int | None
    prediction_id: str | None
    status: str
    error: str | None
    images_requested: int
    images_delivered: int
    seed: int | None
    message_id: int | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    predict_time: float | None
    cost: float | None
    kind: str = "imagine"        # bot.work: imagine | upscale
    credits: int | None = None   # reserved; None in rows older than kinds: one per image

    @property
    def credits_reserved(self) -> int:
        return self.images_requested if self.credits is None else self.credits

    @classmethod
    def from_row(cls, row: Any) -> Generation:
        data = dict(row)
        data["options"] = json.loads(data["options"])
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class InFlightJob:
    """A job that had not ended when the bot stopped, and what resuming it needs."""

    generation: Generation
    state: str
    application_id: int | None
    interaction_token: str | None
    interaction_at: float | None
    locale: str | None
    upload_limit: int | None
    token_age: float | None  # seconds since the interaction; tokens live 15 minutes
    create_sent_at: float | None = None  # the create left then; its answer may not have come


@dataclass(frozen=True)
class Page:
    items: list[Generation]
    page: int
    pages: int
    total: int


@dataclass(frozen=True)
class GuildStats:
    days: int
    generations: int
    images: int
    failures: int
    cost: float
    top_users: list[tuple[int, int]]  # (user id, images), most first


_COLUMNS = ", ".join(f"g.{name}" for name in Generation.__dataclass_fields__)


class History:
    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock

    async def get(self, job_id: int) -> Generation | None:
        row = await self.db.fetchone(f"SELECT {_COLUMNS} FROM generations g WHERE g.id = ?",
                                     (job_id,))
        return Generation.from_row(row) if row else None

    async def by_message(self, message_id: int) -> Generation | None:
        row = await self.db.fetchone(
            f"SELECT {_COLUMNS} FROM generations g WHERE g.message_id = ?", (message_id,))
        return Generation.from_row(row) if row else None

    async def claim(self, job_id: int, options: dict[str, Any]) -> float | None:
        """The job is about to be created on Replicate with `options` (its seed now chosen):
        write them and the instant the create leaves, so a crash from here on can find the
        prediction. None when the job was settled meanwhile (canceled before it started):
        then it must not be created."""
        async def claim(tx: Transaction) -> float | None:
            now = self.clock()
            claimed = await tx.execute(
                "UPDATE jobs SET create_sent_at = ?, updated_at = ? WHERE generation_id = ?"
                " AND create_sent_at IS NULL", (now, now, job_id))
            if not claimed:
                return None
            await tx.execute("UPDATE generations SET options = ?, seed = ? WHERE id = ?",
                             (json.dumps(options, ensure_ascii=False, sort_keys=True),
                              options.get("seed"), job_id))
            return now

        return await self.db.batch(claim)

    async def mark_running(self, job_id: int, prediction_id: str) -> Generation | None:
        """The prediction exists: remember its id first, so a crash can resume it. Answers
        the job as it now stands (its options and seed written), for its delivery: the
        same trip to the database."""
        async def mark(tx: Transaction) -> Generation | None:
            now = self.clock()
            await tx.execute("UPDATE generations SET prediction_id = ?, status = 'running',"
                             " started_at = COALESCE(started_at, ?) WHERE id = ?",
                             (prediction_id, now, job_id))
            await tx.execute("UPDATE jobs SET state = 'running', updated_at = ?"
                             " WHERE generation_id = ?", (now, job_id))
            row = await tx.fetchone(f"SELECT {_COLUMNS} FROM generations g WHERE g.id = ?",
                                    (job_id,))
            return Generation.from_row(row) if row else None

        return await self.db.batch(mark)

    async def known_predictions(self, since: float) -> set[str]:
        """The predictions jobs created since `since` own: a lookup for a job whose input is
        not unique (an upscale) skips them."""
        rows = await self.db.fetchall("SELECT prediction_id FROM generations WHERE"
                                      " prediction_id IS NOT NULL AND created_at >= ?", (since,))
        return {r["prediction_id"] for r in rows}

    async def set_message(self, job_id: int, message_id: int) -> None:
        async def write(tx: Transaction) -> None:
            await tx.execute("UPDATE generations SET message_id = ? WHERE id = ?",
                             (message_id, job_id))

        await self.db.batch(write)

    async def page(self, guild_id: int, user_id: int, page: int = 1, per_page: int = 5
                   ) -> Page:
        """A member's generations, newest first; `page` counts from 1 and is clamped."""
        total_row = await self.db.fetchone(
            "SELECT COUNT(*) AS n FROM generations WHERE guild_id = ? AND user_id = ?",
            (guild_id, user_id))
        total = int(total_row["n"]) if total_row else 0
        pages = max(1, -(-total // per_page))
        page = min(max(1, page), pages)
        rows = await self.db.fetchall(
            f"SELECT {_COLUMNS} FROM generations g WHERE g.guild_id = ? AND g.user_id = ?"
            " ORDER BY g.created_at DESC, g.id DESC LIMIT ? OFFSET ?",
            (guild_id, user_id, per_page, (page - 1) * per_page))
        return Page([Generation.from_row(r) for r in rows], page, pages, total)

    async def recent_loras(self, guild_id: int, user_id: int, limit: int = 10) -> list[str]:
        """The member's LoRAs, most recently used first (for autocomplete)."""
        rows = await self.db.fetchall(
            "SELECT lora, MAX(created_at) AS last FROM generations"
            " WHERE guild_id = ? AND user_id = ? AND lora IS NOT NULL"
            " GROUP BY lora ORDER BY last DESC LIMIT ?", (guild_id, user_id, limit))
        return [r["lora"] for r in rows]

    async def stats(self, guild_id: int, days: int, top: int = 5) -> GuildStats:
        """The server's last `days` days: jobs, images delivered, failures, cost, top users."""
        since = self.clock() - days * 86400
        row = await self.db.fetchone(
            "SELECT COUNT(*) AS generations, COALESCE(SUM(images_delivered), 0) AS images,"
            " COALESCE(SUM(CASE WHEN status IN ('failed', 'timed_out') THEN 1 ELSE 0 END), 0)"
            " AS failures,"
            " COALESCE(SUM(cost), 0) AS cost"
            " FROM generations WHERE guild_id = ? AND created_at >= ?", (guild_id, since))
        users = await self.db.fetchall(
            "SELECT user_id, SUM(images_delivered) AS images FROM generations"
            " WHERE guild_id = ? AND created_at >= ? GROUP BY user_id"
            " HAVING SUM(images_delivered) > 0"
            " ORDER BY images DESC, user_id LIMIT ?", (guild_id, since, top))
        assert row is not None
        return GuildStats(days, int(row["generations"]), int(row["images"]),
                          int(row["failures"]), round(float(row["cost"]), 6),
                          [(int(u["user_id"]), int(u["images"])) for u in users])

    async def daily_rows(self, guild_id: int, days: int
                         ) -> list[tuple[float, int, str, float | None]]:
        """(created_at, images delivered, status, cost) of the server's jobs of the last
        `days` days and a day more (the chart buckets them in the server's days)."""
        rows = await self.db.fetchall(
            "SELECT created_at, images_delivered, status, cost FROM generations"
            " WHERE guild_id = ? AND created_at >= ?",
            (guild_id, self.clock() - (days + 1) * 86400))
        return [(float(r["created_at"]), int(r["images_delivered"]), r["status"],
                 None if r["cost"] is None else float(r["cost"])) for r in rows]

    async def in_flight(self, guild_id: int | None = None) -> list[InFlightJob]:
        """Jobs not yet ended, oldest first (all servers, or one)."""
        sql = (f"SELECT {_COLUMNS}, j.state, j.application_id, j.interaction_token,"
               " j.interaction_at, j.locale, j.upload_limit, j.create_sent_at"
               " FROM jobs j JOIN generations g ON g.id = j.generation_id")
        params: tuple[Any, ...] = ()
        if guild_id is not None:
            sql += " WHERE j.guild_id = ?"
            params = (guild_id,)
        rows = await self.db.fetchall(sql + " ORDER BY g.created_at, g.id", params)
        now = self.clock()
        return [InFlightJob(
            generation=Generation.from_row(row), state=row["state"],
            application_id=row["application_id"], interaction_token=row["interaction_token"],
            interaction_at=row["interaction_at"], locale=row["locale"],
            upload_limit=row["upload_limit"],
            token_age=None if row["interaction_at"] is None else now - row["interaction_at"],
            create_sent_at=row["create_sent_at"],
        ) for row in rows]
