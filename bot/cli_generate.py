"""`flux-lora-bot generate`: one generation through the same client and the same checks as
/imagine, without Discord; what goes wrong is told for a terminal, naming the key or the URL."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from bot.catalogue import LoraChoice, add_trigger, resolve_lora
from bot.cli_upscale import check_scale, print_cost, save_upscaled, upscale_all
from bot.config import Config
from bot.errors import UserError
from bot.generation import GenerationResult, generate
from bot.i18n import t
from bot.images import to_data_uri
from bot.limits import check_counts, check_length, check_prompt
from bot.logs import setup_logging
from bot.model import GenerationOptions, validate
from bot.replicate.client import ReplicateClient
from bot.replicate.errors import (
    AuthenticationError,
    InsufficientCreditError,
    InvalidInputError,
    NotFoundError,
    RateLimitedError,
    ReplicateError,
    ServerError,
    TransportError,
)
from bot.replicate.prediction import Prediction

log = logging.getLogger("bot.cli")

MAX_IMAGE_FILE = 50 * 1024 * 1024


def add_arguments(gen: argparse.ArgumentParser) -> None:
    gen.add_argument("prompt", metavar="PROMPT", help="what the image should show")
    gen.add_argument("--lora", metavar="REF",
                     help="a [[loras]] name, or any reference the model accepts")
    gen.add_argument("--lora-scale", type=float, metavar="X",
                     help="how strongly the LoRA applies, 0 to 1")
    gen.add_argument("--aspect-ratio", metavar="R", help="1:1, 16:9, 21:9, 3:2, 2:3, 4:5, 5:4, "
                     "3:4, 4:3, 9:16 or 9:21")
    gen.add_argument("--num-outputs", type=int, metavar="N", help="how many images, 1 to 4")
    gen.add_argument("--seed", type=int, metavar="N", help="a seed, to repeat a result")
    gen.add_argument("--steps", type=int, metavar="N", help="inference steps, 1 to 50")
    gen.add_argument("--guidance", type=float, metavar="X",
                     help="how closely to follow the prompt, 0 to 10")
    gen.add_argument("--output-format", metavar="F", help="webp, jpg or png")
    gen.add_argument("--output-quality", type=int, metavar="N",
                     help="image quality, 0 to 100 (not for png)")
    gen.add_argument("--image", metavar="PATH_OR_URL",
                     help="an image to start from (image-to-image)")
    gen.add_argument("--prompt-strength", type=float, metavar="X",
                     help="image-to-image: how much to change the image, 0 to 1")
    gen.add_argument("--upscale", type=int, metavar="N",
                     help="then upscale each image N times larger with [upscale]'s model")
    gen.add_argument("--out", metavar="DIR", default=".",
                     help="the folder the images are saved in (default: .)")


def _catalogue(config: Config) -> list[LoraChoice]:
    return [LoraChoice(ref=e.ref, name=e.name, trigger=e.trigger, scale=e.scale,
                       description=e.description) for e in config.loras]


def _image_input(value: str) -> str:
    if value.startswith(("http://", "https://")):
        return value
    path = Path(value).expanduser()
    try:
        if path.stat().st_size > MAX_IMAGE_FILE:
            raise UserError("cli.image_too_large", path=value, limit=MAX_IMAGE_FILE // 2**20)
        data = path.read_bytes()
    except OSError as exc:
        raise UserError("cli.image_unreadable", path=value,
                        reason=exc.strerror or type(exc).__name__) from None
    try:
        return to_data_uri(data)
    except ValueError:
        raise UserError("cli.image_not_image", path=value) from None


def build_options(args: argparse.Namespace, config: Config) -> GenerationOptions:
    """The command line's options over the config's `[defaults]`, checked as /imagine checks
    them: `[limits]` first, then the model's own bounds."""
    d, limits = config.defaults, config.limits
    prompt = check_prompt(args.prompt, limits)
    lora: LoraChoice | None = None
    if args.lora:
        lora = resolve_lora(args.lora, _catalogue(config),
                            allow_custom=limits.allow_custom_lora)
    scale = args.lora_scale
    if scale is None:
        scale = lora.scale if lora and lora.scale is not None else d.lora_scale
    prompt = add_trigger(prompt, lora.trigger) if lora else prompt
    num_outputs = args.num_outputs if args.num_outputs is not None else d.num_outputs
    steps = args.steps if args.steps is not None else d.steps
    check_counts(num_outputs, steps, args.image, limits)
    check_length(prompt)
    options = GenerationOptions(
        prompt=prompt,
        lora=lora.ref if lora else None,
        lora_scale=scale,
        aspect_ratio=args.aspect_ratio or d.aspect_ratio,
        num_outputs=num_outputs,
        seed=args.seed,
        steps=steps,
        guidance=args.guidance if args.guidance is not None else d.guidance,
        image=_image_input(args.image) if args.image else None,
        prompt_strength=(args.prompt_strength if args.prompt_strength is not None
                         else d.prompt_strength),
        output_format=args.output_format or d.output_format,
        output_quality=(args.output_quality if args.output_quality is not None
                        else d.output_quality),
    )
    return validate(options)


