"""`flux-lora-bot migrate-db`: a database made by the real bot on SQLite (finished jobs, a job
left in flight by a stop, a grant, a ban, a setting, a server LoRA, the audit log) moved to
PostgreSQL with the CLI; the bot started on PostgreSQL carries on exactly where it stopped."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.bot.test_cli import cli
from tests.cogs.test_cancel import running
from tests.cogs.test_mod import BOB, answer, mod
from tests.fakes.discord_server import GUILD_ID
from tests.fakes.replicate_server import Scenario

TABLES = ("generations", "jobs", "ledger", "bans", "user_settings", "guild_loras", "audit_log")


def counts(database: Path) -> dict[str, int]:
    with sqlite3.connect(database) as db:
        return {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in TABLES}


async def test_a_real_bots_database_moves_to_postgresql_and_carries_on(
        postgres_database: str, start_stack, tmp_path: Path):
    stack = await start_stack(replicate={"wait_seconds": 60})
    stack.replicate.scenario = Scenario(duration=0.05)
    await stack.finished(await stack.discord.slash("imagine", {"prompt": "a castle",
                                                               "num_outputs": 2}))
    await mod(stack, "quota-grant", {"user": stack.discord.member, "credits": 3})
    await mod(stack, "ban", {"user": BOB, "reason": "spam"})
    await answer(stack, await stack.discord.slash("settings", {"steps": 12}, subcommand="set"))
    await answer(stack, await stack.discord.slash(
        "lora", {"name": "Neon", "ref": "someone/neon_flux", "trigger": "neonstyle"},
        subcommand="add", user=stack.discord.moderator))
    stack.replicate.scenario = Scenario(manual=True)
    left = await running(stack, "left running")
    before = await stack.status(stack.discord.member.id)
    await stack.stop()
    database = Path(stack.config.storage.database)
    source = counts(database)
    assert source["jobs"] == 1 and all(source.values())  # every kind of row is there

    config = tmp_path / "config.toml"
    config.write_text(f'[storage]\ndatabase = "{database}"\n')
    password_url = postgres_database.replace("postgres@", "postgres:s3cret@")
    code, out, err = await cli("migrate-db", "--config", str(config), "--to", password_url)
    assert code == 0, err
    assert "s3cret" not in out + err and "sums checked" in err
    again, _, err = await cli("migrate-db", "--config", str(config),
                              env={"DATABASE_URL": postgres_database})
    assert again == 1 and "not empty" in err and "nothing was written" in err

    moved = await start_stack(storage={"database": postgres_database},
                              replicate={"wait_seconds": 60})
    stack.replicate.finish(next(p.id for p in stack.replicate.predictions.values()
                                if p.input["prompt"] == "left running"))
    assert len((await moved.finished(left))["attachments"]) == 1  # resumed from PostgreSQL
    after = await moved.status(stack.discord.member.id)
    assert after.bonus == before.bonus == 3
    assert after.periods[0].used == before.periods[0].used  # its credit was reserved already
    refused = await answer(moved, await moved.discord.slash(
        "imagine", {"prompt": "x"}, user=BOB))
    assert "spam" in refused["content"]  # the ban came along
    stack.replicate.scenario = Scenario(duration=0.05)
    new = await moved.finished(await moved.discord.slash("imagine", {"prompt": "neon",
                                                                     "lora": "neon"}))
    sent = stack.replicate.creates[-1].body["input"]
    assert sent["hf_lora"] == "someone/neon_flux" and sent["num_inference_steps"] == 12
    history = await moved.bot.storage.history.page(GUILD_ID, stack.discord.member.id)
    assert [g.status for g in history.items] == ["succeeded"] * 3
    assert int(new["embeds"][0]["footer"]["text"].split()[-1]) == 3  # ids carry on


async def test_migrate_db_refuses_what_it_cannot_do(tmp_path: Path):
    config = tmp_path / "config.toml"
    config.write_text(f'[storage]\ndatabase = "{tmp_path / "none.db"}"\n')
    code, _, err = await cli("migrate-db", "--config", str(config))
    assert code == 1 and "--to" in err and "postgresql://" in err
    code, _, err = await cli("migrate-db", "--config", str(config), "--to",
                             "postgresql://u:pw@127.0.0.1:1/db")
    assert code == 1 and "none.db" in err and "Traceback" not in err


async def test_backup_on_postgresql_points_to_pg_dump(tmp_path: Path):
    config = tmp_path / "config.toml"
    config.write_text('[storage]\ndatabase = "postgresql://bot@db.example/bot"\n')
    code, _, err = await cli("backup", str(tmp_path / "copy.db"), "--config", str(config))
    assert code == 1 and "pg_dump" in err and not (tmp_path / "copy.db").exists()
