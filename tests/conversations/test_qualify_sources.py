"""Who the lead is and where they came from, in the pure parts: the qualification questions after a result
(machine, postback data, content check) and 「診断 NAME」 sources (typed text, the record keeps the first)."""

from __future__ import annotations

import json

import pytest

from conversations import inputs
from conversations.content import load_script, parse_script, script_path
from conversations.errors import ContentError
from conversations.inputs import Input, button, from_button, from_text, source_name
from conversations.machine import ASKING, DONE, RESUME, Conv, Settings, build
from conversations.outputs import FollowOffer, OptinOffer, Qualify, Question, Result
from tests.conversations.test_machine import Chat

pytestmark = pytest.mark.fast

JA = load_script("ja")
M = build(Settings(qualify=JA.qualify.counts))


def finish(chat: Chat, answers: str = "ABCDABCDAB") -> tuple[object, ...]:
    chat.do(inputs.START)
    step = None
    for letter in answers:
        step = chat.tap(letter)
    assert step is not None and chat.conv.state == DONE
    return step.outputs


def qualify(q: int, n: int) -> Input:
    return from_button(button(inputs.QUALIFY, q=q, choice=str(n)))


# --- qualification -------------------------------------------------------------------------------


def test_the_shipped_scripts_ask_three_questions() -> None:
    for locale in ("ja", "en"):
        q = load_script(locale).qualify
        assert len(q.questions) == 3 and q.skip_button and q.thanks
        assert all(2 <= n <= inputs.QUALIFY_CHOICES_MAX for n in q.counts)


def test_the_first_question_follows_the_result_card_alone() -> None:
    chat = Chat(machine=M)
    outs = finish(chat)
    assert [type(o) for o in outs] == [Result, Qualify]  # the offers come with the last one's thanks
    assert outs[1] == Qualify(0)


def test_answers_and_skips_are_kept_one_at_a_time_then_thanks() -> None:
    chat = Chat(machine=M)
    finish(chat)
    assert chat.send(qualify(0, 2)).outputs == (Qualify(1),)
    assert chat.conv.qual == "2"
    assert chat.send(qualify(1, 0)).outputs == (Qualify(2),)  # skipped
    last = chat.send(qualify(2, 5))
    assert last.outputs == (Qualify(3), FollowOffer(1))  # the thanks, with the follow-ups' offer
    assert chat.conv.qual == "205" and chat.conv.state == DONE
    assert JA.qualify.answered(chat.conv.qual) == [("商材", "食品・飲料"), ("月商", ""), ("カート", "その他")]
    assert Conv.from_json(chat.conv.to_json()) == chat.conv


def test_a_double_tap_or_an_old_question_says_nothing_and_changes_nothing() -> None:
    chat = Chat(machine=M)
    finish(chat)
    chat.send(qualify(0, 1))
    for stale in (qualify(0, 3), qualify(2, 1)):  # answered already / not asked yet
        step = chat.send(stale)
        assert (step.changed, step.outputs, chat.conv.qual) == (False, (), "1")


def test_a_choice_the_question_does_not_have_is_not_recorded() -> None:
    chat = Chat(machine=M)
    finish(chat)
    step = chat.send(qualify(1, 4))  # 月商 has three choices
    assert (step.changed, chat.conv.qual) == (False, "")


def test_any_other_input_leaves_the_questions_and_a_retake_asks_the_rest_only() -> None:
    chat = Chat(machine=M)
    finish(chat)
    chat.send(qualify(0, 1))
    assert chat.do(inputs.RESULT).outputs[0].kind == "result"  # not blocked by the open question
    outs = finish(chat, "AAAAAAAAAA")
    assert Qualify(1) in outs  # the one left open is asked after the next result
    chat.send(qualify(1, 1))
    chat.send(qualify(2, 1))
    assert not any(isinstance(o, Qualify) for o in finish(chat))  # all answered: not asked again


def test_an_answer_mid_diagnosis_keeps_the_place() -> None:
    chat = Chat(machine=M)
    finish(chat)
    chat.do(inputs.START)
    step = chat.send(qualify(0, 1))
    assert step.outputs == (Qualify(1), Question(2, 0)) and chat.conv.state == ASKING
    chat.send(qualify(1, 1))
    step = chat.send(qualify(2, 1))  # the last one's thanks: no offer about a result mid-diagnosis
    assert step.outputs == (Qualify(3), Question(2, 0))


def test_after_a_result_each_reply_offers_one_thing_at_most() -> None:
    """The result, the questions one at a time, the follow-ups' offer with the thanks, the quarterly offer
    with the follow-ups' answer: never more than LINE's five messages, each offer reachable."""
    chat = Chat(machine=M)
    replies = [finish(chat)] + [chat.send(qualify(q, 1)).outputs for q in range(3)]
    replies.append(chat.send(Input(inputs.FOLLOW_NO, sid=1)).outputs)
    assert [[type(o).__name__ for o in r] for r in replies] == [
        ["Result", "Qualify"], ["Qualify"], ["Qualify"], ["Qualify", "FollowOffer"], ["Notice", "OptinOffer"]]
    assert all(len(r) <= 5 for r in replies)
    # ten A's: no point to fix, so the quarterly offer comes with the thanks
    chat = Chat(machine=M)
    finish(chat, "AAAAAAAAAA")
    assert [type(o) for o in [chat.send(qualify(q, 0)) for q in range(3)][-1].outputs] == [Qualify, OptinOffer]
    # without qualification questions: the follow-ups' offer right after the result
    chat = Chat(machine=build())
    assert [type(o) for o in finish(chat)] == [Result, FollowOffer]


