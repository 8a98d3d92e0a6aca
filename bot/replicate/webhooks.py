"""Replicate's webhooks, signed with the Standard Webhooks scheme: `webhook-id`,
`webhook-timestamp` and `webhook-signature` (space-separated `v1,<base64>` entries, any of which
may match), an HMAC-SHA256 over `id.timestamp.body` with the key inside the `whsec_` secret.
Pure functions and a small memory of the ids already seen: no aiohttp here."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping

TOLERANCE = 300.0  # seconds a timestamp may be off, either way (a replay window)
MAX_BODY = 1024 * 1024


class WebhookRejected(Exception):
    """Not a webhook from Replicate (or not a fresh one); `reason` names why, in a word."""

    def __init__(self, reason: str, status: int = 401) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


def signing_key(secret: str) -> bytes:
    """The HMAC key inside `whsec_<base64>`; ValueError when it is not one."""
    prefix, _, encoded = secret.strip().partition("_")
    if prefix != "whsec" or not encoded:
        raise ValueError("does not start with whsec_")
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("is not base64 after whsec_") from exc
    if len(key) < 16:
        raise ValueError("is too short to be a signing secret")
    return key


def sign(key: bytes, msg_id: str, timestamp: str, body: bytes) -> str:
    """The `v1,` signature of one message (the local Replicate signs with it too)."""
    content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(key: bytes, headers: Mapping[str, str], body: bytes, now: float) -> str:
    """The message's `webhook-id`, if it is signed with `key` and fresh; else
    `WebhookRejected`."""
    msg_id = headers.get("webhook-id", "")
    stamp = headers.get("webhook-timestamp", "")
    signatures = headers.get("webhook-signature", "")
    if not msg_id or not stamp or not signatures:
        raise WebhookRejected("unsigned", 400)
    if len(body) > MAX_BODY:
        raise WebhookRejected("too large", 413)
    try:
        sent = int(stamp)
    except ValueError:
        raise WebhookRejected("malformed timestamp", 400) from None
    if sent < now - TOLERANCE:
        raise WebhookRejected("stale")
    if sent > now + TOLERANCE:
        raise WebhookRejected("from the future")
    expected = sign(key, msg_id, stamp, body).encode()
    for entry in signatures.split():
        if entry.startswith("v1,") and hmac.compare_digest(entry.encode(), expected):
            return msg_id
    raise WebhookRejected("bad signature")


class SeenIds:
    """The `webhook-id`s handled in the last `ttl` seconds: Replicate retries a delivery it
    thinks failed, with the same id, and a retry must change nothing."""

    def __init__(self, ttl: float = 2 * TOLERANCE, limit: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl, self.limit, self.clock = ttl, limit, clock
        self._seen: OrderedDict[str, float] = OrderedDict()

    def first_time(self, msg_id: str) -> bool:
        """True the first time `msg_id` is seen (and remembers it)."""
        now = self.clock()
        while self._seen and (len(self._seen) >= self.limit or
                              next(iter(self._seen.values())) < now - self.ttl):
            self._seen.popitem(last=False)
        if msg_id in self._seen:
            return False
        self._seen[msg_id] = now
        return True
