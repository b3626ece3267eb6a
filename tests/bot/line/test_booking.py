"""Booking a consultation inside LINE, end to end over signed webhooks, the suite's real Redis and the fake
LINE API (every request checked against LINE's OpenAPI spec): 相談する with no diagnosis, the free slots as
a carousel, a pick booked once (a double tap and a redelivery included), the confirmation with its date,
time and format and its change / cancel buttons, change and cancel freeing the place at once, the
day-before reminder pushed exactly once by ``crmbot remind --now T`` (none for a cancelled booking), the
booking-news hook told of each change, a console cancellation pushed to the owner once, and a request
mid-diagnosis keeping the diagnosis."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.app import build_services, create_app
from bot.booking_news import BookingNews
from bot.cli import remind_cmd
from bot.config import Config
from conversations import keys
from conversations.keys import Subject
from conversations.machine import Conv
from tests.bot.line.conftest import LineEnv, line_config, start_worker
from tests.bot.line.helpers import LineUser, last_quick_reply_data
from tests.bot.line.test_webhook import answer_button
from tests.conftest import FakeClock
from tests.fakes.line_api import PUSH, FakeLineApi

JST = ZoneInfo("Asia/Tokyo")
AVAILABILITY: dict[str, Any] = {
    "timezone": "Asia/Tokyo", "slot_minutes": 30, "capacity": 1, "min_notice_hours": 12, "horizon_days": 14,
    "weekly": {d: [["10:00", "12:00"]] for d in ("mon", "tue", "wed", "thu", "fri")},
    "reminder_hour": 18, "format": "オンライン（Zoom）",
}
NOW = datetime(2026, 12, 7, 9, 0, tzinfo=JST)  # a Monday morning: the first slot offered is Tuesday 10:00
TUE_10 = int(datetime(2026, 12, 8, 10, 0, tzinfo=JST).timestamp())
TUE_1030 = int(datetime(2026, 12, 8, 10, 30, tzinfo=JST).timestamp())




@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW.timestamp())


@pytest.fixture
def booking_line(r: Any, redis_url: str, fake_line: FakeLineApi, clock: FakeClock) -> Iterator[LineEnv]:
    config = line_config(redis_url, fake_line, consult_url="https://booking.example.com/unused")
    svc = build_services(config, clock=clock)
    assert svc.bookings is not None
    svc.bookings.set_availability(AVAILABILITY)
    worker = start_worker(config, svc, clock)
    yield LineEnv(svc, create_app(services=svc).test_client(), fake_line, clock, r, worker)
    worker.close()


@pytest.fixture
def news(booking_line: LineEnv) -> list[BookingNews]:
    """What the app's booking-news hook hears (a listener added beside the owner's, as Slack's will be)."""
    heard: list[BookingNews] = []
    hooks = booking_line.svc.booking_news
    assert hooks is not None
    hooks.hooks.append(heard.append)  # type: ignore[attr-defined]
    return heard


def subject(user: LineUser) -> Subject:
    return Subject("line", user.user_id)


def new_messages(env: LineEnv, user: LineUser, before: int) -> list[dict[str, Any]]:
    env.settle()
    return env.fake.delivered(user.user_id)[before:]


def postbacks(node: Any) -> list[dict[str, Any]]:
    """Every postback action in a message (a Flex card's buttons, in order)."""
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if node.get("type") == "postback":
            found.append(node)
        for v in node.values():
            found += postbacks(v)
    elif isinstance(node, list):
        for v in node:
            found += postbacks(v)
    return found


def ask(env: LineEnv, user: LineUser, text: str = "相談する") -> list[dict[str, Any]]:
    before = len(env.fake.delivered(user.user_id))
    user.say(text)
    return new_messages(env, user, before)


def tap(env: LineEnv, user: LineUser, data: str) -> list[dict[str, Any]]:
    before = len(env.fake.delivered(user.user_id))
    user.tap(data)
    return new_messages(env, user, before)


