"""Replies that are never lost and never doubled: failures, fallbacks, crashes, Redis outages."""

from __future__ import annotations

import json

import pytest
import redis

from bot.app import build_services, create_app
from conversations import keys
from tests.bot.line.conftest import LineEnv, line_config
from tests.bot.line.helpers import LineUser
from tests.conftest import FakeClock
from tests.fakes.line_api import PUSH, REPLY, FakeLineApi
from tests.redis_server import RedisServer


def pending(env: LineEnv) -> int:
    return env.r.zcard(keys.OUTBOX_DUE)


def start_diagnosis(env: LineEnv) -> LineUser:
    user = env.user()
    user.say("診断")
    env.settle()
    return user


def test_line_500_then_success_delivers_once_by_push_with_retry_key(line_env: LineEnv) -> None:
    line_env.fake.fail(REPLY, 500)
    user = start_diagnosis(line_env)
    assert line_env.fake.delivered(user.user_id) == []
    assert pending(line_env) == 1
    line_env.svc.outbox.sweep()  # not due yet: nothing happens
    assert [r.path for r in line_env.fake.recorded()] == [REPLY]
    line_env.clock.advance(2)  # first backoff
    assert line_env.svc.outbox.sweep() == 1
    [push] = line_env.fake.recorded(PUSH)
    assert push.status == 200 and push.headers.get("x-line-retry-key")
    assert [m["text"][:5] for m in line_env.fake.delivered(user.user_id)] == ["Q1/10"]
    assert pending(line_env) == 0


def test_reply_token_refused_falls_back_to_push_at_once(line_env: LineEnv) -> None:
    user = line_env.user()
    ev = user.text_event("診断")
    line_env.fake.expire_reply_token(ev["replyToken"])
    user.send(ev)
    line_env.settle()
    assert [(r.path, r.status) for r in line_env.fake.recorded()] == [(REPLY, 400), (PUSH, 200)]
    assert len(line_env.fake.delivered(user.user_id)) == 1
    assert pending(line_env) == 0


def test_redelivered_event_goes_by_push(line_env: LineEnv) -> None:
    user = line_env.user()
    user.send(user.event("follow", redelivery=True, follow={"isUnblocked": False}))
    line_env.settle()
    assert [r.path for r in line_env.fake.recorded()] == [PUSH]


def test_push_retry_is_never_a_duplicate(line_env: LineEnv) -> None:
    """LINE accepted the push but the answer was lost (a 500 after acceptance looks the same)."""
    user = line_env.user()
    ev = user.text_event("診断")
    line_env.fake.expire_reply_token(ev["replyToken"])
    line_env.fake.fail(PUSH, 502)
    user.send(ev)
    line_env.settle()
    line_env.clock.advance(2)
    line_env.svc.outbox.sweep()
    line_env.clock.advance(60)
    line_env.svc.outbox.sweep()
    pushes = line_env.fake.recorded(PUSH)
    assert [p.status for p in pushes] == [502, 200]
    assert len({p.headers["x-line-retry-key"] for p in pushes}) == 1
    assert len(line_env.fake.delivered(user.user_id)) == 1


def test_429_retry_after_is_honoured(line_env: LineEnv) -> None:
    line_env.fake.fail(REPLY, 429, headers={"Retry-After": "30"})
    user = start_diagnosis(line_env)
    line_env.clock.advance(29)
    assert line_env.svc.outbox.sweep() == 0
    line_env.clock.advance(2)
    assert line_env.svc.outbox.sweep() == 1
    assert len(line_env.fake.delivered(user.user_id)) == 1


