"""An admin's first hour, as real processes: every start-up problem is one line naming the key
and a non-zero exit, never a traceback or a process left hanging; tokens come from an env file;
the log says what an operator can act on, once."""

from __future__ import annotations

import asyncio
import signal
import socket
import sqlite3
import time
from pathlib import Path

from tests.bot.test_cli import cli
from tests.fakes.discord_server import BOT_TOKEN, FakeDiscord
from tests.fakes.replicate_server import TOKEN, FakeReplicate, Scenario
from tests.process import start_bot, write_config

TOKENS = {"DISCORD_TOKEN": BOT_TOKEN, "REPLICATE_API_TOKEN": TOKEN}


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


async def test_a_database_that_is_not_sqlite_is_one_line_and_an_exit(tmp_path: Path,
                                                                     fake: FakeReplicate):
    async with FakeDiscord() as discord:
        (tmp_path / "data").mkdir()
        (tmp_path / "data" / "bot.db").write_text("these are notes, not a database\n" * 100)
        code, _, err = await cli("run", "--config", str(write_config(tmp_path, discord, fake)),
                                 env=TOKENS)
    assert code == 2, err
    assert lines(err)[-1].startswith("storage.database: ") and "not an SQLite database" in err
    assert "Traceback" not in err


async def test_a_database_path_that_cannot_be_a_file_names_the_key(tmp_path: Path,
                                                                   fake: FakeReplicate):
    (tmp_path / "afile").write_text("x")
    async with FakeDiscord() as discord:
        config = write_config(tmp_path, discord, fake)
        config.write_text(config.read_text().replace(str(tmp_path / "data" / "bot.db"),
                                                     str(tmp_path / "afile" / "bot.db")))
        code, _, err = await cli("run", "--config", str(config), env=TOKENS)
    assert code == 2 and lines(err)[-1].startswith("storage.database: cannot"), err
    assert "Traceback" not in err


async def test_a_config_path_given_must_exist(tmp_path: Path):
    code, _, err = await cli("run", "--config", str(tmp_path / "nope.toml"), env=TOKENS)
    assert code == 2 and "nope.toml: file not found" in err
    code, _, err = await cli("run", env={**TOKENS, "FLUX_BOT_CONFIG": str(tmp_path / "no.toml")},
                             cwd=tmp_path)
    assert code == 2 and "no.toml: file not found" in err  # a forgotten Docker mount


async def test_an_address_in_use_names_http_listen(tmp_path: Path, fake: FakeReplicate):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        async with FakeDiscord() as discord:
            config = write_config(tmp_path, discord, fake,
                                  extra=f'[http]\nlisten = "127.0.0.1:{port}"\n')
            code, _, err = await cli("run", "--config", str(config), env=TOKENS)
    assert code == 2 and lines(err)[-1] == f"http.listen: 127.0.0.1:{port} is already in use " \
        "(another process listens there)", err


async def test_a_refused_replicate_token_stops_the_start(tmp_path: Path, fake: FakeReplicate):
    async with FakeDiscord() as discord:
        config = write_config(tmp_path, discord, fake)
        code, _, err = await cli("run", "--config", str(config),
                                 env={**TOKENS, "REPLICATE_API_TOKEN": "r8_not_the_right_one"})
    assert code == 2, err
    assert lines(err)[-1].startswith(f"replicate.api_token: refused by {fake.relay_base} (401")
    assert "r8_not_the_right_one" not in err and not discord.identified.is_set()


async def test_check_config_online_checks_both_tokens(tmp_path: Path, fake: FakeReplicate):
    async with FakeDiscord() as discord:
        config = str(write_config(tmp_path, discord, fake))
        code, _, err = await cli("check-config", "--online", "--config", config, env=TOKENS)
        assert code == 0, err
        assert f"discord.token: accepted by {discord.api_base} (bot fluxbot)" in err
        assert "replicate.api_token: accepted" in err and "exists" in err
        discord.refusals_expected = True  # the wrong token, on purpose
        code, _, err = await cli("check-config", "--online", "--config", config,
                                 env={**TOKENS, "DISCORD_TOKEN": "wrong.token.value"})
    assert code == 2 and f"discord.token: refused by {discord.api_base} (401" in err
    assert "wrong.token.value" not in err


async def test_tokens_come_from_an_env_file(tmp_path: Path, fake: FakeReplicate):
    fake.scenario = Scenario(duration=0.05)
    env_file = tmp_path / ".env"
    env_file.write_text(f"# secrets\nREPLICATE_API_TOKEN='{TOKEN}'\n")
    env_file.chmod(0o644)
    config = tmp_path / "config.toml"
    config.write_text(f'[replicate]\napi_base = "{fake.relay_base}"\n')
    code, out, err = await cli("generate", "x", "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert code == 0, err
    assert "can be read by other users; chmod 600" in err and TOKEN not in out + err
    assert (tmp_path / "out").is_dir() and len(lines(out)) == 1


async def test_an_outage_is_one_line_per_attempt_and_a_stop_is_prompt(tmp_path: Path,
                                                                      fake: FakeReplicate):
    log = tmp_path / "bot.log"
    async with FakeDiscord() as discord:
        process = await start_bot(write_config(tmp_path, discord, fake), log, discord)
        discord.gateway_down = True
        await discord.disconnect(4000)  # Discord goes away; each reconnect is refused
        await discord.wait_for(lambda: discord.gateway_refused >= 2, 30)
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 20) == 0
        stopped_in = time.monotonic() - started
    assert stopped_in < 10  # not after the back-off
    text = log.read_text()
    assert text.count("Discord connection lost") >= 2 and "Traceback" not in text
    assert "stopping" in text and "PyNaCl" not in text and "davey" not in text


async def test_log_lines_name_a_job_once(tmp_path: Path, fake: FakeReplicate):
    fake.scenario = Scenario(duration=0.05)
    log = tmp_path / "bot.log"
    async with FakeDiscord() as discord:
        process = await start_bot(write_config(tmp_path, discord, fake), log, discord)
        try:
            sent = await discord.slash("imagine", {"prompt": "x"})
            await discord.wait_for(lambda: (m := discord.message_for(sent)) and m["attachments"])
        finally:
            process.send_signal(signal.SIGTERM)
            await process.wait()
    text = log.read_text()
    assert "job 1 accepted" in text and "[job 1] job 1" not in text
    with sqlite3.connect(tmp_path / "data" / "bot.db") as db:
        assert db.execute("SELECT status FROM generations").fetchone()[0] == "succeeded"


async def test_a_backup_is_whole_private_and_never_over_a_file(tmp_path: Path):
    import stat

    from bot.config import QuotaSettings
    from bot.storage import Storage
    from tests.bot.storage.conftest import request

    database = tmp_path / "data" / "bot.db"
    storage = await Storage.open(database, QuotaSettings(per_user_concurrent=0))
    for user in range(1, 6):
        await storage.quota.reserve(request(user=user))  # the bot is running: WAL in use
    config = tmp_path / "config.toml"
    config.write_text(f'[storage]\ndatabase = "{database}"\n')
    dest = tmp_path / "backup.db"
    try:
        code, _, err = await cli("backup", str(dest), "--config", str(config))
        assert code == 0 and "readable by you only" in err, err
        again, _, err = await cli("backup", str(dest), "--config", str(config))
        assert again == 1 and "exists already" in err
    finally:
        await storage.close()
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    with sqlite3.connect(dest) as copy:
        assert copy.execute("SELECT COUNT(*) FROM generations").fetchone()[0] == 5
