"""Predictions as webhooks push them, for whoever follows them here. Deliveries can come twice
or out of order (a `logs` event after `completed`): a prediction only moves forward.
A push for a prediction no one here follows is kept a while (its create may not have answered
yet) and handed to `forward`: another process may own it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from bot.replicate.prediction import Prediction

KEEP = 600.0  # seconds a push nobody follows is kept


def rank(prediction: Prediction) -> tuple[int, int, int]:
    """How far along: status (starting < processing < ended), outputs, logs."""
    status = 2 if prediction.terminal else 1 if prediction.status == "processing" else 0
    return status, len(prediction.output), len(prediction.logs)


def newer(current: Prediction | None, other: Prediction) -> bool:
    """Whether `other` is further along than `current` (an ended one never changes)."""
    if current is None:
        return True
    if current.terminal:
        return False
    return rank(other) > rank(current)


class Pushed:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.forward: Callable[[Prediction], None] | None = None
        self._latest: dict[str, tuple[Prediction, float]] = {}
        self._followed: dict[str, asyncio.Event] = {}
        self._poked: set[str] = set()

    def offer(self, prediction: Prediction, *, forwarded: bool = False) -> bool:
        """A push arrived; True when it moved its prediction forward."""
        now = self.clock()
        self._expire(now)
        current = self._latest.get(prediction.id)
        if not newer(current[0] if current else None, prediction):
            return False
        self._latest.pop(prediction.id, None)  # re-added last: the dict stays oldest first
        self._latest[prediction.id] = (prediction, now)
        event = self._followed.get(prediction.id)
        if event is not None:
            event.set()
        elif self.forward is not None and not forwarded:
            self.forward(prediction)
        return True

    def poke(self, prediction_id: str) -> None:
        """Another process had news of this prediction, too big to pass on: its follower
        here asks the API now instead of at the next reconcile."""
        event = self._followed.get(prediction_id)
        if event is not None:
            self._poked.add(prediction_id)
            event.set()

    def followed(self, prediction_id: str) -> bool:
        return prediction_id in self._followed

    def merge(self, prediction: Prediction) -> Prediction:
        """`prediction` (as a GET answered it), or the push that is further along."""
        pushed = self._latest.get(prediction.id)
        if pushed is not None and newer(prediction, pushed[0]):
            return pushed[0]
        return prediction

    async def next(self, current: Prediction, within: float) -> Prediction | None:
        """The first push further along than `current` within `within` seconds; None
        when none came (the caller then asks the API: a lost webhook costs a delay)."""
        event = self._followed.setdefault(current.id, asyncio.Event())
        deadline = self.clock() + within
        try:
            while True:
                found = self.merge(current)
                if found is not current:
                    return found
                if current.id in self._poked:  # news too big to pass on: ask the API
                    self._poked.discard(current.id)
                    return None
                event.clear()
                left = deadline - self.clock()
                if left <= 0:
                    return None
                try:
                    await asyncio.wait_for(event.wait(), left)
                except TimeoutError:
                    return None
        finally:
            self._followed.pop(current.id, None)

    def _expire(self, now: float) -> None:
        """Forget pushes older than `KEEP`: the dict holds them oldest first."""
        while self._latest:
            pid, (_, at) = next(iter(self._latest.items()))
            if at >= now - KEEP:
                return
            del self._latest[pid]


@dataclass(frozen=True)
class Push:
    """Predictions are created with `url` as their webhook; followers wait for `pushed` and
    ask the API only after `reconcile` seconds without news (a lost webhook costs that)."""

    url: str
    pushed: Pushed
    reconcile: float = 30.0

    EVENTS: ClassVar[tuple[str, ...]] = ("start", "output", "logs", "completed")
    TRAINING_EVENTS: ClassVar[tuple[str, ...]] = ("start", "logs", "completed")
