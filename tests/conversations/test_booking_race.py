"""Owners racing for the last place, as separate OS processes (tests/conversations/booking_racer.py) against
the suite's real Redis: every round, each racer is told at the same instant (one MULTI wakes them all) to
book the same slot. Exactly one booking per place, never over capacity; the same request delivered to
every process books once; one owner tapping several slots from several processes ends with one booking."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis

from conversations import keys
from conversations.booking import Bookings
from conversations.keys import Subject
from conversations.transports import Transport
from tests.isolation import track_process

ROOT = Path(__file__).resolve().parents[2]
JST = ZoneInfo("Asia/Tokyo")
NOW = datetime(2027, 1, 3, 22, 30, tzinfo=JST)
RACERS = 4
ROUNDS = 12
AVAILABILITY: dict[str, Any] = {
    "timezone": "Asia/Tokyo", "slot_minutes": 30, "capacity": 1, "min_notice_hours": 12, "horizon_days": 14,
    "weekly": {d: [["10:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri")},
    "closed_dates": [], "reminder_hour": 18, "format": "電話",
}


DEADLINE = 120  # seconds for a racer to start or answer (a loaded machine); never waited out when all is well


class Race:
    def __init__(self, url: str) -> None:
        self.r = redis.Redis.from_url(url, socket_timeout=DEADLINE + 30)  # its BLPOPs wait on the server
        self.procs = []
        for i in range(RACERS):
            proc = subprocess.Popen([sys.executable, "-m", "tests.conversations.booking_racer", url, str(i),
                                     repr(NOW.timestamp())], cwd=ROOT)
            track_process(proc, f"booking racer {i}")
            self.procs.append(proc)
        for _ in range(RACERS):  # every racer connected and waiting before the first round
            assert self.r.blpop(["race:ready"], timeout=DEADLINE) is not None, "a racer did not start"

    def round(self, n: int, orders: list[dict[str, str]]) -> list[dict[str, Any]]:
        """Every racer's order of round ``n`` at once; what each got, in racer order."""
        with self.r.pipeline(transaction=True) as p:
            for i, order in enumerate(orders):
                p.rpush(f"race:go:{i}", json.dumps({"round": n, **order}))
            p.execute()
        results = []
        for _ in orders:
            got = self.r.blpop([f"race:out:{n}"], timeout=DEADLINE)  # a deadline: answers come at once
            assert got is not None, f"round {n}: a racer did not answer within {DEADLINE} s"
            results.append(json.loads(got[1]))
        return sorted(results, key=lambda x: x["racer"])

    def stop(self) -> None:
        for i in range(RACERS):
            self.r.rpush(f"race:go:{i}", "stop")
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        self.r.close()
        assert [p.returncode for p in self.procs] == [0] * RACERS


@pytest.fixture
def race(r: redis.Redis, redis_url: str) -> Iterator[Race]:
    Bookings(r).set_availability(AVAILABILITY)
    race = Race(redis_url)
    try:
        yield race
    finally:
        race.stop()


def slot(n: int) -> str:
    """The n-th slot from Monday 2027-01-04 11:00 (a different one each round)."""
    day, half = divmod(n, 12)
    return datetime(2027, 1, 4 + day, 11 + half // 2, 30 * (half % 2), tzinfo=JST).isoformat()


def held_at(r: redis.Redis, start: str) -> int:
    epoch = int(datetime.fromisoformat(start).timestamp())
    return int(r.zcount(keys.BOOKING_HELD, epoch, epoch))


def test_racing_owners_get_one_booking_per_place(race: Race, r: redis.Redis) -> None:
    for n in range(ROUNDS):
        orders = [{"lead": f"line:U{n}x{i}", "start": slot(n), "rid": f"ev-{n}-{i}"} for i in range(RACERS)]
        got = race.round(n, orders)
        assert sorted(x["kind"] for x in got) == ["booked"] + ["full"] * (RACERS - 1), got
        assert held_at(r, slot(n)) == 1
    # capacity 2: two of them, never three
    Bookings(r).set_availability({**AVAILABILITY, "capacity": 2})
    for n in range(ROUNDS, ROUNDS + 4):
        orders = [{"lead": f"line:U{n}x{i}", "start": slot(n), "rid": f"ev-{n}-{i}"} for i in range(RACERS)]
        assert sorted(x["kind"] for x in race.round(n, orders)) == ["booked"] * 2 + ["full"] * (RACERS - 2)
        assert held_at(r, slot(n)) == 2
    assert r.zcard(keys.BOOKING_HELD) == ROUNDS + 2 * 4


def test_one_request_redelivered_to_every_process_books_once(race: Race, r: redis.Redis) -> None:
    for n in range(ROUNDS):
        order = {"lead": f"line:Uonce{n}", "start": slot(n), "rid": f"ev-once-{n}"}
        got = race.round(n, [order] * RACERS)
        assert all(x["kind"] == "booked" for x in got) and len({x["id"] for x in got}) == 1
        assert sum(not x["repeated"] for x in got) == 1
    assert r.zcard(keys.BOOKING_HELD) == ROUNDS


def test_one_owner_tapping_several_slots_at_once_keeps_one_booking(race: Race, r: redis.Redis) -> None:
    store = Bookings(r, clock=lambda: NOW.timestamp())
    for n in range(ROUNDS):
        lead = f"line:Umany{n}"
        orders = [{"lead": lead, "start": slot(n * RACERS + i), "rid": f"ev-many-{n}-{i}"} for i in range(RACERS)]
        got = race.round(n, orders)
        assert all(x["kind"] == "booked" for x in got) and len({x["id"] for x in got}) == 1
        assert sum(not x["moved"] for x in got) == 1  # one booked it, the others moved it
        [booking] = store.bookings_of(Subject(Transport.LINE, f"Umany{n}"))
        assert booking.seq == RACERS - 1
        assert [held_at(r, o["start"]) for o in orders].count(1) == 1  # one place held, the rest freed
    assert r.zcard(keys.BOOKING_HELD) == ROUNDS
