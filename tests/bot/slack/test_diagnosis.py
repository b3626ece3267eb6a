"""The CRM diagnosis in a Slack DM: `/diagnosis`, buttons, typed answers, stale and double clicks."""

from __future__ import annotations

from typing import Any

import pytest

from conversations import keys, results
from conversations.content import advice_for
from conversations.keys import Subject
from tests.bot.slack.conftest import ALICE, BOB, CH, WS, SlackEnv, txt
from tests.fakes.slack_api import dm_channel_id
from tests.fakes.slack_signing import block_actions_payload, interaction_body, slash_command_body


def buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]]


def answer_button(message: dict[str, Any], letter: str) -> dict[str, Any]:
    found = [b for b in buttons(message) if b["value"].startswith("a:") and b["value"].endswith(":" + letter)]
    assert len(found) == 1, f"no single {letter} button in {message['text'][:40]!r}: {buttons(message)}"
    return found[0]


def click(env: SlackEnv, user: str, message: dict[str, Any], letter: str) -> None:
    button = answer_button(message, letter)
    env.click(user, message, button["action_id"], button["value"])


def start(env: SlackEnv, user: str = ALICE) -> dict[str, Any]:
    res = env.command("", user=user, channel=CH, command="/diagnosis")
    assert res.get_data(as_text=True) == txt("dm_only")
    return env.dms(user)[-1]


def dm_event(user: str, text: str, **extra: Any) -> dict[str, Any]:
    return {"type": "message", "channel": dm_channel_id(user), "user": user, "text": text,
            "ts": "1767225600.000200", "event_ts": "1767225600.000200", "channel_type": "im", **extra}


def test_diagnosis_starts_in_a_dm_with_buttons(slack_env: SlackEnv) -> None:
    q1 = start(slack_env)
    [opened] = slack_env.fake.calls("conversations.open")
    assert opened.args["users"] == ALICE
    assert [m["text"] for m in slack_env.dms(ALICE)] == [q1["text"]]
    assert q1["text"].startswith("Q1/10\n" + slack_env.svc.script.questions[0].text)
    assert [b["value"] for b in buttons(q1)] == ["a:1:0:A", "a:1:0:B", "a:1:0:C", "a:1:0:D", "r", "g:0"]
    assert q1["metadata"]["event_type"] == "crmbot_delivery"
    assert slack_env.channel_messages(CH) == []  # nothing in the channel the command came from
    conv = slack_env.conv(ALICE)
    assert (conv.state, conv.sid, conv.q, conv.answers) == ("asking", 1, 0, "")


