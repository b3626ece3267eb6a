"""The operator's availability for consultations, and the slots it offers: pure (no clock, no Redis).

The JSON contract (``GET``/``PUT /console/api/availability``, stored as it is dumped)::

    {"timezone": "Asia/Tokyo", "slot_minutes": 30, "capacity": 1, "min_notice_hours": 12,
     "horizon_days": 14, "weekly": {"mon": [["10:00", "12:00"], ["13:00", "17:00"]], "tue": [...], ...},
     "closed_dates": ["2027-01-05"], "reminder_hour": 18, "reminder_hours_before": 3,
     "format": "オンライン（Zoom）"}

* ``timezone``: an IANA zone name (zoneinfo), in which the hours, dates and reminder hour are read.
* ``slot_minutes`` (10-240): each range of the day is cut into slots this long; a tail shorter than a
  slot is dropped (10:00-11:45 with 30 gives 10:00, 10:30, 11:00).
* ``capacity`` (1-50): bookings one slot takes at once (the number of consultants).
* ``min_notice_hours`` (0-720): a slot starting sooner than this after now is not offered.
* ``horizon_days`` (1-365): slots are offered on today and the next ``horizon_days`` days (local dates).
* ``weekly``: per weekday (``mon`` ... ``sun``; a day left out has no hours) its ranges, ``"HH:MM"``
  to ``"HH:MM"`` (``"24:00"`` ends at midnight), each at least one slot long, none overlapping
  (at most 12 a day).
* ``closed_dates`` (optional, ``[]``): local dates with no slots. Japanese public holidays (the
  ``holidays`` package, through :mod:`scoring.periods`) have none either, whatever the weekly hours.
* ``reminder_hour`` (0-23): the reminder push the day before a booking goes at this local hour.
* ``reminder_hours_before`` (optional, null; 1-48): a second reminder this many hours before.
* ``format`` (1-60 characters): how the meeting is held, shown to the owner (「オンライン（Zoom）」, 「電話」).

Every key but the two optional ones is required; any other key is refused. A bad value raises
:class:`AvailabilityError` (an :class:`~conversations.errors.InvalidInput`) naming the field as a path:
``weekly.mon[1]: end 12:00 is not after start 13:00``.

Slots: :func:`day_slots` (one local date, notice and horizon aside), :func:`offered` (what may be
booked at ``now``: notice and horizon applied), :func:`refusal` (why one start is not offered), and
:func:`reminder_times` (when a booking's reminders are due).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from conversations.errors import InvalidInput
from scoring.periods import is_japanese_holiday

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # datetime.weekday() order
FIELDS = ("timezone", "slot_minutes", "capacity", "min_notice_hours", "horizon_days", "weekly", "closed_dates",
          "reminder_hour", "reminder_hours_before", "format")
OPTIONAL = frozenset({"closed_dates", "reminder_hours_before"})
SLOT_MINUTES = (10, 240)
MAX_SLOT_SECONDS = SLOT_MINUTES[1] * 60  # the longest a booking can be (how far back an overlap is looked for)
CAPACITY = (1, 50)
MIN_NOTICE_HOURS = (0, 720)
HORIZON_DAYS = (1, 365)
REMINDER_HOUR = (0, 23)
REMINDER_HOURS_BEFORE = (1, 48)
MAX_RANGES = 12  # per day
MAX_CLOSED = 1000
MAX_FORMAT = 60
_HHMM = re.compile(r"([01]?\d|2[0-4]):([0-5]\d)")

# Why a start is not offered (:func:`refusal`).
TOO_SOON = "too_soon"  # past, or within the minimum notice
TOO_FAR = "too_far"  # beyond the horizon
NOT_A_SLOT = "not_a_slot"  # not a slot of its day (no hours then, a closed date, a holiday, off the grid)


class AvailabilityError(InvalidInput):
    """A bad availability: ``field`` is the path of the value (``weekly.mon[1]``), ``problem`` what is wrong."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


