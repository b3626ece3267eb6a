"""The transports a conversation or a job goes through, and each transport's own state in a job.

"Transport" is the word for *how* a message travels (LINE, a LINE multicast, Slack, the try-it page,
the terminal); "channel" keeps its meaning in each of them: a Slack channel (``C0123ABCD``), a LINE
channel (the bot's account, its secret and token).

A job (:class:`conversations.jobs.Job`) carries the state of its transport as one typed record, stored
with it as JSON and changed by the worker's transport mid-attempt (a checkpoint stores it):

    LineState       a reply or push to one LINE user (bot/line/transport.py)
    LineBatchState  a multicast of the quarterly reminder (its recipients and period)
    SlackState      a Slack post, DM, ephemeral, App Home or file, and whether a native chart fell back
                    to its image (bot/slack/transport.py)
    ForwardState    a LINE webhook body relayed to another LINE tool, as received (bot/line/forward.py)
    NoState         the try-it page, the terminal: nothing to keep

``from_json`` reads a job's stored state, including the free dicts jobs stored before it was typed
(``state`` and ``meta`` merged: the same keys, the figures left out).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, TypeAlias

from conversations.errors import InvalidInput


class Transport(StrEnum):
    LINE = "line"  # replies and pushes to one LINE user
    LINEBATCH = "linebatch"  # multicasts to many LINE users (the quarterly reminder)
    SLACK = "slack"  # Slack: DMs (the diagnosis) and a team channel's posts (KPI)
    WEB = "web"  # the console's try-it page: a user's inbox in Redis (test users)
    CLI = "cli"  # crmbot chat in a terminal (answered in place, never queued)
    LINEFORWARD = "lineforward"  # a LINE webhook body relayed to another LINE tool (CRMBOT_LINE_FORWARD_URL)
    WEBHOOK = "webhook"  # a signed event to one of the client's webhook endpoints (bot/webhooks.py)

    @classmethod
    def parse(cls, value: object) -> Transport:
        """The transport named ``value``; InvalidInput for any other."""
        try:
            return cls(str(value))
        except ValueError:
            raise InvalidInput(f"unknown transport {str(value)[:20]!r}") from None


Via = Literal["reply", "push"]


@dataclass
class LineState:
    """A LINE reply job: one reply policy (see bot/line/transport.py)."""

    reply_token: str = ""  # from the webhook ("" none: pushed)
    via: Via = "reply"  # "push" once a reply is known to be impossible (refused token, redelivery, unknown)
    reply_unknown: bool = False  # a reply was sent whose outcome is unknown (timeout, 5xx, a worker died)
    resent: bool = False  # the reply-unknown policy pushes it again, led by the script's resent_note
    redelivery: bool = False  # LINE redelivered the webhook: its token is not to be trusted
    fetch_profile: bool = False  # a follow: the worker fetches the display name once it has replied
    sent: bool = False  # the message went (with fetch_profile): a retry only fetches the profile
    read: str = ""  # the markAsReadToken of the owner's message it answers during a handoff (bot/handoff.py)
    unit: str = ""  # a push's custom aggregation unit (LINE's statistics per unit: "nudge_q4"; "" none)

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        if self.reply_token:
            d["reply_token"] = self.reply_token
        if self.read:
            d["read"] = self.read
        if self.unit:
            d["unit"] = self.unit
        if self.via != "reply":
            d["via"] = self.via
        for name in ("reply_unknown", "resent", "redelivery", "fetch_profile", "sent"):
            if getattr(self, name):
                d[name] = True
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> LineState:
        via: Via = "push" if d.get("via") == "push" else "reply"
        return cls(str(d.get("reply_token") or ""), via, bool(d.get("reply_unknown")), bool(d.get("resent")),
                   bool(d.get("redelivery")), bool(d.get("fetch_profile")), bool(d.get("sent")),
                   str(d.get("read") or ""), str(d.get("unit") or ""))


@dataclass
class LineBatchState:
    """A multicast of the quarterly reminder: to the batch's users whose ledger mark names it."""

    rcpt: list[str] = field(default_factory=list)  # LINE user IDs (at most 500)
    period: str = ""  # the quarter it is sent in ("2026-Q2"): the users' ledger marks

    def to_json(self) -> dict[str, Any]:
        return {"rcpt": list(self.rcpt), "period": self.period}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> LineBatchState:
        return cls([str(u) for u in d.get("rcpt") or []], str(d.get("period") or ""))


