"""One HTTP call to Replicate's API, with the rules that keep it safe: reads are retried on
429, 5xx, time-outs and connection errors; a create only on 429 or when the request provably
never left (retrying it otherwise could start, and bill, a second prediction); every answer read
under a cap; every call but a create paced under the account's rate."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp

from bot.replicate.errors import AnswerTooLarge, TransportError, error_from_response
from bot.replicate.prediction import Prediction
from bot.replicate.retry import RetryPolicy

log = logging.getLogger("bot.replicate.client")

T = TypeVar("T")
Observer = Callable[[str, str, int | None, float], None]

MAX_ANSWER = 16 * 1024 * 1024  # a prediction is a few kB; a relay padding it is refused


async def _read_json(resp: aiohttp.ClientResponse) -> Any:
    body = await read_capped(resp, MAX_ANSWER)
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise TransportError(f"malformed JSON from {resp.method} ({len(body)} bytes)",
                             status=resp.status) from exc


async def read_capped(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body, or `AnswerTooLarge` as soon as it passes `limit` bytes (never read whole)."""
    if (resp.content_length or 0) > limit:
        raise AnswerTooLarge(f"{resp.content_length} bytes is above {limit}")
    body = bytearray()
    async for chunk in resp.content.iter_chunked(65536):
        body += chunk
        if len(body) > limit:
            raise AnswerTooLarge(f"more than {limit} bytes")
    return bytes(body)


class Transport:
    """The session, the token and the retry rules; `ReplicateClient` speaks the API on it."""

    def __init__(self, session: aiohttp.ClientSession, *, api_token: str, api_base: str,
                 request_timeout: float = 30.0, retry: RetryPolicy | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 rand: Callable[[], float] = random.random, observer: Observer | None = None,
                 pace_calls: Callable[[], Awaitable[float]] | None = None) -> None:
        self.session = session
        self.api_base = api_base.rstrip("/")
        self.request_timeout = request_timeout
        self.retry = retry or RetryPolicy()
        self.clock = clock
        self.sleep = sleep
        self.rand = rand
        self.observer = observer
        self.pace_calls = pace_calls  # the account's rate for every call but a create
        self._token = api_token
        self.stopping = False  # set at shutdown: nothing new is created, not even a retry
        self._stopped = asyncio.Event()

    def url(self, *parts: str) -> str:
        return "/".join((self.api_base, *parts))

    def stop_creating(self) -> None:
        """From now on `create` refuses, and a create waiting to be retried gives up."""
        self.stopping = True
        self._stopped.set()

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"}

    async def send(
        self,
        method: str,
        url: str,
        *,
        idempotent: bool,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
        seconds: float | None = None,
        deadline: float | None = None,
        read: Callable[[aiohttp.ClientResponse], Awaitable[T]] = _read_json,  # type: ignore[assignment]
    ) -> T:
        """One HTTP call with the retry rules above; raises a typed `ReplicateError`."""
        attempts = self.retry.attempts if idempotent else self.retry.create_attempts
        client_timeout = aiohttp.ClientTimeout(
            total=seconds or self.request_timeout, connect=min(10.0, self.request_timeout)
        )
        attempt = 0
        while True:
            attempt += 1
            if idempotent and self.pace_calls is not None:
                wait = await self.pace_calls()
                if wait > 0:
                    await self.sleep(wait)
            started = self.clock()
            status: int | None = None
            try:
                async with self.session.request(
                    method, url, json=json_body, headers=headers, timeout=client_timeout
                ) as resp:
                    status = resp.status
                    if status < 400:
                        return await read(resp)
                    error = error_from_response(status, await resp.content.read(65536),
                                                resp.headers)
                    retryable = status == 429 or (idempotent and (status >= 500 or status == 408))
            except aiohttp.ClientConnectorError as exc:
                # the connection was never made, so the request never left: always safe
                error = TransportError(f"cannot connect ({type(exc).__name__})", sent=False)
                retryable = True
            except (aiohttp.ClientError, TimeoutError) as exc:
                error = TransportError(f"{type(exc).__name__} during {method}")
                retryable = idempotent
            except TransportError as exc:  # malformed body on a 2xx
                error, retryable = exc, idempotent
            finally:
                if self.observer is not None:
                    self.observer(method, url, status, self.clock() - started)
            if not retryable or attempt >= attempts or (self.stopping and not idempotent):
                raise error
            delay = self.retry.delay(attempt, error.retry_after, self.rand)
            if deadline is not None and self.clock() + delay > deadline:
                raise error
            log.warning("replicate %s %s: %s; retry %d in %.2fs", method,
                        url.removeprefix(self.api_base), error.describe(), attempt, delay)
            if idempotent:
                await self.sleep(delay)
            elif not await self._nap_unless_stopped(delay):
                raise error  # stopping: a create waiting for its retry gives up at once

    async def _nap_unless_stopped(self, seconds: float) -> bool:
        """Sleep `seconds`; False (at once) if a stop comes first."""
        nap = asyncio.ensure_future(self.sleep(seconds))
        stop = asyncio.ensure_future(self._stopped.wait())
        try:
            await asyncio.wait({nap, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            nap.cancel()
            stop.cancel()
        return not self.stopping

    async def _json(self, method: str, *parts: str, idempotent: bool, **kwargs: Any
                    ) -> Prediction:
        headers = self.auth_headers() | kwargs.pop("headers", {})
        data = await self.send(method, self.url(*parts), idempotent=idempotent,
                               headers=headers, **kwargs)
        try:
            return Prediction.from_json(data)
        except ValueError as exc:
            raise TransportError(f"unexpected answer to {method} {'/'.join(parts)}") from exc
