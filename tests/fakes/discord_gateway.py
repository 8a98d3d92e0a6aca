"""The loopback Discord's gateway: HELLO, IDENTIFY answered with READY and the servers of the
connection's shard, heartbeats, RESUME, events dispatched to the connection (shard) that owns
their server, drops and outages on demand."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.discord_payloads import APP_ID, BOT_ID, User, guild, shard_of


class Gateway:
    """Mixed into `FakeDiscord`, which holds the sockets, the servers and the session state."""

    async def _send(self, ws: web.WebSocketResponse, payload: dict[str, Any]) -> None:
        await ws.send_str(json.dumps(payload))

    def _owns(self, ws: web.WebSocketResponse, guild_id: int) -> bool:
        shard = self.socket_shards.get(ws)
        return shard is None or shard_of(guild_id, shard[1]) == shard[0]

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Send a gateway event to the connections whose shard owns its server (DMs: shard
        0), as Discord routes them."""
        self._seq += 1
        guild_id = int(data.get("guild_id") or 0)
        for ws in list(self.sockets):
            if not ws.closed and self._owns(ws, guild_id):
                await self._send(ws, {"op": 0, "t": event, "s": self._seq, "d": data})

    async def disconnect(self, code: int = 4000) -> None:
        """Drop the gateway connections with a resumable close code."""
        self.resumed.clear()
        for ws in list(self.sockets):
            await ws.close(code=code)

    async def _identify(self, ws: web.WebSocketResponse, payload: dict[str, Any]) -> None:
        shard = payload.get("d", {}).get("shard")
        if shard is not None:
            self.socket_shards[ws] = (int(shard[0]), int(shard[1]))
        session = f"session-{shard[0]}-of-{shard[1]}" if shard else "session-1"
        self._sessions[session] = self.socket_shards.get(ws)
        owned = [g for g in self.servers if self._owns(ws, g)]
        self.ready_count += 1
        self._seq += 1
        await self._send(ws, {"op": 0, "t": "READY", "s": self._seq, "d": {
            "v": 10, "user": {**User(BOT_ID, "fluxbot").payload(), "bot": True},
            "guilds": [{"id": str(g), "unavailable": True} for g in owned],
            "session_id": session, "resume_gateway_url": self.gateway_url,
            "application": {"id": str(APP_ID), "flags": 0}, **({"shard": shard} if shard else {}),
            "private_channels": [], "relationships": []}})
        for guild_id in owned:
            self._seq += 1
            await self._send(ws, {"op": 0, "t": "GUILD_CREATE", "s": self._seq,
                                  "d": guild(self.moderator, guild_id)})
        self.identified_shards.append(shard[0] if shard else None)
        self.identified.set()

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
                    await self._identify(ws, payload)
                elif op == 6:
                    shard = self._sessions.get(payload.get("d", {}).get("session_id", ""))
                    if shard is not None:
                        self.socket_shards[ws] = shard
                    self._seq += 1
                    await self._send(ws, {"op": 0, "t": "RESUMED", "s": self._seq, "d": {}})
                    self.resumed.set()
                self.touch()
        finally:
            self.sockets.remove(ws)
            self.socket_shards.pop(ws, None)
        return ws
