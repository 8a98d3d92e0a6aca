"""Webhooks end to end, with the shipped `wait_seconds = 60`: the local Replicate signs and
pushes each prediction's events to the bot's `[http]` listener, the way the real one does
(shared/reference/replicate-notes.md), and can lose or repeat them. Predictions move only when
a test says so (`Scenario(manual=True)`)."""

from __future__ import annotations

import json
import socket
import time

import aiohttp

from tests.cogs.test_cancel import DEFAULTS, press_cancel, settled, used
from tests.fakes.pushes import signature
from tests.fakes.replicate_server import Scenario


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def pushed_stack(start_stack, reconcile: int = 30, **extra):
    """The bot with webhooks on; its create's hold released (as when a cold boot outlasts
    `wait_seconds`), so what follows is up to the webhooks."""
    port = free_port()
    replicate = {**DEFAULTS["replicate"], "reconcile_seconds": reconcile,
                 "webhook_url": f"http://127.0.0.1:{port}/replicate/webhook",
                 **extra.pop("replicate", {})}
    stack = await start_stack(replicate=replicate, http={"listen": f"127.0.0.1:{port}"},
                              **extra)
    stack.replicate.scenario = Scenario(manual=True)
    return stack


async def long_job(stack, prompt: str = "a castle"):
    sent = await stack.discord.slash("imagine", {"prompt": prompt})
    await stack.replicate.wait_for(lambda: stack.replicate.holding)
    stack.replicate.release_holds()
    await stack.replicate.wait_for(lambda: stack.replicate.pushes.events("start"))
    (prediction,) = stack.replicate.predictions.values()
    return sent, prediction


def polls(stack) -> list:
    return [r for r in stack.replicate.calls("GET", "/predictions/")]


