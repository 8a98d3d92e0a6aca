"""The SQLite file: pragmas, private permissions, migrations once, whole transactions."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pytest

from bot.storage.database import MIGRATIONS, Database

SHIPPED = len(list((MIGRATIONS / "sqlite").glob("*.sql")))  # the versions the package ships
NEXT = SHIPPED + 1


async def test_pragmas_and_private_files(tmp_path: Path):
    db = await Database.open(tmp_path / "new" / "folder" / "bot.db")
    try:
        assert (await db.fetchone("PRAGMA journal_mode"))[0] == "wal"
        assert (await db.fetchone("PRAGMA foreign_keys"))[0] == 1
        assert (await db.fetchone("PRAGMA busy_timeout"))[0] == 5000
    finally:
        await db.close()
    assert stat.S_IMODE((tmp_path / "new" / "folder").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "new" / "folder" / "bot.db").stat().st_mode) == 0o600


async def test_migrations_apply_once_on_a_new_and_an_existing_database(tmp_path: Path):
    folder = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS / "sqlite", folder)
    path = tmp_path / "bot.db"
    db = await Database.open(path, migrations=folder)
    assert await db.schema_version() == SHIPPED
    await db.execute("INSERT INTO bans (guild_id, user_id, banned_by, banned_at)"
                     " VALUES (1, 2, 3, 4)")
    assert await db.migrate(folder) == []  # running twice changes nothing
    await db.close()

    (folder / f"{NEXT:04d}_notes.sql").write_text("ALTER TABLE bans ADD COLUMN note TEXT;")
    db = await Database.open(path, migrations=folder)
    try:
        assert await db.schema_version() == NEXT
        row = await db.fetchone("SELECT user_id, note FROM bans")
        assert (row["user_id"], row["note"]) == (2, None)  # data kept
        versions = await db.fetchall("SELECT version FROM schema_version ORDER BY version")
        assert [r[0] for r in versions] == list(range(1, NEXT + 1))
    finally:
        await db.close()


async def test_a_failing_migration_changes_nothing(tmp_path: Path):
    folder = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS / "sqlite", folder)
    (folder / f"{NEXT:04d}_broken.sql").write_text(
        "CREATE TABLE half (x INTEGER);\nTHIS IS NOT SQL;")
    with pytest.raises(Exception, match="syntax error"):
        await Database.open(tmp_path / "bot.db", migrations=folder)
    db = await Database.open(tmp_path / "bot.db")
    try:
        assert await db.schema_version() == SHIPPED
        assert await db.fetchone("SELECT name FROM sqlite_master WHERE name = 'half'") is None
    finally:
        await db.close()


async def test_a_failed_transaction_leaves_no_trace(tmp_path: Path):
    db = await Database.open(tmp_path / "bot.db")
    try:
        with pytest.raises(RuntimeError):
            async with db.transaction() as tx:
                await tx.execute("INSERT INTO bans (guild_id, user_id, banned_by, banned_at)"
                                 " VALUES (1, 2, 3, 4)")
                raise RuntimeError("halfway")
        assert await db.fetchone("SELECT * FROM bans") is None
    finally:
        await db.close()


async def test_a_task_canceled_at_any_point_leaves_no_transaction_open(tmp_path: Path):
    import asyncio

    db = await Database.open(tmp_path / "bot.db")
    try:
        for yields in range(6):  # cancel after 0, 1, 2, … trips to the database thread
            async def write(user: int) -> None:
                async with db.transaction() as tx:
                    await tx.execute("INSERT INTO bans (guild_id, user_id, banned_by,"
                                     " banned_at) VALUES (1, ?, 3, 4)", (user,))
                    await tx.fetchone("SELECT COUNT(*) FROM bans")

            task = asyncio.ensure_future(write(yields))
            for _ in range(yields):
                await asyncio.sleep(0)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            async with db.transaction() as tx:  # would fail if one were left open
                await tx.execute("DELETE FROM bans")
        assert not db.connection.in_transaction
    finally:
        await db.close()


async def test_writes_of_a_burst_share_transactions_and_a_bad_one_fails_alone(tmp_path: Path):
    db = await Database.open(tmp_path / "bot.db")
    begun = 0
    original = db.transaction

    def counting():  # count the transactions the burst takes
        nonlocal begun
        begun += 1
        return original()

    db.transaction = counting  # type: ignore[method-assign]
    try:
        async def ban(tx, user):
            await tx.execute("INSERT INTO bans (guild_id, user_id, banned_by, banned_at)"
                             " VALUES (1, ?, 9, 0)", (user,))
            return user

        async def broken(tx):
            await tx.execute("INSERT INTO no_such_table VALUES (1)")

        import asyncio

        results = await asyncio.gather(*(db.batch(lambda tx, u=u: ban(tx, u))
                                         for u in range(100)), db.batch(broken),
                                       return_exceptions=True)
        assert results[:100] == list(range(100))
        assert "no such table" in str(results[100])
        rows = await db.fetchall("SELECT user_id FROM bans ORDER BY user_id")
        assert [r[0] for r in rows] == list(range(100))
        assert begun < 100  # shared, not one each (the failed batch is retried one by one)
    finally:
        db.transaction = original  # type: ignore[method-assign]
        await db.close()


async def ban_in(tx, user: int) -> int:
    await tx.execute("INSERT INTO bans (guild_id, user_id, banned_by, banned_at)"
                     " VALUES (1, ?, 9, 0)", (user,))
    return user


async def test_a_transaction_is_one_trip_even_one_that_awaits_something_else(tmp_path: Path):
    import asyncio

    db = await Database.open(tmp_path / "bot.db")
    try:
        async def three(tx):
            return [await ban_in(tx, u) for u in (1, 2, 3)]

        before = db.trips
        assert await db.atomic(three) == [1, 2, 3]
        assert db.trips - before == 1  # three statements, one hop to the database thread

        async def awaiting(tx):  # e.g. a store that awaits a lock between its statements
            await ban_in(tx, 4)
            await asyncio.sleep(0)
            return await ban_in(tx, 5)

        assert await db.atomic(awaiting) == 5  # run again the ordinary way, once
        rows = await db.fetchall("SELECT user_id FROM bans ORDER BY user_id")
        assert [r[0] for r in rows] == [1, 2, 3, 4, 5]

        async def failing(tx):
            await ban_in(tx, 6)
            await tx.execute("INSERT INTO no_such_table VALUES (1)")

        with pytest.raises(Exception, match="no such table"):
            await db.atomic(failing)
        rows = await db.fetchall("SELECT user_id FROM bans WHERE user_id = 6")
        assert rows == []  # the half done before the error is rolled back
        assert not db.connection.in_transaction
    finally:
        await db.close()
