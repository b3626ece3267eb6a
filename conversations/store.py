"""Conversation persistence: a small interface and its Redis implementation.

The interface follows python-telegram-bot's BasePersistence: ``get`` a snapshot, ``update`` it
(compare-and-set, exactly once per inbound event, with the outbox entry to send), ``drop`` it.
All keys come from :mod:`conversations.keys`; one user's keys share one Cluster hash slot.

Round trips per handled event: one to read (record + dedupe mark, pipelined) and one to commit
(the recovery marks of the job and the figures record, the Lua commit and the wake-up hints, pipelined;
on a Redis Cluster the marks and the hints live in another slot and go before and after the commit, see
:func:`conversations.redis_ops.write_then_script`). Every call goes through the sync runner.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from conversations import handoff_log, jobs, keys
from conversations.jobs import Figures, Job, Once
from conversations.keys import Subject
from conversations.machine import Conv
from conversations.redis_ops import runner, text

OK, DUPLICATE, CONFLICT = "ok", "dup", "conflict"
DEDUPE_TTL = 3 * 86400  # seconds an inbound event ID is remembered against redelivery
SET_ASIDE = "x-"  # prefix of a job set aside by an unfollow (COMMIT_LUA): a first-shape job kept for its figures

# Apply one conversation transition atomically and exactly once.
# KEYS[1] the user's conversation record (string)       crmbot:{u:<t>:<id>}:conv
# KEYS[2] dedupe mark of the inbound event (string)     crmbot:{u:<t>:<id>}:seen:<event id>
# KEYS[3] the user's mailbox (hash job id -> job JSON)  crmbot:{u:<t>:<id>}:out
# KEYS[4] the mailbox's leases (hash)                   crmbot:{u:<t>:<id>}:lease
# KEYS[5] the user's figures records (hash)             crmbot:{u:<t>:<id>}:figs
# KEYS[6] the user's handoff log (list of JSON)         crmbot:{u:<t>:<id>}:oplog
# ARGV[1] the record as it was read ("" when absent): the compare-and-set guard
# ARGV[2] the new record ("" deletes it)
# ARGV[3] TTL of the record in seconds ("0": no expiry)
# ARGV[4] TTL of the dedupe mark in seconds
# ARGV[5] job id ("" when nothing is to be sent)
# ARGV[6] job JSON
# ARGV[7] "1" to drop the user's pending jobs (unfollow), else "0": they are never sent. A job of the
#         first shape that carries its step's figures ("meta": {"stats"}; "stats" once a worker stored it
#         again, see conversations.jobs) is set aside as "x-<job id>" instead
#         (never claimed) when the step commits figures of its own (ARGV[8]): applying those figures counts
#         the set-aside jobs' and deletes them (bot/analytics_sink.py).
# ARGV[8] figures record id ("" when the step changed nothing the operator counts)
# ARGV[9] figures JSON
# ARGV[10] an entry of the handoff log to append (conversations.handoff_log; "" none)
# ARGV[11] how many entries the log keeps (the latest)
# ARGV[12] TTL of the log in seconds
# Returns "dup" (event already applied: nothing changed), "conflict" (record changed since it was
# read: nothing changed, read again), or "ok".
COMMIT_LUA = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 'dup' end
local cur = redis.call('GET', KEYS[1]) or ''
if cur ~= ARGV[1] then return 'conflict' end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
elseif ARGV[2] ~= cur then
  if ARGV[3] == '0' then
    redis.call('SET', KEYS[1], ARGV[2])
  else
    redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  end
end
redis.call('SET', KEYS[2], '1', 'EX', ARGV[4])
if ARGV[7] == '1' then
  if ARGV[8] ~= '' then
    local pending = redis.call('HGETALL', KEYS[3])
    for i = 1, #pending, 2 do
      if string.sub(pending[i], 1, 2) ~= 'x-' then
        local ok, job = pcall(cjson.decode, pending[i + 1])
        local counted = ok and type(job) == 'table'
          and (job.stats ~= nil or (type(job.meta) == 'table' and job.meta.stats ~= nil))
        if counted then
          redis.call('HSET', KEYS[3], 'x-' .. pending[i], pending[i + 1])
        end
        redis.call('HDEL', KEYS[3], pending[i])
      end
    end
    redis.call('DEL', KEYS[4])
  else
    redis.call('DEL', KEYS[3], KEYS[4])
  end
end
if ARGV[5] ~= '' then redis.call('HSET', KEYS[3], ARGV[5], ARGV[6]) end
if ARGV[8] ~= '' then redis.call('HSET', KEYS[5], ARGV[8], ARGV[9]) end
if ARGV[10] ~= '' then
  redis.call('RPUSH', KEYS[6], ARGV[10])
  redis.call('LTRIM', KEYS[6], -tonumber(ARGV[11]), -1)
  redis.call('EXPIRE', KEYS[6], ARGV[12])
end
return 'ok'
"""


@dataclass(frozen=True)
class Snapshot:
    subject: Subject
    raw: str  # the stored record as read ("" when absent): the compare-and-set guard
    conv: Conv
    seen: bool  # the inbound event was already applied


