"""What a job is while it runs: its phase, its prediction, what a cancel asks, and the
`Reporter` that shows it to the member (a Discord message, a terminal)."""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass, field
from typing import Protocol

from bot.errors import UserError
from bot.generation import GenerationResult
from bot.replicate.prediction import Prediction, Progress
from bot.storage.history import Generation
from bot.work import Model, Work

QUEUED, CREATING, RUNNING, DELIVERING = "queued", "creating", "running", "delivering"


class CancelOutcome(enum.StrEnum):
    CANCELED = "canceled"        # stopped at Replicate or before it; credits refunded
    DELIVERED = "delivered"      # it had finished before the cancel arrived: posted, charged
    FINISHING = "finishing"      # its images are being posted: too late to cancel
    NOT_RUNNING = "not_running"  # no such job runs here
    REQUESTED = "requested"      # asked of the process that runs it, which has not answered yet


@dataclass(frozen=True)
class JobState:
    """What a reporter shows while a job runs."""

    job_id: int
    stage: str  # queued | starting | processing
    position: int = 0
    progress: Progress = field(default_factory=Progress)
    elapsed: float = 0.0


class Reporter(Protocol):
    async def update(self, state: JobState) -> None:
        """Show progress; may be skipped, never raises."""

    async def already_delivered(self) -> int | None:
        """Images already posted for this job by an earlier run (None: not posted)."""

    async def deliver(self, job: Generation, result: GenerationResult) -> int:
        """Post the images; returns how many were posted. Raises `UserError` when nothing
        could be posted."""

    async def annotate(self, job: Generation, result: GenerationResult) -> None:
        """The images are posted; show the figures known only at the prediction's end."""

    async def fail(self, job: Generation, error: UserError, refunded: int) -> None:
        """Tell the member the job ended without images and what was refunded; never raises."""


@dataclass(frozen=True)
class Resume:
    """Where a job left by an earlier run stood: its prediction, or when its create left."""

    prediction_id: str | None = None
    create_sent_at: float | None = None


class Left(Exception):
    """The job is left as it is for the next start (the bot is stopping)."""


class Canceled(Exception):
    """A cancel was asked while `pending` (a held create, a lookup) was under way."""

    def __init__(self, pending: asyncio.Future[Prediction | None] | None = None) -> None:
        super().__init__("canceled")
        self.pending = pending


class Settled(Exception):
    """The job was settled by someone else (a moderator's cancel before it started)."""


@dataclass(eq=False)
class Job:
    id: int
    work: Work        # what it asks of Replicate (bot.work: an image, an upscale)
    model: Model      # the model version it runs on, and its price
    reporter: Reporter
    resume: Resume | None = None
    phase: str = QUEUED
    prediction_id: str | None = None
    create_sent_at: float | None = None  # wall clock: when its create left
    deadline: float = float("inf")       # the runner's clock: when it is given up
    ended: bool = False                  # its prediction reached a terminal status
    slot: bool = False                   # it holds one of the queue's slots
    outcome: CancelOutcome = CancelOutcome.CANCELED
    cancel_asked: asyncio.Event = field(default_factory=asyncio.Event)
    record: Generation | None = None     # as stored once its prediction was created
