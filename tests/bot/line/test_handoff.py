"""The operator's conversation with an owner in the lead's Slack thread (bot/handoff.py): the brief opens the
thread; during a handoff the owner's LINE messages land in it, in order, and the bot says nothing; a person's
reply there reaches the owner once (Slack's redelivery too), marks the owner's messages read, and gets ✓;
a bot's message, an edit and an internal note never go out; 「対応終了」 and silence end the handoff; booking
news goes into the thread once per news id, after the brief.

Real Redis, the fake LINE API (requests checked against LINE's spec) and the fake Slack API (Block Kit checked),
webhooks signed as LINE and Slack sign them, the worker as `crmbot worker` builds it, the injected clock."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import pytest
import redis

from bot.app import build_services, create_app
from bot.booking_news import BOOKED, CANCELLED, BookingNews
from bot.config import Config
from bot.slack.brief import END_ACTION
from bot.worker import Crash, NoFaults, Outcome
from conversations import keys
from conversations.booking import Booking
from conversations.jobs import Job
from conversations.keys import Subject
from conversations.transports import Transport
from tests.bot.line.conftest import LineEnv, line_config, start_worker
from tests.bot.line.helpers import LineUser
from tests.bot.line.test_webhook import take
from tests.bot.slack.conftest import TrackingExecutor
from tests.conftest import FakeClock
from tests.fakes.line_api import MARK_AS_READ, PUSH, FakeLineApi
from tests.fakes.slack_api import CLIENT_ID, CLIENT_SECRET, FakeSlackApi
from tests.fakes.slack_signing import TEAM_ID, block_actions_payload, event_body, interaction_body, signed_headers

OPS = "C0OPERATOR"
SLACK_TOKEN = "xoxb-handoff-test"
SLACK_SECRET = "slack-signing-secret"
ANSWERS = "AABAAADAAC"  # B評価
HANDOFF_HOURS = 24
OPERATOR = "U0OPERATOR"
W1, W2 = "T0OPS1", "T0SHOP2"  # with OAuth: the consultancy's workspace, and a client's
HTTPS = "https://crmbot.example.com"  # Bolt's state cookie is Secure: the browser talks https
LEASE = 30


@pytest.fixture(scope="module")
def fake_slack_server() -> Iterator[FakeSlackApi]:
    with FakeSlackApi(bot_token=SLACK_TOKEN) as fake:
        yield fake


@pytest.fixture
def slack(fake_slack_server: FakeSlackApi) -> Iterator[FakeSlackApi]:
    fake_slack_server.reset()
    yield fake_slack_server
    fake_slack_server.assert_contract_ok()


@dataclass
class Desk:
    env: LineEnv
    slack: FakeSlackApi
    executor: TrackingExecutor

    @property
    def clock(self) -> FakeClock:
        return self.env.clock

    def settle(self) -> None:
        """Bolt's listeners done, then the worker: a post waiting for its brief or an earlier post comes back
        a second later (the clock moves on a few seconds at most)."""
        for _ in range(8):
            for fut in self.executor.running():
                fut.result(timeout=15)
            self.env.settle()
            if not self.waiting():
                return
            self.clock.advance(1.5)
        raise AssertionError("jobs still waiting after settling")

    def waiting(self) -> bool:
        return any(self.env.r.zcard(f"crmbot:{{q{i}}}:due") for i in range(8)) and any(
            self.env.r.zrangebyscore(f"crmbot:{{q{i}}}:due", "-inf", self.clock() + 5) for i in range(8))

    def brief(self) -> dict[str, Any]:
        [post] = [m for m in self.slack.messages(OPS) if "thread_ts" not in m]
        return post

    def thread(self) -> list[dict[str, Any]]:
        """The replies in the lead's thread, oldest first."""
        parent = self.brief()["ts"]
        return sorted((m for m in self.slack.messages(OPS) if m.get("thread_ts") == parent and m["ts"] != parent),
                      key=lambda m: float(m["ts"]))

    def slack_post(self, body: bytes, retry_num: int | None = None) -> None:
        headers = signed_headers(SLACK_SECRET, body, int(time.time()), retry_num=retry_num,
                                 retry_reason="http_timeout" if retry_num else None)
        res = self.env.http.post("/slack/events", data=body, headers=headers)
        assert res.status_code == 200, res.get_data(as_text=True)
        self.settle()

    def reply(self, words: str, *, event_id: str | None = None, team: str = TEAM_ID, thread_ts: str | None = None,
              **extra: Any) -> tuple[dict[str, Any], str]:
        """A person writes in the lead's thread: Slack stores it, then sends the Events API ``message``."""
        msg = self.slack.post_as_user(OPS, OPERATOR, words, thread_ts=thread_ts or self.brief()["ts"])
        event = {"type": "message", "channel": OPS, "user": OPERATOR, "text": words, "ts": msg["ts"],
                 "thread_ts": msg["thread_ts"], "event_ts": msg["ts"], "channel_type": "channel", **extra}
        event_id = event_id or f"Ev{uuid.uuid4().hex[:10].upper()}"
        self.slack_post(event_body(event, event_id=event_id, team_id=team))
        return event, event_id

    def pushes(self, user: LineUser) -> list[Any]:
        return [r for r in self.env.fake.recorded(PUSH) if r.json and r.json.get("to") == user.user_id]


