"""The one escaping helper for text from outside in Slack's mrkdwn (bot/mrkdwn.py)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.mrkdwn import LOOKALIKES, SOFT_HYPHEN, escape, mrkdwn, unescape

pytestmark = pytest.mark.fast  # unit tests: no Redis, no process, no server (tests/conftest.py)

MARKS = "*_~`＊＿｀"
BACK = {v: k for k, v in LOOKALIKES.items() if k != "\uff40"}  # ˋ stands for ` and ｀: read back as `


@pytest.mark.parametrize(("typed", "escaped"), [
    ("<!channel>", "&lt;!channel&gt;"),
    ("<!here>", "&lt;!here&gt;"),
    ("<!everyone>", "&lt;!everyone&gt;"),
    ("<@U0ABC>", "&lt;@U0ABC&gt;"),
    ("<#C1>", "&lt;#C1&gt;"),
    ("<!subteam^S1|@ops>", "&lt;!subteam^S1|@ops&gt;"),
    ("<https://evil.example/login|公式サポート>", "&lt;https://evil.example/login|公式サポート&gt;"),
    ("&lt;", "&amp;lt;"),  # shown as typed: an entity typed stays text
    ("R&D", "R&amp;D"),
    ("*太字*", "∗太字∗"),
    ("_斜体_", "ˍ斜体ˍ"),
    ("~取消~", "∼取消∼"),
    ("`コード`", "ˋコードˋ"),
    ("```ブロック```", "ˋˋˋブロックˋˋˋ"),
    ("＊全角＊ ＿下線＿ ｀引用｀", "﹡全角﹡ ⸏下線⸏ ˋ引用ˋ"),
    ("a *b* c", "a ∗b∗ c"),
    ("**", "∗∗"),
    # a mark between two ASCII letters or digits is no mark: kept as typed
    ("Asia/Ho_Chi_Minh", "Asia/Ho_Chi_Minh"),
    ("crm_team", "crm_team"),
    ("10~20", "10~20"),
    ("2*3", "2*3"),
    ("x_a_b_y", "x_a_b_y"),
    ("a_ b", "aˍ b"),
    ("本店_チーム", "本店ˍチーム"),  # beside a letter that is not ASCII: replaced (Slack's edges are unclear there)
    ("a`b`c", "aˋbˋc"),  # backticks always
    # one line: a line break cannot start a line of its own; a leading > is no quote
    ("一行目\n*二行目*", "一行目 ∗二行目∗"),
    ("a\r\n\tb\x00c\u2028d", "a b c d"),
    ("> 引用", SOFT_HYPHEN + "&gt; 引用"),
    ("  >x", SOFT_HYPHEN + "  &gt;x"),
    ("＞引用", SOFT_HYPHEN + "＞引用"),
    ("a > b", "a &gt; b"),
    ("山田 花子", "山田 花子"),
    ("", ""),
])
def test_escape(typed: str, escaped: str) -> None:
    assert escape(typed) == escaped


def shown(escaped: str) -> str:
    """What Slack shows for escaped text, read back: the entities as characters, each look-alike as the
    mark it stands for (ˋ as `), the soft hyphen unseen."""
    text = escaped.replace(SOFT_HYPHEN, "").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return "".join(BACK.get(c, c) for c in text)


TYPED = st.text(alphabet=st.characters(codec="utf-8", exclude_characters=[SOFT_HYPHEN, *LOOKALIKES.values()])
                | st.sampled_from(list("<>&!@#|: " + MARKS + "\n")))


@given(TYPED)
def test_any_text_comes_out_with_no_markup_and_reads_as_typed(text: str) -> None:
    out = escape(text)
    assert "<" not in out and ">" not in out
    assert re.fullmatch(r"(?:[^&]|&amp;|&lt;|&gt;)*", out, re.S)  # every & starts one of the three entities
    assert not re.search(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]", out)
    for m in re.finditer(r"[*_~]", out):  # a mark kept is between two ASCII letters or digits
        before, after = out[m.start() - 1: m.start()], out[m.end(): m.end() + 1]
        assert before.isascii() and before.isalnum() and after.isascii() and after.isalnum(), out
    assert not re.search("[`＊＿｀]", out)
    one_line = re.sub(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+", " ", text)
    assert shown(out) == one_line.replace("｀", "`")


@pytest.mark.parametrize("typed", ["<!channel> R&D", "&amp;lt; literally", "", "山田 <花子>"])
def test_slack_s_escaping_of_typed_text_is_undone_exactly(typed: str) -> None:
    sent = typed.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")  # as Slack sends a command's text
    assert unescape(sent) == typed


def test_every_mrkdwn_object_is_verbatim() -> None:
    assert mrkdwn("*見出し*") == {"type": "mrkdwn", "text": "*見出し*", "verbatim": True}
