"""Money, in US dollars beside the credits: what a job is expected to cost, what each server
has spent and holds reserved this month, the whole bot's spend today, and the limits.

Amounts are kept as micro-dollars (integers: sums are exact on both engines). A job reserves
its expected cost in the same transaction as its credits (`QuotaEngine.reserve` calls
`BudgetCheck`), so that a burst cannot overspend; when it ends, the reservation is released and
what Replicate billed is recorded (`settle_rows`). The expected cost comes from the predict
times of recent similar jobs (steps, images, aspect ratio, image-to-image), or a default before
there is any. Each kind of job (an image, an upscale) is estimated from its own history,
at its own model's price.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.config import BudgetSettings
from bot.periods import Window, window
from bot.storage.audit import audit
from bot.storage.database import Database, Transaction
from bot.storage.quota_types import QuotaRefused
from bot.work import Work, work_from

MICROS = 1_000_000
BUDGET_LOCK = 2  # the whole bot's daily cap: one lock every reservation takes (PostgreSQL)
RECENT = 200  # finished jobs the estimates look at
SIMILAR = 20  # of which at most this many of the same shape
REFRESH = 60.0  # seconds an estimate's history is kept


def to_micros(usd: float) -> int:
    return round(usd * MICROS)


def to_usd(micros: int) -> float:
    return micros / MICROS


@dataclass(frozen=True)
class BudgetReport:
    """What `/mod budget` shows, in dollars."""

    spent: float          # billed this month (finished jobs)
    reserved: float       # held by jobs still running
    forecast: float       # spent and reserved, carried to the month's end at this month's rate
    limit: float | None   # None: no budget
    overridden: bool      # the limit is a moderator's, not the config's
    month: Window
    bot_today: float      # every server, today
    bot_daily_cap: float | None
    mode: str


class BudgetCheck:
    """The budget side of one reservation batch, inside its transaction: each request is
    checked against what the database holds and what the batch accepted before it."""

    def __init__(self, settings: BudgetSettings, month: dict[int, int], limits: dict[int, int],
                 today: int, resets: Callable[[str], float]) -> None:
        self.settings = settings
        self.month = month      # server -> micros this month (spent + reserved)
        self.limits = limits    # server -> its monthly limit in micros (absent: none)
        self.today = today      # every server, micros today
        self.resets = resets    # period -> when the current one ends

    def admit(self, guild_id: int, expected: int) -> None:
        """Count `expected` in, or raise `QuotaRefused` (block mode) if it would go over."""
        resets = self.resets
        limit = self.limits.get(guild_id)
        cap = to_micros(self.settings.daily_usd_total)
        if self.settings.mode == "block":
            if limit is not None and self.month.get(guild_id, 0) + expected > limit:
                raise QuotaRefused("budget.server_exhausted", limit=f"{to_usd(limit):.2f}",
                                   resets=int(resets("monthly")))
            if cap and self.today + expected > cap:
                raise QuotaRefused("budget.bot_exhausted", resets=int(resets("daily")))
        self.month[guild_id] = self.month.get(guild_id, 0) + expected
        self.today += expected


class Budget:
    def __init__(self, db: Database, settings: BudgetSettings, tz: str,
                 clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.settings = settings
        self.tz = ZoneInfo(tz)
        self.clock = clock
        # (kind, shape, work units, predict time) of recent finished jobs, newest first
        self._recent: list[tuple[str, tuple[Any, ...], float, float]] = []
        self._recent_at = -REFRESH
        # server -> (when, its own limit in dollars or None), as the last reservation read it
        self._own: dict[int, tuple[float, float | None]] = {}

    # -- estimates --------------------------------------------------------------------------

    async def estimate(self, work: Work, cost_per_second: float) -> int:
        """The expected cost of `work` at its model's price, in micros (0: no price)."""
        if cost_per_second <= 0:
            return 0
        return to_micros(await self.expected_seconds(work) * cost_per_second)

    async def expected_seconds(self, work: Work) -> float:
        """The median predict time of recent jobs of the same kind and shape; else their
        time per unit of work scaled to this one; else the kind's own default."""
        now = self.clock()
        if now - self._recent_at >= REFRESH:
            rows = await self.db.fetchall(
                "SELECT kind, options, predict_time FROM generations"
                f" WHERE predict_time IS NOT NULL ORDER BY id DESC LIMIT {RECENT}")
            self._recent = []
            for r in rows:
                try:
                    done = work_from(r["kind"], json.loads(r["options"]))
                    self._recent.append((r["kind"], done.shape(), done.work_units(),
                                         float(r["predict_time"])))
                except (TypeError, ValueError):  # a row of a kind this version does not know
                    continue
            self._recent_at = now
        kind, shape = work.kind, work.shape()
        same = [t for k, s, _, t in self._recent if k == kind and s == shape][:SIMILAR]
        if same:
            return statistics.median(same)
        rates = [t / units for k, _, units, t in self._recent if k == kind and units > 0]
        if rates:
            return statistics.median(rates[:SIMILAR]) * work.work_units()
        return work.default_seconds()

    # -- inside a reservation ---------------------------------------------------------------

    async def check(self, tx: Transaction, guilds: Iterable[int], now: float) -> BudgetCheck:
        """What a batch's checks need: each server's month so far and limit, and the whole
        bot's day (under one lock for every process when there is a daily cap)."""
        if self.settings.daily_usd_total:
            await tx.lock(BUDGET_LOCK, [0])
        servers = sorted({g for g in guilds if g})  # direct messages have no server budget
        limits, month = {}, {}
        if servers:  # two reads for the whole batch, however many servers it holds
            marks = ", ".join("?" for _ in servers)
            own = {int(r["guild_id"]): int(r["monthly_micros"]) for r in await tx.fetchall(
                f"SELECT guild_id, monthly_micros FROM guild_budgets WHERE guild_id IN ({marks})",
                servers)}
            seen = self.clock()
            for g in servers:
                self._own[g] = (seen, to_usd(own[g]) if g in own else None)
            default = to_micros(self.settings.monthly_usd)
            limits = {g: own.get(g, default) for g in servers if own.get(g, default)}
        if limits:  # else there is nothing to sum: no server of the batch has a budget
            marks = ", ".join("?" for _ in limits)
            month = {int(r["guild_id"]): int(r["used"]) for r in await tx.fetchall(
                f"SELECT guild_id, SUM(micros) AS used FROM spend WHERE guild_id IN ({marks})"
                " AND period_at >= ? GROUP BY guild_id",
                [*limits, window("monthly", now, self.tz).start])}
        today = 0
        if self.settings.daily_usd_total:
            row = await tx.fetchone("SELECT COALESCE(SUM(micros), 0) AS used FROM spend"
                                    " WHERE period_at >= ?",
                                    (window("daily", now, self.tz).start,))
            today = int(row["used"])
        return BudgetCheck(self.settings, month, limits, today,
                           lambda period: window(period, now, self.tz).end)

    # -- moderators -------------------------------------------------------------------------

    async def set_monthly(self, guild_id: int, usd: float, actor_id: int) -> None:
        """This server's monthly budget; 0 gives it back to the config's."""
        self._own.pop(guild_id, None)
        async with self.db.transaction() as tx:
            now = self.clock()
            if usd > 0:
                await tx.execute(
                    "INSERT INTO guild_budgets (guild_id, monthly_micros, set_by, set_at)"
                    " VALUES (?, ?, ?, ?) ON CONFLICT (guild_id) DO UPDATE SET"
                    " monthly_micros = excluded.monthly_micros, set_by = excluded.set_by,"
                    " set_at = excluded.set_at", (guild_id, to_micros(usd), actor_id, now))
            else:
                await tx.execute("DELETE FROM guild_budgets WHERE guild_id = ?", (guild_id,))
            await audit(tx, guild_id, actor_id, "budget-set", None, {"usd": usd}, now)

    async def own_limit(self, guild_id: int, fresh_within: float = 0.0) -> float | None:
        """The monthly budget a moderator set for this server, in dollars (None: the
        config's). Within `fresh_within` seconds of a reservation, as that read it: what
        the notices after a job need, without a database trip of their own."""
        seen = self._own.get(guild_id)
        if seen is not None and self.clock() - seen[0] <= fresh_within:
            return seen[1]
        row = await self.db.fetchone("SELECT monthly_micros FROM guild_budgets"
                                     " WHERE guild_id = ?", (guild_id,))
        return to_usd(int(row["monthly_micros"])) if row else None

    async def report(self, guild_id: int) -> BudgetReport:
        now = self.clock()
        month = window("monthly", now, self.tz)
        row = await self.db.fetchone(
            "SELECT COALESCE(SUM(CASE WHEN kind = 'cost' THEN micros ELSE 0 END), 0) AS spent,"
            " COALESCE(SUM(CASE WHEN kind = 'cost' THEN 0 ELSE micros END), 0) AS reserved,"
            " (SELECT monthly_micros FROM guild_budgets WHERE guild_id = :g) AS own"
            " FROM spend WHERE guild_id = :g AND period_at >= :start",
            {"g": guild_id, "start": month.start})
        day = window("daily", now, self.tz)
        today = await self.db.fetchone("SELECT COALESCE(SUM(micros), 0) AS used FROM spend"
                                       " WHERE period_at >= ?", (day.start,))
        spent, reserved = int(row["spent"]), int(row["reserved"])
        own = row["own"]  # an aggregate: one row, even in a month without spend
        limit = int(own) if own is not None else to_micros(self.settings.monthly_usd) or None
        elapsed = max(now - month.start, 3600.0)  # not a forecast from a few minutes
        forecast = (spent + reserved) * (month.end - month.start) / elapsed
        cap = self.settings.daily_usd_total
        return BudgetReport(
            spent=to_usd(spent), reserved=to_usd(reserved),
            forecast=to_usd(round(min(forecast, 1e15))), limit=to_usd(limit) if limit else None,
            overridden=own is not None, month=month, bot_today=to_usd(int(today["used"])),
            bot_daily_cap=cap or None, mode=self.settings.mode)

    async def blocking(self, guild_id: int, work: Work, cost_per_second: float
                       ) -> float | None:
        """When the server's budget (or the bot's daily cap) is what stops a job like this:
        the instant it lifts; None when it does not stop it."""
        if self.settings.mode != "block" or not (
                self.settings.monthly_usd or self.settings.daily_usd_total or
                await self.own_limit(guild_id)):
            return None
        expected = await self.estimate(work, cost_per_second)
        async with self.db.transaction() as tx:
            check = await self.check(tx, [guild_id], self.clock())
        try:
            check.admit(guild_id, expected)
        except QuotaRefused as refused:
            return float(refused.params["resets"])
        return None

    # -- telling moderators -----------------------------------------------------------------

    async def notices(self, guild_id: int, refused: str | None = None
                      ) -> list[tuple[str, str, float, float]]:
        """The thresholds crossed and not yet told this period: (scope "server" or "bot",
        level "warn" or "limit", used, limit) in dollars, each returned once per period. A job
        just refused by a budget (`refused`: its key) means that budget is at its limit."""
        report = await self.report(guild_id)
        crossed = []
        now = self.clock()
        for scope, used, limit, period, key in (
                ("server", report.spent + report.reserved, report.limit,
                 _label(report.month.start, self.tz, "%Y-%m"), guild_id),
                ("bot", report.bot_today, report.bot_daily_cap,
                 _label(now, self.tz, "%Y-%m-%d"), 0)):
            if not limit or (scope == "server" and not guild_id):
                continue
            at_limit = refused == f"budget.{scope}_exhausted"
            for level, share in (("limit", 1.0), ("warn", self.settings.warn_at)):
                if used >= limit * share - 1e-9 or (level == "limit" and at_limit):
                    changed = await self.db.execute(
                        "INSERT INTO budget_notices (guild_id, period, level, sent_at)"
                        " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING", (key, period, level, now))
                    if changed:
                        crossed.append((scope, level, used, limit))
                    break  # past the limit, the warning says nothing more
        return crossed


def _label(instant: float, tz: ZoneInfo, fmt: str) -> str:
    return datetime.fromtimestamp(instant, UTC).astimezone(tz).strftime(fmt)


def spend_rows(guild_id: int, user_id: int, job_id: int, reserve: int | None, cost: float | None,
               period_at: float, now: float) -> list[tuple[Any, ...]]:
    """A job's settling in money: its reservation released, what it cost recorded."""
    rows = []
    if reserve:
        rows.append((guild_id, user_id, job_id, "release", -reserve, period_at, now))
    if cost:
        rows.append((guild_id, user_id, job_id, "cost", to_micros(cost), period_at, now))
    return rows


SPEND_COLUMNS = ("guild_id", "user_id", "job_id", "kind", "micros", "period_at", "created_at")
