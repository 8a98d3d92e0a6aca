"""The local Replicate's trainings: `ostris/flux-dev-lora-trainer` into a destination model of
the account. Like the real API: a create answers at once (`starting`, no `Prefer: wait`), the
trainer fetches its zip (a zip that is not one fails the training), its logs grow a tqdm bar of
steps with the time left, and success gives `output: {version, weights}` with the weights at a
`replicate.delivery/…/trained_model.tar` URL, which flux-dev-lora takes as `hf_lora`.
`GET /trainings` takes no query; trainings are not predictions (`GET /predictions` omits them).
Scenarios apply as for predictions: outcome, error, duration, manual steps, frames."""

from __future__ import annotations

import io
import zipfile
from functools import partial
from typing import TYPE_CHECKING, Any

from aiohttp import web

from tests.fakes.predictions import UPSTREAM, FakePrediction, Scenario, _now
from tests.fakes.upscaler import fetch

if TYPE_CHECKING:
    from tests.fakes.replicate_server import FakeReplicate

TRAINER = "ostris/flux-dev-lora-trainer"
TRAINER_VERSION = "26dce37af90b9d997eeb970d92e47de3064d46c300504ae376c75bef6a9022d2"
DESTINATION = "flux-admin/house-loras"  # the account's model that trainings push to
OUTPUT_SCHEMA = {"type": "object", "title": "TrainingOutput",
                 "properties": {"version": {"type": "string", "title": "Version"},
                                "weights": {"type": "string", "format": "uri",
                                            "title": "Weights"}}}
INPUTS = {"input_images": str, "trigger_word": str, "steps": int, "lora_rank": int,
          "learning_rate": float, "batch_size": int, "resolution": str, "autocaption": bool,
          "autocaption_prefix": str, "caption_dropout_rate": float, "optimizer": str}


def add_routes(app: web.Application, prefix: str, server: FakeReplicate) -> None:
    app.router.add_post(f"{prefix}/models/{{owner}}/{{name}}/versions/{{vid}}/trainings",
                        partial(create, server))
    app.router.add_get(f"{prefix}/trainings", partial(listing, server))
    app.router.add_get(f"{prefix}/trainings/{{pid}}", partial(get, server))
    app.router.add_post(f"{prefix}/trainings/{{pid}}/cancel", partial(cancel, server))
    app.router.add_get(f"{prefix}/models/{{owner}}/{{name}}", partial(model, server))


def input_problems(data: Any) -> list[tuple[str, str, str]]:
    if not isinstance(data, dict):
        return [("required", "input", "input is required")]
    problems = [] if "input_images" in data else \
        [("required", "input", "input_images is required")]
    for name, value in data.items():
        kind = INPUTS.get(name)
        if kind is None:
            problems.append(("additional_property_not_allowed", "input",
                             f"Additional property {name} is not allowed"))
        elif not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            problems.append(("invalid_type", f"input.{name}",
                             f"Invalid type. Expected: {kind.__name__}"))
        elif name == "steps" and not 3 <= value <= 6000:
            problems.append(("number_lte" if value > 6000 else "number_gte", "input.steps",
                             "Must be between 3 and 6000"))
    return problems


async def _start(server: FakeReplicate, request: web.Request, body: Any = None
                 ) -> web.StreamResponse | None:
    await server.through_gates(request.method, request.path, body)
    if (fault := await server._fault(request)) is not None:
        return fault
    if not server._authorised(request):
        return server._unauthorised()
    return None


async def create(server: FakeReplicate, request: web.Request) -> web.StreamResponse:
    body = await server._record(request)
    if (answer := await _start(server, request, body)) is not None:
        return answer
    lost = server._answer_lost(request)
    owner, name, vid = (request.match_info[k] for k in ("owner", "name", "vid"))
    if f"{owner}/{name}" != TRAINER or vid != TRAINER_VERSION:
        return server._problem(404, "The specified version does not exist", "Not found")
    if not isinstance(body, dict) or body.get("destination") not in server.models:
        return server._problem(404, "The specified training destination does not exist",
                               "Invalid destination")
    if problems := input_problems(body.get("input")):
        return server._invalid(problems)
    if refused := server.document_problems(request, body):
        return server._invalid([("schema", "", p) for p in refused])
    scenario = server.next_scenarios.pop(0) if server.next_scenarios else server.scenario
    tid = f"train{len(server.predictions) + 1:04d}" + "t" * 17
    source, reason = await fetch(str(body["input"]["input_images"]))
    training = Training(server, tid, dict(body["input"]), scenario, body["destination"],
                        source, reason)
    server.predictions[tid] = training
    server.pushes.created(training, body)
    if lost:
        assert request.transport is not None
        request.transport.abort()
    return server._json(training.to_json(), 201)


