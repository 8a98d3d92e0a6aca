"""Budgets in dollars, on each engine: reserved with the credits in one transaction (exact
under a burst), released and replaced by what was billed when a job ends (failures too), per
server and month in the configured time zone, a moderator's amount over the config's, the
whole bot's daily cap, the mod-log notices once per period, estimates from similar jobs."""

from __future__ import annotations

import pytest

from bot.config import BudgetSettings, QuotaSettings
from bot.model import DEFAULT_PER_STEP, DEFAULT_START, GenerationOptions
from bot.storage import Storage
from bot.storage.quota import QuotaRefused
from bot.upscale import UpscaleOptions
from tests.bot.storage.conftest import GUILD, at, request
from tests.bot.storage.test_quota import reserve_all as reserve_at_once

TENTH = 100_000  # micro-dollars: $0.10


@pytest.fixture
async def open_budget(database_location, clock):
    opened = []

    async def make(tz: str = "UTC", **budget) -> Storage:
        storage = await Storage.open(
            database_location, QuotaSettings(daily=0, per_user_concurrent=0, timezone=tz),
            clock, BudgetSettings(**budget))
        opened.append(storage)
        return storage

    yield make
    for storage in opened:
        await storage.close()


async def reserve_all(storage, requests):
    """(accepted, refused) of requests reserved all at once."""
    results = await reserve_at_once(storage, requests)
    return ([r for r in results if not isinstance(r, QuotaRefused)],
            [r for r in results if isinstance(r, QuotaRefused)])


def priced(user: int = 1, micros: int = TENTH, **extra):
    return request(user=user, expected_micros=micros, **extra)


async def test_a_burst_cannot_overspend_and_a_refusal_costs_nothing(open_budget):
    storage = await open_budget(monthly_usd=1.0)
    accepted, refused = await reserve_all(storage, [priced(user=u) for u in range(40)])
    assert len(accepted) == 10  # $1.00 / $0.10, exactly, whoever asked first
    assert {r.key for r in refused} == {"budget.server_exhausted"}
    assert refused[0].params["limit"] == "1.00"
    refused_users = {u for u in range(40)} - {
        (await storage.history.get(r.job_id)).user_id for r in accepted}
    for user in refused_users:  # no credit taken from those refused
        assert (await storage.quota.status(GUILD, user)).periods[0].used == 0
    report = await storage.budget.report(GUILD)
    assert report.reserved == pytest.approx(1.0) and report.spent == 0
    other = await storage.quota.reserve(priced(guild=GUILD + 1))  # another server's budget
    assert other.credits == 1


async def test_warn_mode_lets_jobs_through_and_says_so_once(open_budget):
    storage = await open_budget(monthly_usd=1.0, mode="warn")
    accepted, refused = await reserve_all(storage, [priced(user=u) for u in range(15)])
    assert len(accepted) == 15 and not refused
    assert await storage.budget.notices(GUILD) == [("server", "limit", pytest.approx(1.5),
                                                    1.0)]
    assert await storage.budget.notices(GUILD) == []  # once per month, not per job


async def test_the_warning_then_the_limit_each_once_a_month(open_budget, clock):
    storage = await open_budget(monthly_usd=1.0, warn_at=0.5)
    await reserve_all(storage, [priced(user=u) for u in range(4)])
    assert await storage.budget.notices(GUILD) == []
    await storage.quota.reserve(priced(user=9))
    assert [n[:2] for n in await storage.budget.notices(GUILD)] == [("server", "warn")]
    await reserve_all(storage, [priced(user=u) for u in range(10, 14)])
    assert await storage.budget.notices(GUILD) == []
    with pytest.raises(QuotaRefused):  # 9 of 10 used: this one would go over
        await storage.quota.reserve(priced(user=20, micros=2 * TENTH))
    notices = await storage.budget.notices(GUILD, refused="budget.server_exhausted")
    assert [n[:2] for n in notices] == [("server", "limit")]
    clock.advance(31 * 86400)  # a new month: spend starts again, and so do the notices
    assert await storage.budget.notices(GUILD) == []
    assert (await storage.quota.reserve(priced(user=20, micros=2 * TENTH))).credits == 1


async def test_settling_releases_the_reservation_and_records_the_bill(open_budget):
    storage = await open_budget(monthly_usd=1.0)
    failed = await storage.quota.reserve(priced(user=1))
    done = await storage.quota.reserve(priced(user=2))
    assert await storage.quota.refund(failed.job_id, status="failed", predict_time=50,
                                      cost=0.25)
    assert await storage.quota.commit(done.job_id, 1, predict_time=10, cost=0.05)
    assert not await storage.quota.commit(done.job_id, 1, cost=9.0)  # settled: no change
    report = await storage.budget.report(GUILD)
    assert report.spent == pytest.approx(0.30)  # the failed prediction ran: it was billed
    assert report.reserved == 0
    rows = await storage.db.fetchall("SELECT job_id, SUM(micros) AS net, COUNT(*) AS n"
                                     " FROM spend WHERE kind <> 'cost' GROUP BY job_id")
    assert {(r["job_id"], r["net"], r["n"]) for r in rows} == {(failed.job_id, 0, 2),
                                                               (done.job_id, 0, 2)}


