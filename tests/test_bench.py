"""The benchmark still runs end to end (its figures are read by people, never asserted)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


async def test_the_benchmark_runs_and_reports(tmp_path: Path):
    out = tmp_path / "results.json"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench", "--quick", "--out", str(out), cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, stderr.decode()[-3000:]
    results = json.loads(out.read_text())
    for mode in ("polling", "webhooks"):
        (run,) = results["realistic"][mode]["runs"]
        assert run["jobs"] == run["posted"] == 10
        assert set(run["outputs_to_posted_ms"]) == {"p50", "p95", "p99"}
        assert run["database_trips_per_generation"] > 0 and run["bot_cpu_ms_per_generation"] > 0
        assert results["realistic"][mode]["long_jobs"]["posted"] == 5
    webhooks = results["realistic"]["webhooks"]["long_jobs"]["replicate_calls_per_generation"]
    polling = results["realistic"]["polling"]["long_jobs"]["replicate_calls_per_generation"]
    assert webhooks < polling  # what the webhooks are for
    assert results["stress"]["posted"] == 5
    assert results["quota"]["reservations"] == 4000
    for clients in results["detection"].values():
        assert set(clients) == {"flux-lora-bot", "replicate create(wait=60)",
                                "replicate async_run"}
    assert b"outputs \xe2\x86\x92 posted" in stdout and b"quota reservations per second" in stdout


async def test_the_reservation_benchmark_runs_on_both_engines(tmp_path: Path,
                                                               postgres_server: str):
    out = tmp_path / "quota.json"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.quota", "--runs", "1", "--postgres", postgres_server,
        "--out", str(out), cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(process.communicate(), 300)
    assert process.returncode == 0, stderr.decode()[-3000:]
    figures = json.loads(out.read_text())["reservations_per_second"]
    assert set(figures) == {"sqlite, 1 process", "postgresql, 1 process",
                            "postgresql, 4 processes"}
    assert all(f["median"] > 0 for f in figures.values()) and b"exact" in stdout
