"""Deleting one person's data: every key of theirs, on their own request or the operator's.

An owner who sends 「データを削除」 and confirms (``inputs.ERASE_YES``) is erased by the core before the
confirmation is committed (bot/core.py); the operator erases from the lead page of the console. Both go
through :meth:`Eraser.erase`, idempotent (a retry after a failure finishes the job), in this order:

1. the user's hash slot (``crmbot:{u:<transport>:<id>}:*``: the record, dedupe marks, reminder ledger,
   the try page's inbox, the conversation with the operator during handoffs (``oplog``), and whatever else
   a feature keeps there), found by SCAN MATCH on the slot's tag
   (an erasure is rare; the scan is bounded by the keyspace, never run on a webhook's hot path). Pending
   jobs and figures records go through the outbox's own path (:meth:`bot.outbox.Outbox.discard`): never
   sent, never applied, the invariant kept (a due mark left behind is cleared by the worker after a lease,
   as for any job gone; a parked ref is removed with its job);
2. the reminder index's entry;
3. the operator's figures (``{stats}``, :data:`ANONYMISE_LUA`): each lead hash and the person's index,
   display name, follow mark and follower entry are deleted; the diagnoses stay *counted* in the funnel,
   tier and answer sets (the channel's, and those of its leads' source) under a fresh random id (same
   score: the start time), so every total, for others and overall, is unchanged and nothing points back to
   the person;
4. the operator channel's brief marks of those leads, and its index entries of the person's threads;
5. the booking store (``{booking}``, :meth:`conversations.booking.Bookings.erase`): an active booking is
   cancelled first (its place frees at once, its reminders never fire), then every booking of the person,
   its index entries and request outcome, their consultation record and status entries are deleted;
6. forwards to another LINE tool (bot/line/forward.py) waiting or parked whose webhook body names the person
   (each its own tag: found through the queue shards' due and parked refs, never a scan of the keyspace),
   dropped like their jobs: a webhook that also carried others' events is then not relayed either;
7. one entry in the audit stream ``crmbot:{audit}:erasures``: who (``owner`` or the operator's name),
   when, a hash of the person (never the ID) and how many keys of each family were removed.

A redelivered confirmation finds the person gone and nothing to dedupe against in their slot (their dedupe
mark went with them): :meth:`Eraser.seen` / :meth:`Eraser.remember` keep a mark of the event outside it,
``crmbot:{erased}:<hash of the event id>`` (nothing of the person; ``ttl`` seconds, the dedupe marks'), so
the core answers it as a duplicate and nothing is sent twice.

Not reachable from here: a Slack message already posted in the operator's channel (a brief), and the
LINE chat itself (LINE's, not ours).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from bot.logs import uid
from bot.outbox import Outbox
from conversations import analytics, jobs, keys
from conversations.booking import Bookings
from conversations.errors import Contention, InvalidInput
from conversations.keys import PREFIX, Subject
from conversations.redis_ops import runner, text
from scoring import CHOICES, QUESTION_COUNT, TIERS

log = logging.getLogger(__name__)
AUDIT = f"{PREFIX}:{{audit}}:erasures"  # a stream: one entry per erasure, no personal data
AUDIT_MAXLEN = 10_000
ERASED = f"{PREFIX}:{{erased}}"  # + ":<hash of an event id>": a confirmation already carried out
SCAN_COUNT = 500
_GLOB = set("*?[]\\")

# Anonymise one person's leads in the {stats} slot.
# KEYS[1] person:<ch>:<user>   [2] names   [3] follow   [4] followers   [5] consult:open   [6] active
# KEYS[7 .. 6+A] the aggregate sets a lead may be in (started, reached, tier, answer of its channel, then those
# of the channel's segment of each source the leads were read with)
# KEYS[7+A .. 6+A+n] the leads' hashes, in the order of ARGV's lead ids
# KEYS[7+A+n] anon:<ch>, KEYS[8+A+n ..] anon:<ch>:<T> for each tier (counts left out of a leads list's total)
# ARGV[1] "<ch>:<user>"  [2] A (how many aggregate sets)  [3] n leads  [4 .. 3+n] lead ids
# [4+n .. 3+2n] a fresh random id for each  [4+2n ..] the sources the leads were read with
# Returns -1 when the person's index or a lead's source changed since it was read (read again), else the
# number of leads.
ANONYMISE_LUA = """
local a, n = tonumber(ARGV[2]), tonumber(ARGV[3])
if redis.call('ZCARD', KEYS[1]) ~= n then return -1 end
local known = {}
for j = 4 + 2 * n, #ARGV do known[ARGV[j]] = true end
for i = 1, n do
  local src = redis.call('HGET', KEYS[6 + a + i], 'src')
  if src and src ~= '' and not known[src] then return -1 end
