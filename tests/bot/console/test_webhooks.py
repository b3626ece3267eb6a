"""The client's signed webhooks (bot/webhooks.py), end to end: a receiver on loopback (tests/fakes/webhook_receiver.py)
checks every request's signature with the Standard Webhooks algorithm written out by hand (not the library the
bot signs with); the events come from a real LINE conversation, booking and console change on the suite's
Redis, delivered by the worker as ``crmbot worker`` builds it, on an injected clock."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from bot import webhooks
from bot.booking_news import REQUESTED, BookingNews
from bot.webhooks import EVENTS, Endpoints, Webhooks
from conversations.errors import InvalidInput
from conversations.keys import Subject
from tests.bot.console.conftest import (
    TOKEN,
    Console,
    LineConsole,
    console_config,
    csrf_of,
    make_console,
    make_line_console,
)
from tests.bot.line.conftest import start_worker
from tests.bot.line.test_booking import AVAILABILITY, booked_note, postbacks, tap
from tests.bot.line.test_booking import ask as ask_consult
from tests.bot.line.test_webhook import take
from tests.conftest import FakeClock
from tests.fakes.line_api import FakeLineApi
from tests.fakes.webhook_receiver import Receiver, verify, webhook_receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as rec:
        yield rec


def add_endpoint(console: Console, url: str, *, events: tuple[str, ...] = EVENTS, with_name: bool = False) -> str:
    """Through the console's form: the page answering it shows the secret, once."""
    page = console.http.get("/console/webhooks").get_data(as_text=True)
    form = {"csrf_token": csrf_of(page), "url": url, "events": list(events)}
    if with_name:
        form["with_name"] = "1"
    res = console.http.post("/console/webhooks", data=form)
    assert res.status_code == 200, res.get_data(as_text=True)
    found = re.search(r'id="webhook-secret">(whsec_[A-Za-z0-9+/=]+)<', res.get_data(as_text=True))
    assert found, "the secret is shown when the endpoint is added"
    return found.group(1)


@pytest.fixture
def line_console(r: redis.Redis, redis_url: str, clock: FakeClock, tmp_path: Path,
                 console_fake_line: FakeLineApi) -> Iterator[LineConsole]:
    with make_line_console(r, redis_url, clock, tmp_path, console_fake_line) as lc:
        assert lc.svc.bookings is not None
        lc.svc.bookings.set_availability(AVAILABILITY)
        assert lc.login().status_code == 302
        yield lc


def test_every_event_arrives_once_signed_from_the_chat_the_booking_and_the_console(
        line_console: LineConsole, receiver: Receiver) -> None:
    env = line_console
    secret = add_endpoint(env, receiver.url)
    user = env.user()
    take(env, user, "AABACAADAB")  # type: ignore[arg-type]  # finished: tier by its A count, point to fix Q3
    slots = next(m for m in ask_consult(env, user) if m["type"] == "flex")  # type: ignore[arg-type]  # 相談する
    card = booked_note(tap(env, user, postbacks(slots)[0]["data"]))  # type: ignore[arg-type]
    booking_id = postbacks(card)[-1]["data"].removeprefix("bx:")
    tap(env, user, f"bx:{booking_id}")  # type: ignore[arg-type]  # cancelled by the owner
    [booking] = env.svc.bookings.bookings_of(Subject("line", user.user_id))  # type: ignore[union-attr]
    from conversations.analytics import Analytics

    [found] = [x for x in Analytics(env.r).iter_leads() if x.answers == "AABACAADAB"]
    page = env.http.get(f"/console/leads/{env.ref(found.id)}").get_data(as_text=True)
    res = env.http.post(f"/console/leads/{env.ref(found.id)}/consult",
                        data={"csrf_token": csrf_of(page), "status": "contacted"})
    assert res.status_code == 302
    env.settle()
    env.settle()  # nothing more goes

    for got in receiver.got:
        verify(secret, got)
    ids = [g.id for g in receiver.got]
    assert len(ids) == len(set(ids)) == 5  # each event once, each its own webhook-id
    types = [g.json["type"] for g in receiver.got]
    assert sorted(types) == sorted(EVENTS)
    by_type = {g.json["type"]: g.json for g in receiver.got}
    done = by_type["diagnosis.completed"]["data"]
    assert done["answers"] == "AABACAADAB" and done["a_count"] == 6 and done["tier"] == found.tier
    assert done["point_to_fix"] == (found.point or 0) + 1 and done["channel"] == "line"
    assert "display_name" not in done  # the endpoint did not opt in
    contact = done["contact_id"]
    assert re.fullmatch(r"[0-9a-f]{24}", contact)
    assert {by_type[t]["data"]["contact_id"] for t in EVENTS} == {contact}  # one person, one id everywhere
    assert by_type["booking.created"]["data"]["booking"]["id"] == booking_id == booking.id
    assert by_type["booking.cancelled"]["data"]["booking"]["status"] == "cancelled"
    assert by_type["lead.updated"]["data"]["change"] == "status"
    assert by_type["lead.updated"]["data"]["value"] == "contacted"
    assert all(user.user_id not in g.body.decode() for g in receiver.got)  # never the LINE user ID

    # the same news handed over again (a retried request): nothing more is queued
    news = BookingNews(REQUESTED, Subject("line", user.user_id), None, "owner", "again-1")
    env.svc.booking_news(news)
    env.svc.booking_news(news)
    env.settle()
    assert len(receiver.got) == 6 and receiver.got[-1].json["type"] == "consultation.requested"
    shown = env.http.get("/console/webhooks").get_data(as_text=True)
    assert secret not in shown  # shown once, never again
    assert shown.count("受け付け") >= 5  # the last answers are listed


