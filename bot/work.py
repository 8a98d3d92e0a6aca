"""What a job asks of Replicate, whatever the model: an image from a prompt (`imagine`), an
upscale of a posted image (`upscale`), a LoRA trained from a zip (`train`, a training rather
than a prediction: `Model.destination` says so). The job runner, the quota, the budget,
restart recovery and history treat every kind alike through `Work`; a new model is a new kind
here, not a copy of the runner.

A kind says: the input it sends (under the model's names), how many outputs it expects, how to
make its input unlike any other job's (so a create whose answer was lost is found again in the
account's list), what it charges for what was posted, and what makes two jobs cost alike.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Protocol

from bot.config import Config
from bot.model import GenerationOptions
from bot.training import TrainOptions
from bot.upscale import MAX_OUTPUT_BYTES, UpscaleOptions

IMAGINE, UPSCALE, TRAIN = "imagine", "upscale", "train"


class Work(Protocol):
    """One kind of job's options (frozen dataclasses: `GenerationOptions`, `UpscaleOptions`)."""

    @property
    def kind(self) -> str: ...

    @property
    def outputs(self) -> int:
        """Files the prediction is expected to return (fewer: the rest were filtered)."""

    @property
    def input_image(self) -> str | None:
        """An http(s) image the model will fetch: checked by the bot first."""

    @property
    def unique_input(self) -> bool:
        """Whether `unique` makes the input unlike every other job's. When it cannot (an
        upscale has no seed), a lookup also matches the image and skips predictions another
        job already owns."""

    def api_input(self) -> dict[str, Any]: ...

    def unique(self, rand: random.Random) -> Work: ...

    def to_dict(self) -> dict[str, Any]: ...

    def charge(self, posted: int) -> int:
        """Credits kept when `posted` outputs were posted (the rest are refunded)."""

    def shape(self) -> tuple[Any, ...]:
        """What makes two jobs of this kind take alike long (the budget's estimates)."""

    def work_units(self) -> float:
        """What a predict time grows with, to scale a rate from jobs of another shape."""

    def default_seconds(self) -> float:
        """A predict time to expect before there is any history."""

    def check_size(self, width: int, height: int) -> None:
        """Raise `OptionError` when the input image is one the model cannot take."""


@dataclass(frozen=True)
class Model:
    """A Replicate model version and what it costs, for one kind of job."""

    ref: str                      # owner/name:version
    cost_per_second: float = 0.0  # dollars per second of `metrics.predict_time`
    max_output_bytes: int = 50 * 1024 * 1024  # one output file, downloaded
    destination: str | None = None  # a trainer's: the model its trainings add versions to
    timeout_seconds: float | None = None  # None: `replicate.timeout_seconds`

    @property
    def collection(self) -> str:
        """Where its jobs live in the API: `predictions`, or a trainer's `trainings`."""
        return "trainings" if self.destination else "predictions"


KINDS: dict[str, type[Any]] = {IMAGINE: GenerationOptions, UPSCALE: UpscaleOptions,
                               TRAIN: TrainOptions}


def work_from(kind: str, options: dict[str, Any]) -> Work:
    """A job's work from what storage kept (`Generation.kind`, `Generation.options`): fields
    it does not know (from another version) are left out."""
    cls = KINDS.get(kind)
    if cls is None:
        raise ValueError(f"unknown kind of job {kind!r}")
    fields = cls.__dataclass_fields__
    return cls(**{k: v for k, v in options.items() if k in fields})  # type: ignore[no-any-return]


def models(config: Config) -> dict[str, Model]:
    """Each kind of job's model and price. The upscaler's and the trainer's are known even
    when they are turned off: a job left in flight is still followed to its end."""
    return {IMAGINE: Model(config.replicate.version_ref, config.replicate.cost_per_second),
            UPSCALE: Model(config.upscale.version_ref, config.upscale.cost_per_second,
                           max_output_bytes=MAX_OUTPUT_BYTES),
            TRAIN: Model(config.training.version_ref, config.training.cost_per_second,
                         destination=config.training.destination or "-/-",
                         timeout_seconds=config.training.timeout_seconds)}
