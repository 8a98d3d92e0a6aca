"""Members' personal defaults for /imagine, kept as a small JSON object per member."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from bot.storage.database import Database


class UserSettings:
    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock

    async def get(self, user_id: int) -> dict[str, Any]:
        row = await self.db.fetchone("SELECT settings FROM user_settings WHERE user_id = ?",
                                     (user_id,))
        return json.loads(row["settings"]) if row else {}

    async def update(self, user_id: int, values: dict[str, Any]) -> dict[str, Any]:
        """Merge `values` into the member's defaults (None removes a key); returns them all."""
        async with self.db.transaction() as tx:
            row = await tx.fetchone("SELECT settings FROM user_settings WHERE user_id = ?",
                                    (user_id,))
            current = json.loads(row["settings"]) if row else {}
            for key, value in values.items():
                if value is None:
                    current.pop(key, None)
                else:
                    current[key] = value
            await tx.execute(
                "INSERT INTO user_settings (user_id, settings, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (user_id) DO UPDATE SET settings = excluded.settings,"
                " updated_at = excluded.updated_at",
                (user_id, json.dumps(current, ensure_ascii=False, sort_keys=True), self.clock()))
            return current

    async def reset(self, user_id: int) -> bool:
        return bool(await self.db.execute("DELETE FROM user_settings WHERE user_id = ?",
                                          (user_id,)))
