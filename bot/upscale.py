"""The inputs of the upscaler (`nightmareai/real-esrgan` by default): the image as it was
posted, a scale, face enhancement. Checked here against the model's own bounds before anything
is sent, so that an image the model would refuse (or a result the bot could not post) is
refused locally, with nothing charged.

An upscale keeps what it was made from (the job, which of its images, the details shown on
the result) so that its message can tell the job's story without reading the original.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from bot.errors import OptionError
from bot.images import MAX_PIXELS

MODEL_MAX_SCALE = 10  # the model's own bound on `scale`
# nightmareai/real-esrgan refuses larger inputs on its GPU ("greater than the max size that
# fits in GPU memory on this hardware, 2096704")
MAX_INPUT_PIXELS = 2_096_704
MAX_OUTPUT_BYTES = 100 * 1024 * 1024  # a 4× PNG of a large image is tens of MB
# before any history: a start, plus a time per megapixel made (real-esrgan on a T4)
DEFAULT_START, DEFAULT_PER_MEGAPIXEL = 1.5, 0.4
DETAILS = ("lora", "lora_scale", "seed", "steps", "guidance", "aspect_ratio")


@dataclass(frozen=True)
class UpscaleOptions:
    """One upscale: of `image` (a posted attachment), `width`×`height`, by `scale`."""

    image: str
    scale: int = 2
    face_enhance: bool = False
    credits: int = 1
    width: int = 0
    height: int = 0
    source_job: int | None = None
    source_index: int = 0                      # which image of the job, from 0
    details: dict[str, Any] = field(default_factory=dict)  # the job's, for the result

    kind: ClassVar[str] = "upscale"
    unique_input: ClassVar[bool] = False  # no seed: a lookup matches the image too

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def outputs(self) -> int:
        return 1

    @property
    def input_image(self) -> str | None:
        return self.image if self.image.startswith("http") else None

    @property
    def result_size(self) -> tuple[int, int]:
        return self.width * self.scale, self.height * self.scale

    def api_input(self) -> dict[str, Any]:
        return {"image": self.image, "scale": int(self.scale),
                "face_enhance": bool(self.face_enhance)}

    def unique(self, rand: random.Random) -> UpscaleOptions:
        return self

    def charge(self, posted: int) -> int:
        return self.credits if posted else 0

    def shape(self) -> tuple[Any, ...]:
        return (int(self.scale), bool(self.face_enhance),
                round(self.width * self.height / 1e6, 1))

    def work_units(self) -> float:
        width, height = self.result_size
        return max(width * height / 1e6, 0.1)  # megapixels made

    def default_seconds(self) -> float:
        return DEFAULT_START + DEFAULT_PER_MEGAPIXEL * self.work_units()

    def check_size(self, width: int, height: int) -> None:
        check_dimensions(width, height, self.scale)


def check_dimensions(width: int, height: int, scale: int) -> None:
    """Refuse an image the upscaler cannot take, or a result too large to decode and post."""
    if width * height > MAX_INPUT_PIXELS:
        raise OptionError("upscale.too_large", width=width, height=height,
                          limit=f"{MAX_INPUT_PIXELS:,}")
    if width * height * scale * scale > MAX_PIXELS:
        best = best_scale(width, height, scale)
        raise OptionError("upscale.result_too_large", width=width, height=height,
                          scale=scale, best=best)


def best_scale(width: int, height: int, wanted: int) -> int:
    """The largest scale up to `wanted` whose result the bot can still post (at least 1)."""
    scale = wanted
    while scale > 1 and width * height * scale * scale > MAX_PIXELS:
        scale -= 1
    return scale


def validate_upscale(options: UpscaleOptions, max_scale: int) -> UpscaleOptions:
    """Check `options` against the admin's bound and the model's; return them unchanged."""
    if not options.image.startswith(("https://", "http://")):
        raise OptionError("option.image_url")
    if isinstance(options.scale, bool) or not isinstance(options.scale, int) or \
            not 1 <= options.scale <= min(max_scale, MODEL_MAX_SCALE):
        raise OptionError("upscale.scale", scale=options.scale,
                          limit=min(max_scale, MODEL_MAX_SCALE))
    if options.width and options.height:
        check_dimensions(options.width, options.height, options.scale)
    return options
