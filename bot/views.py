"""Channel-neutral wording of the machine's outputs, from the script.

Each channel (LINE, Slack, terminal, the try page) decides layout and buttons; the words come from here so
they are written once. :func:`plain_text` and :func:`buttons_for` are a ``match`` over every output kind
(:data:`conversations.outputs.Output`) ending in ``assert_never``: a new kind fails the type check here
until it has its words and buttons.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import assert_never

from conversations import inputs, results
from conversations.content import Script, advice_for
from conversations.outputs import (
    Advice,
    BookingNote,
    ConfirmRestart,
    ConsultAck,
    Definition,
    DoneHelp,
    Erasure,
    FollowOffer,
    FollowStep,
    Greeting,
    Heard,
    Notice,
    Offer,
    OptinOffer,
    Output,
    Qualify,
    Question,
    Reminder,
    Result,
    Resume,
    Slots,
)
from scoring import CHOICES, QUESTION_COUNT, Comparison, DiagnosisResult, compare, next_tier
from scoring.periods import zone


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
    if script.glossary.button and script.glossary.of_question(q):
        buttons.append(Button(script.glossary.button, inputs.button(inputs.DEFINE, q=q),
                              script.glossary.heading.format(number=q + 1)))
    return buttons


def definition_text(script: Script, out: Definition) -> str:
    """A term's definition, or every term question ``q`` uses with its definition (a term the script no longer
    has is left out)."""
    glossary = script.glossary
    sep = "：" if script.locale == "ja" else ": "
    if out.term:
        term = glossary.terms.get(out.term)
        return f"{term.name}{sep}{term.text}" if term else ""
    q = out.q or 0
    lines = [glossary.heading.format(number=q + 1)]
    lines += [f"・{t.name}{sep}{t.text}" for t in glossary.of_question(q)]
    return "\n".join(lines)


def erasure_text(script: Script, out: Erasure) -> str:
    p = script.privacy
    return {"ask": p.erase_confirm, "kept": p.erase_kept, "done": p.erased}[out.stage]


def erasure_buttons(script: Script, out: Erasure) -> list[Button]:
    if out.stage != "ask":
        return []
    yes, no = script.privacy.erase_yes_button, script.privacy.erase_no_button
    return [Button(yes, inputs.button(inputs.ERASE_YES), yes), Button(no, inputs.button(inputs.ERASE_NO), no)]


def privacy_text(script: Script, url: str = "") -> str:
    """What is kept, every use, how to delete it; then the policy's address, or that there is none yet."""
    p = script.privacy
    return f"{p.note}\n{p.policy.format(url=url) if url else p.no_policy}"


def qualify_text(script: Script, out: Qualify) -> str:
    """A qualification question, or the thanks after the last one."""
    asked = script.qualify.questions
    return asked[out.q].text if out.q < len(asked) else script.qualify.thanks


def qualify_buttons(script: Script, out: Qualify) -> list[Button]:
    """A qualification question's choices, then its skip (none with the thanks)."""
    asked = script.qualify.questions
    if out.q >= len(asked):
        return []
    buttons = [Button(c, inputs.button(inputs.QUALIFY, q=out.q, choice=str(n)), c)
               for n, c in enumerate(asked[out.q].choices, start=1)]
    skip = script.qualify.skip_button
    return [*buttons, Button(skip, inputs.button(inputs.QUALIFY, q=out.q, choice="0"), skip)]


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
    if out.sid == 0:  # no diagnosis taken: it is offered as preparation, never required
        lines.append(script.text("consult_first"))
    lines += [script.text(f"consult_{part}", value=value) for part, value in script.consult.items()]
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
class PlanLine:
    when: str  # "this month", "next month", "this quarter"
    title: str  # "Q3 topic"
    step: str  # one short step at the owner's level
    peer: str = ""  # the share of shops answering A to this question ("" none shown)