end
for i = 1, n do
  local id, anon = ARGV[3 + i], ARGV[3 + n + i]
  if not redis.call('ZSCORE', KEYS[1], id) then return -1 end
  for k = 7, 6 + a do
    local score = redis.call('ZSCORE', KEYS[k], id)
    if score then
      redis.call('ZREM', KEYS[k], id)
      redis.call('ZADD', KEYS[k], score, anon)
    end
  end
  local started = redis.call('ZSCORE', KEYS[7], anon)
  if started then redis.call('ZADD', KEYS[7 + a + n], started, anon) end
  for t = 1, #KEYS - 7 - a - n do
    local score = redis.call('ZSCORE', KEYS[6 + 11 + t], anon)
    if score then redis.call('ZADD', KEYS[7 + a + n + t], score, anon) end
  end
  redis.call('ZREM', KEYS[5], id)
  redis.call('ZREM', KEYS[6], id)
  redis.call('DEL', KEYS[6 + a + i])
end
redis.call('DEL', KEYS[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('SREM', KEYS[4], ARGV[1])
return n
"""


def person_hash(subject: Subject) -> str:
    """Who an audit entry is about, without who: a hash of the transport and the user ID."""
    return hashlib.sha256(f"{subject.transport}:{subject.user_id}".encode()).hexdigest()[:16]


def _aggregates(channel: str) -> list[str]:
    """Every sorted set of diagnoses of a channel (or of its segment of one source) that counts a lead
    (conversations.analytics): started, reached 1..10, tier A B C (ANONYMISE_LUA counts on this order), the
    answers."""
    return [
        analytics.started_key(channel),
        analytics.asked_key(channel),
        *(analytics.reached_key(channel, q) for q in range(1, QUESTION_COUNT + 1)),
        *(analytics.tier_key(channel, t) for t in TIERS),
        *(analytics.answer_key(channel, q, x) for q in range(1, QUESTION_COUNT + 1) for x in CHOICES),
        *(analytics.nudged_key(channel, q) for q in range(1, QUESTION_COUNT + 1)),
        *(analytics.resumed_key(channel, q) for q in range(1, QUESTION_COUNT + 1)),
        analytics.recovered_key(channel),
    ]


def _family(key: str, tag: str) -> str:
    """A user-slot key's family for the audit: "conv", "seen", "inbox", "rem" ... (never the ID)."""
    rest = key[len(f"{PREFIX}:{tag}:"):]
    return rest.split(":", 1)[0] or "other"


def erased_key(event_id: str) -> str:
    """The mark of an erasure's confirmation event, named by a hash of its id (nothing of the person)."""
    return f"{ERASED}:{hashlib.sha256(event_id.encode()).hexdigest()[:32]}"


class Eraser:
    def __init__(self, client: Any, outbox: Outbox, *, clock: Callable[[], float] = time.time,
                 operator_channel: str | None = None, ttl: int = 86400) -> None:
        self.r = runner(client)
        self.outbox = outbox
        self.bookings = Bookings(self.r, clock=clock)
        self.clock = clock
        self.operator_channel = operator_channel
        self.ttl = ttl  # seconds a confirmation's event is remembered (the dedupe marks' TTL)

    def seen(self, event_id: str) -> bool:
        """This confirmation event was carried out already (a redelivery): nothing is to be done or said."""
        return bool(self.r.exists(erased_key(event_id)))

    def remember(self, event_id: str) -> None:
        self.r.set(erased_key(event_id), "1", ex=max(1, int(self.ttl)))

    def erase(self, subject: Subject, *, by: str) -> dict[str, int]:
        """Remove every key of the person (see the module's docstring); returns what was removed, by family."""
        removed: dict[str, int] = {}
        jobs_gone = self.outbox.discard(subject.tag_name)
        if jobs_gone:
            removed["jobs"] = jobs_gone
        if self.operator_channel:  # the lead's threads (one per brief): a reply there finds nobody any more
            index, ref = keys.operator_threads(self.operator_channel), keys.lead_ref(subject)
            threads = [text(ts) for ts, who in self.r.hscan_iter(index, count=500) if text(who) == ref]
            if threads and self.r.hdel(index, *threads):
                removed["operator_thread"] = len(threads)
        for key in self._user_keys(subject):
            family = _family(key, subject.tag)
            if self.r.delete(key):
                removed[family] = removed.get(family, 0) + 1
        if self.r.srem(keys.REMIND_INDEX, f"{subject.transport}:{subject.user_id}"):
            removed["reminder_index"] = 1
        if nudges := self._drop_scheduled(subject, keys.NUDGE_DUE, keys.NUDGE_HELD):
            removed["nudge_schedule"] = nudges
        if steps := self._drop_scheduled(subject, keys.FOLLOWUPS, keys.FOLLOWUPS_HELD):  # bot/followups.py
            removed["followups"] = steps
        worked = self._forget_work(str(subject.transport), subject.user_id)
        if worked:
            removed["lead_work"] = worked
        leads = self._anonymise(str(subject.transport), subject.user_id)
        if leads:
            removed["leads"] = len(leads)
            if self.operator_channel:
                self.r.delete(*(keys.consult_briefed(self.operator_channel, lead) for lead in leads))
        booked = self.bookings.erase(subject)
        removed |= {k: v for k, v in (("bookings", booked.bookings), ("bookings_cancelled", booked.cancelled),
                                      ("consultation", int(booked.record))) if v}
        if forwards := self._drop_forwards(subject):
            removed["forwards"] = forwards
        self.r.xadd(AUDIT, {"by": str(by)[:100] or "?", "at": repr(round(self.clock(), 3)),
                            "who": person_hash(subject), "removed": json.dumps(removed, sort_keys=True)},
                    maxlen=AUDIT_MAXLEN, approximate=True)
        log.info("erased %s by %s: %s", uid(subject.user_id), "owner" if by == "owner" else "operator",
                 json.dumps(removed, sort_keys=True))
        return removed

    def _drop_scheduled(self, subject: Subject, due: str, held: str) -> int:
        """The person's entries in a push schedule (the drop-off nudges' of conversations/nudges.py, the
        follow-ups' of bot/followups.py: members "<transport>:<user>|..."), held ones too."""
        ref = "".join("\\" + c if c in _GLOB else c for c in f"{subject.transport}:{subject.user_id}|")
        members = [text(m) for m, _ in self.r.zscan_iter(due, match=ref + "*", count=SCAN_COUNT)]
        if not members:
            return 0
        with self.r.pipeline(transaction=False) as p:
            p.zrem(due, *members)
            p.hdel(held, *members)
            gone = p.execute()
        return int(gone[0])

    def _user_keys(self, subject: Subject) -> list[str]:
        tag = "".join("\\" + c if c in _GLOB else c for c in subject.tag)
        found: list[str] = []
        for _, node in self.r.nodes():
            found += [text(k) for k in node.scan_iter(match=f"{PREFIX}:{tag}:*", count=SCAN_COUNT)]
        return sorted(set(found))

    def _forget_work(self, channel: str, user_id: str) -> int:
        """The operator's notes and history on the person's leads (before the leads go: a retry finds them)."""
        leads = [text(x) for x in self.r.zrange(analytics.person_key(channel, user_id), 0, -1)]
        if not leads:
            return 0
        self.r.zrem(analytics.CONSULT_WORKED, *leads)
        return int(self.r.delete(*(k for lead in leads for k in (analytics.notes_key(lead),
                                                                   analytics.history_key(lead)))))

    def _drop_forwards(self, subject: Subject) -> int:
        """Drop the forwards (due or parked) whose webhook body names the person; how many went."""
        needle = subject.user_id.encode()
        tags: set[str] = set()
        for shard in range(jobs.QUEUE_SHARDS):
            for key in (jobs.due(shard), jobs.parked(shard)):
                for raw_ref, _ in self.r.zscan_iter(key):
                    tag, job_id = jobs.parse_ref(raw_ref)
                    if tag.startswith("fwd:") and tag not in tags and self._names(tag, job_id, needle):
                        tags.add(tag)
        return sum(self.outbox.discard(tag) for tag in sorted(tags))

    def _names(self, tag: str, job_id: str, needle: bytes) -> bool:
        raw = self.r.hget(jobs.record_keys(tag, job_id)[0], job_id)
        if raw is None:
            return False
        try:
            job = jobs.read(job_id, raw)
            return isinstance(job, jobs.Job) and needle in base64.b64decode(job.forward.body)
        except (InvalidInput, ValueError):
            return False

    def _anonymise(self, channel: str, user_id: str) -> list[str]:
        person = analytics.person_key(channel, user_id)
        for _ in range(10):
            leads = [text(x) for x in self.r.zrange(person, 0, -1)]
            anon = [f"anon-{uuid.uuid4().hex}" for _ in leads]
            sources = sorted({text(x) for x in (self.r.hget(analytics.lead_key(lead), "src") for lead in leads) if x})
            aggregates = [key for seg in (channel, *(analytics.segment(channel, src) for src in sources))
                          for key in _aggregates(seg)]
            got = self.r.script(ANONYMISE_LUA)(
                keys=[person, analytics.NAMES, analytics.FOLLOW, analytics.FOLLOWERS, analytics.CONSULT_OPEN,
                      analytics.ACTIVE, *aggregates, *(analytics.lead_key(lead) for lead in leads),
                      analytics.anon_key(channel), *(analytics.anon_key(channel, t) for t in TIERS)],
                args=[analytics.person_ref(channel, user_id), len(aggregates), len(leads), *leads, *anon,
                      *sources])
            if int(got) >= 0:
                return leads
        raise Contention("the person's leads kept changing while they were erased")

    def audit_log(self, count: int = 50) -> list[dict[str, str]]:
        """The newest erasures first (the console's view of the audit stream)."""
        return [{text(k): text(v) for k, v in fields.items()} | {"id": text(entry)}
                for entry, fields in self.r.xrevrange(AUDIT, count=count)]
