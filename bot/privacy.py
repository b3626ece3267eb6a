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
3. the operator's figures (the person's shard ``{stats:<k>}``, :data:`conversations.analytics.ERASE_LUA`):
   each lead hash, its index entries, the person's index, display name, follow mark and follower count are
   deleted; the diagnoses stay *counted* in the day counters (which hold no id), so every total, for
   others and overall, is unchanged and nothing points back to the person;
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
from collections.abc import Callable
from typing import Any

from bot.logs import uid
from bot.outbox import Outbox
from conversations import analytics, jobs, keys
from conversations.booking import Bookings
from conversations.errors import InvalidInput
from conversations.keys import PREFIX, Subject
from conversations.redis_ops import runner, text

log = logging.getLogger(__name__)
AUDIT = f"{PREFIX}:{{audit}}:erasures"  # a stream: one entry per erasure, no personal data
AUDIT_MAXLEN = 10_000
ERASED = f"{PREFIX}:{{erased}}"  # + ":<hash of an event id>": a confirmation already carried out
SCAN_COUNT = 500
_GLOB = set("*?[]\\")

def person_hash(subject: Subject) -> str:
    """Who an audit entry is about, without who: a hash of the transport and the user ID."""
    return hashlib.sha256(f"{subject.transport}:{subject.user_id}".encode()).hexdigest()[:16]


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
        leads = analytics.Analytics(self.r).person_ids(channel, user_id)
        if not leads:
            return 0
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
        """The person's leads out of every index, deleted (:data:`conversations.analytics.ERASE_LUA`); the day
        counters keep counting them (no id in them). Returns the leads' ids."""
        leads = analytics.Analytics(self.r).person_ids(channel, user_id)
        self.r.do(analytics.erase_step(channel, user_id, self.clock(), 0.0))
        return leads

    def audit_log(self, count: int = 50) -> list[dict[str, str]]:
        """The newest erasures first (the console's view of the audit stream)."""
        return [{text(k): text(v) for k, v in fields.items()} | {"id": text(entry)}
                for entry, fields in self.r.xrevrange(AUDIT, count=count)]
