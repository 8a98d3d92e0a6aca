"""`POST /replicate/webhook` on the `[http]` listener: a signed push from Replicate, checked
(`bot.replicate.webhooks`), de-duplicated by `webhook-id`, answered at once, and handed to the
jobs that follow that prediction (`bot.replicate.pushed`). Anything unsigned, stale or
malformed gets a 4xx and changes nothing; each kind of refusal is logged once, then quietly
counted, so a scanner cannot fill the log."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

from aiohttp import web

from bot.replicate.prediction import Prediction
from bot.replicate.pushed import Pushed
from bot.replicate.webhooks import MAX_BODY, SeenIds, WebhookRejected, verify

log = logging.getLogger("bot.webhooks")
PATH = "/replicate/webhook"


class WebhookEndpoint:
    def __init__(self, key: bytes, pushed: Pushed, *, clock: Callable[[], float] = time.time,
                 count: Callable[[str], None] | None = None) -> None:
        self.key = key
        self.pushed = pushed
        self.clock = clock
        self.seen = SeenIds()
        self.count = count or (lambda outcome: None)  # by outcome, for /metrics
        self._logged: set[str] = set()

    def add_to(self, app: web.Application) -> None:
        app.router.add_post(PATH, self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        if (request.content_length or 0) > MAX_BODY:
            return self._refuse(WebhookRejected("too large", 413))
        body = await request.content.read(MAX_BODY + 1)
        try:
            msg_id = verify(self.key, request.headers, body, self.clock())
        except WebhookRejected as rejected:
            return self._refuse(rejected)
        try:
            prediction = Prediction.from_json(json.loads(body))
        except (ValueError, UnicodeDecodeError):
            return self._refuse(WebhookRejected("not a prediction", 400))
        if not self.seen.first_time(msg_id):
            self.count("duplicate")
            return web.Response(status=200, text="already had it")
        self.count("accepted" if self.pushed.offer(prediction) else "stale event")
        return web.Response(status=204)

    def _refuse(self, rejected: WebhookRejected) -> web.Response:
        self.count(rejected.reason)
        if rejected.reason not in self._logged:
            self._logged.add(rejected.reason)
            log.warning("webhook refused (%s); further ones like it are only counted in "
                        "/metrics", rejected.reason)
        return web.Response(status=rejected.status, text=rejected.reason)