@dataclass(frozen=True)
class ResultView:
    """A result's parts in the order every channel shows them: the header (tier, A count, how close the
    next tier is), the comparison with the result before (on a retake), the one point to fix, the 90-day
    plan, the framing line, the tier's summary and next theme, and the answers last."""

    result: DiagnosisResult
    heading: str
    label: str
    count_line: str
    closeness: str  # "" at A評価
    comparison: tuple[str, ...]  # heading and lines comparing with the result before (() none)
    point_heading: str  # "the one point to fix next", or the all-A heading
    point_title: str  # "Q3 topic (your answer: C)"; "" when all ten are A
    point_text: str  # the advice for that answer's level; with ten A's, what to watch and where to go next
    point_peer: str  # the share of shops answering A to the point's question ("" none shown)
    plan_heading: str  # "" when there is no plan (fewer than two answers below A)
    plan: tuple[PlanLine, ...]
    framing: str  # "" when the file has no framing line
    summary: str  # the tier's sentences that hold for these answers
    theme_heading: str
    theme: str  # the tier's next theme, likewise
    answers_heading: str
    rows: tuple[AnswerRow, ...]
    advice_hint: str  # "" when every answer is A
    alt: str


def advice_title(script: Script, q: int, letter: str) -> str:
    return script.text("advice_title", number=q + 1, topic=script.questions[q].topic, letter=letter)


def _moved(script: Script, c: Comparison, forward: bool) -> str:
    arrow, sep = ("→", "、") if script.locale == "ja" else ("->", ", ")
    return sep.join(f"Q{i + 1} {script.questions[i].topic} {x}{arrow}{y}" for i, x, y in c.moved
                    if (CHOICES.index(y) < CHOICES.index(x)) == forward)


def comparison_lines(script: Script, c: Comparison) -> tuple[str, ...]:
    """The heading, the tier then and now, last time's point to fix, and the answers that moved forward
    (D -> B) and back."""
    lines = [
        script.text("compare_heading"),
        script.text("compare_line", before_label=script.tiers[c.before.tier].label, before_count=c.before.a_count,
                    after_label=script.tiers[c.after.tier].label, after_count=c.after.a_count,
                    total=QUESTION_COUNT),
    ]
    if c.point_before is not None and c.point_now is not None:
        topic = script.questions[c.point_before].topic
        if c.point_fixed:
            lines.append(script.text("compare_point_fixed", number=c.point_before + 1, topic=topic))
        else:
            lines.append(script.text("compare_point_open", number=c.point_before + 1, topic=topic,
                                     letter=c.point_now))
    if up := _moved(script, c, forward=True):
        lines.append(script.text("compare_moved_up", items=up))
    if down := _moved(script, c, forward=False):
        lines.append(script.text("compare_moved_down", items=down))
    if not c.moved:
        lines.append(script.text("compare_same"))
    return tuple(lines)


def _point(script: Script, res: DiagnosisResult) -> tuple[str, str, str]:
    """The point's heading, title and text; with ten A's, the all-A heading and what to do next."""
    if res.next_point is None:
        return script.text("all_a_heading"), "", script.text("all_a_text")
    letter = res.answers[res.next_point]
    return (script.text("next_point_heading"), advice_title(script, res.next_point, letter),
            advice_for(script.questions[res.next_point], letter))


def _alt(script: Script, res: DiagnosisResult, label: str) -> str:
    """The card's alternative text (notifications, the chat list): the tier and the point to fix."""
    if res.next_point is None:
        return script.text("result_alt_all_a", label=label, count=res.a_count, total=QUESTION_COUNT)
    return script.text("result_alt", label=label, count=res.a_count, total=QUESTION_COUNT,
                       number=res.next_point + 1, topic=script.questions[res.next_point].topic)


def _closeness(script: Script, a_count: int) -> str:
    """How many more A answers reach the next tier ("" at the top); the singular where the file has one."""
    up = next_tier(a_count)
    if up is None:
        return ""
    label = script.tiers[up.tier].label
    if up.missing == 1 and "closeness_one" in script.texts:
        return script.text("closeness_one", label=label)
    return script.text("closeness", label=label, count=up.missing)


def peer_line(script: Script, share: int | None) -> str:
    """「この項目でA評価のショップは20%です」 ("" when no share is given; a share rounded to 0: fewer than 5%)."""
    if share is None:
        return ""
    return script.text("peer_share", share=share) if share > 0 else script.text("peer_share_few")