@dataclass
class SlackState:
    """A Slack job: where a DM goes, which step of a multi-part job was reached, an unknown outcome, and
    whether a post's native chart was refused so that its fallback went instead."""

    dm: str = ""  # the DM's conversation ID, once opened (a job to a user)
    step: int = 0  # the output to send next (posts and files go one after the other)
    post_unknown: bool = False  # the last post's outcome is unknown: look for it before posting again
    lead: str = ""  # the operator's brief: the lead it is about (for the record)
    # the output whose blocks Slack refused (invalid_blocks: a chart or table it does not take), sent in
    # its fallback form instead, once; -1: none. ``step`` then counts in the outputs with it replaced.
    fallback: int = -1
    # the operator's lead threads (bot/handoff.py): the person (a lead ref, "line:U...") whose thread this
    # post is about, and its role: "brief" (its ts becomes the thread), "thread" (posted into the thread
    # once the brief is), "receipt" (an operator reply's ✓ once its LINE push is done); "" none
    person: str = ""
    role: str = ""
    seq: int = 0  # "thread": LINE's time of the event, in ms (posts go out in (received, seq) order)
    read: str = ""  # "thread": the owner's markAsReadToken, kept for the operator's reply once posted

    @property
    def fell_back(self) -> bool:
        return self.fallback >= 0

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        if self.dm:
            d["dm"] = self.dm
        if self.step:
            d["step"] = self.step
        if self.post_unknown:
            d["post_unknown"] = True
        if self.lead:
            d["lead"] = self.lead
        if self.fell_back:
            d["fallback"] = self.fallback
        for name in ("person", "role", "seq", "read"):
            if getattr(self, name):
                d[name] = getattr(self, name)
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> SlackState:
        fallback = d.get("fallback")
        return cls(str(d.get("dm") or ""), int(d.get("step") or 0), bool(d.get("post_unknown")),
                   str(d.get("lead") or ""), -1 if fallback is None else int(fallback), str(d.get("person") or ""),
                   str(d.get("role") or ""), int(d.get("seq") or 0), str(d.get("read") or ""))


@dataclass
class ForwardState:
    """A LINE webhook body to relay to the other tool sharing the LINE account: the exact bytes LINE sent
    (base64, so no JSON round trip can change one byte) and LINE's signature of them, as received."""

    body: str = ""  # base64 of the raw body
    signature: str = ""  # the X-Line-Signature header as LINE sent it

    def to_json(self) -> dict[str, Any]:
        return {"body": self.body, "signature": self.signature}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ForwardState:
        body, signature = d.get("body"), d.get("signature")
        if not isinstance(body, str) or not isinstance(signature, str):
            raise ValueError("a forward's body and signature are text")
        return cls(body, signature)


@dataclass
class WebhookState:
    """One event for one of the client's webhook endpoints: the exact body (JSON text, built when the event
    was queued, so every retry sends the same bytes) and its type. The job's id is the ``webhook-id``."""

    event: str = ""  # "diagnosis.completed" ...
    body: str = ""  # the JSON body as sent

    def to_json(self) -> dict[str, Any]:
        return {"event": self.event, "body": self.body}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> WebhookState:
        event, body = d.get("event"), d.get("body")
        if not isinstance(event, str) or not isinstance(body, str):
            raise ValueError("a webhook's event and body are text")
        return cls(event, body)


@dataclass
class NoState:
    """The try-it page and the terminal keep nothing in a job."""

    def to_json(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> NoState:
        return cls()


TransportState: TypeAlias = LineState | LineBatchState | SlackState | ForwardState | WebhookState | NoState
STATES: dict[Transport, type[TransportState]] = {
    Transport.LINE: LineState,
    Transport.LINEBATCH: LineBatchState,
    Transport.SLACK: SlackState,
    Transport.WEB: NoState,
    Transport.CLI: NoState,
    Transport.LINEFORWARD: ForwardState,
    Transport.WEBHOOK: WebhookState,
}


def state_for(transport: Transport) -> TransportState:
    """A fresh state for a new job of this transport."""
    return STATES[transport]()


def state_from_json(transport: Transport, d: Mapping[str, Any]) -> TransportState:
    if not isinstance(d, Mapping):
        raise InvalidInput("a job's state is not an object")
    try:
        return STATES[transport].from_json(d)
    except (TypeError, ValueError) as e:
        raise InvalidInput(f"a {transport} job's state is not valid: {type(e).__name__}") from None
