"""A short run of the chaos soak (`python -m bench.soak`): random faults, presses, a stop and a
kill of the real bot process, then every invariant checked. The full soak runs for minutes."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
async def test_a_short_chaos_soak_breaks_no_invariant(tmp_path: Path):
    out = tmp_path / "soak.json"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.soak", "--seconds", "20", "--seed", "7", "--stops", "1",
        "--kills", "1", "--out", str(out), cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, stderr = await asyncio.wait_for(process.communicate(), 300)
    report = json.loads(out.read_text())
    assert report["violations"] == [], report
    assert process.returncode == 0, stderr.decode()[-2000:]
    assert report["actions"]["kills"] == 1 and report["actions"]["stops"] == 1
    assert report["jobs"].get("succeeded", 0) > 10


@pytest.mark.slow
async def test_a_short_soak_of_two_shard_processes_on_postgresql(tmp_path: Path,
                                                                 postgres_server: str):
    out = tmp_path / "soak.json"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.soak", "--seconds", "20", "--seed", "11", "--stops", "1",
        "--kills", "1", "--postgres", postgres_server, "--shards", "2", "--out", str(out),
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, stderr = await asyncio.wait_for(process.communicate(), 300)
    report = json.loads(out.read_text())
    assert report["violations"] == [], report
    assert process.returncode == 0, stderr.decode()[-2000:]
    assert report["shards"] == 2 and report["database"] == "postgresql"
    assert report["actions"]["kills"] == 1 and report["actions"]["stops"] == 1
    assert report["jobs"].get("succeeded", 0) > 10