def test_message_that_keeps_failing_is_parked_not_retried_forever(line_env: LineEnv) -> None:
    line_env.fake.fail(REPLY, 500)
    line_env.fake.fail(PUSH, 500, times=100)
    user = start_diagnosis(line_env)
    for _ in range(20):
        line_env.clock.advance(600)
        line_env.svc.outbox.sweep()
    attempts = len(line_env.fake.recorded())
    assert attempts == line_env.svc.config.outbox_max_attempts
    [parked] = line_env.svc.outbox.parked()
    assert parked["attempts"] == attempts and "500" in parked["reason"]
    assert user.user_id not in json.dumps(parked)  # the operator view shows a hashed ID
    assert pending(line_env) == 0
    # the operator fixes the cause and puts it back in line
    line_env.fake.reset()
    assert line_env.svc.outbox.requeue(parked["id"])
    line_env.svc.outbox.sweep()
    assert len(line_env.fake.delivered(user.user_id)) == 1
    assert line_env.svc.outbox.parked() == []


def test_permanent_error_parks_at_once(line_env: LineEnv) -> None:
    line_env.fake.fail(REPLY, 403, body={"message": "not allowed"})
    start_diagnosis(line_env)
    assert len(line_env.svc.outbox.parked()) == 1
    assert len(line_env.fake.recorded()) == 1


def test_process_dies_between_commit_and_send(line_env: LineEnv, redis_url: str, fake_line: FakeLineApi) -> None:
    line_env.svc.outbox.submit = lambda write: None  # the process dies right after the commit
    user = start_diagnosis(line_env)
    assert fake_line.recorded() == [] and pending(line_env) == 1
    # a new process (the worker) comes up; the lease runs out
    revived = build_services(line_config(redis_url, fake_line), clock=line_env.clock)
    assert revived.outbox.sweep() == 0
    line_env.clock.advance(line_env.svc.config.outbox_lease + 1)
    assert revived.outbox.sweep() == 1
    assert len(fake_line.delivered(user.user_id)) == 1
    assert pending(line_env) == 0


def test_sender_dies_after_line_accepted_the_reply(line_env: LineEnv, redis_url: str, fake_line: FakeLineApi) -> None:
    def die(subject, message_id):  # LINE accepted the reply; the process dies before the ack
        raise redis.ConnectionError("process died")

    line_env.svc.outbox._ack = die
    user = start_diagnosis(line_env)
    assert len(fake_line.delivered(user.user_id)) == 1 and pending(line_env) == 1
    revived = build_services(line_config(redis_url, fake_line), clock=line_env.clock)
    line_env.clock.advance(line_env.svc.config.outbox_lease + 1)
    assert revived.outbox.sweep() == 1
    assert len(fake_line.delivered(user.user_id)) == 1  # the used token told us: already delivered
    assert pending(line_env) == 0


def test_recovery_after_the_reply_window_uses_push(line_env: LineEnv, redis_url: str, fake_line: FakeLineApi) -> None:
    line_env.svc.outbox.submit = lambda write: None
    user = start_diagnosis(line_env)
    line_env.clock.advance(600)  # nobody was up for ten minutes: the reply token is long gone
    revived = build_services(line_config(redis_url, fake_line), clock=line_env.clock)
    revived.outbox.sweep()
    assert [r.path for r in fake_line.recorded()] == [PUSH]
    assert len(fake_line.delivered(user.user_id)) == 1


def test_redis_down_then_back_nothing_lost_nothing_doubled(fake_line: FakeLineApi, tmp_path) -> None:
    clock = FakeClock()
    server = RedisServer(persist=True, data_dir=str(tmp_path)).start()
    try:
        svc = build_services(line_config(server.url, fake_line), clock=clock)
        app = create_app(services=svc)
        user = LineUser(app.test_client(), fake_line, clock)
        assert app.test_client().get("/healthz").status_code == 200
        user.say("診断")
        svc.outbox.drain()
        ev = user.postback_event("a:1:0:B")
        server.kill()
        assert user.post(ev).status_code == 503
        assert app.test_client().get("/healthz").status_code == 503
        server.start()
        redelivered = dict(ev, deliveryContext={"isRedelivery": True})
        assert user.post(redelivered).status_code == 200
        assert user.post(redelivered).status_code == 200  # and once more: still applied once
        svc.outbox.drain()
        client = redis.Redis.from_url(server.url)
        conv = json.loads(client.get(keys.conv(keys.Subject("line", user.user_id))))
        assert conv["a"] == "B" and conv["q"] == 1
        got = [m["text"][:5] for m in fake_line.delivered(user.user_id)]
        assert got == ["Q1/10", "Q2/10"]
        svc.outbox.close()
    finally:
        server.stop()


