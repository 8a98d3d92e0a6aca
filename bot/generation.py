"""One generation without Discord: options in, images out. The CLI uses it as it is; the bot
wraps it with quota, storage and messages."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from bot.model import GenerationOptions, to_api_input
from bot.replicate.client import ReplicateClient, Update
from bot.replicate.outputs import DEFAULT_MAX_BYTES, Outputs, download_outputs
from bot.replicate.prediction import Prediction


@dataclass(frozen=True)
class GenerationResult:
    prediction: Prediction
    outputs: Outputs
    seed: int | None
    elapsed: float
    cost: float | None

    @property
    def predict_time(self) -> float | None:
        return self.prediction.predict_time


def estimate_cost(prediction: Prediction, cost_per_second: float) -> float | None:
    """Dollars from `metrics.predict_time`; None when either is unknown."""
    seconds = prediction.predict_time
    if seconds is None or cost_per_second <= 0:
        return None
    return round(seconds * cost_per_second, 6)


async def generate(
    client: ReplicateClient,
    options: GenerationOptions,
    *,
    cost_per_second: float = 0.0,
    max_bytes: int = DEFAULT_MAX_BYTES,
    on_created: Update | None = None,
    on_update: Update | None = None,
    resume_id: str | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> GenerationResult:
    """Run `options` (already validated) to the end and fetch the images."""
    started = clock()
    prediction = await client.run(to_api_input(options), resume_id=resume_id,
                                  on_created=on_created, on_update=on_update)
    outputs = await download_outputs(client, prediction, requested=options.num_outputs,
                                     max_bytes=max_bytes)
    seed = prediction.progress.seed if prediction.progress.seed is not None else options.seed
    return GenerationResult(prediction, outputs, seed, clock() - started,
                            estimate_cost(prediction, cost_per_second))
