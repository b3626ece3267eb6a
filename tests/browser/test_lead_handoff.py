"""The lead page's conversation during the handoff, in a real browser against a real ``crmbot serve``: the
owner's messages and a person's replies in order, the owner's unread messages marked (and counted by the
heading), each reply under its writer's Slack name, a sticker as a short note, a long text wrapped on a
phone-wide window. The lead is made by a LINE user through signed webhooks; the conversation is written as
the handoff's steps write it (their commit, conversations.store.RedisStore.update): this server has no Slack
(tests/bot/line/test_handoff_log.py drives the same through the signed LINE and Slack events)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from conversations import handoff_log
from conversations.analytics import Analytics
from conversations.keys import Subject, slack_name
from conversations.store import OK, RedisStore
from conversations.transports import Transport
from tests.bot.line.helpers import LineUser
from tests.browser.conftest import Http, Server, eventually, screenshot, until

WS, SATO = "T0CONSULT", "U0SATO"
LONG = "来週の火曜日の午後はいかがでしょうか。" * 8


def finished(server: Server, answers: str) -> LineUser:
    user = LineUser(Http(server.base), server.fake_line, time.time)
    user.follow()
    user.tap("s")
    for q, letter in enumerate(answers):
        user.tap(f"a:1:{q}:{letter}")
    figures = Analytics(server.redis)

    def counted() -> bool:  # the worker counts each step before it delivers the reply
        leads = figures.person("line", user.user_id)
        return [lead.is_finished for lead in leads] == [True] and not list(
            server.redis.scan_iter(match="crmbot:{u:line:*}:out"))

    eventually(counted, "the diagnosis counted")
    return user


def talk(server: Server, user: LineUser, entries: list[handoff_log.Entry]) -> None:
    """The entries committed one step each, as the handoff's steps commit them."""
    store = RedisStore(server.redis)
    subject = Subject(Transport.LINE, user.user_id)
    for n, entry in enumerate(entries):
        event_id = f"talk-{n}-{time.monotonic_ns()}"
        snap = store.get(subject, event_id)
        assert store.update(snap, snap.conv, event_id, ttl=0, log=entry) == OK


def test_the_lead_page_shows_the_conversation_with_unread_marks(console: Any, server: Server, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    user = finished(server, "BBBBBBBBBC")
    t0 = time.time() - 3600
    talk(server, user, [
        handoff_log.owner_entry("text", "料金を教えてください", t0),
        handoff_log.owner_entry("sticker", "", t0 + 60),
        handoff_log.operator_entry("ご連絡ありがとうございます。初回のご相談は無料です。", t0 + 600, by=SATO, ws=WS),
        handoff_log.owner_entry("text", LONG, t0 + 900),
        handoff_log.owner_entry("image", "", t0 + 960),
    ])
    server.redis.set(slack_name(WS, SATO), "佐藤 一郎")  # the worker's cache of the writer's Slack name

    console.get(server.url("/console/leads"))
    row = next(r for r in console.find_elements(By.CSS_SELECTOR, "#leads-table tr.lead-row")
               if "BBBBBBBBBC" in r.text)
    row.find_element(By.TAG_NAME, "a").click()
    section = until(console, lambda b: b.find_elements(By.ID, "lead-handoff"), "the conversation's section")[0]
    items = section.find_elements(By.CSS_SELECTOR, "li.convo-entry")
    seen = [(i.get_attribute("data-who"), i.find_element(By.CSS_SELECTOR, ".convo-who").text,
             i.find_element(By.CSS_SELECTOR, ".convo-text").text, i.get_attribute("data-unread")) for i in items]
    assert seen == [
        ("owner", "オーナー", "料金を教えてください", "no"),
        ("owner", "オーナー", "（スタンプ）", "no"),
        ("operator", "佐藤 一郎", "ご連絡ありがとうございます。初回のご相談は無料です。", "no"),
        ("owner", "オーナー", LONG, "yes"),
        ("owner", "オーナー", "（画像）", "yes"),
    ]
    badges = [i.find_elements(By.CSS_SELECTOR, ".convo-unread-badge") for i in items]
    assert [[b.text for b in found] for found in badges] == [[], [], [], ["未読"], ["未読"]]
    assert section.find_element(By.ID, "convo-unread-count").text == "未読 2件"
    width = console.execute_script("return document.documentElement.clientWidth")
    long_item = items[3]
    assert long_item.rect["x"] + long_item.rect["width"] <= width  # the long text wraps: nothing runs off the phone
    assert user.user_id not in console.current_url and SATO not in section.text
    console.execute_script("arguments[0].scrollIntoView()", section)
    screenshot(console, "console-lead-handoff.png", tmp_path)
