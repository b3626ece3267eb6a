"""Drives the LINE webhook as LINE does: realistic event bodies, signed with the channel secret."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from typing import Any

from tests.fakes.line_api import FakeLineApi
from tests.fakes.openapi import require_specs, validate_webhook_body

SECRET = "test-channel-secret"
TOKEN = "test-access-token"
DESTINATION = "U" + "d" * 32


def sign(body: bytes, secret: str = SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


class LineUser:
    """One LINE user talking to the bot through signed webhooks."""

    def __init__(self, http: Any, fake: FakeLineApi, clock: Any, user_id: str | None = None) -> None:
        self.http = http
        self.fake = fake
        self.clock = clock
        self.user_id = user_id or "U" + uuid.uuid4().hex

    def event(self, kind: str, *, reply: bool = True, redelivery: bool = False, **extra: Any) -> dict[str, Any]:
        ev: dict[str, Any] = {
            "type": kind,
            "mode": "active",
            "timestamp": int(self.clock() * 1000),
            "source": {"type": "user", "userId": self.user_id},
            "webhookEventId": "01" + uuid.uuid4().hex[:24].upper(),
            "deliveryContext": {"isRedelivery": redelivery},
        }
        if reply:
            ev["replyToken"] = self.fake.issue_reply_token(self.user_id)
        ev.update(extra)
        return ev

    def text_event(self, text: str) -> dict[str, Any]:
        msg = {"type": "text", "id": str(uuid.uuid4().int)[:18], "quoteToken": uuid.uuid4().hex, "text": text}
        return self.event("message", message=msg)

    def postback_event(self, data: str) -> dict[str, Any]:
        return self.event("postback", postback={"data": data})

    def post(self, *events: dict[str, Any], signature: str | None = None, raw: bytes | None = None) -> Any:
        payload = {"destination": DESTINATION, "events": list(events)}
        if raw is None:
            require_specs("webhook.yml")
            errors = validate_webhook_body(payload)
            assert not errors, f"test built a webhook body LINE would not send: {errors}"
        body = raw if raw is not None else json.dumps(payload, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json; charset=utf-8"}
        headers["X-Line-Signature"] = signature if signature is not None else sign(body)
        return self.http.post("/line/webhook", data=body, headers=headers)

    def send(self, *events: dict[str, Any]) -> Any:
        res = self.post(*events)
        assert res.status_code == 200, res.get_data(as_text=True)
        return res

    # conveniences
    def follow(self) -> Any:
        return self.send(self.event("follow", follow={"isUnblocked": False}))

    def say(self, text: str) -> Any:
        return self.send(self.text_event(text))

    def tap(self, data: str) -> Any:
        return self.send(self.postback_event(data))


def last_quick_reply_data(messages: list[dict[str, Any]]) -> list[str]:
    for m in reversed(messages):
        items = (m.get("quickReply") or {}).get("items") or []
        if items:
            return [i["action"]["data"] for i in items]
    return []


def texts(messages: list[dict[str, Any]]) -> list[str]:
    return [m.get("text", m.get("altText", "")) for m in messages]


def answer_rows(flex: dict[str, Any]) -> list[dict[str, Any]]:
    """The result card's answer rows, in order: {"letter", "text" (the row's question and topic), "data"
    (the postback of a tap on the row, "" when the row has none)}."""
    rows: list[dict[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            kids = node.get("contents")
            if node.get("type") == "box" and node.get("layout") == "horizontal" and isinstance(kids, list) and kids:
                badge = kids[0]
                inner = badge.get("contents") if isinstance(badge, dict) else None
                if badge.get("type") == "box" and isinstance(inner, list) and len(inner) == 1 \
                        and inner[0].get("text") in ("A", "B", "C", "D"):
                    rows.append({"letter": inner[0]["text"], "text": kids[1]["text"],
                                 "data": node.get("action", {}).get("data", "")})
                    return
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(flex.get("contents", flex))
    return rows
