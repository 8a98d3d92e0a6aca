"""`flux-lora-bot run` as an admin starts it: a separate process on the loopback Discord and
the local Replicate, syncing commands, serving /imagine, and stopping cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from tests.fakes.discord_server import BOT_TOKEN, FakeDiscord
from tests.fakes.replicate_server import TOKEN, FakeReplicate, Scenario


async def test_run_serves_imagine_and_stops_on_sigterm(tmp_path: Path, fake: FakeReplicate):
    async with FakeDiscord() as discord:
        config = tmp_path / "config.toml"
        config.write_text(
            f'[discord]\napi_base = "{discord.api_base}"\ngateway_url = "{discord.gateway_url}"\n'
            f'[replicate]\napi_base = "{fake.relay_base}"\nwait_seconds = 5\n'
            f'[storage]\ndatabase = "{tmp_path / "data" / "bot.db"}"\n')
        fake.scenario = Scenario(duration=0.1)
        env = {**os.environ, "DISCORD_TOKEN": BOT_TOKEN, "REPLICATE_API_TOKEN": TOKEN,
               "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run", "--config", str(config), "--sync-commands",
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            await asyncio.wait_for(discord.identified.wait(), 30)
            assert "imagine" in {c["name"] for c in discord.commands["global"]}
            await discord.wait_for(lambda: discord.ready_count and discord.sockets)
            sent = await discord.slash("imagine", {"prompt": "a castle"})
            await discord.wait_for(lambda: any(
                m["attachments"] for m in discord.channel_messages()), 30)
            assert sent.callbacks and not sent.too_late  # within Discord's 3 s, which it keeps
            fake.scenario = Scenario(outcome="stuck")
            await discord.slash("imagine", {"prompt": "still running"})
            await fake.wait_for(lambda: len(fake.predictions) == 2)
            second = list(fake.predictions)[1]
            await fake.wait_for(lambda: fake.calls("GET", second))  # stored, then polled
            process.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(process.communicate(), 30)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert process.returncode == 0, err.decode()[-2000:]
    assert b"Traceback" not in err, err.decode()[-3000:]
    assert BOT_TOKEN.encode() not in err and TOKEN.encode() not in err
    # the running job was left for the next start, its prediction untouched
    assert not fake.calls("POST", "/cancel")
    import sqlite3

    with sqlite3.connect(tmp_path / "data" / "bot.db") as db:
        assert db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 1