def booked_note(messages: list[dict[str, Any]]) -> dict[str, Any]:
    [card] = [m for m in messages if m["type"] == "flex" and m["contents"]["type"] == "bubble"]
    return card


def book_first(env: LineEnv, user: LineUser) -> tuple[str, dict[str, Any]]:
    """相談する, then the first slot offered: the booking's id and the confirmation card."""
    slots = next(m for m in ask(env, user) if m["type"] == "flex")
    card = booked_note(tap(env, user, postbacks(slots)[0]["data"]))
    [active] = [b for b in env.svc.bookings.bookings_of(subject(user)) if b.active]  # type: ignore[union-attr]
    return active.id, card


def free_at(env: LineEnv, start: int) -> int:
    [slot] = [s for s in env.svc.bookings.free_slots() if int(s.start.timestamp()) == start]  # type: ignore[union-attr]
    return slot.free


def remind(env: LineEnv, redis_url: str, when: str) -> str:
    """``crmbot remind --now WHEN`` (the command's own function, as the CLI runs it), then the worker."""
    out = io.StringIO()
    config: Config = line_config(redis_url, env.fake)
    assert remind_cmd(config, when, False, out=out) == 0
    env.settle()
    return out.getvalue()


# ---- the tests -------------------------------------------------------------------------------------------


def test_no_diagnosis_consult_pick_confirm_and_one_reminder_the_day_before(
        booking_line: LineEnv, news: list[BookingNews], redis_url: str) -> None:
    env, user = booking_line, booking_line.user()
    script = env.svc.script
    ack, slots, offer = ask(env, user)
    assert ack["text"] == script.text("consult_ack") + "\n" + script.text("consult_first")
    assert last_quick_reply_data([offer]) == ["s"]  # the diagnosis: optional preparation
    assert slots["type"] == "flex" and slots["contents"]["type"] == "carousel"
    first_day = slots["contents"]["contents"][0]
    assert first_day["header"]["contents"][0]["text"] == "12月8日（火）"
    picks = postbacks(slots)
    assert [p["data"] for p in picks[:2]] == [f"bp:{TUE_10}", f"bp:{TUE_1030}"]
    assert picks[0]["label"] == "12/8（火）10:00"
    assert picks[-1]["label"] == script.text("booking_more_button")  # later dates, a page further
    assert [n.kind for n in news] == ["requested"] and news[0].booking is None and news[0].by == "owner"

    card = booked_note(tap(env, user, picks[0]["data"]))
    text = card["altText"]
    assert text.startswith(script.text("booking_booked"))
    assert "日時：12月8日（火）10:00〜10:30" in text and "形式：オンライン（Zoom）" in text
    [booking] = env.svc.bookings.bookings_of(subject(user))  # type: ignore[union-attr]
    assert booking.status == "booked" and int(booking.start.timestamp()) == TUE_10
    assert [p["data"] for p in postbacks(card)] == [f"bk:0:{booking.id}", f"bx:{booking.id}"]
    assert [p["label"] for p in postbacks(card)] == ["変更する", "キャンセルする"]
    assert [(n.kind, n.news_id) for n in news[1:]] == [("booked", f"{booking.id}.0")]
    assert free_at(env, TUE_10) == 0
    assert Conv.from_json(env.r.get(keys.conv(subject(user)))).sid == 0  # no diagnosis was needed

    pushes = len(env.fake.recorded(PUSH))
    assert "queued 0" in remind(env, redis_url, "2026-12-07T17:59+09:00")  # not yet
    dry = io.StringIO()
    assert remind_cmd(line_config(redis_url, env.fake), "2026-12-07T18:00+09:00", True, out=dry) == 0
    assert f"line booking reminder day {booking.id} (dry run: would queue)" in dry.getvalue()
    env.settle()
    assert len(env.fake.recorded(PUSH)) == pushes  # a dry run sends nothing
    summary = remind(env, redis_url, "2026-12-07T18:00+09:00")
    assert "line booking reminder day" in summary
    [push] = env.fake.recorded(PUSH)[pushes:]
    assert push.headers.get("x-line-retry-key")  # a UUID (the fake refuses any other)
    [reminder] = push.json["messages"]
    assert reminder["altText"].startswith(script.text("booking_remind_day"))
    assert "12月8日（火）10:00〜10:30" in reminder["altText"]
    assert [p["data"] for p in postbacks(reminder)] == [f"bk:0:{booking.id}", f"bx:{booking.id}"]
    remind(env, redis_url, "2026-12-07T18:05+09:00")  # a second pass, and a second clock, send nothing
    remind(env, redis_url, "2026-12-07T18:00+09:00")
    assert len(env.fake.recorded(PUSH)) == pushes + 1
    from bot.push_budget import PushBudget

    usage = PushBudget(env.r, None).usage(NOW.timestamp())  # asked for: never held, counted once
    assert (usage.used, usage.by_kind, usage.held) == (1, {"booking_reminder": 1}, {})


