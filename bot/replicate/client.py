"""A small async client for the Replicate predictions API, shared by the bot and the CLI.

One aiohttp session (one connection pool) for everything; each call goes through
`bot.replicate.transport` (its retry rules, caps and pacing). A prediction is followed at
`{api_base}/predictions/{id}` – never `urls.get`, which names api.replicate.com even behind a
relay – by polling, or by its webhooks with polling as a slow reconciler, until it ends or the
deadline passes, after which it is canceled.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from bot import __version__
from bot.replicate.errors import (
    ModelError,
    PredictionCanceled,
    PredictionTimeout,
    RateLimitedError,
    ReplicateError,
    ServerError,
    Stopping,
    TransportError,
)
from bot.replicate.prediction import Prediction
from bot.replicate.pushed import Push
from bot.replicate.retry import PollPolicy, RetryPolicy
from bot.replicate.transport import Observer, Transport

log = logging.getLogger(__name__)

Update = Callable[[Prediction], Awaitable[None] | None]

# Failures worth polling through: the prediction is still running on Replicate's side.
TRANSIENT = (TransportError, ServerError, RateLimitedError)


class ReplicateClient(Transport):
    """Create, follow and cancel predictions of one model version."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        api_token: str,
        api_base: str = "https://api.replicate.com/v1",
        model: str = "lucataco/flux-dev-lora",
        version: str = "091495765fa5ef2725a175a57b276ec30dc9d39c22d30410f2ede68a3eab66b3",
        wait_seconds: int = 60,
        timeout_seconds: float = 600,
        max_concurrent: int = 8,
        request_timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        poll: PollPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rand: Callable[[], float] = random.random,
        observer: Observer | None = None,
        pace_calls: Callable[[], Awaitable[float]] | None = None,
        push: Push | None = None,
    ) -> None:
        super().__init__(session, api_token=api_token, api_base=api_base,
                         request_timeout=request_timeout, retry=retry, clock=clock,
                         sleep=sleep, rand=rand, observer=observer, pace_calls=pace_calls)
        self.model = model
        self.version = version
        self.wait_seconds = wait_seconds
        self.timeout_seconds = timeout_seconds
        self.poll = poll or PollPolicy()
        self.push = push  # where Replicate pushes (None: everything is polled)
        self._slots = asyncio.Semaphore(max_concurrent)
        self.max_concurrent = max_concurrent
        self.in_flight = 0
        self.waiting = 0
        self._orphans: set[asyncio.Task[Any]] = set()

    @classmethod
    def from_settings(cls, session: aiohttp.ClientSession, settings: Any, **kwargs: Any
                      ) -> ReplicateClient:
        """Build from the `[replicate]` config section."""
        return cls(
            session,
            api_token=settings.api_token.get_secret_value(),
            api_base=settings.api_base,
            model=settings.model,
            version=settings.version,
            wait_seconds=settings.wait_seconds,
            timeout_seconds=settings.timeout_seconds,
            max_concurrent=settings.max_concurrent,
            **kwargs,
        )

    @property
    def version_ref(self) -> str:
        return f"{self.model}:{self.version}"

    # -- the API ----------------------------------------------------------------------------

    async def create(self, input: dict[str, Any], *, wait: int | None = None,
                     version: str | None = None) -> Prediction:
        """POST /predictions with `Prefer: wait=N`; the answer may already be finished.
        `version` (`owner/name:id`) is another model's, such as the upscaler's."""
        if self.stopping:
            raise Stopping("the bot is stopping")
        wait = self.wait_seconds if wait is None else wait
        headers = {"Cancel-After": f"{max(5, int(self.timeout_seconds))}s",
                   "User-Agent": f"flux-lora-bot/{__version__}"}
        if wait:
            headers["Prefer"] = f"wait={wait}"
        body = {"version": version or self.version_ref, "input": input}
        return await self._json("POST", "predictions", idempotent=False, headers=headers,
                                json_body=self._pushed_to(body, Push.EVENTS),
                                seconds=wait + self.request_timeout)

    def _pushed_to(self, body: dict[str, Any], events: tuple[str, ...]) -> dict[str, Any]:
        if self.push is not None:
            body |= {"webhook": self.push.url, "webhook_events_filter": list(events)}
        return body

    async def create_training(self, input: dict[str, Any], *, version: str,
                              destination: str) -> Prediction:
        """POST /models/{owner}/{name}/versions/{id}/trainings: a training of trainer
        `version` (`owner/name:id`) into `destination` (`owner/name`). It answers at once,
        `starting`; like a create, it is never sent twice blindly."""
        if self.stopping:
            raise Stopping("the bot is stopping")
        model, _, version_id = version.partition(":")
        return await self._json(
            "POST", "models", *model.split("/"), "versions", version_id, "trainings",
            idempotent=False, headers={"User-Agent": f"flux-lora-bot/{__version__}"},
            json_body=self._pushed_to({"destination": destination, "input": input},
                                      Push.TRAINING_EVENTS))

    async def get(self, prediction_id: str, *, deadline: float | None = None,
                  collection: str = "predictions") -> Prediction:
        """A prediction (or, with `collection="trainings"`, a training) as it stands."""
        return await self._json("GET", collection, prediction_id, idempotent=True,
                                deadline=deadline)

    async def cancel(self, prediction_id: str, collection: str = "predictions") -> Prediction:
        # cancel is idempotent on Replicate's side: canceling twice changes nothing
        return await self._json("POST", collection, prediction_id, "cancel", idempotent=True)

    async def model_info(self, name: str) -> dict[str, Any]:
        """`GET /models/{owner}/{name}`: the model exists (a training's destination)."""
        data = await self.send("GET", self.url("models", *name.split("/")), idempotent=True,
                               headers=self.auth_headers())
        return data if isinstance(data, dict) else {}

    async def webhook_secret(self) -> str:
        """`GET /webhooks/default/secret`: the `whsec_` key Replicate signs webhooks with."""
        data = await self.send("GET", self.url("webhooks", "default", "secret"),
                               idempotent=True, headers=self.auth_headers())
        key = data.get("key") if isinstance(data, dict) else None
        if not isinstance(key, str):
            raise TransportError("no key in the answer to GET /webhooks/default/secret")
        return key

    async def account(self) -> dict[str, Any]:
        """`GET /account`: the cheapest call that proves the token."""
        data = await self.send("GET", self.url("account"), idempotent=True,
                               headers=self.auth_headers())
        return data if isinstance(data, dict) else {}

    async def version_info(self, ref: str | None = None) -> dict[str, Any]:
        """`GET /models/{owner}/{name}/versions/{id}`: the configured version (or `ref`,
        `owner/name:id`) exists."""
        model, _, version = (ref or self.version_ref).partition(":")
        data = await self.send("GET", self.url("models", *model.split("/"), "versions",
                                                version),
                               idempotent=True, headers=self.auth_headers())
        return data if isinstance(data, dict) else {}

    async def follow(self, prediction: Prediction, *, deadline: float,
                     on_update: Update | None = None, until_outputs: bool = False,
                     collection: str = "predictions") -> Prediction:
        """Poll until `prediction` is terminal (or, with `until_outputs`, until its outputs
        are all there); cancel it and raise `PredictionTimeout` once `deadline` (on `clock`)
        passes. Transient failures are polled through."""
        seen = _shown(prediction)
        if self.push is not None:  # pushed while the create held, or before we listened
            prediction = self.push.pushed.merge(prediction)
            if _shown(prediction) != seen:
                seen = _shown(prediction)
                await _call(on_update, prediction)
        poll = 0
        while not prediction.terminal and not (until_outputs and outputs_ready(prediction)):
            remaining = deadline - self.clock()
            if remaining <= 0:
                canceled = await self.cancel_quietly(prediction.id, collection)
                raise PredictionTimeout(canceled or prediction)
            if self.push is not None:
                pushed = await self.push.pushed.next(prediction,
                                                     min(remaining, self.push.reconcile))
                if pushed is not None:
                    prediction = pushed
                elif self.clock() >= deadline:
                    continue
                else:  # no news for a while: a webhook may be lost, the API knows
                    prediction = await self._poll(prediction, deadline, collection)
            else:
                await self.sleep(min(remaining, self.poll.interval(
                    poll, bool(prediction.output), long=collection == "trainings")))
                poll += 1
                prediction = await self._poll(prediction, deadline, collection)
            now = _shown(prediction)
            if now != seen:
                seen = now
                await _call(on_update, prediction)
        return prediction

    async def _poll(self, prediction: Prediction, deadline: float, collection: str
                    ) -> Prediction:
        """The prediction as the API has it now (as it was, when the API is away for a
        moment); never behind what a webhook already said."""
        try:
            fresh = await self.get(prediction.id, deadline=deadline, collection=collection)
        except TRANSIENT as exc:
            log.warning("replicate poll %s failed: %s", prediction.id, exc.describe())
            return prediction
        return self.push.pushed.merge(fresh) if self.push is not None else fresh

    async def cancel_quietly(self, prediction_id: str, collection: str = "predictions"
                             ) -> Prediction | None:
        """Cancel, logging instead of raising: used on the way out of a failure."""
        try:
            return await self.cancel(prediction_id, collection)
        except ReplicateError as exc:
            log.warning("replicate cancel %s failed: %s", prediction_id, exc.describe())
            return None

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """At most `max_concurrent` predictions in flight; the rest wait here in order."""
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1
            self._slots.release()

    async def run(
        self,
        input: dict[str, Any] | None = None,
        *,
        resume_id: str | None = None,
        deadline: float | None = None,
        on_created: Update | None = None,
        on_update: Update | None = None,
        until_outputs: bool = False,
        version: str | None = None,
    ) -> Prediction:
        """Create a prediction (of `version`, default the configured model's; or pick up
        `resume_id`) and follow it to a successful end.

        With `until_outputs`, return as soon as every output is there, which `Prefer: wait`
        reports while the status still says `processing` (follow it to its end with `finish`
        for the metrics). Raises `ModelError` (failed), `PredictionCanceled`
        (canceled/aborted), `PredictionTimeout`, or the API error that stopped it.
        """
        async with self.slot():
            if deadline is None:
                deadline = self.clock() + self.timeout_seconds
            if resume_id is not None:
                prediction = await self.get(resume_id, deadline=deadline)
            else:
                prediction = await self._create_or_orphan(input or {}, version)
                await _call(on_created, prediction)
            await _call(on_update, prediction)
            try:
                prediction = await self.follow(prediction, deadline=deadline,
                                               on_update=on_update, until_outputs=until_outputs)
            except ReplicateError as error:
                if not isinstance(error, PredictionTimeout):  # that one was canceled already
                    await self.cancel_quietly(prediction.id)  # do not leave it running unseen
                raise
        return prediction if outputs_ready(prediction) else ensure_succeeded(prediction)

    async def finish(self, prediction: Prediction) -> Prediction:
        """Follow a prediction whose outputs were taken early to its terminal status."""
        deadline = self.clock() + self.timeout_seconds
        return ensure_succeeded(await self.follow(prediction, deadline=deadline))

    async def _create_or_orphan(self, input: dict[str, Any], version: str | None = None
                                ) -> Prediction:
        """Create; if we are canceled while `Prefer: wait` holds the request, the prediction
        exists but we do not know its id yet: let the request finish in the background and
        cancel the prediction then, so nothing keeps running (and billing) unseen."""
        create = asyncio.ensure_future(self.create(input, version=version))
        try:
            return await asyncio.shield(create)
        except asyncio.CancelledError:
            orphan = asyncio.ensure_future(self._cancel_when_created(create))
            self._orphans.add(orphan)
            orphan.add_done_callback(self._orphans.discard)
            raise

    async def _cancel_when_created(self, create: asyncio.Future[Prediction]) -> None:
        try:
            prediction = await create
        except (ReplicateError, asyncio.CancelledError):
            return
        if not prediction.terminal:
            log.info("replicate: canceling %s, created after its job was canceled",
                     prediction.id)
            await self.cancel_quietly(prediction.id)

    async def close(self) -> None:
        """Wait briefly for orphaned creates to be canceled (at shutdown)."""
        if self._orphans:
            await asyncio.wait(list(self._orphans), timeout=5)


def outputs_ready(prediction: Prediction) -> bool:
    """Still `processing`, but every output is there: flux-dev-lora returns its list of files
    at once, so they are final."""
    return prediction.status == "processing" and bool(prediction.output)


def ensure_succeeded(prediction: Prediction) -> Prediction:
    """Return a succeeded prediction; raise the typed error for any other terminal status."""
    if prediction.status == "succeeded":
        return prediction
    if prediction.status == "failed":
        raise ModelError(prediction)
    raise PredictionCanceled(prediction)


def _shown(prediction: Prediction) -> tuple[str, str, int]:
    """What a member would see change: status, logs (progress), outputs."""
    return prediction.status, prediction.logs, len(prediction.output)


async def _call(callback: Update | None, prediction: Prediction) -> None:
    if callback is None:
        return
    result = callback(prediction)
    if inspect.isawaitable(result):
        await result
