"""The owner's conversation with the operator during a handoff, on the console's lead page
(conversations.handoff_log): what the owner sent on LINE and what a person answered in the lead's Slack
thread, in order, the owner's messages after the latest answer marked unread, each reply with its writer's
Slack name; a redelivered LINE or Slack event adds nothing; erasing the person removes it.

Real Redis, the fake LINE and Slack APIs, webhooks and events signed as LINE and Slack sign them, the worker as
`crmbot worker` builds it, the console through Flask's test client, the injected clock."""

from __future__ import annotations

import copy
import html
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from bot.console import refs
from conversations import handoff_log, keys
from conversations.analytics import Analytics
from conversations.keys import Subject, slack_name
from conversations.transports import Transport
from tests.bot.console.conftest import csrf_of
from tests.bot.line.conftest import line_config
from tests.bot.line.helpers import LineUser
from tests.bot.line.test_handoff import (
    HANDOFF_HOURS,
    OPERATOR,
    OPS,
    SLACK_SECRET,
    SLACK_TOKEN,
    Desk,
    consulted,
    make_desk,
    sticker,
    text,
)
from tests.conftest import FakeClock
from tests.fakes.line_api import FakeLineApi
from tests.fakes.slack_api import TEAM_ID, FakeSlackApi
from tests.fakes.slack_signing import event_body

PASSWORD = "handoff-log-console-password"
_ENTRY = re.compile(r'<li class="convo-entry[^"]*" data-who="(\w+)" data-kind="(\w+)" data-unread="(\w+)">'
                    r'.*?<span class="convo-who">([^<]*)</span>.*?<p class="convo-text">([^<]*)</p>', re.S)


@pytest.fixture(scope="module")
def fake_slack_server() -> Iterator[FakeSlackApi]:
    with FakeSlackApi(bot_token=SLACK_TOKEN) as fake:
        yield fake


@pytest.fixture
def slack(fake_slack_server: FakeSlackApi) -> Iterator[FakeSlackApi]:
    fake_slack_server.reset()
    yield fake_slack_server
    fake_slack_server.assert_contract_ok()


@pytest.fixture
def desk(r: redis.Redis, redis_url: str, fake_line: FakeLineApi, slack: FakeSlackApi, clock: FakeClock,
         tmp_path: Path) -> Iterator[Desk]:
    config = line_config(redis_url, fake_line, slack_signing_secret=SLACK_SECRET, slack_bot_token=SLACK_TOKEN,
                         slack_api_url=slack.base_url, operator_slack_channel=OPS, handoff_hours=HANDOFF_HOURS,
                         console_password=PASSWORD, secret_key="k" * 40, data_dir=tmp_path)
    yield from make_desk(config, fake_line, slack, clock, r)


def lead_page(desk: Desk, user: LineUser) -> str:
    """The person's lead page in the console, as an operator opens it (logged in, by its opaque URL)."""
    http = desk.env.http
    if http.get("/console/leads").status_code != 200:
        token = csrf_of(http.get("/console/login").get_data(as_text=True))
        assert http.post("/console/login", data={"password": PASSWORD, "csrf_token": token}).status_code == 302
    [lead] = Analytics(desk.env.r).person("line", user.user_id)
    with http.application.test_request_context():
        ref = refs.ref(lead.id)
    res = http.get(f"/console/leads/{ref}")
    assert res.status_code == 200
    return res.get_data(as_text=True)


def shown(page: str) -> list[tuple[str, str, str, str, str]]:
    """The conversation's entries as the lead page shows them: who, kind, unread, the writer, the words."""
    return [(who, kind, unread, html.unescape(name), html.unescape(words))
            for who, kind, unread, name, words in _ENTRY.findall(page)]


def redelivered(event: dict[str, Any]) -> dict[str, Any]:
    again = copy.deepcopy(event)
    again["deliveryContext"] = {"isRedelivery": True}
    return again


