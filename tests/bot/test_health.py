"""/healthz and /metrics over HTTP, on the running bot."""

from __future__ import annotations

import aiohttp

from tests.fakes.replicate_server import Fault, Scenario


async def get(stack, path: str) -> tuple[int, str]:
    assert stack.bot.health is not None
    async with aiohttp.ClientSession() as session, session.get(
            f"http://127.0.0.1:{stack.bot.health.port}{path}") as resp:
        return resp.status, await resp.text()


async def test_healthz_follows_the_gateway_and_the_database(start_stack):
    stack = await start_stack(http={"listen": "127.0.0.1:0"})
    assert await get(stack, "/healthz") == (200, '{"gateway": true, "database": true}')
    stack.discord.resumed.clear()
    await stack.discord.disconnect()
    await stack.discord.wait_for(lambda: not stack.bot.gateway_up or stack.discord.resumed
                                 .is_set())
    await stack.discord.wait_for(lambda: stack.discord.resumed.is_set())
    await stack.discord.wait_for(lambda: stack.bot.gateway_up)
    assert (await get(stack, "/healthz"))[0] == 200
    await stack.bot.storage.db.connection.close()
    status, body = await get(stack, "/healthz")
    assert status == 503 and '"database": false' in body


async def test_metrics_count_generations_credits_and_replicate_calls(start_stack):
    stack = await start_stack(http={"listen": "127.0.0.1:0"})
    await stack.finished(await stack.discord.slash("imagine", {"prompt": "x",
                                                               "num_outputs": 2}))
    stack.replicate.scenario = Scenario(duration=0.05, outcome="failed")
    stack.replicate.faults.append(Fault("POST", status=429, headers={"Retry-After": "0"}))
    await stack.finished(await stack.discord.slash("imagine", {"prompt": "y"}))
    status, text = await get(stack, "/metrics")
    assert status == 200
    lines = set(text.splitlines())
    assert 'fluxbot_generations_total{kind="imagine",outcome="succeeded"} 1.0' in lines
    assert 'fluxbot_generations_total{kind="imagine",outcome="failed"} 1.0' in lines
    assert "fluxbot_credits_spent_total 2.0" in lines
    assert "fluxbot_credits_refunded_total 1.0" in lines
    assert 'fluxbot_replicate_errors_total{status="429"} 1.0' in lines
    assert "fluxbot_jobs_queued 0.0" in lines and "fluxbot_jobs_in_flight 0.0" in lines
    assert any(line.startswith("fluxbot_event_loop_lag_seconds_count ") for line in lines)
    (trips,) = [line for line in lines if line.startswith("fluxbot_database_trips_total ")]
    assert 0 < float(trips.split()[1]) == stack.bot.storage.db.trips
    assert 'fluxbot_replicate_pacing_wait_seconds_count{kind="create"} 2.0' in lines  # a job each
    assert any(line.startswith('fluxbot_replicate_request_seconds_count{endpoint="predictions",'
                               'method="POST"}') for line in lines)


async def test_healthz_on_postgresql_says_when_the_database_is_away(postgres_database,
                                                                   start_stack):
    import asyncpg

    stack = await start_stack(http={"listen": "127.0.0.1:0"},
                              storage={"database": postgres_database})
    assert await get(stack, "/healthz") == (200, '{"gateway": true, "database": true}')
    server, name = postgres_database.rsplit("/", 1)
    admin = await asyncpg.connect(f"{server}/postgres")
    try:  # the server refuses the bot's database and drops its connections
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                            " WHERE datname = $1", name)
        status, body = await get(stack, "/healthz")
        assert status == 503 and '"database": false' in body
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        assert (await get(stack, "/healthz"))[0] == 200  # and it recovers by itself
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()
