"""The fault matrix: a job held still at each of its steps, then interrupted each way, with the
default config (`wait_seconds = 60`: creates are held by `Prefer: wait`).

Steps: queued · held (the create sent, held by `Prefer: wait`) · created (its id known) ·
processing · downloading (the outputs) · uploading (the images to Discord) · posted (images out,
not yet settled) · annotate (the figures' edit).
Interruptions: stop (SIGTERM, in-process) · kill (SIGKILL of a real bot process) · cancel (the
button) · modcancel (/mod cancel) · discord (the job's next Discord call reset) · api (the job's
next Replicate call answered 4xx).

Whatever the cell, checked black-box on the database file and both local servers:
- every job's ledger balances (reserved = committed + refunded) and no job is left in flight;
- every prediction Replicate billed was posted once, or ended canceled, aborted or failed (the one
  exception: files the API deleted before they could be fetched, told to the member as such);
- every job's message is final (Done, Failed or Canceled);
- the job under test ends as EXPECTED says: posted and charged, or refunded.
The matrix is printed at the end of the run (tests/conftest.py) and kept in docs/fault-matrix.md.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.discord_server import Drop, FakeDiscord, Sent
from tests.fakes.loopback import Gate
from tests.fakes.replicate_server import FakePrediction, FakeReplicate, Fault, Scenario
from tests.invariants import violations
from tests.process import kill, start_bot, stop, write_config

STEPS = ("queued", "held", "created", "processing", "downloading", "uploading", "posted",
         "annotate")
INTERRUPTIONS = ("stop", "kill", "cancel", "modcancel", "discord", "api")
P, R = "posted", "refunded"
_BEFORE = {"stop": P, "kill": P, "cancel": R, "modcancel": R, "discord": P, "api": R}
EXPECTED: dict[str, dict[str, str]] = {
    "queued": {"stop": R, "kill": R, "cancel": R, "modcancel": R, "discord": P, "api": R},
    "held": _BEFORE, "created": _BEFORE, "processing": _BEFORE,
    "downloading": {**dict.fromkeys(INTERRUPTIONS, P), "api": R},  # the API lost the files
    "uploading": dict.fromkeys(INTERRUPTIONS, P),
    "posted": dict.fromkeys(INTERRUPTIONS, P),
    "annotate": dict.fromkeys(INTERRUPTIONS, P),
}
RESULTS: dict[tuple[str, str], str] = {}  # (step, interruption) -> outcome, for the summary
FINAL = ("Done", "Failed", "Canceled")


def title(message: dict[str, Any] | None) -> str:
    return message["embeds"][0].get("title", "") if message and message.get("embeds") else ""


class Drive:
    """Brings the job under test to a step and holds it there, through the two local servers
    only, so the same driving works for a bot in this process or in another."""

    def __init__(self, discord: FakeDiscord, replicate: FakeReplicate) -> None:
        self.discord = discord
        self.replicate = replicate
        self.gates: list[Gate] = []
        self.subject: Sent | None = None
        self.blocker: Sent | None = None

    def prediction(self, prompt: str = "subject") -> FakePrediction | None:
        return next((p for p in self.replicate.predictions.values()
                     if p.input["prompt"] == prompt), None)

    def message(self) -> dict[str, Any] | None:
        assert self.subject is not None
        return self.discord.message_for(self.subject)

    def gets(self) -> int:
        return len(self.replicate.calls("GET", "/predictions/"))

    async def to(self, step: str) -> None:
        d, r = self.discord, self.replicate
        if step == "queued":  # behind a job that holds the only slot
            self.blocker = await d.slash("imagine", {"prompt": "blocker"})
            await r.wait_for(lambda: r.holding)
            self.subject = await d.slash("imagine", {"prompt": "subject"})
            await d.wait_for(lambda: title(self.message()).startswith("Queued"))
            return
        self.subject = await d.slash("imagine", {"prompt": "subject", "num_outputs": 2})
        await r.wait_for(lambda: (p := self.prediction()) and p.id in r.holding)
        if step == "held":
            return
        seen = self.gets()
        r.release_holds()
        await r.wait_for(lambda: self.gets() > seen)
        if step == "created":
            return
        prediction = self.prediction()
        assert prediction is not None
        seen = self.gets()
        r.advance(prediction.id)  # processing
        await r.wait_for(lambda: self.gets() > seen)
        if step == "processing":
            return
        held = r.gate("GET", "/files/") if step == "downloading" else \
            d.gate("*", "/", lambda call: bool(call.files))
        self.gates.append(held)
        while not prediction.output:  # the outputs, while it still says `processing`
            r.advance(prediction.id)
        await held.server.wait_for(lambda: held.waiting)
        if step in ("downloading", "uploading"):
            return
        final = r.gate("GET", f"/predictions/{prediction.id}")
        self.gates.append(final)
        held.open()
        await r.wait_for(lambda: final.waiting)
        if step == "posted":
            return
        figures = d.gate("PATCH", "/messages/", lambda call: not call.files and
                         "Estimated cost" in json.dumps(call.json))
        self.gates.append(figures)
        r.advance(prediction.id)  # succeeded
        final.open()
        await d.wait_for(lambda: figures.waiting)

    def let_go(self) -> None:
        for gate in self.gates:
            gate.open()
        self.replicate.release_holds()

    def job_id(self) -> int:
        return int(self.message()["embeds"][0]["footer"]["text"].split()[-1])  # type: ignore

    async def interrupt(self, kind: str, step: str) -> Sent | None:
        """Apply `cancel`, `modcancel`, `discord` or `api` to the job under test."""
        d, r = self.discord, self.replicate
        assert self.subject is not None
        if kind == "cancel":
            message = self.message()
            assert message is not None
            ids = [c["custom_id"] for row in message["components"] for c in row["components"]]
            if f"imagine:cancel:{self.job_id()}" not in ids:
                return None  # no Cancel button any more: the images are out
            return await d.click(f"imagine:cancel:{self.job_id()}", int(message["id"]))
        if kind == "modcancel":
            return await d.slash("mod", {"job": self.job_id()}, subcommand="cancel",
                                 user=d.moderator)
        if kind == "discord":
            token, mid = self.subject.token, str(self.message()["id"])  # type: ignore
            d.drops.append(Drop("*", "/", match=lambda c: token in c.path or mid in c.path))
        elif kind == "api":
            if step == "queued":
                r.faults.append(Fault("POST", path="/predictions", status=422, suffix=True,
                                      body={"detail": "- input.prompt: refused"}))
            elif step == "downloading":
                prediction = self.prediction()
                assert prediction is not None
                for key in [k for k in r.files if k.startswith(prediction.id)]:
                    del r.files[key]  # expired on the API's side: 404
            else:
                r.faults.append(Fault("GET", path="/predictions/", status=404, times=50,
                                      body={"detail": "Not found."}))
        return None

    async def world(self, subject_too: bool) -> None:
        """Replicate goes on: every prediction still running ends (billed), the subject's too
        when the cell expects it to be posted."""
        r = self.replicate

        def running() -> list[FakePrediction]:
            return [p for p in r.predictions.values() if not p.terminal and
                    (subject_too or p.input["prompt"] != "subject")]

        while True:
            for prediction in await r.wait_for(running, timeout=3600):
                r.finish(prediction.id)

    async def until_final(self, timeout: float = 60) -> None:
        jobs = [s for s in (self.subject, self.blocker) if s is not None]
        await self.discord.wait_for(
            lambda: all(title(self.discord.message_for(s)) in FINAL for s in jobs), timeout)


def settled(db: Path) -> bool:
    """No job left in flight in the bot's database (read from outside, as an admin would)."""
    with sqlite3.connect(db) as con:
        return con.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 0


