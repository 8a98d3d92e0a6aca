"""The loopback Discord's gateway: HELLO, IDENTIFY answered with READY and the test server,
heartbeats, RESUME, events dispatched to every client, drops and outages on demand."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.discord_payloads import APP_ID, BOT_ID, GUILD_ID, User, guild


class Gateway:
    """Mixed into `FakeDiscord`, which holds the sockets and the session's state."""

    async def _send(self, ws: web.WebSocketResponse, payload: dict[str, Any]) -> None:
        await ws.send_str(json.dumps(payload))

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Send a gateway event to every connected client."""
        self._seq += 1
        for ws in list(self.sockets):
            if not ws.closed:
                await self._send(ws, {"op": 0, "t": event, "s": self._seq, "d": data})

    async def disconnect(self, code: int = 4000) -> None:
        """Drop the gateway connection with a resumable close code."""
        self.resumed.clear()
        for ws in list(self.sockets):
            await ws.close(code=code)

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        if self.gateway_down:  # an outage: every connection attempt refused
            self.gateway_refused += 1
            self.touch()
            return web.Response(status=503, text="Service Unavailable")
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        self.sockets.append(ws)
        await self._send(ws, {"op": 10, "d": {"heartbeat_interval": 41250}})
        try:
            async for message in ws:
                if message.type != WSMsgType.TEXT:
                    continue
                payload = json.loads(message.data)
                op = payload.get("op")
                if op == 1:
                    await self._send(ws, {"op": 11})
                elif op == 2:
                    self.ready_count += 1
                    self._seq += 1
                    await self._send(ws, {"op": 0, "t": "READY", "s": self._seq, "d": {
                        "v": 10, "user": {**User(BOT_ID, "fluxbot").payload(), "bot": True},
                        "guilds": [{"id": str(GUILD_ID), "unavailable": True}],
                        "session_id": self._session, "resume_gateway_url": self.gateway_url,
                        "application": {"id": str(APP_ID), "flags": 0},
                        "private_channels": [], "relationships": []}})
                    self._seq += 1
                    await self._send(ws, {"op": 0, "t": "GUILD_CREATE", "s": self._seq,
                                          "d": guild(self.moderator)})
                    self.identified.set()
                elif op == 6:
                    self._seq += 1
                    await self._send(ws, {"op": 0, "t": "RESUMED", "s": self._seq, "d": {}})
                    self.resumed.set()
                self.touch()
        finally:
            self.sockets.remove(ws)
        return ws
