"""python -m bench.soak [--seconds 300] [--rate 2] [--members 10] [--seed 1] [--stops 1]
[--kills 2]

A seeded, bounded chaos soak. The bot runs as its own process with the default config (creates
held by `Prefer: wait=60`) against the loopback Discord and the local Replicate from the tests.
Members send /imagine at a steady rate; Replicate and Discord faults are injected at random
(429s, resets before and after the work is done, HTML 502s, malformed bodies, a poll answered
404, failing cancels); Cancel, Reroll and Delete are pressed; the bot is stopped with SIGTERM
and killed with SIGKILL at random moments and started again. Then the load stops, the faults
end, everything still running finishes, and every invariant of tests/invariants.py is checked.
Prints the counts and the violations; exit 1 when there is any. The same seed gives the same
load and faults (the timing of two processes still varies a little).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.fakes.discord_server import Drop, FakeDiscord, User
from tests.fakes.replicate_server import FakeReplicate, Fault, Scenario
from tests.invariants import violations
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

    async def run(self) -> dict[str, Any]:
        async with FakeDiscord() as discord, FakeReplicate(wait_scale=1.0) as replicate:
            replicate.scenario_for = lambda: scenario(self.rng)
            config = write_config(self.folder, discord, replicate,
                                  replicate_extra="max_concurrent = 4",
                                  extra='[quota]\ndaily = 0\nper_user_concurrent = 3\n'
                                        '[logging]\nlevel = "INFO"\n')
            members = [User(950000000000000000 + n, f"member{n}")
                       for n in range(self.args.members)]
            log = self.folder / "bot.log"
            process = await start_bot(config, log, discord)
            started = time.monotonic()
            chaos = self.args.seconds
            events = sorted([(self.rng.uniform(0.2, 0.8) * chaos, "stop")
                             for _ in range(self.args.stops)] +
                            [(self.rng.uniform(0.2, 0.9) * chaos, "kill")
                             for _ in range(self.args.kills)])
            while (elapsed := time.monotonic() - started) < chaos:
                if events and elapsed >= events[0][0]:
                    _, what = events.pop(0)
                    await (kill(process) if what == "kill" else stop(process))
                    self.counts[f"{what}s"] += 1
                    with log.open("a") as out:  # for whoever reads the log afterwards
                        out.write(f"---- soak: {what} at {time.strftime('%H:%M:%S')} ----\n")
                    process = await start_bot(config, log, discord)
                await self.tick(discord, replicate, members)
                await asyncio.sleep(1 / self.args.rate)
            # the quiet end: no faults, everything running finishes, the bot settles
            replicate.faults.clear()
            discord.drops.clear()
            discord.rate_limit_next.clear()
            db = self.folder / "data" / "bot.db"
            try:
                await discord.wait_for(lambda: _settled(db, replicate), 180)
            except TimeoutError:
                pass  # what is left is reported below as violations
            finally:
                await stop(process)
            found = violations(db, discord, replicate)
            with sqlite3.connect(db) as con:
                statuses = dict(con.execute(
                    "SELECT status, COUNT(*) FROM generations GROUP BY status"))
        return {"seed": self.args.seed, "seconds": chaos, "actions": self.counts,
                "jobs": statuses, "predictions": len(replicate.predictions),
                "violations": found}

    async def tick(self, discord: FakeDiscord, replicate: FakeReplicate,
                   members: list[User]) -> None:
        rng = self.rng
        member = rng.choice(members)
        await discord.slash("imagine", {"prompt": f"soak {self.counts['imagine']}",
                                        "num_outputs": rng.randint(1, 3)}, user=member)
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


def _settled(db: Path, replicate: FakeReplicate) -> bool:
    if any(not p.terminal for p in replicate.predictions.values()):
        return False
    try:
        with sqlite3.connect(db) as con:
            return con.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 0
    except sqlite3.Error:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split(
        "\n\n")[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=300.0, help="chaos time (default 300)")
    parser.add_argument("--rate", type=float, default=2.0, help="/imagine per second")
    parser.add_argument("--members", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--stops", type=int, default=1, help="SIGTERM stops (default 1)")
    parser.add_argument("--kills", type=int, default=2, help="SIGKILL kills (default 2)")
    parser.add_argument("--out", type=Path, help="also write the report as JSON here")
    parser.add_argument("--keep", type=Path, help="keep the bot's database and log here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        report = asyncio.run(Soak(args, Path(folder)).run())
        if args.keep:
            import shutil

            shutil.copytree(folder, args.keep, dirs_exist_ok=True)
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"invariant violations: {len(report['violations'])}", file=sys.stderr)
    return 1 if report["violations"] else 0


if __name__ == "__main__":
    sys.exit(main())
