"""Tests for conversations.inputs: typed answers, keywords, and postback data."""

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conversations import inputs
from conversations.content import load_script
from conversations.inputs import Input, button, from_button, from_text, normalise, typed_choice

pytestmark = pytest.mark.fast  # unit tests: no Redis, no process, no server (tests/conftest.py)

JA = load_script("ja").keywords
EN = load_script("en").keywords

# --- typed answers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "letter"),
    [
        ("a", "A"),
        ("A", "A"),
        ("Ａ", "A"),  # full-width capital
        ("ａ", "A"),  # full-width small
        ("A:LTVが判断の軸", "A"),
        ("A：LTVが判断の軸", "A"),  # full-width colon
        ("Ｂ：一部だけ把握", "B"),
        (" b ", "B"),
        ("\u3000ｂ\u3000", "B"),  # ideographic spaces around
        ("c.", "C"),
        ("d", "D"),
        ("D) not at all", "D"),
    ],
)
def test_typed_answers_count(text: str, letter: str) -> None:
    assert typed_choice(text) == letter
    assert from_text(text, JA) == Input(inputs.ANSWER, choice=letter)
    assert from_text(text, EN) == Input(inputs.ANSWER, choice=letter)


@pytest.mark.parametrize("text", ["Apple", "AB", "ab", "E", "e", "", "   ", "A1", "Ａｂ", "1", "あ", ":A", "-"])
def test_other_text_is_not_an_answer(text: str) -> None:
    assert typed_choice(text) is None
    assert from_text(text, JA) == Input(inputs.TEXT)


def test_normalise() -> None:
    assert normalise("  ＳＴＡＲＴ\u3000") == "start"
    assert normalise("ＣＲＭ診断") == "crm診断"


# --- keywords -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("診断", inputs.START),
        ("しんだん", inputs.START),
        ("ＣＲＭ診断", inputs.START),  # full-width letters
        ("CRM診断", inputs.START),  # upper case
        (" スタート ", inputs.START),
        ("START", inputs.START),
        ("戻る", inputs.BACK),
        ("１問もどる", inputs.BACK),  # full-width digit
        ("最初から", inputs.RESTART),
        ("Restart", inputs.RESTART),
        ("続き", inputs.CONTINUE),
        ("ｃｏｎｔｉｎｕｅ", inputs.CONTINUE),
        ("相談", inputs.CONSULT),
        ("相談したい", inputs.CONSULT),
        ("　ご相談　", inputs.CONSULT),  # full-width spaces
        ("予約", inputs.BOOK),  # the free slots, as the 「予約する」 button
        ("予約する", inputs.BOOK),
        ("Book", inputs.BOOK),
    ],
)
def test_japanese_keywords(text: str, kind: str) -> None:
    assert from_text(text, JA) == Input(kind)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("start", inputs.START),
        ("Start Diagnosis", inputs.START),
        ("ＳＴＡＲＴ", inputs.START),
        ("診断", inputs.START),
        ("Go Back", inputs.BACK),
        ("previous", inputs.BACK),
        ("START OVER", inputs.RESTART),
        ("reset", inputs.RESTART),
        ("Resume", inputs.CONTINUE),
        ("carry on", inputs.CONTINUE),
        ("Talk to an expert", inputs.CONSULT),
        ("book", inputs.BOOK),
        ("Book a call", inputs.BOOK),
        ("予約", inputs.BOOK),
    ],
)
def test_english_keywords(text: str, kind: str) -> None:
    assert from_text(text, EN) == Input(kind)


@pytest.mark.parametrize("text", ["診断しない", "start now please", "もどるかも", "hello", "startover"])
def test_keywords_match_whole_text_only(text: str) -> None:
    assert from_text(text, JA).kind == inputs.TEXT
    assert from_text(text, EN).kind == inputs.TEXT


def test_keywords_of_the_other_locale_are_not_used() -> None:
    assert from_text("go back", JA).kind == inputs.TEXT
    assert from_text("やり直す", EN).kind == inputs.TEXT


def test_no_keywords_means_only_answers_and_text() -> None:
    assert from_text("start", {}) == Input(inputs.TEXT)
    assert from_text("b", {}) == Input(inputs.ANSWER, choice="B")


# --- postback data ------------------------------------------------------------------------------


def test_button_data_formats() -> None:
    assert button(inputs.START) == "s"
    assert button(inputs.RESTART) == "r"
    assert button(inputs.CONTINUE, sid=3) == "c:3"
    assert button(inputs.ANSWER, sid=3, q=9, choice="D") == "a:3:9:D"
    assert button(inputs.BACK, sid=3, q=1) == "b:3:1"
    assert button(inputs.CONSULT, sid=3) == "k:3"


@pytest.mark.parametrize("kind", [inputs.FOLLOW, inputs.UNFOLLOW, inputs.TEXT, inputs.OTHER, "nope"])
def test_no_button_for_other_kinds(kind: str) -> None:
    with pytest.raises(ValueError, match="no button"):
        button(kind)


nat = st.integers(min_value=0, max_value=999_999_999)


@given(sid=nat, q=nat, choice=st.sampled_from("ABCD"))
def test_answer_button_round_trips(sid: int, q: int, choice: str) -> None:
    data = button(inputs.ANSWER, sid=sid, q=q, choice=choice)
    assert len(data) <= 300  # LINE postback data limit
    assert from_button(data) == Input(inputs.ANSWER, choice=choice, q=q, sid=sid)


