"""What must hold after any run, however it was interrupted, read from outside the bot: its
database file, the loopback Discord and the local Replicate. Used by the fault matrix and by the
soak (`python -m bench.soak`)."""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path

from tests.fakes.discord_server import FakeDiscord
from tests.fakes.replicate_server import FakeReplicate

FINAL_STATUSES = ("succeeded", "failed", "canceled", "timed_out")
FINAL_TITLES = ("Done", "Failed", "Canceled", "完成", "失败", "已取消")
FILES_GONE = "removed by the image service"  # the API deleted them before they were fetched


def job_of(footer: str) -> int | None:
    last = footer.split()[-1] if footer.split() else ""
    return int(last) if last.isdigit() else None


QUERIES = {
    "in_flight": "SELECT generation_id FROM jobs",
    "ledger": "SELECT job_id, kind, SUM(credits) FROM ledger WHERE job_id IS NOT NULL"
              " GROUP BY job_id, kind",
    "jobs": "SELECT id, status, prediction_id, images_delivered, error, message_id"
            " FROM generations",
    "spend": "SELECT job_id, kind, SUM(micros) FROM spend WHERE job_id IS NOT NULL"
             " GROUP BY job_id, kind",
    "costs": "SELECT id, cost FROM generations WHERE cost IS NOT NULL AND cost > 0",
}


def violations(db: Path, discord: FakeDiscord, replicate: FakeReplicate) -> list[str]:
    """`check` on an SQLite database file."""
    with sqlite3.connect(db) as con:
        rows = {name: [tuple(r) for r in con.execute(sql)] for name, sql in QUERIES.items()}
    return check(rows, discord, replicate)


async def violations_at(location: str, discord: FakeDiscord, replicate: FakeReplicate
                        ) -> list[str]:
    """`check` on any database the bot can use (an SQLite path or a PostgreSQL URL)."""
    from bot.storage.database import Database

    db = await Database.open(location)
    try:
        rows = {name: [tuple(r) for r in await db.fetchall(sql)]
                for name, sql in QUERIES.items()}
    finally:
        await db.close()
    return check(rows, discord, replicate)


def check(rows: dict[str, list[tuple]], discord: FakeDiscord, replicate: FakeReplicate
          ) -> list[str]:
    """Every broken invariant, as a line; none when the run was sound:
    - every job's ledger balances (reserved = committed + refunded), none is left in flight;
    - every job's money balances too (reserved = released) and its bill is recorded once;
    - every job's images were posted at most once, and only a job that posted is charged;
    - every prediction Replicate billed (succeeded) was posted by its job, or the API lost its
      files; no prediction is left running;
    - every job's message (unless a member deleted it) says how it ended."""
    found: list[str] = []
    in_flight = rows["in_flight"]
    ledger: dict[int, Counter[str]] = {}
    for job, kind, credits in rows["ledger"]:
        ledger.setdefault(job, Counter())[kind] = credits
    jobs = {row[0]: row[1:] for row in rows["jobs"]}
    money: dict[int, Counter[str]] = {}
    for job, kind, micros in rows["spend"]:
        money.setdefault(job, Counter())[kind] = micros
    for job, kinds in money.items():  # the money ledger: every reservation given back
        if kinds["reserve"] + kinds["release"] != 0:
            found.append(f"job {job}: {kinds['reserve']} µ$ reserved, "
                         f"{-kinds['release']} released")
    for job, cost in rows["costs"]:  # and every bill recorded, once
        if money.get(job, Counter())["cost"] != round(cost * 1_000_000):
            found.append(f"job {job}: billed ${cost}, spend says "
                         f"{money.get(job, Counter())['cost']} µ$")
    found += [f"job {job} left in flight" for (job,) in in_flight]
    for job, kinds in ledger.items():
        if kinds["reserve"] != kinds["commit"] + kinds["refund"]:
            found.append(f"job {job}: reserved {kinds['reserve']}, committed "
                         f"{kinds['commit']}, refunded {kinds['refund']}")
    uploads: dict[int, set[int]] = {}
    for message_id, footer in discord.uploads:
        job = job_of(footer)
        if job is not None:
            uploads.setdefault(job, set()).add(message_id)
    for job, (status, _, delivered, _, message_id) in jobs.items():
        if status not in FINAL_STATUSES:
            found.append(f"job {job} is still {status}")
        posts = len(uploads.get(job, ()))
        if posts > 1:
            found.append(f"job {job} posted {posts} times")
        if (posts == 1) != (delivered > 0):
            found.append(f"job {job}: {posts} post(s) but {delivered} image(s) charged")
        message = discord.messages.get(message_id) if message_id else None
        if message is not None and message.get("embeds"):
            title = message["embeds"][0].get("title", "")
            if title not in FINAL_TITLES:
                found.append(f"job {job}: its message still says {title!r}")
    by_prediction = {row[1]: (job, row) for job, row in jobs.items() if row[1]}
    for prediction in replicate.predictions.values():
        if not prediction.terminal:
            found.append(f"prediction {prediction.id} left {prediction.status}")
            continue
        if prediction.status != "succeeded":
            continue
        if prediction.id not in by_prediction:
            found.append(f"prediction {prediction.id} billed, unknown to the bot")
            continue
        job, (status, _, delivered, error, _) = by_prediction[prediction.id]
        if not (status == "succeeded" and delivered) and FILES_GONE not in (error or ""):
            found.append(f"prediction {prediction.id} billed, never posted (job {job})")
    return found