async def _training(server: FakeReplicate, request: web.Request
                    ) -> Training | web.StreamResponse:
    await server._record(request)
    if (answer := await _start(server, request)) is not None:
        return answer
    training = server.predictions.get(request.match_info["pid"])
    if not isinstance(training, Training):
        return server._problem(404, "Not found.")
    return training


async def get(server: FakeReplicate, request: web.Request) -> web.StreamResponse:
    training = await _training(server, request)
    if not isinstance(training, Training):
        return training
    if training.scenario.duration is None and not training.scenario.manual:
        training.advance()
    return server._json(training.to_json())


async def cancel(server: FakeReplicate, request: web.Request) -> web.StreamResponse:
    training = await _training(server, request)
    if not isinstance(training, Training):
        return training
    training.cancel()
    return server._json(training.to_json())


async def listing(server: FakeReplicate, request: web.Request) -> web.StreamResponse:
    await server._record(request)
    if (answer := await _start(server, request)) is not None:
        return answer
    found = [t.to_json() for t in reversed(list(server.predictions.values()))
             if isinstance(t, Training)]
    return server._json({"next": None, "previous": None, "results": found[:100]})


async def model(server: FakeReplicate, request: web.Request) -> web.StreamResponse:
    await server._record(request)
    if (answer := await _start(server, request)) is not None:
        return answer
    owner, name = request.match_info["owner"], request.match_info["name"]
    if f"{owner}/{name}" not in server.models:
        return server._problem(404, "Not found.")
    return server._json({"url": f"https://replicate.com/{owner}/{name}", "owner": owner,
                         "name": name, "description": None, "visibility": "private",
                         "run_count": 0, "latest_version": None})


class Training(FakePrediction):
    model, version = TRAINER, TRAINER_VERSION

    def __init__(self, server: FakeReplicate, tid: str, data: dict[str, Any],
                 scenario: Scenario, destination: str, source: bytes | None,
                 reason: str) -> None:
        self.destination, self.source, self.reason = destination, source, reason
        self.weights: dict[str, str] | None = None
        super().__init__(server, tid, data, scenario, None)
        self.steps = int(data.get("steps", 1000))

    def advance(self) -> None:
        if self.terminal:
            return
        s = self.scenario
        self.step += 1
        if s.outcome == "stuck":
            self.status = "processing"
        elif self.step == 1:
            self.status, self.started_at = "processing", _now()
            self._begin()
        elif self.step < self._last_frame():
            self.logs += self._bar(self.steps * (self.step - 1) // s.frames)
        elif s.outcome == "succeeded":
            self.logs += self._bar(self.steps) + "Saved LoRA to output/flux_train_replicate\n"
            version = f"{self.step:064x}"[-64:]
            self.weights = {"version": f"{self.destination}:{version}",
                            "weights": f"https://replicate.delivery/xezq/{self.id}/"
                                       "trained_model.tar"}
            self._end("succeeded")
        else:
            self.error = s.error
            self._end("failed")
        self._changed()

    def _begin(self) -> None:
        try:
            with zipfile.ZipFile(io.BytesIO(self.source or b"")) as archive:
                count = sum(not i.is_dir() for i in archive.infolist())
        except zipfile.BadZipFile:
            self.error = f"zipfile.BadZipFile: File is not a zip file {self.reason}".strip()
            self._end("failed")
            return
        self.logs = (f"Extracted {count} files from input_images\n"
                     f"Trigger word: {self.input.get('trigger_word', 'TOK')}\n")

    def _bar(self, done: int) -> str:
        self.bar_done = done
        pct = done * 100 // self.steps
        left = max(0, self.steps - done)
        return (f"flux_train_replicate: {pct:3d}%|{'█' * (pct // 10):<10}| {done}/{self.steps}"
                f" [{done // 60:02d}:{done % 60:02d}<{left // 60:02d}:{left % 60:02d},"
                f"  1.00it/s, lr: 4e-04 loss: 3.9e-01]\n")

    def to_json(self) -> dict[str, Any]:
        data = super().to_json()
        data["output"] = self.weights
        data.pop("data_removed", None)
        data["urls"] = {"get": f"{UPSTREAM}/trainings/{self.id}",
                        "cancel": f"{UPSTREAM}/trainings/{self.id}/cancel",
                        "web": f"https://replicate.com/p/{self.id}"}
        return data
