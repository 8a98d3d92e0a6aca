"""The quota engine on a real SQLite file: exact under concurrency, right across periods and
time zones, overrides and bonus in order, idempotent settling, a ledger that adds up."""

from __future__ import annotations

import asyncio
import random

import pytest

from bot.config import RoleQuota
from bot.storage.quota import QuotaRefused
from tests.bot.storage.conftest import GUILD, at, request


async def reserve_all(storage, requests):
    results = await asyncio.gather(*(storage.quota.reserve(r) for r in requests),
                                   return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, QuotaRefused):
            raise result
    return results


async def test_exact_reservations_for_one_user_under_concurrency(open_storage):
    storage = await open_storage(daily=20)
    results = await reserve_all(storage, [request(user=7) for _ in range(150)])
    accepted = [r for r in results if not isinstance(r, QuotaRefused)]
    refused = [r for r in results if isinstance(r, QuotaRefused)]
    assert len(accepted) == 20 and len(refused) == 130
    assert {r.key for r in refused} == {"quota.exhausted_daily"}
    assert len({r.job_id for r in accepted}) == 20
    status = await storage.quota.status(GUILD, 7)
    assert status.periods[0].used == 20 and status.allowance_left == 0


async def test_exact_reservations_against_the_server_cap(open_storage):
    storage = await open_storage(daily=0, guild_daily=30)
    results = await reserve_all(storage, [request(user=u) for u in range(120)])
    accepted = [r for r in results if not isinstance(r, QuotaRefused)]
    assert len(accepted) == 30
    assert {r.key for r in results if isinstance(r, QuotaRefused)} == {"quota.guild_cap"}
    other = await storage.quota.reserve(request(user=1, guild=GUILD + 1))  # other servers
    assert other.credits == 1


async def test_a_multi_image_request_is_all_or_nothing(open_storage):
    storage = await open_storage(daily=3)
    with pytest.raises(QuotaRefused) as caught:
        await storage.quota.reserve(request(images=4))
    assert caught.value.params["left"] == 3 and caught.value.params["wanted"] == 4
    assert (await storage.quota.status(GUILD, 1)).periods[0].used == 0
    assert await storage.db.fetchone("SELECT * FROM generations") is None


async def test_rollover_at_midnight_in_the_servers_time_zone(open_storage, clock):
    clock.now = at("2026-03-01 23:59", "Asia/Shanghai")  # 15:59 UTC
    storage = await open_storage(daily=2, timezone="Asia/Shanghai")
    await reserve_all(storage, [request(), request()])
    with pytest.raises(QuotaRefused) as caught:
        await storage.quota.reserve(request())
    midnight = at("2026-03-02 00:00", "Asia/Shanghai")
    assert caught.value.key == "quota.exhausted_daily"
    assert caught.value.params["resets"] == midnight
    assert f"<t:{int(midnight)}:R>" in caught.value.message("en-US")
    clock.now = midnight + 1
    assert (await storage.quota.reserve(request())).credits == 1


async def test_weekly_and_monthly_limits_roll_over_too(open_storage, clock):
    clock.now = at("2026-03-29 10:00")  # a Sunday, the last week of March
    storage = await open_storage(daily=0, weekly=3, monthly=5)
    await reserve_all(storage, [request(), request(), request()])
    with pytest.raises(QuotaRefused) as caught:
        await storage.quota.reserve(request())
    assert caught.value.key == "quota.exhausted_weekly"
    assert caught.value.params["resets"] == at("2026-03-30 00:00")
    clock.now = at("2026-03-30 00:00")  # Monday: a new week, the same month
    await reserve_all(storage, [request(), request()])
    with pytest.raises(QuotaRefused) as caught:
        await storage.quota.reserve(request())
    assert caught.value.key == "quota.exhausted_monthly"
    assert caught.value.params["resets"] == at("2026-04-01 00:00")
    clock.now = at("2026-04-01 00:00")
    assert (await storage.quota.reserve(request())).credits == 1


