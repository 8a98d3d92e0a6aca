"""`flux-lora-bot generate --upscale N`: each image made is then upscaled by the second model
(`[upscale]`), the admin's way to check that model and its price from a terminal. The same
work (`UpscaleOptions`), checks and client as the U buttons; nothing of Discord."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bot.config import Config
from bot.errors import UserError
from bot.generation import GenerationResult, generate
from bot.i18n import t
from bot.images import dimensions, to_data_uri
from bot.replicate.client import ReplicateClient, Update
from bot.upscale import MODEL_MAX_SCALE, UpscaleOptions, validate_upscale
from bot.work import UPSCALE, models


def check_scale(args: argparse.Namespace, config: Config) -> int | None:
    """`--upscale N` checked before anything is created: within `upscale.max_scale`."""
    scale = getattr(args, "upscale", None)
    if scale is None:
        return None
    limit = min(config.upscale.max_scale, MODEL_MAX_SCALE)
    if not 1 <= scale <= limit:
        raise UserError("cli.upscale_scale", value=scale, limit=limit)
    return int(scale)


def upscale_work(result: GenerationResult, index: int, data: bytes, scale: int,
                 config: Config) -> UpscaleOptions:
    """The upscale of output `index`: from its Replicate URL (valid for an hour, long enough
    here) or, for a data URI output, the bytes themselves."""
    url = result.prediction.output[index] if index < len(result.prediction.output) else ""
    image = url if url.startswith(("https://", "http://")) else to_data_uri(data)
    width, height = dimensions(data) or (0, 0)
    work = UpscaleOptions(image=image, scale=scale, face_enhance=config.upscale.face_enhance,
                          credits=0, width=width, height=height, source_index=index)
    if image.startswith("data:"):  # validate_upscale takes web images only
        work.check_size(width, height)
        return work
    return validate_upscale(work, config.upscale.max_scale)


async def upscale_all(client: ReplicateClient, result: GenerationResult, scale: int,
                      config: Config, on_update: Update | None = None
                      ) -> list[GenerationResult]:
    """Upscale every image of `result`, one after another (as a member would press U)."""
    model = models(config)[UPSCALE]
    done = []
    for file in result.outputs.files:
        work = upscale_work(result, file.index, file.data, scale, config)
        done.append(await generate(client, work, model=model, on_update=on_update))
    return done


def save_upscaled(results: list[GenerationResult], sources: list[int], scale: int,
                  out: Path) -> list[Path]:
    """Write each as `<prediction id>-<index>-<N>x.<ext>`, beside the images it came from."""
    paths = []
    for result, index in zip(results, sources, strict=True):
        stem = "".join(c for c in result.prediction.id
                       if c.isascii() and (c.isalnum() or c in "-_"))[:64] or "upscale"
        for file in result.outputs.files:
            path = out / f"{stem}-{index}-{scale}x.{file.ext}"
            path.write_bytes(file.data)
            paths.append(path)
        if not result.outputs.files:
            print(t("cli.upscale_missing", None, index=index), file=sys.stderr)
    return paths


def print_cost(results: list[GenerationResult], config: Config) -> None:
    seconds = [r.predict_time for r in results if r.predict_time is not None]
    cost = [r.cost for r in results if r.cost is not None]
    if seconds and cost:
        print(t("cli.upscale_cost", None, cost=f"{sum(cost):.4f}", seconds=f"{sum(seconds):.1f}",
                price=config.upscale.cost_per_second), file=sys.stderr)