@pytest.fixture
def console_worker(r: redis.Redis, redis_url: str, clock: FakeClock, tmp_path: Path) -> Iterator[tuple[Console, Any]]:
    console = make_console(console_config(redis_url, tmp_path), r, clock)
    assert console.login().status_code == 302
    worker = start_worker(console.svc.config, console.svc, clock)
    yield console, worker
    worker.close()


def request_consult(console: Console, news_id: str) -> None:
    console.svc.booking_news(BookingNews(REQUESTED, Subject("line", "U" + "7" * 32), None, "owner", news_id))


def test_a_receiver_failing_twice_gets_the_event_on_the_third_try_with_the_same_id(
        console_worker: tuple[Console, Any], receiver: Receiver) -> None:
    console, worker = console_worker
    secret = add_endpoint(console, receiver.url, events=("consultation.requested",), with_name=True)
    receiver.failing = 2
    request_consult(console, "n-1")
    worker.drain()
    assert len(receiver.got) == 1
    console.clock.advance(webhooks.next_wait(1))
    worker.drain()
    assert len(receiver.got) == 2
    worker.drain()  # the next try is not due yet
    assert len(receiver.got) == 2
    console.clock.advance(webhooks.next_wait(2))
    worker.drain()
    assert len(receiver.got) == 3
    for got in receiver.got:
        verify(secret, got)
    assert len({g.id for g in receiver.got}) == 1 and len({g.body for g in receiver.got}) == 1
    stamps = [int(g.headers["webhook-timestamp"]) for g in receiver.got]
    assert stamps == sorted(stamps) and stamps[-1] - stamps[0] == webhooks.next_wait(1) + webhooks.next_wait(2)
    assert receiver.got[0].json["data"]["display_name"] == ""  # opted in; no name known for this person
    [ep] = Endpoints(console.r).all()
    assert [x.status for x in Endpoints(console.r).responses(ep.id)] == [204, 500, 500]
    assert console.svc.outbox.parked() == []


def test_an_event_failing_for_three_days_is_parked_then_requeued_from_the_console(
        console_worker: tuple[Console, Any], receiver: Receiver) -> None:
    console, worker = console_worker
    secret = add_endpoint(console, receiver.url, events=("consultation.requested",))
    receiver.failing = 10**6
    start = console.clock()
    request_consult(console, "n-2")
    worker.drain()
    tries = 1
    while not console.svc.outbox.parked():
        assert console.clock() - start < webhooks.GIVE_UP_AFTER + 86400, "never parked"
        console.clock.advance(webhooks.next_wait(tries))
        worker.drain()
        tries += 1
    assert console.clock() - start >= webhooks.GIVE_UP_AFTER  # kept trying for the 3 days, not fewer
    assert len(receiver.got) == tries and len({g.id for g in receiver.got}) == 1
    [parked] = console.svc.outbox.parked()
    assert parked.transport == "webhook" and parked.id == receiver.got[0].id
    assert console.login().status_code == 302  # three days on: the session has ended
    page = console.http.get("/console/delivery").get_data(as_text=True)
    assert parked.id in page and "連携先のシステム（Webhook）" in page

    receiver.failing = 0
    res = console.http.post("/console/delivery/requeue", data={"csrf_token": csrf_of(page), "job": parked.id})
    assert res.status_code == 302
    worker.drain()
    assert receiver.got[-1].id == parked.id and len(receiver.got) == tries + 1
    verify(secret, receiver.got[-1])
    assert console.svc.outbox.parked() == []
    worker.drain()
    assert len(receiver.got) == tries + 1  # delivered: done


