"""The account's create pacing (Replicate allows 600 creates a minute): a token bucket, full at
`burst`, refilled at `per_minute`. One process keeps it in memory; several share one row of
the database (`bot.storage.processes`), with the same rule (`draw`)."""

from __future__ import annotations

import time
from collections.abc import Callable


def draw(tokens: float, updated_at: float, now: float, per_minute: float, burst: float
         ) -> tuple[float, float]:
    """Take one slot from a bucket last left at `tokens` at `updated_at`: the tokens left
    (below zero: slots already promised) and the seconds to wait before using this one."""
    rate = per_minute / 60.0
    tokens = min(burst, tokens + max(0.0, now - updated_at) * rate) - 1
    return tokens, max(0.0, -tokens / rate)


class LocalPacer:
    """The bucket of a bot that runs in one process: no database trip per create."""

    def __init__(self, per_minute: float, burst: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute, self.burst, self.clock = per_minute, burst, clock
        self.tokens, self.updated_at = burst, clock()

    async def pace(self) -> float:
        now = self.clock()
        self.tokens, wait = draw(self.tokens, self.updated_at, now, self.per_minute,
                                 self.burst)
        self.updated_at = now
        return wait