async def test_a_refund_after_midnight_gives_back_yesterdays_credit(open_storage, clock):
    clock.now = at("2026-03-01 23:59")
    storage = await open_storage(daily=1)
    job = await storage.quota.reserve(request())
    clock.now = at("2026-03-02 00:01")
    assert await storage.quota.refund(job.job_id)
    status = await storage.quota.status(GUILD, 1)
    assert status.periods[0].used == 0  # today untouched, not -1
    clock.now = at("2026-03-01 23:59:30")
    assert (await storage.quota.status(GUILD, 1)).periods[0].used == 0


async def test_role_and_user_overrides(open_storage):
    roles = [RoleQuota(role_id=11, daily=10), RoleQuota(role_id=12, daily=50),
             RoleQuota(role_id=13, weekly=0), RoleQuota(role_id=14, daily=0)]
    storage = await open_storage(daily=5, weekly=100, roles=roles)
    quota = storage.quota
    assert quota.limits_for(()).daily == 5
    assert quota.limits_for((11, 999)).daily == 10
    assert quota.limits_for((11, 12)).daily == 50  # the most generous wins
    assert quota.limits_for((11, 14)).daily == 0  # unlimited is the most generous
    assert quota.limits_for((13,)).weekly == 0 and quota.limits_for((13,)).daily == 5
    await quota.set_limits(GUILD, 1, actor_id=99, daily=2)
    status = await quota.status(GUILD, 1, (12,))
    assert [p.limit for p in status.periods] == [2, 100, 0]  # user over role, per period
    await reserve_all(storage, [request(role_ids=(12,)), request(role_ids=(12,))])
    with pytest.raises(QuotaRefused):
        await quota.reserve(request(role_ids=(12,)))
    await quota.set_limits(GUILD, 1, actor_id=99, weekly=7)  # daily stays 2
    assert [p.limit for p in (await quota.status(GUILD, 1, (12,))).periods] == [2, 7, 0]
    assert await quota.clear_limits(GUILD, 1, actor_id=99)
    assert (await quota.status(GUILD, 1, (12,))).periods[0].limit == 50


async def test_bonus_is_spent_after_the_allowance(open_storage):
    storage = await open_storage(daily=2)
    quota = storage.quota
    assert await quota.grant(GUILD, 1, 3, actor_id=99) == (3, 3)
    first = await quota.reserve(request())
    assert (first.from_allowance, first.from_bonus) == (1, 0)
    mixed = await quota.reserve(request(images=2))
    assert (mixed.from_allowance, mixed.from_bonus) == (1, 1)
    status = await quota.status(GUILD, 1)
    assert status.bonus == 2 and status.allowance_left == 0 and status.available == 2
    with pytest.raises(QuotaRefused) as caught:
        await quota.reserve(request(images=3))
    assert caught.value.params["left"] == 2
    assert (await quota.reserve(request(images=2))).from_bonus == 2
    assert (await quota.status(GUILD, 1)).bonus == 0
    assert await quota.grant(GUILD, 1, -5, actor_id=99) == (0, 0)  # never below zero


async def test_commit_and_refund_are_idempotent(open_storage):
    storage = await open_storage(daily=10)
    quota = storage.quota
    job = await quota.reserve(request(images=4))
    assert await quota.commit(job.job_id, 3, seed=42, predict_time=8.0, cost=0.0112)
    rows = await storage.db.fetchall("SELECT kind, credits, amount FROM ledger ORDER BY id")
    assert [tuple(r) for r in rows] == [("reserve", 4, 4), ("commit", 3, 0), ("refund", 1, -1)]
    assert not await quota.commit(job.job_id, 3)
    assert not await quota.refund(job.job_id)
    assert len(await storage.db.fetchall("SELECT * FROM ledger")) == 3
    assert (await quota.status(GUILD, 1)).periods[0].used == 3
    failed = await quota.reserve(request(images=2))
    assert await quota.refund(failed.job_id, status="timed_out", error="too slow")
    assert not await quota.refund(failed.job_id)
    assert (await quota.status(GUILD, 1)).periods[0].used == 3
    generation = await storage.history.get(failed.job_id)
    assert generation.status == "timed_out" and generation.error == "too slow"
    concurrent = await quota.reserve(request())
    results = await asyncio.gather(*(quota.commit(concurrent.job_id, 1) for _ in range(20)),
                                   *(quota.refund(concurrent.job_id) for _ in range(20)))
    assert results.count(True) == 1


