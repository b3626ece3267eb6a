"""Reporting periods (quarters), pure: no clock of its own, time zones by name.

A quarter is three consecutive months. Most are calendar quarters, written ``2026-Q4``
(October-December 2026): a team whose business year starts in January, April, July or October reports
by them. A business year may start in any month, though (a company closing its books in February
starts its year in March), and then its quarters are shifted from the calendar's by one or two months:
such a quarter is written by its first month, ``2026-M03`` (March-May 2026), ``2026-M12``
(December 2026-February 2027). Figures are stored under that key; a quarter has exactly one. The
current quarter depends on the team's time zone (a team in Asia/Tokyo is already in Q1 when it is still
31 December in UTC) and on where its business year starts (:func:`quarter_of`'s ``fy_start``).

* **A report is for a quarter that has ended**: quarterly figures exist only then. The quarter running
  now cannot be reported; :func:`last_ended` is the one a report is for by default, and
  :func:`reportable` adds earlier ones for late entries.
* **The business year** (年度) starts in the month a team chooses, any of 1-12 (April by default, as
  at most Japanese companies). A business year is named after the calendar year it starts in: with
  April, July-September 2026 is 2026年度 第2四半期 and January-March 2027 is 2026年度 第4四半期; with
  March, March-May 2026 is 2026年度 第1四半期 and December 2026-February 2027 its 第4四半期
  (:func:`fiscal`).
* **The first business day** of a month skips Saturdays, Sundays, Japanese public holidays (from
  the maintained ``holidays`` package: substitute holidays included; for years it covers, 1949-2099)
  and the New Year days, 1-3 January (:func:`first_business_day`). The kickoff of a quarter's
  reporting is on the first business day of its first month (:func:`kickoff_day`), and asks for the
  quarter before it.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

_QUARTER = re.compile(r"^(\d{4})-Q([1-4])$")
_SHIFTED = re.compile(r"^(\d{4})-M(0[1-9]|1[0-2])$")
# A quarter of a business year as people write it (after NFKC): 「2025年度 第4四半期」, "FY2025 Q4"
_FISCAL_JA = re.compile(r"^(\d{4})\s*年度\s*第?\s*([1-4])\s*四半期$")
_FISCAL_EN = re.compile(r"^FY\s*(\d{4})\s*[-/ ]?\s*Q([1-4])$", re.IGNORECASE)
_TRAILING_NOTE = re.compile(r"\s*\([^()]*\)$")  # "(Jan-Mar 2026)", 「（2026年1〜3月）」 after NFKC

# The time zone of a Slack team set up without ``tz=`` and of every LINE user (the product serves Japan).
DEFAULT_TZ = "Asia/Tokyo"
# The first month of a business year: any month. April is the Japanese default.
FY_STARTS: tuple[int, ...] = tuple(range(1, 13))
DEFAULT_FY_START = 4
NEW_YEAR_DAYS = 3  # 1-3 January are not business days (most Japanese companies close)


@dataclass(frozen=True, order=True)
class Quarter:
    """Three months: the calendar quarter ``q`` of ``year`` moved ``shift`` (0-2) months later.

    ``shift`` 0 is a calendar quarter (``2026-Q3``: July-September); ``Quarter(2026, 1, 2)`` is
    March-May 2026 (``2026-M03``), ``Quarter(2026, 4, 2)`` December 2026-February 2027 (``2026-M12``).
    ``year`` is the year of the first month. Quarters compare by their first month."""

    year: int
    q: int  # 1..4
    shift: int = 0  # months after the calendar quarter: 0..2

    def __post_init__(self) -> None:
        if not (1 <= self.q <= 4) or not (2000 <= self.year <= 2999) or self.shift not in (0, 1, 2):
            raise ValueError(f"not a quarter: {self.year}-Q{self.q}+{self.shift}")

    def __str__(self) -> str:
        return f"{self.year}-Q{self.q}" if self.shift == 0 else f"{self.year}-M{self.first_month:02d}"

    @classmethod
    def starting(cls, year: int, month: int) -> Quarter:
        """The quarter whose first month is ``month`` of ``year``."""
        if not 1 <= month <= 12:
            raise ValueError(f"not a month: {month!r}")
        return cls(year, (month - 1) // 3 + 1, (month - 1) % 3)

    @property
    def ordinal(self) -> int:
        """Consecutive quarters of one shift have consecutive ordinals (:meth:`from_ordinal`)."""
        return self.year * 4 + self.q - 1

    @property
    def rank(self) -> float:
        """Orders quarters of any shift by their first month (a score in a sorted set); the ordinal for a
        calendar quarter, so stored scores stay what they were."""
        return self.ordinal + self.shift / 3

    @classmethod
    def from_ordinal(cls, n: int, shift: int = 0) -> Quarter:
        return cls(n // 4, n % 4 + 1, shift)

    @classmethod
    def parse(cls, text: str) -> Quarter:
        """``2026-Q4``, or a shifted quarter by its first month ``2026-M03`` (a calendar quarter's first
        month is refused in that form: each quarter has one key)."""
        s = text.strip() if isinstance(text, str) else ""
        m = _QUARTER.match(s)
        if m:
            return cls(int(m.group(1)), int(m.group(2)))
        m = _SHIFTED.match(s)
        if m and int(m.group(2)) % 3 != 1:
            return cls.starting(int(m.group(1)), int(m.group(2)))
        raise ValueError(f"not a quarter: {str(text)[:20]!r} (expected e.g. 2026-Q4 or 2026-M03)")

    def previous(self, n: int = 1) -> Quarter:
        return Quarter.from_ordinal(self.ordinal - n, self.shift)

    def next(self) -> Quarter:
        return Quarter.from_ordinal(self.ordinal + 1, self.shift)

    @property
    def first_month(self) -> int:
        return 3 * (self.q - 1) + 1 + self.shift

    @property
    def last_month(self) -> int:
        """The last month's number (1-12): February for a quarter from December."""
        return (self.first_month + 1) % 12 + 1

    @property
    def last_year(self) -> int:
        """The year of the last month: the next year for a quarter from November or December."""
        return self.year + (1 if self.first_month > 10 else 0)

    @property
    def start(self) -> date:
        """The quarter's first calendar day."""
        return date(self.year, self.first_month, 1)