def test_a_double_tap_and_a_redelivery_book_once(booking_line: LineEnv, news: list[BookingNews]) -> None:
    env, user = booking_line, booking_line.user()
    ask(env, user)
    pick = user.postback_event(f"bp:{TUE_10}")
    user.send(pick)
    user.send(dict(pick, deliveryContext={"isRedelivery": True}))  # LINE redelivers the same event
    env.settle()
    confirmed = [m for m in env.fake.delivered(user.user_id) if m.get("altText", "").startswith("ご予約を承りました")]
    assert len(confirmed) == 1  # the redelivery is answered by nothing
    again = booked_note(tap(env, user, f"bp:{TUE_10}"))  # a second tap: another event, the same slot
    assert again["altText"].startswith(env.svc.script.text("booking_same"))
    assert len(env.svc.bookings.bookings_of(subject(user))) == 1  # type: ignore[union-attr]
    assert free_at(env, TUE_10) == 0 and free_at(env, TUE_1030) == 1
    booked = [n for n in news if n.kind == "booked"]
    assert {n.news_id for n in booked} == {f"{booked[0].booking.id}.0"}  # type: ignore[union-attr]  # heard as one


def test_change_and_cancel_free_the_place_at_once_and_no_reminder_follows(
        booking_line: LineEnv, news: list[BookingNews], redis_url: str) -> None:
    env, user = booking_line, booking_line.user()
    script = env.svc.script
    booking_id, card = book_first(env, user)
    [moving] = [m for m in tap(env, user, postbacks(card)[0]["data"]) if m["type"] == "flex"]
    assert moving["altText"] == script.text("booking_moving")
    target = [p for p in postbacks(moving) if p["data"] == f"bp:{TUE_1030}:{booking_id}"]
    assert target, "the slots offered for a change move this booking"
    changed = booked_note(tap(env, user, target[0]["data"]))
    assert changed["altText"].startswith(script.text("booking_changed"))
    assert "10:30〜11:00" in changed["altText"]
    assert free_at(env, TUE_10) == 1 and free_at(env, TUE_1030) == 0  # the old place is free at once

    cancelled = booked_note(tap(env, user, f"bx:{booking_id}"))
    assert cancelled["altText"].startswith(script.text("booking_cancelled"))
    assert [p["data"] for p in postbacks(cancelled)] == ["bk"]  # book again
    assert free_at(env, TUE_1030) == 1
    [booking] = env.svc.bookings.bookings_of(subject(user))  # type: ignore[union-attr]
    assert booking.status == "cancelled" and booking.reminders == ()
    assert [n.kind for n in news] == ["requested", "booked", "changed", "cancelled"]
    assert all(n.by == "owner" for n in news)
    assert [n.news_id for n in news[1:]] == [f"{booking_id}.0", f"{booking_id}.1", f"{booking_id}.2"]
    assert all(re.fullmatch(r"[A-Za-z0-9._-]{1,128}", n.news_id) for n in news)  # fit for any ledger key

    gone = booked_note(tap(env, user, f"bp:{TUE_10}:{booking_id}"))  # an old change button
    assert gone["altText"] == script.text("booking_gone")
    pushes = len(env.fake.recorded(PUSH))
    remind(env, redis_url, "2026-12-07T18:00+09:00")
    assert len(env.fake.recorded(PUSH)) == pushes  # no reminder for a cancelled booking


