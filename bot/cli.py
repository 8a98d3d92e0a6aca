"""`flux-lora-bot run | check-config | generate`: the admin's entry points.

Every failure ends in one clear line and an exit code (1: the work failed, 2: the config or
the command line is wrong), never in a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from bot import __version__
from bot.catalogue import LoraChoice, add_trigger, resolve_lora
from bot.config import Config, ConfigError, default_path, load_config
from bot.errors import UserError
from bot.generation import GenerationResult, generate
from bot.i18n import set_default_locale, t
from bot.images import to_data_uri
from bot.logs import setup_logging
from bot.model import GenerationOptions, validate
from bot.replicate.client import ReplicateClient
from bot.replicate.prediction import Prediction

log = logging.getLogger("bot.cli")

MAX_IMAGE_FILE = 50 * 1024 * 1024


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flux-lora-bot",
        description="A Discord bot for Flux images with a LoRA, through Replicate.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def config_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", metavar="PATH",
                       help="config file (default: $FLUX_BOT_CONFIG or config.toml)")

    run = sub.add_parser("run", help="run the bot")
    config_arg(run)
    run.add_argument("--sync-commands", action="store_true",
                     help="register the slash commands with Discord at start")

    check = sub.add_parser("check-config", help="validate the config and print it, secrets masked")
    config_arg(check)

    gen = sub.add_parser("generate", help="one generation through Replicate, no Discord")
    gen.add_argument("prompt", metavar="PROMPT")
    gen.add_argument("--lora", metavar="REF", help="catalogue name or LoRA reference")
    gen.add_argument("--lora-scale", type=float, metavar="X")
    gen.add_argument("--aspect-ratio", metavar="R")
    gen.add_argument("--num-outputs", type=int, metavar="N")
    gen.add_argument("--seed", type=int, metavar="N")
    gen.add_argument("--steps", type=int, metavar="N")
    gen.add_argument("--guidance", type=float, metavar="X")
    gen.add_argument("--output-format", metavar="F")
    gen.add_argument("--output-quality", type=int, metavar="N")
    gen.add_argument("--image", metavar="PATH_OR_URL", help="input image for image-to-image")
    gen.add_argument("--prompt-strength", type=float, metavar="X")
    gen.add_argument("--out", metavar="DIR", default=".", help="where to save (default: .)")
    config_arg(gen)
    return parser


def _fail(message: str, code: int) -> int:
    print(t("cli.error", None, message=message), file=sys.stderr)
    return code


def _load(path: str | None, *, missing_ok: bool) -> Config:
    config = load_config(path, missing_ok=missing_ok)
    set_default_locale(config.discord.default_locale)
    return config


# -- check-config ---------------------------------------------------------------------------

def cmd_check_config(args: argparse.Namespace) -> int:
    config = _load(args.config, missing_ok=False)
    config.require("discord.token", "replicate.api_token")
    sys.stdout.write(config.masked_toml())
    print(t("cli.config_valid"), file=sys.stderr)
    return 0


# -- run ------------------------------------------------------------------------------------

def cmd_run(args: argparse.Namespace) -> int:
    path = args.config or default_path()
    if args.config is None and not Path(path).exists():
        print(t("cli.config_missing", None, path=path), file=sys.stderr)
    config = _load(args.config, missing_ok=args.config is None)
    config.require("discord.token", "replicate.api_token")
    setup_logging(config.logging.level, config.logging.format, config.secrets())
    from bot.discord_bot import run_bot

    return run_bot(config, sync_commands=args.sync_commands or config.discord.sync_commands)


# -- generate -------------------------------------------------------------------------------

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
    """The command line's options over the config's `[defaults]`, checked like /imagine's."""
    d = config.defaults
    lora: LoraChoice | None = None
    if args.lora:
        lora = resolve_lora(args.lora, _catalogue(config))
    scale = args.lora_scale
    if scale is None:
        scale = lora.scale if lora and lora.scale is not None else d.lora_scale
    prompt = add_trigger(args.prompt, lora.trigger) if lora else args.prompt
    options = GenerationOptions(
        prompt=prompt,
        lora=lora.ref if lora else None,
        lora_scale=scale,
        aspect_ratio=args.aspect_ratio or d.aspect_ratio,
        num_outputs=args.num_outputs if args.num_outputs is not None else d.num_outputs,
        seed=args.seed,
        steps=args.steps if args.steps is not None else d.steps,
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

    bar = ProgressBar()
    created: list[str] = []

    def on_created(prediction: Prediction) -> None:
        created.append(prediction.id)
        log.debug("prediction %s created", prediction.id)

    async with aiohttp.ClientSession() as session:
        client = ReplicateClient.from_settings(session, config.replicate)
        try:
            result = await generate(client, options, on_created=on_created, on_update=bar,
                                    cost_per_second=config.replicate.cost_per_second)
        except asyncio.CancelledError:
            if created:
                await asyncio.shield(client.cancel_quietly(created[0]))
            raise
        finally:
            bar.close()
    return result


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


def cmd_generate(args: argparse.Namespace) -> int:
    config = _load(args.config, missing_ok=args.config is None)
    config.require("replicate.api_token")
    setup_logging("WARNING" if config.logging.level == "INFO" else config.logging.level,
                  config.logging.format, config.secrets())
    try:
        options = build_options(args, config)
        result = asyncio.run(_generate(options, config))
        paths = save_images(result, Path(args.out))
    except UserError as exc:
        detail = getattr(exc, "describe", None)
        if detail is not None:
            log.debug("replicate: %s", detail())
        return _fail(str(exc), 1)
    except KeyboardInterrupt:
        return _fail(t("cli.interrupted"), 130)
    except OSError as exc:  # the output folder could not be written
        return _fail(f"{exc.filename or args.out}: {exc.strerror or exc}", 1)
    for path in paths:
        print(path)
    print(t("cli.saved", None, count=len(paths)), file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    commands = {"run": cmd_run, "check-config": cmd_check_config, "generate": cmd_generate}
    if args.command not in commands:
        parser.print_help(sys.stderr)
        return 2
    try:
        return commands[args.command](args)
    except ConfigError as exc:  # one line per bad key, exit 2, whatever the command
        for line in exc.lines:
            print(line, file=sys.stderr)
        return 2


__all__ = ["build_options", "default_path", "main"]
