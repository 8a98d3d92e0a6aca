"""Fetching a prediction's outputs: every http(s) URL the configured API returned (a relay may
serve files from its own host) and `data:` URIs, all at once, each under a size cap and checked
to really be an image. Images the safety checker dropped are reported, not hidden."""

from __future__ import annotations

import asyncio
import base64
import binascii
from dataclasses import dataclass, field
from urllib.parse import unquote_to_bytes, urlsplit

import aiohttp

from bot.images import MAX_PIXELS, dimensions, extension, sniff
from bot.replicate.client import ReplicateClient
from bot.replicate.errors import (
    AnswerTooLarge,
    OutputError,
    OutputGone,
    OutputNotImage,
    OutputTooLarge,
    ReplicateError,
)
from bot.replicate.prediction import Prediction
from bot.replicate.transport import read_capped

DEFAULT_MAX_BYTES = 50 * 1024 * 1024


@dataclass(frozen=True)
class OutputFile:
    """One delivered image."""

    index: int
    filename: str
    content_type: str
    data: bytes

    @property
    def ext(self) -> str:
        return extension(self.content_type)


@dataclass(frozen=True)
class Outputs:
    """What a finished prediction delivered: files, the ones that could not be fetched, and how
    many the model filtered out (asked for `requested`, listed fewer)."""

    files: list[OutputFile]
    failed: list[OutputError] = field(default_factory=list)
    filtered: int = 0

    @property
    def missing(self) -> int:
        """Images asked for and not delivered, for whatever reason: these are refunded."""
        return self.filtered + len(self.failed)


def _check(data: bytes, claimed: str | None, max_bytes: int) -> str:
    if len(data) > max_bytes:
        raise OutputTooLarge(f"{len(data)} bytes is above {max_bytes}")
    actual = sniff(data)
    claimed = (claimed or "").split(";")[0].strip().lower()
    if actual is None or not (claimed.startswith("image/") or claimed in
                              ("", "application/octet-stream", "binary/octet-stream")):
        raise OutputNotImage(f"{claimed or 'no type'} is not an image")
    size = dimensions(data)
    if size is None:
        raise OutputNotImage(f"an undecodable {actual}")
    if size[0] * size[1] > MAX_PIXELS:  # a few kB can decode to gigabytes
        raise OutputTooLarge(f"{size[0]}×{size[1]} pixels is above {MAX_PIXELS}")
    return actual


def decode_data_uri(uri: str, max_bytes: int) -> tuple[bytes, str]:
    """Bytes and the claimed type of a `data:` URI (base64 or percent-encoded)."""
    header, sep, payload = uri[5:].partition(",")
    if not sep:
        raise OutputNotImage("malformed data: URI")
    if len(payload) > max_bytes * 4 // 3 + 4:
        raise OutputTooLarge(f"data: URI of {len(payload)} characters")
    meta = header.split(";")
    try:
        data = (base64.b64decode(payload, validate=False) if "base64" in meta[1:]
                else unquote_to_bytes(payload))
    except (binascii.Error, ValueError) as exc:
        raise OutputNotImage("undecodable data: URI") from exc
    return data, meta[0]


def _filename(url: str, index: int, content_type: str) -> str:
    name = urlsplit(url).path.rsplit("/", 1)[-1] if not url.startswith("data:") else ""
    stem = name.rsplit(".", 1)[0] if name else ""
    safe = "".join(c for c in stem if c.isalnum() or c in "-_")[:60] or f"out-{index}"
    return f"{safe}.{extension(content_type)}"


async def fetch_output(client: ReplicateClient, index: int, url: str,
                       max_bytes: int = DEFAULT_MAX_BYTES) -> OutputFile:
    """Download one output; raise an `OutputError` that says why it cannot be had."""
    if url.startswith("data:"):
        data, claimed = decode_data_uri(url, max_bytes)
        content_type = _check(data, claimed, max_bytes)
        return OutputFile(index, _filename(url, index, content_type), content_type, data)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OutputError(f"unsupported output URL scheme {parts.scheme!r}")
    # our token goes only to the API's own host (a relay serving files), never elsewhere
    api = urlsplit(client.api_base)
    same_host = (parts.scheme, parts.netloc) == (api.scheme, api.netloc)
    headers = client.auth_headers() if same_host else {}

    async def read(resp: aiohttp.ClientResponse) -> tuple[bytes, str | None]:
        try:
            return await read_capped(resp, max_bytes), resp.headers.get("Content-Type")
        except AnswerTooLarge as exc:
            raise OutputTooLarge(exc.detail) from None

    try:
        data, claimed = await client.send("GET", url, idempotent=True, headers=headers, read=read)
    except OutputError:
        raise
    except ReplicateError as exc:
        if exc.status in (403, 404, 410):
            raise OutputGone(f"{exc.status} for output {index}") from exc
        raise OutputError(exc.describe()) from exc
    content_type = _check(data, claimed, max_bytes)
    return OutputFile(index, _filename(url, index, content_type), content_type, data)


async def download_outputs(client: ReplicateClient, prediction: Prediction, *,
                           requested: int | None = None,
                           max_bytes: int = DEFAULT_MAX_BYTES) -> Outputs:
    """Fetch every output at once. Raise when none could be had; otherwise report the files,
    the failures and the filtered count so the caller refunds exactly what is missing."""
    if prediction.data_removed:
        raise OutputGone("data_removed")
    urls = prediction.output
    filtered = max(0, (requested or len(urls)) - len(urls))
    results = await asyncio.gather(
        *(fetch_output(client, i, url, max_bytes) for i, url in enumerate(urls)),
        return_exceptions=True,
    )
    files = [r for r in results if isinstance(r, OutputFile)]
    failed = [r for r in results if isinstance(r, OutputError)]
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, OutputError):
            raise result
    if not files:
        raise failed[0] if failed else OutputGone("no outputs")
    return Outputs(files=files, failed=failed, filtered=filtered)
