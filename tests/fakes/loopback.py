"""What both local servers share: start on a free loopback port, stop, and let tests wait for
a condition that is re-checked whenever the bot calls the server."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any, Self

from aiohttp import web


class Gate:
    """Requests that match wait here until the test opens the gate: a step of a job held
    still, for as long as the test needs, without any clock."""

    def __init__(self, server: LoopbackServer, method: str, fragment: str,
                 match: Callable[[Any], bool] | None = None, times: int | None = None) -> None:
        self.server = server
        self.times = times  # hold only the first `times` requests (None: every one)
        self.method = method
        self.fragment = fragment
        self.match = match
        self.waiting = 0
        self.passed = 0
        self._open = asyncio.Event()

    def matches(self, method: str, path: str, detail: Any) -> bool:
        return self.method in (method, "*") and self.fragment in path and \
            (self.match is None or self.match(detail)) and \
            (self.times is None or self.waiting + self.passed < self.times)

    async def wait(self) -> None:
        self.waiting += 1
        self.server.touch()
        try:
            await self._open.wait()
        finally:
            self.waiting -= 1
            self.passed += 1

    def open(self) -> None:
        self._open.set()
        self.server.gates = [g for g in self.server.gates if g is not self]


class LoopbackServer:
    app: web.Application

    def __init__(self) -> None:
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._changed = asyncio.Event()
        self.gates: list[Gate] = []
        self.round_trip = 0.0  # seconds each request takes on the way there and back (bench)

    def gate(self, method: str, fragment: str, match: Callable[[Any], bool] | None = None,
             times: int | None = None) -> Gate:
        """Hold every request matching `method` and the path `fragment` (and `match`, given
        what the server knows of it; only the first `times`) until `Gate.open()`."""
        gate = Gate(self, method, fragment, match, times)
        self.gates.append(gate)
        return gate

    async def through_gates(self, method: str, path: str, detail: Any = None) -> None:
        for gate in list(self.gates):
            if gate.matches(method, path, detail):
                await gate.wait()

    @web.middleware
    async def _far_away(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Half the round trip before the server sees a request, half before its answer
        is back (the gateway's socket, once open, is not delayed)."""
        if not self.round_trip or request.headers.get("Upgrade"):
            return await handler(request)
        await asyncio.sleep(self.round_trip / 2)
        response = await handler(request)
        await asyncio.sleep(self.round_trip / 2)
        return response

    async def start(self) -> Self:
        self.app.middlewares.append(self._far_away)
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def close(self) -> None:
        for gate in list(self.gates):
            gate.open()
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