@pytest.mark.parametrize("path", ["/healthz"])
def test_healthz_ok_while_redis_answers(line_env: LineEnv, path: str) -> None:
    assert line_env.http.get(path).status_code == 200


def test_sender_dies_after_line_accepted_a_push(line_env: LineEnv, redis_url: str, fake_line: FakeLineApi) -> None:
    """Killed between the LINE API's acceptance of a push and the outbox acknowledgement: the
    recovery pushes again with the same X-Line-Retry-Key, LINE answers 409, the user gets it once."""
    def die(subject, message_id):
        raise redis.ConnectionError("process died")

    line_env.svc.outbox._ack = die
    user = line_env.user()
    ev = user.text_event("診断")
    fake_line.expire_reply_token(ev["replyToken"])  # the reply is refused: the message goes by push
    user.send(ev)
    line_env.settle()
    assert len(fake_line.delivered(user.user_id)) == 1 and pending(line_env) == 1
    revived = build_services(line_config(redis_url, fake_line), clock=line_env.clock)
    line_env.clock.advance(line_env.svc.config.outbox_lease + 1)
    assert revived.outbox.sweep() == 1
    pushes = fake_line.recorded(PUSH)
    assert [p.status for p in pushes] == [200, 409]
    assert pushes[0].headers["x-line-retry-key"] == pushes[1].headers["x-line-retry-key"]
    assert len(fake_line.delivered(user.user_id)) == 1
    assert pending(line_env) == 0


def test_sender_dies_after_the_reply_was_refused_before_pushing(
    line_env: LineEnv, redis_url: str, fake_line: FakeLineApi
) -> None:
    """The token was refused and the process died before its push: the recorded switch makes the
    recovery push (a refused token must not be read as "an earlier attempt used it")."""
    transport = line_env.svc.outbox.transports["line"]
    real = transport.deliver
    calls = []

    def deliver(entry, **kw):
        calls.append(entry["via"])
        if len(calls) == 2:
            raise SystemExit("process died before pushing")
        return real(entry, **kw)

    transport.deliver = deliver
    user = line_env.user()
    ev = user.text_event("診断")
    fake_line.expire_reply_token(ev["replyToken"])
    user.send(ev)
    with pytest.raises(SystemExit):
        line_env.settle()
    assert calls == ["reply", "push"] and fake_line.delivered(user.user_id) == []
    revived = build_services(line_config(redis_url, fake_line), clock=line_env.clock)
    line_env.clock.advance(line_env.svc.config.outbox_lease + 1)
    assert revived.outbox.sweep() == 1
    assert [r.path for r in fake_line.recorded()] == [REPLY, PUSH]
    assert len(fake_line.delivered(user.user_id)) == 1


def test_a_send_that_waited_past_half_its_lease_is_left_to_the_worker(
    line_env: LineEnv, redis_url: str, fake_line: FakeLineApi
) -> None:
    """A backlog in this process's send queue must not race the worker that took the message over."""
    import time as real_time

    outbox = line_env.svc.outbox
    submitted = []
    outbox.submit = lambda write: submitted.append(write)  # hold the first attempt back
    user = start_diagnosis(line_env)
    [write] = submitted
    queued_long_ago = real_time.monotonic() - outbox.lease  # as if it sat in the queue a whole lease
    assert outbox._first_attempt(write, queued_long_ago) is None
    assert fake_line.recorded() == []
    line_env.clock.advance(outbox.lease + 1)
    assert build_services(line_config(redis_url, fake_line), clock=line_env.clock).outbox.sweep() == 1
    assert len(fake_line.delivered(user.user_id)) == 1
