"""The local Replicate's second model, `nightmareai/real-esrgan`: it fetches the `image` it is
given (as the real one does, so an unreachable or non-image input fails the prediction),
refuses one larger than its GPU holds, and returns one PNG `scale` times larger, as a single
URL (not a list, as flux-dev-lora returns). Scenarios apply as for the first model: outcome,
duration, manual steps, the file's status, type and body, data URIs, data removed."""

from __future__ import annotations

import base64
import binascii
import io
from typing import TYPE_CHECKING, Any

import aiohttp
from PIL import Image, UnidentifiedImageError

from tests.fakes.predictions import (
    MODEL,
    VERSION,
    FakePrediction,
    Scenario,
    _now,
    input_problems,
    make_image,
)

if TYPE_CHECKING:
    from tests.fakes.replicate_server import FakeReplicate

UPSCALER = "nightmareai/real-esrgan"
UPSCALER_VERSION = "f121d640bd286e1fdc67f9799164c1d5be36ff74576ee11c803ae5b665dd46aa"
MAX_PIXELS = 2_096_704  # what fits in the model's GPU memory
FLUX, UPSCALE = "flux-dev-lora", "real-esrgan"  # also the names of their input schemas
KINDS = {VERSION: FLUX, f"{MODEL}:{VERSION}": FLUX,
         UPSCALER_VERSION: UPSCALE, f"{UPSCALER}:{UPSCALER_VERSION}": UPSCALE}
OUTPUT_SCHEMAS = {  # each version's `Output`, as `GET …/versions/{id}` publishes it
    VERSION: {"type": "array", "items": {"type": "string", "format": "uri"}, "title": "Output"},
    UPSCALER_VERSION: {"type": "string", "format": "uri", "title": "Output"},
}


def kind_of(version: Any) -> str | None:
    """Which model a create's `version` names (`id` or `owner/name:id`), None if none."""
    return KINDS.get(version) if isinstance(version, str) else None


def problems_of(kind: str, data: Any) -> list[tuple[str, str, str]]:
    """What the model of `kind` says of a bad input, in Replicate's words."""
    return upscaler_problems(data) if kind == UPSCALE else input_problems(data)


def upscaler_problems(data: Any) -> list[tuple[str, str, str]]:
    if not isinstance(data, dict):
        return [("required", "input", "input is required")]
    problems = [] if "image" in data else [("required", "input", "image is required")]
    for name, value in data.items():
        field = f"input.{name}"
        if name == "image":
            if not isinstance(value, str):
                problems.append(("invalid_type", field, "Invalid type. Expected: string"))
        elif name == "scale":
            if isinstance(value, bool) or not isinstance(value, int | float):
                problems.append(("invalid_type", field, "Invalid type. Expected: number"))
            elif not 0 <= value <= 10:
                bound = "greater than or equal to 0" if value < 0 else \
                    "less than or equal to 10"
                problems.append(("number_gte" if value < 0 else "number_lte", field,
                                 f"Must be {bound}"))
        elif name == "face_enhance":
            if not isinstance(value, bool):
                problems.append(("invalid_type", field, "Invalid type. Expected: boolean"))
        else:
            problems.append(("additional_property_not_allowed", "input",
                             f"Additional property {name} is not allowed"))
    return problems


async def fetch(url: str) -> tuple[bytes | None, str]:
    """The input image's bytes (None, and why, when they cannot be had)."""
    if url.startswith("data:"):
        try:
            return base64.b64decode(url.split(",", 1)[1], validate=True), ""
        except (IndexError, binascii.Error):
            return None, "invalid data URI"
    try:
        async with aiohttp.ClientSession() as session, session.get(url) as resp:
            if resp.status != 200:
                return None, f"{resp.status} fetching {url}"
            return await resp.read(), ""
    except (aiohttp.ClientError, ValueError) as exc:
        return None, f"{type(exc).__name__} fetching {url}"


async def create(server: FakeReplicate, kind: str, pid: str, data: dict[str, Any],
                 scenario: Scenario, cancel_after: float | None) -> FakePrediction:
    if kind != UPSCALE:
        return FakePrediction(server, pid, data, scenario, cancel_after)
    source, reason = await fetch(str(data["image"]))
    return UpscalePrediction(server, pid, data, scenario, cancel_after, source, reason)


class UpscalePrediction(FakePrediction):
    model, version = UPSCALER, UPSCALER_VERSION

    def __init__(self, server: FakeReplicate, pid: str, data: dict[str, Any],
                 scenario: Scenario, cancel_after: float | None, source: bytes | None,
                 reason: str) -> None:
        self.source, self.reason = source, reason
        super().__init__(server, pid, data, scenario, cancel_after)
        self.steps = scenario.frames

    def advance(self) -> None:
        if self.terminal:
            return
        self.refresh()
        if self.terminal:
            return
        s = self.scenario
        self.step += 1
        if s.outcome in ("stuck", "aborted"):
            if self.step == 1:
                self.status = "processing"
            if s.outcome == "aborted" and self.step >= self._last_frame():
                self._end("aborted")
            self._changed()
            return
        if self.step == 1:
            self.status, self.started_at = "processing", _now()
            self._begin()
        elif self.step < self._last_frame():
            self.logs += f"\tTile {self.step - 1}/{s.frames}\n"
        elif s.outcome == "succeeded":
            self._upscaled()
            if s.data_removed:
                self.output, self.data_removed = None, True
            self._end("succeeded")
        else:
            self.error = s.error
            self._end("failed")
        self._changed()

    def _image(self) -> Image.Image | None:
        try:
            image = Image.open(io.BytesIO(self.source or b""))
            image.load()
            return image
        except (UnidentifiedImageError, OSError):
            return None

    def _begin(self) -> None:
        """The model's first moments: it reads the image, or fails on it."""
        image = self._image()
        if image is None:
            self.error = f"cannot identify image file {self.reason or 'given as input'}"
            self._end("failed")
            return
        width, height = image.size
        self.logs = f"Input image size: {width}x{height}, scale {self.input.get('scale', 4)}\n"
        if width * height > MAX_PIXELS:
            self.error = (f"Image size ({width}x{height}) is greater than the max size that "
                          f"fits in GPU memory on this hardware, {MAX_PIXELS}")
            self._end("failed")

    def _upscaled(self) -> None:
        s = self.scenario
        image = self._image()
        assert image is not None
        scale = float(self.input.get("scale", 4))
        size = s.image_size or (round(image.width * scale), round(image.height * scale))
        if s.file_body is not None:
            data = s.file_body
        elif s.image_size is not None:  # a large, incompressible result
            data = make_image("png", size, self.seed, noise=True)
        else:
            buffer = io.BytesIO()
            image.convert("RGB").resize(size, Image.Resampling.NEAREST).save(buffer, "PNG")
            data = buffer.getvalue()
        if s.data_uris:
            self.output = [f"data:image/png;base64,{base64.b64encode(data).decode()}"]
            return
        self.server.files[f"{self.id}/output.png"] = (data, s.file_content_type or
                                                      "image/png", s.file_status)
        self.output = [f"{self.server.url}/files/{self.id}/output.png"]

    def to_json(self) -> dict[str, Any]:
        data = super().to_json()
        data["output"] = self.output[0] if self.output else None  # one file, not a list
        return data