@pytest.mark.parametrize(
    ("answers", "tier", "count"),
    [("AAAAAAAAAA", "A", 10), ("AAAAAAABCD", "B", 7), ("DDDDDDDDDD", "C", 0)],
)
def test_clicking_through_all_ten_questions_reaches_each_tier(
    slack_env: SlackEnv, answers: str, tier: str, count: int
) -> None:
    script = slack_env.svc.script
    start(slack_env)
    for i, letter in enumerate(answers):
        current = slack_env.dms(ALICE)[-1]
        assert current["text"].startswith(f"Q{i + 1}/10")
        click(slack_env, ALICE, current, letter)

    messages = slack_env.dms(ALICE)
    assert len(messages) == 11  # Q1..Q10 and the result, nothing twice
    result = messages[-1]
    label = script.tiers[tier].label
    assert label == f"{tier}評価"
    assert result["blocks"][0]["text"]["text"] == f"{script.text('result_heading')}: {label}"
    head = result["blocks"][1]["text"]["text"]
    assert head.startswith(f"*{label}*  Aの数：{count}/10")
    closer = {"A": "", "B": "A評価まであとAが2つ", "C": "B評価まであとAが7つ"}[tier]  # 10, 7 and 0 A's
    assert head.endswith(closer) and ("あと" in head) == bool(closer)
    texts = [b["text"]["text"] for b in result["blocks"] if b["type"] == "section"]
    theme = "\n".join(results.build(script, answers).theme)  # the sentences these answers do not contradict
    assert f"*{script.text('next_theme_heading')}*\n{theme}" in texts  # every tier's theme
    if tier == "A":
        point = f"*{script.text('all_a_heading')}*\n{script.text('all_a_text')}"  # nothing to fix: what next
    else:
        weakest = 9 if tier == "B" else 0  # the D at Q10; the first of ten Ds
        question = script.questions[weakest]
        point = (f"*{script.text('next_point_heading')}*\n*Q{weakest + 1} {question.topic}（あなたの回答：D）*\n"
                 f"{advice_for(question, 'D')}")
    assert point in texts
    answers_block = next(t for t in texts if t.startswith(f"*{script.text('answers_heading')}*"))
    for i, letter in enumerate(answers):  # each answer beside its question's topic
        assert f"{letter}  Q{i + 1} {script.questions[i].topic}" in answers_block
    first = script.qualify.questions[0]  # the first optional question follows the result in the same message
    if tier == "A":
        alt = script.text("result_alt_all_a", label=label, count=count, total=10)
    else:
        alt = script.text("result_alt", label=label, count=count, total=10, number=weakest + 1,
                          topic=script.questions[weakest].topic)
    assert result["text"] == f"{alt}\n{first.text}"
    advice = [f"v:{i}:{x}" for i, x in enumerate(answers) if x != "A"]
    qualify = [f"f:0:{n}" for n in range(1, len(first.choices) + 1)] + ["f:0:0"]
    # advice per non-A answer, then next steps; then the question's choices and its skip
    assert [b["value"] for b in buttons(result)] == [*advice, "k:1", "s", *qualify]

    raw = slack_env.r.get(keys.conv(Subject("slack", f"{WS}.{ALICE}")))
    assert raw is not None
    conv = slack_env.conv(ALICE)
    assert (conv.state, conv.last) == ("done", answers)
    assert slack_env.pending() == 0


def test_a_stale_click_advances_nothing(slack_env: SlackEnv) -> None:
    q1 = start(slack_env)
    click(slack_env, ALICE, q1, "A")
    q2 = slack_env.dms(ALICE)[-1]
    click(slack_env, ALICE, q2, "B")
    click(slack_env, ALICE, q1, "C")  # an old question's button, after moving on

    conv = slack_env.conv(ALICE)
    assert (conv.q, conv.answers) == (2, "AB")
    stale = slack_env.dms(ALICE)[-1]
    assert stale["text"].startswith(slack_env.svc.script.text("stale", number=3))
    assert "Q3/10" in stale["text"]
    assert len(slack_env.dms(ALICE)) == 4  # Q1, Q2, Q3, the stale notice with Q3 again
    click(slack_env, ALICE, stale, "D")  # the buttons of the re-asked question work
    assert slack_env.conv(ALICE).answers == "ABD"


def test_the_same_click_delivered_twice_counts_once(slack_env: SlackEnv) -> None:
    q1 = start(slack_env)
    button = answer_button(q1, "A")
    body = interaction_body(block_actions_payload(ALICE, button["action_id"], button["value"], message=q1))
    slack_env.ok(body)
    slack_env.ok(body)
    conv = slack_env.conv(ALICE)
    assert (conv.q, conv.answers) == (1, "A")
    assert [m["text"][:5] for m in slack_env.dms(ALICE)] == ["Q1/10", "Q2/10"]


def test_a_double_click_counts_once(slack_env: SlackEnv) -> None:
    q1 = start(slack_env)
    click(slack_env, ALICE, q1, "A")
    click(slack_env, ALICE, q1, "A")  # a new action_ts: the user clicked twice
    conv = slack_env.conv(ALICE)
    assert (conv.q, conv.answers) == (1, "A")
    assert [m["text"][:5] for m in slack_env.dms(ALICE)] == ["Q1/10", "Q2/10"]


