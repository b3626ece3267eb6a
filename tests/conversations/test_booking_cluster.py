"""Bookings on a real three-master Redis Cluster (tests/cluster_server.py): every booking key shares the
``{booking}`` slot, so booking, moving, cancelling and claiming reminders run with zero CROSSSLOT
errors; a reminder's push lands in the user's own slot through the outbox; the same plans run on the
async cluster client."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import RedisCluster

from bot.outbox import Outbox
from conversations import jobs, keys
from conversations.booking import Booked, Bookings, Full
from conversations.booking.store import REMINDER_LEDGER_TTL, book_plan, booking_plan
from conversations.jobs import Job
from conversations.keys import Subject
from conversations.outputs import ConsultAck
from conversations.redis_ops import AsyncRunner
from conversations.transports import Transport
from tests.cluster_server import RedisClusterServer
from tests.conftest import FakeClock

JST = ZoneInfo("Asia/Tokyo")
NOW = datetime(2027, 1, 3, 22, 30, tzinfo=JST)
AVAILABILITY: dict[str, Any] = {
    "timezone": "Asia/Tokyo", "slot_minutes": 30, "capacity": 1, "min_notice_hours": 12, "horizon_days": 14,
    "weekly": {d: [["10:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri")},
    "closed_dates": [], "reminder_hour": 18, "reminder_hours_before": 2, "format": "電話",
}
# users whose own slots sit on other nodes than {booking}'s (checked below)
USERS = [Subject(Transport.LINE, f"U{i:032d}") for i in range(6)]


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisClusterServer]:
    server = RedisClusterServer().start()
    try:
        yield server
    finally:
        server.stop(clean=True)


@pytest.fixture
def client(cluster: RedisClusterServer) -> Iterator[RedisCluster]:
    c = RedisCluster.from_url(cluster.url)
    c.flushdb()
    for node in cluster.node_clients():
        node.config_resetstat()
        node.close()
    yield c
    c.close()


def crossslot(cluster: RedisClusterServer) -> dict[int, Any]:
    found = {}
    for port, node in zip(cluster.ports, cluster.node_clients(), strict=True):
        stats = node.info("errorstats")
        node.close()
        if "errorstat_CROSSSLOT" in stats:
            found[port] = stats["errorstat_CROSSSLOT"]
    return found


def jst(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=JST)


def test_the_booking_flow_on_a_cluster(cluster: RedisClusterServer, client: RedisCluster) -> None:
    clock = FakeClock(NOW.timestamp())
    store = Bookings(client, clock=clock)
    store.set_availability(AVAILABILITY)
    booking_node = client.get_node_from_key(keys.BOOKINGS).name
    assert {client.get_node_from_key(u.tag).name for u in USERS} - {booking_node}, "all users on one node"
    a, b, c = USERS[:3]
    store.request_consultation(a)
    first = store.book(a, jst("2027-01-06T10:00"), "ev1")
    assert isinstance(first, Booked)
    assert isinstance(store.book(b, jst("2027-01-06T10:00"), "ev2"), Full)
    moved = store.book(a, jst("2027-01-06T11:00"), "ev3")
    assert isinstance(moved, Booked) and moved.moved_from == jst("2027-01-06T10:00")
    assert isinstance(store.book(b, jst("2027-01-06T10:00"), "ev4"), Booked)
    third = store.book(c, jst("2027-01-07T10:00"), "ev5")
    assert isinstance(third, Booked)
    assert store.cancel(third.booking.id, by="console") is not None
    free = {x.start: x.free for x in store.free_slots()}
    assert (free[jst("2027-01-06T10:00")], free[jst("2027-01-06T11:00")], free[jst("2027-01-07T10:00")]) == (0, 0, 1)
    assert len(store.between(jst("2027-01-06T00:00"), jst("2027-01-08T00:00"))) == 3
    assert store.consultation_counts()["booked"] == 2
    # the reminders: claimed in {booking}, the push queued in the user's slot, acknowledged
    outbox = Outbox(client, [Transport.LINE], clock=clock)
    clock.t = jst("2027-01-05T18:00").timestamp()
    due = store.claim_due_reminders()
    assert sorted(d.booking.lead for d in due) == sorted(keys.lead_ref(u) for u in (a, b))
    for d in due:
        job = Job.new(Transport.LINE, d.subject.user_id, d.subject.tag_name, [ConsultAck(0)], clock.t,
                      job_id=d.job_id)
        assert outbox.put_once(d.ledger_key, job, ttl=REMINDER_LEDGER_TTL)
        assert store.ack_reminder(d)
        assert client.hexists(jobs.mailbox(d.subject.tag_name), d.job_id)
    # a person's data erased: their bookings and consultation record go in one script, the place freed
    gone = store.erase(a)
    assert (gone.bookings, gone.cancelled, gone.record) == (1, 1, True) and store.bookings_of(a) == []
    # every booking key is in one slot
    slots = {client.keyslot(k) for k in client.keys(f"{keys.BOOKING}:*")}
    assert len(slots) == 1 and len(client.keys(f"{keys.BOOKING}:*")) > 8
    assert crossslot(cluster) == {}


def test_the_plans_run_on_the_async_cluster_client(cluster: RedisClusterServer, client: RedisCluster) -> None:
    Bookings(client).set_availability(AVAILABILITY)
    lead = USERS[3]

    async def book() -> tuple[Any, Any]:
        aclient = AsyncRedisCluster.from_url(cluster.url)
        try:
            run = AsyncRunner(aclient)
            got = await run.run(book_plan(lead, jst("2027-01-04T11:00"), "ev-async", NOW))
            assert isinstance(got, Booked)
            return got, await run.run(booking_plan(got.booking.id))
        finally:
            await aclient.aclose()

    got, read = asyncio.run(book())
    assert read == got.booking == Bookings(client).bookings_of(lead)[0]
    assert crossslot(cluster) == {}
