"""Tests for scoring.periods: quarters that ended, the business year, the first business day."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scoring.periods import (
    DEFAULT_FY_START,
    FY_STARTS,
    FiscalQuarter,
    Quarter,
    check_fy_start,
    first_business_day,
    fiscal,
    from_fiscal,
    fy_shift,
    has_ended,
    is_business_day,
    is_japanese_holiday,
    kickoff_day,
    last_ended,
    local_time,
    parse_fy_start,
    parse_period,
    quarter_of,
    reportable,
)

pytestmark = pytest.mark.fast  # unit tests: no Redis, no process, no server (tests/conftest.py)

JST = ZoneInfo("Asia/Tokyo")


def at(text: str, tz: str = "Asia/Tokyo") -> float:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz)).timestamp()


# ---- quarters that ended ----------------------------------------------------------------------------


def test_april_asks_for_january_to_march() -> None:
    now = at("2027-04-01T10:00:00")
    assert quarter_of(now, "Asia/Tokyo") == Quarter(2027, 2)
    assert last_ended(now, "Asia/Tokyo") == Quarter(2027, 1)
    assert reportable(now, "Asia/Tokyo") == [Quarter(2027, 1), Quarter(2026, 4), Quarter(2026, 3), Quarter(2026, 2),
                                            Quarter(2026, 1)]


def test_the_last_ended_quarter_follows_the_time_zone() -> None:
    now = at("2026-12-31T20:00:00", "UTC")  # 1 January in Tokyo, still 31 December in London
    assert last_ended(now, "Asia/Tokyo") == Quarter(2026, 4)
    assert last_ended(now, "Europe/London") == Quarter(2026, 3)


@given(st.integers(min_value=at("2002-01-01T00:00:00"), max_value=at("2998-12-31T00:00:00")),
       st.sampled_from(["Asia/Tokyo", "UTC", "America/Los_Angeles", "Pacific/Kiritimati"]))
def test_the_running_quarter_is_never_reportable(now: int, tz: str) -> None:
    running = quarter_of(now, tz)
    choices = reportable(now, tz)
    assert running not in choices and not has_ended(running, now, tz) and not has_ended(running.next(), now, tz)
    assert choices[0] == running.previous() and all(has_ended(q, now, tz) for q in choices)
    assert choices == sorted(choices, reverse=True) and len(set(choices)) == 5


def test_months_of_a_quarter() -> None:
    assert [(q.first_month, q.last_month, q.start) for q in (Quarter(2026, 1), Quarter(2026, 3), Quarter(2026, 4))] == [
        (1, 3, date(2026, 1, 1)), (7, 9, date(2026, 7, 1)), (10, 12, date(2026, 10, 1))
    ]


# ---- the business year ------------------------------------------------------------------------------


def test_a_business_year_starting_in_april() -> None:
    assert fiscal(Quarter(2026, 2)) == FiscalQuarter(2026, 1)  # April-June 2026: 2026年度 第1四半期
    assert fiscal(Quarter(2026, 3)) == FiscalQuarter(2026, 2)  # July-September: 第2四半期
    assert fiscal(Quarter(2026, 4)) == FiscalQuarter(2026, 3)
    assert fiscal(Quarter(2027, 1)) == FiscalQuarter(2026, 4)  # January-March 2027 still belongs to 2026年度
    assert DEFAULT_FY_START == 4


@pytest.mark.parametrize(
    ("fy_start", "expected"),
    [
        (1, [(2026, 1), (2026, 2), (2026, 3), (2026, 4)]),
        (4, [(2025, 4), (2026, 1), (2026, 2), (2026, 3)]),
        (7, [(2025, 3), (2025, 4), (2026, 1), (2026, 2)]),
        (10, [(2025, 2), (2025, 3), (2025, 4), (2026, 1)]),
    ],
)
def test_every_start_month_over_a_calendar_year(fy_start: int, expected: list[tuple[int, int]]) -> None:
    got = [fiscal(Quarter(2026, q), fy_start) for q in (1, 2, 3, 4)]
    assert got == [FiscalQuarter(y, q) for y, q in expected]


def test_a_business_year_starting_in_march() -> None:
    """2月決算: the year runs March-February, its quarters are March-May, June-August, September-November
    and December-February, each stored under its own key."""
    quarters = [Quarter.starting(2026, m) for m in (3, 6, 9, 12)]
    assert [str(q) for q in quarters] == ["2026-M03", "2026-M06", "2026-M09", "2026-M12"]
    assert [fiscal(q, 3) for q in quarters] == [FiscalQuarter(2026, n) for n in (1, 2, 3, 4)]
    assert [(q.first_month, q.last_month, q.last_year) for q in quarters] == [
        (3, 5, 2026), (6, 8, 2026), (9, 11, 2026), (12, 2, 2027)]
    assert [Quarter.parse(str(q)) for q in quarters] == quarters
    # the quarter running on a day, and the one a report is for
    assert quarter_of(at("2027-02-28T23:00:00"), "Asia/Tokyo", 3) == Quarter.starting(2026, 12)
    assert quarter_of(at("2027-03-01T00:00:00"), "Asia/Tokyo", 3) == Quarter.starting(2027, 3)
    assert last_ended(at("2027-03-01T10:00:00"), "Asia/Tokyo", 3) == Quarter.starting(2026, 12)
    assert reportable(at("2026-06-01T10:00:00"), "Asia/Tokyo", 3, fy_start=3) == [
        Quarter.starting(2026, 3), Quarter.starting(2025, 12), Quarter.starting(2025, 9)]
    assert fiscal(Quarter(2026, 2), 3) is None  # a calendar quarter is none of this year's


@pytest.mark.parametrize("fy_start", [1, 4, 7, 10])
def test_calendar_quarters_are_unchanged_for_a_year_from_a_calendar_quarter(fy_start: int) -> None:
    now = at("2026-08-15T12:00:00")
    assert quarter_of(now, "Asia/Tokyo", fy_start) == quarter_of(now, "Asia/Tokyo") == Quarter(2026, 3)
    assert str(Quarter(2026, 3)) == "2026-Q3" and Quarter(2026, 3).rank == Quarter(2026, 3).ordinal


@pytest.mark.parametrize("text", ["2026-M04", "2026-M01", "2026-M13", "2026-M3", "2026-Q5"])
def test_a_quarter_has_one_key(text: str) -> None:
    with pytest.raises(ValueError):
        Quarter.parse(text)


@given(st.integers(min_value=2001, max_value=2998), st.integers(min_value=1, max_value=12),
       st.integers(min_value=1, max_value=12), st.integers(min_value=1, max_value=28),
       st.sampled_from(["Asia/Tokyo", "UTC", "America/Los_Angeles"]))
def test_the_running_quarter_of_any_business_year(year: int, month: int, fy_start: int, day: int, tz: str) -> None:
    now = datetime(year, month, day, 12, tzinfo=ZoneInfo(tz)).timestamp()
    running = quarter_of(now, tz, fy_start)
    assert running.shift == fy_shift(fy_start) and fiscal(running, fy_start) is not None
    months = [(running.start.replace(day=1) + timedelta(days=31 * i)).month for i in range(3)]
    assert month in months and running.last_month == months[2]
    assert not has_ended(running, now, tz) and has_ended(running.previous(), now, tz)
    assert running.previous().rank < running.rank < running.next().rank
    assert Quarter.parse(str(running)) == running


@pytest.mark.parametrize("fy_start", FY_STARTS)
def test_each_business_year_is_four_consecutive_quarters(fy_start: int) -> None:
    """Exhaustively over 2000-2999: the quarters of one business year are consecutive, counted 1-4,
    and the first one starts in the business year's first month of the year the business year names."""
    by_year: dict[int, list[tuple[int, Quarter]]] = {}
    for n in range(Quarter(2000, 1).ordinal, Quarter(2999, 3).ordinal + 1):
        quarter = Quarter.from_ordinal(n, fy_shift(fy_start))
        fq = fiscal(quarter, fy_start)
        assert fq is not None
        by_year.setdefault(fq.year, []).append((fq.q, quarter))
    for year, rows in by_year.items():
        if len(rows) < 4:  # the partial business years at the ends of the range
            continue
        assert [q for q, _ in rows] == [1, 2, 3, 4]
        first = rows[0][1]
        assert (first.year, first.first_month) == (year, fy_start)
        assert [b.ordinal - a.ordinal for (_, a), (_, b) in pairwise(rows)] == [1, 1, 1]


