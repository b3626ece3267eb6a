"""Replies that are never lost and never doubled: the one reply policy, failures, crashes, Redis outages.

Crashes are injected through the worker's documented fault hook (bot.worker.Faults): raising
Crash abandons an attempt exactly where a dying process would, and the claim runs out after the lease.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import redis

from bot.app import build_services, create_app
from bot.worker import Crash, NoFaults, Outcome, WorkerThread
from conversations import jobs, keys
from conversations.jobs import Job
from tests.bot.line.conftest import LineEnv, line_config, start_worker
from tests.bot.line.helpers import LineUser
from tests.conftest import FakeClock
from tests.fakes.line_api import PUSH, REPLY, FakeLineApi
from tests.redis_server import RedisServer

LEASE = 30


def queued(env: LineEnv) -> list[Job]:
    """Every job still in a mailbox."""
    out = []
    for key in env.r.scan_iter(match="crmbot:{*}:out"):
        out += [Job.from_json(v) for v in env.r.hvals(key)]
    return out


def start_diagnosis(env: LineEnv) -> LineUser:
    user = env.user()
    user.say("診断")
    env.settle()
    return user


class CrashAt(NoFaults):
    """Crash once at one point of one attempt."""

    def __init__(self, point: str) -> None:
        self.point = point
        self.fired = False

    def _maybe(self, point: str) -> None:
        if point == self.point and not self.fired:
            self.fired = True
            raise Crash(point)

    def before_deliver(self, job: Job) -> None:
        self._maybe("before")

    def after_checkpoint(self, job: Job) -> None:
        self._maybe("checkpoint")

    def after_deliver(self, job: Job, outcome: Outcome) -> None:
        self._maybe("after")


@pytest.fixture
def crashing(line_env: LineEnv) -> Iterator[tuple[WorkerThread, CrashAt]]:
    """A second worker, with a fault hook; the caller sets its crash point."""
    faults = CrashAt("")
    worker = start_worker(line_env.svc.config, line_env.svc, line_env.clock, faults)
    yield worker, faults
    worker.close()


def test_reply_500_retries_the_reply_and_delivers_once(line_env: LineEnv) -> None:
    line_env.fake.fail(REPLY, 500)
    user = start_diagnosis(line_env)
    assert line_env.fake.delivered(user.user_id) == []
    assert line_env.settle() == 0  # its retry's time has not come
    line_env.clock.advance(2)  # first backoff
    assert line_env.settle() == 1
    assert [(r.path, r.status) for r in line_env.fake.recorded()] == [(REPLY, 500), (REPLY, 200)]
    assert [m["text"][:5] for m in line_env.fake.delivered(user.user_id)] == ["Q1/10"]
    assert queued(line_env) == []


def test_reply_that_landed_but_whose_answer_was_lost_is_not_sent_twice(line_env: LineEnv) -> None:
    """A 500 after LINE accepted the reply: the retry replies again, LINE refuses the used token,
    which proves the first one got through."""
    line_env.fake.fail(REPLY, 500, after_serving=True)
    user = start_diagnosis(line_env)
    line_env.clock.advance(2)
    line_env.settle()
    assert [(r.path, r.status) for r in line_env.fake.recorded()] == [(REPLY, 500), (REPLY, 400)]
    assert len(line_env.fake.delivered(user.user_id)) == 1
    assert queued(line_env) == []


def test_a_reply_that_timed_out_at_the_window_s_end_follows_the_unknown_policy(r, redis_url: str,
                                                                             fake_line: FakeLineApi, clock) -> None:
    """A late worker's reply waits what is left of the window (10 s here: the 1 s answer is had). With
    half a second left, LINE answering after 1 s lands after we gave up; the retry comes after the
    window, with the outcome unknown: pushed once more, led by the "in case" note (the default policy)."""
    config = line_config(redis_url, fake_line, api_timeout=0.2)
    svc = build_services(config, clock=clock)
    http = create_app(services=svc).test_client()
    worker = start_worker(config, svc, clock)
    try:
        user = LineUser(http, fake_line, clock)
        fake_line.delay = 1.0
        user.send(user.text_event("診断"))
        clock.advance(40)
        worker.drain()
        assert [(x.path, x.status) for x in fake_line.recorded()] == [(REPLY, 200)]
        fake_line.reset()
        user = LineUser(http, fake_line, clock)
        user.send(user.text_event("診断"))
        clock.advance(49.5)
        worker.drain()
        fake_line.wait_delivered(user.user_id, 1)  # it landed after the client gave up
        fake_line.delay = 0.0
        clock.advance(2)  # the retry's backoff: past the window
        worker.drain()
        assert [(x.path, x.status) for x in fake_line.recorded()] == [(REPLY, 200), (PUSH, 200)]
        first, note, again = fake_line.delivered(user.user_id)
        assert note["text"] == svc.script.text("resent_note") and again == first
    finally:
        fake_line.delay = 0.0
        worker.close()


def test_reply_token_refused_at_first_falls_back_to_push_at_once(line_env: LineEnv) -> None:
    user = line_env.user()
    ev = user.text_event("診断")
    line_env.fake.expire_reply_token(ev["replyToken"])
    user.send(ev)
    line_env.settle()
    assert [(r.path, r.status) for r in line_env.fake.recorded()] == [(REPLY, 400), (PUSH, 200)]
    [push] = line_env.fake.recorded(PUSH)
    assert push.headers.get("x-line-retry-key")
    assert len(line_env.fake.delivered(user.user_id)) == 1
    assert queued(line_env) == []


def test_redelivered_event_goes_by_push(line_env: LineEnv) -> None:
    user = line_env.user()
    user.send(user.event("follow", redelivery=True, follow={"isUnblocked": False}))
    line_env.settle()
    assert [r.path for r in line_env.fake.recorded() if r.method == "POST"] == [PUSH]  # (then the profile, GET)


def test_push_retry_is_never_a_duplicate(line_env: LineEnv) -> None:
    """LINE accepted the push but the answer was lost: the retry carries the same key, LINE says 409."""
    user = line_env.user()
    ev = user.text_event("診断")
    line_env.fake.expire_reply_token(ev["replyToken"])
    line_env.fake.fail(PUSH, 502, after_serving=True)
    user.send(ev)
    line_env.settle()
    line_env.clock.advance(2)
    line_env.settle()
    pushes = line_env.fake.recorded(PUSH)
    assert [p.status for p in pushes] == [502, 409]
    assert len({p.headers["x-line-retry-key"] for p in pushes}) == 1
    assert len(line_env.fake.delivered(user.user_id)) == 1


def test_429_retry_after_is_honoured(line_env: LineEnv) -> None:
    line_env.fake.fail(REPLY, 429, headers={"Retry-After": "7"})
    user = start_diagnosis(line_env)
    line_env.clock.advance(6)
    assert line_env.settle() == 0
    line_env.clock.advance(1)
    assert line_env.settle() == 1
    assert len(line_env.fake.delivered(user.user_id)) == 1


@pytest.mark.parametrize("value", ["-5", "inf", "nan", "soon", "1e400"])
def test_a_senseless_retry_after_is_not_trusted(line_env: LineEnv, value: str) -> None:
    line_env.fake.fail(REPLY, 429, headers={"Retry-After": value})
    user = start_diagnosis(line_env)
    line_env.clock.advance(2)  # the worker's own first backoff applies
    assert line_env.settle() == 1
    assert len(line_env.fake.delivered(user.user_id)) == 1


def test_a_huge_retry_after_is_capped(line_env: LineEnv) -> None:
    line_env.fake.fail(REPLY, 429, headers={"Retry-After": "86400"})
    line_env.fake.fail(PUSH, 429, headers={"Retry-After": "86400"})
    user = start_diagnosis(line_env)
    line_env.clock.advance(300)  # the cap: five minutes, not a day
    line_env.settle()
    assert len(line_env.fake.delivered(user.user_id)) == 0  # the push was refused too (window passed)
    line_env.clock.advance(300)
    line_env.settle()
    assert len(line_env.fake.delivered(user.user_id)) == 1


def test_message_that_keeps_failing_is_parked_not_retried_forever(line_env: LineEnv) -> None:
    line_env.fake.fail(REPLY, 500, times=100)
    line_env.fake.fail(PUSH, 500, times=100)
    user = start_diagnosis(line_env)
    for _ in range(12):
        line_env.clock.advance(301)
        line_env.settle()
    assert len(line_env.fake.recorded()) == line_env.svc.config.outbox_max_attempts
    [parked] = line_env.svc.outbox.parked()
    assert parked.attempts == line_env.svc.config.outbox_max_attempts and "500" in parked.reason
    line_env.fake.reset()
    assert line_env.svc.outbox.requeue(parked.id)
    line_env.settle()
    # the replies' outcome was unknown (5xx) when the window closed: pushed with the "in case" note
    note, message = line_env.fake.delivered(user.user_id)
    assert note["text"] == line_env.svc.script.text("resent_note") and message["text"].startswith("Q1/10")
    assert line_env.svc.outbox.parked() == [] and queued(line_env) == []


def test_permanent_error_parks_at_once(line_env: LineEnv) -> None:
    line_env.fake.fail(REPLY, 403)
    start_diagnosis(line_env)
    [parked] = line_env.svc.outbox.parked()
    assert "403" in parked.reason and parked.attempts == 1
    assert not line_env.svc.outbox.requeue("no-such-id")


def test_worker_dies_before_sending_recovery_replies(line_env: LineEnv, crashing) -> None:
    worker, faults = crashing
    faults.point = "before"
    user = line_env.user()
    user.say("診断")
    worker.drain()
    assert faults.fired and line_env.fake.recorded() == []
    line_env.clock.advance(LEASE + 1)  # the claim runs out; within the reply window
    line_env.settle()
    assert [(r.path, r.status) for r in line_env.fake.recorded()] == [(REPLY, 200)]
    assert len(line_env.fake.delivered(user.user_id)) == 1


def test_worker_dies_after_line_accepted_the_reply(line_env: LineEnv, crashing) -> None:
    """The recovery replies again; LINE refuses the used token: delivered, once."""
    worker, faults = crashing
    faults.point = "after"
    user = line_env.user()
    user.say("診断")
    worker.drain()
    assert len(line_env.fake.delivered(user.user_id)) == 1 and len(queued(line_env)) == 1
    line_env.clock.advance(LEASE + 1)
    line_env.settle()
    assert [(r.path, r.status) for r in line_env.fake.recorded()] == [(REPLY, 200), (REPLY, 400)]
    assert len(line_env.fake.delivered(user.user_id)) == 1
    assert queued(line_env) == []


def test_recovery_after_the_reply_window_pushes(line_env: LineEnv, crashing) -> None:
    worker, faults = crashing
    faults.point = "before"
    user = line_env.user()
    ev = user.text_event("診断")
    user.send(ev)
    worker.drain()
    line_env.clock.advance(120)
    line_env.fake.expire_reply_token(ev["replyToken"])  # LINE's own expiry
    line_env.settle()
    assert [(r.path, r.status) for r in line_env.fake.recorded()] == [(PUSH, 200)]
    # the claim ran out unrecorded (outcome unknown): pushed with the "in case" note
    note, message = line_env.fake.delivered(user.user_id)
    assert note["text"] == line_env.svc.script.text("resent_note") and message["text"].startswith("Q1/10")


def test_the_reply_window_counts_from_our_receipt_not_the_event_timestamp(line_env: LineEnv, crashing) -> None:
    """An event stamped an hour ahead of our clock: a recovery two minutes after we received it must
    push (its token has expired), not read LINE's refusal as an earlier delivery."""
    worker, faults = crashing
    faults.point = "before"
    user = line_env.user()
    ev = user.text_event("診断")
    ev["timestamp"] = int((line_env.clock() + 3600) * 1000)
    user.send(ev)
    worker.drain()
    line_env.clock.advance(120)
    line_env.fake.expire_reply_token(ev["replyToken"])
    line_env.settle()
    assert [(r.path, r.status) for r in line_env.fake.recorded()] == [(PUSH, 200)]
    # the claim ran out unrecorded (outcome unknown): pushed with the "in case" note
    note, message = line_env.fake.delivered(user.user_id)
    assert note["text"] == line_env.svc.script.text("resent_note") and message["text"].startswith("Q1/10")


