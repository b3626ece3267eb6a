"""The reply window without doubles (bot.line.transport): a reply in flight is never abandoned while its
token may be valid, and a reply whose outcome is still unknown when the window closes follows the
policy of CRMBOT_REPLY_UNKNOWN (push once more, marked as such; or park), counted on the delivery page."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from bot.app import build_services, create_app
from bot.console.quota import reply_unknown_counts
from bot.worker import WorkerThread
from conversations import keys
from tests.bot.console.conftest import make_line_console
from tests.bot.line.conftest import LineEnv, line_config, start_worker
from tests.bot.line.helpers import LineUser
from tests.bot.line.test_delivery import CrashAt, queued
from tests.fakes.line_api import PUSH, REPLY, FakeLineApi

NOTE_JA = "前のメッセージが届いていない場合に備えて、もう一度お送りします。"


def test_a_slow_reply_is_waited_for_until_the_window_closes(r, redis_url: str, fake_line: FakeLineApi,
                                                            clock) -> None:
    """LINE answers after the API timeout (0.2 s) but inside the reply window: the one request we sent
    is waited for, so there is no retry, no second request and no push."""
    config = line_config(redis_url, fake_line, api_timeout=0.2)
    svc = build_services(config, clock=clock)
    http = create_app(services=svc).test_client()
    worker = start_worker(config, svc, clock)
    try:
        user = LineUser(http, fake_line, clock)
        fake_line.delay = 0.6
        user.say("診断")
        assert worker.drain() == 1
        assert [(x.path, x.status) for x in fake_line.recorded()] == [(REPLY, 200)]
        assert len(fake_line.delivered(user.user_id)) == 1
        assert queued_jobs(r) == 0
    finally:
        fake_line.delay = 0.0
        worker.close()


@pytest.fixture
def crashing(line_env: LineEnv) -> Iterator[tuple[WorkerThread, CrashAt]]:
    """A second worker, with a fault hook; the caller sets its crash point."""
    faults = CrashAt("")
    worker = start_worker(line_env.svc.config, line_env.svc, line_env.clock, faults)
    yield worker, faults
    worker.close()


def queued_jobs(r) -> int:
    return sum(r.hlen(k) for k in r.scan_iter(match="crmbot:{*}:out"))


def _reply_landed_then_worker_died(env: LineEnv, faults: CrashAt, worker) -> tuple[LineUser, dict]:
    """A reply LINE accepted, with the worker dead before it could record it; back after the window."""
    faults.point = "after"
    user = env.user()
    ev = user.text_event("診断")
    user.send(ev)
    worker.drain()
    assert [(x.path, x.status) for x in env.fake.recorded()] == [(REPLY, 200)]
    env.clock.advance(120)  # the recovery comes after the window
    env.fake.expire_reply_token(ev["replyToken"])
    return user, ev


def test_policy_push_sends_it_once_more_marked_and_counts_it(line_env: LineEnv, crashing) -> None:
    worker, faults = crashing
    user, _ = _reply_landed_then_worker_died(line_env, faults, worker)
    line_env.settle()
    assert [(x.path, x.status) for x in line_env.fake.recorded()] == [(REPLY, 200), (PUSH, 200)]
    [push] = line_env.fake.recorded(PUSH)
    assert push.headers.get("x-line-retry-key")
    assert push.json["messages"][0] == {"type": "text", "text": NOTE_JA}
    first = line_env.fake.delivered(user.user_id)[0]
    assert push.json["messages"][1]["text"] == first["text"]  # the same message, after the note
    assert reply_unknown_counts(line_env.r, line_env.clock()) == {"pushed": 1, "parked": 0}
    assert queued(line_env) == []


def test_policy_push_counts_once_and_pushes_once_across_a_second_crash(line_env: LineEnv, crashing) -> None:
    """The recovery of the recovery: its push was accepted, the worker died again; LINE's retry key
    answers 409 to the next push, and the case is counted once."""
    worker, faults = crashing
    _reply_landed_then_worker_died(line_env, faults, worker)
    faults.fired, faults.point = False, "after"
    worker.drain()  # the crashing worker recovers it: pushes (accepted), dies before recording
    line_env.clock.advance(31)
    line_env.settle()
    assert [(x.path, x.status) for x in line_env.fake.recorded()] == [(REPLY, 200), (PUSH, 200), (PUSH, 409)]
    assert reply_unknown_counts(line_env.r, line_env.clock()) == {"pushed": 1, "parked": 0}
    assert queued(line_env) == []


@pytest.fixture
def parking_env(r, redis_url: str, fake_line: FakeLineApi, clock):
    config = line_config(redis_url, fake_line, reply_unknown="park")
    svc = build_services(config, clock=clock)
    http = create_app(services=svc).test_client()
    crash = CrashAt("")
    crashing = start_worker(config, svc, clock, crash)
    worker = start_worker(config, svc, clock)
    env = LineEnv(svc, http, fake_line, clock, r, worker)
    yield env, crashing, crash
    crashing.close()
    worker.close()


def test_policy_park_never_sends_twice_and_leaves_it_to_the_operator(parking_env) -> None:
    env, worker, faults = parking_env
    user, _ = _reply_landed_then_worker_died(env, faults, worker)
    env.settle()
    assert [(x.path, x.status) for x in env.fake.recorded()] == [(REPLY, 200)]
    assert len(env.fake.delivered(user.user_id)) == 1
    [parked] = env.svc.outbox.parked()
    assert "reply outcome unknown" in parked.reason
    assert reply_unknown_counts(env.r, env.clock()) == {"pushed": 0, "parked": 1}


def test_a_first_attempt_after_the_window_pushes_without_the_note(line_env: LineEnv) -> None:
    """Nothing was ever sent (no worker ran within the window): no doubt, so no note and no count."""
    user = line_env.user()
    ev = user.text_event("診断")
    user.send(ev)
    line_env.clock.advance(120)
    line_env.fake.expire_reply_token(ev["replyToken"])
    line_env.settle()
    assert [(x.path, x.status) for x in line_env.fake.recorded()] == [(PUSH, 200)]
    [push] = line_env.fake.recorded(PUSH)
    assert all(m.get("text") != NOTE_JA for m in push.json["messages"])
    assert reply_unknown_counts(line_env.r, line_env.clock()) == {"pushed": 0, "parked": 0}


def test_the_delivery_page_counts_each_case(r, redis_url: str, clock, tmp_path, fake_line: FakeLineApi) -> None:
    with make_line_console(r, redis_url, clock, tmp_path, fake_line, reply_unknown="park") as lc:
        lc.login()
        faults = CrashAt("after")
        crashing = start_worker(lc.svc.config, lc.svc, clock, faults)
        try:
            user = lc.user()
            ev = user.text_event("診断")
            user.send(ev)
            crashing.drain()
        finally:
            crashing.close()
        clock.advance(120)
        lc.fake.expire_reply_token(ev["replyToken"])
        lc.settle()
        html = lc.http.get("/console/delivery").get_data(as_text=True)
        assert re.search(r'id="unknown-parked">\s*1\s*<', html)
        assert re.search(r'id="unknown-pushed">\s*0\s*<', html)
        assert re.search(r'id="unknown-policy"><code>park</code>', html)
        assert r.zcard(keys.reply_unknown("parked")) == 1
