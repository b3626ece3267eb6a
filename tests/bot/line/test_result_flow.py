"""The result as a consultant gives it, and a careful flow, end to end: signed LINE webhooks -> the web
app -> real Redis -> the worker -> the fake LINE API."""

from __future__ import annotations

import json
from typing import Any

import pytest

from conversations import keys, results
from conversations.content import advice_for
from conversations.keys import Subject
from conversations.machine import Conv
from tests.bot.line.conftest import LineEnv
from tests.bot.line.helpers import LineUser, answer_rows, last_quick_reply_data

ANSWERS_OF = {  # the edges of every tier
    0: "DDDDDDDDDD",
    6: "AAAAAACBDC",
    7: "AAAAAAABCB",
    8: "AAAAAAAADB",
    9: "AAAAAAAAAC",
    10: "AAAAAAAAAA",
}


def conv_of(env: LineEnv, user: LineUser) -> Conv:
    return Conv.from_json(env.r.get(keys.conv(Subject("line", user.user_id))))


def answer_button(env: LineEnv, user: LineUser, letter: str) -> str:
    data = [d for d in last_quick_reply_data(env.fake.delivered(user.user_id)) if d.startswith("a:")]
    assert data, f"no answer buttons in the last message: {env.fake.summary()}"
    return next(d for d in data if d.endswith(":" + letter))


def answer_all(env: LineEnv, user: LineUser, answers: str) -> dict[str, Any]:
    """Tap the ten answers from the buttons sent; return the result card."""
    for letter in answers:
        user.tap(answer_button(env, user, letter))
        env.settle()
    return result_card(env, user)


def take(env: LineEnv, user: LineUser, answers: str) -> dict[str, Any]:
    user.follow()
    env.settle()
    user.tap("s")
    env.settle()
    return answer_all(env, user, answers)


def result_card(env: LineEnv, user: LineUser) -> dict[str, Any]:
    cards = [m for m in env.fake.delivered(user.user_id) if m["type"] == "flex" and "header" in m["contents"]]
    assert cards, env.fake.summary()
    return cards[-1]