def test_worker_dies_after_line_accepted_a_push(line_env: LineEnv, crashing) -> None:
    """The recovery pushes again with the same X-Line-Retry-Key; LINE answers 409: once."""
    worker, faults = crashing
    faults.point = "after"
    user = line_env.user()
    ev = user.text_event("診断")
    line_env.fake.expire_reply_token(ev["replyToken"])  # the reply is refused: it goes by push
    user.send(ev)
    worker.drain()
    assert len(line_env.fake.delivered(user.user_id)) == 1
    line_env.clock.advance(LEASE + 1)
    line_env.settle()
    pushes = line_env.fake.recorded(PUSH)
    assert [p.status for p in pushes] == [200, 409]
    assert pushes[0].headers["x-line-retry-key"] == pushes[1].headers["x-line-retry-key"]
    assert len(line_env.fake.delivered(user.user_id)) == 1
    assert queued(line_env) == []


def test_worker_dies_after_the_reply_was_refused_before_pushing(line_env: LineEnv, crashing) -> None:
    """The switch to push is checkpointed before the push: the recovery pushes (a refused token must
    not be read as "an earlier attempt used it")."""
    worker, faults = crashing
    faults.point = "checkpoint"
    user = line_env.user()
    ev = user.text_event("診断")
    line_env.fake.expire_reply_token(ev["replyToken"])
    user.send(ev)
    worker.drain()
    assert faults.fired and line_env.fake.delivered(user.user_id) == []
    line_env.clock.advance(LEASE + 1)
    line_env.settle()
    assert [r.path for r in line_env.fake.recorded()] == [REPLY, PUSH]
    assert len(line_env.fake.delivered(user.user_id)) == 1