@pytest.mark.parametrize(("text", "month"), [("4", 4), ("４", 4), ("4月", 4), ("04", 4), (" 10 ", 10), ("1", 1),
                                             ("3", 3), ("３月", 3), ("12", 12)])
def test_the_start_month_as_typed(text: str, month: int) -> None:
    assert parse_fy_start(text) == month


@pytest.mark.parametrize("text", ["", "13", "0", "april", "4.0", "-4", "007"])
def test_a_start_month_that_cannot_start_a_business_year(text: str) -> None:
    with pytest.raises(ValueError):
        parse_fy_start(text)


@pytest.mark.parametrize("month", [0, 13, -1, True, "4", 3.0])
def test_check_fy_start_refuses(month: object) -> None:
    with pytest.raises(ValueError):
        check_fy_start(month)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        fiscal(Quarter(2026, 1), month)  # type: ignore[arg-type]


@given(st.integers(Quarter(2001, 1).ordinal, Quarter(2998, 4).ordinal), st.sampled_from(FY_STARTS))
def test_from_fiscal_is_the_inverse_of_fiscal(n: int, fy_start: int) -> None:
    quarter = Quarter.from_ordinal(n, fy_shift(fy_start))  # one of that business year's quarters
    fq = fiscal(quarter, fy_start)
    assert fq is not None and from_fiscal(fq.year, fq.q, fy_start) == quarter


