"""Coexistence with another LINE tool (README, "Coexistence with another LINE tool").

crmbot first (CRMBOT_LINE_FORWARD_URL): every webhook it accepts reaches the other tool's endpoint (a
loopback receiver that verifies LINE's signature, tests/fakes/line_receiver.py) unchanged and exactly
once, from the worker, with retries and parking; crmbot replies only to the events it owns, leaving the
other events' reply tokens unused. crmbot second (CRMBOT_LINE_COEXIST=second): its own events only, by
push, never by reply. Unset: today's behaviour. Real Redis, the fake LINE API, the injected clock.
"""

from __future__ import annotations

import copy
import io
import json
import re
import urllib.request
from collections.abc import Iterator
from contextlib import redirect_stdout
from typing import Any

import pytest
import redis

from bot.app import build_services, create_app
from bot.cli import outbox_cmd
from conversations import jobs, keys
from conversations.analytics import Analytics
from conversations.keys import Subject
from conversations.machine import IDLE
from tests.bot.line.conftest import LineEnv, line_config, start_worker
from tests.bot.line.helpers import DESTINATION, SECRET, TOKEN, LineUser, last_quick_reply_data, sign
from tests.conftest import FakeClock
from tests.fakes.line_api import PUSH, REPLY, FakeLineApi, profile_path
from tests.fakes.line_receiver import LineWebhookReceiver
from tests.fakes.openapi import require_specs, validate_webhook_body
from tests.redis_server import free_port

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@pytest.fixture(scope="module")
def receiver_server() -> Iterator[LineWebhookReceiver]:
    with LineWebhookReceiver(SECRET) as receiver:
        yield receiver


@pytest.fixture
def receiver(receiver_server: LineWebhookReceiver) -> Iterator[LineWebhookReceiver]:
    receiver_server.reset()
    yield receiver_server
    receiver_server.reset()  # a request still held is let go
    receiver_server.assert_contract_ok()


def make_env(r: redis.Redis, redis_url: str, fake: FakeLineApi, clock: FakeClock, **changes: Any) -> LineEnv:
    config = line_config(redis_url, fake, **changes)
    svc = build_services(config, clock=clock)
    return LineEnv(svc, create_app(services=svc).test_client(), fake, clock, r, start_worker(config, svc, clock))


@pytest.fixture
def first(r: redis.Redis, redis_url: str, fake_line: FakeLineApi, clock: FakeClock,
          receiver: LineWebhookReceiver) -> Iterator[LineEnv]:
    env = make_env(r, redis_url, fake_line, clock, line_forward_url=receiver.url, line_coexist="first")
    yield env
    env.worker.close()


@pytest.fixture
def second(r: redis.Redis, redis_url: str, fake_line: FakeLineApi, clock: FakeClock) -> Iterator[LineEnv]:
    env = make_env(r, redis_url, fake_line, clock, line_coexist="second")
    yield env
    env.worker.close()


def post_body(env: LineEnv, events: list[dict[str, Any]], **dumps: Any) -> bytes:
    """A webhook as LINE sends it, serialised as given (``dumps``: json.dumps's options), signed; 200 asserted.
    Returns the exact bytes sent."""
    payload = {"destination": DESTINATION, "events": events}
    require_specs("webhook.yml")
    assert not validate_webhook_body(payload), validate_webhook_body(payload)
    body = json.dumps(payload, **({"ensure_ascii": False} | dumps)).encode()
    res = env.http.post("/line/webhook", data=body,
                        headers={"Content-Type": "application/json; charset=utf-8", "X-Line-Signature": sign(body)})
    assert res.status_code == 200, res.get_data(as_text=True)
    return body


def group_message(user: LineUser, text: str) -> dict[str, Any]:
    """A message in a group chat: crmbot handles one-to-one chats only (no event for it), the other tool may."""
    ev = user.text_event(text)
    ev["source"] = {"type": "group", "groupId": "C" + "4" * 32, "userId": user.user_id}
    return ev


