"""What kind of image a blob of bytes really is, whatever its name or header claims; where the
bot may fetch one from; and re-encoding within a size, never decoding more than a bounded
number of pixels."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

# where Discord serves attachments; the bot fetches an input image from nowhere else
DISCORD_CDN_HOSTS = frozenset({"cdn.discordapp.com", "media.discordapp.net"})
MAX_PIXELS = 64_000_000  # a 4× upscale of Flux's largest output is ~16 MP; a bomb is refused


def fetchable(url: str, extra_netlocs: Iterable[str] = ()) -> bool:
    """Whether the bot may download `url`: Discord's CDN over https, or one of `extra_netlocs`
    (`host:port` of a configured Discord API base, e.g. a proxy or the tests' loopback)."""
    try:
        parts = urlsplit(url)
        host, netloc = (parts.hostname or "").lower(), parts.netloc.lower()
    except ValueError:
        return False
    if parts.scheme == "https" and host in DISCORD_CDN_HOSTS and "@" not in netloc:
        return True
    return parts.scheme in ("http", "https") and netloc in {n.lower() for n in extra_netlocs}

EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}


def sniff(data: bytes) -> str | None:
    """The MIME type from the magic bytes, or None when this is not an image we take."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return None


def extension(content_type: str) -> str:
    return EXTENSIONS.get(content_type, "bin")


def dimensions(data: bytes) -> tuple[int, int] | None:
    """Width and height from the header alone (nothing decoded); None if unreadable."""
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None


def _open_bounded(data: bytes):  # type: ignore[no-untyped-def]
    """Open an image, refusing (ValueError) one with more than `MAX_PIXELS` pixels before any
    of it is decoded: a small file can expand to gigabytes."""
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(data))
    if image.width * image.height > MAX_PIXELS:
        image.close()
        raise ValueError(f"{image.width}×{image.height} pixels is more than {MAX_PIXELS}")
    return image


MAX_INPUT_SIDE = 1440  # the model scales img2img inputs down to this anyway


def to_data_uri(data: bytes, max_side: int = MAX_INPUT_SIDE) -> str:
    """An image as a `data:` URI for the model, shrunk to `max_side` when larger.

    Raises ValueError when `data` is not an image Pillow can read.
    """
    import base64
    import io

    from PIL import Image, UnidentifiedImageError

    kind = sniff(data)
    if kind is None:
        raise ValueError("not a PNG, JPEG, WebP or GIF image")
    try:
        with _open_bounded(data) as image:
            image.load()
            if max(image.size) > max_side or kind == "image/gif":
                image.thumbnail((max_side, max_side))
                buffer = io.BytesIO()
                if image.mode in ("RGBA", "LA", "P"):
                    image.convert("RGBA").save(buffer, "PNG")
                    kind = "image/png"
                else:
                    image.convert("RGB").save(buffer, "JPEG", quality=92)
                    kind = "image/jpeg"
                data = buffer.getvalue()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise ValueError(f"unreadable image ({type(exc).__name__})") from exc
    return f"data:{kind};base64,{base64.b64encode(data).decode()}"


@dataclass(frozen=True)
class Fitted:
    """An image made to fit an upload limit: as it was, or re-encoded (and how)."""

    data: bytes
    content_type: str
    reencoded: bool = False
    quality: int | None = None            # the WebP quality it was saved at
    size: tuple[int, int] | None = None   # width × height once shrunk (None: full size)


def fit(data: bytes, max_bytes: int) -> Fitted:
    """The image re-encoded (WebP, lower quality, then smaller) until it is at most
    `max_bytes`; returned as is when it already fits."""
    import io

    from PIL import Image

    kind = sniff(data) or "application/octet-stream"
    if len(data) <= max_bytes:
        return Fitted(data, kind)
    with _open_bounded(data) as original:
        image = original.convert("RGBA" if original.mode in ("RGBA", "LA", "P") else "RGB")
    scale = 1.0
    while True:
        size = (max(1, int(image.width * scale)), max(1, int(image.height * scale)))
        resized = image if scale == 1.0 else image.resize(size, Image.Resampling.LANCZOS)
        for quality in (90, 75, 60, 45):
            buffer = io.BytesIO()
            resized.save(buffer, "WEBP", quality=quality, method=4)
            if buffer.tell() <= max_bytes:
                return Fitted(buffer.getvalue(), "image/webp", True, quality,
                              None if scale == 1.0 else size)
        if scale < 0.05:
            raise ValueError("cannot fit the image")
        scale *= 0.7