def result_view(script: Script, answers: str, prev: str = "", peers: tuple[tuple[int, int], ...] = ()) -> ResultView:
    """The parts of a result; ``peers``: the shares of shops answering A (Result.peers), by question."""
    shares = dict(peers)
    built = results.build(script, answers)
    res = built.result
    tier = script.tiers[res.tier]
    point_heading, point_title, point_text = _point(script, res)
    rows = tuple(
        AnswerRow(i, script.questions[i].topic, a, script.questions[i].choices[a].label,
                  None if a == "A" else advice_button(script, i, a))
        for i, a in enumerate(res.answers)
    )
    plan = tuple(PlanLine(script.text(p.when), f"Q{p.q + 1} {script.questions[p.q].topic}", p.text,
                          peer_line(script, shares.get(p.q))) for p in built.plan)
    return ResultView(
        result=res,
        heading=script.text("result_heading"),
        label=tier.label,
        count_line=script.text("result_count", count=res.a_count, total=QUESTION_COUNT),
        closeness=_closeness(script, res.a_count),
        comparison=comparison_lines(script, compare(prev, res.answers)) if prev else (),
        point_heading=point_heading,
        point_title=point_title,
        point_text=point_text,
        point_peer=peer_line(script, None if res.next_point is None else shares.get(res.next_point)),
        plan_heading=script.text("plan_heading") if plan else "",
        plan=plan,
        framing=script.texts.get("framing", ""),
        summary="\n".join(built.summary),
        theme_heading=script.text("next_theme_heading"),
        theme="\n".join(built.theme),
        answers_heading=script.text("answers_heading"),
        rows=rows,
        advice_hint="" if res.next_point is None else script.text("advice_hint"),
        alt=_alt(script, res, tier.label),
    )


def plan_lines(v: ResultView) -> list[str]:
    """The plan as plain lines: "this month: Q3 topic" and its step under it."""
    return [x for p in v.plan for x in (f"{p.when}: {p.title}", p.step, p.peer) if x]


def result_text(script: Script, answers: str, prev: str = "", peers: tuple[tuple[int, int], ...] = ()) -> str:
    """The result as plain text (the terminal, notifications), in the card's order."""
    v = result_view(script, answers, prev, peers)
    lines = [v.heading, f"【{v.label}】 {v.count_line}"]
    if v.closeness:
        lines.append(v.closeness)
    if v.comparison:
        lines += ["", f"■ {v.comparison[0]}", *v.comparison[1:]]
    lines += ["", f"■ {v.point_heading}" + (f": {v.point_title}" if v.point_title else ""), v.point_text]
    if v.point_peer:
        lines.append(v.point_peer)
    if v.plan:
        lines += ["", f"■ {v.plan_heading}", *plan_lines(v)]
    if v.framing:
        lines += ["", v.framing]
    lines += ["", v.summary, "", f"■ {v.theme_heading}", v.theme]
    lines += ["", f"■ {v.answers_heading}"]
    lines += [f"Q{r.q + 1} {r.topic}: {r.letter} {r.label}" for r in v.rows]
    return "\n".join(lines)


def advice_text(script: Script, q: int, letter: str) -> str:
    return f"{advice_title(script, q, letter)}\n{advice_for(script.questions[q], letter)}"


def greeting_text(script: Script, privacy_url: str = "") -> str:
    return f"{script.text('greeting')}\n\n{privacy_text(script, privacy_url)}"


def follow_step_text(script: Script, out: FollowStep) -> str:
    """A follow-up on the point to fix: its question's topic, which step of how many, the tip, its link."""
    question = script.questions[out.q]
    steps = question.followups  # (a content edited since the step was queued may have fewer: no tip then)
    said = script.text("follow_step", topic=question.topic, number=out.step + 1, total=max(len(steps), out.step + 1),
                       tip=steps[out.step].tip if out.step < len(steps) else "")
    return f"{said}\n{script.text('follow_link', url=out.url)}" if out.url else said


def notice_text(script: Script, out: Notice) -> str:
    return script.text(out.key) if out.number is None else script.text(out.key, number=out.number)


def plain_text(script: Script, out: Output) -> str:
    """The whole output as plain text (terminal, notifications, logs of content in tests)."""
    match out:
        case Question(q=q):
            return question_text(script, q)
        case Result(answers=answers, prev=prev, peers=peers):
            return result_text(script, answers, prev, peers)
        case Advice(q=q, choice=choice):
            return advice_text(script, q, choice)
        case ConfirmRestart(q=q):
            return script.text("restart_confirm", count=q)
        case Greeting(privacy_url=url):
            return greeting_text(script, url)
        case Definition():
            return definition_text(script, out)
        case Erasure():
            return erasure_text(script, out)
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
        case FollowOffer():
            return script.text("follow_offer")
        case FollowStep():
            return follow_step_text(script, out)
        case Heard():
            return script.text("heard")
        case Qualify():
            return qualify_text(script, out)
        case Slots():
            return slots_text(script, out)
        case BookingNote():
            return booking_text(script, out)
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
        case FollowOffer(sid=sid):
            yes, no = script.text("follow_yes_button"), script.text("follow_no_button")
            return [Button(yes, inputs.button(inputs.FOLLOW_IN, sid=sid), yes),
                    Button(no, inputs.button(inputs.FOLLOW_NO, sid=sid), no)]
        case Erasure():
            return erasure_buttons(script, out)
        case Heard(sid=sid):
            return [consult_button(script, sid)]
        case Qualify():
            return qualify_buttons(script, out)
        case Slots():
            return slots_buttons(script, out)
        case BookingNote():
            return booking_buttons(script, out)
        case Notice() | Advice() | ConsultAck() | Definition() | FollowStep():
            return []
        case _:
            assert_never(out)