def redelivered(ev: dict[str, Any]) -> dict[str, Any]:
    again = copy.deepcopy(ev)
    again["deliveryContext"] = {"isRedelivery": True}
    return again


def forward_keys(r: redis.Redis) -> list[bytes]:
    return list(r.scan_iter(match="crmbot:{fwd:*}:out"))


def replies(fake: FakeLineApi) -> int:
    return len(fake.recorded(REPLY))


# ---- A. crmbot first: every webhook forwarded, unchanged, exactly once --------------------------------


def test_every_webhook_reaches_the_other_tool_unchanged_exactly_once(first: LineEnv,
                                                                     receiver: LineWebhookReceiver) -> None:
    user = first.user()
    sticker = user.event("message", message={"type": "sticker", "id": "325708", "quoteToken": "q1",
                                             "packageId": "446", "stickerId": "1988",
                                             "stickerResourceType": "STATIC"})
    bodies = [
        post_body(first, [user.event("follow", follow={"isUnblocked": False})], indent=2),  # not ours
        post_body(first, [user.text_event("こんにちは😀 営業時間は？")], ensure_ascii=True),  # \\u escapes: not ours
        post_body(first, [user.text_event("診断")], separators=(",", ":")),  # ours
        post_body(first, [sticker, user.postback_event("action=buy&itemid=111")]),  # mid-diagnosis: a sticker is ours
        post_body(first, [group_message(user, "グループで")]),  # no event for crmbot: forwarded on its own
        post_body(first, []),  # LINE's "Verify": no events at all
    ]
    assert len(set(bodies)) == len(bodies)
    assert receiver.arrivals() == []  # the web tier never sends: the worker does
    first.settle()
    assert sorted(receiver.accepted()) == sorted(bodies)  # byte for byte, each once (the signature verified)
    assert all(a.headers["x-line-signature"] == sign(a.body) for a in receiver.arrivals())
    assert forward_keys(first.r) == []  # delivered and gone
    first.clock.advance(300)
    first.settle()
    assert len(receiver.arrivals()) == len(bodies)  # nothing sent twice
    assert replies(first.fake) == 2  # 診断 (the first question) and the sticker mid-diagnosis (a hint)


def test_a_redelivered_webhook_is_not_forwarded_again(first: LineEnv, receiver: LineWebhookReceiver) -> None:
    user = first.user()
    ev = user.text_event("診断")
    original = post_body(first, [ev])
    again = post_body(first, [redelivered(ev)])  # before the worker ran
    assert again != original
    first.settle()
    post_body(first, [redelivered(ev)])  # after the forward was delivered
    two = [user.text_event("A"), user.text_event("B")]
    both = post_body(first, two)
    post_body(first, [redelivered(e) for e in reversed(two)])  # the same events, in another order
    first.settle()
    first.clock.advance(300)
    first.settle()
    assert receiver.accepted() == [original, both]
    assert replies(first.fake) == 3, first.fake.summary()  # each event answered once too


def test_a_receiver_failing_with_503_is_retried_until_it_accepts(first: LineEnv,
                                                                  receiver: LineWebhookReceiver) -> None:
    receiver.fail(503, times=2)
    body = post_body(first, [first.user().text_event("こんにちは")])
    first.settle()
    assert [a.status for a in receiver.arrivals()] == [503]
    [key] = forward_keys(first.r)
    [stored] = [jobs.Job.from_json(v) for v in first.r.hvals(key)]
    assert (stored.attempts, stored.error, stored.parked) == (1, "forward: HTTP 503", "")
    first.clock.advance(1.5)
    first.settle()
    assert len(receiver.arrivals()) == 1  # its backoff (2 s) has not passed
    first.clock.advance(0.5)
    first.settle()
    first.clock.advance(4)  # the second backoff
    first.settle()
    assert [a.status for a in receiver.arrivals()] == [503, 503, 200]
    assert receiver.accepted() == [body]
    assert forward_keys(first.r) == [] and first.svc.outbox.parked() == []


