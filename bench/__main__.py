"""python -m bench [--runs 3] [--seconds 20] [--round-trip-ms 60] [--stress 1000] [--quick]

Three processes: the loopback Discord and local Replicate (`bench.servers`), the bot
(`python -m bot run`), and this one, the load generator. Scenarios:

- realistic: 10 /imagine a second, predictions of 2-8 s, a round trip of 60 ms on both APIs,
  the shipped pacing; with polling, then with webhooks; and jobs that outlast the `Prefer:
  wait` hold (where webhooks matter), both ways;
- stress: a burst at 200 a second, no round trip, the account's limits off (a relay's);
- completion detection: our client next to the official one, `create(wait=60)` and
  `async_run`, on loopback and over the round trip.

Headline: outputs available on Replicate → images posted in Discord. Also bot CPU ms per
generation, RSS per job in flight, database trips, Replicate and Discord calls per generation.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.bot_process import BotProcess, Servers
from bench.report import spread, summary, table
from bench.stats import histogram, histogram_percentile

ROOT = Path(__file__).resolve().parents[1]


async def scenario_run(servers: Servers, bot: BotProcess, tag: str, *, rate: float,
                       count: int, durations: tuple[float, float], round_trip: float,
                       wait_scale: float = 1.0, seed: int = 1) -> dict[str, Any]:
    """`count` /imagine at `rate` a second; once all are posted, the figures of the run."""
    mark = await servers.post("/setup", {"round_trip": round_trip, "wait_scale": wait_scale})
    metrics_before, cpu_before = await bot.metrics(), bot.cpu_seconds()
    draw = random.Random(seed)
    started = time.monotonic()
    sends = []
    for i in range(count):
        await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
        sends.append(asyncio.ensure_future(servers.post("/imagine", {
            "prompt": f"{tag}-{i} a castle at dawn", "duration": draw.uniform(*durations)})))
    await asyncio.gather(*sends)
    deadline = time.monotonic() + durations[1] * 3 + 120
    while (progress := await servers.get("/progress", tag=tag))["ended"] < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"{tag}: only {progress['ended']} of {count} jobs ended")
        await asyncio.sleep(0.25)
    wall = time.monotonic() - started
    cpu = bot.cpu_seconds() - cpu_before
    metrics_after = await bot.metrics()
    report = await servers.get("/report", tag=tag, replicate=mark["replicate"],
                               discord=mark["discord"])
    posted = max(1, report["posted"])
    trips = (counter(metrics_after, "fluxbot_database_trips_total") -
             counter(metrics_before, "fluxbot_database_trips_total"))
    lag = histogram_percentile(histogram(metrics_before, "fluxbot_event_loop_lag_seconds"),
                               histogram(metrics_after, "fluxbot_event_loop_lag_seconds"), 99)
    return {
        "jobs": count, "posted": report["posted"], "wall_seconds": round(wall, 2),
        "outputs_to_posted_ms": summary(report["from_outputs_ms"]),
        "terminal_to_posted_ms": summary(report["from_terminal_ms"]),
        "answer_ms": summary(report["answer_ms"]), "answered_too_late": report["too_late"],
        "replicate_calls_per_generation": round(report["replicate_calls"] / posted, 2),
        "downloads_per_generation": round(report["downloads"] / posted, 2),
        "discord_calls_per_generation": round(report["discord_calls"] / posted, 2),
        "database_trips_per_generation": round(trips / posted, 2),
        "bot_cpu_ms_per_generation": round(cpu * 1000 / posted, 2),
        "loop_lag_p99_ms": round(lag * 1000, 1),
    }


def counter(metrics: str, name: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


async def realistic(servers: Servers, folder: Path, args: argparse.Namespace
                    ) -> dict[str, Any]:
    """Polling, then webhooks: the same load, `runs` times each; and jobs outlasting the
    create's hold (`wait_scale` shortens the 60 s `Prefer: wait` to 60 × scale)."""
    results: dict[str, Any] = {}
    for mode in args.modes:
        bot = BotProcess(servers, folder / mode, webhooks=mode == "webhooks")
        await bot.start()
        try:
            runs = []
            for run in range(args.runs):
                print(f"realistic, {mode}, run {run + 1}…", file=sys.stderr)
                runs.append(await scenario_run(
                    servers, bot, f"real{mode}{run}", rate=args.rate,
                    count=int(args.rate * args.seconds), durations=args.durations,
                    round_trip=args.round_trip, seed=run))
            print(f"long jobs, {mode}…", file=sys.stderr)
            hold = args.durations[0] * 0.75
            long = await scenario_run(
                servers, bot, f"long{mode}", rate=args.rate / 2,
                count=int(args.rate * args.seconds / 2),
                durations=(args.durations[0], args.durations[1]), round_trip=args.round_trip,
                wait_scale=hold / 60)
        finally:
            await bot.stop()
        results[mode] = {"runs": runs, "range": spread(runs), "long_jobs": long,
                         "long_jobs_hold_seconds": round(hold, 2)}
    return results