async def post(stack, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    url = stack.config.replicate.webhook_url
    async with aiohttp.ClientSession() as http, http.post(url, data=body,
                                                           headers=headers) as resp:
        return resp.status, await resp.text()


def signed(secret: str, body: bytes, msg_id: str = "msg_forged", at: float | None = None
           ) -> dict[str, str]:
    stamp = str(int(time.time() if at is None else at))
    return {"webhook-id": msg_id, "webhook-timestamp": stamp,
            "webhook-signature": signature(secret, msg_id, stamp, body),
            "Content-Type": "application/json"}


async def test_a_long_prediction_is_finished_by_its_webhook_with_no_polling(start_stack):
    stack = await pushed_stack(start_stack)
    sent, prediction = await long_job(stack)
    create = stack.replicate.creates[0].body
    assert create["webhook"] == stack.config.replicate.webhook_url
    assert create["webhook_events_filter"] == ["start", "output", "logs", "completed"]
    stack.replicate.finish(prediction.id)  # a minute later, say: Replicate pushes the end
    message = await stack.finished(sent)
    assert message["embeds"][0]["title"] == "Done" and len(message["attachments"]) == 1
    assert polls(stack) == []  # no GET between the create and the images
    assert [d.answered for d in stack.replicate.pushes.events("completed")] == [204]
    await settled(stack)
    assert await used(stack) == 1


async def test_progress_comes_from_logs_events(start_stack):
    stack = await pushed_stack(start_stack)
    sent, prediction = await long_job(stack)
    stack.replicate.advance(prediction.id, 2)  # processing, with a progress bar in the logs
    await stack.replicate.wait_for(lambda: stack.replicate.pushes.events("logs"))
    edits = await stack.discord.wait_for(lambda: [
        c for c in stack.discord.calls if c.method == "PATCH" and c.json and
        "Generating" in json.dumps(c.json)])
    assert edits and polls(stack) == []
    stack.replicate.finish(prediction.id)
    assert (await stack.finished(sent))["embeds"][0]["title"] == "Done"


async def test_a_lost_webhook_costs_a_delay_never_the_job(start_stack):
    stack = await pushed_stack(start_stack, reconcile=1)
    stack.replicate.pushes.lose = lambda event, prediction: event in ("completed", "output")
    sent, prediction = await long_job(stack)
    stack.replicate.finish(prediction.id)  # its end is never pushed
    message = await stack.finished(sent)
    assert message["embeds"][0]["title"] == "Done" and len(message["attachments"]) == 1
    assert len(polls(stack)) >= 1  # the reconciler asked the API
    assert not stack.replicate.pushes.events("completed")
    await settled(stack)
    assert await used(stack) == 1


async def test_events_twice_or_late_change_nothing(start_stack):
    stack = await pushed_stack(start_stack)
    stack.replicate.pushes.twice = True  # every delivery retried with the same webhook-id
    sent, prediction = await long_job(stack)
    started = prediction.to_json()  # an early event, to be delivered after the end
    stack.replicate.finish(prediction.id)
    message = await stack.finished(sent)
    await settled(stack)
    late = json.dumps(started).encode()
    assert await post(stack, late, signed(stack.replicate.pushes.secret, late)) == (204, "")
    completed = stack.replicate.pushes.events("completed")
    assert sorted(d.answered for d in completed) == [200, 204]  # the repeat: "already had it"
    assert stack.discord.message_for(sent) == message  # posted once, never moved back
    assert len([c for c in stack.discord.calls if c.files]) == 1  # one upload
    assert await used(stack) == 1


async def test_a_cancel_with_webhooks_on_is_seen_at_replicate(start_stack):
    stack = await pushed_stack(start_stack)
    sent, prediction = await long_job(stack)
    await press_cancel(stack, sent)
    message = await stack.finished(sent)
    assert message["embeds"][0]["title"] == "Canceled"
    assert prediction.status == "canceled"
    await settled(stack)
    assert await used(stack) == 0


async def test_forged_stale_or_malformed_pushes_are_refused_and_change_nothing(start_stack):
    stack = await pushed_stack(start_stack)
    sent, prediction = await long_job(stack)
    forged = dict(prediction.to_json(), status="succeeded",
                  output=["https://evil.example/cat.png"])
    body = json.dumps(forged).encode()
    secret = stack.replicate.pushes.secret
    other = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo="
    refused = [
        ({"Content-Type": "application/json"}, 400),  # unsigned
        (signed(other, body), 401),  # someone else's secret
        (signed(secret, body, at=time.time() - 600), 401),  # stale (a replay)
        (signed(secret, body, at=time.time() + 600), 401),  # from the future
        (signed(secret, b'{"id": "x"}'), 401),  # a signature of another body
    ]
    for headers, status in refused:
        got, _ = await post(stack, body, headers)
        assert got == status
    assert (await post(stack, b"not json", signed(secret, b"not json")))[0] == 400
    stack.replicate.finish(prediction.id)
    message = await stack.finished(sent)
    assert message["embeds"][0]["title"] == "Done"
    assert "evil.example" not in json.dumps(stack.discord.calls[-5:], default=str)
    async with aiohttp.ClientSession() as http, http.get(
            f"http://127.0.0.1:{stack.bot.health.port}/metrics") as resp:
        metrics = await resp.text()
    assert 'fluxbot_replicate_webhooks_total{outcome="bad signature"} 2.0' in metrics
    assert 'fluxbot_replicate_webhooks_total{outcome="stale"} 1.0' in metrics
    assert 'fluxbot_replicate_webhooks_total{outcome="accepted"}' in metrics


async def test_the_secret_comes_from_the_api_unless_configured(start_stack):
    stack = await pushed_stack(start_stack)
    assert stack.replicate.calls("GET", "/webhooks/default/secret")
    await stack.stop()
    configured = {"webhook_secret": stack.replicate.pushes.secret}
    stack = await pushed_stack(start_stack, replicate=configured)
    asked = len(stack.replicate.calls("GET", "/webhooks/default/secret"))
    assert asked == 1  # only the first start asked
    sent, prediction = await long_job(stack)
    stack.replicate.finish(prediction.id)
    assert (await stack.finished(sent))["embeds"][0]["title"] == "Done"
    assert polls(stack) == []


async def test_a_push_reaching_another_process_reaches_the_jobs_owner(postgres_database,
                                                                      start_stack,
                                                                      discord_fake):
    """Two shard processes behind one public URL that happens to lead to the first: the
    second's job still ends by its webhook (passed on through PostgreSQL), not by polling."""
    from tests.cogs.test_shards import shard
    from tests.fakes.discord_server import OTHER_GUILD_CHANNEL_ID, OTHER_GUILD_ID

    discord_fake.servers.append(OTHER_GUILD_ID)
    ports = free_port(), free_port()
    url = f"http://127.0.0.1:{ports[0]}/replicate/webhook"  # the proxy's one address
    stacks = []
    for number, port in enumerate(ports):
        settings = shard(number, postgres_database)
        settings["replicate"] |= {**DEFAULTS["replicate"], "webhook_url": url}
        stacks.append(await start_stack(http={"listen": f"127.0.0.1:{port}"}, **settings))
    first, second = stacks
    first.replicate.scenario = Scenario(manual=True)
    sent = await first.discord.slash("imagine", {"prompt": "over there"},
                                     channel_id=OTHER_GUILD_CHANNEL_ID)
    await first.replicate.wait_for(lambda: first.replicate.holding)
    first.replicate.release_holds()
    await first.replicate.wait_for(lambda: first.replicate.pushes.events("start"))
    (prediction,) = first.replicate.predictions.values()
    await first.replicate.wait_for(lambda: second.bot.replicate.push.pushed.followed(
        prediction.id))  # the job's owner waits for news
    first.replicate.finish(prediction.id)
    message = await second.finished(sent)
    assert message["embeds"][0]["title"] == "Done" and len(message["attachments"]) == 1
    assert polls(first) == []  # the second process heard it from the first
    assert not first.bot.replicate.push.pushed.followed(prediction.id)