@dataclass(frozen=True, order=True)
class FiscalQuarter:
    """A quarter of a business year: ``year`` names the calendar year the business year starts in
    (2026年度), ``q`` is 1..4 counted from the business year's first month."""

    year: int
    q: int


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name[:40]!r}") from None


def fy_shift(fy_start: int) -> int:
    """How many months a business year starting in ``fy_start`` shifts its quarters from the calendar's
    (0 for January, April, July, October; 2 for March)."""
    return (check_fy_start(fy_start) - 1) % 3


def quarter_of(now: float, tz: str, fy_start: int = 1) -> Quarter:
    """The quarter an epoch instant falls in, in the given time zone, among the quarters of a business
    year starting in ``fy_start`` (default: calendar quarters)."""
    local = datetime.fromtimestamp(now, zone(tz))
    months = local.year * 12 + local.month - 1
    first = months - (local.month - 1 - fy_shift(fy_start)) % 3
    return Quarter.starting(first // 12, first % 12 + 1)


def last_ended(now: float, tz: str, fy_start: int = 1) -> Quarter:
    """The most recent quarter that has ended (in the given time zone): the one a report is for."""
    return quarter_of(now, tz, fy_start).previous()


def reportable(now: float, tz: str, count: int = 5, fy_start: int = 1) -> list[Quarter]:
    """The last ended quarter first, then the ones before it (the choices for a late report).
    The running quarter is never among them."""
    last = last_ended(now, tz, fy_start)
    return [last.previous(i) for i in range(count)]


def has_ended(quarter: Quarter, now: float, tz: str) -> bool:
    """Whether the quarter is over (in the given time zone): only then can it be reported."""
    local = datetime.fromtimestamp(now, zone(tz))
    return (quarter.last_year, quarter.last_month) < (local.year, local.month)


# ---- the business year -----------------------------------------------------------------------------


def check_fy_start(month: int) -> int:
    """``month`` if it can start a business year (1-12), else ValueError."""
    if isinstance(month, bool) or not isinstance(month, int) or month not in FY_STARTS:
        raise ValueError(f"a business year starts in a month 1-12, not {month!r}")
    return month


def parse_fy_start(text: str) -> int:
    """'4', '４', '4月', '04' -> 4; ValueError for anything else or a month that cannot start one."""
    s = unicodedata.normalize("NFKC", text).strip().removesuffix("月").strip()
    if not s.isdigit() or len(s) > 2:
        raise ValueError(f"not a month: {text[:10]!r}")
    return check_fy_start(int(s))


def fiscal(quarter: Quarter, fy_start: int = DEFAULT_FY_START) -> FiscalQuarter | None:
    """The business-year quarter ``quarter`` is, for a business year starting in ``fy_start``; None when
    it is not one of that year's quarters (a report stored before the team moved its year's start by
    one or two months: it is named by its months alone)."""
    if quarter.shift != fy_shift(fy_start):
        return None
    year = quarter.year if quarter.first_month >= fy_start else quarter.year - 1
    return FiscalQuarter(year, (quarter.first_month - fy_start) % 12 // 3 + 1)


def from_fiscal(year: int, q: int, fy_start: int = DEFAULT_FY_START) -> Quarter:
    """The calendar quarter that is quarter ``q`` (1..4) of the business year ``year`` (named after the
    calendar year it starts in) starting in ``fy_start``: the inverse of :func:`fiscal`."""
    check_fy_start(fy_start)
    if not 1 <= q <= 4:
        raise ValueError(f"not a quarter of a business year: {q!r}")
    month0 = fy_start - 1 + 3 * (q - 1)  # months since January of ``year``, 0-based
    return Quarter.starting(year + month0 // 12, month0 % 12 + 1)


def parse_period(text: str, fy_start: int = DEFAULT_FY_START) -> Quarter:
    """A quarter as someone typed it: a quarter's key ("2026-Q1", "2026-M03"), or a quarter of the business
    year starting in ``fy_start`` (「2025年度 第4四半期」, "FY2025 Q4"; full-width characters and a
    trailing note in brackets, as the labels carry, are taken too). ValueError for anything else."""
    if not isinstance(text, str) or len(text) > 80:
        raise ValueError("not a quarter")
    s = _TRAILING_NOTE.sub("", unicodedata.normalize("NFKC", text).strip()).strip()
    if _QUARTER.match(s) or _SHIFTED.match(s):
        return Quarter.parse(s)
    m = _FISCAL_JA.match(s) or _FISCAL_EN.match(s)
    if not m:
        raise ValueError(f"not a quarter: {text[:20]!r} (expected e.g. 2026-Q1 or 2025年度 第4四半期)")
    return from_fiscal(int(m.group(1)), int(m.group(2)), fy_start)


# ---- business days ---------------------------------------------------------------------------------


@cache
def _japanese_holidays(year: int) -> frozenset[date]:
    # computed once per year and frozen: a plain set is safe to share between threads
    return frozenset(holidays.country_holidays("JP", years=year))


def is_japanese_holiday(day: date) -> bool:
    """A Japanese public holiday (国民の祝日, substitute and citizens' holidays included)."""
    return day in _japanese_holidays(day.year)


def is_business_day(day: date) -> bool:
    """Monday to Friday, not a Japanese public holiday, not 1-3 January."""
    if day.weekday() >= 5:
        return False
    if day.month == 1 and day.day <= NEW_YEAR_DAYS:
        return False
    return not is_japanese_holiday(day)


def first_business_day(year: int, month: int) -> date:
    """The first business day of a month (see :func:`is_business_day`)."""
    day = date(year, month, 1)
    while not is_business_day(day):
        day += timedelta(days=1)
    return day


def kickoff_day(quarter: Quarter) -> date:
    """The day a quarter's reporting round starts (asking for the quarter before it): the first
    business day of its first month."""
    return first_business_day(quarter.year, quarter.first_month)


def local_time(day: date, hour: int, tz: str) -> float:
    """The epoch instant of ``hour``:00 on ``day`` in the given time zone."""
    return datetime(day.year, day.month, day.day, hour, tzinfo=zone(tz)).timestamp()
