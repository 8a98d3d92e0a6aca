"""A local Replicate: an aiohttp app that speaks the predictions API the way the real one does
(shared/reference/replicate-notes.md), faults included, so the client is tested against the
protocol rather than against our own assumptions. The official `replicate` package is run
against it too (tests/bot/replicate/test_official_client.py), which keeps it honest.

Each prediction follows a `Scenario`: by default it advances one step per GET (deterministic,
no clock), or, with `duration`, on its own in real time so that `Prefer: wait` can hold.
"""

from __future__ import annotations

import asyncio
import base64
import io
import itertools
import json
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from PIL import Image

from tests.fakes import openapi
from tests.fakes.loopback import LoopbackServer

MODEL = "lucataco/flux-dev-lora"
VERSION = "091495765fa5ef2725a175a57b276ec30dc9d39c22d30410f2ede68a3eab66b3"
TOKEN = "r8_FAKE_0123456789abcdefghijklmnopqrstu"
UPSTREAM = "https://api.replicate.com/v1"
PREFIXES = ("/v1", "/replicate/v1")

ASPECT = {
    "1:1": (1024, 1024), "16:9": (1344, 768), "21:9": (1536, 640), "3:2": (1216, 832),
    "2:3": (832, 1216), "4:5": (896, 1088), "5:4": (1088, 896), "3:4": (896, 1152),
    "4:3": (1152, 896), "9:16": (768, 1344), "9:21": (640, 1536),
}
FORMATS = {"webp": ("WEBP", "image/webp"), "jpg": ("JPEG", "image/jpeg"),
           "png": ("PNG", "image/png")}
# name: (type, low, high, choices)
INPUTS: dict[str, tuple[str, float | None, float | None, tuple[str, ...] | None]] = {
    "prompt": ("string", None, None, None),
    "aspect_ratio": ("string", None, None, tuple(ASPECT)),
    "image": ("uri", None, None, None),
    "prompt_strength": ("number", 0, 1, None),
    "num_outputs": ("integer", 1, 4, None),
    "num_inference_steps": ("integer", 1, 50, None),
    "guidance_scale": ("number", 0, 10, None),
    "seed": ("integer", None, None, None),
    "output_format": ("string", None, None, tuple(FORMATS)),
    "output_quality": ("integer", 0, 100, None),
    "hf_lora": ("string", None, None, None),
    "lora_scale": ("number", 0, 1, None),
    "disable_safety_checker": ("boolean", None, None, None),
}
LORA_FORMS = (  # the model's own checks, as loose as predict.py
    re.compile(r"^[a-zA-Z0-9_-]+/[a-zA-Z0-9_-]+$"),
    re.compile(r"^https?://replicate.delivery/[\w-]+/[\w-]+/trained_model.tar"),
    re.compile(r"^https?://huggingface.co"),
    re.compile(r"^https?://civitai.com/api/download/models/\d+\?type=Model&format=SafeTensor"),
    re.compile(r"\.safetensors$"),
)
NSFW_ALL = "NSFW content detected. Try running it again, or try a different prompt."


@dataclass
class Scenario:
    """How the next prediction(s) behave."""

    outcome: str = "succeeded"  # succeeded | failed | nsfw_all | aborted | stuck
    duration: float | None = None  # seconds to the end in real time; None: one step per GET
    frames: int = 3  # progress-bar updates between the first log lines and the end
    error: str = "CUDA out of memory"
    filtered: tuple[int, ...] = ()  # output indices the safety checker drops
    data_uris: bool = False
    output_while_processing: bool = False  # outputs appear one step before `succeeded`
    file_status: int = 200
    file_content_type: str | None = None  # lie about the files' type
    file_body: bytes | None = None  # serve this instead of the image
    data_removed: bool = False  # the finished prediction already had its data deleted
    image_size: tuple[int, int] | None = None  # default: the aspect ratio's size / 16
    predict_time: float = 7.25
    finish_lag: float | None = None  # time mode: seconds from outputs to `succeeded`
    manual: bool = False  # advances only when the test calls `advance` (a GET does not)
    reported_id: str | None = None  # a hostile relay: the id the answers give


