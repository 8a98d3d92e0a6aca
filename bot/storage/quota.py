"""Credits: who may generate how much, and the ledger that proves it.

A job's life in credits: `reserve` (atomic: checks and writes happen in one transaction, so N
concurrent reservations against R credits accept exactly min(N, R)), then `commit` the images
delivered and refund the rest, or `refund` everything on failure, cancel or time-out. Settling a
job twice changes nothing; the database refuses a second row.

Limits per period come from the config, then the most generous role override a member has,
then a moderator's per-user override; 0 means unlimited. Bonus credits granted by moderators are
spent only once the period allowance is used up.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable, Iterable
from typing import Any
from zoneinfo import ZoneInfo

from bot.config import QuotaSettings
from bot.periods import PERIODS, Window, window, windows
from bot.storage.budget import SPEND_COLUMNS, Budget, spend_rows
from bot.storage.database import Database, Transaction
from bot.storage.quota_admin import QUOTA_LOCK, ModeratorActions
from bot.storage.quota_types import (
    Interaction,
    JobRequest,
    Limits,
    PeriodUsage,
    QuotaRefused,
    QuotaStatus,
    Reservation,
)

__all__ = ["Interaction", "JobRequest", "Limits", "PeriodUsage", "QuotaEngine", "QuotaRefused",
           "QuotaStatus", "Reservation"]

Clock = Callable[[], float]
BATCH = 64  # reservations in one transaction at most


_SNAPSHOTS = """
WITH pairs (g, u) AS (VALUES {pairs}),
members AS (  -- upto: a real column (a grouped join), read once, not once per ledger row; a
              -- reset older than every current period cannot matter: its jobs are older
    SELECT p.g AS g, p.u AS u, COALESCE(r.upto, 0) AS upto
    FROM pairs p
    LEFT JOIN (SELECT guild_id, user_id, MAX(reset_upto) AS upto FROM ledger
               WHERE kind = 'reset' AND period_at >= :oldest
                 AND guild_id IN (SELECT g FROM pairs)  -- the index by server and time
               GROUP BY guild_id, user_id) r ON r.guild_id = p.g AND r.user_id = p.u),
servers AS (  -- once per server, however many of its members the batch holds
    SELECT g, CASE WHEN :cap > 0 THEN (SELECT COALESCE(SUM(amount), 0) FROM ledger
                WHERE guild_id = g AND period_at >= :day
                  AND kind IN ('reserve', 'refund')) ELSE 0 END AS today
    FROM (SELECT DISTINCT g FROM pairs) AS distinct_servers)
SELECT m.g AS g, m.u AS u,
    (SELECT COALESCE(SUM(amount), 0) FROM ledger WHERE guild_id = m.g AND user_id = m.u
       AND source = 'allowance' AND period_at >= :day AND job_id > m.upto) AS daily,
    (SELECT COALESCE(SUM(amount), 0) FROM ledger WHERE guild_id = m.g AND user_id = m.u
       AND source = 'allowance' AND period_at >= :week AND job_id > m.upto) AS weekly,
    (SELECT COALESCE(SUM(amount), 0) FROM ledger WHERE guild_id = m.g AND user_id = m.u
       AND source = 'allowance' AND period_at >= :month AND job_id > m.upto) AS monthly,
    (SELECT COALESCE(SUM(CASE kind WHEN 'grant' THEN amount ELSE -amount END), 0)
     FROM ledger WHERE guild_id = m.g AND user_id = m.u AND source = 'bonus') AS bonus,
    s.today AS guild_today,
    (SELECT COUNT(*) FROM jobs WHERE guild_id = m.g AND user_id = m.u) AS in_flight,
    (SELECT MAX(created_at) FROM generations
     WHERE guild_id = m.g AND user_id = m.u) AS last_job,
    (SELECT reason FROM bans WHERE guild_id = m.g AND user_id = m.u) AS ban_reason,
    (SELECT COUNT(*) FROM bans WHERE guild_id = m.g AND user_id = m.u) AS banned,
    o.daily AS o_daily, o.weekly AS o_weekly, o.monthly AS o_monthly, o.user_id AS o_user
