"""Reporting periods (quarters), pure: no clock of its own, time zones by name.

A quarter is written ``2026-Q4``. The current quarter depends on the team's time zone: a team in
Asia/Tokyo is already in Q1 when it is still 31 December in UTC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_QUARTER = re.compile(r"^(\d{4})-Q([1-4])$")

# The time zone of a Slack team set up without ``tz=`` and of every LINE user (the product serves Japan).
DEFAULT_TZ = "Asia/Tokyo"


@dataclass(frozen=True, order=True)
class Quarter:
    year: int
    q: int  # 1..4

    def __post_init__(self) -> None:
        if not (1 <= self.q <= 4) or not (2000 <= self.year <= 2999):
            raise ValueError(f"not a quarter: {self.year}-Q{self.q}")

    def __str__(self) -> str:
        return f"{self.year}-Q{self.q}"

    @property
    def ordinal(self) -> int:
        return self.year * 4 + self.q - 1

    @classmethod
    def from_ordinal(cls, n: int) -> Quarter:
        return cls(n // 4, n % 4 + 1)

    @classmethod
    def parse(cls, text: str) -> Quarter:
        m = _QUARTER.match(text.strip()) if isinstance(text, str) else None
        if not m:
            raise ValueError(f"not a quarter: {str(text)[:20]!r} (expected e.g. 2026-Q4)")
        return cls(int(m.group(1)), int(m.group(2)))

    def previous(self, n: int = 1) -> Quarter:
        return Quarter.from_ordinal(self.ordinal - n)

    def next(self) -> Quarter:
        return Quarter.from_ordinal(self.ordinal + 1)

    @property
    def first_month(self) -> int:
        return 3 * (self.q - 1) + 1


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name[:40]!r}") from None


def quarter_of(now: float, tz: str) -> Quarter:
    """The quarter an epoch instant falls in, in the given time zone."""
    local = datetime.fromtimestamp(now, zone(tz))
    return Quarter(local.year, (local.month - 1) // 3 + 1)


def recent(now: float, tz: str, count: int = 5) -> list[Quarter]:
    """The current quarter first, then the ones before it (the choices for a late report)."""
    cur = quarter_of(now, tz)
    return [cur.previous(i) for i in range(count)]
