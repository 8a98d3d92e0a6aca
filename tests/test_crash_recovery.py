"""The bot as a separate process, killed with SIGKILL mid-job and started again: nothing lost,
nothing posted twice, no prediction created twice, the ledger right, no secret in any log or
file it wrote."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import stat
import sys
from pathlib import Path

from tests.fakes.discord_server import BOT_TOKEN, GUILD_ID, FakeDiscord
from tests.fakes.replicate_server import TOKEN, FakeReplicate, Scenario

ROOT = Path(__file__).resolve().parents[1]


async def start_bot(config: Path, log: Path, discord: FakeDiscord
                    ) -> asyncio.subprocess.Process:
    discord.identified.clear()
    env = {**os.environ, "DISCORD_TOKEN": BOT_TOKEN, "REPLICATE_API_TOKEN": TOKEN,
           "PYTHONPATH": str(ROOT)}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", "--config", str(config), env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=log.open("ab"))
    await asyncio.wait_for(discord.identified.wait(), 30)
    return process


async def test_sigkill_mid_job_then_restart(tmp_path: Path, fake: FakeReplicate):
    data = tmp_path / "data"
    log = tmp_path / "bot.log"
    fake.wait_scale = 1.0
    async with FakeDiscord() as discord:
        config = tmp_path / "config.toml"
        config.write_text(
            f'[discord]\napi_base = "{discord.api_base}"\ngateway_url = "{discord.gateway_url}"\n'
            f'[replicate]\napi_base = "{fake.relay_base}"\nwait_seconds = 5\n'
            f'[storage]\ndatabase = "{data / "bot.db"}"\n'
            '[logging]\nlevel = "DEBUG"\nformat = "json"\n')
        fake.next_scenarios = [Scenario(outcome="stuck"),               # polled, id stored
                               Scenario(outcome="stuck", duration=60)]  # create still held
        process = await start_bot(config, log, discord)
        try:
            followed = await discord.slash("imagine", {"prompt": "survives", "num_outputs": 2})
            await fake.wait_for(lambda: fake.calls("GET"))
            held = await discord.slash("imagine", {"prompt": "never started"})
            await fake.wait_for(lambda: len(fake.predictions) == 2)
            await discord.wait_for(lambda: held.callbacks)
        finally:
            process.send_signal(signal.SIGKILL)
            await process.wait()
        assert process.returncode == -signal.SIGKILL

        first, _held_prediction = fake.predictions.values()
        assert first.status == "processing"
        first.scenario = Scenario(outcome="succeeded")  # it ends while the bot is dead
        process = await start_bot(config, log, discord)
        try:
            message = await discord.wait_for(
                lambda: (m := discord.message_for(followed)) and m["attachments"] and m, 30)
            # the job that never reached Replicate: its message says so (the token still lives)
            told = await discord.wait_for(
                lambda: (m := discord.message_for(held)) and m["embeds"][0]["title"] ==
                "Failed" and m, 30)
        finally:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), 30)

    assert len(message["attachments"]) == 2
    assert len([c for c in discord.calls if c.files]) == 1  # posted once
    assert len(fake.creates) == 2  # the first job was followed again, not created again
    assert "restarted before this job started" in told["embeds"][0]["description"]
    assert "1 credit(s) refunded" in told["embeds"][0]["description"]
    with sqlite3.connect(data / "bot.db") as db:
        statuses = dict(db.execute("SELECT prompt, status FROM generations"))
        used = db.execute("SELECT SUM(amount) FROM ledger WHERE guild_id = ?",
                          (GUILD_ID,)).fetchone()[0]
        in_flight = db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
    assert statuses == {"survives": "succeeded", "never started": "failed"}
    assert used == 2 and in_flight == 0
    # secrets: no token in any line the bot logged at DEBUG, nor in any file it wrote
    text = log.read_bytes()
    assert b'"level": "DEBUG"' in text and b'"job": ' in text
    for secret in (BOT_TOKEN.encode(), TOKEN.encode()):
        assert secret not in text
        for path in data.iterdir():
            assert secret not in path.read_bytes(), path
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "bot.db").stat().st_mode) == 0o600
