"""Drop-off recovery and the push budget, end to end over signed webhooks, the suite's real Redis, the fake LINE
API (every push checked against LINE's OpenAPI spec) and ``crmbot remind --now T`` on an injected clock: an
owner who stopped at Q4 gets one nudge showing Q4 (none at night, sent at 09:00), answers it and goes on to
Q5, and the funnel counts nudged / resumed / recovered exactly; a clock dying after its claim, or after
queueing, still sends it once; nothing after 停止, an unfollow, or expiry; a budget of N holds the N+1th
nudge and sends it when the next month opens."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.app import build_services, create_app
from bot.cli import remind_cmd
from bot.nudges import job_id
from bot.outbox import Outbox
from bot.push_budget import PushBudget
from conversations import keys
from conversations.analytics import Analytics
from conversations.jobs import Job
from conversations.keys import Subject
from conversations.nudges import NudgeSchedule
from conversations.outputs import Notice, Question
from conversations.transports import LineState
from tests.bot.line.conftest import LineEnv, line_config, start_worker
from tests.bot.line.helpers import LineUser, last_quick_reply_data
from tests.bot.line.test_webhook import answer_button, take
from tests.conftest import FakeClock
from tests.fakes.line_api import PUSH, FakeLineApi

JST = ZoneInfo("Asia/Tokyo")


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=JST).timestamp()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(at("2026-12-07T03:00"))


@pytest.fixture
def nudge_line(r: Any, redis_url: str, fake_line: FakeLineApi, clock: FakeClock) -> Iterator[LineEnv]:
    config = line_config(redis_url, fake_line)
    svc = build_services(config, clock=clock)
    worker = start_worker(config, svc, clock)
    yield LineEnv(svc, create_app(services=svc).test_client(), fake_line, clock, r, worker)
    worker.close()


def remind(env: LineEnv, redis_url: str, when: str, **config: Any) -> str:
    """``crmbot remind --now WHEN`` (the command's own function), then the worker at that time."""
    out = io.StringIO()
    env.clock.t = at(when)
    assert remind_cmd(line_config(redis_url, env.fake, **config), when + "+09:00", False, out=out) == 0
    env.settle()
    return out.getvalue()


def nudges(env: LineEnv, since: int = 0) -> list[Any]:
    return [p for p in env.fake.recorded(PUSH)[since:]
            if (p.json.get("customAggregationUnits") or [""])[0].startswith("nudge_")]


def stop_at_q4(env: LineEnv, user: LineUser) -> None:
    take(env, user, "ABC")  # three answers: Q4 is open


def test_one_nudge_at_nine_showing_q4_answered_then_counted_in_the_funnel(
        nudge_line: LineEnv, redis_url: str) -> None:
    env, user = nudge_line, nudge_line.user()
    script = env.svc.script
    stop_at_q4(env, user)  # Monday 03:00: due Tuesday 03:00, at night
    assert "queued 0" in remind(env, redis_url, "2026-12-07T09:00")  # not yet due
    assert "queued 0" in remind(env, redis_url, "2026-12-08T03:00")  # due, but night: it waits
    assert nudges(env) == []
    dry = io.StringIO()
    assert remind_cmd(line_config(redis_url, env.fake), "2026-12-08T09:00+09:00", True, out=dry) == 0
    assert "line nudge u#" in dry.getvalue() and user.user_id not in dry.getvalue()  # said, not sent
    env.settle()
    assert nudges(env) == []
    summary = remind(env, redis_url, "2026-12-08T09:00")
    assert "line nudge" in summary
    [push] = nudges(env)
    assert push.json["to"] == user.user_id
    assert push.json["customAggregationUnits"] == ["nudge_q4"]
    assert push.headers.get("x-line-retry-key") == job_id(keys.nudge_member(
        Subject("line", user.user_id), 1, at("2026-12-07T03:00")))
    friendly, question = push.json["messages"]
    assert friendly["text"] == script.text("nudge", number=4)
    assert "Q4" in question["text"] or "4" in question["text"]
    assert any(d.startswith("a:1:3:") for d in last_quick_reply_data([question]))  # Q4's own buttons
    assert "queued 0" in remind(env, redis_url, "2026-12-08T09:05")  # never twice
    assert len(nudges(env)) == 1

    env.clock.t = at("2026-12-08T10:00")
    user.tap(answer_button(env, user, "A"))  # answers Q4 from the nudge
    env.settle()
    last = env.fake.delivered(user.user_id)[-1]
    assert any(d.startswith("a:1:4:") for d in last_quick_reply_data([last]))  # Q5 follows
    funnel = Analytics(env.r).funnel()
    row = {q["q"]: (q["nudged"], q["resumed"]) for q in funnel["questions"]}
    assert row[4] == (1, 1) and all(v == (0, 0) for q, v in row.items() if q != 4)
    assert funnel["recovered"] == 0
    for letter in "BBBBBA":
        user.tap(answer_button(env, user, letter))
        env.settle()
    funnel = Analytics(env.r).funnel()
    assert funnel["finished"] == 1 and funnel["recovered"] == 1
    assert [(q["nudged"], q["resumed"]) for q in funnel["questions"]][3] == (1, 1)
    assert "queued 0" in remind(env, redis_url, "2026-12-09T12:00")  # finished: nothing more
    assert len(nudges(env)) == 1


def test_a_nudge_left_unanswered_is_nudged_not_resumed(nudge_line: LineEnv, redis_url: str) -> None:
    env, user = nudge_line, nudge_line.user()
    stop_at_q4(env, user)
    remind(env, redis_url, "2026-12-08T09:00")
    assert len(nudges(env)) == 1
    funnel = Analytics(env.r).funnel()
    assert funnel["questions"][3]["nudged"] == 1 and funnel["questions"][3]["resumed"] == 0
    assert funnel["recovered"] == 0


def test_a_clock_dying_after_its_claim_or_after_queueing_sends_once(nudge_line: LineEnv, redis_url: str) -> None:
    env = nudge_line
    claimed_only, queued_only = env.user(), env.user()
    stop_at_q4(env, claimed_only)
    stop_at_q4(env, queued_only)
    due_at = at("2026-12-08T09:00")
    schedule = NudgeSchedule(env.r)
    claimed = {d.subject.user_id: d for d in schedule.claim(due_at)}  # a clock claims both ...
    assert set(claimed) == {claimed_only.user_id, queued_only.user_id}
    due = claimed[queued_only.user_id]  # ... queues the second's push, and dies before acknowledging either
    job = Job.new("line", due.subject.user_id, due.subject.tag_name, [Notice("nudge", 4), Question(1, 3)], due_at,
                  job_id=job_id(due.member), state=LineState(via="push", unit="nudge_q4"))
    assert Outbox(env.r, [], clock=env.clock).put_once(due.ledger_key, job, ttl=3600, wake=False)
    assert "queued 0" in remind(env, redis_url, "2026-12-08T09:00:30")  # inside the lease: a second clock waits
    remind(env, redis_url, "2026-12-08T09:01:01")  # the lease is over: claimed again
    remind(env, redis_url, "2026-12-08T09:03")
    env.clock.t = due_at + 3600  # the first clock's job, found by the worker's recovery
    env.settle()
    sent = sorted(p.json["to"] for p in nudges(env))
    assert sent == sorted([claimed_only.user_id, queued_only.user_id])  # one each
    assert Analytics(env.r).funnel()["questions"][3]["nudged"] == 2


def test_no_nudge_after_stop_unfollow_or_expiry(nudge_line: LineEnv, redis_url: str) -> None:
    env = nudge_line
    stopped, gone, late = env.user(), env.user(), env.user()
    for user in (stopped, gone, late):
        stop_at_q4(env, user)
    stopped.say("停止")  # the stop word mid-diagnosis: the question stays, no push follows
    env.settle()
    assert env.fake.delivered(stopped.user_id)[-2]["text"] == env.svc.script.text("stopped_midway")
    gone.send(gone.event("unfollow", reply=False))
    env.settle()
    out = remind(env, redis_url, "2026-12-14T10:00")  # after the 7-day expiry: too late for everyone
    assert nudges(env) == []
    assert "expired" in out and "停止" in out and "moved on" in out
    assert env.r.zcard(keys.NUDGE_DUE) == 0  # nothing left to send later


def test_a_budget_of_one_holds_the_second_nudge_until_the_next_month(
        nudge_line: LineEnv, redis_url: str) -> None:
    env = nudge_line
    first, second = env.user(), env.user()
    env.clock.t = at("2026-12-30T10:00")
    stop_at_q4(env, first)
    stop_at_q4(env, second)
    out = remind(env, redis_url, "2026-12-31T10:00", push_budget_month=1)
    assert "held: over this month's push budget" in out
    [push] = nudges(env)
    held = second if push.json["to"] == first.user_id else first
    assert "queued 0" in remind(env, redis_url, "2026-12-31T18:00", push_budget_month=1)  # still held
    assert "queued 0" in remind(env, redis_url, "2027-01-01T00:00", push_budget_month=1)  # a new month, at night
    assert "line nudge" in remind(env, redis_url, "2027-01-01T09:00", push_budget_month=1)
    later = nudges(env)
    assert [p.json["to"] for p in later] == [push.json["to"], held.user_id]
    budget = PushBudget(env.r, 1)
    december, january = budget.usage(at("2026-12-31T12:00")), budget.usage(at("2027-01-01T12:00"))
    assert (december.used, december.by_kind, december.held) == (1, {"nudge": 1}, {"nudge": 1})
    assert (january.used, january.by_kind) == (1, {"nudge": 1})


def test_a_held_nudge_no_longer_relevant_is_dropped_with_a_reason(nudge_line: LineEnv, redis_url: str) -> None:
    env = nudge_line
    first, second = env.user(), env.user()
    env.clock.t = at("2026-12-30T10:00")
    stop_at_q4(env, first)
    stop_at_q4(env, second)
    remind(env, redis_url, "2026-12-31T10:00", push_budget_month=1)
    [push] = nudges(env)
    held = second if push.json["to"] == first.user_id else first
    env.clock.t = at("2026-12-31T11:00")
    for letter in "AAAAAAA":  # finished by themselves before the month opened
        held.tap(answer_button(env, held, letter))
        env.settle()
    out = remind(env, redis_url, "2027-01-01T11:00", push_budget_month=1)
    assert "moved on" in out
    assert len(nudges(env)) == 1
    assert PushBudget(env.r, 1).usage(at("2027-01-01T11:00")).dropped == {"nudge": 1}
    assert env.r.zcard(keys.NUDGE_DUE) == 0 and env.r.hlen(keys.NUDGE_HELD) == 0


def test_erasing_ones_data_takes_the_diagnosis_off_the_schedule(nudge_line: LineEnv, redis_url: str) -> None:
    env, user = nudge_line, nudge_line.user()
    stop_at_q4(env, user)
    assert env.r.zcard(keys.NUDGE_DUE) == 1
    user.say("データを削除")
    env.settle()
    user.tap("e:1")
    env.settle()
    assert env.r.zcard(keys.NUDGE_DUE) == 0
    remind(env, redis_url, "2026-12-08T09:00")
    assert nudges(env) == []


def test_lines_quota_used_up_holds_the_nudge_too(nudge_line: LineEnv, redis_url: str) -> None:
    env, user = nudge_line, nudge_line.user()
    env.clock.t = at("2026-12-30T10:00")
    stop_at_q4(env, user)
    env.fake.quota = env.fake._usage  # nothing left of the month's messages (no budget of our own)
    out = remind(env, redis_url, "2026-12-31T10:00")
    assert "held: LINE's message quota is used up" in out
    assert nudges(env) == []
    env.fake.quota = None  # a new month: no limit
    remind(env, redis_url, "2027-01-01T09:00")
    assert [p.json["to"] for p in nudges(env)] == [user.user_id]
