"""Several processes on one database: reservations stay exact across processes (not tasks),
migrations run once when processes start together, and the account's create pacing holds
whichever process asks."""

from __future__ import annotations

import asyncio

import pytest

from bot.config import QuotaSettings
from bot.storage import Storage
from bot.storage.database import Database
from bot.storage.processes import Processes
from tests.bot.storage.conftest import GUILD
from tests.conftest import Clock
from tests.process import run_together


async def reserve_in_processes(location: str, processes: int, each: int, *, users: int,
                               daily: int, guild_daily: int) -> list[dict]:
    """Start the processes, let each open the database, then release them all at once."""
    args = [str(a) for a in (location, each, users, daily, guild_daily)]
    return await run_together([["tests.bot.storage.reserver", *args]] * processes)


async def test_one_member_across_four_processes_is_exact(database_location: str):
    outputs = await reserve_in_processes(database_location, 4, 40, users=1, daily=25,
                                         guild_daily=0)
    assert all(not o["unexpected"] for o in outputs)
    granted = [job for o in outputs for job in o["granted"]]
    assert len(granted) == 25 and len(set(granted)) == 25  # exact, each job id once
    assert {key for o in outputs for key in o["refused"]} == {"quota.exhausted_daily"}
    storage = await Storage.open(database_location, QuotaSettings(daily=25))
    try:
        status = await storage.quota.status(GUILD, 1)
        assert status.periods[0].used == 25
    finally:
        await storage.close()


async def test_the_server_cap_across_four_processes_is_exact(database_location: str):
    outputs = await reserve_in_processes(database_location, 4, 30, users=50, daily=0,
                                         guild_daily=45)
    assert all(not o["unexpected"] for o in outputs)
    assert sum(len(o["granted"]) for o in outputs) == 45
    assert {key for o in outputs for key in o["refused"]} == {"quota.guild_cap"}


async def test_processes_starting_together_migrate_once(database_location: str):
    opened = await asyncio.gather(*(Database.open(database_location) for _ in range(6)))
    try:
        rows = await opened[0].fetchall("SELECT version FROM schema_version ORDER BY version")
        assert [r["version"] for r in rows] == list(range(1, len(rows) + 1))
        assert {await db.schema_version() for db in opened} == {len(rows)}
    finally:
        for db in opened:
            await db.close()


async def test_create_pacing_is_shared_by_every_process(database_location: str):
    """Two processes' worth of connections draw from one bucket: 600 a minute, bursts of 60."""
    clock = Clock(1_000_000.0)
    first, second = [await Database.open(database_location) for _ in range(2)]
    try:
        a, b = Processes(first, clock), Processes(second, clock)
        waits = await asyncio.gather(*((a if i % 2 else b).pace("create", 600, 60)
                                       for i in range(80)))
        assert sorted(waits) == pytest.approx([0.0] * 60 + [0.1 * k for k in range(1, 21)])
        clock.advance(3.0)  # 30 slots come back: 20 owed, so 10 are free at once
        waits = await asyncio.gather(*(a.pace("create", 600, 60) for _ in range(11)))
        assert sorted(waits) == pytest.approx([0.0] * 10 + [0.1])
    finally:
        await first.close()
        await second.close()


async def test_one_process_paces_in_memory_by_the_same_rule():
    from bot.pacing import LocalPacer

    clock = Clock(50.0)
    pacer = LocalPacer(600, 60, clock)
    waits = [await pacer.pace() for _ in range(62)]
    assert waits == pytest.approx([0.0] * 60 + [0.1, 0.2])
    clock.advance(1.2)  # 12 slots back: 2 owed, 10 free
    assert [await pacer.pace() for _ in range(11)] == pytest.approx([0.0] * 10 + [0.1])
