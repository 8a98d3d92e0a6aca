"""python -m bench.soak [--seconds 300] [--rate 2] [--members 10] [--seed 1] [--stops 1]
[--kills 2] [--postgres [URL]] [--shards N]

A seeded, bounded chaos soak. The bot runs as its own process with the default config (creates
held by `Prefer: wait=60`) against the loopback Discord and the local Replicate from the tests.
Members send /imagine at a steady rate; Replicate and Discord faults are injected at random
(429s, resets before and after the work is done, HTML 502s, malformed bodies, a poll answered
404, failing cancels); Cancel, Reroll and Delete are pressed; the bot is stopped with SIGTERM
and killed with SIGKILL at random moments and started again. Then the load stops, the faults
end, everything still running finishes, and every invariant of tests/invariants.py is checked.
Prints the counts and the violations; exit 1 when there is any. The same seed gives the same
load and faults (the timing of two processes still varies a little). With --postgres the bot
runs on PostgreSQL (a throwaway cluster when no URL is given); with --shards N, as N shard
processes on it, members in servers of every shard, each stop or kill hitting one of them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bot.storage.database import Database
from tests.fakes.discord_server import (
    CHANNEL_ID,
    OTHER_GUILD_CHANNEL_ID,
    OTHER_GUILD_ID,
    Drop,
    FakeDiscord,
    User,
)
from tests.fakes.replicate_server import FakeReplicate, Fault, Scenario
from tests.invariants import violations_at
from tests.process import kill, start_bot, stop, write_config

OUTCOMES = ("succeeded",) * 17 + ("failed", "nsfw_all", "filtered")


def scenario(rng: random.Random) -> Scenario:
    outcome = rng.choice(OUTCOMES)
    return Scenario(duration=rng.uniform(0.3, 3.0), frames=rng.randint(1, 4),
                    output_while_processing=rng.random() < 0.7,
                    finish_lag=rng.uniform(0.05, 0.3),
                    outcome="succeeded" if outcome == "filtered" else outcome,
                    filtered=(1,) if outcome == "filtered" else ())


def replicate_fault(rng: random.Random) -> Fault:
    return rng.choice([
        Fault("POST", path="/predictions", suffix=True, status=429,
              headers={"Retry-After": "0.3"}),
        Fault("POST", path="/predictions", suffix=True, kind="reset_after"),
        Fault("GET", path="/predictions/", kind="html", status=502),
        Fault("GET", path="/predictions/", kind="reset"),
        Fault("GET", path="/predictions/", kind="malformed"),
        Fault("GET", path="/predictions/", status=404, body={"detail": "Not found."}),
        Fault("GET", path="/files/", kind="reset"),
        Fault("POST", path="/cancel", status=500, times=3),
    ])


def discord_fault(rng: random.Random, discord: FakeDiscord) -> None:
    if rng.random() < 0.3:
        discord.rate_limit_next["/messages/"] = discord.rate_limit_next.get("/messages/", 0) + 1
        return
    method, fragment = rng.choice([("PATCH", "/messages/"), ("POST", "/callback"),
                                   ("POST", "/channels/"), ("GET", "/messages/")])
    discord.drops.append(Drop(method, fragment, after=rng.random() < 0.5))


def buttons(message: dict[str, Any], action: str) -> list[str]:
    return [c["custom_id"] for row in message.get("components") or []
            for c in row.get("components", []) if f":{action}:" in c.get("custom_id", "")]


class Soak:
    def __init__(self, args: argparse.Namespace, folder: Path) -> None:
        self.args = args
        self.folder = folder
        self.rng = random.Random(args.seed)
        self.counts: dict[str, int] = {k: 0 for k in (
            "imagine", "cancel", "reroll", "delete", "replicate_faults", "discord_faults",
            "stops", "kills")}

    async def run(self, location: str) -> dict[str, Any]:
        shards = self.args.shards
        async with FakeDiscord() as discord, FakeReplicate(wait_scale=1.0) as replicate:
            replicate.scenario_for = lambda: scenario(self.rng)
            if shards > 1:
                discord.servers.append(OTHER_GUILD_ID)
            configs = [write_config(
                self.folder, discord, replicate, replicate_extra="max_concurrent = 4",
                extra='[quota]\ndaily = 0\nper_user_concurrent = 3\n'
                      '[logging]\nlevel = "INFO"\n', database=location, name=f"shard-{n}.toml",
                discord_extra=f"shard_count = {shards}\nshard_ids = [{n}]" if shards > 1 else "")
                for n in range(shards)]
            self.channels = [CHANNEL_ID, OTHER_GUILD_CHANNEL_ID][:min(shards, 2)]
            members = [User(950000000000000000 + n, f"member{n}")
                       for n in range(self.args.members)]
            log = self.folder / "bot.log"
            processes = [await start_bot(config, log, discord) for config in configs]
            started = time.monotonic()
            chaos = self.args.seconds
            events = sorted([(self.rng.uniform(0.2, 0.8) * chaos, "stop")
                             for _ in range(self.args.stops)] +
                            [(self.rng.uniform(0.2, 0.9) * chaos, "kill")
                             for _ in range(self.args.kills)])
            while (elapsed := time.monotonic() - started) < chaos:
                if events and elapsed >= events[0][0]:
                    _, what = events.pop(0)
                    n = self.rng.randrange(shards)
                    await (kill(processes[n]) if what == "kill" else stop(processes[n]))
                    self.counts[f"{what}s"] += 1
                    with log.open("a") as out:  # for whoever reads the log afterwards
                        out.write(f"---- soak: {what} of process {n} at "
                                  f"{time.strftime('%H:%M:%S')} ----\n")
                    processes[n] = await start_bot(configs[n], log, discord)
                await self.tick(discord, replicate, members)
                await asyncio.sleep(1 / self.args.rate)
            # the quiet end: no faults, everything running finishes, the bot settles
            replicate.faults.clear()
            discord.drops.clear()
            discord.rate_limit_next.clear()
            db = await Database.open(location)
            try:
                await _settle(db, replicate, 180)
            finally:
                for process in processes:
                    await stop(process)
            statuses = {r[0]: r[1] for r in await db.fetchall(
                "SELECT status, COUNT(*) FROM generations GROUP BY status")}
            await db.close()
            found = await violations_at(location, discord, replicate)
        return {"seed": self.args.seed, "seconds": chaos, "shards": shards,
                "database": "postgresql" if location.startswith("postgresql") else "sqlite",
                "actions": self.counts, "jobs": statuses,
                "predictions": len(replicate.predictions), "violations": found}

    async def tick(self, discord: FakeDiscord, replicate: FakeReplicate,
                   members: list[User]) -> None:
        rng = self.rng
        member = rng.choice(members)
        await discord.slash("imagine", {"prompt": f"soak {self.counts['imagine']}",
                                        "num_outputs": rng.randint(1, 3)}, user=member,
                            channel_id=rng.choice(self.channels))
        self.counts["imagine"] += 1
        if rng.random() < 0.3:
            replicate.faults.append(replicate_fault(rng))
            self.counts["replicate_faults"] += 1
        if rng.random() < 0.3:
            discord_fault(rng, discord)
            self.counts["discord_faults"] += 1
        messages = [m for m in list(discord.messages.values()) if m.get("components")]
        for action, chance, user in (("cancel", 0.3, discord.moderator),
                                     ("reroll", 0.1, member), ("delete", 0.1, discord.moderator)):
            if rng.random() >= chance:
                continue
            pressable = [(m, b) for m in messages for b in buttons(m, action)]
            if pressable:
                message, custom_id = rng.choice(pressable)
                if int(message["id"]) in discord.messages:
                    await discord.click(custom_id, int(message["id"]), user=user)
                    self.counts[action] += 1


async def _settle(db: Database, replicate: FakeReplicate, seconds: float) -> None:
    """Until every prediction has ended and no job is left in flight (or `seconds` have
    passed: what is left is then reported as violations)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if all(p.terminal for p in replicate.predictions.values()):
            with contextlib.suppress(Exception):
                if not await db.fetchall("SELECT generation_id FROM jobs"):
                    return
        await asyncio.sleep(0.5)


