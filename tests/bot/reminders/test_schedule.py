"""The reminder calendar: pure computations."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from bot.reminders import ReminderSettings, kickoff_at, schedule
from scoring.periods import Quarter

pytestmark = pytest.mark.fast  # unit tests: no Redis, no process, no server (tests/conftest.py)

JST = ZoneInfo("Asia/Tokyo")


def local(ts: float, tz: ZoneInfo = JST) -> str:
    return datetime.fromtimestamp(ts, tz).strftime("%Y-%m-%d %a %H:%M")


def test_kickoff_is_the_first_business_day_at_ten_local_time() -> None:
    assert local(kickoff_at(Quarter(2026, 2), "Asia/Tokyo")) == "2026-04-01 Wed 10:00"
    assert local(kickoff_at(Quarter(2026, 3), "Asia/Tokyo")) == "2026-07-01 Wed 10:00"
    assert local(kickoff_at(Quarter(2023, 3), "Asia/Tokyo")) == "2023-07-03 Mon 10:00"  # 1 July was a Saturday
    assert local(kickoff_at(Quarter(2026, 4), "Asia/Tokyo")) == "2026-10-01 Thu 10:00"
    london = ZoneInfo("Europe/London")
    assert local(kickoff_at(Quarter(2026, 2), "Europe/London"), london) == "2026-04-01 Wed 10:00"


def test_kickoff_skips_japanese_holidays_and_the_new_year_days() -> None:
    assert local(kickoff_at(Quarter(2027, 1), "Asia/Tokyo")) == "2027-01-04 Mon 10:00"  # Friday the 1st: 元日
    assert local(kickoff_at(Quarter(2026, 1), "Asia/Tokyo")) == "2026-01-05 Mon 10:00"  # the 2nd: a New Year day
    assert local(kickoff_at(Quarter(2023, 1), "Asia/Tokyo")) == "2023-01-04 Wed 10:00"  # the 2nd: 振替休日


def test_nudges_follow_after_seven_and_fourteen_days() -> None:
    kinds = schedule(Quarter(2026, 2), "Asia/Tokyo", ReminderSettings())
    start = kinds[0][1]
    assert [(k, (due - start) / 86400) for k, due in kinds] == [("kickoff", 0), ("nudge7", 7), ("nudge14", 14)]


def test_half_yearly_cadence_skips_the_second_and_fourth_quarters() -> None:
    half = ReminderSettings(cadence="half-yearly", nudges=(10,))
    assert [k for k, _ in schedule(Quarter(2026, 1), "UTC", half)] == ["kickoff", "nudge10"]
    assert schedule(Quarter(2026, 2), "UTC", half) == []
    assert schedule(Quarter(2026, 4), "UTC", half) == []
