"""Two real bot processes, `shard_ids` [0] and [1] of 2, on one PostgreSQL database and the
loopback Discord's sharded gateway: jobs in servers of both shards, the shard-1 process killed
-9 mid-job and started again while a shard-0 job runs on. Each job is posted once; the restarted
process resumes its own jobs and leaves the other's alone."""

from __future__ import annotations

from pathlib import Path

from bot.config import QuotaSettings
from bot.storage import Storage
from tests.fakes.discord_server import (
    CHANNEL_ID,
    GUILD_ID,
    OTHER_GUILD_CHANNEL_ID,
    OTHER_GUILD_ID,
    FakeDiscord,
)
from tests.fakes.replicate_server import FakeReplicate, Scenario
from tests.process import kill, start_bot, stop, write_config

PROMPTS = {"zero a": CHANNEL_ID, "zero b": CHANNEL_ID,
           "one a": OTHER_GUILD_CHANNEL_ID, "one b": OTHER_GUILD_CHANNEL_ID}


def title(discord: FakeDiscord, sent) -> str:
    message = discord.message_for(sent)
    return message["embeds"][0].get("title", "") if message and message.get("embeds") else ""


async def test_two_shard_processes_and_a_kill_9(tmp_path: Path, fake: FakeReplicate,
                                                postgres_database: str):
    fake.wait_scale = 1.0
    fake.scenario = Scenario(manual=True)
    log = tmp_path / "bot.log"
    async with FakeDiscord() as discord:
        discord.servers.append(OTHER_GUILD_ID)
        zero_config, one_config = (write_config(  # each process's calls told apart by path
            tmp_path, discord, fake, database=postgres_database, name=f"shard-{n}.toml",
            discord_extra=f"shard_count = 2\nshard_ids = [{n}]",
            replicate_base=base) for n, base in ((0, fake.relay_base), (1, fake.api_base)))
        zero = await start_bot(zero_config, log, discord)
        one = await start_bot(one_config, log, discord)
        try:
            sent = {p: await discord.slash("imagine", {"prompt": p}, channel_id=channel)
                    for p, channel in PROMPTS.items()}
            await fake.wait_for(lambda: len(fake.holding) == 4, 30)
            fake.release_holds()
            await fake.wait_for(lambda: len({c.path for c in fake.calls("GET", "/predictions/")
                                             }) == 4, 30)
            prediction = {p.input["prompt"]: p.id for p in fake.predictions.values()}
            await kill(one)
            for prompt in ("zero a", "one a", "one b"):  # shard 1's billed while it is dead
                fake.finish(prediction[prompt])
            await discord.wait_for(lambda: title(discord, sent["zero a"]) == "Done", 30)
            assert all(title(discord, sent[p]) != "Done" for p in ("one a", "one b"))
            restarted_at = len(fake.requests)
            one = await start_bot(one_config, log, discord)
            await discord.wait_for(lambda: all(title(discord, sent[p]) == "Done"
                                               for p in ("one a", "one b")), 30)
            fake.finish(prediction["zero b"])  # ran on in shard 0 through the restart
            await discord.wait_for(lambda: all(title(discord, s) == "Done"
                                               for s in sent.values()), 30)
            await discord.wait_for(lambda: len(discord.uploads) >= 4)
        finally:
            for process in (zero, one):
                if process.returncode is None:
                    assert await stop(process) == 0
    by_one = " ".join(r.path for r in fake.requests[restarted_at:]
                      if r.path.startswith("/v1/"))  # the restarted shard-1 process
    assert prediction["one a"] in by_one and prediction["one b"] in by_one  # resumed its own
    assert prediction["zero b"] not in by_one  # and left shard 0's running job alone
    posted = sorted(mid for mid, _ in discord.uploads)
    assert posted == sorted(int(discord.message_for(s)["id"]) for s in sent.values())  # once
    storage = await Storage.open(postgres_database, QuotaSettings())
    try:
        assert await storage.history.in_flight() == []
        for guild in (GUILD_ID, OTHER_GUILD_ID):
            status = await storage.quota.status(guild, discord.member.id)
            assert status.periods[0].used == 2  # charged once per posted image
    finally:
        await storage.close()