def test_simultaneous_clicks_advance_exactly_one_step(slack_env: SlackEnv) -> None:
    q1 = start(slack_env)
    button = answer_button(q1, "A")
    bodies = [interaction_body(block_actions_payload(ALICE, button["action_id"], button["value"], message=q1))
              for _ in range(4)]
    for body in bodies:  # all acked before any listener is waited for
        assert slack_env.post(body).status_code == 200
    slack_env.settle()
    conv = slack_env.conv(ALICE)
    assert (conv.q, conv.answers) == (1, "A")
    assert [m["text"][:5] for m in slack_env.dms(ALICE)] == ["Q1/10", "Q2/10"]


def test_typed_answers_in_the_dm(slack_env: SlackEnv) -> None:
    start(slack_env)
    slack_env.event(dm_event(ALICE, "b"))
    slack_env.event(dm_event(ALICE, "Ｃ"))  # full width
    slack_env.event(dm_event(ALICE, "戻る"))
    slack_env.event(dm_event(ALICE, "d"))
    conv = slack_env.conv(ALICE)
    assert (conv.q, conv.answers) == (2, "BD")
    assert [m["text"][:5] for m in slack_env.dms(ALICE)] == ["Q1/10", "Q2/10", "Q3/10", "Q2/10", "Q3/10"]


def test_a_typed_start_begins_the_diagnosis(slack_env: SlackEnv) -> None:
    slack_env.event(dm_event(BOB, "診断"))
    [q1] = slack_env.dms(BOB)
    assert q1["text"].startswith("Q1/10")
    assert slack_env.conv(BOB).state == "asking"


@pytest.mark.parametrize(
    "extra",
    [{"channel_type": "channel", "channel": CH}, {"subtype": "message_changed"}, {"bot_id": "B0OTHER"}],
    ids=["channel-message", "edited", "from-a-bot"],
)
def test_messages_that_are_not_a_users_dm_are_ignored(slack_env: SlackEnv, extra: dict[str, Any]) -> None:
    start(slack_env)
    slack_env.event(dm_event(ALICE, "a", **extra))
    conv = slack_env.conv(ALICE)
    assert (conv.q, conv.answers) == (0, "")
    assert len(slack_env.dms(ALICE)) == 1


def test_diagnosis_again_mid_way_offers_to_continue(slack_env: SlackEnv) -> None:
    q1 = start(slack_env)
    click(slack_env, ALICE, q1, "A")
    slack_env.ok(slash_command_body("/diagnosis", "", ALICE, CH))
    prompt = slack_env.dms(ALICE)[-1]
    assert prompt["text"] == slack_env.svc.script.text("resume_prompt", number=2, total=10)
    cont = next(b for b in buttons(prompt) if b["value"].startswith("c:"))
    slack_env.click(ALICE, prompt, cont["action_id"], cont["value"])
    assert slack_env.dms(ALICE)[-1]["text"].startswith("Q2/10")
    assert slack_env.conv(ALICE).answers == "A"


def test_an_advice_button_answers_with_that_questions_advice_for_the_answers_level(slack_env: SlackEnv) -> None:
    script = slack_env.svc.script
    start(slack_env)
    for letter in "ABCAAAAAAD":
        click(slack_env, ALICE, slack_env.dms(ALICE)[-1], letter)
    result = slack_env.dms(ALICE)[-1]
    for value, q, letter in (("v:1:B", 1, "B"), ("v:9:D", 9, "D")):
        button = next(b for b in buttons(result) if b["value"] == value)
        slack_env.click(ALICE, result, button["action_id"], button["value"])
        reply = slack_env.dms(ALICE)[-1]
        question = script.questions[q]
        assert reply["text"] == (f"Q{q + 1} {question.topic}（あなたの回答：{letter}）\n"
                                 f"{advice_for(question, letter)}")
    assert slack_env.conv(ALICE).state == "done"  # nothing moved