def test_two_workers_never_send_the_same_job(line_env: LineEnv, crashing) -> None:
    """Both find the same jobs (hints and sweeps); the claim lets one send each."""
    worker, _ = crashing
    users = [line_env.user() for _ in range(20)]
    for u in users:
        u.say("診断")
    for ref in [j.ref for j in queued(line_env)]:  # extra hints: every job found twice
        line_env.r.lpush(jobs.ready(jobs.shard_of(jobs.parse_ref(ref)[0])), ref)
    a = worker.call(worker.worker.drain(), 30)
    b = line_env.settle()
    line_env.clock.advance(LEASE + 1)
    line_env.settle()
    assert a + b == 20
    assert all(len(line_env.fake.delivered(u.user_id)) == 1 for u in users)


def test_a_hint_lost_with_the_web_process_is_recovered_by_the_sweep(line_env: LineEnv) -> None:
    """The web process died after its commit, before its wake-up hint: the recovery mark finds it."""
    user = line_env.user()
    user.say("診断")
    for shard in range(jobs.QUEUE_SHARDS):
        line_env.r.delete(jobs.ready(shard))
    assert line_env.settle() == 0
    line_env.clock.advance(LEASE + 1)
    assert line_env.settle() == 1
    assert len(line_env.fake.delivered(user.user_id)) == 1


