"""Follow-ups on the owner's own point to fix (bot/followups.py), through signed LINE webhooks, the fake LINE API
(every push checked against LINE's spec), a real Redis and ``crmbot remind --now T`` as the clock's pass: their own
opt-in with the result, exactly the point's steps on their days, only between 9:00 and 20:00, once each (across
passes, clocks and a crash), and none after a booking, 停止, an unfollow, or without an opt-in; a retake starts over
from its new point."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.app import build_services, create_app
from bot.cli import remind_cmd
from bot.followups import LEDGER_TTL, job_id
from bot.outbox import Outbox
from conversations import keys
from conversations.jobs import Job
from conversations.keys import Subject
from conversations.outputs import FollowStep
from tests.bot.line.conftest import LineEnv, line_config, start_worker
from tests.bot.line.helpers import LineUser, last_quick_reply_data
from tests.bot.line.test_booking import AVAILABILITY, book_first, postbacks
from tests.bot.line.test_webhook import answer_button
from tests.conftest import FakeClock
from tests.fakes.line_api import PUSH, FakeLineApi

JST = ZoneInfo("Asia/Tokyo")
RESOURCES = "https://crm.example.com/tips"
Q3_POINT = "AACBAAAAAA"  # the weakest answer (C) is question 3's
Q5_POINT = "AAAACAAAAA"


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=JST).timestamp()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(at("2026-12-07T21:30"))  # a Monday night: the first step falls due at night too


@pytest.fixture
def env(r: Any, redis_url: str, fake_line: FakeLineApi, clock: FakeClock) -> Iterator[LineEnv]:
    config = line_config(redis_url, fake_line, resources_url=RESOURCES)
    svc = build_services(config, clock=clock)
    assert svc.bookings is not None
    svc.bookings.set_availability(AVAILABILITY)
    worker = start_worker(config, svc, clock)
    yield LineEnv(svc, create_app(services=svc).test_client(), fake_line, clock, r, worker)
    worker.close()


def take(env: LineEnv, user: LineUser, answers: str, *, follow: bool = True) -> list[dict[str, Any]]:
    """(Follow,) start and tap the ten answers; the result's messages."""
    if follow:
        user.follow()
        env.settle()
    user.say("診断")
    env.settle()
    for letter in answers:
        before = len(env.fake.delivered(user.user_id))
        user.tap(answer_button(env, user, letter))
        env.settle()
    return env.fake.delivered(user.user_id)[before:]


def remind(env: LineEnv, redis_url: str, when: str) -> str:
    """``crmbot remind --now WHEN`` (the command's own function), then the worker delivers, at that time."""
    env.clock.t = at(when)
    out = io.StringIO()
    assert remind_cmd(line_config(redis_url, env.fake, resources_url=RESOURCES), when + "+09:00", False, out=out) == 0
    env.settle()
    return out.getvalue()


def follow_ups(env: LineEnv, user: LineUser | None = None) -> list[Any]:
    """The follow-up pushes sent (to one user): those counted under an aggregation unit."""
    return [p for p in env.fake.recorded(PUSH) if p.json.get("customAggregationUnits")
            and (user is None or p.json["to"] == user.user_id)]


def units(env: LineEnv, user: LineUser | None = None) -> list[str]:
    return [u for p in follow_ups(env, user) for u in p.json["customAggregationUnits"]]


def opt_in(env: LineEnv, user: LineUser, sid: int = 1) -> list[dict[str, Any]]:
    before = len(env.fake.delivered(user.user_id))
    user.tap(f"f:{sid}:1")
    env.settle()
    return env.fake.delivered(user.user_id)[before:]


def test_an_opted_in_owner_whose_point_is_q3_gets_exactly_the_q3_steps_on_their_days_by_day_and_none_after_booking(
        env: LineEnv, redis_url: str) -> None:
    script = env.svc.script
    user = env.user()
    result = take(env, user, Q3_POINT)
    # the result, then the follow-ups' own offer (its buttons on its card), then the quarterly one (quick replies)
    card, offer, quarterly = result
    assert card["type"] == "flex" and offer["type"] == "template" and offer["template"]["type"] == "confirm"
    assert offer["template"]["text"] == script.text("follow_offer")
    assert [p["data"] for p in postbacks(offer)] == ["f:1:1", "f:1:0"]
    assert quarterly["text"] == script.text("optin_offer") and last_quick_reply_data([quarterly]) == ["o:1", "o:0"]
    [said] = opt_in(env, user)
    assert said["text"] == script.text("follow_on")

    steps = script.questions[2].followups
    assert [s.day for s in steps] == [2, 7, 13]
    assert "queued 0" in remind(env, redis_url, "2026-12-09T21:30")  # due now, but at night: it waits
    assert "queued 0" in remind(env, redis_url, "2026-12-10T08:59")
    assert "line follow-up q3 step 1" in remind(env, redis_url, "2026-12-10T09:00")
    [first] = follow_ups(env, user)
    assert first.json["customAggregationUnits"] == ["fu_q3_1"]
    assert first.headers["x-line-retry-key"] == job_id(Subject("line", user.user_id), 1, 0)
    uuid.UUID(first.headers["x-line-retry-key"])  # LINE takes only a UUID
    [message] = first.json["messages"]
    assert message["text"] == script.text("follow_step", topic=script.questions[2].topic, number=1, total=3,
                                          tip=steps[0].tip) + "\n" + script.text("follow_link", url=f"{RESOURCES}/f2")
    remind(env, redis_url, "2026-12-10T09:05")  # a later pass sends nothing again
    remind(env, redis_url, "2026-12-14T19:59")
    assert units(env, user) == ["fu_q3_1"]
    remind(env, redis_url, "2026-12-14T21:30")
    assert units(env, user) == ["fu_q3_1"]  # day 7 is due at 21:30: waits for the morning
    remind(env, redis_url, "2026-12-15T09:00")
    assert units(env, user) == ["fu_q3_1", "fu_q3_2"]
    assert RESOURCES not in follow_ups(env, user)[1].json["messages"][0]["text"]  # the step without a link

    book_first(env, user)  # a consultation booked in the chat (the booking-news hook hears of it)
    for when in ("2026-12-20T21:30", "2026-12-21T09:00", "2026-12-22T12:00"):
        remind(env, redis_url, when)
    assert units(env, user) == ["fu_q3_1", "fu_q3_2"]  # the third never comes
    assert env.r.zcard(keys.FOLLOWUPS) == 0  # and is off the schedule