def test_the_last_place_taken_meanwhile_shows_the_alternatives(booking_line: LineEnv) -> None:
    env = booking_line
    first, second = env.user(), env.user()
    ask(env, first)
    [slots] = [m for m in ask(env, second) if m["type"] == "flex"]
    tap(env, first, f"bp:{TUE_10}")
    [full] = tap(env, second, postbacks(slots)[0]["data"])
    assert full["altText"].startswith(env.svc.script.text("booking_full"))
    offered = [p["data"] for p in postbacks(full)]
    assert f"bp:{TUE_10}" not in offered and offered[0] == f"bp:{TUE_1030}"
    assert env.svc.bookings.bookings_of(subject(second)) == []  # type: ignore[union-attr]


def test_a_cancellation_from_the_console_is_pushed_to_the_owner_once(booking_line: LineEnv) -> None:
    env, user = booking_line, booking_line.user()
    booking_id, _ = book_first(env, user)
    bookings, hook = env.svc.bookings, env.svc.booking_news
    assert bookings is not None and hook is not None
    cancelled = bookings.cancel(booking_id, by="console")
    assert cancelled is not None
    pushes = len(env.fake.recorded(PUSH))
    said = BookingNews("cancelled", subject(user), cancelled, "console", "console-cancel-1", "体調不良のため")
    hook(said)
    hook(said)  # the console retried its request: the same news
    env.settle()
    [push] = env.fake.recorded(PUSH)[pushes:]
    [told] = push.json["messages"]
    text = told["altText"]
    assert text.startswith(env.svc.script.text("booking_cancelled_op"))
    assert "12月8日（火）10:00〜10:30" in text and "担当者より：体調不良のため" in text
    assert [p["data"] for p in postbacks(told)] == ["bk"]
    hook(BookingNews("cancelled", subject(user), cancelled, "owner", "owner-own"))  # the owner's own: said in chat
    env.settle()
    assert len(env.fake.recorded(PUSH)) == pushes + 1


def test_consult_mid_diagnosis_keeps_the_diagnosis(booking_line: LineEnv) -> None:
    env, user = booking_line, booking_line.user()
    user.follow()
    env.settle()
    user.tap("s")
    env.settle()
    for letter in "ABC":
        user.tap(answer_button(env, user, letter))
        env.settle()
    ack, slots, question = ask(env, user)
    assert ack["text"] == env.svc.script.text("consult_ack")
    assert slots["contents"]["type"] == "carousel"
    assert question["text"].startswith("Q4")
    conv = Conv.from_json(env.r.get(keys.conv(subject(user))))
    assert (conv.state, conv.q, conv.answers) == ("asking", 3, "ABC")
    user.tap(answer_button(env, user, "A"))
    env.settle()
    assert env.fake.delivered(user.user_id)[-1]["text"].startswith("Q5")
    assert json.loads(json.dumps(slots))  # JSON as sent


