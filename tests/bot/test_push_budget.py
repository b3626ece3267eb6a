"""The push budget on the suite's real Redis: a reservation counts once by its job id (a clock that retries
counts nothing more), a push the owner asked for is never held but counts, one not asked for is held over the
budget or LINE's quota left, months are Japan-time calendar months, and the next month opens at its 1st."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.push_budget import ALLOWED, HELD_BUDGET, HELD_QUOTA, PushBudget, month_of, next_month_opens

JST = ZoneInfo("Asia/Tokyo")
NOW = datetime(2026, 12, 31, 23, 30, tzinfo=JST).timestamp()  # 14:30 UTC: still December in Japan


def test_reservations_count_once_and_asked_for_pushes_are_never_held(r: Any) -> None:
    budget = PushBudget(r, 3)
    assert budget.reserve("job-1", "nudge", NOW) == ALLOWED
    assert budget.reserve("job-1", "nudge", NOW) == ALLOWED  # the same push again: counted once
    assert budget.reserve("multi", "retake", NOW, n=2, must=True) == ALLOWED  # the budget is now used up
    assert budget.reserve("job-2", "nudge", NOW) == HELD_BUDGET
    assert budget.reserve("job-2", "nudge", NOW) == HELD_BUDGET  # held again: one hold counted
    assert budget.reserve("bk", "booking_reminder", NOW, must=True) == ALLOWED  # over it, asked for: sent
    usage = budget.usage(NOW)
    assert (usage.month, usage.budget, usage.used) == ("2026-12", 3, 4)
    assert usage.by_kind == {"booking_reminder": 1, "nudge": 1, "retake": 2}
    assert usage.held == {"nudge": 1} and usage.dropped == {}
    budget.dropped("nudge", NOW, "the diagnosis expired")
    assert budget.usage(NOW).dropped == {"nudge": 1}


def test_lines_quota_left_holds_what_the_budget_allows(r: Any) -> None:
    unlimited = PushBudget(r, None)
    assert unlimited.reserve("a", "nudge", NOW, quota_left=0) == HELD_QUOTA
    assert unlimited.reserve("b", "booking_reminder", NOW, must=True, quota_left=0) == ALLOWED
    assert unlimited.reserve("c", "nudge", NOW, quota_left=1) == ALLOWED
    assert unlimited.usage(NOW).used == 2


def test_months_are_japan_time_calendar_months() -> None:
    assert month_of(NOW) == "2026-12"
    assert month_of(NOW + 3600) == "2027-01"
    assert next_month_opens(NOW) == datetime(2027, 1, 1, tzinfo=JST).timestamp()
    mid_january = datetime(2027, 1, 15, tzinfo=JST).timestamp()
    assert next_month_opens(mid_january) == datetime(2027, 2, 1, tzinfo=JST).timestamp()