class Persistence(abc.ABC):
    @abc.abstractmethod
    def get(self, subject: Subject, event_id: str) -> Snapshot: ...

    @abc.abstractmethod
    def update(
        self,
        snap: Snapshot,
        conv: Conv | None,
        event_id: str,
        *,
        ttl: int,
        job: Job | None = None,
        figures: Figures | None = None,
        look_at: float = 0.0,
        drop_outbox: bool = False,
        remind_index: bool = False,
        content: tuple[str, str] | None = None,
        once: Once | None = None,
        log: handoff_log.Entry | None = None,
        nudge: tuple[str, float] | None = None,
        follow: Sequence[tuple[str, float]] = (),
    ) -> str: ...

    @abc.abstractmethod
    def drop(self, subject: Subject) -> None: ...

    @abc.abstractmethod
    def load(self, subject: Subject) -> Conv: ...

    @abc.abstractmethod
    def forget_event(self, subject: Subject, event_id: str) -> None:
        """Remove an inbound event's dedupe mark (a person's data erased: nothing of theirs is kept)."""


class RedisStore(Persistence):
    def __init__(self, client: Any, *, dedupe_ttl: int = DEDUPE_TTL) -> None:
        self.r = runner(client)
        self.dedupe_ttl = dedupe_ttl

    def get(self, subject: Subject, event_id: str) -> Snapshot:
        with self.r.pipeline(transaction=False) as p:
            p.get(keys.conv(subject))
            p.exists(keys.seen(subject, event_id))
            raw, seen = p.execute()
        raw_s = raw.decode() if isinstance(raw, bytes) else (raw or "")
        return Snapshot(subject, raw_s, Conv.from_json(raw_s), bool(seen))

    def update(
        self,
        snap: Snapshot,
        conv: Conv | None,
        event_id: str,
        *,
        ttl: int,
        job: Job | None = None,
        figures: Figures | None = None,
        look_at: float = 0.0,
        drop_outbox: bool = False,
        remind_index: bool = False,
        content: tuple[str, str] | None = None,
        once: Once | None = None,
        log: handoff_log.Entry | None = None,
        nudge: tuple[str, float] | None = None,
        follow: Sequence[tuple[str, float]] = (),
    ) -> str:
        """Commit a transition, with the job that delivers its outputs and the record of its figures for
        the operator (each looked at by a worker at ``look_at`` if nothing took it by then).
        ``remind_index`` adds the user to the reminder index (before the commit, so the index is always
        a superset of the users who opted in). ``content``: (key, value) of the script the job is to be
        rendered with, stored if absent (SET NX) before the commit (the first job of a process).
        ``once``: a job of another hash slot queued at most once (a LINE webhook's forward), riding in the
        same round trip (on a Cluster, a call of its own): queued whatever the commit answers. ``log``: an
        entry appended to the person's handoff log by the commit itself (never twice for one event).
        ``nudge``: (member, due time) of the diagnosis in the drop-off nudge schedule (conversations/nudges.py),
        written before the commit as the reminder index is (a superset: the record is read again at send time).
        ``follow``: follow-ups to schedule, (member, due) (bot/followups.py), added before the commit likewise."""
        s = snap.subject
        # An unchanged record keeps its stored bytes as they are.
        new_raw = snap.raw if conv is snap.conv else (conv.to_json() if conv is not None else "")
        args = [snap.raw, new_raw, ttl, self.dedupe_ttl, "", "", "1" if drop_outbox else "0", "", "",
                log.to_json() if log is not None else "", handoff_log.CAP, handoff_log.TTL]
        if job is not None:
            args[4] = job.id
            args[5] = job.to_json()
        if figures is not None:
            args[7] = figures.id
            args[8] = figures.to_json()
        queued: list[Job | Figures] = [x for x in (job, figures) if x is not None]
        if once is not None:
            queued.append(once.job)  # its mark before its script, its hint after, as the step's

        def before(p: Any) -> None:
            if content is not None:
                p.set(content[0], content[1], nx=True)
            if remind_index:
                p.sadd(keys.REMIND_INDEX, f"{s.transport}:{s.user_id}")
            if nudge is not None:
                p.zadd(keys.NUDGE_DUE, {nudge[0]: nudge[1]})
            if follow:
                p.zadd(keys.FOLLOWUPS, dict(follow))
            for x in queued:
                # The recovery mark first: if this process dies after the commit, a worker still
                # finds the job (and the figures).
                jobs.intend(p, x, look_at)

        def after(p: Any) -> None:
            for x in queued:
                jobs.wake(p, x)  # a commit that did not happen leaves a hint to nothing: dropped

        script_keys = [keys.conv(s), keys.seen(s, event_id), jobs.mailbox(s.tag_name), jobs.leases(s.tag_name),
                       jobs.figures(s.tag_name), keys.handoff_log(s)]
        result = self.r.write_then_script(COMMIT_LUA, keys=script_keys, args=args, before=before, after=after,
                                          first=[once.script()] if once is not None else [])
        return text(result)

    def drop(self, subject: Subject) -> None:
        self.r.delete(keys.conv(subject), jobs.mailbox(subject.tag_name), jobs.leases(subject.tag_name))

    def load(self, subject: Subject) -> Conv:
        return Conv.from_json(self.r.get(keys.conv(subject)))

    def forget_event(self, subject: Subject, event_id: str) -> None:
        self.r.delete(keys.seen(subject, event_id))
