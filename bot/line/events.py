"""LINE webhook JSON -> our InboundEvent objects. Pure: no Flask, no network.

Only one-to-one chats are handled (source.type "user"); events in standby mode, events of types we
do not use, and events missing the fields we need are skipped, never errors.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
from collections.abc import Iterator, Mapping
from typing import Any

from bot.core import InboundEvent, Said
from conversations import inputs
from conversations.errors import InvalidInput
from conversations.inputs import Input, TermLookup
from conversations.keys import Subject
from conversations.ownership import Origin
from conversations.transports import Transport


def signature_ok(secret: str, body: bytes, signature: str | None) -> bool:
    """X-Line-Signature: base64(HMAC-SHA256(channel secret, raw body)). False, never an error, for any
    header value (non-ASCII text cannot be base64, and compare_digest refuses non-ASCII str)."""
    if not signature:
        return False
    try:
        given = signature.strip().encode("ascii")
    except UnicodeEncodeError:
        return False
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return hmac.compare_digest(base64.b64encode(digest), given)


def parse(payload: Any, keywords: Mapping[str, Any], glossary: TermLookup | None = None) -> Iterator[InboundEvent]:
    """Raises InvalidInput when the body is not a webhook payload at all."""
    if not isinstance(payload, dict) or not isinstance(payload.get("events"), list):
        raise InvalidInput("not a LINE webhook body: no events list")
    for raw in payload["events"]:
        ev = _event(raw, keywords, glossary)
        if ev is not None:
            yield ev


def _event(raw: Any, keywords: Mapping[str, Any], glossary: TermLookup | None = None) -> InboundEvent | None:
    if not isinstance(raw, dict) or raw.get("mode", "active") != "active":
        return None
    source = raw.get("source")
    event_id = raw.get("webhookEventId")
    if not isinstance(source, dict) or source.get("type") != "user" or not isinstance(event_id, str):
        return None
    user_id = source.get("userId")
    if not isinstance(user_id, str) or not event_id or len(event_id) > 64:
        return None
    parsed = _input(raw, keywords, glossary)
    if parsed is None:
        return None
    inp, origin = parsed
    ts = raw.get("timestamp")
    ctx = raw.get("deliveryContext")
    token = raw.get("replyToken")
    try:
        subject = Subject(Transport.LINE, user_id)
    except InvalidInput:
        return None
    return InboundEvent(
        subject=subject,
        event_id=event_id,
        input=inp,
        reply_token=token if isinstance(token, str) and token else None,
        timestamp=_seconds(ts),
        redelivery=bool(ctx.get("isRedelivery")) if isinstance(ctx, dict) else False,
        origin=origin,
        said=said_of(raw),
    )


def said_of(raw: Mapping[str, Any]) -> Said | None:
    """A message event as it came (relayed to the operator's thread during a handoff): its type, its text
    (a text's words, a file's name, a location's title or address) and its markAsReadToken."""
    msg = raw.get("message")
    if raw.get("type") != "message" or not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        return None
    kind = str(msg["type"])[:20]
    words = {"text": msg.get("text"), "file": msg.get("fileName"),
             "location": msg.get("title") or msg.get("address")}.get(kind)
    token = msg.get("markAsReadToken")
    return Said(kind, words[:5000] if isinstance(words, str) else "",
                read_token=token[:512] if isinstance(token, str) else "")


def _seconds(ts: Any) -> float | None:
    """LINE's millisecond timestamp in seconds; None unless it is a finite number (an integer too
    large for a float, NaN or Infinity would otherwise break the reply-token window arithmetic)."""
    if isinstance(ts, bool) or not isinstance(ts, int | float):
        return None
    try:
        seconds = ts / 1000
    except OverflowError:
        return None
    return seconds if math.isfinite(seconds) else None


def _input(raw: Mapping[str, Any], keywords: Mapping[str, Any],
           glossary: TermLookup | None = None) -> tuple[Input, Origin] | None:
    """The event's input, and the kind of event it came from (for the ownership rule)."""
    kind = raw.get("type")
    if kind == "follow":
        return Input(inputs.FOLLOW), Origin.EVENT
    if kind == "unfollow":
        return Input(inputs.UNFOLLOW), Origin.EVENT
    if kind == "postback":
        pb = raw.get("postback")
        data = pb.get("data") if isinstance(pb, dict) else None
        return (inputs.from_button(data) if isinstance(data, str) else Input(inputs.TEXT)), Origin.POSTBACK
    if kind == "message":
        msg = raw.get("message")
        if not isinstance(msg, dict):
            return None
        if msg.get("type") == "text" and isinstance(msg.get("text"), str):
            return inputs.from_text(msg["text"][:500], keywords, glossary), Origin.TEXT
        return Input(inputs.OTHER), Origin.MESSAGE
    return None  # join, leave, beacon, unsend, ... are not for this bot