@given(sid=nat, q=nat)
def test_back_and_continue_buttons_round_trip(sid: int, q: int) -> None:
    assert from_button(button(inputs.BACK, sid=sid, q=q)) == Input(inputs.BACK, q=q, sid=sid)
    assert from_button(button(inputs.CONTINUE, sid=sid)) == Input(inputs.CONTINUE, sid=sid)
    assert from_button(button(inputs.CONSULT, sid=sid)) == Input(inputs.CONSULT, sid=sid)


def test_start_and_restart_buttons_round_trip() -> None:
    assert from_button(button(inputs.START)) == Input(inputs.START)
    assert from_button(button(inputs.RESTART)) == Input(inputs.RESTART)


@pytest.mark.parametrize(
    "data",
    [
        "",
        "x",
        "S",
        "s:1",
        "r:",
        "c",
        "c:",
        "c:x",
        "c:-1",
        "c:1:2",
        "a:1:2",
        "a:1:2:E",
        "a:1:2:a",
        "a:1:2:AB",
        "a:1:2:",
        "a:1:-2:A",
        "a:-1:2:A",
        "a:1:2.0:A",
        "a:1: 2:A",
        "a:1:+2:A",
        "a:1:2:A:extra",
        "a:1:1234567890:A",  # more than 9 digits
        "a:1:²:A",  # a digit for str.isdigit that int() refuses
        "b:1",
        "b:1:x",
        "b:1:2:3",
        "k",
        "k:",
        "k:x",
        "k:-1",
        "k:1:2",
        "a:1:2:A" + " " * 60,  # overlong
        "a:" + "1" * 70 + ":0:A",
        "s" * 10_000,
        "\x00",
        "s\n",
    ],
)
def test_malformed_postback_data_is_text(data: str) -> None:
    assert from_button(data) == Input(inputs.TEXT)


@pytest.mark.parametrize("data", [None, 1, b"s", ["s"], {"a": 1}, 1.5])
def test_non_string_postback_data_is_text(data: Any) -> None:
    assert from_button(data) == Input(inputs.TEXT)


@given(st.text(max_size=100))
def test_arbitrary_postback_data_never_raises(data: str) -> None:
    inp = from_button(data)
    assert inp.kind in inputs.KINDS
    if inp.kind == inputs.ANSWER:
        assert inp.choice in ("A", "B", "C", "D")
        assert inp.q is not None and inp.q >= 0
        assert inp.sid is not None and inp.sid >= 0


@given(st.binary(max_size=40))
def test_arbitrary_bytes_postback_data_is_text(data: bytes) -> None:
    assert from_button(data) == Input(inputs.TEXT)  # type: ignore[arg-type]


def test_start_over_confirmation_and_advice_buttons_round_trip() -> None:
    assert from_button(button(inputs.RESTART_YES, sid=4)) == Input(inputs.RESTART_YES, sid=4)
    assert button(inputs.RESTART_YES, sid=4) == "r:4"
    assert from_button(button(inputs.ADVICE, q=9, choice="B")) == Input(inputs.ADVICE, choice="B", q=9)
    assert button(inputs.ADVICE, q=2, choice="D") == "v:2:D"


@pytest.mark.parametrize("data", ["v:10:B", "v:1:A", "v:1:E", "v:x:B", "v:1", "r:-1", "r:x", "r:1:2"])
def test_malformed_advice_or_confirmation_is_text(data: str) -> None:
    assert from_button(data) == Input(inputs.TEXT)


@pytest.mark.parametrize("word", ["結果", "結果を見る", "result", "ＲＥＳＵＬＴ"])
def test_result_words_ask_for_the_last_result(word: str) -> None:
    assert from_text(word, load_script("ja").keywords) == Input(inputs.RESULT)


@pytest.mark.parametrize(("data", "expected"), [
    ("bk", Input(inputs.BOOK)),
    ("bk:1796000400", Input(inputs.BOOK, at=1796000400)),
    ("bk:0:0123456789abcdef", Input(inputs.BOOK, ref="0123456789abcdef")),
    ("bk:1796000400:0123456789abcdef", Input(inputs.BOOK, at=1796000400, ref="0123456789abcdef")),
    ("bp:1796000400", Input(inputs.BOOK_PICK, at=1796000400)),
    ("bp:1796000400:0123456789abcdef", Input(inputs.BOOK_PICK, at=1796000400, ref="0123456789abcdef")),
    ("bx:0123456789abcdef", Input(inputs.BOOK_CANCEL, ref="0123456789abcdef")),
])
def test_booking_buttons_round_trip(data: str, expected: Input) -> None:
    assert from_button(data) == expected
    assert button(expected.kind, at=expected.at, ref=expected.ref) == data


@pytest.mark.parametrize("data", ["bp", "bp:0", "bx", "bx:42", "bx:0123456789ABCDEF", "bk:x", "bp:1:2:3",
                                  "bk:123456789012", "bp:１２３", "bk:1:0123456789abcdeg"])
def test_malformed_booking_buttons_are_free_text(data: str) -> None:
    assert from_button(data).kind == inputs.TEXT
