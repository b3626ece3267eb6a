"""Channel-neutral wording of the machine's outputs, from the script.

Each channel (LINE, Slack, terminal, the try page) decides layout and buttons; the words come from here so
they are written once. :func:`plain_text` and :func:`buttons_for` are a ``match`` over every output kind
(:data:`conversations.outputs.Output`) ending in ``assert_never``: a new kind fails the type check here
until it has its words and buttons.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import assert_never

from conversations import inputs
from conversations.content import Script, advice_for
from conversations.outputs import (
    Advice,
    ConfirmRestart,
    ConsultAck,
    DoneHelp,
    Greeting,
    Notice,
    Offer,
    OptinOffer,
    Output,
    Question,
    Reminder,
    Result,
    Resume,
)
from scoring import CHOICES, QUESTION_COUNT, Comparison, DiagnosisResult, compare, next_tier, score


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
            inputs.button(inputs.ANSWER, sid=sid, q=q, choice=x),
            f"{x}: {question.choices[x].text}",
        )
        for x in CHOICES
    ]
    if q > 0:
        label = script.text("back_button")
        buttons.append(Button(label, inputs.button(inputs.BACK, sid=sid, q=q), label))
    label = script.text("restart_ask_button")
    buttons.append(Button(label, inputs.button(inputs.RESTART), label))
    return buttons


def confirm_restart_buttons(script: Script, sid: int) -> list[Button]:
    yes, no = script.text("restart_yes_button"), script.text("restart_no_button")
    return [Button(yes, inputs.button(inputs.RESTART_YES, sid=sid), yes),
            Button(no, inputs.button(inputs.CONTINUE, sid=sid), no)]


def advice_button(script: Script, q: int, letter: str) -> Button:
    """A result row's tap: question q's advice for an answer at this level."""
    label = script.text("advice_button", number=q + 1)
    return Button(label, inputs.button(inputs.ADVICE, q=q, choice=letter), label)


def start_button(script: Script) -> Button:
    label = script.text("start_button")
    return Button(label, inputs.button(inputs.START), label)


def retake_button(script: Script) -> Button:
    label = script.text("retake_button")
    return Button(label, inputs.button(inputs.START), label)


def consult_button(script: Script, sid: int) -> Button:
    label = script.text("consult_button")
    return Button(label, inputs.button(inputs.CONSULT, sid=sid), label)


@dataclass(frozen=True)
class ConsultView:
    text: str  # the confirmation (and, with a booking page, the line that points to it)
    url: str  # the booking page ("" none)
    url_label: str


def consult_view(script: Script, out: ConsultAck) -> ConsultView:
    lines = [script.text("consult_again" if out.again else "consult_ack")]
    if out.url:
        lines.append(script.text("consult_booking"))
    return ConsultView("\n".join(lines), out.url, script.text("consult_book_button"))


def reminder_text(script: Script, out: Reminder) -> str:
    """The quarterly invitation: an A-tier result is offered its next theme rather than the same ten
    questions; any other names its point to fix and asks whether it has moved. A reminder committed
    before it named the point says the tier, as it always did."""
    if out.tier == "A":
        return script.text("reminder_next", label=script.tiers["A"].label, theme=script.tiers["A"].next_theme)
    if out.point is None:
        return script.text("reminder", label=script.tiers[out.tier].label)
    return script.text("reminder_point", number=out.point + 1, topic=script.questions[out.point].topic)


def reminder_buttons(script: Script, out: Reminder) -> list[Button]:
    """A point named: yes / not yet / consult, then take it again; the next theme: consult (and the
    diagnosis is still there by typing 診断); the old shape: take it again."""
    if out.tier == "A":
        return [consult_button(script, 0)]
    if out.point is None:
        return [retake_button(script)]
    yes, no = script.text("moved_yes_button"), script.text("moved_no_button")
    return [Button(yes, inputs.button(inputs.MOVED_YES), yes), Button(no, inputs.button(inputs.MOVED_NO), no),
            consult_button(script, 0), retake_button(script)]


def optin_buttons(script: Script) -> list[Button]:
    yes, no = script.text("optin_yes_button"), script.text("optin_no_button")
    return [Button(yes, inputs.button(inputs.OPT_IN), yes), Button(no, inputs.button(inputs.OPT_OUT), no)]


def resume_buttons(script: Script, sid: int) -> list[Button]:
    cont, restart = script.text("continue_button"), script.text("restart_button")
    return [Button(cont, inputs.button(inputs.CONTINUE, sid=sid), cont),
            Button(restart, inputs.button(inputs.RESTART), restart)]


@dataclass(frozen=True)
class AnswerRow:
    q: int  # 0-based
    topic: str
    letter: str
    label: str  # the chosen answer's short label
    advice: Button | None  # None for an A answer


@dataclass(frozen=True)
class ResultView:
    result: DiagnosisResult
    heading: str
    label: str
    count_line: str
    framing: str  # "" when the file has no framing line
    summary: str
    closeness: str  # "" at A評価
    theme_heading: str
    theme: str  # the tier's next theme
    point_heading: str  # "next point to fix", or the all-A heading
    point_title: str  # "Q3 topic (your answer: C)"; "" when all ten are A
    point_text: str  # the advice for that answer's level; "" when all ten are A
    answers_heading: str
    rows: tuple[AnswerRow, ...]
    advice_hint: str  # "" when every answer is A
    comparison: tuple[str, ...]  # lines comparing with the result before ("" none)
    alt: str


def advice_title(script: Script, q: int, letter: str) -> str:
    return script.text("advice_title", number=q + 1, topic=script.questions[q].topic, letter=letter)


def comparison_lines(script: Script, c: Comparison) -> tuple[str, ...]:
    lines = [
        script.text("compare_heading"),
        script.text("compare_line", before_label=script.tiers[c.before.tier].label, before_count=c.before.a_count,
                    after_label=script.tiers[c.after.tier].label, after_count=c.after.a_count,
                    total=QUESTION_COUNT),
    ]
    if c.moved:
        items = "、".join(f"Q{i + 1} {script.questions[i].topic} {x}→{y}" for i, x, y in c.moved) \
            if script.locale == "ja" else ", ".join(f"Q{i + 1} {script.questions[i].topic} {x}->{y}"
                                                     for i, x, y in c.moved)
        lines.append(script.text("compare_moved", items=items))
    else:
        lines.append(script.text("compare_same"))
    if c.point_before is not None and c.point_now is not None:
        topic = script.questions[c.point_before].topic
        if c.point_fixed:
            lines.append(script.text("compare_point_fixed", number=c.point_before + 1, topic=topic))
        else:
            lines.append(script.text("compare_point_open", number=c.point_before + 1, topic=topic,
                                     letter=c.point_now))
    return tuple(lines)


def result_view(script: Script, answers: str, prev: str = "") -> ResultView:
    res = score(answers)
    tier = script.tiers[res.tier]
    up = next_tier(res.a_count)
    if res.next_point is None:
        point_heading, point_title, point_text = script.text("all_a_heading"), "", ""
    else:
        letter = res.answers[res.next_point]
        point_heading = script.text("next_point_heading")
        point_title = advice_title(script, res.next_point, letter)
        point_text = advice_for(script.questions[res.next_point], letter)
    rows = tuple(
        AnswerRow(i, script.questions[i].topic, a, script.questions[i].choices[a].label,
                  None if a == "A" else advice_button(script, i, a))
        for i, a in enumerate(res.answers)
    )
    return ResultView(
        result=res,
        heading=script.text("result_heading"),
        label=tier.label,
        count_line=script.text("result_count", count=res.a_count, total=QUESTION_COUNT),
        framing=script.texts.get("framing", ""),
        summary=tier.summary,
        closeness="" if up is None else script.text("closeness", label=script.tiers[up.tier].label,
                                                    count=up.missing),
        theme_heading=script.text("next_theme_heading"),
        theme=tier.next_theme,
        point_heading=point_heading,
        point_title=point_title,
        point_text=point_text,
        answers_heading=script.text("answers_heading"),
        rows=rows,
        advice_hint="" if res.next_point is None else script.text("advice_hint"),
        comparison=comparison_lines(script, compare(prev, res.answers)) if prev else (),
        alt=script.text("result_alt", label=tier.label, count=res.a_count, total=QUESTION_COUNT),
    )


def result_text(script: Script, answers: str, prev: str = "") -> str:
    v = result_view(script, answers, prev)
    lines = [v.heading, f"【{v.label}】 {v.count_line}"]
    if v.closeness:
        lines.append(v.closeness)
    if v.framing:
        lines += ["", v.framing]
    lines += ["", v.summary, "", f"■ {v.theme_heading}", v.theme, ""]
    if v.point_title:
        lines += [f"■ {v.point_heading}: {v.point_title}", v.point_text]
    else:
        lines.append(f"■ {v.point_heading}")
    lines += ["", f"■ {v.answers_heading}"]
    lines += [f"Q{r.q + 1} {r.topic}: {r.letter} {r.label}" for r in v.rows]
    if v.comparison:
        lines += ["", f"■ {v.comparison[0]}", *v.comparison[1:]]
    return "\n".join(lines)


def advice_text(script: Script, q: int, letter: str) -> str:
    return f"{advice_title(script, q, letter)}\n{advice_for(script.questions[q], letter)}"


def greeting_text(script: Script) -> str:
    return f"{script.text('greeting')}\n\n{script.text('privacy_note')}"


def notice_text(script: Script, out: Notice) -> str:
    return script.text(out.key) if out.number is None else script.text(out.key, number=out.number)


def plain_text(script: Script, out: Output) -> str:
    """The whole output as plain text (terminal, notifications, logs of content in tests)."""
    match out:
        case Question(q=q):
            return question_text(script, q)
        case Result(answers=answers, prev=prev):
            return result_text(script, answers, prev)
        case Advice(q=q, choice=choice):
            return advice_text(script, q, choice)
        case ConfirmRestart(q=q):
            return script.text("restart_confirm", count=q)
        case Greeting():
            return greeting_text(script)
        case Resume(q=q):
            return script.text("resume_prompt", number=q + 1, total=QUESTION_COUNT)
        case Notice():
            return notice_text(script, out)
        case Reminder():
            return reminder_text(script, out)
        case ConsultAck():
            v = consult_view(script, out)
            return f"{v.text}\n{v.url}" if v.url else v.text
        case Offer():
            return script.text("offer")
        case DoneHelp():
            return script.text("done_help")
        case OptinOffer():
            return script.text("optin_offer")
        case _:
            assert_never(out)


def buttons_for(script: Script, out: Output) -> list[Button]:
    """The buttons that go with an output (LINE quick replies, Slack buttons, terminal hints)."""
    match out:
        case Question(sid=sid, q=q):
            return question_buttons(script, sid, q)
        case Resume(sid=sid):
            return resume_buttons(script, sid)
        case ConfirmRestart(sid=sid):
            return confirm_restart_buttons(script, sid)
        case Greeting() | Offer():
            return [start_button(script)]
        case Result(sid=sid, answers=answers):
            # the advice of each non-A answer (the card's rows on LINE; buttons elsewhere), then the next steps
            rows = result_view(script, answers).rows
            return [*(r.advice for r in rows if r.advice), consult_button(script, sid), retake_button(script)]
        case Reminder():
            return reminder_buttons(script, out)
        case DoneHelp():
            return [retake_button(script)]
        case OptinOffer():
            return optin_buttons(script)
        case Notice() | Advice() | ConsultAck():
            return []
        case _:
            assert_never(out)
