"""Channel-neutral wording of the machine's outputs, from the script.

Each channel (LINE, Slack, terminal) decides layout and buttons; the words come from here so
they are written once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from conversations import inputs as I
from conversations.content import Script
from scoring import CHOICES, QUESTION_COUNT, DiagnosisResult, score


@dataclass(frozen=True)
class Button:
    label: str
    data: str  # postback data (conversations.inputs.button)
    echo: str  # what the user's side shows as their message when tapped


def question_text(script: Script, q: int) -> str:
    question = script.questions[q]
    lines = [script.text("question", number=q + 1, total=QUESTION_COUNT, text=question.text)]
    lines += [script.text("choice_line", letter=x, text=question.choices[x].text) for x in CHOICES]
    return "\n".join(lines)


def question_buttons(script: Script, sid: int, q: int) -> list[Button]:
    question = script.questions[q]
    buttons = [
        Button(
            f"{x}: {question.choices[x].label}",
            I.button(I.ANSWER, sid=sid, q=q, choice=x),
            f"{x}: {question.choices[x].text}",
        )
        for x in CHOICES
    ]
    if q > 0:
        label = script.text("back_button")
        buttons.append(Button(label, I.button(I.BACK, sid=sid, q=q), label))
    label = script.text("restart_button")
    buttons.append(Button(label, I.button(I.RESTART), label))
    return buttons


def start_button(script: Script) -> Button:
    label = script.text("start_button")
    return Button(label, I.button(I.START), label)


def retake_button(script: Script) -> Button:
    label = script.text("retake_button")
    return Button(label, I.button(I.START), label)


def consult_button(script: Script, sid: int) -> Button:
    label = script.text("consult_button")
    return Button(label, I.button(I.CONSULT, sid=sid), label)


@dataclass(frozen=True)
class ConsultView:
    text: str  # the confirmation (and, with a booking page, the line that points to it)
    url: str  # the booking page ("" none)
    url_label: str


def consult_view(script: Script, out: dict[str, Any]) -> ConsultView:
    lines = [script.text("consult_again" if out.get("again") else "consult_ack")]
    url = str(out.get("url") or "")
    if url:
        lines.append(script.text("consult_booking"))
    return ConsultView("\n".join(lines), url, script.text("consult_book_button"))


def optin_buttons(script: Script) -> list[Button]:
    yes, no = script.text("optin_yes_button"), script.text("optin_no_button")
    return [Button(yes, I.button(I.OPT_IN), yes), Button(no, I.button(I.OPT_OUT), no)]


def resume_buttons(script: Script, sid: int) -> list[Button]:
    cont, restart = script.text("continue_button"), script.text("restart_button")
    return [Button(cont, I.button(I.CONTINUE, sid=sid), cont), Button(restart, I.button(I.RESTART), restart)]


@dataclass(frozen=True)
class ResultView:
    result: DiagnosisResult
    heading: str
    label: str
    count_line: str
    summary: str
    point_heading: str
    point_title: str  # the question's topic, or the tier's next theme title when all are A
    point_text: str
    alt: str


def result_view(script: Script, answers: str) -> ResultView:
    res = score(answers)
    tier = script.tiers[res.tier]
    if res.next_point is None:
        point_title, point_text = tier.label, tier.next_theme
    else:
        question = script.questions[res.next_point]
        point_title = f"Q{res.next_point + 1} {question.topic}"
        point_text = question.advice
    return ResultView(
        result=res,
        heading=script.text("result_heading"),
        label=tier.label,
        count_line=script.text("result_count", count=res.a_count, total=QUESTION_COUNT),
        summary=tier.summary,
        point_heading=script.text("next_point_heading"),
        point_title=point_title,
        point_text=point_text,
        alt=script.text("result_alt", label=tier.label, count=res.a_count, total=QUESTION_COUNT),
    )


def result_text(script: Script, answers: str) -> str:
    v = result_view(script, answers)
    marks = " ".join(f"Q{i + 1}:{a}" for i, a in enumerate(v.result.answers))
    return "\n".join(
        [v.heading, f"【{v.label}】 {v.count_line}", marks, "", v.summary, "", f"■ {v.point_heading}: {v.point_title}",
         v.point_text]
    )


def plain_text(script: Script, out: dict[str, Any]) -> str:
    """The whole output as plain text (terminal, notifications, logs of content in tests)."""
    kind = out["type"]
    if kind == "question":
        return question_text(script, out["q"])
    if kind == "result":
        return result_text(script, out["answers"])
    if kind == "resume":
        return script.text("resume_prompt", number=out["q"] + 1, total=QUESTION_COUNT)
    if kind == "notice":
        params = {k: v for k, v in out.items() if k not in ("type", "key")}
        return script.text(out["key"], **params)
    if kind == "reminder":
        return script.text("reminder", label=script.tiers[out["tier"]].label)
    if kind == "consult_ack":
        v = consult_view(script, out)
        return f"{v.text}\n{v.url}" if v.url else v.text
    return script.text({"greeting": "greeting", "offer": "offer", "done_help": "done_help",
                        "optin_offer": "optin_offer"}[kind])


def buttons_for(script: Script, out: dict[str, Any]) -> list[Button]:
    """The buttons that go with an output (LINE quick replies, Slack buttons, terminal hints)."""
    kind = out["type"]
    if kind == "question":
        return question_buttons(script, out["sid"], out["q"])
    if kind == "resume":
        return resume_buttons(script, out["sid"])
    if kind in ("greeting", "offer"):
        return [start_button(script)]
    if kind == "result":
        return [consult_button(script, out["sid"]), retake_button(script)]
    if kind in ("done_help", "reminder"):
        return [retake_button(script)]
    if kind == "optin_offer":
        return optin_buttons(script)
    return []
