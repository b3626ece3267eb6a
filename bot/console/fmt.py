"""Dates in Japan time and numbers, as the console and its CSV files show them."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from scoring.periods import DEFAULT_TZ

JST = ZoneInfo(DEFAULT_TZ)
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def when(ts: float) -> str:
    """An instant as ``2026-01-01 09:00`` Japan time ("" for 0: never)."""
    return datetime.fromtimestamp(ts, JST).strftime("%Y-%m-%d %H:%M") if ts else ""


def today(now: float) -> date:
    return datetime.fromtimestamp(now, JST).date()


def parse_day(text: str | None) -> date | None:
    """``YYYY-MM-DD`` or nothing; ValueError for anything else."""
    text = (text or "").strip()
    if not text:
        return None
    if not _DAY.fullmatch(text):
        raise ValueError(f"not a date: {text[:12]!r}")
    return date.fromisoformat(text)


def day_range(
    start: str | None, end: str | None, now: float, default_days: int | None
) -> tuple[date | None, date | None]:
    """The range of a date filter: given days, or the last ``default_days`` days up to today (None: open).
    ValueError for a malformed date or an end before the start."""
    s, e = parse_day(start), parse_day(end)
    if default_days is not None:
        e = e or today(now)
        s = s or e - timedelta(days=default_days - 1)
    if s and e and e < s:
        raise ValueError("end before start")
    return s, e


def number(v: float | None) -> str:
    """A figure without a needless ``.0`` (95 -> "95", 2.5 -> "2.5"; None -> "")."""
    if v is None:
        return ""
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def score(v: float | None) -> str:
    """A one-decimal score ("7.0"); None -> ""."""
    return "" if v is None else f"{v:.1f}"


def percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "–"
