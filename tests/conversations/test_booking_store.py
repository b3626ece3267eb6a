"""conversations.booking.store on the suite's real Redis: capacity never exceeded, a request booked once,
one active booking per lead (a change moves it), cancel and marks, the lead's consultation record, the
reads, and reminders handed out exactly once (claim, lease, ack; the push queued once through the outbox)."""

from __future__ import annotations

import copy
import uuid
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis

from bot.outbox import Outbox
from conversations import jobs, keys
from conversations.booking import (
    NOT_A_SLOT,
    TOO_SOON,
    AvailabilityError,
    Booked,
    Bookings,
    Full,
    Inactive,
    NotOffered,
)
from conversations.booking.store import REMINDER_LEDGER_TTL, book_plan
from conversations.errors import InvalidInput
from conversations.jobs import Job
from conversations.keys import Subject
from conversations.outputs import ConsultAck
from conversations.redis_ops import Eval, runner
from conversations.transports import Transport
from tests.conftest import FakeClock

JST = ZoneInfo("Asia/Tokyo")
AVAILABILITY: dict[str, Any] = {
    "timezone": "Asia/Tokyo", "slot_minutes": 30, "capacity": 1, "min_notice_hours": 12, "horizon_days": 14,
    "weekly": {"mon": [["10:00", "12:00"], ["13:00", "17:00"]], "tue": [["10:00", "12:00"]],
               "wed": [["10:00", "12:00"]], "thu": [["10:00", "12:00"]], "fri": [["10:00", "12:00"]]},
    "closed_dates": ["2027-01-05"], "reminder_hour": 18, "reminder_hours_before": 3, "format": "オンライン（Zoom）",
}
NOW = datetime(2027, 1, 3, 22, 30, tzinfo=JST)  # a Sunday night: the first slot offered is Monday 10:30
ALICE, BOB, CAROL = (Subject(Transport.LINE, f"U{c * 32}") for c in "abc")


def jst(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=JST)


def availability(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(AVAILABILITY)
    data.update(changes)
    return data


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW.timestamp())


@pytest.fixture
def store(r: redis.Redis, clock: FakeClock) -> Bookings:
    s = Bookings(r, clock=clock)
    s.set_availability(availability())
    return s


def booked(result: Any) -> Booked:
    assert isinstance(result, Booked), result
    return result


def held(r: redis.Redis) -> list[str]:
    return sorted(x.decode() for x in r.zrange(keys.BOOKING_HELD, 0, -1))


# ---- availability ---------------------------------------------------------------------------------------


def test_availability_is_stored_as_dumped_and_a_bad_one_changes_nothing(store: Bookings) -> None:
    av = store.availability()
    assert av is not None and av.to_json() == availability()
    with pytest.raises(AvailabilityError, match=r"^capacity: 0 is not between"):
        store.set_availability(availability(capacity=0))
    assert store.availability() == av


def test_without_availability_nothing_is_offered_or_booked(r: redis.Redis, clock: FakeClock) -> None:
    s = Bookings(r, clock=clock)
    assert s.free_slots() == [] and s.next_free() == []
    with pytest.raises(InvalidInput, match="no availability"):
        s.book(ALICE, jst("2027-01-04T10:30"), "ev1")


# ---- booking ---------------------------------------------------------------------------------------------


def test_a_booking_takes_its_place_and_the_lead_is_booked(store: Bookings, r: redis.Redis) -> None:
    slot = jst("2027-01-04T10:30")
    got = booked(store.book(ALICE, slot, "ev1"))
    b = got.booking
    assert (b.start, b.end, b.status, b.seq, b.lead) == (slot, slot + timedelta(minutes=30), "booked", 0,
                                                        "line:" + ALICE.user_id)
    assert b.format == "オンライン（Zoom）" and not got.repeated and got.moved_from is None
    assert [k for k, _ in b.reminders] == ["soon"]  # booked after 18:00 the day before: no "day" reminder
    free = {s.start: s.free for s in store.free_slots()}
    assert free[slot] == 0 and free[jst("2027-01-04T11:00")] == 1
    assert store.next_free(2)[0].start == jst("2027-01-04T11:00")
    c = store.consultation(ALICE)
    assert c is not None and (c.status, c.booking) == ("booked", b.id)
    assert store.bookings_of(ALICE) == [b] and store.booking(b.id) == b
    assert store.between(jst("2027-01-04T00:00"), jst("2027-01-05T00:00")) == [b]
    assert store.between(jst("2027-01-04T10:31"), jst("2027-01-05T00:00")) == []
    assert held(r) == [b.id]