def check(db: Path, drive: Drive) -> str:
    """The invariants (tests/invariants.py); returns how the job under test ended."""
    assert violations(db, drive.discord, drive.replicate) == []
    for sent in (drive.subject, drive.blocker):
        if sent is not None:
            assert title(drive.discord.message_for(sent)) in FINAL
    with sqlite3.connect(db) as con:
        status, delivered = con.execute("SELECT status, images_delivered FROM generations"
                                        " WHERE prompt = 'subject'").fetchone()
    return P if status == "succeeded" and delivered > 0 else R


def cells(kinds: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(step, kind) for step in STEPS for kind in kinds]


@pytest.mark.parametrize(("step", "kind"), cells(("stop", "cancel", "modcancel", "discord",
                                                 "api")))
async def test_in_process(start_stack, tmp_path: Path, step: str, kind: str):
    extra: dict[str, Any] = {"replicate": {"wait_seconds": 60,
                                           "max_concurrent": 1 if step == "queued" else 8}}
    stack = await start_stack(**extra)
    stack.replicate.scenario = Scenario(manual=True, output_while_processing=True, frames=2)
    drive = Drive(stack.discord, stack.replicate)
    await drive.to(step)
    expected = EXPECTED[step][kind]
    if kind == "stop":
        stopping = asyncio.ensure_future(stack.stop())
        drive.let_go()
        world = asyncio.ensure_future(drive.world(subject_too=True))
        await stopping
        stack = await start_stack(**extra)
    else:
        clicked = await drive.interrupt(kind, step)
        if clicked is not None:
            await stack.discord.wait_for(lambda: clicked.callbacks)
        drive.let_go()
        world = asyncio.ensure_future(drive.world(subject_too=expected == P))
    try:
        await drive.until_final()
        await stack.bot.runner.idle()
    finally:
        world.cancel()
    await stack.stop()
    outcome = check(Path(stack.config.storage.database), drive)
    RESULTS[(step, kind)] = outcome
    assert outcome == expected


@pytest.mark.parametrize("step", STEPS)
async def test_kill_9(tmp_path: Path, fake: FakeReplicate, step: str):
    fake.wait_scale = 1.0
    fake.scenario = Scenario(manual=True, output_while_processing=True, frames=2)
    log = tmp_path / "bot.log"
    async with FakeDiscord() as discord:
        config = write_config(tmp_path, discord, fake, replicate_extra="max_concurrent = 1"
                              if step == "queued" else "")
        drive = Drive(discord, fake)
        process = await start_bot(config, log, discord)
        try:
            await drive.to(step)
        finally:
            await kill(process)
        drive.let_go()
        world = asyncio.ensure_future(drive.world(subject_too=True))  # billed while it is dead
        process = await start_bot(config, log, discord)
        try:
            await drive.until_final()
            await discord.wait_for(lambda: settled(tmp_path / "data" / "bot.db"), 30)
        finally:
            world.cancel()
            assert await stop(process) == 0
    outcome = check(tmp_path / "data" / "bot.db", drive)
    RESULTS[(step, "kill")] = outcome
    assert outcome == EXPECTED[step]["kill"]