def test_a_429_waits_for_the_receivers_retry_after(first: LineEnv, receiver: LineWebhookReceiver) -> None:
    receiver.fail(429, headers={"Retry-After": "10"})
    body = post_body(first, [first.user().text_event("こんにちは")])
    first.settle()
    first.clock.advance(8)
    first.settle()
    assert [a.status for a in receiver.arrivals()] == [429]
    first.clock.advance(2)
    first.settle()
    assert receiver.accepted() == [body]


def test_a_400_from_the_other_tool_is_parked_with_its_status(first: LineEnv, receiver: LineWebhookReceiver) -> None:
    receiver.fail(400)
    body = post_body(first, [first.user().text_event("こんにちは")])
    first.settle()
    first.clock.advance(600)
    first.settle()
    assert [a.status for a in receiver.arrivals()] == [400]  # parked: never tried again by itself
    [parked] = first.svc.outbox.parked()
    assert (parked.transport, parked.reason, parked.attempts) == ("lineforward", "forward: HTTP 400", 1)
    out = io.StringIO()
    with redirect_stdout(out):
        assert outbox_cmd(first.svc.config, None) == 0
    assert f"{parked.id}\tlineforward\t" in out.getvalue() and "forward: HTTP 400" in out.getvalue()
    assert first.svc.outbox.requeue(parked.id)  # the operator fixed the other tool's side
    first.settle()
    assert receiver.accepted() == [body]


def test_erasing_a_person_drops_the_parked_forwards_that_name_them(first: LineEnv,
                                                                   receiver: LineWebhookReceiver) -> None:
    owner, other = first.user(), first.user()
    receiver.fail(400)
    owner_body = post_body(first, [owner.text_event("こんにちは")])  # refused: parked, the body names the owner
    first.settle()
    receiver.fail(400)
    other_body = post_body(first, [other.text_event("こんにちは")])  # another shop's, parked too
    first.settle()
    assert len(first.svc.outbox.parked()) == 2
    owner.say("データを削除")
    first.settle()  # the live webhooks are relayed as usual
    owner.tap("e:1")
    first.settle()
    [left] = first.svc.outbox.parked()  # the other shop's forward is kept for the operator
    assert first.svc.outbox.requeue(left.id)
    first.settle()
    assert other_body in receiver.accepted() and owner_body not in receiver.accepted()
    assert forward_keys(first.r) == [] and first.svc.outbox.parked() == []
    [entry] = first.r.xrange("crmbot:{audit}:erasures")
    assert json.loads(entry[1][b"removed"])["forwards"] == 1


def test_the_webhook_answers_without_waiting_for_the_other_tool(first: LineEnv,
                                                                receiver: LineWebhookReceiver) -> None:
    gate = receiver.stall()
    first.worker.start()  # continuous, as `crmbot worker`
    user = first.user()
    body = post_body(first, [user.text_event("診断")])
    receiver.wait_for(lambda rec: rec.in_flight == 1)  # the forward is held by the other tool
    first.fake.wait_delivered(user.user_id, 1)  # crmbot's own reply went meanwhile
    later = post_body(first, [user.text_event("A")])  # answered 200 while the other tool still holds the first
    first.fake.wait_delivered(user.user_id, 2)
    assert receiver.accepted() == []
    gate.set()
    receiver.wait_for(lambda rec: sorted(rec.accepted()) == sorted([body, later]))


def test_a_receiver_that_is_down_leaves_the_forward_queued(r: redis.Redis, redis_url: str, fake_line: FakeLineApi,
                                                           clock: FakeClock) -> None:
    env = make_env(r, redis_url, fake_line, clock, line_forward_url=f"http://127.0.0.1:{free_port()}/line/webhook",
                   line_coexist="first")
    try:
        post_body(env, [env.user().text_event("こんにちは")])  # 200: nothing was tried yet
        [key] = forward_keys(r)
        [job_id] = [k.decode() for k in r.hkeys(key)]
        tag = key.decode()[len("crmbot:{"):-len("}:out")]
        assert r.zscore(jobs.due(jobs.shard_of(tag)), jobs.ref(tag, job_id)) is not None  # due: a worker will
        env.settle()
        stored = jobs.Job.from_json(r.hget(key, job_id))
        assert stored.attempts == 1 and stored.error.startswith("forward: ClientConnector")
    finally:
        env.worker.close()