# ---- booking a consultation -------------------------------------------------------------------------


def _local(script: Script, epoch: int, tz: str) -> datetime:
    return datetime.fromtimestamp(epoch, zone(tz or "Asia/Tokyo"))


def _weekday(script: Script, moment: datetime) -> str:
    names = script.text("booking_weekdays").split()
    return names[moment.weekday()] if len(names) == 7 else moment.strftime("%a")


def booking_date(script: Script, epoch: int, tz: str) -> str:
    """A slot's local date: 「12月8日（火）」."""
    at = _local(script, epoch, tz)
    return script.text("booking_date", month=at.month, day=at.day, weekday=_weekday(script, at))


def booking_when(script: Script, start: int, end: int, tz: str) -> str:
    """A slot's local date and times: 「12月8日（火）14:00〜14:30」."""
    return script.text("booking_when", date=booking_date(script, start, tz),
                       start=f"{_local(script, start, tz):%H:%M}", end=f"{_local(script, end, tz):%H:%M}")


def slot_button(script: Script, out: Slots, start: int) -> Button:
    at = _local(script, start, out.tz)
    label = script.text("booking_slot_button", month=at.month, day=at.day, weekday=_weekday(script, at),
                        start=f"{at:%H:%M}")[:20]  # a template: its own length is not the label's
    return Button(label, inputs.button(inputs.BOOK_PICK, at=start, ref=out.moving), label)


def more_slots_button(script: Script, out: Slots) -> Button | None:
    if not out.more:
        return None
    label = script.text("booking_more_button")
    return Button(label, inputs.button(inputs.BOOK, at=out.more, ref=out.moving), label)


def slots_heading(script: Script, out: Slots) -> str:
    """Why the slots are shown (or that none is free) and the meeting format."""
    lines = []
    if out.note:
        lines.append(script.text(f"booking_{out.note}"))
    if out.note != "none":
        lines.append(script.text("booking_moving" if out.moving else "booking_slots"))
    return "\n".join(lines)


def slots_text(script: Script, out: Slots) -> str:
    return slots_heading(script, out)


def slots_buttons(script: Script, out: Slots) -> list[Button]:
    buttons = [slot_button(script, out, start) for start, _ in out.slots]
    more = more_slots_button(script, out)
    return buttons + ([more] if more is not None else [])


def booking_text(script: Script, out: BookingNote) -> str:
    """A booking told to its owner: what happened, then when and how (and the consultancy's words)."""
    lines = [script.text(f"booking_{out.stage}")]
    if out.start and out.stage != "gone":
        lines.append(script.text("booking_details", when=booking_when(script, out.start, out.end, out.tz),
                                 format=out.fmt or "-"))
    if out.message:
        lines.append(script.text("booking_op_message", message=out.message))
    if booking_active(out):
        lines.append(script.text("booking_change_note"))
    return "\n".join(lines)


def booking_active(out: BookingNote) -> bool:
    return out.stage not in ("cancelled", "cancelled_op", "gone") and bool(out.booking)


def book_button(script: Script) -> Button:
    label = script.text("booking_book_button")
    return Button(label, inputs.button(inputs.BOOK), label)


def booking_buttons(script: Script, out: BookingNote) -> list[Button]:
    """Change / cancel while it stands; book again once it is gone."""
    if not booking_active(out):
        return [book_button(script)]
    change, cancel = script.text("booking_change_button"), script.text("booking_cancel_button")
    return [Button(change, inputs.button(inputs.BOOK, ref=out.booking), change),
            Button(cancel, inputs.button(inputs.BOOK_CANCEL, ref=out.booking), cancel)]
