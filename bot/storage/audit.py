"""The audit log: every moderator action, written in the same transaction as the action."""

from __future__ import annotations

import json
from typing import Any

from bot.storage.database import Transaction


async def audit(tx: Transaction, guild_id: int, actor_id: int, action: str,
                target_id: int | None, details: dict[str, Any], now: float) -> None:
    """Record a moderator action in the same transaction as the action itself."""
    await tx.execute(
        "INSERT INTO audit_log (guild_id, actor_id, action, target_id, details, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (guild_id, actor_id, action, target_id, json.dumps(details, ensure_ascii=False), now))