async def stress(servers: Servers, folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    bot = BotProcess(servers, folder / "stress", paced=False)
    await bot.start()
    try:
        idle = bot.rss_mb()
        print(f"stress: {args.stress} jobs at 200 a second…", file=sys.stderr)
        figures = await scenario_run(servers, bot, "stress", rate=200.0, count=args.stress,
                                     durations=(args.stress_duration,) * 2, round_trip=0.0)
        figures["peak_rss_mb"] = round(bot.peak_rss_mb(), 1)
        figures["rss_kb_per_job_in_flight"] = round(
            (bot.peak_rss_mb() - idle) * 1024 / max(1, args.stress), 1)
    finally:
        await bot.stop()
    return figures


async def detection(servers: Servers, n: int, duration: float, round_trip: float
                    ) -> dict[str, Any]:
    """The same predictions through our client and the official one: how long after the
    outputs were there each has them, and how many API calls it makes."""
    import replicate as official

    from bot.replicate.client import ReplicateClient
    from tests.fakes.replicate_server import MODEL, TOKEN, VERSION

    results: dict[str, Any] = {}

    async def measure(name: str, run: Any) -> None:
        draw = random.Random(7)  # the same varied durations for every client
        await servers.post("/scenarios", {"durations": [
            duration * draw.uniform(0.75, 1.25) for _ in range(n)]})
        before = await servers.post("/setup", {"round_trip": round_trip})
        done: dict[str, float] = {}

        async def one(i: int) -> None:
            await asyncio.sleep(i * duration / n)  # staggered: ends come one by one
            prompt = f"{name}-{round_trip}-{i}"  # how its prediction is found (`async_run`
            await run(prompt)                     # answers outputs, not the prediction)
            done[prompt] = time.monotonic()

        await asyncio.gather(*(one(i) for i in range(n)))
        after = await servers.post("/setup", {"round_trip": round_trip})
        ready = await servers.get("/readiness", prompts=",".join(done))
        late = [(at - ready[p]) * 1000 for p, at in done.items() if ready.get(p)]
        calls = after["replicate"] - before["replicate"]
        results[name] = {"detection_ms": summary(late),
                         "api_calls_per_prediction": round(calls / n, 2)}

    async with aiohttp.ClientSession() as session:
        ours = ReplicateClient(session, api_token=TOKEN, api_base=servers.replicate_api,
                               wait_seconds=60, max_concurrent=n)

        async def run_ours(prompt: str) -> None:
            await ours.run({"prompt": prompt}, until_outputs=True)

        await measure("flux-lora-bot", run_ours)

    client = official.Client(api_token=TOKEN, base_url=servers.replicate_url)

    async def run_create_wait(prompt: str) -> None:
        prediction = await client.predictions.async_create(
            version=VERSION, input={"prompt": prompt}, wait=60)
        if not prediction.output:  # the hold ended first: its documented polling loop
            await prediction.async_wait()

    async def run_async_run(prompt: str) -> None:
        await client.async_run(f"{MODEL}:{VERSION}", input={"prompt": prompt},
                               use_file_output=False)

    await measure("replicate create(wait=60)", run_create_wait)
    await measure("replicate async_run", run_async_run)
    ours_p50 = results["flux-lora-bot"]["detection_ms"]["p50"]
    for name in ("replicate create(wait=60)", "replicate async_run"):
        theirs = results[name]["detection_ms"]["p50"]
        results[name]["p50_ratio_to_ours"] = round(theirs / max(ours_p50, 0.1), 2)
    return results


async def quota_rate(users: int = 100, each: int = 40) -> dict[str, Any]:
    from bot.config import QuotaSettings
    from bot.storage import Storage
    from bot.storage.quota import JobRequest

    with tempfile.TemporaryDirectory() as folder:
        storage = await Storage.open(Path(folder) / "bot.db",
                                     QuotaSettings(daily=0, per_user_concurrent=0))

        async def member(user: int) -> None:
            for _ in range(each):
                await storage.quota.reserve(JobRequest(
                    guild_id=1, channel_id=1, user_id=user, prompt="x", options={}, images=1))

        started = time.perf_counter()
        await asyncio.gather(*(member(u) for u in range(users)))
        seconds = time.perf_counter() - started
        await storage.close()
    return {"users": users, "reservations": users * each,
            "per_second": round(users * each / seconds)}


async def main(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "system": f"{platform.system()} {platform.machine()}"},
        "settings": {"rate": args.rate, "seconds": args.seconds, "runs": args.runs,
                     "durations": args.durations, "round_trip_ms": args.round_trip * 1000,
                     "stress": args.stress}}
    with tempfile.TemporaryDirectory() as folder:
        async with Servers() as servers:
            if "realistic" in args.parts:
                results["realistic"] = await realistic(servers, Path(folder), args)
            if "stress" in args.parts:
                results["stress"] = await stress(servers, Path(folder), args)
            if "detection" in args.parts:
                print("completion detection, side by side…", file=sys.stderr)
                results["detection"] = {
                    "loopback": await detection(servers, args.detection_jobs,
                                                args.detection_seconds, 0.0),
                    f"{args.round_trip * 1000:.0f} ms round trip": await detection(
                        servers, args.detection_jobs, args.detection_seconds,
                        args.round_trip)}
    if "quota" in args.parts:
        print("quota reservations…", file=sys.stderr)
        results["quota"] = await quota_rate()
    return results