def test_the_forward_rides_on_the_webhooks_commit(first: LineEnv, receiver: LineWebhookReceiver,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A webhook with an event for crmbot makes the round trips it makes without forwarding: a read and a
    commit (the forward's mark, script and hint in the commit's pipeline); one with none, one of its own."""
    user = first.user()
    post_body(first, [user.text_event("診断")])  # the first commit also stores the script's text
    sent = count_round_trips(first.svc.redis.raw, monkeypatch)
    post_body(first, [user.text_event("A")])
    assert sent == ["pipeline", "pipeline"]
    sent.clear()
    post_body(first, [group_message(user, "グループで")])
    assert sent == ["pipeline"]
    first.settle()
    assert len(receiver.accepted()) == 3


def count_round_trips(client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every request/response exchange of ``client``'s connections ("pipeline" for a pipeline)."""
    sent: list[str] = []
    conn = client.connection_pool.get_connection()
    client.connection_pool.release(conn)
    conn_cls = type(conn)
    real_one, real_many = conn_cls.send_command, conn_cls.send_packed_command

    def one(self: Any, *args: Any, **kw: Any) -> Any:
        sent.append(str(args[0]))
        return real_one(self, *args, **kw)

    def many(self: Any, command: Any, check_health: bool = True) -> Any:
        if isinstance(command, list):
            sent.append("pipeline")
        return real_many(self, command, check_health)

    monkeypatch.setattr(conn_cls, "send_command", one)
    monkeypatch.setattr(conn_cls, "send_packed_command", many)
    return sent


# ---- A. crmbot first: a reply only for its own events --------------------------------------------------


def other_tool_replies(fake: FakeLineApi, token: str) -> int:
    """The other tool uses a reply token crmbot left alone: LINE's answer."""
    body = json.dumps({"replyToken": token, "messages": [{"type": "text", "text": "他ツールからの返信です"}]}).encode()
    req = urllib.request.Request(fake.base_url + REPLY, data=body, method="POST", headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, timeout=10) as res:
        return int(res.status)


def test_crmbot_replies_only_to_its_own_events(first: LineEnv, receiver: LineWebhookReceiver) -> None:
    fake, user = first.fake, first.user()
    left: list[str] = []  # the reply tokens crmbot must leave to the other tool

    def send(ev: dict[str, Any], *, ours: bool) -> None:
        before = replies(fake)
        user.send(ev)
        first.settle()
        assert replies(fake) == before + (1 if ours else 0), (ev["type"], fake.summary())
        if not ours and "replyToken" in ev:
            left.append(ev["replyToken"])

    send(user.event("follow", follow={"isUnblocked": False}), ours=False)  # the other tool greets
    send(user.text_event("こんにちは"), ours=False)
    send(user.text_event("A"), ours=False)  # a letter, with no diagnosis under way
    send(user.text_event("戻る"), ours=False)  # another tool's menu word, with no diagnosis under way
    send(user.postback_event("action=menu"), ours=False)
    send(user.text_event("診断"), ours=True)  # a keyword: the first question
    send(user.text_event("これは何ですか"), ours=True)  # free text mid-diagnosis: the hint and the question
    send(user.postback_event(last_quick_reply_data(fake.delivered(user.user_id))[0]), ours=True)  # an answer
    send(user.postback_event("action=menu"), ours=False)  # the other tool's button, even mid-diagnosis
    assert [other_tool_replies(fake, token) for token in left] == [200] * len(left)  # each token still usable
    send(user.event("unfollow", reply=False), ours=False)  # recorded: the diagnosis under way is dropped
    assert first.svc.store.load(Subject("line", user.user_id)).state == IDLE
    first.settle()
    assert len(receiver.accepted()) == 10  # and the other tool got every one of them


def test_a_follow_left_to_the_other_tool_still_fetches_the_display_name(first: LineEnv) -> None:
    """crmbot says nothing at a follow (the other tool greets), and still keeps the name for the operator."""
    fake, user = first.fake, first.user()
    fake.set_profile(user.user_id, "共存 花子")
    user.follow()
    first.settle()
    assert [r.path for r in fake.recorded()] == [profile_path(user.user_id)]
    assert [lead.name for lead in Analytics(first.r, clock=first.clock).person("line", user.user_id)] == []
    user.say("診断")  # the lead begins with the diagnosis: named from the start
    first.settle()
    assert [lead.name for lead in Analytics(first.r, clock=first.clock).person("line", user.user_id)] == ["共存 花子"]


def test_without_display_names_a_silent_follow_sends_nothing(r: redis.Redis, redis_url: str, fake_line: FakeLineApi,
                                                            clock: FakeClock, receiver: LineWebhookReceiver) -> None:
    env = make_env(r, redis_url, fake_line, clock, line_forward_url=receiver.url, line_coexist="first",
                   fetch_profile=False)
    try:
        env.user().follow()
        env.settle()
        assert fake_line.recorded() == [] and list(r.scan_iter(match="crmbot:{u:*}:out")) == []
        assert env.svc.outbox.parked() == [] and len(receiver.accepted()) == 1
    finally:
        env.worker.close()


def test_a_keyword_at_rest_and_the_result_are_ours(first: LineEnv, receiver: LineWebhookReceiver) -> None:
    fake, user = first.fake, first.user()
    user.say("結果")  # no result yet: crmbot says so (its keyword)
    user.say("停止")  # the reminder's stop word
    first.settle()
    assert replies(fake) == 2


# ---- B. crmbot second: behind the other tool's relay, its own events by push only ---------------------------


def test_second_pushes_its_own_events_and_never_replies(second: LineEnv) -> None:
    fake, user = second.fake, second.user()
    user.follow()
    user.say("こんにちは")
    second.settle()
    assert [r.path for r in fake.recorded()] == [profile_path(user.user_id)]  # neither is crmbot's: no message
    user.say("診断")
    second.settle()
    user.tap(last_quick_reply_data(fake.delivered(user.user_id))[0])
    user.say("よくわかりません")  # mid-diagnosis: ours
    second.settle()
    pushes = fake.recorded(PUSH)
    assert fake.recorded(REPLY) == [] and len(pushes) == 3
    keys_used = [p.headers.get("x-line-retry-key", "") for p in pushes]
    assert all(UUID.match(k) for k in keys_used) and len(set(keys_used)) == 3
    assert {p.json["to"] for p in pushes} == {user.user_id}
    assert list(second.r.scan_iter(match="crmbot:{fwd:*}")) == []  # nothing forwarded without a URL


def test_second_with_the_relay_redelivering_still_pushes_once(second: LineEnv) -> None:
    fake, user = second.fake, second.user()
    ev = user.text_event("診断")
    user.send(ev)
    user.send(redelivered(ev))
    second.settle()
    second.clock.advance(60)
    second.settle()
    assert fake.recorded(REPLY) == [] and len(fake.recorded(PUSH)) == 1


# ---- unset: today's behaviour -------------------------------------------------------------------------------


def test_unset_answers_every_event_by_reply_and_forwards_nothing(line_env: LineEnv) -> None:
    fake, user = line_env.fake, line_env.user()
    assert not line_env.svc.config.line_forward_url and not line_env.svc.bot.owned_only
    user.follow()
    user.say("こんにちは")
    user.tap("action=menu")
    line_env.settle()
    assert len(fake.recorded(REPLY)) == 3 and fake.recorded(PUSH) == []
    assert list(line_env.r.scan_iter(match="crmbot:{fwd:*}")) == []
    assert [k for k in line_env.r.scan_iter(match="crmbot:{*}") if b"fwd" in k] == []
    assert keys.forwarded("ab").startswith("crmbot:{fwd:ab}")
