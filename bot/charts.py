"""The spend chart of `/mod stats`: images delivered and failures per day (bars) and dollars
per day (a line on its own axis), drawn with matplotlib on an opaque light card, so that it
reads the same in Discord's dark and light themes. The chart holds numbers and dates only; the
words that explain it are in the message, in the moderator's language."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

IMAGES, FAILURES, DOLLARS = "#5865f2", "#ed4245", "#f0a020"  # Discord's blurple and red
WIDTH, HEIGHT, DPI = 8.0, 3.6, 100  # 800 x 360 pixels


@dataclass(frozen=True)
class DayFigures:
    day: date
    images: int
    failures: int
    usd: float


def by_day(rows: list[tuple[float, int, str, float | None]], days: int, now: float,
           tz: ZoneInfo) -> list[DayFigures]:
    """(created_at, images delivered, status, cost) rows as one figure per local day of the
    last `days` days, empty days included."""
    today = datetime.fromtimestamp(now, UTC).astimezone(tz).date()
    first = today - timedelta(days=days - 1)
    images = {first + timedelta(days=n): [0, 0, 0.0] for n in range(days)}
    for created_at, delivered, status, cost in rows:
        day = datetime.fromtimestamp(created_at, UTC).astimezone(tz).date()
        if day in images:
            images[day][0] += int(delivered or 0)
            images[day][1] += status in ("failed", "timed_out")
            images[day][2] += float(cost or 0)
    return [DayFigures(day, int(i), int(f), usd) for day, (i, f, usd) in images.items()]


def render(figures: list[DayFigures]) -> bytes:
    """The chart as a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    figure = Figure(figsize=(WIDTH, HEIGHT), dpi=DPI, facecolor="#ffffff")
    axes = figure.add_subplot()
    spots = range(len(figures))
    axes.bar(spots, [f.images for f in figures], color=IMAGES, width=0.7)
    axes.bar(spots, [f.failures for f in figures], bottom=[f.images for f in figures],
             color=FAILURES, width=0.7)
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylim(bottom=0)
    money = axes.twinx()
    money.plot(spots, [f.usd for f in figures], color=DOLLARS, linewidth=2.2, marker="o",
               markersize=3 if len(figures) > 31 else 5)
    money.set_ylim(bottom=0, top=max([f.usd for f in figures] + [0.01]) * 1.15)
    money.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"${v:,.2f}"))
    step = max(1, len(figures) // 10)
    axes.set_xticks(list(spots)[::step], [f.day.strftime("%m-%d") for f in figures][::step])
    for side in (axes, money):
        side.tick_params(colors="#313338", labelsize=9)
        for spine in side.spines.values():
            spine.set_color("#b5bac1")
    axes.grid(axis="y", color="#e3e5e8", linewidth=0.8)
    axes.set_axisbelow(True)
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format="png", facecolor=figure.get_facecolor())
    return out.getvalue()
