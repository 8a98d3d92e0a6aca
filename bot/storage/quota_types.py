"""What the quota engine takes and gives: a job asked for, a reservation, a member's usage per
period, a refusal that says which limit and when it lifts."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from bot.errors import UserError


class QuotaRefused(UserError):
    """A reservation was refused; the message says which limit and when it lifts."""


@dataclass(frozen=True)
class Limits:
    daily: int = 0
    weekly: int = 0
    monthly: int = 0

    def of(self, period: str) -> int:
        return int(getattr(self, period))


@dataclass(frozen=True)
class Interaction:
    """What a restarted bot needs to edit the job's message through the interaction."""

    application_id: int
    token: str
    created_at: float
    locale: str | None = None
    upload_limit: int | None = None


@dataclass(frozen=True)
class JobRequest:
    """A job a member asked for (an image, an upscale), checked and ready to be charged."""

    guild_id: int
    channel_id: int
    user_id: int
    prompt: str
    options: dict[str, Any]
    images: int
    role_ids: tuple[int, ...] = ()
    lora: str | None = None
    lora_scale: float | None = None
    parent_id: int | None = None
    interaction: Interaction | None = None
    expected_micros: int = 0  # the expected cost, reserved from the budget (Budget.estimate)
    kind: str = "imagine"     # bot.work: imagine | upscale
    credits: int | None = None  # what it costs in credits; None: one per image

    @property
    def wanted(self) -> int:
        """The credits to reserve."""
        return self.images if self.credits is None else self.credits


@dataclass(frozen=True)
class Reservation:
    job_id: int
    credits: int
    from_allowance: int
    from_bonus: int


@dataclass(frozen=True)
class PeriodUsage:
    period: str
    used: int
    limit: int  # 0 = unlimited
    resets_at: float

    @property
    def left(self) -> float:
        return math.inf if self.limit == 0 else max(0, self.limit - self.used)


@dataclass(frozen=True)
class QuotaStatus:
    """What `/quota` shows."""

    periods: list[PeriodUsage]
    bonus: int
    in_flight: int
    cooldown_until: float | None
    banned: bool = False
    ban_reason: str = ""
    guild: PeriodUsage | None = None
    overridden: dict[str, int] = field(default_factory=dict)

    @property
    def allowance_left(self) -> float:
        return min((p.left for p in self.periods), default=math.inf)

    @property
    def available(self) -> float:
        return self.allowance_left + self.bonus
