"""The processes the benchmark drives: the loopback servers (`bench.servers`) and the bot, with
what /proc says of the bot (CPU time, RSS)."""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any, Self

import aiohttp

from tests.fakes.discord_server import BOT_TOKEN
from tests.fakes.replicate_server import TOKEN

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
# BENCH_PROFILE=/tmp/bot.prof: the bot runs under cProfile, its figures written there at exit
PROFILE = ["-m", "cProfile", "-o", os.environ["BENCH_PROFILE"]] \
    if os.environ.get("BENCH_PROFILE") else []


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Servers:
    """`python -m bench.servers`, and its control API."""

    async def __aenter__(self) -> Self:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.servers", env=ENV, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE)
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), 60)
        self.addresses = json.loads(line)
        self.replicate_api = self.addresses["replicate_api"]
        self.replicate_url = self.addresses["replicate_url"]
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=120))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.session.close()
        assert self.process.stdin is not None
        self.process.stdin.close()
        await asyncio.wait_for(self.process.wait(), 60)

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        async with self.session.post(self.addresses["control"] + path, json=body) as resp:
            resp.raise_for_status()
            return await resp.json()

    async def get(self, path: str, **query: Any) -> Any:
        async with self.session.get(self.addresses["control"] + path,
                                    params={k: str(v) for k, v in query.items()}) as resp:
            resp.raise_for_status()
            return await resp.json()


class BotProcess:
    def __init__(self, servers: Servers, folder: Path, *, webhooks: bool = False,
                 paced: bool = True) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.servers = servers
        self.port = free_port()
        self.config = folder / "config.toml"
        urls = servers.addresses
        hook = f'webhook_url = "http://127.0.0.1:{self.port}/replicate/webhook"\n' \
            if webhooks else ""
        limits = "" if paced else "creates_per_minute = 0\ncalls_per_minute = 0\n"
        self.config.write_text(
            f'[discord]\napi_base = "{urls["discord_api"]}"\n'
            f'gateway_url = "{urls["gateway"]}"\n'
            f'[replicate]\napi_base = "{urls["replicate"]}"\nmax_concurrent = 1000\n'
            f"{hook}{limits}"
            "[quota]\ndaily = 0\nper_user_concurrent = 0\n"
            f'[storage]\ndatabase = "{folder / "bot.db"}"\n'
            f'[http]\nlisten = "127.0.0.1:{self.port}"\n[logging]\nlevel = "WARNING"\n')
        self.log = folder / "bot.log"
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        await self.servers.post("/expect_bot", {})
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, *PROFILE, "-m", "bot", "run", "--config", str(self.config),
            env={**ENV, "DISCORD_TOKEN": BOT_TOKEN, "REPLICATE_API_TOKEN": TOKEN},
            stdout=asyncio.subprocess.DEVNULL, stderr=self.log.open("wb"))
        await self.servers.get("/identified")
        await asyncio.sleep(0.5)  # the guild and the extensions settle before the load

    async def metrics(self) -> str:
        async with aiohttp.ClientSession() as session, session.get(
                f"http://127.0.0.1:{self.port}/metrics") as resp:
            return await resp.text()

    def cpu_seconds(self) -> float:
        """User and system time of the bot so far (/proc/PID/stat, fields 14 and 15)."""
        assert self.process is not None
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def _status(self, key: str) -> float:
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
        return math.nan

    def rss_mb(self) -> float:
        return self._status("VmRSS")

    def peak_rss_mb(self) -> float:
        return self._status("VmHWM")

    async def stop(self) -> None:
        if self.process and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(self.process.wait(), 60)