def test_capacity_is_never_exceeded_and_the_loser_is_offered_the_next_free_slots(store: Bookings,
                                                                                r: redis.Redis) -> None:
    store.set_availability(availability(capacity=2))
    slot = jst("2027-01-04T11:00")
    first = booked(store.book(ALICE, slot, "ev-a"))
    second = booked(store.book(BOB, slot, "ev-b"))
    third = store.book(CAROL, slot, "ev-c")
    assert isinstance(third, Full) and third.start == slot
    assert [s.start for s in third.alternatives] == [jst("2027-01-04T11:30"), jst("2027-01-04T13:00"),
                                                      jst("2027-01-04T13:30"), jst("2027-01-04T14:00"),
                                                      jst("2027-01-04T14:30")]
    assert all(s.free > 0 for s in third.alternatives)
    assert held(r) == sorted([first.booking.id, second.booking.id])
    assert store.consultation(CAROL) is None  # a refused booking records nothing
    # the redelivered loser's request is answered alike, even once a place is free again
    store.cancel(first.booking.id, by="lead")
    assert isinstance(store.book(CAROL, slot, "ev-c"), Full)
    assert booked(store.book(CAROL, slot, "ev-c2")).booking.lead == "line:" + CAROL.user_id


def test_a_redelivered_or_double_tapped_request_books_once(store: Bookings, r: redis.Redis) -> None:
    slot = jst("2027-01-04T10:30")
    first = booked(store.book(ALICE, slot, "ev1"))
    again = booked(store.book(ALICE, slot, "ev1"))  # LINE redelivered the event
    tapped = booked(store.book(ALICE, slot, "ev2"))  # a second tap: another event, the same slot
    assert again.repeated and tapped.repeated
    assert again.booking == first.booking == tapped.booking
    assert held(r) == [first.booking.id] and len(store.bookings_of(ALICE)) == 1
    with pytest.raises(InvalidInput, match="another lead"):
        store.book(BOB, slot, "ev1")
    with pytest.raises(InvalidInput, match="request id"):
        store.book(BOB, slot, "ev{1}")


def test_booking_another_slot_moves_the_active_booking(store: Bookings, r: redis.Redis) -> None:
    a, b = jst("2027-01-04T10:30"), jst("2027-01-06T11:00")
    first = booked(store.book(ALICE, a, "ev1")).booking
    moved = booked(store.book(ALICE, b, "ev2"))
    assert moved.moved_from == a and moved.booking.id == first.id
    assert (moved.booking.start, moved.booking.seq) == (b, 1)
    free = {s.start: s.free for s in store.free_slots()}
    assert free[a] == 1 and free[b] == 0  # the old place is free at once
    schedule = {m.decode() for m in r.zrange(keys.BOOKING_REMIND, 0, -1)}
    assert schedule == {f"{first.id}|day|1", f"{first.id}|soon|1"}  # the old reminders went with it
    assert booked(store.book(BOB, a, "ev3")).booking.start == a
    # change() moves it too; a change into a full slot changes nothing
    assert isinstance(store.change(first.id, a, "ev4"), Full)
    assert store.booking(first.id) == moved.booking
    assert booked(store.change(first.id, jst("2027-01-07T10:00"), "ev5")).booking.seq == 2


def test_a_slot_not_offered_is_refused_with_alternatives(store: Bookings) -> None:
    soon = store.book(ALICE, jst("2027-01-04T10:00"), "ev1")  # within the 12 hours' notice
    assert isinstance(soon, NotOffered) and soon.reason == TOO_SOON
    assert soon.alternatives[0].start == jst("2027-01-04T10:30")
    holiday = store.book(ALICE, jst("2027-01-11T10:00"), "ev2")  # 成人の日
    assert isinstance(holiday, NotOffered) and holiday.reason == NOT_A_SLOT
    assert store.bookings_of(ALICE) == [] and store.consultation(ALICE) is None