@dataclass
class Fault:
    """Answer the next `times` matching requests wrongly. `kind`: status (with `status`,
    `body`, `headers`), html (an HTML 5xx page), malformed (200 with broken JSON), reset
    (drop the connection), reset_after (do the work, then drop the connection: a create
    whose answer is lost), delay (sleep `delay` seconds, then answer normally)."""

    method: str = "GET"
    path: str = "/predictions"
    kind: str = "status"
    status: int = 503
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    times: int = 1
    suffix: bool = False  # `path` must end the request's path (`/predictions`: the list)

    def matches(self, method: str, path: str) -> bool:
        found = path.endswith(self.path) if self.suffix else self.path in path
        return self.method in (method, "*") and found


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    at: float


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def make_image(fmt: str, size: tuple[int, int], seed: int, quality: int = 80,
               noise: bool = False) -> bytes:
    """Real image bytes, so the bot can decode what it posts."""
    width, height = size
    image = Image.new("RGB", (width, height), ((seed * 37) % 256, (seed * 91) % 256, 128))
    if noise:
        image = Image.frombytes("RGB", (width, height), random.Random(seed).randbytes(
            width * height * 3))
    buffer = io.BytesIO()
    pil_format, _ = FORMATS[fmt]
    image.save(buffer, pil_format, **({} if fmt == "png" else {"quality": max(1, quality)}))
    return buffer.getvalue()


class FakePrediction:
    def __init__(self, server: FakeReplicate, pid: str, data: dict[str, Any],
                 scenario: Scenario, cancel_after: float | None) -> None:
        self.server = server
        self.id = pid
        self.input = data
        self.scenario = scenario
        self.status = "starting"
        self.logs = ""
        self.output: list[str] | None = None
        self.error: str | None = None
        self.created_at = _now()
        self.created_unix = time.time()
        self.started_at: str | None = None
        self.completed_at: str | None = None
        self.metrics: dict[str, float] = {}
        self.data_removed = False
        self.step = 0
        self.bar_done = -1
        self.ready_at: float | None = None  # monotonic: outputs available (or the end)
        self.terminal_at: float | None = None  # monotonic: terminal status reached
        self.cancel_at = time.monotonic() + cancel_after if cancel_after else None
        self.changed = asyncio.Event()
        self.steps = int(data.get("num_inference_steps", 28))
        if data.get("image"):
            strength = float(data.get("prompt_strength", 0.8))
            self.steps = self.steps - int(self.steps - self.steps * strength)
        self.seed = int(data["seed"]) if "seed" in data else random.randrange(65536)
        self.task: asyncio.Task[None] | None = None
        if scenario.duration is not None:
            self.task = asyncio.get_running_loop().create_task(self._run())

    @property
    def terminal(self) -> bool:
        return self.status in ("succeeded", "failed", "canceled", "aborted")

    @property
    def ready(self) -> bool:
        """What `Prefer: wait` waits for: the end, or every output being available."""
        return self.terminal or bool(self.output)

    def _last_frame(self) -> int:
        return 2 + self.scenario.frames + (1 if self.scenario.output_while_processing else 0)

    async def _run(self) -> None:
        delay = (self.scenario.duration or 0) / self._last_frame()
        while not self.terminal:
            lag = self.scenario.finish_lag
            await asyncio.sleep(lag if lag is not None and self.output else delay)
            self.advance()

    def _bar(self, done: int) -> str:
        self.bar_done = done
        pct = done * 100 // self.steps
        filled = "█" * (pct // 10)
        return f"{pct:3d}%|{filled:<10}| {done}/{self.steps} [00:0{done % 10}<00:03,  3.86it/s]\n"

    def refresh(self) -> None:
        """Apply the `Cancel-After` deadline, as Replicate does on its side."""
        if self.cancel_at and not self.terminal and time.monotonic() >= self.cancel_at:
            self._end("canceled" if self.status == "processing" else "aborted")

    def advance(self) -> None:
        if self.terminal:
            return
        self.refresh()
        if self.terminal:
            return
        s = self.scenario
        self.step += 1
        outcome = s.outcome
        lora = self.input.get("hf_lora")
        if lora and not any(form.search(lora) for form in LORA_FORMS):
            outcome = "bad_lora"
        if outcome == "stuck":
            if self.step == 1:
                self.status = "processing"
            self._changed()
            return
        if outcome == "aborted":
            if self.step >= self._last_frame():
                self._end("aborted")
            self._changed()
            return
        if self.step == 1:
            self.status = "processing"
            self.started_at = _now()
            mode = "img2img mode" if self.input.get("image") else "txt2img mode"
            self.logs = f"Using seed: {self.seed}\nPrompt: {self.input['prompt']}\n{mode}\n"
            if lora:
                self.logs += f"Downloading LoRA weights from - HF path: {lora}\n"
            if outcome == "bad_lora":
                self.error = ("Invalid lora, must be either a: HuggingFace path, Replicate "
                              f"model.tar URL, or a URL to a .safetensors file: {lora}")
                self._end("failed")
                return
            self.logs += self._bar(0)
        elif self.step < 2 + s.frames:
            self.logs += self._bar(self.steps * (self.step - 1) // s.frames)
        elif s.output_while_processing and self.output is None:
            self.logs += self._bar(self.steps)
            self._finish_outputs()
        else:
            if self.bar_done != self.steps:
                self.logs += self._bar(self.steps)
            if outcome == "succeeded":
                if self.output is None:
                    self._finish_outputs()
                if not self.output:
                    self.error, self.output = NSFW_ALL, None
                    self._end("failed")
                else:
                    if s.data_removed:
                        self.output, self.data_removed = None, True
                    self._end("succeeded")
            elif outcome == "nsfw_all":
                self.logs += "".join(f"NSFW content detected in image {i}\n"
                                     for i in range(int(self.input.get("num_outputs", 1))))
                self.error = NSFW_ALL
                self._end("failed")
            else:
                self.error = s.error
                self._end("failed")
        self._changed()

    def _finish_outputs(self) -> None:
        s = self.scenario
        fmt = self.input.get("output_format", "webp")
        _, content_type = FORMATS[fmt]
        size = s.image_size or tuple(d // 16 for d in ASPECT[self.input.get("aspect_ratio",
                                                                            "1:1")])
        urls = []
        for i in range(int(self.input.get("num_outputs", 1))):
            if i in s.filtered:
                self.logs += f"NSFW content detected in image {i}\n"
                continue
            data = s.file_body if s.file_body is not None else make_image(
                fmt, size, self.seed + i, int(self.input.get("output_quality", 80)),
                noise=s.image_size is not None)
            name = f"out-{i}.{fmt}"
            if s.data_uris:
                urls.append(f"data:{content_type};base64,{base64.b64encode(data).decode()}")
            else:
                self.server.files[f"{self.id}/{name}"] = (data, s.file_content_type or
                                                          content_type, s.file_status)
                urls.append(f"{self.server.url}/files/{self.id}/{name}")
        self.output = urls

    def _end(self, status: str) -> None:
        self.status = status
        self.completed_at = _now()
        if status in ("succeeded", "failed", "canceled"):
            self.metrics = {"predict_time": self.scenario.predict_time,
                            "total_time": self.scenario.predict_time + 1.5}
        if status in ("canceled", "aborted"):
            self.output = None
        if status == "canceled":
            self.logs = None  # type: ignore[assignment]
        if self.task is not None and self.task is not asyncio.current_task():
            self.task.cancel()
        self._changed()

    def _changed(self) -> None:
        if self.ready_at is None and (self.output or self.terminal):
            self.ready_at = time.monotonic()
        if self.terminal_at is None and self.terminal:
            self.terminal_at = time.monotonic()
        self.changed.set()
        self.changed = asyncio.Event()

    def cancel(self) -> None:
        if not self.terminal:
            self._end("canceled")

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.scenario.reported_id or self.id, "model": MODEL, "version": VERSION,
            "input": self.input,
            "logs": self.logs, "output": self.output, "data_removed": self.data_removed,
            "error": self.error, "status": self.status, "source": "api",
            "created_at": self.created_at,
            "urls": {"get": f"{UPSTREAM}/predictions/{self.id}",
                     "cancel": f"{UPSTREAM}/predictions/{self.id}/cancel",
                     "web": f"https://replicate.com/p/{self.id}",
                     "stream": f"https://stream.replicate.com/v1/files/{self.id}"},
        }
        if self.started_at:
            data["started_at"] = self.started_at
        if self.completed_at:
            data["completed_at"] = self.completed_at
            data["metrics"] = self.metrics
        return data