def test_deleting_my_data_frees_the_place_and_forgets_the_bookings(booking_line: LineEnv, redis_url: str) -> None:
    env, user = booking_line, booking_line.user()
    book_first(env, user)
    assert free_at(env, TUE_10) == 0
    user.say("データを削除")
    user.tap("e:1")
    env.settle()
    assert free_at(env, TUE_10) == 1
    assert env.svc.bookings.bookings_of(subject(user)) == []  # type: ignore[union-attr]
    assert env.svc.bookings.consultation(subject(user)) is None  # type: ignore[union-attr]
    left = [k for k in env.r.scan_iter(match="crmbot:{booking}:*") if user.user_id.encode() in k]
    assert left == []
    me = user.user_id.encode()
    for key in env.r.scan_iter(match="crmbot:{booking}:*"):  # no booking, index or count names them
        kind = env.r.type(key)
        members = (env.r.zrange(key, 0, -1) if kind == b"zset" else env.r.hvals(key) if kind == b"hash" else [])
        assert not [m for m in members if me in m], key
    pushes = len(env.fake.recorded(PUSH))
    remind(env, redis_url, "2026-12-07T18:00+09:00")
    assert len(env.fake.recorded(PUSH)) == pushes  # no reminder to a person who is gone


def test_a_clock_dying_after_its_claim_or_after_queueing_sends_each_reminder_once(
        booking_line: LineEnv, redis_url: str) -> None:
    from bot.outbox import Outbox
    from conversations.booking import REMINDER_LEDGER_TTL
    from conversations.jobs import Job
    from conversations.outputs import BookingNote

    env = booking_line
    bookings = env.svc.bookings
    assert bookings is not None
    claimed_only, queued_only = env.user(), env.user()
    book_first(env, claimed_only)
    book_first(env, queued_only)
    due_at = datetime(2026, 12, 7, 18, 0, tzinfo=JST).timestamp()
    # a clock claims both, queues the second's push, and dies before acknowledging either
    claimed = {d.subject.user_id: d for d in bookings.claim_due_reminders(due_at)}
    assert set(claimed) == {claimed_only.user_id, queued_only.user_id}
    due = claimed[queued_only.user_id]
    outbox = Outbox(env.r, [], clock=env.clock)
    job = Job.new("line", due.subject.user_id, due.subject.tag_name, [BookingNote("remind_day", due.booking.id)],
                  due_at, job_id=due.job_id)
    assert outbox.put_once(due.ledger_key, job, ttl=REMINDER_LEDGER_TTL, wake=False)
    pushes = len(env.fake.recorded(PUSH))
    remind(env, redis_url, "2026-12-07T18:00:30+09:00")  # inside the dead clock's lease: nothing claimed again
    env.clock.t = due_at + 61
    remind(env, redis_url, "2026-12-07T18:01:01+09:00")  # the lease is over: claimed again
    remind(env, redis_url, "2026-12-07T18:03:00+09:00")
    env.settle()
    sent = [r.json["to"] for r in env.fake.recorded(PUSH)[pushes:]]
    assert sorted(sent) == sorted([claimed_only.user_id, queued_only.user_id])  # one each


@pytest.mark.parametrize("word", ["予約", "book"])
def test_typed_book_word_opens_the_free_slots_like_the_button(booking_line: LineEnv, word: str) -> None:
    env, user = booking_line, booking_line.user()
    [typed] = ask(env, user, word)  # no diagnosis, nothing said before: the slots alone
    [tapped] = tap(env, user, "bk")
    assert typed["contents"]["type"] == "carousel" and typed == tapped
    assert postbacks(typed)[0]["data"] == f"bp:{TUE_10}"
    booked_note(tap(env, user, postbacks(typed)[0]["data"]))
    assert [b.status for b in env.svc.bookings.bookings_of(subject(user))] == ["booked"]  # type: ignore[union-attr]


def test_typed_book_word_without_availability_asks_for_a_consultation(line_env: LineEnv) -> None:
    env, user = line_env, line_env.user()
    messages = ask(env, user, "予約")
    assert messages[0]["text"].startswith(env.svc.script.text("consult_ack"))  # as 相談する: recorded, answered
    assert env.svc.bookings.consultation(subject(user)) is not None  # type: ignore[union-attr]
