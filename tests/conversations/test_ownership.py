"""The ownership rule (conversations/ownership.py): which LINE events crmbot answers when it shares the
account with another LINE tool. One row per case of the README's table."""

from __future__ import annotations

import pytest

from conversations import inputs
from conversations.content import load_script
from conversations.inputs import Input
from conversations.machine import ASKING, CONFIRM, DONE, IDLE, RESUME, Conv, Settings, build
from conversations.ownership import KEYWORDS_AT_REST, Origin, handed_over, owns

pytestmark = pytest.mark.fast

SCRIPT = load_script("ja")
KEYWORDS = SCRIPT.keywords
POSTBACK, TEXT, MESSAGE, EVENT = Origin.POSTBACK, Origin.TEXT, Origin.MESSAGE, Origin.EVENT


def typed(text: str) -> Input:
    return inputs.from_text(text, KEYWORDS, SCRIPT.glossary)


def tapped(data: str) -> Input:
    return inputs.from_button(data)


# (what happened, origin, input, owned with no diagnosis under way, owned mid-diagnosis)
TABLE = [
    # 1. postbacks: crmbot's own data formats, at rest and mid-diagnosis; any other data never
    ("start button", POSTBACK, tapped("s"), True, True),
    ("answer button", POSTBACK, tapped("a:1:0:A"), True, True),
    ("stale answer button", POSTBACK, tapped("a:1:9:B"), True, True),
    ("back button", POSTBACK, tapped("b:1:3"), True, True),
    ("reminder yes", POSTBACK, tapped("o:1"), True, True),
    ("consult button", POSTBACK, tapped("k:2"), True, True),
    ("result row (advice)", POSTBACK, tapped("v:3:C"), True, True),
    ("start over, confirmed", POSTBACK, tapped("r:2"), True, True),
    ("a question's terms (用語)", POSTBACK, tapped("g:3"), True, True),
    ("delete my data? yes", POSTBACK, tapped("e:1"), True, True),
    ("delete my data? no", POSTBACK, tapped("e:0"), True, True),
    ("the retake reminder: the point moved", POSTBACK, tapped("m:1"), True, True),
    ("the retake reminder: not yet", POSTBACK, tapped("m:0"), True, True),
    ("a qualification answer after a result", POSTBACK, tapped("f:0:2"), True, True),
    ("a qualification skipped", POSTBACK, tapped("f:2:0"), True, True),
    ("the follow-ups on the point to fix: yes", POSTBACK, tapped("t:1:1"), True, True),
    ("the follow-ups on the point to fix: no", POSTBACK, tapped("t:1:0"), True, True),
    ("the free consultation slots (予約する)", POSTBACK, tapped("bk"), True, True),
    ("a consultation slot picked", POSTBACK, tapped("bp:1796000400"), True, True),
    ("a booking cancelled", POSTBACK, tapped("bx:0123456789abcdef"), True, True),
    ("another tool's postback like a booking", POSTBACK, tapped("bx:42"), False, False),
    ("another tool's postback", POSTBACK, tapped("action=buy&item=1"), False, False),
    ("another tool's postback like ours", POSTBACK, tapped("a:b:c"), False, False),
    # 2. typed keywords that mean something at rest; back and continue only mid-diagnosis
    ("診断", TEXT, typed("診断"), True, True),
    ("full-width START", TEXT, typed("ＳＴＡＲＴ"), True, True),
    ("a source link's text: 診断 ads", TEXT, typed("診断 ads"), True, True),
    ("結果", TEXT, typed("結果"), True, True),
    ("相談する", TEXT, typed("相談する"), True, True),
    ("予約", TEXT, typed("予約"), True, True),
    ("book", TEXT, typed("book"), True, True),
    ("停止", TEXT, typed("停止"), True, True),
    ("最初から", TEXT, typed("最初から"), True, True),
    ("データを削除", TEXT, typed("データを削除"), True, True),
    ("a glossary term: LTVとは", TEXT, typed("LTVとは"), True, True),
    ("戻る", TEXT, typed("戻る"), False, True),
    ("続き", TEXT, typed("続き"), False, True),
    # 3. free text, a typed letter, a sticker: only mid-diagnosis
    ("free text", TEXT, typed("営業時間を教えてください"), False, True),
    ("a typed letter", TEXT, typed("A"), False, True),
    ("a sticker or image", MESSAGE, Input(inputs.OTHER), False, True),
    # follow and unfollow: never (recorded, not answered)
    ("follow", EVENT, Input(inputs.FOLLOW), False, False),
    ("unfollow", EVENT, Input(inputs.UNFOLLOW), False, False),
]


@pytest.mark.parametrize(("what", "origin", "inp", "at_rest", "mid_diagnosis"), TABLE, ids=[t[0] for t in TABLE])
def test_the_ownership_table(what: str, origin: Origin, inp: Input, at_rest: bool, mid_diagnosis: bool) -> None:
    assert owns(origin, inp, in_progress=False) is at_rest
    assert owns(origin, inp, in_progress=True) is mid_diagnosis


def test_the_table_covers_every_keyword_kind() -> None:
    typed_kinds = {typed(w).kind for words in KEYWORDS.values() for w in words} | {typed("LTVとは").kind}
    assert typed_kinds == KEYWORDS_AT_REST | {inputs.BACK, inputs.CONTINUE}
    # every kind of input a LINE event can carry has a row (the operator's acts come from Slack, never from LINE)
    assert {t[2].kind for t in TABLE} == set(inputs.KINDS) - {inputs.OPERATOR_REPLY, inputs.HANDOFF_END}
    assert {t[2].kind for t in TABLE if t[1] is TEXT} >= typed_kinds


def test_a_user_handed_off_to_a_person_is_ours_for_every_message() -> None:
    """Rule 4: while a consultation request is open (the operator talks with them from Slack)."""
    assert owns(TEXT, typed("こんにちは"), in_progress=False, handed_over=True)
    assert owns(MESSAGE, Input(inputs.OTHER), in_progress=False, handed_over=True)
    assert not owns(POSTBACK, tapped("action=buy"), in_progress=False, handed_over=True)  # still the other tool's
    assert not owns(EVENT, Input(inputs.FOLLOW), in_progress=False, handed_over=True)
    assert not handed_over(Conv(state=ASKING, sid=1), 0.0)
    assert handed_over(Conv(state=DONE, sid=1, handoff_until=100.0), 99.0)
    assert not handed_over(Conv(state=DONE, sid=1, handoff_until=100.0), 100.0)  # the hours of silence are over


@pytest.mark.parametrize(("state", "under_way"), [(IDLE, False), (DONE, False), (ASKING, True), (RESUME, True),
                                                  (CONFIRM, True)])
def test_in_progress_is_a_diagnosis_under_way_and_not_expired(state: str, under_way: bool) -> None:
    machine = build(Settings(expiry=100.0))
    conv = Conv(state=state, sid=1, updated=1000.0, last="A" * 10 if state == DONE else "")
    assert machine.in_progress(conv, 1100.0) is under_way
    assert machine.in_progress(conv, 1100.5) is False  # expired: free text then is not crmbot's