def test_redis_down_then_back_nothing_lost_nothing_doubled(fake_line: FakeLineApi, tmp_path) -> None:
    clock = FakeClock()
    server = RedisServer(persist=True, data_dir=str(tmp_path)).start()
    worker: WorkerThread | None = None
    try:
        config = line_config(server.url, fake_line)
        svc = build_services(config, clock=clock)
        app = create_app(services=svc)
        worker = start_worker(config, svc, clock)
        user = LineUser(app.test_client(), fake_line, clock)
        assert app.test_client().get("/healthz").status_code == 200
        user.say("診断")
        worker.drain()
        ev = user.postback_event("a:1:0:B")
        server.kill()
        assert user.post(ev).status_code == 503
        assert app.test_client().get("/healthz").status_code == 503
        server.start()
        redelivered = dict(ev, deliveryContext={"isRedelivery": True})
        assert user.post(redelivered).status_code == 200
        assert user.post(redelivered).status_code == 200  # and once more: still applied once
        worker.drain()
        client = redis.Redis.from_url(server.url)
        conv = json.loads(client.get(keys.conv(keys.Subject("line", user.user_id))))
        assert conv["a"] == "B" and conv["q"] == 1
        got = [m["text"][:5] for m in fake_line.delivered(user.user_id)]
        assert got == ["Q1/10", "Q2/10"]
        client.close()
    finally:
        if worker is not None:
            worker.close()
        server.stop()


def test_healthz_ok_while_redis_answers(line_env: LineEnv) -> None:
    assert line_env.http.get("/healthz").status_code == 200
