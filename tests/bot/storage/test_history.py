"""History pages, server stats, recent LoRAs, and the jobs a restart must resume."""

from __future__ import annotations

from bot.storage.quota import Interaction
from tests.bot.storage.conftest import GUILD, request


async def test_history_is_newest_first_and_paginated(open_storage, clock):
    storage = await open_storage(daily=0)
    ids = []
    for i in range(7):
        job = await storage.quota.reserve(request(lora=f"owner/lora{i % 3}"))
        ids.append(job.job_id)
        clock.advance(60)
    first = await storage.history.page(GUILD, 1, page=1, per_page=3)
    assert [g.id for g in first.items] == ids[::-1][:3]
    assert (first.page, first.pages, first.total) == (1, 3, 7)
    last = await storage.history.page(GUILD, 1, page=99, per_page=3)
    assert last.page == 3 and [g.id for g in last.items] == [ids[0]]
    assert (await storage.history.page(GUILD, 2)).total == 0
    assert await storage.history.recent_loras(GUILD, 1) == [
        "owner/lora0", "owner/lora2", "owner/lora1"]


async def test_stats_match_the_generations(open_storage, clock):
    storage = await open_storage(daily=0)
    quota = storage.quota
    old = await quota.reserve(request(user=3, images=2))
    await quota.commit(old.job_id, 2, cost=1.0)
    clock.advance(10 * 86400)
    for user, images, outcome in [(1, 4, "ok"), (1, 2, "ok"), (2, 1, "ok"), (2, 1, "fail"),
                                  (3, 3, "timeout")]:
        job = await quota.reserve(request(user=user, images=images))
        if outcome == "ok":
            await quota.commit(job.job_id, images, predict_time=5, cost=0.007)
        else:
            await quota.refund(job.job_id, status="failed" if outcome == "fail" else "timed_out")
    stats = await storage.history.stats(GUILD, days=7)
    assert (stats.generations, stats.images, stats.failures) == (5, 7, 2)
    assert stats.cost == round(3 * 0.007, 6)
    assert stats.top_users == [(1, 6), (2, 1)]
    assert (await storage.history.stats(GUILD, days=30)).images == 9


async def test_jobs_in_flight_carry_what_resuming_needs(open_storage, clock):
    storage = await open_storage(daily=0)
    interaction = Interaction(application_id=77, token="tok-secret", created_at=clock.now,
                              locale="zh-CN")
    queued = await storage.quota.reserve(request(user=1, interaction=interaction))
    running = await storage.quota.reserve(request(user=2))
    done = await storage.quota.reserve(request(user=3))
    await storage.history.mark_running(running.job_id, "pred123")
    await storage.history.set_message(running.job_id, 555)
    await storage.quota.commit(done.job_id, 1)
    clock.advance(120)
    jobs = await storage.history.in_flight()
    assert [j.generation.id for j in jobs] == [queued.job_id, running.job_id]
    first, second = jobs
    assert first.state == "queued" and first.generation.prediction_id is None
    assert (first.interaction_token, first.application_id, first.locale) == (
        "tok-secret", 77, "zh-CN")
    assert first.token_age == 120
    assert second.state == "running" and second.generation.prediction_id == "pred123"
    assert second.generation.message_id == 555 and second.generation.channel_id == 50
    assert second.token_age is None
    await storage.quota.commit(running.job_id, 1)
    assert [j.generation.id for j in await storage.history.in_flight()] == [queued.job_id]
    assert (await storage.history.by_message(555)).id == running.job_id
