"""The local Replicate's predictions: how each one moves (`Scenario`), what goes wrong on
purpose (`Fault`), and the prediction itself, with growing tqdm logs and real images."""

from __future__ import annotations

import asyncio
import base64
import io
import random
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from PIL import Image

if TYPE_CHECKING:
    from tests.fakes.replicate_server import FakeReplicate

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
    model, version = MODEL, VERSION

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
        self.webhook: str | None = None  # where its events are pushed (`Pushes`)
        self.webhook_events: tuple[str, ...] = ()
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
        if self.webhook:
            self.server.pushes.changed(self)

    def cancel(self) -> None:
        if not self.terminal:
            self._end("canceled")

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.scenario.reported_id or self.id, "model": self.model,
            "version": self.version,
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


def input_problems(data: Any) -> list[tuple[str, str, str]]:
    """What Replicate says of a bad input, in its words: (type, field, description)."""
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
