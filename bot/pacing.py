"""The account's pacing. Replicate allows 600 creates a minute and 3,000 other calls, for the
whole account: two token buckets, each full at `burst` and refilled at `per_minute`, so that a
burst queues here instead of collecting 429s. One process keeps them in memory; several share
rows of the database (`bot.storage.processes`), with the same rule (`draw`), and take the
calls' slots ten at a time (`LeasedPacer`), so a GET does not cost a database trip."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

Pace = Callable[[], Awaitable[float]]  # seconds to wait before the next request (0: now)


def draw(tokens: float, updated_at: float, now: float, per_minute: float, burst: float,
         count: int = 1) -> tuple[float, float]:
    """Take `count` slots from a bucket last left at `tokens` at `updated_at`: the tokens left
    (below zero: slots already promised) and the seconds to wait before using the last."""
    rate = per_minute / 60.0
    tokens = min(burst, tokens + max(0.0, now - updated_at) * rate) - count
    return tokens, max(0.0, -tokens / rate)


def burst_of(per_minute: float) -> float:
    """The burst we allow ourselves: Replicate's is a tenth of the minute (60 creates, 300
    calls); a tenth of that is kept in hand for the requests' own jitter on the way (a
    request let out on time may still arrive just after the one before it)."""
    return max(1.0, per_minute / 10 * 0.9)


class LocalPacer:
    """The bucket of a bot that runs in one process: no database trip per request."""

    def __init__(self, per_minute: float, burst: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute, self.clock = per_minute, clock
        self.burst = burst_of(per_minute) if burst is None else burst
        self.tokens, self.updated_at = self.burst, clock()

    async def pace(self) -> float:
        now = self.clock()
        self.tokens, wait = draw(self.tokens, self.updated_at, now, self.per_minute,
                                 self.burst)
        self.updated_at = now
        return wait


class LeasedPacer:
    """Slots taken `lease` at a time from a shared bucket (`take(n)` answers the wait before
    the last of them), then handed out here."""

    def __init__(self, take: Callable[[int], Awaitable[float]], lease: int = 10,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.take, self.lease, self.clock = take, lease, clock
        self.left = 0
        self.ready_at = 0.0
        self._lock = asyncio.Lock()

    async def pace(self) -> float:
        async with self._lock:
            if self.left == 0:
                self.ready_at = self.clock() + await self.take(self.lease)
                self.left = self.lease
            self.left -= 1
        return max(0.0, self.ready_at - self.clock())