async def test_partial_delivery_gives_bonus_back_first(open_storage):
    storage = await open_storage(daily=2)
    await storage.quota.grant(GUILD, 1, 2, actor_id=99)
    job = await storage.quota.reserve(request(images=4))
    assert (job.from_allowance, job.from_bonus) == (2, 2)
    await storage.quota.commit(job.job_id, 3)
    status = await storage.quota.status(GUILD, 1)
    assert status.periods[0].used == 2 and status.bonus == 1


async def test_jobs_in_flight_and_cooldown(open_storage, clock):
    storage = await open_storage(daily=0, per_user_concurrent=2, cooldown_seconds=0)
    quota = storage.quota
    first, _ = await reserve_all(storage, [request(), request()])
    with pytest.raises(QuotaRefused) as caught:
        await quota.reserve(request())
    assert caught.value.key == "quota.concurrent" and caught.value.params["limit"] == 2
    await quota.commit(first.job_id, 1)
    assert (await quota.reserve(request())).credits == 1

    cooled = await open_storage(daily=0, cooldown_seconds=30)
    await cooled.quota.reserve(request(user=5))
    with pytest.raises(QuotaRefused) as caught:
        await cooled.quota.reserve(request(user=5))
    assert caught.value.key == "quota.cooldown"
    assert caught.value.params["until"] == int(clock.now) + 30
    clock.advance(31)
    assert (await cooled.quota.reserve(request(user=5))).credits == 1


async def test_a_banned_member_is_refused_with_the_reason(open_storage):
    storage = await open_storage()
    await storage.moderation.ban(GUILD, 1, actor_id=99, reason="spam")
    with pytest.raises(QuotaRefused) as caught:
        await storage.quota.reserve(request())
    assert caught.value.key == "quota.banned" and "spam" in caught.value.message("en-US")
    assert "spam" in caught.value.message("zh-CN")
    assert (await storage.quota.status(GUILD, 1)).banned
    assert await storage.moderation.unban(GUILD, 1, actor_id=99)
    assert not await storage.moderation.unban(GUILD, 1, actor_id=99)
    assert (await storage.quota.reserve(request())).credits == 1


async def test_reset_clears_the_current_periods(open_storage):
    storage = await open_storage(daily=3, weekly=3)
    quota = storage.quota
    jobs = await reserve_all(storage, [request(), request(), request()])
    await quota.commit(jobs[0].job_id, 1)
    await quota.reset(GUILD, 1, actor_id=99)
    status = await quota.status(GUILD, 1)
    assert [p.used for p in status.periods] == [0, 0, 0]
    await quota.refund(jobs[1].job_id)  # a job from before the reset: no negative usage
    assert [p.used for p in (await quota.status(GUILD, 1)).periods] == [0, 0, 0]
    again = await reserve_all(storage, [request(), request(), request(), request()])
    assert [isinstance(r, QuotaRefused) for r in again] == [False, False, False, True]


async def test_status_for_the_quota_command(open_storage, clock):
    storage = await open_storage(daily=20, weekly=50, guild_daily=100)
    job = await storage.quota.reserve(request(images=3))
    await storage.quota.commit(job.job_id, 3)
    await storage.quota.grant(GUILD, 1, 5, actor_id=99)
    status = await storage.quota.status(GUILD, 1)
    daily, weekly, monthly = status.periods
    assert (daily.used, daily.limit, daily.left) == (3, 20, 17)
    assert daily.resets_at == at("2026-03-05 00:00")
    assert weekly.resets_at == at("2026-03-09 00:00") and monthly.limit == 0
    assert status.bonus == 5 and status.in_flight == 0 and status.cooldown_until is None
    assert status.guild.used == 3 and status.guild.limit == 100


