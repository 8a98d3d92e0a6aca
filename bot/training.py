"""A LoRA trained on Replicate (`ostris/flux-dev-lora-trainer` by default) from a zip of images,
as a kind of job (`bot.work`): what it sends the trainer, what it charges, how long it takes.

The zip is checked before anything is paid for, in memory and without extracting anything:
its entries' names (no absolute paths, no `..`, no links), what they are (images the trainer
reads, and the caption `.txt` files it takes beside them; no archive inside the archive), how
many images, and how large it all unpacks (a zip bomb is refused by its declared sizes and by
the bytes actually read, whichever says so first).
"""

from __future__ import annotations

import io
import random
import stat
import zipfile
from dataclasses import asdict, dataclass
from pathlib import PurePosixPath
from typing import Any, ClassVar

from bot.errors import OptionError
from bot.images import sniff

MAX_ZIP = 100 * 1024 * 1024         # the attachment itself
MAX_UNPACKED = 1024 * 1024 * 1024   # everything in it, unpacked
MAX_ENTRY = 50 * 1024 * 1024        # one image
MAX_RATIO = 200                     # unpacked / packed, for any entry of some size
MAX_ENTRIES = 2000
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp"})
CAPTION_SUFFIXES = frozenset({".txt", ".caption"})
ARCHIVE_SUFFIXES = frozenset({".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar",
                              ".zst"})
# before any history: the trainer's start, plus a time per step (an H100)
DEFAULT_START, DEFAULT_PER_STEP = 120.0, 1.2


@dataclass(frozen=True)
class ZipFacts:
    images: int
    captions: int
    unpacked: int


def inspect_zip(data: bytes, *, min_images: int, max_images: int) -> ZipFacts:
    """What the zip holds, or an `OptionError` naming what is wrong with it."""
    if len(data) > MAX_ZIP:
        raise OptionError("training.zip_too_large", limit=MAX_ZIP // 2**20)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        entries = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError):
        raise OptionError("training.not_zip") from None
    if len(entries) > MAX_ENTRIES:
        raise OptionError("training.zip_entries", limit=MAX_ENTRIES)
    images = captions = unpacked = 0
    for entry in entries:
        name = entry.filename
        path = PurePosixPath(name)
        if name.startswith(("/", "\\")) or "\\" in name or ".." in path.parts or \
                (len(name) > 1 and name[1] == ":"):
            raise OptionError("training.zip_path", name=name[:100])
        if stat.S_ISLNK(entry.external_attr >> 16):
            raise OptionError("training.zip_path", name=name[:100])
        if entry.is_dir() or path.parts[0] == "__MACOSX" or path.name.startswith("."):
            continue  # folders and the files macOS adds say nothing to the trainer
        if entry.flag_bits & 0x1:
            raise OptionError("training.zip_encrypted", name=name[:100])
        suffix = path.suffix.lower()
        if suffix in ARCHIVE_SUFFIXES:
            raise OptionError("training.zip_nested", name=name[:100])
        if suffix not in IMAGE_SUFFIXES | CAPTION_SUFFIXES:
            raise OptionError("training.zip_other", name=name[:100])
        unpacked += entry.file_size
        ratio = entry.file_size / max(1, entry.compress_size)
        if entry.file_size > MAX_ENTRY or unpacked > MAX_UNPACKED or \
                (entry.file_size > 1024 * 1024 and ratio > MAX_RATIO):
            raise OptionError("training.zip_bomb")
        if suffix in CAPTION_SUFFIXES:
            captions += 1
            continue
        try:
            with archive.open(entry) as member:  # a few bytes: what it really is
                head = member.read(64)
        except (zipfile.BadZipFile, NotImplementedError, OSError, RuntimeError,
                ValueError):
            raise OptionError("training.zip_image", name=name[:100]) from None
        if sniff(head) not in ("image/png", "image/jpeg", "image/webp"):
            raise OptionError("training.zip_image", name=name[:100])
        images += 1
    if images < min_images:
        raise OptionError("training.too_few", count=images, least=min_images)
    if images > max_images:
        raise OptionError("training.too_many", count=images, limit=max_images)
    return ZipFacts(images, captions, unpacked)


@dataclass(frozen=True)
class TrainOptions:
    """One training: of the zip at `images` (the posted attachment), into LoRA `name`."""

    name: str
    trigger: str
    images: str
    steps: int = 1000
    description: str = ""
    credits: int = 20
    image_count: int = 0

    kind: ClassVar[str] = "train"
    unique_input: ClassVar[bool] = True  # its zip's URL is its own

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def outputs(self) -> int:
        return 1  # the weights

    @property
    def input_image(self) -> str | None:
        return None  # a zip, checked when the command was given

    def api_input(self) -> dict[str, Any]:
        return {"input_images": self.images, "trigger_word": self.trigger,
                "steps": int(self.steps)}

    def unique(self, rand: random.Random) -> TrainOptions:
        return self

    def charge(self, posted: int) -> int:
        return self.credits if posted else 0

    def shape(self) -> tuple[Any, ...]:
        return (int(self.steps),)

    def work_units(self) -> float:
        return max(self.steps / 1000, 0.01)

    def default_seconds(self) -> float:
        return DEFAULT_START + DEFAULT_PER_STEP * self.steps

    def check_size(self, width: int, height: int) -> None:
        return None


def check_training(options: TrainOptions, max_steps: int) -> TrainOptions:
    """The member's options within the admin's bounds and the trainer's."""
    if not options.trigger.strip() or len(options.trigger) > 60 or \
            any(c in options.trigger for c in "\n\r\t"):
        raise OptionError("training.trigger")
    if isinstance(options.steps, bool) or not 3 <= options.steps <= max_steps:
        raise OptionError("training.steps", value=options.steps, limit=max_steps)
    if not options.images.startswith(("https://", "http://")):
        raise OptionError("option.image_url")
    return options
