"""python -m bench.quota [--runs 3] [--postgres URL] [--out bench/quota-results.json]

Quota reservations per second, exact: SQLite with one process, PostgreSQL with one process and
with four processes reserving at once for the members of the same servers. Every run starts on
a new, empty database, checks that exactly the credits the limits allow were granted (the
members' daily limit is set below what they ask for, so refusals happen too), and prints the
median and the range across runs. Without --postgres, a throwaway PostgreSQL cluster is started
(Debian's packages; see tests/postgres.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.postgres import create_database  # the tests' helpers: PostgreSQL, processes
from tests.process import run_together

ROOT = Path(__file__).resolve().parents[1]

MEMBERS, ASKS, DAILY, SERVERS = 200, 12, 10, 4  # per process: each member asks 12, gets 10


async def reserve_all(location: str, seed: int) -> tuple[float, float, int, int]:
    """This process's share: MEMBERS members (ids apart from other processes'), each asking
    ASKS times at once in one of SERVERS servers. Returns (start, end, granted, refused)."""
    from bot.config import QuotaSettings
    from bot.storage import Storage
    from bot.storage.quota import JobRequest, QuotaRefused

    storage = await Storage.open(location, QuotaSettings(daily=DAILY, per_user_concurrent=0))
    try:
        requests = [JobRequest(guild_id=1 + user % SERVERS, channel_id=1,
                               user_id=seed * 100_000 + user, prompt="x", options={}, images=1)
                    for _ in range(ASKS) for user in range(MEMBERS)]
        await storage.quota.status(1, 1)  # the pool and the file warm, as in a running bot
        print("ready", flush=True)
        if seed:  # a worker process: wait until every process is ready
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        started = time.time()
        results = await asyncio.gather(*(storage.quota.reserve(r) for r in requests),
                                       return_exceptions=True)
        ended = time.time()
    finally:
        await storage.close()
    refused = sum(isinstance(r, QuotaRefused) for r in results)
    if errors := [r for r in results
                  if isinstance(r, BaseException) and not isinstance(r, QuotaRefused)]:
        raise SystemExit(f"unexpected errors: {errors[:3]}")
    return started, ended, len(results) - refused, refused


async def in_processes(location: str, count: int) -> tuple[float, int]:
    """`count` worker processes released together; reservations per second over the span
    from the first start to the last end, and the credits granted in all."""
    spans = await run_together([["bench.quota", "--worker", location, str(n + 1)]
                                for n in range(count)])
    asked = count * MEMBERS * ASKS
    seconds = max(s[1] for s in spans) - min(s[0] for s in spans)
    return asked / seconds, sum(s[2] for s in spans)


async def measure(server: str, runs: int) -> dict[str, Any]:
    figures: dict[str, list[float]] = {"sqlite, 1 process": [], "postgresql, 1 process": [],
                                       "postgresql, 4 processes": []}
    for run in range(runs):
        print(f"run {run + 1} of {runs}…", file=sys.stderr)
        with tempfile.TemporaryDirectory() as folder:
            for name, location, count in (
                    ("sqlite, 1 process", str(Path(folder) / "bot.db"), 1),
                    ("postgresql, 1 process", await create_database(server, "bench"), 1),
                    ("postgresql, 4 processes", await create_database(server, "bench"), 4)):
                rate, granted = await in_processes(location, count)
                expected = count * MEMBERS * DAILY
                if granted != expected:
                    raise SystemExit(f"{name}: {granted} credits granted, {expected} allowed")
                figures[name].append(rate)
    return {name: {"median": round(statistics.median(rates)), "min": round(min(rates)),
                   "max": round(max(rates)), "runs": len(rates)}
            for name, rates in figures.items()}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.quota", description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--postgres", metavar="URL", help="a server to make databases on")
    parser.add_argument("--out", default=str(ROOT / "bench" / "quota-results.json"))
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        location, seed = args.worker
        print(json.dumps(asyncio.run(reserve_all(location, int(seed)))))
        return
    folder = None
    server = args.postgres
    if server is None:
        from tests import postgres

        folder = Path(tempfile.mkdtemp(prefix="flux-bench-pg-"))
        server = postgres.start(folder, durable=True)  # fsync on, as deployed
    try:
        results = asyncio.run(measure(server, args.runs))
    finally:
        if folder is not None:
            from tests import postgres

            postgres.stop(folder)
            shutil.rmtree(folder, ignore_errors=True)
    for name, figures in results.items():
        print(f"{name:<26} {figures['median']:>6}/s  (range {figures['min']}–{figures['max']}"
              f" over {figures['runs']} runs; exact)")
    machine = {"cpus": os.cpu_count(), "python": platform.python_version(),
               "system": f"{platform.system()} {platform.machine()}"}
    Path(args.out).write_text(json.dumps({"machine": machine, "members_per_process": MEMBERS,
                                          "asks_each": ASKS, "servers": SERVERS,
                                          "reservations_per_second": results}, indent=2) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
