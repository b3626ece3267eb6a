"""Machine outputs -> LINE Messaging API messages (line-bot-sdk v3 models).

Questions are text messages with quick replies whose labels begin with the choice letter; the
result is a Flex bubble: tier label, A count, a strip of the ten answers, the one point to fix, and
two buttons: 「相談する」 (a postback: LINE sends us no webhook for a URI action, so the request is
recorded from the postback and its confirmation carries the booking page as a URI button) and
"take it again".
"""

from __future__ import annotations

from typing import Any

from linebot.v3.messaging import (
    FlexContainer,
    FlexMessage,
    Message,
    PostbackAction,
    QuickReply,
    QuickReplyItem,
    TextMessage,
)

from bot import views
from conversations.content import Script

GRADE_COLOURS = {"A": "#2E7D32", "B": "#F9A825", "C": "#EF6C00", "D": "#9E9E9E"}
TIER_COLOURS = {"A": "#1B5E20", "B": "#1565C0", "C": "#5D4037"}


def quick_reply(buttons: list[views.Button]) -> QuickReply | None:
    if not buttons:
        return None
    return QuickReply(
        items=[
            QuickReplyItem(action=PostbackAction(label=b.label, data=b.data, displayText=b.echo[:300]))
            for b in buttons
        ]
    )


def render(script: Script, outputs: list[dict[str, Any]]) -> list[Message]:
    """At most five messages (LINE's limit per request); buttons ride on the last text message."""
    messages: list[Message] = []
    for out in outputs:
        if out["type"] == "result":
            messages.append(result_message(script, out["answers"], out.get("sid", 0)))
        elif out["type"] == "consult_ack" and out.get("url"):
            messages.append(consult_message(script, out))
        else:
            qr = quick_reply(views.buttons_for(script, out))
            messages.append(TextMessage(text=views.plain_text(script, out)[:5000], quickReply=qr))
    return messages[:5]


def _postback(b: views.Button) -> dict[str, Any]:
    return {"type": "postback", "label": b.label, "data": b.data, "displayText": b.echo[:300]}


def consult_message(script: Script, out: dict[str, Any]) -> FlexMessage:
    """The confirmation of a consultation request with the booking page behind a URI button."""
    v = views.consult_view(script, out)
    bubble = {
        "type": "bubble",
        "body": {"type": "box", "layout": "vertical",
                 "contents": [{"type": "text", "text": v.text, "size": "sm", "wrap": True, "color": "#333333"}]},
        "footer": {"type": "box", "layout": "vertical", "contents": [
            {"type": "button", "style": "primary", "action": {"type": "uri", "label": v.url_label, "uri": v.url}},
        ]},
    }
    return FlexMessage(altText=v.text[:1500], contents=FlexContainer.from_dict(bubble))


def result_message(script: Script, answers: str, sid: int) -> FlexMessage:
    v = views.result_view(script, answers)
    consult = views.consult_button(script, sid)
    retake = views.retake_button(script)
    cells = [
        {
            "type": "box",
            "layout": "vertical",
            "flex": 1,
            "cornerRadius": "4px",
            "paddingAll": "2px",
            "backgroundColor": GRADE_COLOURS[a],
            "contents": [
                {"type": "text", "text": str(i + 1), "size": "xxs", "color": "#FFFFFF", "align": "center"},
                {"type": "text", "text": a, "size": "sm", "weight": "bold", "color": "#FFFFFF", "align": "center"},
            ],
        }
        for i, a in enumerate(v.result.answers)
    ]
    bubble = {
        "type": "bubble",
        "header": {
            "type": "box",
            "layout": "vertical",
            "backgroundColor": TIER_COLOURS[v.result.tier],
            "paddingAll": "16px",
            "contents": [
                {"type": "text", "text": v.heading, "size": "sm", "color": "#FFFFFFCC"},
                {"type": "text", "text": v.label, "size": "xxl", "weight": "bold", "color": "#FFFFFF"},
                {"type": "text", "text": v.count_line, "size": "md", "color": "#FFFFFF"},
            ],
        },
        "body": {
            "type": "box",
            "layout": "vertical",
            "spacing": "md",
            "contents": [
                {"type": "box", "layout": "horizontal", "spacing": "xs", "contents": cells},
                {"type": "text", "text": v.summary, "size": "sm", "wrap": True, "color": "#333333"},
                {"type": "separator"},
                {"type": "text", "text": v.point_heading, "size": "sm", "weight": "bold", "color": "#1565C0"},
                {"type": "text", "text": v.point_title, "size": "md", "weight": "bold", "wrap": True},
                {"type": "text", "text": v.point_text, "size": "sm", "wrap": True, "color": "#333333"},
            ],
        },
        "footer": {
            "type": "box",
            "layout": "vertical",
            "spacing": "sm",
            "contents": [
                {"type": "button", "style": "primary", "action": _postback(consult)},
                {"type": "button", "style": "secondary", "action": _postback(retake)},
            ],
        },
    }
    return FlexMessage(altText=v.alt[:1500], contents=FlexContainer.from_dict(bubble))
