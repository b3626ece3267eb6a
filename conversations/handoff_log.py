"""The owner's conversation with the operator during a handoff, kept for the console's lead page.

One list per person, in the person's own hash slot (``keys.handoff_log``): compact JSON entries, oldest
first, the last :data:`CAP` kept, the whole list expiring :data:`TTL` seconds after its latest entry (as
long as the lead's thread is remembered). An entry is written **by the commit of the step** that relays
the owner's message into the lead's thread or pushes an operator's reply to the owner
(:data:`conversations.store.COMMIT_LUA`), so a redelivered LINE or Slack event, found a duplicate by that
commit, writes nothing. An entry:

    {"who": "owner" | "operator", "at": seconds, "kind": "text" | "sticker" | "image" | ...,
     "text": the words (a file's name, a location's title; "" for a sticker or an image),
     "by": the operator's Slack user ID, "ws": their workspace ("" one workspace)}

**Read or not.** The owner's messages before an operator's answer are read: pushing the answer marks them
read on LINE too (bot/handoff.py), so the console shows as unread what the owner sees unanswered. An
owner's message after the latest answer is unread. Looking at the lead page marks nothing (a viewer may
look; LINE's read mark only goes with an answer).

The texts are personal data ("messages to the operator" in the privacy note): erasing the person removes
the list with every other key of their slot (bot/privacy.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from conversations import keys
from conversations.errors import InvalidInput
from conversations.keys import Subject
from conversations.redis_ops import runner, text

OWNER, OPERATOR = "owner", "operator"
CAP = 200  # entries kept per person: the latest
TTL = 400 * 86400  # seconds the list is kept after its latest entry (bot.handoff.THREAD_TTL)
MAX_TEXT = 5000  # LINE's limit for a text message; an owner's longer words are cut there


@dataclass(frozen=True)
class Entry:
    who: str  # OWNER or OPERATOR
    at: float  # when it was written (seconds)
    kind: str  # LINE's message type for the owner's ("text", "sticker", ...); "text" for an operator's
    text: str = ""
    by: str = ""  # an operator's Slack user ID
    ws: str = ""  # an operator's Slack workspace ("" one workspace)
    unread: bool = False  # set when read back: an owner's message after the latest answer

    def to_json(self) -> str:
        out: dict[str, Any] = {"who": self.who, "at": round(self.at, 3), "kind": self.kind}
        if self.text:
            out["text"] = self.text[:MAX_TEXT]
        if self.by:
            out["by"] = self.by
        if self.ws:
            out["ws"] = self.ws
        return json.dumps(out, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> Entry:
        try:
            data = json.loads(raw)
            who, at, kind = data["who"], float(data["at"]), str(data["kind"])
        except (ValueError, KeyError, TypeError) as e:
            raise InvalidInput("not a handoff log entry") from e
        if who not in (OWNER, OPERATOR):
            raise InvalidInput("not a handoff log entry")
        return cls(who, at, kind, str(data.get("text", "")), str(data.get("by", "")), str(data.get("ws", "")))


def owner_entry(kind: str, words: str, at: float) -> Entry:
    return Entry(OWNER, at, kind or "text", words)


def operator_entry(words: str, at: float, *, by: str, ws: str = "") -> Entry:
    return Entry(OPERATOR, at, "text", words, by=by, ws=ws)


def with_marks(entries: list[Entry]) -> list[Entry]:
    """The entries with the owner's messages after the latest answer marked unread."""
    last = max((i for i, e in enumerate(entries) if e.who == OPERATOR), default=-1)
    return [Entry(e.who, e.at, e.kind, e.text, e.by, e.ws, unread=e.who == OWNER and i > last)
            for i, e in enumerate(entries)]


def read(client: Any, subject: Subject) -> list[Entry]:
    """The person's log, oldest first, with the unread marks (an unreadable entry is left out)."""
    found: list[Entry] = []
    for raw in runner(client).lrange(keys.handoff_log(subject), 0, -1):
        try:
            found.append(Entry.from_json(text(raw)))
        except InvalidInput:
            continue
    return with_marks(found)
