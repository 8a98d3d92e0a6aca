"""Shared fixtures: the local Replicate, an HTTP session, and virtual time for the client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from bot.replicate.client import ReplicateClient
from tests.fakes.replicate_server import TOKEN, FakeReplicate


class VirtualTime:
    """A clock that moves only when the code under test sleeps: no real waiting."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


@pytest.fixture
async def fake() -> AsyncIterator[FakeReplicate]:
    async with FakeReplicate(wait_scale=0.02) as server:
        yield server
    # every request checked against Replicate's own document: none may be one it refuses
    if not server.refusals_expected:
        assert server.schema_problems == []


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


@pytest.fixture
def vtime() -> VirtualTime:
    return VirtualTime()


@pytest.fixture
def make_client(fake: FakeReplicate, session: aiohttp.ClientSession, vtime: VirtualTime
                ) -> Callable[..., ReplicateClient]:
    """A client on the local Replicate, with virtual time and a fixed jitter draw."""

    def make(real_time: bool = False, **overrides: Any) -> ReplicateClient:
        """`real_time` for scenarios where the local Replicate itself runs on a timer."""
        options: dict[str, Any] = {
            "api_token": TOKEN, "api_base": fake.api_base, "wait_seconds": 0,
            "rand": lambda: 0.5,
        }
        if not real_time:
            options.update(clock=vtime.clock, sleep=vtime.sleep)
        options.update(overrides)
        return ReplicateClient(session, **options)

    return make


class Clock:
    """Wall-clock time for storage tests (Unix seconds), moved by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="session")
def postgres_server() -> Any:
    """The URL of a PostgreSQL server for the session: $FLUX_TEST_POSTGRES_URL (CI starts
    one), else a throwaway cluster started here; skipped, saying why, if neither can be had
    (failed instead with $FLUX_TEST_REQUIRE_POSTGRES=1, as in CI)."""
    import os
    import shutil
    import tempfile
    from pathlib import Path

    from tests import postgres

    url = os.environ.get(postgres.URL_ENV)
    if url:
        yield url
        return
    # a folder of its own under /tmp: pytest's are private to root, and the server runs as
    # the postgres user
    folder = Path(tempfile.mkdtemp(prefix="flux-pg-"))
    try:
        url = postgres.start(folder)
    except postgres.Unavailable as exc:
        if os.environ.get(postgres.REQUIRE_ENV):
            pytest.fail(f"PostgreSQL is required here: {exc}")
        pytest.skip(f"no PostgreSQL server: {exc}")
    try:
        yield url
    finally:
        postgres.stop(folder)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
async def postgres_database(postgres_server: str) -> AsyncIterator[str]:
    """A new, empty database on the session's server, dropped after the test."""
    from tests.postgres import create_database, drop_database

    url = await create_database(postgres_server)
    yield url
    await drop_database(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_location(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """Where a test's database lives: a new SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "data" / "bot.db")
    return str(request.getfixturevalue("postgres_database"))


# the whole bot on loopback, for tests of every layer that needs it
from tests.stack import discord_fake, stack, start_stack  # noqa: E402

__all__ = ["Clock", "VirtualTime", "discord_fake", "stack", "start_stack"]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the fault matrix (step × interruption → outcome) when its tests ran."""
    import sys

    matrix = sys.modules.get("tests.test_fault_matrix")
    results = getattr(matrix, "RESULTS", None)
    if not results:
        return
    kinds = matrix.INTERRUPTIONS  # type: ignore[union-attr]
    write = terminalreporter.write_line
    terminalreporter.section("fault matrix: how the job ended (invariants held in every cell)")
    write(f"{'step':<12}" + "".join(f"{k:>11}" for k in kinds))
    for step in matrix.STEPS:  # type: ignore[union-attr]
        write(f"{step:<12}" + "".join(f"{results.get((step, k), '-'):>11}" for k in kinds))