@pytest.mark.parametrize(("text", "fy_start", "expected"), [
    ("2026-Q1", 4, "2026-Q1"),
    (" ２０２６-Q1 ", 4, "2026-Q1"),  # full-width digits
    ("2025年度 第4四半期", 4, "2026-Q1"),  # January-March 2026 is the last quarter of 2025年度
    ("2025年度第4四半期", 4, "2026-Q1"),
    ("2025年度 第4四半期（2026年1〜3月）", 4, "2026-Q1"),  # a label as the form shows it
    ("２０２６年度 第１四半期", 4, "2026-Q2"),
    ("FY2025 Q4", 4, "2026-Q1"),
    ("fy2025-q4", 4, "2026-Q1"),
    ("FY2025 Q4 (Jan-Mar 2026)", 4, "2026-Q1"),
    ("2026年度 第1四半期", 1, "2026-Q1"),  # a business year starting in January is the calendar year
    ("FY2026 Q2", 10, "2027-Q1"),  # October 2026 + 3 months
    ("2026年度 第1四半期（3〜5月）", 3, "2026-M03"),  # a year from March: its quarters are not the calendar's
    ("2026年度 第4四半期", 3, "2026-M12"),
    ("2026-M03", 3, "2026-M03"),
])
def test_a_quarter_as_typed(text: str, fy_start: int, expected: str) -> None:
    assert str(parse_period(text, fy_start)) == expected


@pytest.mark.parametrize("text", ["", "2026", "2026-Q5", "2026年", "第4四半期", "2025年度 第5四半期", "Q4 2025",
                                  "FY25 Q4", "2025年度 第4四半期 余分", "x" * 100])
def test_a_quarter_that_cannot_be_read(text: str) -> None:
    with pytest.raises(ValueError):
        parse_period(text, 4)


