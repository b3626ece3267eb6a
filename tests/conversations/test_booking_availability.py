"""conversations.booking.availability: the JSON contract, its validation field by field, and the slots it
offers (holidays, closed dates, notice, horizon, a partial tail dropped), by example and as properties."""

from __future__ import annotations

import copy
import json
from datetime import date, datetime, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conversations.booking.availability import (
    DAYS,
    NOT_A_SLOT,
    TOO_FAR,
    TOO_SOON,
    Availability,
    AvailabilityError,
    day_slots,
    offered,
    refusal,
    reminder_times,
    window,
)
from scoring.periods import is_japanese_holiday

pytestmark = pytest.mark.fast

JST = ZoneInfo("Asia/Tokyo")
CONTRACT: dict[str, Any] = {
    "timezone": "Asia/Tokyo", "slot_minutes": 30, "capacity": 1, "min_notice_hours": 12, "horizon_days": 14,
    "weekly": {"mon": [["10:00", "12:00"], ["13:00", "17:00"]], "tue": [["10:00", "12:00"]],
               "wed": [["10:00", "11:45"]], "fri": [["20:00", "24:00"]]},
    "closed_dates": ["2027-01-05"], "reminder_hour": 18, "format": "オンライン（Zoom）",
}


def jst(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=JST)


def with_(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(CONTRACT)
    data.update(changes)
    return data


# ---- the contract -----------------------------------------------------------------------------------


def test_the_contract_round_trips_exactly() -> None:
    av = Availability.from_json(CONTRACT)
    assert av.to_json() == {**CONTRACT, "reminder_hours_before": None}
    assert Availability.loads(av.dumps()) == av
    assert Availability.from_json(with_(reminder_hours_before=3)).reminder_hours_before == 3
    # normalised: ranges sorted, dates sorted and unique, "9:00" written "09:00"
    messy = with_(weekly={"mon": [["13:00", "17:00"], ["9:00", "12:00"]]},
                  closed_dates=["2027-02-01", "2027-01-05", "2027-02-01"])
    assert Availability.from_json(messy).to_json()["weekly"] == {"mon": [["09:00", "12:00"], ["13:00", "17:00"]]}
    assert Availability.from_json(messy).to_json()["closed_dates"] == ["2027-01-05", "2027-02-01"]
    assert Availability.from_json(with_(closed_dates=[])).version != Availability.from_json(CONTRACT).version


def test_optional_fields_may_be_left_out() -> None:
    data = with_()
    del data["closed_dates"]
    av = Availability.from_json(data)
    assert av.closed_dates == () and av.reminder_hours_before is None


@pytest.mark.parametrize(("changes", "message"), [
    ({"weekly": {"mon": [["10:00", "12:00"], ["13:00", "12:00"]]}},
     "weekly.mon[1]: end 12:00 is not after start 13:00"),
    ({"weekly": {"tue": [["10:00", "12:00"], ["11:30", "13:00"]]}},
     "weekly.tue[1]: overlaps weekly.tue[0] (10:00-12:00 and 11:30-13:00)"),
    ({"weekly": {"tue": [["11:30", "13:00"], ["10:00", "12:00"]]}},
     "weekly.tue[1]: overlaps weekly.tue[0] (10:00-12:00 and 11:30-13:00)"),
    ({"weekly": {"wed": [["10:00", "10:15"]]}}, "weekly.wed[0]: 10:00-10:15 is shorter than one slot (30 minutes)"),
    ({"weekly": {"wed": [["10:00", "25:00"]]}}, 'weekly.wed[0][1]: "25:00" is not a time HH:MM'),
    ({"weekly": {"wed": [["24:00", "24:00"]]}}, "weekly.wed[0][0]: a range cannot start at 24:00"),
    ({"weekly": {"wed": [["10:00"]]}}, "weekly.wed[0]: must be a pair"),
    ({"weekly": {"funday": []}}, "weekly.funday: not a day"),
    ({"weekly": []}, "weekly: must be an object"),
    ({"slot_minutes": 5}, "slot_minutes: 5 is not between 10 and 240"),
    ({"slot_minutes": "30"}, 'slot_minutes: must be a whole number, not "30"'),
    ({"slot_minutes": 30.5}, "slot_minutes: must be a whole number, not 30.5"),
    ({"capacity": 0}, "capacity: 0 is not between 1 and 50"),
    ({"capacity": True}, "capacity: must be a whole number, not true"),
    ({"min_notice_hours": -1}, "min_notice_hours: -1 is not between 0 and 720"),
    ({"horizon_days": 0}, "horizon_days: 0 is not between 1 and 365"),
    ({"reminder_hour": 24}, "reminder_hour: 24 is not between 0 and 23"),
    ({"reminder_hours_before": 0}, "reminder_hours_before: 0 is not between 1 and 48"),
    ({"timezone": "Mars/Olympus"}, "timezone: unknown time zone 'Mars/Olympus'"),
    ({"timezone": "../../etc/passwd"}, "timezone: unknown time zone"),
    ({"timezone": 9}, "timezone: must be a time zone name"),
    ({"closed_dates": ["2027-01-05", "2027-13-01"]}, 'closed_dates[1]: "2027-13-01" is not a date YYYY-MM-DD'),
    ({"closed_dates": "2027-01-05"}, "closed_dates: must be a list"),
    ({"format": "   "}, "format: must be 1 to 60 printable characters"),
    ({"format": "Zoom\nURL"}, "format: must be 1 to 60 printable characters"),
    ({"color": "blue"}, "color: unknown field"),
])
def test_a_bad_value_names_its_field(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(AvailabilityError) as caught:
        Availability.from_json(with_(**changes))
    assert str(caught.value).startswith(message)
    assert caught.value.field == message.split(":", 1)[0]


def test_a_missing_field_is_named() -> None:
    data = with_()
    del data["format"]
    with pytest.raises(AvailabilityError, match=r"^format: missing$"):
        Availability.from_json(data)
    with pytest.raises(AvailabilityError, match=r"^availability: must be a JSON object$"):
        Availability.from_json([CONTRACT])
    with pytest.raises(AvailabilityError, match=r"^availability: not JSON$"):
        Availability.loads(b"{nope")


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                       max_size=3), max_leaves=8)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(CONTRACT)), JSON_VALUES)
def test_any_json_in_a_field_is_taken_or_refused_naming_that_field(name: str, value: Any) -> None:
    try:
        av = Availability.from_json(with_(**{name: value}))
    except AvailabilityError as e:
        # a longer slot may make a day's range too short for one: then the range is named
        allowed = {name, "weekly"} if name == "slot_minutes" else {name}
        assert e.field.split(".")[0].split("[")[0] in allowed, str(e)
    else:
        assert Availability.loads(av.dumps()) == av