class ProgressBar:
    """One line on stderr, redrawn in place on a terminal, a line per change otherwise."""

    def __init__(self, stream: Any = None, clock: Any = time.monotonic) -> None:
        self.stream = stream or sys.stderr
        self.clock = clock
        self.started = clock()
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.last = ""

    def render(self, prediction: Prediction, width: int = 30) -> str:
        progress = prediction.progress
        status = t(f"cli.status_{prediction.status}") if prediction.status in (
            "starting", "processing", "succeeded", "failed", "canceled", "aborted"
        ) else prediction.status
        line = f"{status:<10}"
        if progress.total:
            done = width * (progress.step or 0) // progress.total
            line += (f" [{'#' * done}{'-' * (width - done)}] {progress.step}/{progress.total}"
                     f" {progress.percent or 0:3d}%")
        return f"{line}  {self.clock() - self.started:5.1f}s"

    def __call__(self, prediction: Prediction) -> None:
        line = self.render(prediction)
        if line == self.last:
            return
        self.last = line
        if self.tty:
            self.stream.write(f"\r{line}\x1b[K")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self.last:
            self.stream.write("\n")
            self.stream.flush()


async def _generate(options: GenerationOptions, config: Config) -> GenerationResult:
    return await _run(config, lambda client, hooks: generate(
        client, options, cost_per_second=config.replicate.cost_per_second, **hooks))


async def _upscale(result: GenerationResult, scale: int, config: Config
                   ) -> list[GenerationResult]:
    try:
        return await _run(config, lambda client, hooks: upscale_all(
            client, result, scale, config, on_update=hooks["on_update"]))
    except NotFoundError:  # name the upscaler's keys, not the image model's
        raise UserError("cli.upscale_not_found", url=config.replicate.api_base,
                        model=config.upscale.model, version=config.upscale.version) from None


async def _run(config: Config, job: Callable[[ReplicateClient, dict[str, Any]],
                                             Awaitable[Any]]) -> Any:
    """`job` with a client and a progress bar; an interrupted prediction is canceled."""
    bar = ProgressBar()
    created: list[str] = []

    def on_created(prediction: Prediction) -> None:
        created.append(prediction.id)
        log.debug("prediction %s created", prediction.id)

    async with aiohttp.ClientSession() as session:
        client = ReplicateClient.from_settings(session, config.replicate)
        try:
            return await job(client, {"on_created": on_created, "on_update": bar})
        except asyncio.CancelledError:
            if created:
                await asyncio.shield(client.cancel_quietly(created[-1]))
            raise
        finally:
            bar.close()


def check_folder(out: Path) -> None:
    """The folder the images go to: there (or creatable) and writable, before anything is
    created and paid for."""
    target = out
    while not target.exists() and target != target.parent:
        target = target.parent
    if target == out and not out.is_dir():
        raise UserError("cli.out_not_folder", path=str(out))
    if not os.access(target, os.W_OK | os.X_OK):
        raise UserError("cli.out_not_writable", path=str(out))


