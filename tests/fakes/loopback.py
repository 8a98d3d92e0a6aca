"""What both local servers share: start on a free loopback port, stop, and let tests wait for
a condition that is re-checked whenever the bot calls the server."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any, Self

from aiohttp import web


class LoopbackServer:
    app: web.Application

    def __init__(self) -> None:
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._changed = asyncio.Event()

    async def start(self) -> Self:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def close(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def touch(self) -> None:
        """Something happened: wake every `wait_for`."""
        self._changed.set()
        self._changed = asyncio.Event()

    def describe(self) -> str:
        return ""

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Wait until `predicate()` is truthy, re-checking whenever the bot calls us."""
        deadline = time.monotonic() + timeout
        while not (result := predicate()):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"condition not met{self.describe()}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.5))
        return result