async def _run(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    if args.postgres is None:
        return await Soak(args, folder).run(str(folder / "data" / "bot.db"))
    from tests import postgres

    cluster = Path(tempfile.mkdtemp(prefix="flux-soak-pg-"))  # the postgres user reads it
    server = args.postgres or postgres.start(cluster)
    try:
        return await Soak(args, folder).run(await postgres.create_database(server, "soak"))
    finally:
        if not args.postgres:
            postgres.stop(cluster)
        shutil.rmtree(cluster, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split(
        "\n\n")[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=300.0, help="chaos time (default 300)")
    parser.add_argument("--rate", type=float, default=2.0, help="/imagine per second")
    parser.add_argument("--members", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--stops", type=int, default=1, help="SIGTERM stops (default 1)")
    parser.add_argument("--kills", type=int, default=2, help="SIGKILL kills (default 2)")
    parser.add_argument("--postgres", nargs="?", const="", metavar="URL",
                        help="run on PostgreSQL (a throwaway cluster without a URL)")
    parser.add_argument("--shards", type=int, default=1,
                        help="shard processes (more than 1 needs --postgres)")
    parser.add_argument("--out", type=Path, help="also write the report as JSON here")
    parser.add_argument("--keep", type=Path, help="keep the bot's database and log here")
    args = parser.parse_args(argv)
    if args.shards > 1 and args.postgres is None:
        parser.error("--shards needs --postgres: the processes share one database")
    with tempfile.TemporaryDirectory() as folder:
        report = asyncio.run(_run(args, Path(folder)))
        if args.keep:
            shutil.copytree(folder, args.keep, dirs_exist_ok=True)
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"invariant violations: {len(report['violations'])}", file=sys.stderr)
    return 1 if report["violations"] else 0


if __name__ == "__main__":
    sys.exit(main())
