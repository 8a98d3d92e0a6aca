"""The inputs of `lucataco/flux-dev-lora`: our option names, the model's API names and bounds.

Everything the bot sends is checked here first, so a value the model would refuse with a 422
(or, for a LoRA, a failed prediction after minutes) is refused locally with a clear message.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, replace
from typing import Any, ClassVar

from bot.errors import OptionError
from bot.lora import check_lora_ref
from bot.text import clean

ASPECT_RATIOS: dict[str, tuple[int, int]] = {
    "1:1": (1024, 1024),
    "16:9": (1344, 768),
    "21:9": (1536, 640),
    "3:2": (1216, 832),
    "2:3": (832, 1216),
    "4:5": (896, 1088),
    "5:4": (1088, 896),
    "3:4": (896, 1152),
    "4:3": (1152, 896),
    "9:16": (768, 1344),
    "9:21": (640, 1536),
}
OUTPUT_FORMATS = ("webp", "jpg", "png")
MAX_SEED = 2**32 - 1
# before any history: a fixed start plus a time per step and image (flux-dev on Replicate)
DEFAULT_START, DEFAULT_PER_STEP = 1.0, 0.12


@dataclass(frozen=True)
class Bound:
    """One numeric input: its API name, the model's range and whether it must be whole."""

    api_name: str
    low: float
    high: float
    integer: bool


BOUNDS: dict[str, Bound] = {
    "lora_scale": Bound("lora_scale", 0, 1, False),
    "num_outputs": Bound("num_outputs", 1, 4, True),
    "seed": Bound("seed", 0, MAX_SEED, True),
    "steps": Bound("num_inference_steps", 1, 50, True),
    "guidance": Bound("guidance_scale", 0, 10, False),
    "prompt_strength": Bound("prompt_strength", 0, 1, False),
    "output_quality": Bound("output_quality", 0, 100, True),
}

# Our option name -> the model's input name, for options that are not numeric bounds.
API_NAMES = {
    "prompt": "prompt",
    "lora": "hf_lora",
    "aspect_ratio": "aspect_ratio",
    "image": "image",
    "output_format": "output_format",
    "disable_safety_checker": "disable_safety_checker",
} | {name: bound.api_name for name, bound in BOUNDS.items()}


@dataclass(frozen=True)
class GenerationOptions:
    """One generation as the member asked for it, in our option names."""

    prompt: str
    lora: str | None = None
    lora_scale: float = 0.8
    aspect_ratio: str = "1:1"
    num_outputs: int = 1
    seed: int | None = None
    steps: int = 28
    guidance: float = 3.5
    image: str | None = None
    prompt_strength: float = 0.8
    output_format: str = "webp"
    output_quality: int = 80
    disable_safety_checker: bool = False

    kind: ClassVar[str] = "imagine"
    unique_input: ClassVar[bool] = True  # its seed, chosen by the bot, tells it apart

    def with_changes(self, **changes: Any) -> GenerationOptions:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    # -- as a kind of job (bot.work.Work) ---------------------------------------------------

    @property
    def outputs(self) -> int:
        return int(self.num_outputs)

    @property
    def input_image(self) -> str | None:
        return self.image if self.image and self.image.startswith("http") else None

    def api_input(self) -> dict[str, Any]:
        return to_api_input(self)

    def unique(self, rand: random.Random) -> GenerationOptions:
        """With a seed of the bot's own choosing when the member gave none: no two jobs then
        send the same input."""
        return self if self.seed is not None else replace(self, seed=rand.randint(0, MAX_SEED))

    def charge(self, posted: int) -> int:
        return posted  # a credit per image posted

    def shape(self) -> tuple[Any, ...]:
        return (int(self.steps), int(self.num_outputs), str(self.aspect_ratio),
                bool(self.image))

    def work_units(self) -> float:
        return float(self.steps * self.num_outputs)  # what a predict time grows with

    def default_seconds(self) -> float:
        return DEFAULT_START + DEFAULT_PER_STEP * self.work_units()

    def check_size(self, width: int, height: int) -> None:
        """The model scales any input image to 1440 px itself."""


def check_number(name: str, value: Any, low: float, high: float, integer: bool) -> None:
    """Raise `OptionError` unless `value` is a finite number in [low, high] (whole if asked)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise OptionError("option.not_number", name=name, value=value)
    if integer and value != int(value):
        raise OptionError("option.not_whole", name=name, value=value)
    if value < low:
        raise OptionError("option.below", name=name, value=value, low=_fmt(low))
    if value > high:
        raise OptionError("option.above", name=name, value=value, high=_fmt(high))


def _fmt(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


def check_image_url(url: str) -> None:
    """The model takes an http(s) URL or a data: URL for image-to-image."""
    if not url.startswith(("https://", "http://", "data:image/")) or len(url) > 20_000_000:
        raise OptionError("option.image_url")


def validate(options: GenerationOptions) -> GenerationOptions:
    """Check `options` against the model's own bounds; return them with the LoRA normalised."""
    prompt = clean(options.prompt)
    if not prompt:
        raise OptionError("option.prompt_empty")
    if options.aspect_ratio not in ASPECT_RATIOS:
        raise OptionError(
            "option.choice", name="aspect_ratio", value=options.aspect_ratio,
            choices=", ".join(ASPECT_RATIOS),
        )
    if options.output_format not in OUTPUT_FORMATS:
        raise OptionError(
            "option.choice", name="output_format", value=options.output_format,
            choices=", ".join(OUTPUT_FORMATS),
        )
    for name, bound in BOUNDS.items():
        value = getattr(options, name)
        if value is not None:
            check_number(name, value, bound.low, bound.high, bound.integer)
    lora = check_lora_ref(options.lora) if options.lora else None
    if options.image is not None:
        check_image_url(options.image)
    return replace(options, prompt=prompt, lora=lora)


def to_api_input(options: GenerationOptions) -> dict[str, Any]:
    """The prediction `input` for `options`, under the model's names (validate first)."""
    data: dict[str, Any] = {
        "prompt": options.prompt,
        "aspect_ratio": options.aspect_ratio,
        "num_outputs": int(options.num_outputs),
        "num_inference_steps": int(options.steps),
        "guidance_scale": float(options.guidance),
        "output_format": options.output_format,
        "output_quality": int(options.output_quality),
    }
    if options.lora:
        data["hf_lora"] = options.lora
        data["lora_scale"] = float(options.lora_scale)
    if options.seed is not None:
        data["seed"] = int(options.seed)
    if options.image:
        data["image"] = options.image
        data["prompt_strength"] = float(options.prompt_strength)
    if options.disable_safety_checker:
        data["disable_safety_checker"] = True
    return data
