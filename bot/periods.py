"""Quota periods in the server's time zone: when the current day, week (Monday) and month
began and when they roll over. Pure functions of an instant, so tests move time freely."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

PERIODS = ("daily", "weekly", "monthly")


@dataclass(frozen=True)
class Window:
    """One period: `[start, end)` in Unix seconds."""

    period: str
    start: float
    end: float


def _midnight(day: date, tz: ZoneInfo) -> float:
    return datetime.combine(day, time(0), tzinfo=tz).timestamp()


def _first_day(period: str, today: date) -> date:
    if period == "daily":
        return today
    if period == "weekly":
        return today - timedelta(days=today.weekday())
    if period == "monthly":
        return today.replace(day=1)
    raise ValueError(period)


def _next_first_day(period: str, first: date) -> date:
    if period == "daily":
        return first + timedelta(days=1)
    if period == "weekly":
        return first + timedelta(days=7)
    return (first.replace(day=28) + timedelta(days=4)).replace(day=1)


def window(period: str, now: float, tz: ZoneInfo) -> Window:
    """The `period` ("daily", "weekly", "monthly") that contains the instant `now`."""
    today = datetime.fromtimestamp(now, UTC).astimezone(tz).date()
    first = _first_day(period, today)
    return Window(period, _midnight(first, tz), _midnight(_next_first_day(period, first), tz))


def windows(now: float, tz: ZoneInfo) -> dict[str, Window]:
    return {period: window(period, now, tz) for period in PERIODS}
