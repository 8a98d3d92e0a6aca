"""What kind of image a blob of bytes really is, whatever its name or header claims."""

from __future__ import annotations

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
        with Image.open(io.BytesIO(data)) as image:
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