def more_open_files() -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="of the realistic scenario")
    parser.add_argument("--rate", type=float, default=10.0, help="/imagine a second")
    parser.add_argument("--seconds", type=float, default=20.0, help="of arrivals per run")
    parser.add_argument("--durations", default="2,8",
                        type=lambda s: tuple(float(x) for x in s.split(",")),
                        help="shortest,longest prediction in seconds (uniform)")
    parser.add_argument("--round-trip-ms", type=float, default=60.0)
    parser.add_argument("--stress", type=int, default=1000, help="jobs in the burst")
    parser.add_argument("--stress-duration", type=float, default=8.0)
    parser.add_argument("--detection-jobs", type=int, default=50)
    parser.add_argument("--detection-seconds", type=float, default=3.0)
    parser.add_argument("--modes", default="polling,webhooks", type=lambda s: s.split(","),
                        help="of the realistic scenario (an older bot knows only polling)")
    parser.add_argument("--parts", default="realistic,stress,detection,quota",
                        type=lambda s: s.split(","))
    parser.add_argument("--out", default=str(ROOT / "bench" / "results.json"))
    parser.add_argument("--quick", action="store_true", help="a small run, to try the bench")
    args = parser.parse_args(argv)
    args.round_trip = args.round_trip_ms / 1000
    if args.quick:
        args.runs, args.seconds, args.durations = 1, 1.0, (0.3, 0.8)
        args.stress, args.stress_duration, args.detection_jobs = 5, 1.0, 5
        args.detection_seconds = 0.5
    return args


if __name__ == "__main__":
    more_open_files()
    arguments = parse()
    figures = asyncio.run(main(arguments))
    Path(arguments.out).write_text(json.dumps(figures, indent=2) + "\n")
    print(table(figures))
    print(f"\nwritten to {arguments.out}")