def make_desk(config: Config, fake_line: FakeLineApi, slack: FakeSlackApi, clock: FakeClock,
              r: redis.Redis, faults: Any = None) -> Iterator[Desk]:
    svc = build_services(config, clock=clock)
    worker = start_worker(config, svc, clock, faults)
    executor = TrackingExecutor()
    runner = svc.slack.app.listener_runner
    runner.listener_executor = executor
    runner.lazy_listener_runner.executor = executor
    try:
        yield Desk(LineEnv(svc, create_app(services=svc).test_client(), fake_line, clock, r, worker), slack, executor)
    finally:
        executor.shutdown(wait=True)
        worker.close()


@pytest.fixture
def desk(r: redis.Redis, redis_url: str, fake_line: FakeLineApi, slack: FakeSlackApi,
         clock: FakeClock) -> Iterator[Desk]:
    config = line_config(redis_url, fake_line, slack_signing_secret=SLACK_SECRET, slack_bot_token=SLACK_TOKEN,
                         slack_api_url=slack.base_url, operator_slack_channel=OPS, handoff_hours=HANDOFF_HOURS)
    yield from make_desk(config, fake_line, slack, clock, r)


class CrashAfterPosting(NoFaults):
    """A worker dies once after each Slack post of the operator's channel was sent, before it recorded it."""

    def __init__(self) -> None:
        self.crashed: set[str] = set()

    def after_deliver(self, job: Job, outcome: Outcome) -> None:
        role = job.slack.role if job.transport == Transport.SLACK else ""
        if role in ("brief", "thread") and role not in self.crashed:
            self.crashed.add(role)
            raise Crash(f"after the {role} post")


@pytest.fixture
def crashing_desk(r: redis.Redis, redis_url: str, fake_line: FakeLineApi, slack: FakeSlackApi,
                  clock: FakeClock) -> Iterator[tuple[Desk, CrashAfterPosting]]:
    faults = CrashAfterPosting()
    config = line_config(redis_url, fake_line, slack_signing_secret=SLACK_SECRET, slack_bot_token=SLACK_TOKEN,
                         slack_api_url=slack.base_url, operator_slack_channel=OPS, outbox_lease=LEASE)
    for desk in make_desk(config, fake_line, slack, clock, r, faults):
        yield desk, faults


@pytest.fixture
def oauth_desk(r: redis.Redis, redis_url: str, fake_line: FakeLineApi, slack: FakeSlackApi,
               clock: FakeClock) -> Iterator[Desk]:
    """Many workspaces (the OAuth install): the operator's channel is in W1 (CRMBOT_OPERATOR_SLACK_TEAM)."""
    config = line_config(redis_url, fake_line, slack_signing_secret=SLACK_SECRET, slack_client_id=CLIENT_ID,
                         slack_client_secret=CLIENT_SECRET, slack_api_url=slack.base_url,
                         operator_slack_channel=OPS, operator_slack_team=W1, handoff_hours=HANDOFF_HOURS)
    yield from make_desk(config, fake_line, slack, clock, r)


def consulted(desk: Desk) -> LineUser:
    """A LINE user who took the diagnosis and tapped 「相談する」; the brief is posted."""
    env = desk.env
    user = env.user()
    env.fake.set_profile(user.user_id, "山田 花子")
    result = take(env, user, ANSWERS)[-2]  # the card, then the first optional question
    user.tap(result["contents"]["footer"]["contents"][0]["action"]["data"])
    desk.settle()
    return user


def message(user: LineUser, content: dict[str, Any], token: str) -> dict[str, Any]:
    base = {"id": str(uuid.uuid4().int)[:18], "quoteToken": uuid.uuid4().hex, "markAsReadToken": token}
    return user.event("message", message={**base, **content})


