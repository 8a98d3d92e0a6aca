"""A process killed with SIGKILL in the middle of a reservation leaves the database whole."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from bot.config import QuotaSettings
from bot.storage import Storage
from bot.storage.quota import JobRequest

SCRIPT = """
import asyncio, sys
from bot.config import QuotaSettings
from bot.storage import Storage
from bot.storage.database import Database
from bot.storage.sqlite import SqliteDatabase, SqliteTransaction as Transaction
from bot.storage.quota import JobRequest

def job():
    return JobRequest(guild_id=1, channel_id=2, user_id=3, prompt="x", options={}, images=2)

async def main(path):
    storage = await Storage.open(path, QuotaSettings(daily=10, per_user_concurrent=0))
    await storage.quota.reserve(job())
    write_ledger = Transaction.executemany
    # statement by statement (not in one trip to the database thread), so that one can stall
    SqliteDatabase.run_all = Database.run_all

    async def stall(self, sql, rows):
        await write_ledger(self, sql, rows)  # the rows are written, not yet committed
        print("inside", flush=True)
        await asyncio.sleep(60)

    Transaction.executemany = stall
    await storage.quota.reserve(job())

asyncio.run(main(sys.argv[1]))
"""


async def test_sigkill_during_a_reservation(tmp_path: Path):
    path = tmp_path / "bot.db"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SCRIPT, str(path), env=env, stdout=asyncio.subprocess.PIPE)
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 30)
    assert line.strip() == b"inside"
    process.send_signal(signal.SIGKILL)
    await process.wait()
    assert process.returncode == -signal.SIGKILL

    storage = await Storage.open(path, QuotaSettings(daily=10, per_user_concurrent=0))
    try:
        assert (await storage.db.fetchone("PRAGMA integrity_check"))[0] == "ok"
        counts = [
            (await storage.db.fetchone(f"SELECT COUNT(*) FROM {table}"))[0]
            for table in ("generations", "jobs", "ledger")]
        assert counts == [1, 1, 1]  # only the first, finished reservation
        status = await storage.quota.status(1, 3)
        assert status.periods[0].used == 2 and status.in_flight == 1
        more = JobRequest(guild_id=1, channel_id=2, user_id=3, prompt="y", options={}, images=8)
        assert (await storage.quota.reserve(more)).credits == 8  # 2 + 8 = the daily 10
    finally:
        await storage.close()