# ---- slots ------------------------------------------------------------------------------------------


def starts(slots: list[Any]) -> list[str]:
    return [s.start.strftime("%m-%d %H:%M") for s in slots]


def test_ranges_are_cut_into_slots_and_a_partial_tail_is_dropped() -> None:
    av = Availability.from_json(CONTRACT)
    assert starts(day_slots(av, date(2027, 1, 6))) == ["01-06 10:00", "01-06 10:30", "01-06 11:00"]  # 11:45 end
    monday = day_slots(av, date(2027, 1, 18))
    assert len(monday) == 4 + 8 and monday[4].start == jst("2027-01-18T13:00")
    assert all(s.end - s.start == timedelta(minutes=30) and s.start.tzinfo == JST for s in monday)
    friday = day_slots(av, date(2027, 1, 8))  # 20:00-24:00 ends at midnight
    assert friday[-1].end == jst("2027-01-09T00:00")
    assert day_slots(av, date(2027, 1, 7)) == []  # Thursday: no hours


def test_holidays_and_closed_dates_have_no_slots() -> None:
    av = Availability.from_json(CONTRACT)
    assert is_japanese_holiday(date(2027, 1, 11))  # 成人の日, a Monday
    assert day_slots(av, date(2027, 1, 11)) == []
    assert day_slots(av, date(2027, 1, 5)) == []  # closed (a Tuesday with hours)
    assert day_slots(av, date(2027, 1, 12)) != []  # the Tuesday after is open


def test_notice_and_horizon_bound_what_is_offered() -> None:
    av = Availability.from_json(with_(horizon_days=7))
    now = jst("2027-01-03T22:30")  # Sunday night; 12 hours' notice: from Monday 10:30
    got = offered(av, now)
    assert starts(got)[:2] == ["01-04 10:30", "01-04 11:00"]
    assert window(av, now) == (date(2027, 1, 3), date(2027, 1, 10))
    assert max(s.start for s in got).date() == date(2027, 1, 8)  # Friday; the Saturday-Sunday have no hours
    assert "01-05" not in {s.start.strftime("%m-%d") for s in got}  # closed
    assert offered(av, now, first=date(2027, 1, 6), last=date(2027, 1, 6)) == day_slots(av, date(2027, 1, 6))
    assert offered(av, now.timestamp()) == got  # epoch seconds or an aware datetime alike