@dataclass(frozen=True, order=True)
class Hours:
    """One range of a day, in minutes from local midnight (``end`` may be 1440, midnight)."""

    start: int
    end: int

    def to_json(self) -> list[str]:
        return [_hhmm(self.start), _hhmm(self.end)]

    def __str__(self) -> str:
        return f"{_hhmm(self.start)}-{_hhmm(self.end)}"


@dataclass(frozen=True, order=True)
class Slot:
    """One bookable slot: aware datetimes in the availability's time zone."""

    start: datetime
    end: datetime


@dataclass(frozen=True)
class Availability:
    timezone: str
    slot_minutes: int
    capacity: int
    min_notice_hours: int
    horizon_days: int
    weekly: tuple[tuple[Hours, ...], ...]  # seven days, Monday first; each day's ranges sorted
    closed_dates: tuple[date, ...]  # sorted, unique
    reminder_hour: int
    format: str
    reminder_hours_before: int | None = None

    # -- JSON -------------------------------------------------------------------------------------

    @classmethod
    def from_json(cls, data: Any) -> Availability:
        """The availability in ``data`` (a decoded JSON object); AvailabilityError naming the field."""
        if not isinstance(data, Mapping):
            raise AvailabilityError("availability", "must be a JSON object")
        unknown = sorted(str(k) for k in data if k not in FIELDS)
        if unknown:
            raise AvailabilityError(unknown[0][:40], "unknown field")
        missing = [f for f in FIELDS if f not in data and f not in OPTIONAL]
        if missing:
            raise AvailabilityError(missing[0], "missing")
        slot = _int(data, "slot_minutes", SLOT_MINUTES)
        before = data.get("reminder_hours_before")
        return cls(
            timezone=_zone_name(data["timezone"]),
            slot_minutes=slot,
            capacity=_int(data, "capacity", CAPACITY),
            min_notice_hours=_int(data, "min_notice_hours", MIN_NOTICE_HOURS),
            horizon_days=_int(data, "horizon_days", HORIZON_DAYS),
            weekly=_weekly(data["weekly"], slot),
            closed_dates=_closed(data.get("closed_dates", [])),
            reminder_hour=_int(data, "reminder_hour", REMINDER_HOUR),
            format=_format(data["format"]),
            reminder_hours_before=None if before is None else _int(data, "reminder_hours_before",
                                                                    REMINDER_HOURS_BEFORE),
        )

    @classmethod
    def loads(cls, raw: str | bytes) -> Availability:
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise AvailabilityError("availability", "not JSON") from None
        return cls.from_json(data)

    def to_json(self) -> dict[str, Any]:
        return {
            "timezone": self.timezone,
            "slot_minutes": self.slot_minutes,
            "capacity": self.capacity,
            "min_notice_hours": self.min_notice_hours,
            "horizon_days": self.horizon_days,
            "weekly": {DAYS[i]: [h.to_json() for h in day] for i, day in enumerate(self.weekly) if day},
            "closed_dates": [d.isoformat() for d in self.closed_dates],
            "reminder_hour": self.reminder_hour,
            "reminder_hours_before": self.reminder_hours_before,
            "format": self.format,
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), ensure_ascii=False, separators=(",", ":"))

    @property
    def version(self) -> str:
        """A digest of the dumped JSON: a booking is checked against the availability it was offered under."""
        return hashlib.sha256(self.dumps().encode()).hexdigest()[:16]

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def closed(self, day: date) -> bool:
        """No slots that local date: a closed date or a Japanese public holiday."""
        return day in self.closed_dates or is_japanese_holiday(day)


# ---- validation ------------------------------------------------------------------------------------