def test_a_booking_is_checked_against_the_availability_it_was_offered_under(store: Bookings, r: redis.Redis) -> None:
    """The operator saves a new availability between the read and the script: the request reads it again."""
    plan = book_plan(ALICE, jst("2027-01-04T10:30"), "ev1", NOW)
    run = runner(r)
    evals = 0
    step = next(plan)
    while True:
        if isinstance(step, Eval):
            evals += 1
            if evals == 1:
                store.set_availability(availability(format="電話"))
        try:
            step = plan.send(run.do(step))
        except StopIteration as done:
            result = done.value
            break
    assert evals == 2
    assert booked(result).booking.format == "電話"


def test_a_booking_of_an_older_slot_length_still_holds_its_time(store: Bookings) -> None:
    store.set_availability(availability(slot_minutes=60))
    long = booked(store.book(ALICE, jst("2027-01-04T11:00"), "ev1")).booking
    assert long.end == jst("2027-01-04T12:00")
    store.set_availability(availability(slot_minutes=30))
    assert isinstance(store.book(BOB, jst("2027-01-04T11:30"), "ev2"), Full)  # inside Alice's hour
    assert booked(store.book(BOB, jst("2027-01-04T10:30"), "ev3")).booking.end == long.start


# ---- cancel and marks ------------------------------------------------------------------------------------


def test_cancel_frees_the_place_at_once_and_is_final(store: Bookings, clock: FakeClock, r: redis.Redis) -> None:
    slot = jst("2027-01-04T10:30")
    b = booked(store.book(ALICE, slot, "ev1")).booking
    assert store.cancel(b.id, by="lead", lead=BOB) is None  # a button's booking id, tapped by someone else
    assert isinstance(store.change(b.id, jst("2027-01-06T10:00"), "ev0", lead=BOB), Inactive)
    assert store.booking(b.id) == b
    cancelled = store.cancel(b.id, by="lead", lead=ALICE)
    assert cancelled is not None and (cancelled.status, cancelled.seq, cancelled.by) == ("cancelled", 1, "lead")
    assert cancelled.reminders == () and r.zcard(keys.BOOKING_REMIND) == 0 and held(r) == []
    assert store.cancel(b.id, by="console") == cancelled  # again: nothing changes
    c = store.consultation(ALICE)
    assert c is not None and (c.status, c.booking) == ("cancelled", "")
    assert booked(store.book(BOB, slot, "ev2")).booking.start == slot
    inactive = store.change(b.id, jst("2027-01-06T10:00"), "ev3")  # "change" on an old confirmation
    assert isinstance(inactive, Inactive) and inactive.booking == cancelled
    assert isinstance(store.change("0123456789abcdef", slot, "ev4"), Inactive)
    clock.t = (slot + timedelta(hours=1)).timestamp()
    with pytest.raises(InvalidInput, match="cancelled booking cannot be marked attended"):
        store.mark(b.id, "attended", by="console")
    assert store.cancel("0123456789abcdef", by="console") is None
    assert store.cancel("not an id", by="console") is None


def test_attended_and_no_show_once_started_and_the_lead_follows(store: Bookings, clock: FakeClock) -> None:
    slot = jst("2027-01-04T10:30")
    b = booked(store.book(ALICE, slot, "ev1")).booking
    with pytest.raises(InvalidInput, match="not started"):
        store.mark(b.id, "attended", by="console")
    clock.t = (slot + timedelta(minutes=40)).timestamp()
    assert store.mark(b.id, "no_show", by="console").status == "no_show"  # type: ignore[union-attr]
    assert store.mark(b.id, "attended", by="console").status == "attended"  # type: ignore[union-attr]
    with pytest.raises(InvalidInput, match="attended booking cannot be marked cancelled"):
        store.cancel(b.id, by="console")
    with pytest.raises(InvalidInput, match="may be marked"):
        store.mark(b.id, "booked", by="console")
    c = store.consultation(ALICE)
    assert c is not None and (c.status, c.booking) == ("attended", "")
    # a follow-up consultation: a new booking, the lead booked again
    again = booked(store.book(ALICE, jst("2027-01-06T10:00"), "ev2"))
    assert again.booking.id != b.id and again.moved_from is None
    assert store.consultation(ALICE).status == "booked"  # type: ignore[union-attr]