async def test_months_roll_over_in_the_servers_time_zone(open_budget, clock):
    clock.now = at("2026-03-31 23:50", "Asia/Shanghai")
    storage = await open_budget(tz="Asia/Shanghai", monthly_usd=0.3)
    accepted, refused = await reserve_all(storage, [priced(user=u) for u in range(4)])
    assert len(accepted) == 3 and len(refused) == 1
    assert refused[0].params["resets"] == int(at("2026-04-01 00:00", "Asia/Shanghai"))
    clock.now = at("2026-04-01 00:05", "Asia/Shanghai")  # still March 31 in UTC
    assert await storage.quota.commit(accepted[0].job_id, 1, cost=0.2)  # counts in March
    assert (await storage.quota.reserve(priced(user=7))).credits == 1
    assert (await storage.budget.report(GUILD)).spent == 0


async def test_a_moderators_budget_wins_over_the_config(open_budget):
    storage = await open_budget()  # no budget in the config
    await storage.budget.set_monthly(GUILD, 0.2, actor_id=5)
    accepted, refused = await reserve_all(storage, [priced(user=u) for u in range(3)])
    assert len(accepted) == 2 and len(refused) == 1
    report = await storage.budget.report(GUILD)
    assert report.limit == pytest.approx(0.2) and report.overridden
    await storage.budget.set_monthly(GUILD, 0, actor_id=5)  # back to the config: none
    assert (await storage.quota.reserve(priced(user=9))).credits == 1
    assert (await storage.budget.report(GUILD)).limit is None


async def test_the_whole_bots_daily_cap_counts_every_server(open_budget, clock):
    storage = await open_budget(daily_usd_total=0.3)
    for guild in (GUILD, GUILD + 1, GUILD + 2):
        await storage.quota.reserve(priced(guild=guild))
    with pytest.raises(QuotaRefused) as caught:
        await storage.quota.reserve(priced(guild=GUILD + 3))
    assert caught.value.key == "budget.bot_exhausted"
    assert [n[:2] for n in await storage.budget.notices(
        GUILD + 3, refused="budget.bot_exhausted")] == [("bot", "limit")]
    clock.advance(86400)
    assert (await storage.quota.reserve(priced(guild=GUILD + 3))).credits == 1


async def test_estimates_come_from_similar_jobs(open_budget, clock):
    storage = await open_budget()
    usual = GenerationOptions(prompt="a castle", num_outputs=1, steps=28)
    assert await storage.budget.expected_seconds(usual) == pytest.approx(
        DEFAULT_START + DEFAULT_PER_STEP * 28)
    for seconds in (2.0, 3.0, 9.0):
        job = await storage.quota.reserve(request(user=int(seconds), options=usual.to_dict()))
        await storage.quota.commit(job.job_id, 1, predict_time=seconds)
    clock.advance(61)  # the history is read again
    assert await storage.budget.expected_seconds(usual) == pytest.approx(3.0)  # the median
    bigger = usual.with_changes(steps=50, num_outputs=2)  # none like it: scaled by the work
    assert await storage.budget.expected_seconds(bigger) == pytest.approx(3.0 / 28 * 100)
    assert await storage.budget.estimate(usual, 0.001) == 3_000  # $0.003
    assert await storage.budget.estimate(usual, 0.0) == 0


async def test_an_upscale_is_estimated_from_upscales_only(open_budget, clock):
    storage = await open_budget()
    image = GenerationOptions(prompt="a castle")
    for seconds in (20.0, 30.0):  # slow images say nothing of how long an upscale takes
        job = await storage.quota.reserve(request(user=int(seconds), options=image.to_dict()))
        await storage.quota.commit(job.job_id, 1, predict_time=seconds)
    upscale = UpscaleOptions(image="https://cdn.discordapp.com/a.png", scale=2, width=1024,
                             height=1024)
    assert await storage.budget.expected_seconds(upscale) == pytest.approx(
        upscale.default_seconds())
    job = await storage.quota.reserve(request(user=7, options=upscale.to_dict(),
                                              kind="upscale", credits=2))
    await storage.quota.commit(job.job_id, 1, predict_time=4.0, charge=2)
    clock.advance(61)
    assert await storage.budget.expected_seconds(upscale) == pytest.approx(4.0)
    four = UpscaleOptions(image=upscale.image, scale=4, width=1024, height=1024)
    assert await storage.budget.expected_seconds(four) == pytest.approx(16.0)  # 4× the pixels
    assert await storage.budget.expected_seconds(image) == pytest.approx(25.0)
