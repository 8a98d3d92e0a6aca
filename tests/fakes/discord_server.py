"""A loopback Discord for the real discord.py client: REST under /api/v10 and the gateway
websocket, enough of both for slash commands, buttons, forms, autocomplete, messages with
files, and the faults worth testing (expired tokens, 429s, missing permissions, disconnects).

It follows shared/reference/discord-notes.md: bodies are sent as exactly `application/json`,
429s carry `Via`, the callback answers 200 with a body, READY names our own resume URL.
Everything the bot sends is recorded in `calls` for the tests to read.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from typing import Any

from aiohttp import web

from tests.fakes import discord_rules, openapi
from tests.fakes.discord_gateway import Gateway
from tests.fakes.discord_interactions import Interactions
from tests.fakes.discord_payloads import (
    APP_ID,
    BOT_ID,
    BOT_TOKEN,
    CHANNEL_ID,
    DISCORD_EPOCH,
    GUILD_ID,
    GUILD_OF_CHANNEL,
    MOD_PERMISSIONS,
    MOD_ROLE_ID,
    NSFW_CHANNEL_ID,
    OTHER_CHANNEL_ID,
    OTHER_GUILD_CHANNEL_ID,
    OTHER_GUILD_ID,
    TOKEN_LIFETIME,
    Call,
    Drop,
    Sent,
    User,
    _described,
    _error,
    _footer,
    _json,
)
from tests.fakes.loopback import LoopbackServer

__all__ = ["APP_ID", "BOT_TOKEN", "CHANNEL_ID", "GUILD_ID", "MOD_ROLE_ID", "NSFW_CHANNEL_ID",
           "OTHER_CHANNEL_ID", "OTHER_GUILD_CHANNEL_ID", "OTHER_GUILD_ID", "Drop", "FakeDiscord",
           "Sent", "User"]


class FakeDiscord(Gateway, Interactions, LoopbackServer):
    def __init__(self, *, check_documents: bool = True) -> None:
        super().__init__()
        # every request checked against Discord's document (off only for the benchmark, which
        # measures the bot, not this server)
        self.check_documents = check_documents
        self.calls: list[Call] = []
        self.messages: dict[int, dict[str, Any]] = {}
        self.attachments: dict[str, bytes] = {}
        self.sent: dict[str, Sent] = {}
        self.expired_tokens: set[str] = set()
        self.forbidden_channels: set[int] = set()
        self.rate_limit_next: dict[str, int] = {}  # path fragment -> 429s to answer
        self.drops: list[Drop] = []
        self.omit_message_id = False  # a REST proxy that drops `response_message_id`
        self.nonces: dict[tuple[int, str], int] = {}  # (channel, nonce) -> message id
        self.uploads: list[tuple[int, str]] = []  # (message id, its footer) per upload
        self.gateway_down = False  # an outage: the gateway refuses every connection
        self.gateway_refused = 0
        self.schema_problems: list[str] = []  # what real Discord would have refused
        self.refusals_expected = False  # a test that sends what Discord refuses on purpose
        self.deadline = 3.0
        self.sockets: list[web.WebSocketResponse] = []
        self.identified = asyncio.Event()
        self.resumed = asyncio.Event()
        self.ready_count = 0
        self._ids = itertools.count(1)
        self._seq = 0
        self._sessions: dict[str, tuple[int, int] | None] = {}  # session -> (shard, count)
        self.socket_shards: dict[web.WebSocketResponse, tuple[int, int]] = {}
        self.identified_shards: list[int | None] = []  # in the order they identified
        self.servers: list[int] = [GUILD_ID]  # the bot's servers; tests may add OTHER_GUILD_ID
        self.shard_count = 1  # what GET /gateway/bot recommends (`shard_count = "auto"`)
        self.commands: dict[str, list[dict[str, Any]]] = {}
        self.dm_channels: dict[int, int] = {}  # user id -> DM channel id
        self.member = User(940000000000000001, "alice")
        self.moderator = User(940000000000000002, "mod", permissions=MOD_PERMISSIONS)
        app = web.Application(client_max_size=200 * 1024 * 1024)
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/attachments/{name:.+}", self._attachment)
        app.router.add_route("*", "/api/v10/{path:.+}", self._rest)
        self.app = app

    async def close(self) -> None:
        for ws in list(self.sockets):
            await ws.close()
        await super().close()

    @property
    def api_base(self) -> str:
        return f"{self.url}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://{self.url.removeprefix('http://')}/gateway"

    # -- ids and waiting --------------------------------------------------------------------

    def snowflake(self) -> int:
        return ((int(time.time() * 1000) - DISCORD_EPOCH) << 22) | (next(self._ids) % 4096)

    def describe(self) -> str:
        return "; calls: " + ", ".join(f"{c.method} {c.path}" for c in self.calls[-15:])

    # -- interactions -----------------------------------------------------------------------

    def requests(self, method: str, fragment: str) -> list[Call]:
        return [c for c in self.calls if c.method == method and fragment in c.path]

    def message_for(self, sent: Sent) -> dict[str, Any] | None:
        """The message an interaction's response created, as it stands now."""
        for callback in sent.callbacks:
            mid = callback.json.get("_message_id") if isinstance(callback.json, dict) else None
            if mid:
                return self.messages.get(mid)
        return None

    def channel_messages(self, channel_id: int = CHANNEL_ID) -> list[dict[str, Any]]:
        return [m for m in self.messages.values() if m["channel_id"] == str(channel_id)]

    # -- REST -------------------------------------------------------------------------------

    async def _attachment(self, request: web.Request) -> web.Response:
        data = self.attachments.get(request.match_info["name"])
        if data is None:
            return web.Response(status=404)
        return web.Response(body=data, content_type="application/octet-stream")

    async def _parse(self, request: web.Request) -> tuple[Any, dict[str, tuple[str, bytes]]]:
        files: dict[str, tuple[str, bytes]] = {}
        if request.content_type.startswith("multipart/"):
            body: Any = None
            reader = await request.multipart()
            async for part in reader:
                if part.name == "payload_json":
                    body = json.loads(await part.text())
                elif part.name:
                    files[part.name] = (part.filename or "", await part.read())
            return body, files
        raw = await request.read()
        return (json.loads(raw) if raw else None), files

    def _message(self, channel_id: int, body: dict[str, Any], files: dict[str, Any],
                 *, interaction: Sent | None = None, flags: int = 0) -> dict[str, Any]:
        mid = self.snowflake()
        message = {
            "id": str(mid), "channel_id": str(channel_id), "type": 20 if interaction else 0,
            "author": {**User(BOT_ID, "fluxbot").payload(), "bot": True},
            "content": "", "timestamp": "2026-01-01T00:00:00+00:00", "edited_timestamp": None,
            "tts": False, "mention_everyone": False, "mentions": [], "mention_roles": [],
            "attachments": [], "embeds": [], "components": [], "pinned": False,
            "flags": flags, "application_id": str(APP_ID),
        }
        if channel_id in GUILD_OF_CHANNEL:
            message["guild_id"] = str(GUILD_OF_CHANNEL[channel_id])
        self._apply(message, body, files)
        self.messages[mid] = message
        return message

    def _apply(self, message: dict[str, Any], body: dict[str, Any] | None,
               files: dict[str, tuple[str, bytes]]) -> None:
        body = body or {}
        for key in ("content", "embeds", "components", "allowed_mentions"):
            if key in body and body[key] is not None:
                message[key] = body[key]
        if "attachments" in body:
            kept = []
            for item in body["attachments"] or []:
                part = files.get(f"files[{item['id']}]")
                if part is not None:
                    aid = str(self.snowflake())
                    key = f"{aid}/{part[0]}"
                    self.attachments[key] = part[1]
                    kept.append({"id": aid, "filename": part[0], "size": len(part[1]),
                                 "url": f"{self.url}/attachments/{key}",
                                 "proxy_url": f"{self.url}/attachments/{key}",
                                 **_described(part[1])})
                else:
                    kept.extend(a for a in message["attachments"] if a["id"] == str(item["id"]))
            message["attachments"] = kept
            if files:  # images uploaded: kept even if the message is deleted later
                self.uploads.append((int(message["id"]), _footer(message)))
        if body.get("flags") is not None:
            message["flags"] = body["flags"]
        if body.get("message_reference") and "message_reference" not in message:
            message["message_reference"] = body["message_reference"]

    def _check(self, body: dict[str, Any] | None, files: dict[str, tuple[str, bytes]],
               limit: int, *, creating: bool = False) -> web.Response | None:
        """Discord's own rules for a message (tests/fakes/discord_rules.py), then the upload
        limit of the interaction or the channel."""
        if problems := discord_rules.message(body, files, creating=creating):
            return self._refuse(problems)
        if sum(len(data) for _, data in files.values()) > limit:
            return _error(413, 40005, "Request entity too large")
        return None

    def _refuse(self, problems: list[str]) -> web.Response:
        """A 400 as Discord answers it; kept, as the bot should never be refused so."""
        self.schema_problems += problems
        return _json({"code": 50035, "message": "Invalid Form Body",
                      "errors": {"_errors": [{"message": p} for p in problems]}}, 400)

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["path"]
        body, files = await self._parse(request)
        call = Call(request.method, path, body, files, time.monotonic(), dict(request.headers),
                    dict(request.query))
        self.calls.append(call)
        self.touch()
        for fragment, left in list(self.rate_limit_next.items()):
            if fragment in path and left > 0 and request.method in ("PATCH", "POST"):
                self.rate_limit_next[fragment] = left - 1
                return _json({"message": "You are being rate limited.", "retry_after": 0.05,
                              "global": False}, 429,
                             {"Via": "1.1 google", "Retry-After": "0.05",
                              "X-RateLimit-Scope": "user"})
        await self.through_gates(request.method, path, call)
        if (refused := self._refused(request, path, body)) is not None:
            return refused
        drop = next((d for d in self.drops if d.matches(call)), None)
        if drop is not None:
            drop.times -= 1
            if drop.times <= 0:
                self.drops.remove(drop)
        try:
            if drop is not None and not drop.after:
                return self._reset(request)
            response = await self._route(request.method, path, body, files, call)
            return self._reset(request) if drop is not None else response
        finally:
            self.touch()

    def _refused(self, request: web.Request, path: str, body: Any) -> web.Response | None:
        """What Discord refuses before acting: a bot route without the bot's token, a body
        its OpenAPI document does not allow."""
        bot_route = not path.startswith(("/interactions/", "/webhooks/"))
        if bot_route and request.headers.get("Authorization") != f"Bot {BOT_TOKEN}":
            self.schema_problems.append(f"{request.method} {path} without the bot's token")
            return _json({"message": "401: Unauthorized", "code": 0}, 401)
        if self.check_documents and (problems := openapi.discord().problems(
                request.method, f"/api/v10{path}", body)):
            return self._refuse([f"{request.method} {path}: {p}" for p in problems])
        return None

    @staticmethod
    def _reset(request: web.Request) -> web.Response:
        assert request.transport is not None
        request.transport.abort()
        return web.Response(status=500)

    async def _route(self, method: str, path: str, body: Any, files: dict[str, Any],
                     call: Call) -> web.StreamResponse:
        parts = path.strip("/").split("/")
        if path == "/gateway/bot":
            return _json({"url": self.gateway_url, "shards": self.shard_count,
                          "session_start_limit": {"total": 1000, "remaining": 1000,
                                                  "reset_after": 0, "max_concurrency": 1}})
        if path == "/users/@me":
            return _json({**User(BOT_ID, "fluxbot").payload(), "bot": True, "flags": 0})
        if path == "/oauth2/applications/@me":
            return _json({"id": str(APP_ID), "name": "fluxbot", "description": "", "icon": None,
                          "bot_public": True, "bot_require_code_grant": False,
                          "owner": User(1, "owner").payload(), "verify_key": "x", "flags": 0,
                          "summary": ""})
        if parts[0] == "applications" and method == "PUT":
            scope = parts[3] if len(parts) > 3 and parts[2] == "guilds" else "global"
            # Discord answers with every field filled: context menus get description ""
            commands = [{"description": "", **c, "id": str(self.snowflake()),
                         "application_id": str(APP_ID), "version": "1"} for c in body]
            self.commands[scope] = commands
            return _json(commands)
        if path == "/users/@me/channels" and method == "POST":
            recipient = int(body["recipient_id"])
            dm_id = self.dm_channels.setdefault(recipient, self.snowflake())
            return _json({"id": str(dm_id), "type": 1, "last_message_id": None,
                          "recipients": [User(recipient, "member").payload()]})
        if parts[0] == "interactions":
            return self._callback(parts[2], body, files, call)
        if parts[0] == "webhooks":
            return self._webhook(method, parts, body, files)
        if parts[0] == "channels" and len(parts) >= 3 and parts[2] == "messages":
            return self._channel(method, int(parts[1]), parts[3:], body, files, call.query)
        return _error(404, 0, f"no route {method} {path}")

    def _callback(self, token: str, body: Any, files: dict[str, Any], call: Call
                  ) -> web.Response:
        sent = self.sent.get(token)
        if sent is None:
            return _error(404, 10062, "Unknown interaction")
        if sent.callbacks:
            return _error(400, 40060, "Interaction has already been acknowledged.")
        if time.monotonic() - sent.sent_at > self.deadline or token in self.expired_tokens:
            sent.too_late = True
            return _error(404, 10062, "Unknown interaction")
        kind = body["type"]
        data = body.get("data") or {}
        limit = sent.data["attachment_size_limit"]
        if problems := discord_rules.callback(sent.data["type"], body, files):
            return self._refuse(problems)
        if (problem := self._check(None, files, limit)) is not None:
            return problem
        sent.callbacks.append(call)
        interaction = {"id": str(sent.id), "type": sent.data["type"]}
        resource = None
        channel_id = int(sent.data["channel_id"])
        if kind in (4, 5):
            flags = data.get("flags") or 0
            message = self._message(channel_id, data, files, interaction=sent, flags=flags)
            if kind == 5:
                message["flags"] = flags | 128  # loading
            message["interaction_token"] = token
            call.json["_message_id"] = int(message["id"])
            interaction.update(response_message_id=message["id"],
                               response_message_loading=kind == 5,
                               response_message_ephemeral=bool(flags & 64))
            resource = {"type": kind, "message": {k: v for k, v in message.items()
                                                  if k != "interaction_token"}}
            if self.omit_message_id:
                del interaction["response_message_id"]
                resource = None
        elif kind == 7 and sent.data.get("message"):
            mid = int(sent.data["message"]["id"])
            if mid in self.messages:
                self._apply(self.messages[mid], data, files)
                call.json["_message_id"] = mid
        return _json({"interaction": interaction, "resource": resource})

    def _original(self, token: str) -> dict[str, Any] | None:
        for message in self.messages.values():
            if message.get("interaction_token") == token:
                return message
        return None

    def _webhook(self, method: str, parts: list[str], body: Any, files: dict[str, Any]
                 ) -> web.Response:
        token = parts[2]
        sent = self.sent.get(token)
        if sent is None or token in self.expired_tokens or \
                time.time() * 1000 - ((sent.id >> 22) + DISCORD_EPOCH) > TOKEN_LIFETIME * 1000:
            return _error(401, 50027, "Invalid Webhook Token")
        limit = sent.data["attachment_size_limit"]
        if len(parts) == 3 and method == "POST":  # followup
            if (problem := self._check(body, files, limit, creating=True)) is not None:
                return problem
            message = self._message(int(sent.data["channel_id"]), body, files,
                                    interaction=sent, flags=(body or {}).get("flags") or 0)
            return _json(self._public(message))
        target = parts[4] if len(parts) > 4 else ""
        message = self._original(token) if target == "@original" else \
            self.messages.get(int(target)) if target.isdigit() else None
        if message is None:
            return _error(404, 10008, "Unknown Message")
        if method == "GET":
            return _json(self._public(message))
        if method == "DELETE":
            self.messages.pop(int(message["id"]), None)
            return web.Response(status=204)
        if (problem := self._check(body, files, limit)) is not None:
            return problem
        self._apply(message, body, files)
        message["flags"] = message.get("flags", 0) & ~128
        message["edited_timestamp"] = "2026-01-01T00:00:01+00:00"
        return _json(self._public(message))

    def _channel(self, method: str, channel_id: int, rest: list[str], body: Any,
                 files: dict[str, Any], query: dict[str, str] | None = None) -> web.Response:
        if channel_id in self.forbidden_channels:
            return _error(403, 50013, "Missing Permissions")
        if not rest and method == "GET":  # the channel's history, newest first
            query = query or {}
            after, before = int(query.get("after", 0)), int(query.get("before", 2**64))
            found = sorted((m for mid, m in self.messages.items() if after < mid < before and
                            m["channel_id"] == str(channel_id)), key=lambda m: -int(m["id"]))
            return _json([self._public(m) for m in found[:int(query.get("limit", 50))]])
        if not rest and method == "POST":
            if (problem := self._check(body, files, 10 * 1024 * 1024, creating=True)) \
                    is not None:
                return problem
            nonce = (body or {}).get("nonce")
            if nonce is not None and (body or {}).get("enforce_nonce"):
                # Discord answers a repeated nonce with the message it made the first time
                known = self.nonces.get((channel_id, str(nonce)))
                if known is not None and known in self.messages:
                    return _json(self._public(self.messages[known]))
            message = self._message(channel_id, body, files)
            if nonce is not None:
                self.nonces[(channel_id, str(nonce))] = int(message["id"])
            return _json(self._public(message))
        message = self.messages.get(int(rest[0])) if rest and rest[0].isdigit() else None
        if message is None or message["channel_id"] != str(channel_id):
            return _error(404, 10008, "Unknown Message")
        if method == "GET":
            return _json(self._public(message))
        if method == "DELETE":
            self.messages.pop(int(message["id"]))
            return web.Response(status=204)
        if method == "PATCH":
            if (problem := self._check(body, files, 10 * 1024 * 1024)) is not None:
                return problem
            self._apply(message, body, files)
            return _json(self._public(message))
        return _error(405, 0, "method not allowed")

    @staticmethod
    def _public(message: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in message.items() if k not in ("interaction_token",
                                                              "allowed_mentions")}