class FakeReplicate(LoopbackServer):
    """Run with `async with FakeReplicate() as fake:`; `fake.api_base` is the `/v1` root,
    `fake.relay_base` the same API under a relay prefix."""

    def __init__(self, token: str = TOKEN, *, wait_scale: float = 1.0) -> None:
        super().__init__()
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
        app.router.add_get("/files/{pid}/{name}", self._file)
        self.app = app

    async def close(self) -> None:
        for prediction in self.predictions.values():
            if prediction.task:
                prediction.task.cancel()
        self.release_holds()  # a held create would keep the server's shutdown waiting
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
        if not request.path.startswith(PREFIXES):
            return []
        problems = openapi.replicate().problems(request.method, request.path, body,
                                                headers=dict(request.headers),
                                                query=dict(request.query))
        if request.method == "POST" and request.path.endswith("/predictions") and \
                isinstance(body, dict) and isinstance(body.get("input"), dict):
            problems += [f"input.{'.'.join(map(str, e.absolute_path))}: {e.message[:200]}"
                         for e in openapi.model_input().iter_errors(body["input"])]
        return problems

    def _authorised(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.token}"

    def _unauthorised(self) -> web.Response:
        return self._problem(401, "You did not pass a valid authentication token",
                             "Unauthenticated")

    async def _prediction(self, request: web.Request) -> FakePrediction | web.StreamResponse:
        """Record, inject a fault, check the token, find the prediction: each route's start."""
        await self._record(request)
        await self.through_gates(request.method, request.path)
        if (fault := await self._fault(request)) is not None:
            return fault
        if not self._authorised(request):
            return self._unauthorised()
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
        if body.get("version") not in (VERSION, f"{MODEL}:{VERSION}"):
            return self._problem(422, "The specified version does not exist (or perhaps you "
                                 "don't have permission to use it?)",
                                 "Invalid version or not permitted")
        problems = self._validate(body.get("input"))
        if problems:
            return self._invalid(problems)
        if refused := self.document_problems(request, body):
            return self._invalid([("schema", "input", p) for p in refused])
        cancel_after = self._duration(request.headers.get("Cancel-After", ""))
        scenario = self.next_scenarios.pop(0) if self.next_scenarios else \
            self.scenario_for() if self.scenario_for is not None else self.scenario
        pid = f"fake{next(self._ids):04d}" + "q" * 18
        prediction = FakePrediction(self, pid, dict(body["input"]), scenario, cancel_after)
        self.predictions[pid] = prediction
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

    def _validate(self, data: Any) -> list[tuple[str, str, str]]:
        if not isinstance(data, dict):
            return [("required", "input", "input is required")]
        problems = []
        if "prompt" not in data:
            problems.append(("required", "input", "prompt is required"))
        for name, value in data.items():
            spec = INPUTS.get(name)
            field_name = f"input.{name}"
            if spec is None:
                problems.append(("additional_property_not_allowed", "input",
                                 f"Additional property {name} is not allowed"))
                continue
            kind, low, high, choices = spec
            ok_type = {
                "string": isinstance(value, str), "uri": isinstance(value, str),
                "integer": isinstance(value, int) and not isinstance(value, bool),
                "number": isinstance(value, int | float) and not isinstance(value, bool),
                "boolean": isinstance(value, bool),
            }[kind]
            if not ok_type:
                problems.append(("invalid_type", field_name, f"Invalid type. Expected: {kind}"))
            elif choices and value not in choices:
                listed = ", ".join(f'"{c}"' for c in choices)
                problems.append(("enum", field_name,
                                 f"{name} must be one of the following: {listed}"))
            elif low is not None and value < low:
                problems.append(("number_gte", field_name,
                                 f"Must be greater than or equal to {low}"))
            elif high is not None and value > high:
                problems.append(("number_lte", field_name,
                                 f"Must be less than or equal to {high}"))
        return problems

    async def _get(self, request: web.Request) -> web.StreamResponse:
        prediction = await self._prediction(request)
        if not isinstance(prediction, FakePrediction):
            return prediction
        if prediction.scenario.duration is None and not prediction.scenario.manual:
            prediction.advance()
        prediction.refresh()
        return self._json(prediction.to_json())

    async def _list(self, request: web.Request) -> web.StreamResponse:
        """`GET /predictions`: newest first, `created_after`/`created_before` honoured, a
        page at a time; `next` names the upstream host, as the real API does behind a relay."""
        await self._record(request)
        await self.through_gates(request.method, request.path)
        if (fault := await self._fault(request)) is not None:
            return fault
        if not self._authorised(request):
            return self._unauthorised()
        query = request.query

        def instant(name: str) -> float | None:
            value = query.get(name)
            if value is None:
                return None
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()

        after, before = instant("created_after"), instant("created_before")
        found = [p for p in reversed(list(self.predictions.values()))
                 if (after is None or p.created_unix >= after)
                 and (before is None or p.created_unix <= before)]
        start = int(query.get("cursor", "0"))
        page = found[start:start + self.page_size]
        following = None
        if start + self.page_size < len(found):
            params = {k: v for k, v in query.items() if k != "cursor"}
            params["cursor"] = str(start + self.page_size)
            following = f"{UPSTREAM}/predictions?{urlencode(params)}"
        results = []
        for prediction in page:
            item = prediction.to_json()
            item["logs"] = ""  # the list carries no logs (or truncated ones)
            results.append(item)
        return self._json({"next": following, "previous": None, "results": results})

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
        if request.match_info["vid"] != VERSION:
            return self._problem(404, "Not found.")
        schema = {"openapi": "3.0.2", "components": {"schemas": {
            "Output": {"type": "array", "items": {"type": "string", "format": "uri"},
                       "title": "Output"}}}}
        return self._json({"id": VERSION, "created_at": "2024-10-05T00:00:00.000Z",
                           "cog_version": "0.9.25", "openapi_schema": schema})

    async def _account(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        if (fault := await self._fault(request)) is not None:
            return fault
        if not self._authorised(request):
            return self._unauthorised()
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
