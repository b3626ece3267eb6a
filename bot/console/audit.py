"""The console's audit log: every change an operator makes (a lead's status, assignee or note, a requeue,
the availability, content, a deletion, a login, an operator's account), with who and when.

The contract every changing view calls: :func:`record`. Entries are a Redis stream
(:data:`bot.console.keys.AUDIT`), trimmed to about :data:`MAXLEN` entries (``MAXLEN ~``: Redis trims whole
blocks, so a few more may stay); each entry names a record (``target``) and a list per target keeps the ids of
its newest :data:`PER_TARGET` entries, written in the same script, so a lead's page reads its own entries
without scanning the stream (:func:`for_target`).

An entry holds ``at`` (the app's clock), ``who`` (the operator's name), ``action`` (a short verb such as
``lead.status``), ``target`` (an opaque id: a lead is named by :func:`lead_target`, a hash, never a LINE
user ID) and ``detail`` (the new value in a few words; never a message text nor a password).

The audit page reads newest first, a page at a time (:func:`page`); a filter by who or action is applied
while reading, at most :data:`SCAN` entries per page, and the page says where to go on.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from bot.console import keys
from conversations.redis_ops import runner, text

log = logging.getLogger(__name__)

MAXLEN = 100_000
PER_TARGET = 200
SCAN = 2000  # entries read at most for one filtered page
FIELD_MAX = 200  # characters kept of who, target, detail
# The actions the console writes (the audit page's filter); other parts may write others (shown as they are).
ACTIONS = ("login", "logout", "lead.status", "lead.assign", "lead.note", "lead.erase", "delivery.requeue",
           "operator.create", "operator.role", "operator.delete", "operator.password", "operator.totp_on",
           "operator.totp_off", "operator.totp_reset", "session.revoke", "settings.totp_required", "availability.set",
           "calendar.rotate", "booking.mark", "booking.cancel", "webhook.create", "webhook.delete", "experiment.end",
           "content.upload", "content.publish", "content.rollback")

# KEYS[1] the stream, KEYS[2] the target's list. ARGV[1] MAXLEN, ARGV[2] the list's length, ARGV[3..] the
# entry's field/value pairs. Returns the entry's id.
_RECORD_LUA = """
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(ARGV, 3))
redis.call('LPUSH', KEYS[2], id)
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[2]) - 1)
return id
"""


@dataclass(frozen=True)
class Entry:
    id: str  # the stream's id
    at: float
    who: str
    action: str
    target: str
    detail: str

    @staticmethod
    def parse(entry_id: Any, fields: dict[Any, Any]) -> Entry:
        f = {text(k): text(v) for k, v in fields.items()}
        try:
            at = float(f.get("at", "0"))
        except ValueError:
            at = 0.0
        return Entry(text(entry_id), at, f.get("who", ""), f.get("action", ""), f.get("target", ""),
                     f.get("detail", ""))


def lead_target(lead_id: str) -> str:
    """What the audit names a lead by: a hash of its id (which holds the LINE user ID)."""
    return "lead:" + hashlib.sha256(lead_id.encode()).hexdigest()[:20]


def record(client: Any, *, who: str, action: str, target: str, detail: str = "", now: float) -> None:
    """Write one change: ``who`` (the operator's name), ``action`` (a short verb such as ``lead.status``,
    ``booking.cancel``, ``availability.set``), ``target`` (an opaque record id: never a LINE user ID in
    clear), ``detail`` (the new value in a few words; no message texts). ``client``: a sync Redis client."""
    fields = ["at", repr(now), "who", who[:FIELD_MAX], "action", action[:60], "target", target[:FIELD_MAX],
              "detail", detail[:FIELD_MAX]]
    runner(client).script(_RECORD_LUA)(keys=[keys.AUDIT, keys.audit_target(target)],
                                       args=[MAXLEN, PER_TARGET, *fields])
    log.info("audit: %s %s", action, target[:24])


def for_target(client: Any, target: str, limit: int = 50) -> list[Entry]:
    """The newest ``limit`` entries about ``target`` (as :func:`record` named it), newest first."""
    r = runner(client)
    ids = [text(i) for i in r.lrange(keys.audit_target(target), 0, max(0, min(limit, PER_TARGET)) - 1)]
    if not ids:
        return []
    with r.pipeline(transaction=False) as p:
        for entry_id in ids:
            p.xrange(keys.AUDIT, entry_id, entry_id)
        found = p.execute()
    return [Entry.parse(*rows[0]) for rows in found if rows]  # an entry trimmed from the stream is gone


@dataclass(frozen=True)
class Page:
    entries: list[Entry]
    next: str  # the id to go on before ("" at the end)


def _newest_first(client: Any, before: str, batch: int) -> Iterator[Entry]:
    r = runner(client)
    top = f"({before}" if before else "+"
    while True:
        rows = r.xrevrange(keys.AUDIT, top, "-", count=batch)
        for entry_id, fields in rows:
            yield Entry.parse(entry_id, fields)
        if len(rows) < batch:
            return
        top = f"({text(rows[-1][0])}"


def page(client: Any, *, size: int = 50, before: str = "", who: str = "", action: str = "") -> Page:
    """A page of entries older than ``before`` (a stream id; "" for the newest), newest first, of ``who``
    and of ``action`` when given (an action ending in ``.`` matches every action it begins)."""
    if before and not _is_id(before):
        before = ""
    found: list[Entry] = []
    last = ""
    for read, entry in enumerate(_newest_first(client, before, min(500, max(size, 100))), start=1):
        last = entry.id
        if (not who or entry.who == who) and (not action or _action_matches(entry.action, action)):
            found.append(entry)
            if len(found) == size:
                return Page(found, entry.id)
        if read >= SCAN:
            return Page(found, last)
    return Page(found, "")


def every(client: Any, *, who: str = "", action: str = "") -> Iterator[Entry]:
    """Every entry (filtered), newest first: the CSV export."""
    for entry in _newest_first(client, "", 500):
        if (not who or entry.who == who) and (not action or _action_matches(entry.action, action)):
            yield entry


def names(client: Any, limit: int = 2000) -> list[str]:
    """The names that acted in the newest ``limit`` entries (the page's filter)."""
    seen: dict[str, None] = {}
    for i, entry in enumerate(_newest_first(client, "", 500)):
        seen.setdefault(entry.who)
        if i + 1 >= limit:
            break
    return sorted(seen)


def _action_matches(found: str, wanted: str) -> bool:
    return found.startswith(wanted) if wanted.endswith(".") else found == wanted


def _is_id(value: str) -> bool:
    ms, dash, seq = value.partition("-")
    return bool(dash) and ms.isdigit() and seq.isdigit() and len(value) < 40
