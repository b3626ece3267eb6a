"""Machine outputs -> LINE Messaging API messages (line-bot-sdk v3 models).

Questions are text messages with quick replies whose labels begin with the choice letter; the
result is a Flex bubble, the news first so that a phone shows it without scrolling: tier label, A count
and how close the next tier is; the comparison with the result before (on a retake); the one point to fix
with the advice for that answer's level; the 90-day plan; the framing line, the tier's text and next theme;
the ten answers by topic last (a tap on a non-A row asks for its advice); and two buttons: 「相談する」
(a postback: LINE sends us no webhook for a URI action, so the request is recorded from the postback and
its confirmation carries the booking page as a URI button) and "take it again".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, assert_never

from linebot.v3.messaging import (
    ConfirmTemplate,
    FlexContainer,
    FlexMessage,
    Message,
    PostbackAction,
    QuickReply,
    QuickReplyItem,
    TemplateMessage,
    TextMessage,
)

from bot import views
from conversations.content import Script
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

# Every text on the card meets WCAG AA (4.5:1) against what it is drawn on (tests/bot/line/test_contrast.py).
GRADE_COLOURS = {"A": "#2E7D32", "B": "#8A6100", "C": "#B34700", "D": "#616161"}
TIER_COLOURS = {"A": "#1B5E20", "B": "#1565C0", "C": "#5D4037"}
ON_COLOUR = "#FFFFFF"  # text on a grade or tier colour
INK = "#333333"  # body text on the white card
ACCENT = "#1565C0"  # headings on the white card
QUIET = "#555555"  # hints on the white card


def quick_reply(buttons: list[views.Button]) -> QuickReply | None:
    if not buttons:
        return None
    return QuickReply(
        items=[
            QuickReplyItem(action=PostbackAction(label=b.label, data=b.data, displayText=b.echo[:300]))
            for b in buttons
        ]
    )


def render(script: Script, outputs: Sequence[Output]) -> list[Message]:
    """At most five messages (LINE's limit per request); buttons ride on the last text message."""
    return [message(script, out) for out in outputs][:5]


def message(script: Script, out: Output) -> Message:
    """One output as one LINE message: the result a Flex card, a confirmation with a booking page a Flex
    bubble with its button, everything else text with its buttons as quick replies."""
    match out:
        case Result(sid=sid, answers=answers, prev=prev, peers=peers):
            return result_message(script, answers, sid, prev, peers)
        case ConsultAck(url=url) if url:
            return consult_message(script, out)
        case Qualify() if views.qualify_buttons(script, out):
            return qualify_message(script, out)
        case Slots(slots=slots) if slots:
            return slots_message(script, out)
        case BookingNote():
            return booking_message(script, out)
        case FollowOffer():
            return confirm_message(views.plain_text(script, out), views.buttons_for(script, out))
        case (Greeting() | Offer() | Notice() | Question() | Resume() | ConfirmRestart() | Advice() | DoneHelp()
              | OptinOffer() | ConsultAck() | Reminder() | Definition() | Erasure() | Heard() | Slots() | Qualify()
              | FollowStep()):
            return TextMessage(text=views.plain_text(script, out)[:5000],
                               quickReply=quick_reply(views.buttons_for(script, out)))
        case _:
            assert_never(out)


def _postback(b: views.Button) -> dict[str, Any]:
    return {"type": "postback", "label": b.label, "data": b.data, "displayText": b.echo[:300]}


def confirm_message(words: str, buttons: Sequence[views.Button]) -> TemplateMessage:
    """A yes / no question with its two buttons on the message itself (LINE's confirm template): unlike quick
    replies, which go once anything else is sent, they stay in the chat, so the follow-ups' offer can still be
    answered after the owner did something else."""
    yes, no = buttons
    return TemplateMessage(altText=words[:400], template=ConfirmTemplate(text=words[:240], actions=[
        PostbackAction(label=b.label, data=b.data, displayText=b.echo[:300]) for b in (yes, no)]))


def consult_message(script: Script, out: ConsultAck) -> FlexMessage:
    """The confirmation of a consultation request with the booking page behind a URI button."""
    v = views.consult_view(script, out)
    bubble = {
        "type": "bubble",
        "body": {"type": "box", "layout": "vertical",
                 "contents": [{"type": "text", "text": v.text, "size": "sm", "wrap": True, "color": INK}]},
        "footer": {"type": "box", "layout": "vertical", "contents": [
            {"type": "button", "style": "primary", "color": ACCENT,
             "action": {"type": "uri", "label": v.url_label, "uri": v.url}},
        ]},
    }
    return FlexMessage(altText=v.text[:1500], contents=FlexContainer.from_dict(bubble))


def qualify_message(script: Script, out: Qualify) -> FlexMessage:
    """A qualification question as a bubble with its buttons: they stay tappable under the messages that
    follow it (the opt-in offer's quick replies ride on the last one)."""
    text = views.qualify_text(script, out)
    *choices, skip = views.qualify_buttons(script, out)
    bubble = {
        "type": "bubble",
        "size": "kilo",
        "body": {"type": "box", "layout": "vertical", "spacing": "sm", "contents": [
            _text(text),
            *({"type": "button", "style": "secondary", "height": "sm", "action": _postback(b)} for b in choices),
            {"type": "button", "style": "link", "height": "sm", "action": _postback(skip)},
        ]},
    }
    return FlexMessage(altText=text[:1500], contents=FlexContainer.from_dict(bubble))


def slots_message(script: Script, out: Slots) -> FlexMessage:
    """Free slots as a carousel, one bubble a day (its times as buttons, each a postback that books it),
    the way to later dates in the last bubble. The buttons stay on the card, so a question shown after
    it (mid-diagnosis) does not hide them as it would hide quick replies."""
    days: dict[str, list[dict[str, Any]]] = {}
    for start, _ in out.slots:
        days.setdefault(views.booking_date(script, start, out.tz), []).append(
            {"type": "button", "style": "secondary", "height": "sm",
             "action": _postback(views.slot_button(script, out, start))})
    heading = views.slots_heading(script, out)
    bubbles = []
    for date, buttons in list(days.items())[:11]:
        bubbles.append({"type": "bubble", "size": "kilo",
                        "header": {"type": "box", "layout": "vertical",
                                   "contents": [_text(date, size="md", color=ACCENT, bold=True)]},
                        "body": {"type": "box", "layout": "vertical", "spacing": "sm", "contents": buttons[:10]}})
    more = views.more_slots_button(script, out)
    if more is not None:
        bubbles.append({"type": "bubble", "size": "kilo",
                        "body": {"type": "box", "layout": "vertical", "justifyContent": "center", "contents": [
                            {"type": "button", "style": "primary", "color": ACCENT, "action": _postback(more)}]}})
    carousel = {"type": "carousel", "contents": bubbles}
    return FlexMessage(altText=heading[:1500] or "-", contents=FlexContainer.from_dict(carousel))


def booking_message(script: Script, out: BookingNote) -> FlexMessage:
    """A booking told to its owner, its buttons (change / cancel, or book again) on the bubble."""
    text = views.booking_text(script, out)
    bubble = {
        "type": "bubble",
        "body": {"type": "box", "layout": "vertical", "contents": [_text(text)]},
        "footer": {"type": "box", "layout": "vertical", "spacing": "sm", "contents": [
            {"type": "button", "style": "primary" if i == 0 else "secondary", "height": "sm",
             **({"color": ACCENT} if i == 0 else {}), "action": _postback(b)}
            for i, b in enumerate(views.booking_buttons(script, out))]},
    }
    return FlexMessage(altText=text[:1500], contents=FlexContainer.from_dict(bubble))


def _text(text: str, *, size: str = "sm", color: str = INK, bold: bool = False, **extra: Any) -> dict[str, Any]:
    t: dict[str, Any] = {"type": "text", "text": text, "size": size, "wrap": True, "color": color, **extra}
    if bold:
        t["weight"] = "bold"
    return t


def _row(script: Script, row: views.AnswerRow) -> dict[str, Any]:
    """One answer: a letter badge in its grade colour and the question's topic; a non-A row is a button."""
    box: dict[str, Any] = {
        "type": "box",
        "layout": "horizontal",
        "spacing": "sm",
        "contents": [
            {"type": "box", "layout": "vertical", "width": "28px", "cornerRadius": "4px", "paddingAll": "2px",
             "backgroundColor": GRADE_COLOURS[row.letter],
             "contents": [_text(row.letter, color=ON_COLOUR, bold=True, align="center", wrap=False)]},
            _text(f"Q{row.q + 1} {row.topic}", flex=1, gravity="center"),
        ],
    }
    if row.advice is not None:
        box["contents"].append(_text("›", color=ACCENT, bold=True, flex=0, gravity="center", wrap=False))
        box["action"] = _postback(row.advice)
    return box


def _plan_line(p: views.PlanLine) -> dict[str, Any]:
    """One step of the 90-day plan: when and which question, then the step."""
    return {"type": "box", "layout": "vertical", "contents": [
        _text(f"{p.when}｜{p.title}", bold=True), _text(p.step),
        *([_text(p.peer, size="xs", color=QUIET)] if p.peer else [])]}


def result_message(script: Script, answers: str, sid: int, prev: str = "",
                   peers: tuple[tuple[int, int], ...] = ()) -> FlexMessage:
    v = views.result_view(script, answers, prev, peers)
    consult = views.consult_button(script, sid)
    retake = views.retake_button(script)
    header = [
        _text(v.heading, color=ON_COLOUR),
        _text(v.label, size="xxl", color=ON_COLOUR, bold=True),
        _text(v.count_line, size="md", color=ON_COLOUR),
    ]
    if v.closeness:
        header.append(_text(v.closeness, color=ON_COLOUR))
    body: list[dict[str, Any]] = []
    if v.comparison:
        body += [_text(v.comparison[0], color=ACCENT, bold=True), *(_text(line) for line in v.comparison[1:]),
                 {"type": "separator"}]
    body.append(_text(v.point_heading, color=ACCENT, bold=True))
    if v.point_title:
        body.append(_text(v.point_title, size="md", bold=True))
    body.append(_text(v.point_text))
    if v.point_peer:
        body.append(_text(v.point_peer, size="xs", color=QUIET))
    if v.plan:
        body += [{"type": "separator"}, _text(v.plan_heading, color=ACCENT, bold=True)]
        body += [_plan_line(p) for p in v.plan]
    body.append({"type": "separator"})
    if v.framing:
        body.append(_text(v.framing, size="xs", color=QUIET))
    body += [
        _text(v.summary),
        _text(v.theme_heading, color=ACCENT, bold=True),
        _text(v.theme),
        {"type": "separator"},
        _text(v.answers_heading, color=ACCENT, bold=True),
    ]
    if v.advice_hint:
        body.append(_text(v.advice_hint, size="xs", color=QUIET))
    body.append({"type": "box", "layout": "vertical", "spacing": "xs", "contents": [_row(script, r) for r in v.rows]})
    bubble = {
        "type": "bubble",
        "header": {
            "type": "box",
            "layout": "vertical",
            "backgroundColor": TIER_COLOURS[v.result.tier],
            "paddingAll": "16px",
            "contents": header,
        },
        "body": {"type": "box", "layout": "vertical", "spacing": "md", "backgroundColor": "#FFFFFF", "contents": body},
        "footer": {
            "type": "box",
            "layout": "vertical",
            "spacing": "sm",
            "backgroundColor": "#FFFFFF",
            "contents": [
                {"type": "button", "style": "primary", "color": ACCENT, "action": _postback(consult)},
                {"type": "button", "style": "secondary", "action": _postback(retake)},
            ],
        },
    }
    return FlexMessage(altText=v.alt[:1500], contents=FlexContainer.from_dict(bubble))
