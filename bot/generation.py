"""One job's prediction without Discord, whatever its kind (`bot.work`): work in, images out.
The CLI uses it as it is; the bot wraps it with quota, storage and messages."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from bot.replicate.client import ReplicateClient, Update
from bot.replicate.outputs import DEFAULT_MAX_BYTES, Outputs, download_outputs
from bot.replicate.prediction import Prediction
from bot.work import Model, Work


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
    work: Work,
    *,
    model: Model | None = None,
    cost_per_second: float = 0.0,
    max_bytes: int = DEFAULT_MAX_BYTES,
    on_created: Update | None = None,
    on_update: Update | None = None,
    resume_id: str | None = None,
    early: bool = False,
    clock: Callable[[], float] = time.monotonic,
) -> GenerationResult:
    """Run `work` (already validated) on `model` (default: the client's, at
    `cost_per_second`) and fetch the images. With `early`, the prediction may still say
    `processing` (its outputs are all there): `finish_generation` confirms it later, so
    images are not held back by one more poll."""
    started = clock()
    if model is not None:
        cost_per_second, max_bytes = model.cost_per_second, model.max_output_bytes
    prediction = await client.run(work.api_input(), resume_id=resume_id,
                                  on_created=on_created, on_update=on_update,
                                  until_outputs=early,
                                  version=model.ref if model is not None else None)
    return await collect(client, work, prediction, started=started,
                         cost_per_second=cost_per_second, max_bytes=max_bytes, clock=clock)


async def collect(client: ReplicateClient, work: Work, prediction: Prediction,
                  *, started: float, cost_per_second: float = 0.0,
                  max_bytes: int = DEFAULT_MAX_BYTES,
                  clock: Callable[[], float] = time.monotonic) -> GenerationResult:
    """Download the images of a prediction whose outputs are all there (a training's
    output is a reference to its weights, which nobody downloads)."""
    outputs = Outputs(files=[]) if work.kind == "train" else \
        await download_outputs(client, prediction, requested=work.outputs,
                               max_bytes=max_bytes)
    seed = prediction.progress.seed if prediction.progress.seed is not None else \
        getattr(work, "seed", None)
    return GenerationResult(prediction, outputs, seed, clock() - started,
                            estimate_cost(prediction, cost_per_second))


async def finish_generation(client: ReplicateClient, result: GenerationResult,
                            cost_per_second: float = 0.0) -> GenerationResult:
    """The same result once the prediction reached its end: with `predict_time` and cost."""
    if result.prediction.terminal:
        return result
    final = await client.finish(result.prediction)
    return replace(result, prediction=final, cost=estimate_cost(final, cost_per_second))
