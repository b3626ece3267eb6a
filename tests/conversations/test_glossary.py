"""The glossary and the privacy texts of the content files: checked at start-up, looked up as an owner types,
and the machine's routes for definitions and deletion (the place is kept)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot import views
from conversations import inputs
from conversations.content import load_script
from conversations.inputs import Input, from_button, from_text
from conversations.machine import ASKING, DONE, IDLE, RESUME, Conv, Settings, build
from conversations.outputs import Definition, Erasure, Greeting, Question, Resume
from tests.conversations.test_content import real_data, refused, write

pytestmark = pytest.mark.fast

JA, EN = load_script("ja"), load_script("en")
T0 = 1_767_225_600.0


def test_the_terms_the_review_names_are_defined_in_both_files() -> None:
    for name in ("LTV", "F2転換率", "RFM", "同梱物", "NPS", "休眠", "コホート"):
        assert name in JA.glossary.terms, name
        assert 0 < len(JA.glossary.terms[name].text) <= 200
    for name in ("LTV", "F2 rate", "RFM", "package insert", "NPS", "dormant", "cohort"):
        assert name in EN.glossary.terms, name


@pytest.mark.parametrize("script", [JA, EN], ids=["ja", "en"])
def test_every_question_lists_terms_and_each_is_defined(script: Any) -> None:
    assert len(script.glossary.questions) == 10
    for q, names in enumerate(script.glossary.questions):
        assert names, f"Q{q + 1} lists no terms"
        assert [t.name for t in script.glossary.of_question(q)] == list(names)


@pytest.mark.parametrize(("typed", "term"), [
    ("LTVとは", "LTV"), ("LTVとは？", "LTV"), ("ltvとは何ですか", "LTV"), ("F2って何？", "F2転換率"),
    ("Ｆ２ってなに", "F2転換率"), ("RFMって？", "RFM"), ("同梱物とは", "同梱物"), ("休眠客とは", "休眠"),
    ("コホートの意味は？", "コホート"), ("NPS", "NPS"), ("「LTV」とは", "LTV"),
])
def test_japanese_questions_find_the_term(typed: str, term: str) -> None:
    assert from_text(typed, JA.keywords, JA.glossary) == Input(inputs.DEFINE, term=term)


@pytest.mark.parametrize(("typed", "term"), [
    ("what is LTV", "LTV"), ("What is LTV?", "LTV"), ("LTV?", "LTV"), ("what's an RFM", None),
    ("what does F2 mean?", "F2 rate"), ("define cohort", "cohort"), ("what is a package insert?", "package insert"),
])
def test_english_questions_find_the_term(typed: str, term: str | None) -> None:
    got = from_text(typed, EN.keywords, EN.glossary)
    assert got == (Input(inputs.DEFINE, term=term) if term else Input(inputs.TEXT))


@pytest.mark.parametrize("typed", ["XYZとは", "売上って何？", "what is love", "とは", "今日はいい天気"])
def test_an_unknown_term_falls_through_to_text(typed: str) -> None:
    assert from_text(typed, JA.keywords, JA.glossary) == Input(inputs.TEXT)
    assert from_text(typed, EN.keywords, EN.glossary) == Input(inputs.TEXT)


def test_keywords_and_answers_still_come_first() -> None:
    assert from_text("A", JA.keywords, JA.glossary) == Input(inputs.ANSWER, choice="A")
    assert from_text("診断", JA.keywords, JA.glossary) == Input(inputs.START)
    assert from_text("データを削除", JA.keywords, JA.glossary) == Input(inputs.ERASE)
    assert from_text("Delete my data", EN.keywords, EN.glossary) == Input(inputs.ERASE)


def test_buttons_round_trip() -> None:
    for kind, kw in ((inputs.DEFINE, {"q": 3}), (inputs.ERASE, {}), (inputs.ERASE_YES, {}), (inputs.ERASE_NO, {})):
        assert from_button(inputs.button(kind, **kw)) == Input(kind, **kw)
    assert from_button("g:10") == Input(inputs.TEXT)  # no question 11


# ---- the content check --------------------------------------------------------------------------


def test_a_question_naming_an_undefined_term_is_refused(tmp_path: Path) -> None:
    d = real_data()
    d["glossary"]["questions"][2] = ["F2転換率", "LTVの親戚"]
    write(tmp_path, d)
    e = refused(tmp_path, "glossary.questions[3]")
    assert "LTVの親戚" in e.problem


def test_a_term_listed_twice_or_shadowing_a_keyword_is_refused(tmp_path: Path) -> None:
    d = real_data()
    d["glossary"]["terms"][1]["aliases"] = ["CRM"]
    write(tmp_path, d)
    refused(tmp_path, "glossary.terms[2]")
    d = real_data()
    d["glossary"]["terms"][0]["aliases"] = ["結果"]
    write(tmp_path, d)
    assert "keywords.result" in refused(tmp_path, "glossary.terms[1]").problem


def test_a_long_definition_and_a_missing_list_are_refused(tmp_path: Path) -> None:
    d = real_data()
    d["glossary"]["terms"][0]["text"] = "あ" * 201
    write(tmp_path, d)
    refused(tmp_path, "glossary.terms[1].text")
    d = real_data()
    del d["glossary"]["questions"][9]
    write(tmp_path, d)
    refused(tmp_path, "glossary.questions")


def test_privacy_texts_are_required_and_policy_needs_its_url(tmp_path: Path) -> None:
    d = real_data()
    del d["privacy"]["erased"]
    write(tmp_path, d)
    refused(tmp_path, "privacy.erased")
    d = real_data()
    d["privacy"]["policy"] = "ポリシーはこちら"
    write(tmp_path, d)
    refused(tmp_path, "privacy.policy")


# ---- the machine: definitions and deletion keep the place ----------------------------------------


M = build()
ASKING_Q3 = Conv(state=ASKING, sid=1, q=2, answers="AB", updated=T0, begun=T0, n=3)


@pytest.mark.parametrize("inp", [Input(inputs.DEFINE, term="LTV"), Input(inputs.DEFINE, q=2)])
def test_a_definition_mid_diagnosis_shows_the_same_question_again(inp: Input) -> None:
    step = M.step(ASKING_Q3, inp, T0 + 20)
    assert not step.changed and step.conv == ASKING_Q3
    assert step.outputs == (Definition(term=inp.term or "", q=inp.q), Question(1, 2))
    waiting = Conv(state=RESUME, sid=1, q=2, answers="AB", updated=T0, begun=T0, n=3)
    assert M.step(waiting, inp, T0 + 20).outputs[1:] == (Resume(1, 2),)
    done = Conv(state=DONE, sid=1, last="A" * 10, finished=T0, updated=T0, n=3)
    assert M.step(done, inp, T0 + 20).outputs == (Definition(term=inp.term or "", q=inp.q),)


def test_a_definition_after_expiry_puts_the_old_diagnosis_to_rest() -> None:
    step = M.step(ASKING_Q3, Input(inputs.DEFINE, term="LTV"), T0 + 30 * 86400)
    assert step.state == IDLE and step.outputs == (Definition(term="LTV"),)


def test_deletion_asks_then_yes_deletes_the_record_and_no_keeps_the_place() -> None:
    asked = M.step(ASKING_Q3, Input(inputs.ERASE), T0 + 20)
    assert asked.conv == ASKING_Q3 and asked.outputs == (Erasure("ask"),)
    kept = M.step(ASKING_Q3, Input(inputs.ERASE_NO), T0 + 20)
    assert kept.conv == ASKING_Q3 and kept.outputs == (Erasure("kept"), Question(1, 2))
    gone = M.step(ASKING_Q3, Input(inputs.ERASE_YES), T0 + 20)
    assert gone.conv is None and gone.state == IDLE and gone.outputs == (Erasure("done"),)


def test_the_welcome_names_the_policy_or_says_there_is_none() -> None:
    with_url = build(Settings(privacy_url="https://example.com/privacy"))
    out = with_url.step(Conv(), Input(inputs.FOLLOW), T0).outputs
    assert out == (Greeting("https://example.com/privacy"),)
    text = views.plain_text(JA, out[0])
    assert "https://example.com/privacy" in text and "データを削除" in text and "LINEの表示名" in text
    bare = views.plain_text(JA, M.step(Conv(), Input(inputs.FOLLOW), T0).outputs[0])
    assert JA.privacy.no_policy in bare and "https://" not in bare


def test_each_question_has_a_terms_button_that_lists_its_terms() -> None:
    for script in (JA, EN):
        buttons = views.question_buttons(script, 1, 3)
        terms = [b for b in buttons if b.data == "g:3"]
        assert len(terms) == 1 and terms[0].label == script.glossary.button
        listing = views.plain_text(script, Definition(q=3))
        for term in script.glossary.of_question(3):
            assert term.name in listing and term.text in listing
    assert views.plain_text(JA, Definition(term="LTV")).startswith("LTV：")
    ask = views.buttons_for(JA, Erasure("ask"))
    assert [b.data for b in ask] == ["e:1", "e:0"]