def _int(data: Mapping[str, Any], name: str, bounds: tuple[int, int]) -> int:
    value = data[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise AvailabilityError(name, f"must be a whole number, not {json.dumps(value, ensure_ascii=False)[:20]}")
    lo, hi = bounds
    if not lo <= value <= hi:
        raise AvailabilityError(name, f"{value} is not between {lo} and {hi}")
    return value


def _zone_name(value: Any) -> str:
    if not isinstance(value, str) or not value or len(value) > 64:
        raise AvailabilityError("timezone", "must be a time zone name such as Asia/Tokyo")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise AvailabilityError("timezone", f"unknown time zone {value[:40]!r}") from None
    return value


def _minutes(value: Any, field: str) -> int:
    if not isinstance(value, str) or not _HHMM.fullmatch(value.strip()):
        raise AvailabilityError(field, f"{json.dumps(value, ensure_ascii=False)[:20]} is not a time HH:MM")
    hour, minute = (int(x) for x in value.strip().split(":"))
    if hour == 24 and minute:
        raise AvailabilityError(field, f"{value} is past 24:00")
    return hour * 60 + minute


def _day(name: str, ranges: Any, slot: int) -> tuple[Hours, ...]:
    where = f"weekly.{name}"
    if not isinstance(ranges, list):
        raise AvailabilityError(where, "must be a list of [start, end] pairs")
    if len(ranges) > MAX_RANGES:
        raise AvailabilityError(where, f"at most {MAX_RANGES} ranges a day")
    found: list[tuple[Hours, int]] = []
    for i, pair in enumerate(ranges):
        at = f"{where}[{i}]"
        if not isinstance(pair, list) or len(pair) != 2:
            raise AvailabilityError(at, "must be a pair [start, end] such as [\"10:00\", \"12:00\"]")
        start, end = _minutes(pair[0], f"{at}[0]"), _minutes(pair[1], f"{at}[1]")
        if start >= 24 * 60:
            raise AvailabilityError(f"{at}[0]", "a range cannot start at 24:00")
        if end <= start:
            raise AvailabilityError(at, f"end {_hhmm(end)} is not after start {_hhmm(start)}")
        if end - start < slot:
            raise AvailabilityError(at, f"{_hhmm(start)}-{_hhmm(end)} is shorter than one slot ({slot} minutes)")
        found.append((Hours(start, end), i))
    found.sort()
    for (a, i), (b, j) in itertools.pairwise(found):
        if b.start < a.end:
            first, second = sorted((i, j))
            raise AvailabilityError(f"{where}[{second}]", f"overlaps {where}[{first}] ({a} and {b})")
    return tuple(h for h, _ in found)


def _weekly(value: Any, slot: int) -> tuple[tuple[Hours, ...], ...]:
    if not isinstance(value, Mapping):
        raise AvailabilityError("weekly", "must be an object with a list of ranges per day (mon ... sun)")
    for name in value:
        if name not in DAYS:
            raise AvailabilityError(f"weekly.{str(name)[:10]}", f"not a day: use {', '.join(DAYS)}")
    return tuple(_day(name, value[name], slot) if name in value else () for name in DAYS)


def _closed(value: Any) -> tuple[date, ...]:
    if not isinstance(value, list):
        raise AvailabilityError("closed_dates", "must be a list of dates YYYY-MM-DD")
    if len(value) > MAX_CLOSED:
        raise AvailabilityError("closed_dates", f"at most {MAX_CLOSED} dates")
    out = set()
    for i, item in enumerate(value):
        try:
            if not isinstance(item, str) or len(item) != 10:
                raise ValueError
            out.add(date.fromisoformat(item))
        except ValueError:
            shown = json.dumps(item, ensure_ascii=False)[:20]
            raise AvailabilityError(f"closed_dates[{i}]", f"{shown} is not a date YYYY-MM-DD") from None
    return tuple(sorted(out))


def _format(value: Any) -> str:
    if not isinstance(value, str):
        raise AvailabilityError("format", "must be a text such as オンライン（Zoom）")
    text = unicodedata.normalize("NFC", value).strip()
    if not text or len(text) > MAX_FORMAT or not text.isprintable():
        raise AvailabilityError("format", f"must be 1 to {MAX_FORMAT} printable characters on one line")
    return text


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


# ---- slots ------------------------------------------------------------------------------------------


def instant(now: float | datetime) -> datetime:
    """``now`` (epoch seconds or an aware datetime) as an aware datetime in UTC."""
    if isinstance(now, datetime):
        if now.tzinfo is None:
            raise InvalidInput("a time without a time zone")
        return now.astimezone(UTC)
    return datetime.fromtimestamp(now, UTC)


def _wall(av: Availability, day: date, minutes: int) -> datetime:
    """``minutes`` after local midnight of ``day``, as an aware datetime in UTC (24:00 = the next midnight)."""
    extra, minutes = divmod(minutes, 24 * 60)
    local = datetime.combine(day + timedelta(days=extra), time(minutes // 60, minutes % 60), tzinfo=av.zone)
    return local.astimezone(UTC)


def day_slots(av: Availability, day: date) -> list[Slot]:
    """The slots of one local date (none on a closed date or a Japanese public holiday), in order;
    minimum notice and horizon not applied."""
    if av.closed(day):
        return []
    step = timedelta(minutes=av.slot_minutes)
    out = []
    for hours in av.weekly[day.weekday()]:
        start, end = _wall(av, day, hours.start), _wall(av, day, hours.end)
        while start + step <= end:  # a tail shorter than a slot is dropped
            out.append(Slot(start.astimezone(av.zone), (start + step).astimezone(av.zone)))
            start += step
    return out


def today(av: Availability, now: float | datetime) -> date:
    """The local date at ``now``."""
    return instant(now).astimezone(av.zone).date()


def window(av: Availability, now: float | datetime) -> tuple[date, date]:
    """The local dates slots may be offered on at ``now``: today to today + horizon_days."""
    first = today(av, now)
    return first, first + timedelta(days=av.horizon_days)


def offered(av: Availability, now: float | datetime, first: date | None = None,
            last: date | None = None) -> list[Slot]:
    """The slots that may be booked at ``now``, from local date ``first`` to ``last`` (both included,
    clipped to :func:`window`; None: its ends), in order: minimum notice and horizon applied."""
    at = instant(now)
    lo, hi = window(av, at)
    first, last = max(first or lo, lo), min(last or hi, hi)
    earliest = at + timedelta(hours=av.min_notice_hours)
    out: list[Slot] = []
    day = first
    while day <= last:
        out += [s for s in day_slots(av, day) if s.start >= earliest]
        day += timedelta(days=1)
    return out


def refusal(av: Availability, now: float | datetime, start: datetime) -> str | None:
    """Why ``start`` cannot be booked at ``now`` (:data:`TOO_SOON`, :data:`TOO_FAR`, :data:`NOT_A_SLOT`),
    or None when it is an offered slot's start."""
    at, begins = instant(now), instant(start)
    if begins < at + timedelta(hours=av.min_notice_hours):
        return TOO_SOON
    local = begins.astimezone(av.zone).date()
    if local > window(av, at)[1]:
        return TOO_FAR
    if not any(s.start == begins for s in day_slots(av, local)):
        return NOT_A_SLOT
    return None


def slot_at(av: Availability, start: datetime) -> Slot | None:
    """The slot of its day that starts at ``start`` (notice and horizon aside), or None."""
    begins = instant(start)
    return next((s for s in day_slots(av, begins.astimezone(av.zone).date()) if s.start == begins), None)


def reminder_times(av: Availability, start: datetime, now: float | datetime) -> list[tuple[str, datetime]]:
    """(kind, when) of a booking's reminders, as booked at ``now``: ``"day"`` the day before at
    ``reminder_hour`` (local), ``"soon"`` ``reminder_hours_before`` hours before (when set). A reminder
    whose time has passed when the booking is made (booked late the day before) is left out."""
    at, begins = instant(now), instant(start)
    local = begins.astimezone(av.zone)
    day_before = datetime.combine(local.date() - timedelta(days=1), time(av.reminder_hour), tzinfo=av.zone)
    out = []
    if day_before.astimezone(UTC) > at:
        out.append(("day", day_before.astimezone(UTC)))
    if av.reminder_hours_before is not None:
        soon = begins - timedelta(hours=av.reminder_hours_before)
        if soon > at and all(soon != when for _, when in out):
            out.append(("soon", soon))
    return out
