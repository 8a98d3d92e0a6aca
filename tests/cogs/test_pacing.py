"""Account-wide pacing end to end: the local Replicate enforces an account's limits (token
buckets, a tenth of the minute at once) and answers 429 past them, as the real one does."""

from __future__ import annotations

import asyncio

from tests.cogs.test_cancel import settled, used
from tests.fakes.pushes import AccountLimits
from tests.fakes.replicate_server import Scenario

JOBS = 36
LIMITS = {"creates_per_minute": 300, "calls_per_minute": 1200}  # bursts of 30, 120


async def burst(stack) -> list[dict]:
    stack.replicate.scenario = Scenario(frames=2)  # each job polled a few times, too
    jobs = [await stack.discord.slash("imagine", {"prompt": f"castle {n}"})
            for n in range(JOBS)]
    return list(await asyncio.gather(*(stack.finished(s, timeout=60) for s in jobs)))


async def test_a_burst_queues_under_the_accounts_limits_without_a_429(start_stack):
    stack = await start_stack(replicate={"max_concurrent": JOBS, **LIMITS},
                              quota={"daily": 100})
    stack.replicate.limits = limits = AccountLimits(**LIMITS)
    messages = await burst(stack)
    assert [m["embeds"][0]["title"] for m in messages] == ["Done"] * JOBS
    assert limits.throttled == {"create": 0, "call": 0}
    assert limits.admitted["create"] == JOBS and limits.admitted["call"] > 120  # both paced
    assert len(stack.replicate.creates) == JOBS  # nothing tried twice


async def test_without_pacing_the_same_burst_collects_429s_and_costs_no_credit(start_stack):
    stack = await start_stack(replicate={"max_concurrent": JOBS, "creates_per_minute": 0,
                                         "calls_per_minute": 0}, quota={"daily": 100})
    stack.replicate.limits = limits = AccountLimits(**LIMITS)
    messages = await burst(stack)
    assert limits.throttled["create"] > 0  # what pacing spares the account
    done = [m for m in messages if m["embeds"][0]["title"] == "Done"]
    assert len(done) == len(stack.replicate.predictions)  # the rest gave up, uncreated
    await settled(stack)
    assert await used(stack) == len(done)  # and were refunded
