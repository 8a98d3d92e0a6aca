"""Bans, the audit log, personal settings and the server LoRA catalogue."""

from __future__ import annotations

from bot.catalogue import LoraChoice
from tests.bot.storage.conftest import GUILD


async def test_every_moderator_action_is_audited(open_storage):
    storage = await open_storage()
    await storage.moderation.ban(GUILD, 5, actor_id=9, reason="spam")
    await storage.moderation.unban(GUILD, 5, actor_id=9)
    await storage.quota.grant(GUILD, 5, 3, actor_id=9)
    await storage.quota.reset(GUILD, 5, actor_id=9)
    await storage.quota.set_limits(GUILD, 5, actor_id=9, daily=4)
    await storage.loras.add(GUILD, LoraChoice(ref="a/b", name="Neon"), actor_id=9)
    await storage.loras.remove(GUILD, "neon", actor_id=9)
    await storage.moderation.record(GUILD, 9, "cancel", 5, {"job": 12})
    log = await storage.moderation.audit_log(GUILD)
    assert [e.action for e in log] == ["cancel", "lora-remove", "lora-add", "quota-set",
                                       "quota-reset", "quota-grant", "unban", "ban"]
    assert log[-1].details == {"reason": "spam"} and log[-1].target_id == 5
    assert all(e.actor_id == 9 for e in log)
    assert await storage.moderation.audit_log(GUILD + 1) == []


async def test_ban_details(open_storage, clock):
    storage = await open_storage()
    await storage.moderation.ban(GUILD, 5, actor_id=9, reason="first")
    await storage.moderation.ban(GUILD, 5, actor_id=8, reason="second")
    ban = await storage.moderation.get_ban(GUILD, 5)
    assert (ban.reason, ban.banned_by, ban.banned_at) == ("second", 8, clock.now)
    assert await storage.moderation.get_ban(GUILD + 1, 5) is None


async def test_personal_settings(open_storage):
    storage = await open_storage()
    settings = storage.settings
    assert await settings.get(1) == {}
    await settings.update(1, {"aspect_ratio": "16:9", "steps": 20})
    assert await settings.update(1, {"steps": None, "lora": "a/b"}) == {
        "aspect_ratio": "16:9", "lora": "a/b"}
    assert await settings.get(2) == {}
    assert await settings.reset(1) and await settings.get(1) == {}


async def test_server_lora_catalogue(open_storage):
    storage = await open_storage()
    loras = storage.loras
    assert await loras.add(GUILD, LoraChoice(ref="a/neon", name="Neon", trigger="neon",
                                             scale=0.7, description="glow"), actor_id=9)
    assert not await loras.add(GUILD, LoraChoice(ref="a/neon2", name="NEON"), actor_id=9)
    await loras.add(GUILD, LoraChoice(ref="a/ink", name="ink"), actor_id=9)
    listed = await loras.list(GUILD)
    assert [(e.name, e.ref) for e in listed] == [("ink", "a/ink"), ("NEON", "a/neon2")]
    assert await loras.list(GUILD + 1) == []
    assert await loras.remove(GUILD, " Neon ", actor_id=9)
    assert not await loras.remove(GUILD, "neon", actor_id=9)