def test_the_lead_page_shows_the_conversation_in_order_with_the_unread_marks(desk: Desk) -> None:
    user = consulted(desk)
    subject = Subject(Transport.LINE, user.user_id)
    assert 'id="convo-none"' in lead_page(desk, user)  # a consultation, nothing said yet
    desk.env.r.set(slack_name(TEAM_ID, OPERATOR), "佐藤 一郎")  # the worker's cache of the writer's Slack name
    asked = text(user, "料金を教えてください\n初回は無料ですか？", "tok-1")
    user.send(asked)
    desk.clock.advance(1)
    stamp = sticker(user, "tok-2")
    user.send(stamp)
    desk.settle()
    user.send(redelivered(asked), redelivered(stamp))  # LINE sends both again: nothing is added
    desk.settle()
    assert [(w, k, u) for w, k, u, _, _ in shown(lead_page(desk, user))] == [
        ("owner", "text", "yes"), ("owner", "sticker", "yes")]
    assert "未読 2件" in lead_page(desk, user)

    desk.clock.advance(60)
    event, event_id = desk.reply("ご連絡ありがとうございます。初回は無料です。")
    desk.slack_post(event_body(event, event_id=event_id), retry_num=1)  # Slack retries the same event
    desk.slack_post(event_body(event, event_id="EvANOTHER02"))  # and sends the message under another id
    desk.clock.advance(60)
    user.send(text(user, "では来週お願いします", "tok-3"))
    desk.settle()

    page = lead_page(desk, user)
    assert shown(page) == [
        ("owner", "text", "no", "オーナー", "料金を教えてください\n初回は無料ですか？"),
        ("owner", "sticker", "no", "オーナー", "（スタンプ）"),
        ("operator", "text", "no", "佐藤 一郎", "ご連絡ありがとうございます。初回は無料です。"),
        ("owner", "text", "yes", "オーナー", "では来週お願いします"),
    ]
    assert page.count('class="badge convo-unread-badge"') == 1 and "未読 1件" in page
    assert OPERATOR not in page  # the writer by name, never by Slack ID
    assert len(desk.pushes(user)) == 1  # the reply went to the owner once
    stored = desk.env.r.lrange(keys.handoff_log(subject), 0, -1)
    assert len(stored) == 4
    assert 0 < desk.env.r.ttl(keys.handoff_log(subject)) <= handoff_log.TTL


def test_the_log_keeps_the_latest_entries_only(desk: Desk, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(handoff_log, "CAP", 3)
    user = consulted(desk)
    for n in range(5):
        desk.clock.advance(1)
        user.send(text(user, f"メッセージ{n}", f"tok-{n}"))
    desk.settle()
    assert [words for *_, words in shown(lead_page(desk, user))] == ["メッセージ2", "メッセージ3", "メッセージ4"]


def test_an_internal_note_and_the_bot_s_own_answers_stay_out_of_the_log(desk: Desk) -> None:
    user = consulted(desk)
    desk.reply("// 料金表を先に確認")  # an internal note: never sent, never logged
    assert shown(lead_page(desk, user)) == []
    other = desk.env.user()  # no consultation: what they say is answered by the bot, not logged
    other.say("こんにちは")
    desk.settle()
    assert not desk.env.r.exists(keys.handoff_log(Subject(Transport.LINE, other.user_id)))


def test_erasing_the_person_removes_their_conversation(desk: Desk) -> None:
    user = consulted(desk)
    user.send(text(user, "よろしくお願いします", "tok-1"))
    desk.settle()
    desk.reply("こちらこそよろしくお願いします")
    subject = Subject(Transport.LINE, user.user_id)
    assert desk.env.r.llen(keys.handoff_log(subject)) == 2
    user.say("データを削除")
    user.tap("e:1")
    desk.settle()
    assert not desk.env.r.exists(keys.handoff_log(subject))
    [erased] = desk.env.r.xrange("crmbot:{audit}:erasures")[-1:]
    assert json.loads(erased[1][b"removed"])["oplog"] == 1  # named in the audit by its family, never its words
