"""Follow-ups on the owner's own point to fix (bot/followups.py), through signed LINE webhooks, the fake LINE API
(every push checked against LINE's spec), a real Redis and ``crmbot remind --now T`` as the clock's pass with the
worker: their own opt-in after the result (with the last qualification question's thanks; the quarterly offer with
its answer), exactly the point's steps on their days, only between 9:00 and 20:00, once each (across passes, clocks
and a crash), and none after a booking, 停止, an unfollow, or without an opt-in; a retake starts over from its new
point; a push budget of N holds the N+1th push, follow-ups and nudges together (follow-ups first), until the
next month opens."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from bot.app import build_services, create_app
from bot.cli import remind_cmd
from bot.followups import LEDGER_TTL, job_id
from bot.outbox import Outbox
from bot.push_budget import PushBudget
from conversations import keys
from conversations.jobs import Job
from conversations.keys import Subject
from conversations.outputs import FollowStep
from conversations.transports import LineState
from tests.bot.line.conftest import LineEnv, line_config, start_worker
from tests.bot.line.helpers import LineUser, last_quick_reply_data
from tests.bot.line.test_booking import AVAILABILITY, book_first, postbacks
from tests.bot.line.test_nudges import at
from tests.bot.line.test_webhook import answer_button
from tests.conftest import FakeClock
from tests.fakes.line_api import PUSH, FakeLineApi

RESOURCES = "https://crm.example.com/tips"
Q3_POINT = "AACBAAAAAA"  # the weakest answer (C) is question 3's
Q5_POINT = "AAAACAAAAA"


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
    """(Follow,) start and tap the ten answers; the result's reply."""
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


def qualified(env: LineEnv, user: LineUser) -> list[dict[str, Any]]:
    """Skip the three qualification questions asked after the result; the last one's reply."""
    for q in range(len(env.svc.script.qualify.questions)):
        before = len(env.fake.delivered(user.user_id))
        user.tap(f"f:{q}:0")
        env.settle()
    return env.fake.delivered(user.user_id)[before:]


def remind(env: LineEnv, redis_url: str, when: str, **config: Any) -> str:
    """``crmbot remind --now WHEN`` (the command's own function), then the worker delivers, at that time."""
    env.clock.t = at(when)
    out = io.StringIO()
    config = line_config(redis_url, env.fake, resources_url=RESOURCES, **config)
    assert remind_cmd(config, when + "+09:00", False, out=out) == 0
    env.settle()
    return out.getvalue()


def follow_ups(env: LineEnv, user: LineUser | None = None) -> list[Any]:
    """The follow-up pushes sent (to one user): those counted under a follow-up's aggregation unit."""
    return [p for p in env.fake.recorded(PUSH) if (p.json.get("customAggregationUnits") or [""])[0].startswith("fu_")
            and (user is None or p.json["to"] == user.user_id)]


def units(env: LineEnv, user: LineUser | None = None) -> list[str]:
    return [u for p in follow_ups(env, user) for u in p.json["customAggregationUnits"]]


def opt_in(env: LineEnv, user: LineUser, sid: int = 1) -> list[dict[str, Any]]:
    before = len(env.fake.delivered(user.user_id))
    user.tap(f"t:{sid}:1")
    env.settle()
    return env.fake.delivered(user.user_id)[before:]


