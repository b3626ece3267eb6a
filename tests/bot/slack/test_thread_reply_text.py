"""A reply written in Slack, as the owner reads it on LINE (bot/slack/listeners/handoff.py plain): Slack's markup
undone; and which messages of the thread are internal notes (bot/handoff.py is_note)."""

from __future__ import annotations

import pytest

from bot.handoff import is_note
from bot.slack.listeners.handoff import plain

pytestmark = pytest.mark.fast


@pytest.mark.parametrize(("slack", "line"), [
    ("初回は無料です", "初回は無料です"),
    ("料金は &lt;こちら&gt; &amp; 詳細", "料金は <こちら> & 詳細"),
    ("<https://example.com/price|料金表>をご覧ください", "料金表 (https://example.com/price)をご覧ください"),
    ("<https://example.com/a>", "https://example.com/a"),
    ("<mailto:info@example.com|info@example.com> まで", "info@example.com まで"),
    ("<!here> 担当は<@U0123|yamada>です", "担当は@yamadaです"),
    ("<@U0123> さん宛て", "さん宛て"),
])
def test_slack_markup_becomes_plain_text(slack: str, line: str) -> None:
    assert plain(slack) == line


@pytest.mark.parametrize(("words", "note"), [
    ("// 料金表を先に確認", True),
    ("(メモ) 来週フォロー", True),
    ("（メモ）電話の方が良さそう", True),
    ("［メモ］全角の括弧", True),
    ("(Memo) check the price list", True),
    ("  //indented", True),
    ("メモを送ります", False),
    ("https://example.com//path", False),
    ("ご連絡ありがとうございます // 追記", False),
])
def test_an_internal_note_starts_with_the_convention(words: str, note: bool) -> None:
    assert is_note(words) is note
