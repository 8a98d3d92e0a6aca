"""What a test makes the loopback Discord send the bot: slash commands, autocomplete, button
presses (only of buttons that are on the message), form submissions, uploaded attachments."""

from __future__ import annotations

import time
from typing import Any

from tests.fakes.discord_payloads import (
    APP_ID,
    CHANNEL_ID,
    EVERYONE_PERMISSIONS,
    GUILD_OF_CHANNEL,
    NSFW_CHANNEL_ID,
    Sent,
    User,
    member,
)


class Interactions:
    """Mixed into `FakeDiscord`, which gives `snowflake`, `dispatch`, `messages`, `sent`,
    `attachments`, `member` (the default user) and `url`."""

    async def interact(self, kind: int, data: dict[str, Any], *, user: User | None = None,
                       channel_id: int = CHANNEL_ID, message: dict[str, Any] | None = None,
                       upload_limit: int = 10 * 1024 * 1024, dm: bool = False) -> Sent:
        """Dispatch an INTERACTION_CREATE and return its record."""
        user = user or self.member
        interaction_id = self.snowflake()
        token = f"itok-{interaction_id}"
        nsfw = channel_id == NSFW_CHANNEL_ID
        guild_id = GUILD_OF_CHANNEL.get(channel_id, 0)
        payload: dict[str, Any] = {
            "id": str(interaction_id), "application_id": str(APP_ID), "type": kind,
            "token": token, "version": 1, "data": data, "locale": user.locale,
            "channel_id": str(channel_id), "app_permissions": EVERYONE_PERMISSIONS,
            "attachment_size_limit": upload_limit, "entitlements": [], "context": 0,
            "authorizing_integration_owners": {"0": str(guild_id)},
            "channel": {"id": str(channel_id), "type": 1 if dm else 0, "name": "general",
                        "nsfw": nsfw, **({} if dm else {"guild_id": str(guild_id)})},
        }
        if dm:
            payload["user"] = user.payload()
            payload["context"] = 1
        else:
            payload.update(guild_id=str(guild_id), guild_locale="en-US",
                           member=member(user))
        if message is not None:
            payload["message"] = message
        sent = Sent(interaction_id, token, time.monotonic(), payload)
        self.sent[token] = sent
        await self.dispatch("INTERACTION_CREATE", payload)
        return sent

    async def slash(self, name: str, options: dict[str, Any] | None = None, *,
                    subcommand: str | None = None, attachments: dict[str, Any] | None = None,
                    **kwargs: Any) -> Sent:
        """A chat-input command, options by name (types guessed from the Python values)."""
        resolved: dict[str, Any] = {}

        def option(key: str, value: Any) -> dict[str, Any]:
            if isinstance(value, User):  # a member picked in a user option
                resolved.setdefault("users", {})[str(value.id)] = value.payload()
                picked = {k: v for k, v in member(value).items() if k != "user"}
                resolved.setdefault("members", {})[str(value.id)] = picked
                return {"name": key, "type": 6, "value": str(value.id)}
            kind = 5 if isinstance(value, bool) else 4 if isinstance(value, int) else \
                10 if isinstance(value, float) else 3
            return {"name": key, "type": kind, "value": value}

        opts = [option(k, v) for k, v in (options or {}).items()]
        data: dict[str, Any] = {"id": str(self.snowflake()), "name": name, "type": 1}
        if resolved:
            data["resolved"] = resolved
        if attachments:
            data.setdefault("resolved", {})["attachments"] = {}
            for key, attachment in attachments.items():
                data["resolved"]["attachments"][attachment["id"]] = attachment
                opts.append({"name": key, "type": 11, "value": attachment["id"]})
        if subcommand:
            opts = [{"name": subcommand, "type": 1, "options": opts}]
        data["options"] = opts
        return await self.interact(2, data, **kwargs)

    async def autocomplete(self, name: str, focused: str, value: str,
                           options: dict[str, Any] | None = None, *,
                           subcommand: str | None = None, **kwargs: Any) -> Sent:
        opts = [{"name": k, "type": 3, "value": v} for k, v in (options or {}).items()]
        opts.append({"name": focused, "type": 3, "value": value, "focused": True})
        if subcommand:
            opts = [{"name": subcommand, "type": 1, "options": opts}]
        return await self.interact(4, {"id": str(self.snowflake()), "name": name, "type": 1,
                                       "options": opts}, **kwargs)

    async def click(self, custom_id: str, message_id: int, *, values: list[str] | None = None,
                    **kwargs: Any) -> Sent:
        """Press a button (or choose in a select menu) on a message the bot sent."""
        message = self.messages[message_id]
        pressed = next((c for row in message.get("components") or []
                        for c in row.get("components", []) if c.get("custom_id") == custom_id),
                       None)
        if pressed is None or pressed.get("disabled"):
            raise ValueError(f"no enabled {custom_id!r} on message {message_id}: a member "
                             "cannot press it")
        kwargs.setdefault("channel_id", int(message["channel_id"]))  # where the message is
        data: dict[str, Any] = {"custom_id": custom_id, "component_type": pressed["type"]}
        if values is not None:
            known = {o["value"] for o in pressed.get("options", [])}
            if pressed["type"] != 3 or not set(values) <= known:
                raise ValueError(f"{values} are not options of {custom_id!r}")
            data["values"] = values
        return await self.interact(3, data, message=message, **kwargs)

    async def app_command(self, name: str, message_id: int, **kwargs: Any) -> Sent:
        """Choose a message command in the Apps menu of a message the bot sent."""
        message = self.messages[message_id]
        kwargs.setdefault("channel_id", int(message["channel_id"]))
        public = {k: v for k, v in message.items() if k not in ("interaction_token",
                                                                "allowed_mentions")}
        data = {"id": str(self.snowflake()), "name": name, "type": 3,
                "target_id": str(message_id),
                "resolved": {"messages": {str(message_id): public}}}
        return await self.interact(2, data, **kwargs)

    async def submit(self, custom_id: str, fields: dict[str, str], **kwargs: Any) -> Sent:
        """Submit a form (modal) the bot opened."""
        rows = [{"type": 1, "components": [{"type": 4, "custom_id": k, "value": v}]}
                for k, v in fields.items()]
        return await self.interact(5, {"custom_id": custom_id, "components": rows}, **kwargs)

    def attachment(self, filename: str, data: bytes, content_type: str | None,
                   width: int | None = None, height: int | None = None) -> dict[str, Any]:
        """An uploaded file as Discord describes it (width/height only for real images)."""
        attachment_id = str(self.snowflake())
        key = f"{attachment_id}/{filename}"
        self.attachments[key] = data
        payload: dict[str, Any] = {"id": attachment_id, "filename": filename, "size": len(data),
                                   "url": f"{self.url}/attachments/{key}",
                                   "proxy_url": f"{self.url}/attachments/{key}"}
        if content_type:
            payload["content_type"] = content_type
        if width is not None:
            payload.update(width=width, height=height)
        return payload

    # -- what the bot did -------------------------------------------------------------------
