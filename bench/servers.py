"""python -m bench.servers: the loopback Discord and the local Replicate in a process of their
own, so that neither the load generator nor the bot pays for them; driven over a small control
API. Prints one JSON line with the addresses, then serves until stdin closes.

Control (JSON): POST /setup {round_trip, wait_scale, push_delay}; POST /imagine {prompt,
duration} sends one /imagine (its prediction will run `duration` seconds); POST /scenarios
{durations}; GET /progress?tag=; GET /report?tag=&replicate=&discord= (since those counts);
GET /readiness?prompts= (when their predictions' outputs were there)."""

from __future__ import annotations

import asyncio
import json
import sys

from aiohttp import web

from bench.scenario import scenario
from tests.fakes.discord_server import FakeDiscord, Sent
from tests.fakes.replicate_server import FakeReplicate


class Posted:
    """When each interaction's images were posted: the uploads indexed as they come (one
    pass over Discord's calls in all, never a scan per job)."""

    def __init__(self, discord: FakeDiscord) -> None:
        self.discord = discord
        self.seen = 0
        self.at: dict[str, float] = {}

    def update(self) -> None:
        calls = self.discord.calls
        for call in calls[self.seen:]:
            if call.files and "/webhooks/" in call.path:
                token = call.path.split("/webhooks/", 1)[1].split("/")[1]
                self.at.setdefault(token, call.at)
        self.seen = len(calls)


class Control:
    def __init__(self, discord: FakeDiscord, replicate: FakeReplicate) -> None:
        self.discord, self.replicate = discord, replicate
        self.sent: dict[str, list[tuple[Sent, str]]] = {}
        self.posted = Posted(discord)
        app = web.Application()
        app.router.add_post("/setup", self.setup)
        app.router.add_post("/imagine", self.imagine)
        app.router.add_post("/scenarios", self.scenarios)
        app.router.add_get("/progress", self.progress)
        app.router.add_get("/report", self.report)
        app.router.add_get("/readiness", self.readiness)
        app.router.add_post("/expect_bot", self.expect_bot)
        app.router.add_get("/identified", self.identified)
        self.app = app

    async def setup(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.discord.round_trip = self.replicate.round_trip = body.get("round_trip", 0.0)
        self.replicate.pushes.delay = body.get("round_trip", 0.0) / 2
        self.replicate.wait_scale = body.get("wait_scale", 1.0)
        return web.json_response({"replicate": len(self.replicate.requests),
                                  "discord": len(self.discord.calls)})

    async def imagine(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.replicate.next_scenarios.append(scenario(body["duration"]))
        tag = body["prompt"].split("-", 1)[0]
        sent = await self.discord.slash("imagine", {"prompt": body["prompt"]})
        self.sent.setdefault(tag, []).append((sent, body["prompt"]))
        return web.json_response({"token": sent.token})

    async def scenarios(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.replicate.next_scenarios += [scenario(d) for d in body["durations"]]
        return web.json_response({})

    def _ended(self, sent: Sent) -> bool:
        refused = sent.callbacks and sent.callbacks[0].json.get("data", {}).get("flags")
        return bool(sent.too_late or refused or sent.token in self.posted.at)

    async def progress(self, request: web.Request) -> web.Response:
        self.posted.update()
        sent = self.sent.get(request.query["tag"], [])
        return web.json_response({"sent": len(sent),
                                  "ended": sum(self._ended(s) for s, _ in sent)})

    async def report(self, request: web.Request) -> web.Response:
        """Per job: outputs available → posted and terminal → posted (ms); the calls each
        side received since the counts given."""
        self.posted.update()
        tag = request.query["tag"]
        by_prompt = {p.input.get("prompt"): p for p in self.replicate.predictions.values()
                     if str(p.input.get("prompt", "")).startswith(tag)}
        from_ready, from_end, answered = [], [], []
        for sent, prompt in self.sent.get(tag, []):
            at, prediction = self.posted.at.get(sent.token), by_prompt.get(prompt)
            if sent.answered_in is not None:
                answered.append(sent.answered_in * 1000)
            if at is None or prediction is None or prediction.ready_at is None:
                continue
            from_ready.append((at - prediction.ready_at) * 1000)
            if prediction.terminal_at is not None:
                from_end.append((at - prediction.terminal_at) * 1000)
        since_r, since_d = int(request.query["replicate"]), int(request.query["discord"])
        requests = self.replicate.requests[since_r:]
        api = sum("/files/" not in r.path for r in requests)
        return web.json_response({
            "jobs": len(self.sent.get(tag, [])), "posted": len(from_ready),
            "from_outputs_ms": from_ready, "from_terminal_ms": from_end,
            "answer_ms": answered,
            "too_late": sum(s.too_late for s, _ in self.sent.get(tag, [])),
            "replicate_calls": api, "downloads": len(requests) - api,
            "discord_calls": len(self.discord.calls) - since_d})

    async def expect_bot(self, request: web.Request) -> web.Response:
        self.discord.identified.clear()
        return web.json_response({})

    async def identified(self, request: web.Request) -> web.Response:
        await asyncio.wait_for(self.discord.identified.wait(), 60)
        return web.json_response({})

    async def readiness(self, request: web.Request) -> web.Response:
        """When the outputs of the predictions of these `prompts` were there."""
        wanted = set(request.query["prompts"].split(","))
        return web.json_response({p.input["prompt"]: p.ready_at
                                  for p in self.replicate.predictions.values()
                                  if p.input.get("prompt") in wanted})


async def serve() -> None:
    async with FakeReplicate(check_documents=False) as replicate, \
            FakeDiscord(check_documents=False) as discord:
        control = Control(discord, replicate)
        runner = web.AppRunner(control.app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        print(json.dumps({"control": f"http://127.0.0.1:{port}",
                          "discord_api": discord.api_base, "gateway": discord.gateway_url,
                          "replicate": replicate.relay_base, "replicate_url": replicate.url,
                          "replicate_api": replicate.api_base}), flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)  # until the bench closes it
        await runner.cleanup()


if __name__ == "__main__":
    from bench.__main__ import more_open_files

    more_open_files()
    asyncio.run(serve())
