"""One of several processes reserving at the same moment (test_processes.py): opens the
database, says "ready", waits for "go" on stdin, reserves `count` single-image jobs for one
member of one server, and prints how many it was granted and why the rest were refused."""

from __future__ import annotations

import asyncio
import json
import sys

from bot.config import QuotaSettings
from bot.storage import Storage
from bot.storage.quota import JobRequest, QuotaRefused


async def main(location: str, count: int, users: int, daily: int, guild_daily: int) -> None:
    storage = await Storage.open(location, QuotaSettings(daily=daily, guild_daily=guild_daily,
                                                         per_user_concurrent=0))
    try:
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        requests = [JobRequest(guild_id=1000, channel_id=50, user_id=1 + i % users,
                               prompt="a castle", options={}, images=1) for i in range(count)]
        results = await asyncio.gather(*(storage.quota.reserve(r) for r in requests),
                                       return_exceptions=True)
        unexpected = [repr(r) for r in results
                      if isinstance(r, BaseException) and not isinstance(r, QuotaRefused)]
        print(json.dumps({
            "granted": [r.job_id for r in results if not isinstance(r, BaseException)],
            "refused": sorted({r.key for r in results if isinstance(r, QuotaRefused)}),
            "unexpected": unexpected}), flush=True)
    finally:
        await storage.close()


if __name__ == "__main__":
    location, count, users, daily, guild_daily = sys.argv[1:6]
    asyncio.run(main(location, int(count), int(users), int(daily), int(guild_daily)))
