"""What the loopback Discord and its tests share: ids and tokens, the payloads of the test
server and its members, and the records of what was sent and answered."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from PIL import Image

DISCORD_EPOCH = 1420070400000
APP_ID = 900000000000000001
BOT_ID = APP_ID
GUILD_ID = 910000000000000001
CHANNEL_ID = 920000000000000001
NSFW_CHANNEL_ID = 920000000000000002
OTHER_CHANNEL_ID = 920000000000000003
OTHER_GUILD_ID = 910000000004194305  # on shard 1 of 2 (GUILD_ID is on shard 0)
OTHER_GUILD_CHANNEL_ID = 920000000000000004
GUILD_OF_CHANNEL = {CHANNEL_ID: GUILD_ID, NSFW_CHANNEL_ID: GUILD_ID, OTHER_CHANNEL_ID: GUILD_ID,
                    OTHER_GUILD_CHANNEL_ID: OTHER_GUILD_ID}
MOD_ROLE_ID = 930000000000000001
ARTIST_ROLE_ID = 930000000000000077  # a role that is not a moderator's (e.g. allowed to train)
BOT_TOKEN = "bot.token.for-tests-0123456789"
EVERYONE_PERMISSIONS = "2248473465835073"
MANAGE_GUILD = 1 << 5
MEMBER_PERMISSIONS = str(int(EVERYONE_PERMISSIONS) & ~MANAGE_GUILD)
MOD_PERMISSIONS = str(int(EVERYONE_PERMISSIONS) | MANAGE_GUILD)
TOKEN_LIFETIME = 15 * 60


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    # exactly application/json: discord.py reads anything else as text (notes §2.1)
    return web.Response(status=status, body=json.dumps(data).encode(),
                        headers={"Content-Type": "application/json", **(headers or {})})


def _footer(message: dict[str, Any]) -> str:
    embeds = message.get("embeds") or []
    return str(((embeds[0] if embeds else {}).get("footer") or {}).get("text", ""))


def _error(status: int, code: int, message: str) -> web.Response:
    return _json({"code": code, "message": message}, status)


@dataclass
class User:
    id: int
    name: str
    locale: str = "en-US"
    roles: tuple[int, ...] = ()
    permissions: str = MEMBER_PERMISSIONS

    def payload(self) -> dict[str, Any]:
        return {"id": str(self.id), "username": self.name, "discriminator": "0",
                "global_name": self.name.title(), "avatar": None}


@dataclass
class Call:
    method: str
    path: str
    json: Any
    files: dict[str, tuple[str, bytes]]
    at: float
    headers: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)


@dataclass
class Drop:
    """Cut the connection of the next `times` matching requests, as a reset does: `before`
    Discord acts on them (nothing happened), or `after` (it acted; the answer is lost)."""

    method: str
    fragment: str
    after: bool = False
    times: int = 1
    match: Any = None  # a predicate on the `Call`

    def matches(self, call: Call) -> bool:
        return self.method in (call.method, "*") and self.fragment in call.path and \
            (self.match is None or self.match(call))


@dataclass
class Sent:
    """An interaction the test sent, and what the bot answered."""

    id: int
    token: str
    sent_at: float
    data: dict[str, Any]
    callbacks: list[Call] = field(default_factory=list)
    too_late: bool = False  # the bot answered after Discord's 3 s

    @property
    def answered_in(self) -> float | None:
        return self.callbacks[0].at - self.sent_at if self.callbacks else None


def shard_of(guild_id: int, shard_count: int) -> int:
    """Discord's rule; direct messages go to shard 0."""
    return (guild_id >> 22) % shard_count if guild_id else 0


def guild(owner: User, guild_id: int = GUILD_ID) -> dict[str, Any]:
    """A test server as GUILD_CREATE carries it: complete, or discord.py breaks."""
    def channel(cid: int, name: str, nsfw: bool = False) -> dict[str, Any]:
        return {"id": str(cid), "type": 0, "name": name, "position": 0, "nsfw": nsfw,
                "permission_overwrites": [], "guild_id": str(guild_id), "topic": None,
                "last_message_id": None, "rate_limit_per_user": 0, "parent_id": None}

    channels = [channel(cid, "general" if cid in (CHANNEL_ID, OTHER_GUILD_CHANNEL_ID) else
                        "art" if cid == NSFW_CHANNEL_ID else "off-topic",
                        nsfw=cid == NSFW_CHANNEL_ID)
                for cid, gid in GUILD_OF_CHANNEL.items() if gid == guild_id]
    return {
        "id": str(guild_id), "name": "Test server" if guild_id == GUILD_ID else "Other server",
        "icon": None, "splash": None,
        "discovery_splash": None, "owner_id": str(owner.id), "afk_channel_id": None,
        "afk_timeout": 300, "verification_level": 0, "default_message_notifications": 0,
        "explicit_content_filter": 0, "mfa_level": 0, "nsfw_level": 0, "premium_tier": 0,
        "premium_subscription_count": 0, "preferred_locale": "en-US", "features": [],
        "system_channel_id": None, "system_channel_flags": 0, "rules_channel_id": None,
        "vanity_url_code": None, "description": None, "banner": None,
        "max_members": 1000, "application_id": None, "public_updates_channel_id": None,
        "roles": [
            {"id": str(guild_id), "name": "@everyone", "permissions": EVERYONE_PERMISSIONS,
             "position": 0, "color": 0, "hoist": False, "managed": False,
             "mentionable": False, "flags": 0},
            {"id": str(MOD_ROLE_ID), "name": "mods", "permissions": EVERYONE_PERMISSIONS,
             "position": 1, "color": 0, "hoist": False, "managed": False,
             "mentionable": False, "flags": 0},
            {"id": str(ARTIST_ROLE_ID), "name": "artists", "permissions": EVERYONE_PERMISSIONS,
             "position": 2, "color": 0, "hoist": False, "managed": False,
             "mentionable": False, "flags": 0}],
        "emojis": [], "stickers": [], "channels": channels,
        "threads": [], "members": [], "voice_states": [], "presences": [],
        "stage_instances": [], "guild_scheduled_events": [], "member_count": 3,
        "large": False, "unavailable": False, "joined_at": "2025-01-01T00:00:00+00:00",
    }


def member(user: User) -> dict[str, Any]:
    return {"user": user.payload(), "roles": [str(r) for r in user.roles],
            "joined_at": "2025-01-01T00:00:00+00:00", "deaf": False, "mute": False,
            "flags": 0, "permissions": user.permissions, "nick": None, "avatar": None,
            "pending": False, "communication_disabled_until": None}


def _described(data: bytes) -> dict[str, Any]:
    """What Discord adds to an uploaded image: its type and size, read from the bytes."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return {"content_type": Image.MIME.get(image.format or "", "image/png"),
                    "width": image.width, "height": image.height}
    except (OSError, ValueError):
        return {}
