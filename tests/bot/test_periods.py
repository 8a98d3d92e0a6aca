"""Day, week and month windows in the configured time zone."""

from zoneinfo import ZoneInfo

from bot.periods import window, windows
from tests.bot.storage.conftest import at

SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_a_day_in_shanghai_runs_from_local_midnight():
    now = at("2026-03-01 23:59", "Asia/Shanghai")
    day = window("daily", now, SHANGHAI)
    assert day.start == at("2026-03-01 00:00", "Asia/Shanghai")
    assert day.end == at("2026-03-02 00:00", "Asia/Shanghai")
    # that same instant is still the afternoon of 1 March in UTC; the window is Shanghai's
    assert window("daily", now, ZoneInfo("UTC")).end == at("2026-03-02 00:00")


def test_weeks_start_on_monday_and_months_on_the_first():
    spans = windows(at("2026-03-01 10:00", "Asia/Shanghai"), SHANGHAI)  # a Sunday
    assert spans["weekly"].start == at("2026-02-23 00:00", "Asia/Shanghai")
    assert spans["weekly"].end == at("2026-03-02 00:00", "Asia/Shanghai")
    assert spans["monthly"].start == at("2026-03-01 00:00", "Asia/Shanghai")
    assert spans["monthly"].end == at("2026-04-01 00:00", "Asia/Shanghai")


def test_december_rolls_into_january():
    month = window("monthly", at("2026-12-31 23:00", "UTC"), ZoneInfo("UTC"))
    assert month.end == at("2027-01-01 00:00")


def test_a_dst_day_is_23_hours_long():
    new_york = ZoneInfo("America/New_York")
    day = window("daily", at("2026-03-08 12:00", "America/New_York"), new_york)
    assert day.end - day.start == 23 * 3600
