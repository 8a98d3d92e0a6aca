"""The bot as a separate process, killed with SIGKILL mid-job and started again: nothing lost,
nothing posted twice, no prediction created twice, the ledger right, no secret in any log or
file it wrote."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import stat
from pathlib import Path

from tests.fakes.discord_server import BOT_TOKEN, GUILD_ID, FakeDiscord
from tests.fakes.replicate_server import TOKEN, FakeReplicate, Scenario
from tests.process import start_bot


async def test_sigkill_mid_job_then_restart(tmp_path: Path, fake: FakeReplicate):
    """With the default `wait_seconds` (60): one job killed while polling, one killed while
    `Prefer: wait` held its create, so its prediction id never reached the bot. Both
    predictions end (billed) while the bot is dead; the next start finds both and posts each
    once."""
    data = tmp_path / "data"
    log = tmp_path / "bot.log"
    fake.wait_scale = 1.0
    fake.scenario = Scenario(manual=True)  # each prediction moves only when the test says
    async with FakeDiscord() as discord:
        config = tmp_path / "config.toml"
        config.write_text(
            f'[discord]\napi_base = "{discord.api_base}"\ngateway_url = "{discord.gateway_url}"\n'
            f'[replicate]\napi_base = "{fake.relay_base}"\n'
            f'[storage]\ndatabase = "{data / "bot.db"}"\n'
            '[logging]\nlevel = "DEBUG"\nformat = "json"\n')
        process = await start_bot(config, log, discord)
        try:
            followed = await discord.slash("imagine", {"prompt": "survives", "num_outputs": 2})
            await fake.wait_for(lambda: fake.holding)
            fake.release_holds()  # the hold ran out: the bot has the id and polls
            await fake.wait_for(lambda: fake.calls("GET", "/predictions/"))
            held = await discord.slash("imagine", {"prompt": "held at the kill"})
            await fake.wait_for(lambda: len(fake.predictions) == 2 and fake.holding)
        finally:
            process.send_signal(signal.SIGKILL)
            await process.wait()
        assert process.returncode == -signal.SIGKILL

        for prediction in fake.predictions.values():
            fake.finish(prediction.id)  # both end while the bot is dead: billed
        process = await start_bot(config, log, discord)
        try:
            posted = [await discord.wait_for(
                lambda sent=sent: (m := discord.message_for(sent)) and m["attachments"] and m,
                30) for sent in (followed, held)]
            await discord.wait_for(lambda: all(
                m["embeds"][0]["title"] == "Done" for m in posted), 30)
        finally:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), 30)

    assert [len(m["attachments"]) for m in posted] == [2, 1]
    assert len([c for c in discord.calls if c.files]) == 2  # each posted once
    assert len(fake.creates) == 2  # found again, never created again
    assert fake.lists  # the held one was found in the account's list
    with sqlite3.connect(data / "bot.db") as db:
        statuses = dict(db.execute("SELECT prompt, status FROM generations"))
        used = db.execute("SELECT SUM(amount) FROM ledger WHERE guild_id = ?",
                          (GUILD_ID,)).fetchone()[0]
        in_flight = db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
    assert statuses == {"survives": "succeeded", "held at the kill": "succeeded"}
    assert used == 3 and in_flight == 0
    # secrets: no token in any line the bot logged at DEBUG, nor in any file it wrote
    text = log.read_bytes()
    assert b'"level": "DEBUG"' in text and b'"job": ' in text
    for secret in (BOT_TOKEN.encode(), TOKEN.encode()):
        assert secret not in text
        for path in data.iterdir():
            assert secret not in path.read_bytes(), path
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "bot.db").stat().st_mode) == 0o600


async def test_sigkill_mid_training_then_restart(tmp_path: Path, fake: FakeReplicate):
    """A training is long: killed while it runs, it ends while the bot is dead; the next start
    follows it again, puts its LoRA in the catalogue once, makes one sample and pings once."""
    from tests.cogs.test_training import make_zip
    from tests.fakes.trainer import DESTINATION

    data, log = tmp_path / "data", tmp_path / "bot.log"
    fake.next_scenarios = [Scenario(manual=True)]  # the training; the sample runs by itself
    async with FakeDiscord() as discord:
        config = tmp_path / "config.toml"
        config.write_text(
            f'[discord]\napi_base = "{discord.api_base}"\ngateway_url = "{discord.gateway_url}"\n'
            f'[replicate]\napi_base = "{fake.relay_base}"\n'
            f'[storage]\ndatabase = "{data / "bot.db"}"\n'
            f'[training]\nenabled = true\ndestination = "{DESTINATION}"\ncredits = 5\n')
        process = await start_bot(config, log, discord)
        try:
            zipped = discord.attachment("pics.zip", make_zip(), "application/zip")
            await discord.slash("lora", {"name": "zx", "trigger": "zxstyle", "steps": 20},
                                subcommand="train", attachments={"images": zipped},
                                user=discord.moderator)
            await fake.wait_for(lambda: fake.predictions)
            (training,) = fake.predictions.values()
            training.advance()  # running, when the kill comes
            await fake.wait_for(lambda: fake.calls("GET", "/trainings/"))
        finally:
            process.send_signal(signal.SIGKILL)
            await process.wait()
        fake.finish(training.id)  # it ends while the bot is dead
        process = await start_bot(config, log, discord)
        try:
            ping = await discord.wait_for(lambda: next(
                (m for m in discord.channel_messages() if m["attachments"]), None), 30)
            await discord.wait_for(lambda: ping["embeds"][0]["title"] == "Done", 30)
        finally:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), 30)

    pings = [c.json["content"] for c in discord.calls
             if c.method == "POST" and "your LoRA" in ((c.json or {}).get("content") or "")]
    assert pings == [f"<@{discord.moderator.id}> your LoRA `zx` is ready. Use it with "
                     "`/imagine lora:zx` and the trigger `zxstyle`; here is a first picture:"]
    assert len(ping["attachments"]) == 1  # the first picture, under the ping
    assert len(fake.calls("POST", "/trainings")) == 1  # followed again, never created again
    with sqlite3.connect(data / "bot.db") as db:
        loras = db.execute("SELECT name, ref FROM guild_loras").fetchall()
        kinds = dict(db.execute("SELECT kind, status FROM generations"))
        used = db.execute("SELECT SUM(amount) FROM ledger").fetchone()[0]
        in_flight = db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
    assert loras == [("zx", f"https://replicate.delivery/xezq/{training.id}/trained_model.tar")]
    assert kinds == {"train": "succeeded", "imagine": "succeeded"}
    assert used == 5 and in_flight == 0  # the sample came with the training's credits