def test_none_after_stop_unfollow_or_erasure_and_none_without_opting_in(env: LineEnv, redis_url: str) -> None:
    env.clock.t = at("2026-12-07T10:00")
    stopped, gone, erased, declined, silent = env.user(), env.user(), env.user(), env.user(), env.user()
    for user in (stopped, gone, erased, declined, silent):
        take(env, user, Q3_POINT)
    for user in (stopped, gone, erased):
        opt_in(env, user)
    assert env.r.zcard(keys.FOLLOWUPS) == 9  # three steps each
    stopped.say("停止")
    gone.send(gone.event("unfollow", reply=False))
    erased.say("データを削除")
    erased.tap("e:1")
    env.settle()
    assert not [m for m in env.r.zrange(keys.FOLLOWUPS, 0, -1) if erased.user_id in m.decode()]  # nothing of theirs
    declined.tap("f:1:0")
    declined.tap("o:1")  # the quarterly reminder is a separate opt-in: yes to it is no yes to the tips
    env.settle()
    for when in ("2026-12-09T10:00", "2026-12-14T10:00", "2026-12-20T10:00", "2026-12-22T10:00"):
        remind(env, redis_url, when)
    assert follow_ups(env) == []


def test_a_retake_starts_over_from_the_new_point(env: LineEnv, redis_url: str) -> None:
    env.clock.t = at("2026-12-07T10:00")
    user = env.user()
    take(env, user, Q3_POINT)
    opt_in(env, user)
    remind(env, redis_url, "2026-12-09T10:00")
    assert units(env, user) == ["fu_q3_1"]
    env.clock.t = at("2026-12-10T10:00")
    result = take(env, user, Q5_POINT, follow=False)
    assert not any(m["type"] == "template" for m in result)  # already on: no offer
    for when in ("2026-12-12T10:00", "2026-12-14T10:00", "2026-12-17T10:00", "2026-12-23T10:00"):
        remind(env, redis_url, when)
    assert units(env, user) == ["fu_q3_1", "fu_q5_1", "fu_q5_2", "fu_q5_3"]


def test_two_clocks_or_a_crash_after_the_claim_send_each_step_once(env: LineEnv, redis_url: str) -> None:
    env.clock.t = at("2026-12-07T10:00")
    claimed_only, queued_only = env.user(), env.user()
    for user in (claimed_only, queued_only):
        take(env, user, Q3_POINT)
        opt_in(env, user)
    followups = env.svc.followups
    due = at("2026-12-09T10:00")
    # a clock claims both steps, queues the second owner's push and dies before acknowledging either
    lease = due + followups.lease
    claimed = [m.decode() for m in followups._claim(keys=[keys.FOLLOWUPS], args=[repr(due), "100", repr(lease)])]
    assert sorted(m.split("|")[0] for m in claimed) == sorted(f"line:{u.user_id}" for u in (claimed_only, queued_only))
    subject = Subject("line", queued_only.user_id)
    job = Job.new("line", queued_only.user_id, subject.tag_name, [FollowStep(2, 0)], due,
                  job_id=job_id(subject, 1, 0))
    assert Outbox(env.r, [], clock=env.clock).put_once(keys.followup_sent(subject, 1, 0), job, ttl=LEDGER_TTL)
    remind(env, redis_url, "2026-12-09T10:00:30")  # inside the dead clock's lease: a second clock claims nothing
    remind(env, redis_url, "2026-12-09T10:01:01")  # the lease is over: claimed again, the ledger holds the second
    remind(env, redis_url, "2026-12-09T10:03:00")
    assert sorted(p.json["to"] for p in follow_ups(env)) == sorted([claimed_only.user_id, queued_only.user_id])
    assert units(env) == ["fu_q3_1", "fu_q3_1"]