def test_without_questions_nothing_is_asked() -> None:
    chat = Chat(machine=build())
    assert not any(isinstance(o, Qualify) for o in finish(chat))
    assert chat.send(qualify(0, 1)).changed is False


def test_qualify_buttons_round_trip_and_bad_data_is_text() -> None:
    assert button(inputs.QUALIFY, q=2, choice="0") == "f:2:0"
    assert from_button("f:2:0") == Input(inputs.QUALIFY, q=2, choice="0")
    for bad in ("f:3:1", "f:0:6", "f:0", "f:x:1", "f:0:-1"):
        assert from_button(bad).kind == inputs.TEXT


def _with_qualify(section: str) -> str:
    source = script_path("ja").read_text(encoding="utf-8")
    return source[:source.index("\n[qualify]\n") + 1] + section


@pytest.mark.parametrize(("section", "field"), [
    ('[qualify]\nskip_button = "答えない"\nthanks = "どうも"\n', "qualify.questions"),
    ('[qualify]\nthanks = "x"\n[[qualify.questions]]\nlabel = "商材"\ntext = "何を？"\nchoices = ["a", "b"]\n',
     "qualify.skip_button"),
    ('[qualify]\nskip_button = "s"\nthanks = "x"\n[[qualify.questions]]\nlabel = "商材"\ntext = "何を？"\n'
     'choices = ["a"]\n', "qualify.questions[1].choices"),
    ('[qualify]\nskip_button = "s"\nthanks = "x"\n[[qualify.questions]]\nlabel = "商材"\ntext = "何を？"\n'
     'choices = ["a", "' + "長" * 21 + '"]\n', "qualify.questions[1].choices"),
    ('[qualify]\nskip_button = "s"\nthanks = "x"\n[[qualify.questions]]\nlabel = ""\ntext = "何を？"\n'
     'choices = ["a", "b"]\n', "qualify.questions[1].label"),
    ('[qualify]\nskip_button = "s"\nthanks = "x"\nextra = 1\n', "qualify.extra"),
])
def test_a_bad_section_is_refused_naming_the_field(section: str, field: str) -> None:
    with pytest.raises(ContentError) as e:
        parse_script(_with_qualify(section), "ja", "diagnosis.ja.toml")
    assert field in str(e.value) and "diagnosis.ja.toml" in str(e.value)


def test_four_questions_are_refused() -> None:
    one = '[[qualify.questions]]\nlabel = "x"\ntext = "y"\nchoices = ["a", "b"]\n'
    with pytest.raises(ContentError, match=r"qualify\.questions"):
        parse_script(_with_qualify('[qualify]\nskip_button = "s"\nthanks = "x"\n' + one * 4), "ja", "f")


def test_no_section_asks_nothing() -> None:
    assert parse_script(_with_qualify(""), "ja", "f").qualify.counts == ()


# --- sources -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "source"), [
    ("診断 ads", "ads"),
    ("診断　SNS-2026", "sns-2026"),  # an ideographic space, capitals: normalised
    ("診断 flyer_a", "flyer_a"),
    ("診断 広告", ""),  # not a source name: the diagnosis starts anyway
    ("診断 " + "a" * 21, ""),  # too long
    ("診断 a/b", ""),
    ("診断", ""),
])
def test_typed_start_with_a_source(text: str, source: str) -> None:
    assert from_text(text, JA.keywords) == Input(inputs.START, source=source)


def test_more_than_one_word_after_the_keyword_is_not_a_start() -> None:
    assert from_text("診断 してみたい です", JA.keywords).kind == inputs.TEXT


def test_source_name_rule() -> None:
    assert source_name("Ads") == "ads" and source_name("") == "" and source_name("a b") == ""


def test_the_record_keeps_the_first_source() -> None:
    chat = Chat(machine=M)
    chat.send(Input(inputs.START, source="ads"))
    assert chat.conv.src == "ads"
    chat.send(Input(inputs.START, source="sns"))  # mid-diagnosis: asked to resume, the source stays
    assert (chat.conv.state, chat.conv.src) == (RESUME, "ads")
    finish(chat)
    chat.send(Input(inputs.START, source="sns"))
    assert chat.conv.src == "ads"
    assert json.loads(chat.conv.to_json())["src"] == "ads"


def test_a_source_on_a_later_start_is_kept_when_there_was_none() -> None:
    chat = Chat(machine=M)
    finish(chat)
    assert chat.conv.src == ""
    chat.send(Input(inputs.START, source="ads"))
    assert chat.conv.src == "ads"

