"""How long to wait between attempts and between polls. Pure functions of the attempt number,
the server's hint and a random draw, so tests check them without waiting."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter; a server's own hint (`Retry-After`, `~Ns`) wins."""

    attempts: int = 8          # tries in all for a GET
    create_attempts: int = 5   # tries in all for the create POST (only when provably safe)
    base: float = 0.5
    cap: float = 20.0
    max_hint: float = 120.0    # never wait longer than this for one hint

    def delay(self, attempt: int, hint: float | None, rand: Callable[[], float]) -> float:
        """Seconds before retry number `attempt` (1-based)."""
        if hint is not None:
            # spread a storm of clients told the same instant over the next tenth of it
            return min(hint, self.max_hint) * (1.0 + 0.1 * rand())
        backoff = min(self.cap, self.base * 2 ** (attempt - 1))
        return backoff / 2 + backoff / 2 * rand()


@dataclass(frozen=True)
class PollPolicy:
    """Poll soon after the start, then back off: most predictions end in seconds, and the
    progress message is edited only every ~2 s anyway."""

    first: float = 0.25
    factor: float = 1.6
    cap: float = 2.0
    when_output: float = 0.1   # outputs arrived while still `processing`: the end is near
    long_cap: float = 10.0     # a training takes many minutes: a look every 10 s is plenty

    def interval(self, poll: int, has_output: bool = False, long: bool = False) -> float:
        if has_output:
            return self.when_output
        return min(self.long_cap if long else self.cap, self.first * self.factor ** poll)