def test_the_console_checks_urls_audits_changes_refuses_viewers_and_has_an_api(
        console_worker: tuple[Console, Any], receiver: Receiver) -> None:
    console, _ = console_worker
    page = console.http.get("/console/webhooks").get_data(as_text=True)
    bad = console.http.post("/console/webhooks", data={"csrf_token": csrf_of(page), "url": "http://crm.example.com/x",
                                                       "events": ["booking.created"]})
    assert bad.status_code == 400 and "http:// はこのサーバー自身あてにだけ" in bad.get_data(as_text=True)
    none = console.http.post("/console/webhooks", data={"csrf_token": csrf_of(page), "url": "https://crm.example.com/x"})
    assert none.status_code == 400 and Endpoints(console.r).all() == []

    bearer = {"Authorization": f"Bearer {TOKEN}"}
    made = console.client().post("/console/api/webhooks", headers=bearer,
                                 json={"url": "https://crm.example.com/hook", "events": ["lead.updated"]})
    assert made.status_code == 201 and made.json["secret"].startswith("whsec_")
    listed = console.client().get("/console/api/webhooks", headers=bearer).json["endpoints"]
    assert [e["url"] for e in listed] == ["https://crm.example.com/hook"] and "secret" not in listed[0]
    assert console.client().delete(f"/console/api/webhooks/{made.json['id']}", headers=bearer).status_code == 204
    assert console.client().delete(f"/console/api/webhooks/{made.json['id']}", headers=bearer).status_code == 404

    secret = add_endpoint(console, receiver.url)
    [ep] = Endpoints(console.r).all()
    page = console.http.get("/console/audit").get_data(as_text=True)
    assert "Webhookを追加" in page and "Webhookを削除" in page and secret not in page
    res = console.http.post(f"/console/webhooks/{ep.id}/delete", data={"csrf_token": csrf_of(page)})
    assert res.status_code == 302 and Endpoints(console.r).all() == []

    console.add_operator("viewer@example.jp", "Viewer", "viewer")
    viewer = console.client()
    assert console.login_as("viewer@example.jp", http=viewer).status_code == 302
    shown = viewer.get("/console/webhooks").get_data(as_text=True)
    assert 'id="webhook-form"' not in shown
    refused = viewer.post("/console/webhooks", data={"csrf_token": csrf_of(shown), "url": receiver.url,
                                                     "events": ["lead.updated"]})
    assert refused.status_code == 403 and Endpoints(console.r).all() == []


@pytest.mark.fast
def test_urls_the_console_takes() -> None:
    for ok in ("https://crm.example.com/hook", "http://127.0.0.1:8080/x", "http://localhost/x", "http://[::1]/x"):
        assert webhooks.check_url(ok) == ok
    for bad in ("http://crm.example.com/x", "ftp://x/", "https://user:pw@crm.example.com/", "", "https://"):
        with pytest.raises(InvalidInput):
            webhooks.check_url(bad)


def test_an_event_is_queued_once_per_endpoint_and_key(console_worker: tuple[Console, Any]) -> None:
    console, _ = console_worker
    store = Endpoints(console.r, console.clock)
    store.create("https://a.example.com/", ["consultation.requested"])
    store.create("https://b.example.com/", ["booking.created"])
    hooks = Webhooks(console.svc.outbox, console.clock)
    assert hooks.emit("consultation.requested", "k1", lambda ep: {"x": ep.opaque("p")}) == 1
    assert hooks.emit("consultation.requested", "k1", lambda ep: {"x": ep.opaque("p")}) == 0
    assert hooks.emit("consultation.requested", "k2", lambda ep: {}) == 1