# ---- business days ----------------------------------------------------------------------------------


def test_japanese_holidays_come_from_the_package() -> None:
    assert is_japanese_holiday(date(2027, 1, 1))  # 元日, a Friday
    assert is_japanese_holiday(date(2023, 1, 2))  # 振替休日: 1 January 2023 was a Sunday
    assert is_japanese_holiday(date(2027, 5, 4))  # みどりの日
    assert not is_japanese_holiday(date(2026, 1, 2))  # a New Year day, but not a public holiday
    assert not is_japanese_holiday(date(2027, 4, 1))


@pytest.mark.parametrize(
    ("day", "business"),
    [
        (date(2026, 1, 2), False),  # Friday, New Year day
        (date(2028, 1, 3), False),  # Monday, New Year day
        (date(2026, 1, 5), True),
        (date(2027, 1, 1), False),  # Friday, 元日
        (date(2027, 5, 3), False),  # Monday, 憲法記念日
        (date(2026, 4, 4), False),  # Saturday
        (date(2026, 4, 5), False),  # Sunday
        (date(2026, 12, 31), True),  # only 1-3 January are New Year days
    ],
)
def test_is_business_day(day: date, business: bool) -> None:
    assert is_business_day(day) is business


@pytest.mark.parametrize(
    ("quarter", "day"),
    [
        # 2026: 1 January is a Thursday (元日) and the 2nd a New Year day, then a weekend
        (Quarter(2026, 1), date(2026, 1, 5)),
        (Quarter(2026, 2), date(2026, 4, 1)),
        (Quarter(2026, 3), date(2026, 7, 1)),
        (Quarter(2026, 4), date(2026, 10, 1)),
        # 2027: 1 January (元日) falls on a Friday, the quarter's first weekday: moved to Monday the 4th
        (Quarter(2027, 1), date(2027, 1, 4)),
        (Quarter(2027, 2), date(2027, 4, 1)),
        (Quarter(2027, 3), date(2027, 7, 1)),
        (Quarter(2027, 4), date(2027, 10, 1)),
        # 2028: every quarter starts on a weekend; Monday 3 January is still a New Year day
        (Quarter(2028, 1), date(2028, 1, 4)),
        (Quarter(2028, 2), date(2028, 4, 3)),
        (Quarter(2028, 3), date(2028, 7, 3)),
        (Quarter(2028, 4), date(2028, 10, 2)),
        # 2023: Sunday 1 January, its substitute holiday on Monday the 2nd, the 3rd a New Year day
        (Quarter(2023, 1), date(2023, 1, 4)),
    ],
)
def test_kickoff_days(quarter: Quarter, day: date) -> None:
    assert kickoff_day(quarter) == day


def test_holidays_after_a_weekend_move_the_first_business_day_further() -> None:
    """May 2027: Saturday, Sunday, then 憲法記念日, みどりの日, こどもの日 (Monday to Wednesday)."""
    assert first_business_day(2027, 5) == date(2027, 5, 6)


def test_every_month_of_a_century_starts_on_its_first_business_day() -> None:
    """Exhaustively, 2000-2099: the day found is a business day and no earlier day of the month is,
    and it is never a weekend, 1-3 January or a day the holiday package names."""
    for year in range(2000, 2100):
        for month in range(1, 13):
            day = first_business_day(year, month)
            assert day.month == month and day.day <= 10
            assert day.weekday() < 5 and not (month == 1 and day.day <= 3) and not is_japanese_holiday(day)
            earlier = date(year, month, 1)
            while earlier < day:
                assert not is_business_day(earlier), earlier
                earlier += timedelta(days=1)


def test_local_time_of_a_day() -> None:
    assert local_time(date(2027, 1, 4), 10, "Asia/Tokyo") == at("2027-01-04T10:00:00")
    assert local_time(date(2027, 7, 1), 10, "Europe/London") == at("2027-07-01T10:00:00", "Europe/London")
