"""What the local Replicate pushes: webhooks signed the Standard Webhooks way (written here from
the scheme in shared/reference/replicate-notes.md, not with the bot's code), for the events a
create asked for, each delivery retried a few times with the same `webhook-id`; and the
account's rate limits (600 creates, 3,000 other calls a minute, short bursts allowed), which it
enforces with 429s when told to."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp

if TYPE_CHECKING:
    from tests.fakes.predictions import FakePrediction
    from tests.fakes.replicate_server import FakeReplicate

LOGS_EVERY = 0.5  # Replicate sends `logs` and `output` at most every 500 ms


@dataclass
class Delivery:
    event: str
    prediction_id: str
    status: str  # the prediction's, in the body
    msg_id: str
    answered: int  # the receiver's HTTP status (0: no answer)
    at: float


def signature(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    key = base64.b64decode(secret.split("_", 1)[1])
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


class Pushes:
    def __init__(self, server: FakeReplicate) -> None:
        self.server = server
        self.secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
        self.sent: list[Delivery] = []
        self.lose: Callable[[str, FakePrediction], bool] | None = None  # never sent
        self.twice = False  # every delivery made twice (a retry after a lost answer)
        self.delay = 0.0  # seconds on the way (the benchmark's round trip)
        self._state: dict[str, tuple[str, int, int, float]] = {}
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None

    def events(self, event: str) -> list[Delivery]:
        return [d for d in self.sent if d.event == event]

    def created(self, prediction: FakePrediction, body: dict[str, Any]) -> None:
        url = body.get("webhook")
        if not url:
            return
        prediction.webhook = url
        prediction.webhook_events = tuple(body.get("webhook_events_filter") or
                                          ("start", "output", "logs", "completed"))
        self._state[prediction.id] = (prediction.status, 0, 0, 0.0)
        if "start" in prediction.webhook_events:
            self._send("start", prediction)
        self.changed(prediction)

    def changed(self, prediction: FakePrediction) -> None:
        before = self._state.get(prediction.id)
        if before is None or before[0] == "done":
            return
        _, logs, outputs, last = before
        events = prediction.webhook_events
        now_logs = len(prediction.logs or "")
        now_outputs = len(prediction.output or []) if isinstance(prediction.output, list) else 0
        now = time.monotonic()
        if prediction.terminal:
            self._state[prediction.id] = ("done", now_logs, now_outputs, now)
            if "completed" in events:
                self._send("completed", prediction)
            return
        event = "output" if now_outputs != outputs and "output" in events else \
            "logs" if now_logs != logs and "logs" in events else None
        if event is not None and now - last >= LOGS_EVERY:
            self._state[prediction.id] = (prediction.status, now_logs, now_outputs, now)
            self._send(event, prediction)

    def _send(self, event: str, prediction: FakePrediction) -> None:
        if self.lose is not None and self.lose(event, prediction):
            return
        body = json.dumps(prediction.to_json()).encode()  # as it stands now
        msg_id = f"msg_{next(self._ids):06d}"
        for _ in range(2 if self.twice else 1):
            task = asyncio.ensure_future(self._deliver(event, prediction, msg_id, body))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver(self, event: str, prediction: FakePrediction, msg_id: str,
                       body: bytes) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self._session is None:
            self._session = aiohttp.ClientSession()
        stamp = str(int(time.time()))
        headers = {"webhook-id": msg_id, "webhook-timestamp": stamp,
                   "webhook-signature": signature(self.secret, msg_id, stamp, body),
                   "Content-Type": "application/json"}
        answered = 0
        for attempt in range(3):
            try:
                async with self._session.post(prediction.webhook, data=body,
                                              headers=headers) as resp:
                    answered = resp.status
                    if resp.status < 300:
                        break
            except aiohttp.ClientError:
                answered = 0
            await asyncio.sleep(0.05 * (attempt + 1))
        status = json.loads(body)["status"]
        self.sent.append(Delivery(event, prediction.id, status, msg_id, answered,
                                  time.monotonic()))
        self.server.touch()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._session is not None:
            await self._session.close()


class AccountLimits:
    """Replicate's limits per account, as token buckets full at a tenth of a minute."""

    def __init__(self, creates_per_minute: float = 600, calls_per_minute: float = 3000
                 ) -> None:
        self.rates = {"create": creates_per_minute, "call": calls_per_minute}
        self.tokens = {k: max(1.0, v / 10) for k, v in self.rates.items()}
        self.at = {k: time.monotonic() for k in self.rates}
        self.throttled = {"create": 0, "call": 0}
        self.admitted = {"create": 0, "call": 0}

    @staticmethod
    def kind_of(method: str, path: str) -> str:
        """A create (of a prediction or a training) or any other call."""
        return "create" if method == "POST" and path.endswith(("/predictions", "/trainings")) \
            else "call"

    def admit(self, kind: str) -> bool:
        now = time.monotonic()
        rate = self.rates[kind] / 60
        self.tokens[kind] = min(max(1.0, self.rates[kind] / 10),
                                self.tokens[kind] + (now - self.at[kind]) * rate)
        self.at[kind] = now
        if self.tokens[kind] < 1 - 1e-6:
            self.throttled[kind] += 1
            return False
        self.tokens[kind] -= 1
        self.admitted[kind] += 1
        return True