# ---- the lead's consultation record ------------------------------------------------------------------------


def test_a_consultation_request_is_recorded_once_at_any_time(store: Bookings, clock: FakeClock) -> None:
    first = store.request_consultation(ALICE)
    assert (first.status, first.new, first.requested) == ("requested", True, NOW.timestamp())
    clock.advance(60)
    again = store.request_consultation(ALICE)
    assert (again.status, again.new, again.requested) == ("requested", False, NOW.timestamp())
    booked(store.book(ALICE, jst("2027-01-04T11:00"), "ev1"))
    assert store.request_consultation(ALICE).status == "booked"  # asking again changes nothing
    store.request_consultation(BOB)
    booked(store.book(CAROL, jst("2027-01-04T11:30"), "ev2"))  # booked without asking first
    web = Subject(Transport.WEB, "tester")
    store.request_consultation(web)
    counts = store.consultation_counts()
    assert counts == {"requested": 1, "booked": 2, "attended": 0, "no_show": 0, "cancelled": 0}
    assert store.consultation_counts(channels=("web",))["requested"] == 1
    day = NOW.date()
    assert store.consultation_counts(day, day) == counts
    assert sum(store.consultation_counts(day + timedelta(days=1), None).values()) == 0


# ---- reminders -------------------------------------------------------------------------------------------


def line_outbox(r: redis.Redis, clock: FakeClock) -> Outbox:
    return Outbox(r, [Transport.LINE], clock=clock)


def queue(outbox: Outbox, due: Any, now: float) -> bool:
    job = Job.new(Transport.LINE, due.subject.user_id, due.subject.tag_name, [ConsultAck(0)], now, job_id=due.job_id)
    return outbox.put_once(due.ledger_key, job, ttl=REMINDER_LEDGER_TTL)


def test_each_reminder_is_handed_out_once_across_clocks_and_crashes(store: Bookings, clock: FakeClock,
                                                                    r: redis.Redis) -> None:
    b = booked(store.book(ALICE, jst("2027-01-06T10:00"), "ev1")).booking
    outbox = line_outbox(r, clock)
    clock.t = jst("2027-01-05T17:59").timestamp()
    assert store.claim_due_reminders() == []
    clock.t = jst("2027-01-05T18:00").timestamp()
    [day] = store.claim_due_reminders()
    assert (day.kind, day.seq, day.due, day.booking.id) == ("day", 0, jst("2027-01-05T18:00"), b.id)
    assert day.job_id == str(uuid.uuid5(uuid.UUID("8d3b7c1e-2a4f-4e6b-b0c9-6f1d2e3a4b5c"), f"bkrem-{b.id}-day-0"))
    assert store.claim_due_reminders() == []  # another clock: it is leased
    assert queue(outbox, day, clock.t)
    # the clock dies before the ack: once the lease is over another claims it, and queues nothing new
    clock.advance(61)
    [again] = store.claim_due_reminders()
    assert again.job_id == day.job_id and not queue(outbox, again, clock.t)
    assert not store.ack_reminder(day)  # the first claim's lease is not the schedule's any more
    assert store.ack_reminder(again)
    clock.advance(3600)
    assert store.claim_due_reminders() == []
    mailbox = r.hgetall(jobs.mailbox(ALICE.tag_name))
    assert list(mailbox) == [day.job_id.encode()]
    # the one a few hours before
    clock.t = jst("2027-01-06T07:00").timestamp()
    [soon] = store.claim_due_reminders()
    assert soon.kind == "soon" and queue(outbox, soon, clock.t) and store.ack_reminder(soon)
    assert r.zcard(keys.BOOKING_REMIND) == 0