def test_an_opted_in_owner_whose_point_is_q3_gets_exactly_the_q3_steps_on_their_days_by_day_and_none_after_booking(
        env: LineEnv, redis_url: str) -> None:
    script = env.svc.script
    user = env.user()
    card, first_question = take(env, user, Q3_POINT)  # the result card, then the first qualification question
    assert card["type"] == "flex" and first_question["altText"] == script.qualify.questions[0].text[:400]
    # the last question's thanks with the follow-ups' own offer (its buttons stay on the message)
    thanks, offer = qualified(env, user)
    assert thanks["text"] == script.qualify.thanks
    assert offer["type"] == "template" and offer["template"]["type"] == "confirm"
    assert offer["template"]["text"] == script.text("follow_offer")
    assert [p["data"] for p in postbacks(offer)] == ["t:1:1", "t:1:0"]
    said, quarterly = opt_in(env, user)  # the answer, then the quarterly offer with its quick replies
    assert said["text"] == script.text("follow_on")
    assert quarterly["text"] == script.text("optin_offer") and last_quick_reply_data([quarterly]) == ["o:1", "o:0"]

    steps = script.questions[2].followups
    assert [s.day for s in steps] == [2, 7, 13]
    assert "queued 0" in remind(env, redis_url, "2026-12-09T21:30")  # due now, but at night: it waits
    assert "queued 0" in remind(env, redis_url, "2026-12-10T08:59")
    assert "Q3 step 1" in remind(env, redis_url, "2026-12-10T09:00")
    [first] = follow_ups(env, user)
    assert first.json["customAggregationUnits"] == ["fu_q3_1"]
    assert first.headers["x-line-retry-key"] == job_id(Subject("line", user.user_id), 1, 0)
    uuid.UUID(first.headers["x-line-retry-key"])  # LINE takes only a UUID
    [message] = first.json["messages"]
    link = script.text("follow_link", url=f"{RESOURCES}/{steps[0].link}")
    assert message["text"] == script.text("follow_step", topic=script.questions[2].topic, number=1, total=3,
                                          tip=steps[0].tip) + "\n" + link
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
        qualified(env, user)
    for user in (stopped, gone, erased):
        opt_in(env, user)
    assert env.r.zcard(keys.FOLLOWUPS) == 9  # three steps each
    stopped.say("停止")
    gone.send(gone.event("unfollow", reply=False))
    erased.say("データを削除")
    erased.tap("e:1")
    env.settle()
    assert not [m for m in env.r.zrange(keys.FOLLOWUPS, 0, -1) if erased.user_id in m.decode()]  # nothing of theirs
    declined.tap("t:1:0")
    declined.tap("o:1")  # the quarterly reminder is a separate opt-in: yes to it is no yes to the tips
    env.settle()
    for when in ("2026-12-09T10:00", "2026-12-14T10:00", "2026-12-20T10:00", "2026-12-22T10:00"):
        remind(env, redis_url, when)
    assert follow_ups(env) == []


def test_a_retake_starts_over_from_the_new_point(env: LineEnv, redis_url: str) -> None:
    env.clock.t = at("2026-12-07T10:00")
    user = env.user()
    take(env, user, Q3_POINT)
    qualified(env, user)
    opt_in(env, user)
    remind(env, redis_url, "2026-12-09T10:00")
    assert units(env, user) == ["fu_q3_1"]
    env.clock.t = at("2026-12-10T10:00")
    result = take(env, user, Q5_POINT, follow=False)  # the qualification was answered: nothing more to ask
    assert [m.get("text") for m in result[1:]] == [env.svc.script.text("follow_restart"),
                                                   env.svc.script.text("optin_offer")]  # said; no second offer
    for when in ("2026-12-12T10:00", "2026-12-14T10:00", "2026-12-17T10:00", "2026-12-23T10:00"):
        remind(env, redis_url, when)
    assert units(env, user) == ["fu_q3_1", "fu_q5_1", "fu_q5_2", "fu_q5_3"]


def test_two_clocks_or_a_crash_after_the_claim_send_each_step_once(env: LineEnv, redis_url: str) -> None:
    env.clock.t = at("2026-12-07T10:00")
    claimed_only, queued_only = env.user(), env.user()
    for user in (claimed_only, queued_only):
        take(env, user, Q3_POINT)
        qualified(env, user)
        opt_in(env, user)
    outbox = Outbox(env.r, [], clock=env.clock)
    sender = env.svc.followups.sender(outbox, PushBudget(env.r, None))
    due = at("2026-12-09T10:00")
    # a clock claims both steps, queues the second owner's push and dies before acknowledging either
    lease = due + sender.lease
    claimed = [m.decode() for m in sender._claim(keys=[keys.FOLLOWUPS, keys.FOLLOWUPS_HELD],
                                                 args=[repr(due), "100", repr(lease)])[::2]]
    assert sorted(m.split("|")[0] for m in claimed) == sorted(f"line:{u.user_id}" for u in (claimed_only, queued_only))
    subject = Subject("line", queued_only.user_id)
    job = Job.new("line", queued_only.user_id, subject.tag_name, [FollowStep(2, 0)], due,
                  job_id=job_id(subject, 1, 0), state=LineState(via="push", unit="fu_q3_1"))
    assert outbox.put_once(keys.followup_sent(subject, 1, 0), job, ttl=LEDGER_TTL)
    remind(env, redis_url, "2026-12-09T10:00:30")  # inside the dead clock's lease: a second clock claims nothing
    remind(env, redis_url, "2026-12-09T10:01:01")  # the lease is over: claimed again, the ledger holds the second
    remind(env, redis_url, "2026-12-09T10:03:00")
    assert sorted(p.json["to"] for p in follow_ups(env)) == sorted([claimed_only.user_id, queued_only.user_id])
    assert units(env) == ["fu_q3_1", "fu_q3_1"]