def save_images(result: GenerationResult, out: Path) -> list[Path]:
    """Write each image as `<prediction id>-<index>.<ext>` and say what is missing."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    # the id comes from the API (or a relay): only its safe characters make a file name
    stem = "".join(c for c in result.prediction.id if c.isascii() and (c.isalnum() or c in "-_"))
    for file in result.outputs.files:
        path = out / f"{stem[:64] or 'prediction'}-{file.index}.{file.ext}"
        path.write_bytes(file.data)
        paths.append(path)
    if result.outputs.filtered:
        print(t("cli.filtered", None, count=result.outputs.filtered), file=sys.stderr)
    if result.outputs.failed:
        print(t("cli.failed_downloads", None, count=len(result.outputs.failed)), file=sys.stderr)
    return paths


def terminal_message(error: UserError, config: Config) -> str:
    """A failure as a terminal line: the key or the URL involved, no Discord markdown."""
    api = config.replicate.api_base
    if isinstance(error, AuthenticationError):
        text = t("cli.replicate_token", None, url=api, detail=error.describe())
    elif isinstance(error, InsufficientCreditError):
        text = t("cli.replicate_credit", None, url=api)
    elif isinstance(error, NotFoundError):
        text = t("cli.replicate_not_found", None, url=api, model=config.replicate.model,
                 version=config.replicate.version)
    elif isinstance(error, RateLimitedError):
        text = t("cli.replicate_busy", None, url=api, detail=error.describe())
    elif isinstance(error, TransportError | ServerError):
        text = t("cli.replicate_unreachable", None, url=api, detail=error.describe())
    elif isinstance(error, InvalidInputError):
        text = t("cli.replicate_invalid", None, url=api, detail=error.describe())
    else:
        text = str(error)
    return plain(text)


# [limits] refusals, worded for the admin who set them
LIMIT_KEYS = {"check.prompt_too_long": "cli.limit_prompt", "check.banned_word": "cli.limit_word",
              "check.too_many_outputs": "cli.limit_outputs",
              "check.too_many_steps": "cli.limit_steps", "check.img2img_off": "cli.limit_image",
              "lora.catalogue_only": "cli.limit_lora"}


def plain(text: str) -> str:
    """Discord markdown made terminal text: no backticks, plain bullets."""
    return text.replace("`", "").replace("• ", "  - ")


def cmd_generate(args: argparse.Namespace, config: Config) -> int:
    config.require("replicate.api_token")
    setup_logging("WARNING" if config.logging.level == "INFO" else config.logging.level,
                  config.logging.format, config.secrets())
    try:
        out = Path(args.out)
        check_folder(out)
        options = build_options(args, config)
        scale = check_scale(args, config)
        result = asyncio.run(_generate(options, config))
        paths = save_images(result, out)
        saved = len(paths)
        if scale is not None:
            for path in paths:  # kept and told even if an upscale fails
                print(path)
            upscaled = asyncio.run(_upscale(result, scale, config))
            paths = save_upscaled(upscaled, [f.index for f in result.outputs.files], scale,
                                  out)
            saved += len(paths)
            print_cost(upscaled, config)
    except ReplicateError as exc:
        log.debug("replicate: %s", exc.describe())
        return fail(terminal_message(exc, config), 1)
    except UserError as exc:
        key = LIMIT_KEYS.get(exc.key)
        return fail(plain(t(key, None, **exc.params) if key else str(exc)), 1)
    except KeyboardInterrupt:
        return fail(t("cli.interrupted"), 130)
    except OSError as exc:  # the output folder could not be written
        return fail(f"{exc.filename or args.out}: {exc.strerror or exc}", 1)
    for path in paths:
        print(path)
    print(t("cli.saved", None, count=saved), file=sys.stderr)
    if result.cost is not None and result.predict_time is not None:  # what Replicate bills
        print(t("cli.cost", None, cost=f"{result.cost:.4f}", seconds=f"{result.predict_time:.1f}",
                price=config.replicate.cost_per_second), file=sys.stderr)
    return 0


def fail(message: str, code: int) -> int:
    print(t("cli.error", None, message=message), file=sys.stderr)
    return code
