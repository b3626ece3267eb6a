"""An operator's work on a lead: notes (who, when, what), an assignee, and the history of its status and
assignee changes.

Kept in the lead's record family, in its figures shard's slot ``{stats:<k>}`` beside the lead's hash (so
each change is one Lua script on a Redis Cluster too, and an erasure finds it by the lead's id:
bot/privacy.py)::

    crmbot:{stats:<k>}:lead:<lead id>          field ``as``: the assignee ("" nobody)
    crmbot:{stats:<k>}:lead:<lead id>:notes    list of JSON {"id", "at", "by", "text"}, oldest first; at most
                                               NOTES_MAX kept, each at most NOTE_MAX characters
    crmbot:{stats:<k>}:lead:<lead id>:history  list of JSON {"at", "by", "field": "status" | "assignee",
                                               "from", "to"}, oldest first (status changes are appended by
                                               conversations.analytics.SET_CONSULT_LUA)
    crmbot:{stats:<k>}:assignees               names assigned to the shard's leads (score: last used): the
                                               form's choices are the union of the shards' (one pipeline)

A note carries the id of the form it was written in: the same form sent twice (a double tap, a resent
POST) adds one note. Setting the assignee to the one already set changes nothing and adds no history.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from conversations.analytics import HISTORY_MAX, SHARDS, base, history_key, lead_key, notes_key, shard_of_lead
from conversations.errors import InvalidInput
from conversations.redis_ops import runner, text

NOTE_MAX = 2000  # characters in one note
NOTES_MAX = 200  # notes kept per lead (the oldest go first)
NAME_MAX = 100  # characters of an assignee's name


def assignees_key(shard: int) -> str:
    """Names assigned in one figures shard (score: last used): beside the leads, so assigning is one script."""
    return f"{base(shard)}:assignees"


ASSIGNEES_SHOWN = 50

# Add a note. KEYS[1] the lead, KEYS[2] its notes. ARGV[1] the form's id, [2] the note (JSON), [3] NOTES_MAX.
# Returns 0 no such lead, 1 added, 2 a note of this form is there already.
ADD_NOTE_LUA = """
if redis.call('HEXISTS', KEYS[1], 'ch') == 0 then return 0 end
for _, raw in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do
  local ok, note = pcall(cjson.decode, raw)
  if ok and type(note) == 'table' and note.id == ARGV[1] then return 2 end
end
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[3]), -1)
return 1
"""

# Set the assignee. KEYS[1] the lead, KEYS[2] its history, KEYS[3] assignees.
# ARGV[1] the name ("" nobody), [2] now, [3] by, [4] HISTORY_MAX.
# Returns 0 no such lead, 1 changed, 2 it already was.
ASSIGN_LUA = """
if redis.call('HEXISTS', KEYS[1], 'ch') == 0 then return 0 end
local before = redis.call('HGET', KEYS[1], 'as') or ''
if before == ARGV[1] then return 2 end
redis.call('HSET', KEYS[1], 'as', ARGV[1])
if ARGV[1] ~= '' then redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1]) end
redis.call('RPUSH', KEYS[2], cjson.encode({at = tonumber(ARGV[2]), by = ARGV[3], field = 'assignee',
                                           from = before, to = ARGV[1]}))
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[4]), -1)
return 1
"""


@dataclass(frozen=True)
class Note:
    at: float
    by: str
    text: str


@dataclass(frozen=True)
class Change:
    at: float
    by: str
    field: str  # "status" | "assignee"
    before: str
    after: str


def clean_name(name: str) -> str:
    return " ".join("".join(c for c in str(name) if c.isprintable()).split())[:NAME_MAX]


def clean_note(note: str) -> str:
    """A note as kept: line ends normalised, other control characters dropped, trimmed."""
    lines = str(note).replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n".join("".join(c for c in line if c.isprintable() or c == "\t") for line in lines).strip()


class LeadWork:
    """Notes, assignee and history of leads (sync: redis-py, plain or Cluster)."""

    def __init__(self, client: Any, *, clock: Callable[[], float]) -> None:
        self.r = runner(client)
        self.clock = clock
        self._add_note = self.r.script(ADD_NOTE_LUA)
        self._assign = self.r.script(ASSIGN_LUA)

    def add_note(self, lead_id: str, note: str, *, by: str, form_id: str) -> int:
        """0 no such lead, 1 added, 2 this form's note was added before. :class:`InvalidInput` when the
        note is empty or longer than NOTE_MAX."""
        body = clean_note(note)
        if not body:
            raise InvalidInput("a note needs some text")
        if len(body) > NOTE_MAX:
            raise InvalidInput(f"a note has at most {NOTE_MAX} characters")
        if not form_id or len(form_id) > 64:
            raise InvalidInput("a note needs its form's id")
        entry = json.dumps({"id": form_id, "at": round(self.clock(), 3), "by": str(by)[:NAME_MAX], "text": body},
                           ensure_ascii=False)
        return int(self._add_note(keys=[lead_key(lead_id), notes_key(lead_id)], args=[form_id, entry, NOTES_MAX]))

    def assign(self, lead_id: str, name: str, *, by: str) -> int:
        """0 no such lead, 1 changed (history written), 2 already so. ``name`` "": nobody."""
        return int(self._assign(keys=[lead_key(lead_id), history_key(lead_id), assignees_key(shard_of_lead(lead_id))],
                                args=[clean_name(name), repr(round(self.clock(), 3)), str(by)[:NAME_MAX],
                                      HISTORY_MAX]))

    def notes(self, lead_id: str) -> list[Note]:
        """Oldest first."""
        out = []
        for raw in self.r.lrange(notes_key(lead_id), 0, -1):
            found = _entry(raw)
            if found is not None:
                out.append(Note(float(found.get("at") or 0), str(found.get("by", "")), str(found.get("text", ""))))
        return out

    def history(self, lead_id: str) -> list[Change]:
        """Oldest first."""
        out = []
        for raw in self.r.lrange(history_key(lead_id), 0, -1):
            found = _entry(raw)
            if found is not None:
                out.append(Change(float(found.get("at") or 0), str(found.get("by", "")), str(found.get("field", "")),
                                  str(found.get("from", "")), str(found.get("to", ""))))
        return out

    def assignees(self) -> list[str]:
        """The names assigned so far, most recently used first."""
        with self.r.pipeline(transaction=False) as p:
            for k in range(SHARDS):
                p.zrevrange(assignees_key(k), 0, ASSIGNEES_SHOWN - 1, withscores=True)
            got = p.execute()
        latest: dict[str, float] = {}
        for name, score in (pair for rows in got for pair in rows):
            latest[text(name)] = max(latest.get(text(name), 0.0), float(score))
        return sorted(latest, key=lambda n: (-latest[n], n))[:ASSIGNEES_SHOWN]


def _entry(raw: Any) -> dict[str, Any] | None:
    try:
        found = json.loads(text(raw))
    except ValueError:
        return None
    return found if isinstance(found, dict) else None