def text(user: LineUser, words: str, token: str) -> dict[str, Any]:
    return message(user, {"type": "text", "text": words}, token)


def sticker(user: LineUser, token: str) -> dict[str, Any]:
    return message(user, {"type": "sticker", "packageId": "446", "stickerId": "1988",
                          "stickerResourceType": "STATIC"}, token)


def image(user: LineUser, token: str) -> dict[str, Any]:
    return message(user, {"type": "image", "contentProvider": {"type": "line"}}, token)


def owner_lines(post: dict[str, Any]) -> list[str]:
    """What an owner's message post shows: its context line, then its text."""
    context, *sections = post["blocks"]
    return [context["elements"][0]["text"]] + [s["text"]["text"] for s in sections]


def test_the_owner_s_messages_land_in_the_thread_in_order_and_the_bot_stays_quiet(desk: Desk) -> None:
    user = consulted(desk)
    said_before = len(desk.env.fake.delivered(user.user_id))
    long_text = "来週の火曜日は空いていますか？\n<!channel> *よろしく*"
    desk.slack.fail("chat.postMessage", times=1)  # the first post fails once: retried after the others came in
    user.send(text(user, long_text, "tok-1"))
    desk.env.settle()
    assert desk.thread() == []
    desk.clock.advance(1)
    user.send(sticker(user, "tok-2"))
    desk.clock.advance(1)
    user.send(image(user, "tok-3"))
    desk.settle()

    posts = desk.thread()
    assert [owner_lines(p) for p in posts] == [
        ["💬 LINEでのメッセージ", long_text],  # as is, in plain text: no mention or markup works
        ["💬 LINEでのメッセージ", "（スタンプが送られました）"],
        ["💬 LINEでのメッセージ", "（画像が送られました）"],
    ]
    assert posts[0]["blocks"][1]["text"]["type"] == "plain_text"
    assert "<!channel>" not in posts[0]["text"]  # the notification text is escaped too
    assert len(desk.env.fake.delivered(user.user_id)) == said_before  # the bot said nothing
    subject = Subject(Transport.LINE, user.user_id)
    assert desk.env.r.hget(keys.operator_thread(subject), "read") == b"tok-3"  # the latest message's token


def test_a_reply_reaches_the_owner_once_marks_read_and_gets_a_check(desk: Desk) -> None:
    user = consulted(desk)
    user.send(text(user, "料金を教えてください", "tok-owner"))
    desk.settle()
    words = "ご連絡ありがとうございます。初回の相談は無料です。"
    event, event_id = desk.reply(words)
    desk.slack_post(event_body(event, event_id=event_id), retry_num=1)  # Slack redelivers the same event
    desk.slack_post(event_body(event, event_id="EvANOTHER01"))  # and once more under another id: same message
    pushes = desk.pushes(user)
    assert len(pushes) == 1
    assert pushes[0].json["messages"] == [{"type": "text", "text": words}]
    assert uuid.UUID(pushes[0].headers["x-line-retry-key"])  # LINE's retry key is a UUID
    assert desk.env.fake.delivered(user.user_id)[-1]["text"] == words
    assert desk.env.fake.marked_read == ["tok-owner"]
    [marked] = desk.env.fake.recorded(MARK_AS_READ)
    assert json.loads(marked.body) == {"markAsReadToken": "tok-owner"}
    [reply] = [m for m in desk.slack.messages(OPS) if m["ts"] == event["ts"]]
    assert [r["name"] for r in reply.get("reactions", [])] == ["white_check_mark"]


def test_a_reply_that_cannot_be_sent_says_so_in_the_thread(desk: Desk) -> None:
    user = consulted(desk)
    desk.env.fake.fail(PUSH, 400, times=1)  # LINE refuses it for good: parked
    event, _ = desk.reply("こちらからご案内します")
    assert desk.pushes(user)[-1].status == 400
    last = desk.thread()[-1]
    assert last["text"] == "⚠️ この返信はLINEに送れませんでした。時間をおいてもう一度書き込んでください。"
    [reply] = [m for m in desk.slack.messages(OPS) if m["ts"] == event["ts"]]
    assert "reactions" not in reply


