"""Turning webhooks on at start (`replicate.webhook_url`): the signing secret (configured, or
asked of the API), the creates told where to push, the endpoint that hears them; with several
processes on PostgreSQL, a push that reaches one is passed to the others (NOTIFY), so it
reaches whichever follows the prediction."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from bot.config import Config
from bot.errors import StartupError
from bot.metrics import Metrics
from bot.replicate.client import ReplicateClient
from bot.replicate.errors import NotFoundError, ReplicateError
from bot.replicate.prediction import Prediction
from bot.replicate.pushed import Push, Pushed
from bot.replicate.webhooks import signing_key
from bot.storage.database import Database
from bot.webhook_endpoint import WebhookEndpoint

log = logging.getLogger("bot.webhooks")
CHANNEL = "flux_replicate_push"
NOTIFY_LIMIT = 7900  # PostgreSQL's NOTIFY takes 8,000 bytes


async def signing_secret(config: Config, client: ReplicateClient) -> str | None:
    """The configured secret, else the account's; None (with a warning) when the API cannot
    be asked now: the bot then polls, as without webhooks."""
    configured = config.replicate.webhook_secret.get_secret_value()
    if configured:
        return configured
    try:
        secret = await client.webhook_secret()
        signing_key(secret)
        return secret
    except NotFoundError:
        raise StartupError(f"replicate.webhook_secret: {client.api_base} has no "
                           "/webhooks/default/secret (a relay?); set the secret (whsec_…) "
                           "or leave replicate.webhook_url empty") from None
    except (ReplicateError, ValueError) as exc:
        why = exc.describe() if isinstance(exc, ReplicateError) else str(exc)
        log.warning("replicate: no webhook signing secret from %s (%s); polling instead "
                    "until the next start", client.api_base, why)
        return None


async def open_webhooks(config: Config, client: ReplicateClient, db: Database,
                        metrics: Metrics, *, several: bool) -> WebhookEndpoint | None:
    """The endpoint for `[http]`, once the client creates with a webhook; None when off."""
    url = config.replicate.webhook_url
    if not url:
        return None
    secret = await signing_secret(config, client)
    if secret is None:
        return None
    pushed = Pushed()
    if several and await db.listen(CHANNEL, lambda payload: _heard(pushed, payload)):
        pushed.forward = lambda prediction: _tell_others(db, prediction)
    client.push = Push(url, pushed, float(config.replicate.reconcile_seconds))
    log.info("replicate: webhooks on (%s); polling only every %d s to reconcile", url,
             config.replicate.reconcile_seconds)
    return WebhookEndpoint(signing_key(secret), pushed, count=metrics.webhook)


_telling: set[asyncio.Task[Any]] = set()


def _tell_others(db: Database, prediction: Prediction) -> None:
    payload = json.dumps(prediction.raw, separators=(",", ":"))
    if len(payload.encode()) > NOTIFY_LIMIT:
        payload = json.dumps({"poke": prediction.id})
    task = asyncio.ensure_future(db.notify(CHANNEL, payload))
    _telling.add(task)
    task.add_done_callback(_told)


def _told(task: asyncio.Task[Any]) -> None:
    _telling.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.warning("webhook not passed on to the other processes (%s)",
                    type(task.exception()).__name__)


def _heard(pushed: Pushed, payload: str) -> None:
    try:
        data = json.loads(payload)
        if isinstance(data, dict) and isinstance(data.get("poke"), str):
            pushed.poke(data["poke"])
        else:
            pushed.offer(Prediction.from_json(data), forwarded=True)
    except ValueError:
        log.warning("a malformed push from another process was ignored")
