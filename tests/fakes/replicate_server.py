"""A local Replicate: an aiohttp app that speaks the predictions API the way the real one does
(shared/reference/replicate-notes.md), faults included, so the client is tested against the
protocol rather than against our own assumptions. The official `replicate` package is run
against it too (tests/bot/replicate/test_official_client.py), which keeps it honest.

Each prediction follows a `Scenario`: by default it advances one step per GET (deterministic,
no clock), or, with `duration`, on its own in real time so that `Prefer: wait` can hold.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from tests.fakes import openapi, trainer, upscaler
from tests.fakes.listing import page_of
from tests.fakes.loopback import LoopbackServer
from tests.fakes.predictions import (
    MODEL,
    PREFIXES,
    TOKEN,
    UPSTREAM,
    VERSION,
    FakePrediction,
    Fault,
    Recorded,
    Scenario,
    make_image,
)
from tests.fakes.pushes import AccountLimits, Pushes
from tests.fakes.upscaler import UPSCALER, UPSCALER_VERSION

__all__ = ["MODEL", "TOKEN", "UPSCALER", "UPSCALER_VERSION", "VERSION", "FakePrediction",
           "FakeReplicate", "Fault", "Scenario", "make_image"]

class FakeReplicate(LoopbackServer):
    """Run with `async with FakeReplicate() as fake:`; `fake.api_base` is the `/v1` root,
    `fake.relay_base` the same API under a relay prefix."""

    def __init__(self, token: str = TOKEN, *, wait_scale: float = 1.0,
                 check_documents: bool = True) -> None:
        super().__init__()
        self.check_documents = check_documents  # off only for the benchmark
        self.token = token
        self.wait_scale = wait_scale
        self.scenario = Scenario()
        self.next_scenarios: list[Scenario] = []
        self.scenario_for: Callable[[], Scenario] | None = None  # a scenario per create
        self.faults: list[Fault] = []
        self.requests: list[Recorded] = []
        self.predictions: dict[str, FakePrediction] = {}
        self.files: dict[str, tuple[bytes, str, int]] = {}
        self.out_of_credit = False
        self.file_delay = 0.0  # hold each file download this long (to see them overlap)
        self.files_active = 0
        self.files_peak = 0
        self.holding: set[str] = set()  # predictions whose create `Prefer: wait` holds now
        self.schema_problems: list[str] = []  # what the real API's document refuses
        self.refusals_expected = False  # a test that sends what the API refuses on purpose
        self._release = asyncio.Event()  # ends every hold now (as if its time ran out)
        self.page_size = 100
        self.pushes = Pushes(self)  # webhooks, for creates that ask for them
        self.limits: AccountLimits | None = None  # the account's rates, enforced when set
        self.models = {trainer.DESTINATION}  # the account's own models (training targets)
        self._ids = itertools.count(1)
        app = web.Application(client_max_size=32 * 1024 * 1024)
        for prefix in PREFIXES:
            app.router.add_post(f"{prefix}/predictions", self._create)
            app.router.add_get(f"{prefix}/predictions", self._list)
            app.router.add_get(f"{prefix}/predictions/{{pid}}", self._get)
            app.router.add_post(f"{prefix}/predictions/{{pid}}/cancel", self._cancel)
            app.router.add_get(f"{prefix}/models/{{owner}}/{{name}}/versions/{{vid}}",
                               self._version)
            app.router.add_get(f"{prefix}/account", self._account)
            app.router.add_get(f"{prefix}/webhooks/default/secret", self._secret)
            trainer.add_routes(app, prefix, self)
        app.router.add_get("/files/{pid}/{name}", self._file)
        self.app = app

    async def close(self) -> None:
        for prediction in self.predictions.values():
            if prediction.task:
                prediction.task.cancel()
        self.release_holds()  # a held create would keep the server's shutdown waiting
        await self.pushes.close()
        await super().close()

    @property
    def api_base(self) -> str:
        return f"{self.url}/v1"

    @property
    def relay_base(self) -> str:
        return f"{self.url}/replicate/v1"

    # -- what tests look at -----------------------------------------------------------------

    def calls(self, method: str, fragment: str = "/predictions") -> list[Recorded]:
        return [r for r in self.requests if r.method == method and fragment in r.path]

    @property
    def lists(self) -> list[Recorded]:
        """`GET /predictions`: the bot looking for a prediction whose id it never heard."""
        return [r for r in self.requests if r.method == "GET" and r.path.endswith("predictions")]

    @property
    def creates(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST" and r.path.endswith("predictions")]

    # -- plumbing ---------------------------------------------------------------------------

    def _problem(self, status: int, detail: str, title: str | None = None,
                 headers: dict[str, str] | None = None, **extra: Any) -> web.Response:
        body: dict[str, Any] = {"detail": detail, "status": status}
        if title:
            body["title"] = title
        body.update(extra)
        return web.Response(status=status, body=json.dumps(body),
                            headers={"Content-Type": "application/problem+json", **(headers or {})})

    def _json(self, data: Any, status: int = 200, **headers: str) -> web.Response:
        return web.Response(status=status, body=json.dumps(data), headers={
            "Content-Type": "application/json; charset=UTF-8",
            "ratelimit-remaining": "2999", "ratelimit-reset": "1", **headers})

    async def _fault(self, request: web.Request) -> web.StreamResponse | None:
        if self.limits is not None and request.path.startswith(PREFIXES) and \
                not self.limits.admit(AccountLimits.kind_of(request.method, request.path)):
            return self._problem(429, "Request was throttled. Your rate limit resets in ~1s.",
                                 "Request was throttled")
        for fault in self.faults:
            if fault.kind != "reset_after" and fault.matches(request.method, request.path):
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
                if fault.kind == "delay":
                    await asyncio.sleep(fault.delay)
                    return None
                if fault.kind == "reset":
                    assert request.transport is not None
                    request.transport.abort()
                    return web.Response(status=500)
                if fault.kind == "malformed":
                    return web.Response(status=200, body=b'{"id": "x", "status": ',
                                        headers={"Content-Type": "application/json"})
                if fault.kind == "html":
                    return web.Response(status=fault.status, content_type="text/html",
                                        text="<html><body><h1>502 Bad Gateway</h1>"
                                             "<hr>cloudflare</body></html>")
                if fault.status == 429 and fault.body is None:
                    return self._problem(429, "Request was throttled. Your rate limit resets "
                                         "in ~1s.", "Request was throttled", fault.headers)
                if isinstance(fault.body, dict):
                    return self._problem(fault.status, fault.body.get("detail", ""),
                                         fault.body.get("title"), fault.headers)
                return web.Response(status=fault.status, text=str(fault.body or ""),
                                    headers=fault.headers)
        return None

    async def _record(self, request: web.Request) -> Any:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        self.requests.append(Recorded(request.method, request.path, dict(request.headers),
                                      body, time.monotonic()))
        self.touch()
        self.schema_problems += [f"{request.method} {request.path}: {p}"
                                 for p in self.document_problems(request, body)]
        return body

    def document_problems(self, request: web.Request, body: Any) -> list[str]:
        """What Replicate's OpenAPI document, and the model's input schema, say is wrong with
        a request to the API (not to the file host)."""
        if not request.path.startswith(PREFIXES) or not self.check_documents:
            return []
        problems = openapi.replicate().problems(request.method, request.path, body,
                                                headers=dict(request.headers),
                                                query=dict(request.query))
        if request.method == "POST" and request.path.endswith("/predictions") and \
                isinstance(body, dict) and isinstance(body.get("input"), dict) and \
                (kind := upscaler.kind_of(body.get("version"))):
            problems += [f"input.{'.'.join(map(str, e.absolute_path))}: {e.message[:200]}"
                         for e in openapi.model_input(kind).iter_errors(body["input"])]
        return problems

    def _authorised(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.token}"

    def _unauthorised(self) -> web.Response:
        return self._problem(401, "You did not pass a valid authentication token",
                             "Unauthenticated")

    async def _stopped_here(self, request: web.Request) -> web.StreamResponse | None:
        """What answers a request before its handler does (recorded, held at a gate): a
        fault, or a bad token; None when it goes on."""
        await self._record(request)
        await self.through_gates(request.method, request.path)
        if (fault := await self._fault(request)) is not None:
            return fault
        return None if self._authorised(request) else self._unauthorised()

    async def _prediction(self, request: web.Request) -> FakePrediction | web.StreamResponse:
        """Record, inject a fault, check the token, find the prediction: each route's start."""
        if (refused := await self._stopped_here(request)) is not None:
            return refused
        prediction = self.predictions.get(request.match_info["pid"])
        return prediction if prediction is not None else self._problem(404, "Not found.")

    # -- routes -----------------------------------------------------------------------------

    async def _create(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        await self.through_gates(request.method, request.path, body)
        if (fault := await self._fault(request)) is not None:
            return fault
        if not self._authorised(request):
            return self._unauthorised()
        lost = self._answer_lost(request)
        if self.out_of_credit:
            return self._problem(402, "You have insufficient credit to run this model. Go to "
                                 "https://replicate.com/account/billing#billing to purchase "
                                 "credit.", "Insufficient credit")
        if not isinstance(body, dict):
            return self._invalid([("required", "input", "input is required")])
        extra = set(body) - {"version", "input", "webhook", "webhook_events_filter", "stream"}
        if extra:
            return self._invalid([("additional_property_not_allowed", "",
                                   f"Additional property {sorted(extra)[0]} is not allowed")])
        kind = upscaler.kind_of(body.get("version"))
        if kind is None:
            return self._problem(422, "The specified version does not exist (or perhaps you "
                                 "don't have permission to use it?)",
                                 "Invalid version or not permitted")
        if problems := upscaler.problems_of(kind, body.get("input")):
            return self._invalid(problems)
        if refused := self.document_problems(request, body):
            return self._invalid([("schema", "input", p) for p in refused])
        cancel_after = self._duration(request.headers.get("Cancel-After", ""))
        scenario = self.next_scenarios.pop(0) if self.next_scenarios else \
            self.scenario_for() if self.scenario_for is not None else self.scenario
        pid = f"fake{next(self._ids):04d}" + "q" * 18
        prediction = await upscaler.create(self, kind, pid, dict(body["input"]), scenario,
                                           cancel_after)
        self.predictions[pid] = prediction
        self.pushes.created(prediction, body)
        headers: dict[str, str] = {"ratelimit-remaining": "599"}
        wait = re.fullmatch(r"wait(?:=(\d+))?", request.headers.get("Prefer", "").strip())
        if wait:
            seconds = min(int(wait.group(1) or 60), 60)
            headers["Preference-Applied"] = wait.group(0)
            if scenario.duration is not None or scenario.manual:
                await self._hold(prediction, seconds * self.wait_scale)
        if lost:
            assert request.transport is not None
            request.transport.abort()
        return self._json(prediction.to_json(), 201, **headers)

    def _answer_lost(self, request: web.Request) -> bool:
        """A `reset_after` fault: the create happens, its answer never arrives."""
        for fault in self.faults:
            if fault.kind == "reset_after" and fault.matches(request.method, request.path):
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
                return True
        return False

    async def _hold(self, prediction: FakePrediction, seconds: float) -> None:
        """What `Prefer: wait` does: answer once the prediction is ready or time is up."""
        deadline = time.monotonic() + seconds
        self.holding.add(prediction.id)
        self.touch()
        release = self._release
        try:
            while not prediction.ready and time.monotonic() < deadline and \
                    not release.is_set():
                changed = asyncio.ensure_future(prediction.changed.wait())
                released = asyncio.ensure_future(release.wait())
                try:
                    await asyncio.wait({changed, released}, timeout=deadline - time.monotonic(),
                                       return_when=asyncio.FIRST_COMPLETED)
                finally:
                    changed.cancel()
                    released.cancel()
        finally:
            self.holding.discard(prediction.id)
            self.touch()

    def release_holds(self) -> None:
        """End every hold under way, as if its seconds had run out."""
        self._release.set()
        self._release = asyncio.Event()

    def advance(self, prediction_id: str | None = None, steps: int = 1) -> FakePrediction:
        """Move a manual prediction on (the only one, if no id is given)."""
        prediction = self.predictions[prediction_id] if prediction_id else \
            next(iter(self.predictions.values()))
        for _ in range(steps):
            prediction.advance()
        self.touch()
        return prediction

    def finish(self, prediction_id: str | None = None) -> FakePrediction:
        """Run a manual prediction to its end."""
        prediction = self.predictions[prediction_id] if prediction_id else \
            next(iter(self.predictions.values()))
        while not prediction.terminal:
            prediction.advance()
        self.touch()
        return prediction

    @staticmethod
    def _duration(text: str) -> float | None:
        parts = re.findall(r"(\d+)([hms])", text)
        if not parts:
            return None
        return float(sum(int(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts))

    def _invalid(self, problems: list[tuple[str, str, str]]) -> web.Response:
        detail = "".join(f"- {field}: {text}\n" for _, field, text in problems)
        fields = [{"type": kind, "field": field, "description": text}
                  for kind, field, text in problems]
        return self._problem(422, detail, "Input validation failed", invalid_fields=fields)

    async def _get(self, request: web.Request) -> web.StreamResponse:
        prediction = await self._prediction(request)
        if not isinstance(prediction, FakePrediction):
            return prediction
        if prediction.scenario.duration is None and not prediction.scenario.manual:
            prediction.advance()
        prediction.refresh()
        return self._json(prediction.to_json())

    async def _list(self, request: web.Request) -> web.StreamResponse:
        """`GET /predictions` (paged as the real API does: `tests.fakes.listing`)."""
        if (refused := await self._stopped_here(request)) is not None:
            return refused
        predictions = [p for p in self.predictions.values()
                       if not isinstance(p, trainer.Training)]
        return self._json(page_of(predictions, request.query, self.page_size, UPSTREAM))

    async def _cancel(self, request: web.Request) -> web.StreamResponse:
        prediction = await self._prediction(request)
        if not isinstance(prediction, FakePrediction):
            return prediction
        prediction.cancel()
        return self._json(prediction.to_json())

    async def _version(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        if not self._authorised(request):
            return self._unauthorised()
        vid = request.match_info["vid"]
        known = {**upscaler.OUTPUT_SCHEMAS, trainer.TRAINER_VERSION: trainer.OUTPUT_SCHEMA}
        if vid not in known:
            return self._problem(404, "Not found.")
        schema = {"openapi": "3.0.2", "components": {"schemas": {"Output": known[vid]}}}
        return self._json({"id": vid, "created_at": "2024-10-05T00:00:00.000Z",
                           "cog_version": "0.9.25", "openapi_schema": schema})

    async def _secret(self, request: web.Request) -> web.StreamResponse:
        if (refused := await self._stopped_here(request)) is not None:
            return refused
        return self._json({"key": self.pushes.secret})

    async def _account(self, request: web.Request) -> web.StreamResponse:
        if (refused := await self._stopped_here(request)) is not None:
            return refused
        return self._json({"type": "user", "username": "flux-admin", "name": "Flux Admin",
                           "github_url": None})

    async def _file(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        if (fault := await self._fault(request)) is not None:
            return fault
        await self.through_gates(request.method, request.path)
        key = f"{request.match_info['pid']}/{request.match_info['name']}"
        entry = self.files.get(key)
        if entry is None:
            return web.Response(status=404, text="Not Found")
        data, content_type, status = entry
        self.files_active += 1
        self.files_peak = max(self.files_peak, self.files_active)
        self.touch()
        try:
            await asyncio.sleep(self.file_delay)
        finally:
            self.files_active -= 1
        if status != 200:
            return web.Response(status=status, text="Not Found")
        return web.Response(body=data, headers={"Content-Type": content_type,
                                                "Cache-Control": "public,max-age=3600"})
