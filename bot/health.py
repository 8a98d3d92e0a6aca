"""`[http] listen`: /healthz (gateway connected and database answering, else 503) and /metrics
in Prometheus' text format, on a small aiohttp server beside the bot; and, when webhooks are
on, Replicate's pushes (`bot.webhook_endpoint`)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bot.metrics import Metrics
from bot.webhook_endpoint import WebhookEndpoint

log = logging.getLogger(__name__)


class HealthServer:
    def __init__(self, listen: str, metrics: Metrics, *, gateway: Callable[[], bool],
                 database: Callable[[], Awaitable[bool]],
                 webhook: WebhookEndpoint | None = None) -> None:
        host, _, port = listen.rpartition(":")
        self.host = host.strip("[]")
        self.port = int(port)
        self.metrics = metrics
        self.gateway = gateway
        self.database = database
        self._runner: web.AppRunner | None = None
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        if webhook is not None:
            webhook.add_to(app)
        self.app = app

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        log.info("health and metrics on http://%s:%d", self.host, self.port)

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _healthz(self, request: web.Request) -> web.Response:
        try:
            database = await asyncio.wait_for(self.database(), 2)
        except Exception:
            database = False
        checks = {"gateway": bool(self.gateway()), "database": database}
        status = 200 if all(checks.values()) else 503
        return web.Response(status=status, text=json.dumps(checks),
                            content_type="application/json")

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