FROM members m
JOIN servers s ON s.g = m.g
LEFT JOIN quota_overrides o ON o.guild_id = m.g AND o.user_id = m.u
"""


class QuotaEngine(ModeratorActions):
    def __init__(self, db: Database, settings: QuotaSettings, clock: Clock = time.time,
                 budget: Budget | None = None) -> None:
        self.budget = budget  # the money side of a reservation, when there is one
        self.db = db
        self.settings = settings
        self.tz = ZoneInfo(settings.timezone)
        self.clock = clock
        self._roles = {role.role_id: role for role in settings.roles}
        self._waiting: list[tuple[JobRequest, asyncio.Future[Reservation]]] = []
        self._drainer: asyncio.Task[None] | None = None
        self._cleanup: set[asyncio.Task[bool]] = set()

    # -- limits -----------------------------------------------------------------------------

    def limits_for(self, role_ids: Iterable[int], override: Any = None) -> Limits:
        """Config, then the most generous of the member's role overrides, then the per-user
        override: per period, independently."""
        values = {p: getattr(self.settings, p) for p in PERIODS}
        roles = [self._roles[r] for r in role_ids if r in self._roles]
        for period in PERIODS:
            given = [getattr(r, period) for r in roles if getattr(r, period) is not None]
            if given:
                values[period] = 0 if 0 in given else max(given)
            if override is not None and override[period] is not None:
                values[period] = override[period]
        return Limits(**values)

    # -- reading ----------------------------------------------------------------------------

    async def _snapshot(self, tx: Transaction | Database, guild_id: int, user_id: int,
                        now: float) -> dict[str, Any]:
        """Everything a decision about one member needs, in one query."""
        return (await self._snapshots(tx, [(guild_id, user_id)], now))[(guild_id, user_id)]

    async def _snapshots(self, tx: Transaction | Database, members: Iterable[tuple[int, int]],
                         now: float) -> dict[tuple[int, int], dict[str, Any]]:
        """The snapshots of several (server, member) pairs in one query: a batch of
        reservations costs one read, not one per reservation."""
        pairs = list(dict.fromkeys(members))
        spans = windows(now, self.tz)
        params: dict[str, Any] = {"cap": self.settings.guild_daily, "day": spans["daily"].start,
                                  "week": spans["weekly"].start, "month": spans["monthly"].start,
                                  "oldest": min(w.start for w in spans.values())}
        values = []
        for n, (guild_id, user_id) in enumerate(pairs):
            params[f"g{n}"], params[f"u{n}"] = guild_id, user_id
            values.append(f"(CAST(:g{n} AS BIGINT), CAST(:u{n} AS BIGINT))")
        rows = await tx.fetchall(_SNAPSHOTS.format(pairs=", ".join(values)), params)
        found = {}
        for row in rows:
            data = dict(row)
            data["windows"] = spans
            data["override"] = ({p: data[f"o_{p}"] for p in PERIODS}
                                if data["o_user"] is not None else None)
            found[(int(data["g"]), int(data["u"]))] = data
        return found

    def _status(self, snap: dict[str, Any], role_ids: Iterable[int], now: float) -> QuotaStatus:
        limits = self.limits_for(role_ids, snap["override"])
        spans: dict[str, Window] = snap["windows"]
        periods = [PeriodUsage(p, int(snap[p]), limits.of(p), spans[p].end) for p in PERIODS]
        cooldown_until = None
        if self.settings.cooldown_seconds and snap["last_job"] is not None:
            until = snap["last_job"] + self.settings.cooldown_seconds
            cooldown_until = until if until > now else None
        guild = None
        if self.settings.guild_daily:
            guild = PeriodUsage("daily", int(snap["guild_today"]), self.settings.guild_daily,
                                spans["daily"].end)
        overridden = {p: v for p, v in (snap["override"] or {}).items() if v is not None}
        return QuotaStatus(periods=periods, bonus=int(snap["bonus"]),
                           in_flight=int(snap["in_flight"]), cooldown_until=cooldown_until,
                           banned=bool(snap["banned"]), ban_reason=snap["ban_reason"] or "",
                           guild=guild, overridden=overridden)

    async def status(self, guild_id: int, user_id: int, role_ids: Iterable[int] = ()
                     ) -> QuotaStatus:
        now = self.clock()
        snap = await self._snapshot(self.db, guild_id, user_id, now)
        return self._status(snap, role_ids, now)

    # -- reserving --------------------------------------------------------------------------

    def _check(self, status: QuotaStatus, credits: int) -> tuple[int, int]:
        """(from allowance, from bonus), or raise `QuotaRefused` saying why."""
        if status.banned:
            raise QuotaRefused("quota.banned", reason=status.ban_reason or "—")
        if self.settings.per_user_concurrent and \
                status.in_flight >= self.settings.per_user_concurrent:
            raise QuotaRefused("quota.concurrent", limit=self.settings.per_user_concurrent)
        if status.cooldown_until is not None:
            raise QuotaRefused("quota.cooldown", until=math.ceil(status.cooldown_until))
        guild = status.guild
        if guild is not None and guild.used + credits > guild.limit:
            raise QuotaRefused("quota.guild_cap", limit=guild.limit, left=int(guild.left),
                               resets=int(guild.resets_at))
        allowance = status.allowance_left
        if allowance >= credits:
            return credits, 0
        if allowance + status.bonus >= credits:
            return int(allowance), credits - int(allowance)
        # of the periods that cannot cover the request, the one that lifts last
        blocking = max((p for p in status.periods if p.limit and p.left + status.bonus < credits),
                       key=lambda p: p.resets_at)
        raise QuotaRefused(f"quota.exhausted_{blocking.period}", limit=blocking.limit,
                           left=int(allowance) + status.bonus, wanted=credits,
                           resets=int(blocking.resets_at))

    async def reserve(self, request: JobRequest) -> Reservation:
        """Check every limit and, in the same transaction, create the job and charge it.

        Concurrent reservations are grouped (group commit): one transaction takes every
        reservation waiting, each checked against what the ones before it wrote, so they stay
        exact while sharing the cost of BEGIN and COMMIT.
        """
        future: asyncio.Future[Reservation] = asyncio.get_running_loop().create_future()
        self._waiting.append((request, future))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.ensure_future(self._drain())
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            future.add_done_callback(self._abandoned)
            raise

    def _abandoned(self, future: asyncio.Future[Reservation]) -> None:
        """The caller went away while its reservation was being written: give it back."""
        if future.cancelled() or future.exception() is not None:
            return
        task = asyncio.ensure_future(self.refund(future.result().job_id, status="canceled",
                                                 error="the request was abandoned"))
        self._cleanup.add(task)
        task.add_done_callback(self._cleanup.discard)

    async def _drain(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[:BATCH], self._waiting[BATCH:]
            outcomes = await self._write(batch)
            if len(batch) > 1 and any(isinstance(o, Exception) and not
                                      isinstance(o, QuotaRefused) for _, o in outcomes):
                # the batch rolled back: one bad reservation must not fail the others, so
                # each is tried again alone
                outcomes = [o for one in batch for o in await self._write([one])]
            for future, outcome in outcomes:
                if future.done():
                    continue
                if isinstance(outcome, BaseException):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)

    async def _write(self, batch: list[tuple[JobRequest, asyncio.Future[Reservation]]]
                     ) -> list[tuple[asyncio.Future[Reservation], Any]]:
        async def reserve(tx: Transaction) -> list[tuple[asyncio.Future[Reservation], Any]]:
            return await self._reserve_batch(tx, batch)

        try:
            return await self.db.atomic(reserve)
        except Exception as error:  # rolled back: nothing of it was written
            return [(future, error) for _, future in batch]

    async def _reserve_batch(self, tx: Transaction,
                             batch: list[tuple[JobRequest, asyncio.Future[Reservation]]]
                             ) -> list[tuple[asyncio.Future[Reservation], Any]]:
        """Decide every reservation of the batch in order, each seeing the ones before it,
        then write them all at once. One read and three writes per batch.
        Other processes reserving for the same servers wait for this transaction (a lock
        per server), so the checks stay exact across processes too."""
        await tx.lock(QUOTA_LOCK, (request.guild_id for request, _ in batch))
        decided: list[tuple[JobRequest, int, int, float]] = []  # request, allowance, bonus, now
        outcomes: list[tuple[asyncio.Future[Reservation], Any]] = []
        now = self.clock()  # one instant for the batch, as it is one transaction
        snaps = await self._snapshots(tx, ((r.guild_id, r.user_id) for r, _ in batch), now)
        money = await self.budget.check(tx, (r.guild_id for r, _ in batch), now) \
            if self.budget else None
        for request, future in batch:
            snap = dict(snaps[(request.guild_id, request.user_id)])
            _add_unwritten(snap, request, decided)
            try:
                allowance, bonus = self._check(self._status(snap, request.role_ids, now),
                                               request.wanted)
                if money is not None:
                    money.admit(request.guild_id, request.expected_micros)
            except QuotaRefused as refused:  # nothing is written for it
                outcomes.append((future, refused))
                continue
            decided.append((request, allowance, bonus, now))
            outcomes.append((future, len(decided) - 1))
        if not decided:
            return outcomes
        ids = await tx.next_ids("generations", len(decided))
        accepted = [(r, job_id, a, b, now) for (r, a, b, now), job_id in zip(decided, ids,
                                                                              strict=True)]
        outcomes = [(future, Reservation(ids[o], decided[o][0].wanted, decided[o][1],
                                         decided[o][2]) if isinstance(o, int) else o)
                    for future, o in outcomes]
        await tx.insert_rows(
            "generations", ("id", "guild_id", "channel_id", "user_id", "prompt", "options",
                            "lora", "lora_scale", "parent_id", "images_requested", "created_at",
                            "kind", "credits"),
            [(job_id, r.guild_id, r.channel_id, r.user_id, r.prompt,
              json.dumps(r.options, ensure_ascii=False, sort_keys=True), r.lora, r.lora_scale,
              r.parent_id, r.images, now, r.kind, r.wanted)
             for r, job_id, _, _, now in accepted])
        await tx.insert_rows(
            "jobs", ("generation_id", "guild_id", "user_id", "application_id",
                     "interaction_token", "interaction_at", "locale", "upload_limit",
                     "updated_at"),
            [(job_id, r.guild_id, r.user_id, *_interaction(r), now)
             for r, job_id, _, _, now in accepted])
        await tx.insert_rows(
            "ledger", ("guild_id", "user_id", "job_id", "kind", "source", "credits", "amount",
                       "period_at", "created_at"),
            [(r.guild_id, r.user_id, job_id, "reserve", source, n, n, now, now)
             for r, job_id, allowance, bonus, now in accepted
             for source, n in (("allowance", allowance), ("bonus", bonus)) if n])
        await tx.insert_rows("spend", SPEND_COLUMNS, [
            (r.guild_id, r.user_id, job_id, "reserve", r.expected_micros, now, now)
            for r, job_id, _, _, now in accepted if r.expected_micros])
        return outcomes

    # -- settling ---------------------------------------------------------------------------

    async def _settle(self, job_id: int, delivered: int, status: str,
                      fields: dict[str, Any], unless_claimed: bool = False,
                      charge: int | None = None) -> bool:
        """Settle in a transaction shared with the other writes of the moment (group
        commit): a burst of jobs ending together costs a few transactions, not one each."""
        async def settle(tx: Transaction) -> bool:
            return await self._settle_in(tx, job_id, delivered, status, fields,
                                         unless_claimed, charge)

        return await self.db.batch(settle)

    async def _settle_in(self, tx: Transaction, job_id: int, delivered: int, status: str,
                         fields: dict[str, Any], unless_claimed: bool,
                         charge: int | None = None) -> bool:
        now = self.clock()
        # the job's row, locked: a second process settling it (or claiming it) waits
        job = await tx.fetchone("SELECT create_sent_at, guild_id, user_id FROM jobs"
                                " WHERE generation_id = ?" + tx.for_update, (job_id,))
        if job is None:
            return False  # settled already (its row is gone), or unknown
        if unless_claimed and job["create_sent_at"] is not None:
            return False  # its create has left (see History.claim): not to be refunded so
        rows = await tx.fetchall(
            "SELECT kind, source, credits, period_at FROM ledger"
            " WHERE job_id = ? AND kind IN ('reserve', 'commit', 'refund')", (job_id,))
        if any(r["kind"] != "reserve" for r in rows):
            return False  # settled already
        reserved = {r["source"]: r["credits"] for r in rows}  # empty: a job that costs 0
        guild_id, user_id = job["guild_id"], job["user_id"]
        period_at = rows[0]["period_at"] if rows else (await tx.fetchone(
            "SELECT created_at FROM generations WHERE id = ?", (job_id,)))["created_at"]
        delivered = max(0, delivered)
        kept = max(0, min(delivered if charge is None else charge, sum(reserved.values())))
        # spend the allowance first, give bonus credits back first
        keep = {"allowance": min(kept, reserved.get("allowance", 0))}
        keep["bonus"] = min(kept - keep["allowance"], reserved.get("bonus", 0))
        movements = []
        for source, n in reserved.items():
            back = n - keep[source]
            if keep[source]:
                movements.append(("commit", source, keep[source], 0))
            if back:
                movements.append(("refund", source, back, -back))
        await tx.executemany(
            "INSERT INTO ledger (guild_id, user_id, job_id, kind, source, credits, amount,"
            " period_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(guild_id, user_id, job_id, kind, source, credits, amount, period_at, now)
             for kind, source, credits, amount in movements])
        reserve = await tx.fetchone("SELECT micros FROM spend WHERE job_id = ? AND"
                                    " kind = 'reserve'", (job_id,))
        await tx.insert_rows("spend", SPEND_COLUMNS, spend_rows(
            guild_id, user_id, job_id, reserve["micros"] if reserve else None,
            fields.get("cost"), period_at, now))
        assignments = {"status": status, "images_delivered": delivered,
                       "finished_at": now, **fields}
        columns = ", ".join(f"{name} = :{name}" for name in assignments)
        await tx.execute(f"UPDATE generations SET {columns} WHERE id = :id",
                         {**assignments, "id": job_id})
        await tx.execute("DELETE FROM jobs WHERE generation_id = ?", (job_id,))
        return True


    async def commit(self, job_id: int, delivered: int, *, seed: int | None = None,
                     predict_time: float | None = None, cost: float | None = None,
                     message_id: int | None = None, charge: int | None = None) -> bool:
        """The job succeeded with `delivered` images: charge those (or `charge` credits,
        for a job whose price is not one per image), refund the rest. Returns False when the
        job was settled already (nothing changes)."""
        fields: dict[str, Any] = {"seed": seed, "predict_time": predict_time, "cost": cost}
        if message_id is not None:
            fields["message_id"] = message_id
        return await self._settle(job_id, delivered, "succeeded", fields, charge=charge)

    async def refund(self, job_id: int, *, status: str = "failed", error: str | None = None,
                     predict_time: float | None = None, cost: float | None = None,
                     unless_claimed: bool = False) -> bool:
        """The job failed, was canceled or timed out: give every credit back. With
        `unless_claimed`, only if its create has not been sent (a cancel racing its start)."""
        if status not in ("failed", "canceled", "timed_out"):
            raise ValueError(status)
        return await self._settle(job_id, 0, status, {
            "error": error, "predict_time": predict_time, "cost": cost}, unless_claimed)

    def guild_window(self, now: float | None = None) -> Window:
        return window("daily", self.clock() if now is None else now, self.tz)


def _interaction(request: JobRequest) -> tuple[Any, ...]:
    i = request.interaction
    if i is None:
        return (None, None, None, None, None)
    return (i.application_id, i.token, i.created_at, i.locale, i.upload_limit)


def _add_unwritten(snap: dict[str, Any], request: JobRequest,
                   decided: list[tuple[JobRequest, int, int, float]]) -> None:
    """Fold the reservations this batch accepted but has not written yet into `snap`, as
    the database will hold them: the checks stay exact inside a batch."""
    windows = snap["windows"]
    for other, allowance, bonus, at in decided:
        if other.guild_id != request.guild_id:
            continue
        if at >= windows["daily"].start:
            snap["guild_today"] += other.wanted
        if other.user_id != request.user_id:
            continue
        for period in ("daily", "weekly", "monthly"):
            if at >= windows[period].start:
                snap[period] += allowance
        snap["bonus"] -= bonus
        snap["in_flight"] += 1
        snap["last_job"] = max(snap["last_job"] or at, at)