@pytest.mark.parametrize("extra", [
    {"bot_id": "B0OTHER", "subtype": "bot_message"},  # a bot's message
    {"bot_id": "B0BOT"},  # our own post as Slack echoes it
    {"subtype": "message_changed"},  # an edit
    {"subtype": "thread_broadcast"},  # a reply also sent to the channel
], ids=["bot_message", "bot_id", "message_changed", "thread_broadcast"])
def test_a_bot_s_message_or_a_message_with_a_subtype_never_goes_out(desk: Desk, extra: dict[str, Any]) -> None:
    user = consulted(desk)
    desk.reply("これは送られません", **extra)
    assert desk.pushes(user) == []


@pytest.mark.parametrize("note", ["// 料金表を先に確認", "(メモ) 来週フォロー", "（メモ）電話の方が良さそう",
                                  " //メモ"])
def test_an_internal_note_never_goes_out(desk: Desk, note: str) -> None:
    user = consulted(desk)
    event, _ = desk.reply(note)
    assert desk.pushes(user) == []
    assert desk.env.fake.recorded(MARK_AS_READ) == []
    [reply] = [m for m in desk.slack.messages(OPS) if m["ts"] == event["ts"]]
    assert "reactions" not in reply


def test_end_button_ends_the_handoff(desk: Desk) -> None:
    user = consulted(desk)
    script = desk.env.svc.script
    brief = desk.brief()
    payload = block_actions_payload(OPERATOR, END_ACTION, f"line:{user.user_id}", message=brief)
    desk.slack_post(interaction_body(payload))
    assert desk.thread()[-1]["text"] == ("🔚 対応を終了しました（<@U0OPERATOR>）。これからのメッセージには"
                                         "ボットが答えます。")
    posts = len(desk.thread())
    again = block_actions_payload(OPERATOR, END_ACTION, f"line:{user.user_id}", message=brief)
    desk.slack_post(interaction_body(again))  # a second click: nothing more to end, nothing said
    assert len(desk.thread()) == posts
    user.send(text(user, "ありがとうございました", "tok-9"))
    desk.settle()
    assert desk.env.fake.delivered(user.user_id)[-1]["text"] == script.text("heard")  # the bot answers again
    assert len(desk.thread()) == posts  # and nothing more is relayed


def test_silence_ends_the_handoff_and_a_reply_opens_it_again(desk: Desk) -> None:
    user = consulted(desk)
    script = desk.env.svc.script
    desk.clock.advance(HANDOFF_HOURS * 3600 - 10)
    user.send(text(user, "まだでしょうか", "tok-a"))
    desk.settle()
    assert desk.thread()[-1]["blocks"][1]["text"]["text"] == "まだでしょうか"  # still handed off
    desk.clock.advance(60)  # CRMBOT_HANDOFF_HOURS since the request, nobody answered: over
    user.send(text(user, "もういいです", "tok-b"))
    desk.settle()
    assert desk.env.fake.delivered(user.user_id)[-1]["text"] == script.text("heard")
    assert desk.thread()[-1]["blocks"][1]["text"]["text"] == "まだでしょうか"
    desk.reply("遅くなり申し訳ありません")  # a person answers: handed off again, for the hours from now
    user.send(text(user, "よろしくお願いします", "tok-c"))
    desk.settle()
    assert desk.thread()[-1]["blocks"][1]["text"]["text"] == "よろしくお願いします"


def booking(user: LineUser) -> Booking:
    start = datetime(2026, 1, 6, 1, 0, tzinfo=UTC)  # 10:00 in Japan
    return Booking(id="0123456789abcdef", lead=f"line:{user.user_id}", start=start,
                   end=datetime(2026, 1, 6, 1, 30, tzinfo=UTC), status="booked", seq=0, created=0.0, updated=0.0,
                   format="オンライン（Zoom）")


def test_booking_news_goes_into_the_thread_once_per_news_id_after_the_brief(desk: Desk) -> None:
    env = desk.env
    user = env.user()
    result = take(env, user, ANSWERS)[-2]
    env.worker.drain()
    user.tap(result["contents"]["footer"]["contents"][0]["action"]["data"])  # the request: the brief not posted
    subject = Subject(Transport.LINE, user.user_id)
    news = BookingNews(BOOKED, subject, booking(user), "owner", "ev-booked-1")
    env.svc.booking_news(news)  # before the worker has even briefed the operator
    env.svc.booking_news(news)  # the same news again (a redelivered webhook)
    desk.settle()
    env.svc.booking_news(news)
    env.svc.booking_news(BookingNews(CANCELLED, subject, booking(user), "console", "ev-cancel-1",
                                     message="日程を再調整させてください"))
    desk.settle()
    brief = desk.brief()
    booked, cancelled = desk.thread()
    assert float(booked["ts"]) > float(brief["ts"])
    assert booked["text"] == "📅 予約されました：2026-01-06 10:00–10:30（オンライン（Zoom））（オーナー）"
    assert cancelled["text"] == "✖️ 予約が取り消されました：2026-01-06 10:00–10:30（console）"
    assert cancelled["blocks"][1]["elements"][0]["text"] == "オーナーへのメッセージ：日程を再調整させてください"