def card_texts(card: dict[str, Any]) -> list[str]:
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "text":
                found.append(node["text"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(card["contents"])
    return found


@pytest.mark.parametrize("a_count", [0, 6, 7, 8, 9, 10, -1], ids=["0A", "6A", "7A", "8A", "9A", "10A", "allB"])
def test_every_result_names_its_theme_the_point_with_advice_for_its_level_and_how_close_the_next_tier_is(
    line_env: LineEnv, a_count: int
) -> None:
    script = line_env.svc.script
    answers = ANSWERS_OF.get(a_count, "BBBBBBBBBB")
    user = line_env.user()
    card = take(line_env, user, answers)
    got = card_texts(card)
    count = answers.count("A")
    tier = "A" if count >= 9 else "B" if count >= 7 else "C"
    built = results.build(script, answers)  # the tier's sentences that these answers do not contradict
    assert script.tiers[tier].label in got and "\n".join(built.theme) in got and "\n".join(built.summary) in got
    assert script.text("next_theme_heading") in got
    closeness = {"A": None, "B": ("A評価", 9 - count), "C": ("B評価", 7 - count)}[tier]
    if closeness is None:
        assert not any("まであとAが" in t for t in got)
    else:
        assert script.text("closeness", label=closeness[0], count=closeness[1]) in got
    if count == 10:
        assert script.text("all_a_heading") in got and script.text("next_point_heading") not in got
        assert script.text("all_a_text") in got  # what to watch, and where to go next
        assert all(r["data"] == "" for r in answer_rows(card))
    else:
        weakest = max(range(10), key=lambda i: ("ABCD".index(answers[i]), -i))
        letter = answers[weakest]
        question = script.questions[weakest]
        assert script.text("next_point_heading") in got
        assert f"Q{weakest + 1} {question.topic}（あなたの回答：{letter}）" in got
        assert advice_for(question, letter) in got  # the advice for that answer's level
    rows = answer_rows(card)
    assert [r["letter"] for r in rows] == list(answers)
    assert [r["text"] for r in rows] == [f"Q{i + 1} {q.topic}" for i, q in enumerate(script.questions)]
    assert [r["data"] for r in rows] == [f"v:{i}:{x}" if x != "A" else "" for i, x in enumerate(answers)]


def test_tapping_a_row_answers_with_that_questions_advice_for_the_answers_level(line_env: LineEnv) -> None:
    script = line_env.svc.script
    user = line_env.user()
    card = take(line_env, user, "ABCDAAAAAA")
    for row, q in zip(answer_rows(card)[1:4], (1, 2, 3), strict=True):
        user.tap(row["data"])
        line_env.settle()
        reply = line_env.fake.delivered(user.user_id)[-1]
        letter = "ABCD"[q]
        question = script.questions[q]
        assert reply["text"] == f"Q{q + 1} {question.topic}（あなたの回答：{letter}）\n{advice_for(question, letter)}"
    assert conv_of(line_env, user).state == "done"


def test_start_over_asks_first_and_keeps_the_place_until_confirmed(line_env: LineEnv) -> None:
    user = line_env.user()
    user.say("診断")
    for x in "ABC":
        line_env.settle()
        user.say(x)
    line_env.settle()
    user.say("最初から")
    line_env.settle()
    prompt = line_env.fake.delivered(user.user_id)[-1]
    assert prompt["text"] == line_env.svc.script.text("restart_confirm", count=3)
    assert last_quick_reply_data([prompt]) == ["r:1", "c:1"]
    state = conv_of(line_env, user)
    assert (state.state, state.q, state.answers) == ("confirm", 3, "ABC")
    user.tap("c:1")  # no: back to the open question, nothing lost
    line_env.settle()
    assert line_env.fake.delivered(user.user_id)[-1]["text"].startswith("Q4/10")
    state = conv_of(line_env, user)
    assert (state.state, state.q, state.answers) == ("asking", 3, "ABC")
    user.tap("r")
    line_env.settle()
    user.tap("r:1")  # yes
    line_env.settle()
    state = conv_of(line_env, user)
    assert (state.state, state.sid, state.q, state.answers) == ("asking", 2, 0, "")
    assert line_env.fake.delivered(user.user_id)[-1]["text"].startswith("Q1/10")


@pytest.mark.parametrize("word", ["停止", "やめる", "中止"])
def test_stop_mid_diagnosis_ends_the_reminder_and_shows_the_question_again(line_env: LineEnv, word: str) -> None:
    user = line_env.user()
    take(line_env, user, "AAAAAAAAAA")
    user.tap("o:1")
    line_env.settle()
    assert conv_of(line_env, user).remind
    user.say("診断")
    line_env.settle()
    user.say("B")
    line_env.settle()
    user.say(word)
    line_env.settle()
    notice, again = line_env.fake.delivered(user.user_id)[-2:]
    assert notice["text"] == line_env.svc.script.text("stopped_midway")  # its own words: the place is kept
    assert again["text"].startswith("Q2/10")
    assert [d for d in last_quick_reply_data([again]) if d.startswith("a:")] == [f"a:2:1:{x}" for x in "ABCD"]
    state = conv_of(line_env, user)
    assert not state.remind and (state.state, state.q, state.answers) == ("asking", 1, "B")


def test_result_word_shows_the_last_result_again_or_says_there_is_none(line_env: LineEnv) -> None:
    script = line_env.svc.script
    user = line_env.user()
    user.follow()
    line_env.settle()
    user.say("結果")
    line_env.settle()
    none, offer = line_env.fake.delivered(user.user_id)[-2:]
    assert none["text"] == script.text("no_result") and offer["text"] == script.text("offer")
    assert last_quick_reply_data([offer]) == ["s"]
    user.tap("s")
    line_env.settle()
    first = answer_all(line_env, user, "AAAAAAABCB")
    sent = len(line_env.fake.delivered(user.user_id))
    for word in ("結果", "result"):
        line_env.clock.advance(60)
        user.say(word)
        line_env.settle()
        again = line_env.fake.delivered(user.user_id)[-1]
        assert again["type"] == "flex" and again["contents"] == first["contents"]
    assert len(line_env.fake.delivered(user.user_id)) == sent + 2
    assert conv_of(line_env, user).state == "done"


def test_a_retake_is_compared_with_the_result_before(line_env: LineEnv) -> None:
    script = line_env.svc.script
    user = line_env.user()
    take(line_env, user, "AACAAADAAB")  # 7 A: B評価, the point to fix is Q7 (D)
    user.tap("s")
    line_env.settle()
    card = answer_all(line_env, user, "AAAAAAAAAB")  # 9 A: A評価; Q3 and Q7 now A
    got = card_texts(card)
    assert script.text("compare_heading") in got
    assert script.text("compare_line", before_label="B評価", before_count=7, after_label="A評価", after_count=9,
                       total=10) in got
    moved = f"Q3 {script.questions[2].topic} C→A、Q7 {script.questions[6].topic} D→A"
    assert script.text("compare_moved_up", items=moved) in got
    assert script.text("compare_point_fixed", number=7, topic=script.questions[6].topic) in got
    state = conv_of(line_env, user)
    assert (state.last, state.prev) == ("AAAAAAAAAB", "AACAAADAAB")
    # a third take is compared with the second, and an open point says so
    user.tap("s")
    line_env.settle()
    card = answer_all(line_env, user, "AAAAAAAAAD")
    got = card_texts(card)
    assert script.text("compare_line", before_label="A評価", before_count=9, after_label="A評価", after_count=9,
                       total=10) in got
    assert script.text("compare_point_open", number=10, topic=script.questions[9].topic, letter="D") in got
    assert not json.dumps(card, ensure_ascii=False).count("C→A")


def test_a_first_result_has_no_comparison(line_env: LineEnv) -> None:
    user = line_env.user()
    card = take(line_env, user, "AAAAAAAAAB")
    assert line_env.svc.script.text("compare_heading") not in card_texts(card)