def test_refusal_says_why_a_start_is_not_offered() -> None:
    av = Availability.from_json(CONTRACT)
    now = jst("2027-01-03T22:30")
    assert refusal(av, now, jst("2027-01-04T10:30")) is None
    assert refusal(av, now, jst("2027-01-04T10:00")) == TOO_SOON
    assert refusal(av, now, jst("2027-01-01T10:00")) == TOO_SOON
    assert refusal(av, now, jst("2027-01-22T10:00")) == TOO_FAR  # a Friday 19 days ahead
    assert refusal(av, now, jst("2027-01-11T10:00")) == NOT_A_SLOT  # a holiday
    assert refusal(av, now, jst("2027-01-06T10:15")) == NOT_A_SLOT  # off the grid
    assert refusal(av, now, jst("2027-01-06T11:30")) == NOT_A_SLOT  # the dropped tail


def test_reminders_the_day_before_and_hours_before() -> None:
    av = Availability.from_json(with_(reminder_hours_before=3))
    start = jst("2027-01-06T10:00")
    assert reminder_times(av, start, jst("2027-01-03T12:00")) == [("day", jst("2027-01-05T18:00")),
                                                                  ("soon", jst("2027-01-06T07:00"))]
    assert reminder_times(av, start, jst("2027-01-05T19:00")) == [("soon", jst("2027-01-06T07:00"))]  # booked late
    assert reminder_times(av, start, jst("2027-01-06T08:00")) == []
    assert reminder_times(Availability.from_json(CONTRACT), start, jst("2027-01-03T12:00")) == [
        ("day", jst("2027-01-05T18:00"))]


# ---- properties -------------------------------------------------------------------------------------


@st.composite
def availabilities(draw: st.DrawFn) -> Availability:
    slot = draw(st.sampled_from([10, 15, 20, 30, 45, 60, 90]))
    weekly: dict[str, list[list[str]]] = {}
    for day in DAYS:
        marks = sorted(set(draw(st.lists(st.integers(0, 288), max_size=6))))
        pairs = [(a * 5, b * 5) for a, b in zip(marks[::2], marks[1::2], strict=False) if (b - a) * 5 >= slot]
        if pairs:
            weekly[day] = [[f"{a // 60:02d}:{a % 60:02d}", f"{b // 60:02d}:{b % 60:02d}"] for a, b in pairs]
    closed = draw(st.lists(st.dates(date(2027, 1, 1), date(2027, 3, 31)), max_size=5))
    return Availability.from_json({
        "timezone": draw(st.sampled_from(["Asia/Tokyo", "UTC", "Europe/Berlin"])), "slot_minutes": slot,
        "capacity": draw(st.integers(1, 3)), "min_notice_hours": draw(st.integers(0, 72)),
        "horizon_days": draw(st.integers(1, 30)), "weekly": weekly, "closed_dates": [d.isoformat() for d in closed],
        "reminder_hour": draw(st.integers(0, 23)), "format": "電話",
    })


def steady(av: Availability, day: date) -> bool:
    """No daylight saving change that day (its ranges are as long as written)."""
    midnight = datetime(day.year, day.month, day.day, tzinfo=av.zone)
    return midnight.utcoffset() == (midnight + timedelta(days=1)).utcoffset()


NOWS = st.datetimes(datetime(2027, 1, 1), datetime(2027, 2, 28), timezones=st.just(ZoneInfo("UTC")))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(availabilities(), NOWS)
def test_every_offered_slot_is_within_the_rules(av: Availability, now: datetime) -> None:
    got = offered(av, now)
    first, last = window(av, now)
    for s in got:
        local = s.start.astimezone(av.zone)
        day = local.date()
        assert s.end - s.start == timedelta(minutes=av.slot_minutes)
        assert first <= day <= last and not av.closed(day) and not is_japanese_holiday(day)
        assert s.start >= now + timedelta(hours=av.min_notice_hours)
        if not steady(av, day):
            continue  # a daylight saving change: its wall-clock hours are not all there
        minutes = local.hour * 60 + local.minute
        hours = av.weekly[day.weekday()]
        assert any(h.start <= minutes and minutes + av.slot_minutes <= h.end for h in hours)
        assert refusal(av, now, s.start) is None
    assert all(a.end <= b.start for a, b in pairwise(got))  # in order, never overlapping


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(availabilities(), st.dates(date(2027, 1, 1), date(2027, 3, 31)))
def test_each_range_gives_every_whole_slot_that_fits(av: Availability, day: date) -> None:
    got = day_slots(av, day)
    if av.closed(day) or not steady(av, day):
        return
    assert len(got) == sum((h.end - h.start) // av.slot_minutes for h in av.weekly[day.weekday()])


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(availabilities())
def test_dump_and_parse_are_inverse(av: Availability) -> None:
    assert Availability.loads(av.dumps()) == av
    assert Availability.from_json(json.loads(json.dumps(av.to_json()))).version == av.version