def test_a_cancelled_or_moved_bookings_reminders_never_fire(store: Bookings, clock: FakeClock,
                                                            r: redis.Redis) -> None:
    a = booked(store.book(ALICE, jst("2027-01-06T10:00"), "ev1")).booking
    b = booked(store.book(BOB, jst("2027-01-06T11:00"), "ev2")).booking
    store.cancel(a.id, by="lead")
    moved = booked(store.book(BOB, jst("2027-01-07T11:00"), "ev3")).booking
    # reminders the scripts did remove, put back as if left behind: the claim checks each booking again
    r.zadd(keys.BOOKING_REMIND, {f"{a.id}|day|1": 0, f"{b.id}|day|0": 0, "0123456789abcdef|day|0": 0})
    clock.t = jst("2027-01-05T18:00").timestamp()
    assert store.claim_due_reminders() == []  # Bob's is now due on the 6th
    assert r.zcard(keys.BOOKING_REMIND) == 2  # the stale ones were dropped: Bob's two new ones are left
    clock.t = jst("2027-01-06T18:00").timestamp()
    [due] = store.claim_due_reminders()
    assert (due.booking.id, due.seq, due.due) == (moved.id, 1, jst("2027-01-06T18:00"))
    # a reminder whose meeting has begun (no clock ran for a day) is dropped, not sent late
    store.ack_reminder(due)
    clock.t = jst("2027-01-07T11:00").timestamp()
    assert store.claim_due_reminders() == [] and r.zcard(keys.BOOKING_REMIND) == 0


# ---- erasure --------------------------------------------------------------------------------------------


def booking_store_naming(r: redis.Redis, user_id: str) -> list[str]:
    """Everything in the {booking} slot that names the user: key names, members, fields, values."""
    found = []
    for raw in r.scan_iter(match=f"{keys.BOOKING}:*", count=1000):
        key = raw.decode()
        kind = r.type(key).decode()
        if kind == "zset":
            items = [m.decode() for m in r.zrange(key, 0, -1)]
        elif kind == "hash":
            items = [x.decode() for kv in r.hgetall(key).items() for x in kv]
        elif kind == "string":
            items = [(r.get(key) or b"").decode()]
        else:
            items = [kind]
        found += [f"{key} {x[:60]}" for x in [key, *items] if user_id in x]
    return found


def test_erasing_a_lead_frees_its_place_and_leaves_nothing_naming_it(store: Bookings, clock: FakeClock,
                                                                    r: redis.Redis) -> None:
    slot = jst("2027-01-04T10:30")
    old = booked(store.book(ALICE, jst("2027-01-06T10:00"), "ev0")).booking
    store.cancel(old.id, by="lead", lead=ALICE)
    b = booked(store.book(ALICE, slot, "ev1")).booking  # active: holds the place, a reminder scheduled
    other = booked(store.book(BOB, jst("2027-01-04T11:00"), "ev2")).booking
    store.request_consultation(CAROL)
    assert isinstance(store.book(CAROL, slot, "ev3"), Full)
    assert r.zcard(keys.BOOKING_REMIND) == 2 and booking_store_naming(r, ALICE.user_id)

    gone = store.erase(ALICE)
    assert (gone.bookings, gone.cancelled, gone.record) == (2, 1, True)
    assert booking_store_naming(r, ALICE.user_id) == []
    assert store.bookings_of(ALICE) == [] and store.consultation(ALICE) is None and store.booking(b.id) is None
    assert held(r) == [other.id] and r.zcard(keys.BOOKING_REMIND) == 1  # only Bob's reminder is left
    assert {s.start: s.free for s in store.free_slots()}[slot] == 1  # the place is free at once
    assert booked(store.book(CAROL, slot, "ev4")).booking.start == slot
    assert store.consultation_counts() == {"requested": 0, "booked": 2, "attended": 0, "no_show": 0,
                                           "cancelled": 0}
    assert store.erase(ALICE) == type(gone)()  # again: nothing left to remove
    assert booked(store.book(ALICE, jst("2027-01-06T10:00"), "ev1")).booking.id != b.id  # not the old answer