def install(desk: Desk, team: str) -> str:
    """The app installed in ``team`` by Slack's OAuth flow; the bot token Slack issued."""
    res = desk.env.http.get("/slack/install", base_url=HTTPS)
    assert res.status_code == 302
    query = desk.slack.approve(res.headers["Location"], team)
    res = desk.env.http.get("/slack/oauth_redirect?" + urlencode(query), base_url=HTTPS)
    assert res.status_code == 200, res.get_data(as_text=True)[:200]
    return desk.slack.tokens_of(team)[-1]


def test_with_oauth_installs_the_operator_s_workspace_sends_and_only_its_replies_go_out(oauth_desk: Desk) -> None:
    desk = oauth_desk
    token, _ = install(desk, W1), install(desk, W2)
    user = consulted(desk)
    user.send(text(user, "よろしくお願いします", "tok-1"))
    desk.settle()
    posts = [c for c in desk.slack.calls("chat.postMessage") if c.args.get("channel") == OPS]
    assert [(c.team, c.headers["authorization"]) for c in posts] == [(W1, f"Bearer {token}")] * 2  # brief, message
    desk.reply("別のワークスペースからの書き込み", team=W2)  # a channel of that ID in another workspace: not ours
    assert desk.pushes(user) == []
    desk.reply("ご相談ありがとうございます", team=W1)
    assert [p.json["messages"][0]["text"] for p in desk.pushes(user)] == ["ご相談ありがとうございます"]


def test_after_the_owner_erased_their_data_a_reply_in_their_threads_reaches_nobody(desk: Desk) -> None:
    user = consulted(desk)
    result = take(desk.env, user, "AAAAAAAAAB")[-2]  # a retake, and a consultation about it: a second brief
    user.tap(result["contents"]["footer"]["contents"][0]["action"]["data"])
    desk.settle()
    briefs = [m["ts"] for m in desk.slack.messages(OPS) if "thread_ts" not in m]
    assert len(briefs) == 2 and desk.env.r.hlen(keys.operator_threads(OPS)) == 2
    other = consulted(desk)  # someone else's thread stays
    user.say("データを削除")
    user.tap("e:1")
    desk.settle()
    subject = Subject(Transport.LINE, user.user_id)
    assert [v.decode() for v in desk.env.r.hvals(keys.operator_threads(OPS))] == [f"line:{other.user_id}"]
    assert not desk.env.r.exists(keys.operator_thread(subject))
    for ts in briefs:
        desk.reply("ご連絡ありがとうございます", thread_ts=ts)
    assert desk.pushes(user) == []


def test_a_worker_dying_after_a_post_neither_repeats_it_nor_loses_the_thread(
        crashing_desk: tuple[Desk, CrashAfterPosting]) -> None:
    """The brief and an owner's message are posted, and each time the worker dies before recording it: the
    recovery finds the post by its metadata (the channel's history, the thread's replies), posts nothing
    again, and the brief's ts still becomes the lead's thread."""
    desk, faults = crashing_desk
    user = consulted(desk)
    subject = Subject(Transport.LINE, user.user_id)
    # as if it had died before it recorded the thread too: the recovery must find the brief's ts itself
    desk.env.r.delete(keys.operator_thread(subject), keys.operator_threads(OPS))
    desk.clock.advance(LEASE + 1)  # the dead attempt's claim runs out: recovered
    desk.settle()
    user.send(text(user, "予約はできますか", "tok-1"))
    desk.settle()
    desk.clock.advance(LEASE + 1)
    desk.settle()
    assert faults.crashed == {"brief", "thread"}
    assert desk.env.r.hget(keys.operator_thread(subject), "ts").decode() == desk.brief()["ts"]
    [post] = desk.thread()
    assert owner_lines(post)[1] == "予約はできますか"
    assert desk.slack.calls("conversations.replies")  # the thread was looked at before posting again
    assert desk.env.r.hget(keys.operator_threads(OPS), desk.brief()["ts"]).decode() == f"line:{user.user_id}"