async def test_the_ledger_adds_up(open_storage, clock):
    """Random traffic from many users; then, for every user, the allowance used that the
    engine reports equals the sum of their ledger movements, and each job nets what it
    delivered."""
    storage = await open_storage(daily=15, per_user_concurrent=3)
    quota = storage.quota
    rng = random.Random(7)
    open_jobs: list[tuple[int, int]] = []
    delivered: dict[int, int] = {}
    for _ in range(400):
        action = rng.random()
        user = rng.randrange(6)
        if action < 0.5:
            try:
                job = await quota.reserve(request(user=user, images=rng.randint(1, 4)))
                open_jobs.append((job.job_id, job.credits))
            except QuotaRefused:
                pass
        elif action < 0.85 and open_jobs:
            job_id, credits = open_jobs.pop(rng.randrange(len(open_jobs)))
            if rng.random() < 0.6:
                delivered[job_id] = rng.randint(0, credits)
                await quota.commit(job_id, delivered[job_id])
            else:
                delivered[job_id] = 0
                await quota.refund(job_id, status="canceled")
        elif action < 0.95:
            await quota.grant(GUILD, user, rng.randint(1, 3), actor_id=99)
        else:
            clock.advance(3600 * rng.randint(1, 10))
    for user in range(6):
        status = await quota.status(GUILD, user)
        total = await storage.db.fetchone(
            "SELECT COALESCE(SUM(amount), 0) FROM ledger WHERE guild_id = ? AND user_id = ?"
            " AND source = 'allowance' AND period_at >= ?",
            (GUILD, user, quota.guild_window().start))
        assert status.periods[0].used == total[0]
        assert status.bonus >= 0
    for job_id, count in delivered.items():
        net = await storage.db.fetchone(
            "SELECT SUM(amount) FROM ledger WHERE job_id = ?", (job_id,))
        assert net[0] == count
        assert (await storage.history.get(job_id)).images_delivered == count
    assert len(await storage.history.in_flight()) == len(open_jobs)


async def test_an_abandoned_reservation_is_given_back(open_storage):
    storage = await open_storage(daily=5)
    waiting = [asyncio.ensure_future(storage.quota.reserve(request())) for _ in range(3)]
    await asyncio.sleep(0)  # all three are in one batch now
    waiting[1].cancel()
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert isinstance(results[1], asyncio.CancelledError)
    while storage.quota._cleanup:  # the refund of the abandoned one
        await asyncio.gather(*storage.quota._cleanup)
    status = await storage.quota.status(GUILD, 1)
    assert status.periods[0].used == 2 and status.in_flight == 2


async def test_one_bad_reservation_does_not_fail_the_others_of_its_batch(open_storage):
    storage = await open_storage(daily=5)
    good = [request(user=n) for n in range(1, 6)]
    bad = request(user=2**64)  # a value no engine stores in 64 bits: the batch rolls back
    results = await asyncio.gather(*(storage.quota.reserve(r) for r in [*good[:2], bad,
                                                                        *good[2:]]),
                                   return_exceptions=True)
    assert (isinstance(results[2], Exception) and "64" in str(results[2])) or \
        isinstance(results[2], OverflowError)
    kept = [r for i, r in enumerate(results) if i != 2]
    assert all(not isinstance(r, BaseException) for r in kept)
    assert len({r.job_id for r in kept}) == 5
    rows = await storage.db.fetchall("SELECT user_id FROM ledger WHERE kind = 'reserve'")
    assert sorted(r[0] for r in rows) == [1, 2, 3, 4, 5]


async def test_a_batch_counts_each_server_apart(open_storage):
    storage = await open_storage(daily=5, guild_daily=1, per_user_concurrent=1)
    # the same member in two servers, at once: each server's cap and slots are its own
    results = await reserve_all(storage, [request(user=7, guild=1), request(user=7, guild=2),
                                          request(user=8, guild=1)])
    assert not isinstance(results[0], BaseException)
    assert not isinstance(results[1], BaseException)
    assert isinstance(results[2], QuotaRefused) and results[2].key == "quota.guild_cap"