def test_a_budget_of_one_holds_the_second_push_follow_ups_and_nudges_together(env: LineEnv, redis_url: str) -> None:
    """Follow-ups go before the nudges; over the month's budget each is held (not lost) and goes when the next
    month opens, if still wanted (a held step a later one of its series overtook is dropped with its reason)."""
    first, second, stopped = env.user(), env.user(), env.user()
    env.clock.t = at("2026-12-29T10:00")
    for user in (first, second):
        take(env, user, Q3_POINT)
        qualified(env, user)
        opt_in(env, user)  # step 1 due on the 31st at 10:00
    env.clock.t = at("2026-12-30T10:00")
    take(env, stopped, "ABC")  # left at Q4: its nudge is due on the 31st at 10:00 too
    out = remind(env, redis_url, "2026-12-31T10:00", push_budget_month=1)
    [sent] = follow_ups(env)
    assert nudges(env) == []
    assert out.count("held: over this month's push budget") == 2  # the second step and the nudge
    held = second if sent.json["to"] == first.user_id else first
    assert "queued 0" in remind(env, redis_url, "2027-01-01T00:00", push_budget_month=1)  # a new month, at night
    out = remind(env, redis_url, "2027-01-01T09:00", push_budget_month=1)
    assert [p.json["to"] for p in follow_ups(env)] == [sent.json["to"], held.user_id]  # the held step first ...
    assert nudges(env) == [] and "held: over this month's push budget" in out  # ... the nudge held again
    budget = PushBudget(env.r, 1)
    december, january = budget.usage(at("2026-12-31T12:00")), budget.usage(at("2027-01-01T12:00"))
    assert (december.used, december.by_kind, december.held) == (1, {"followup": 1}, {"followup": 1, "nudge": 1})
    assert (january.used, january.by_kind, january.held) == (1, {"followup": 1}, {"nudge": 1})
    assert env.r.hlen(keys.FOLLOWUPS_HELD) == 0  # the held step went: nothing of it left
    remind(env, redis_url, "2027-01-05T10:00")  # with no budget: the follow-ups run on by their days (day 7)
    assert sorted(units(env)) == ["fu_q3_1", "fu_q3_1", "fu_q3_2", "fu_q3_2"]


def test_a_held_step_overtaken_by_the_next_is_dropped_with_its_reason(env: LineEnv, redis_url: str) -> None:
    first, second = env.user(), env.user()
    env.clock.t = at("2026-12-24T10:00")
    for user in (first, second):
        take(env, user, Q3_POINT)
        qualified(env, user)
        opt_in(env, user)  # step 1 due on the 26th, step 2 on the 31st
    remind(env, redis_url, "2026-12-26T10:00", push_budget_month=1)
    [sent] = follow_ups(env)
    held = second if sent.json["to"] == first.user_id else first
    remind(env, redis_url, "2026-12-31T10:00", push_budget_month=1)  # over the budget: the other's step 2 held too
    out = remind(env, redis_url, "2027-01-01T09:00", push_budget_month=3)
    assert "a later step is due: it goes instead" in out
    assert [u for p in follow_ups(env, held) for u in p.json["customAggregationUnits"]] == ["fu_q3_2"]
    assert sorted(units(env, first if held is second else second)) == ["fu_q3_1", "fu_q3_2"]
    assert PushBudget(env.r, 3).usage(at("2027-01-01T12:00")).dropped == {"followup": 1}


def nudges(env: LineEnv) -> list[Any]:
    return [p for p in env.fake.recorded(PUSH)
            if (p.json.get("customAggregationUnits") or [""])[0].startswith("nudge_")]
