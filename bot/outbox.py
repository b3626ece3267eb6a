"""The outbox, producer side: jobs are committed with their cause and delivered by the worker.

The web process never sends. It builds a :class:`~conversations.jobs.Job` for what the bot has to
say and commits it together with the state change that caused it (see
:meth:`conversations.store.RedisStore.update`), or on its own with :meth:`Outbox.enqueue`. Each
commit also writes, in the same round trip, the job's recovery mark (before) and a wake-up hint
(after) in the job's queue shard; :mod:`bot.worker` claims, delivers and records every job.

The operator's side is here too: :meth:`Outbox.parked` lists jobs that kept failing,
:meth:`Outbox.requeue` puts one back in line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from bot.logs import uid
from conversations import inputs as I
from conversations import jobs
from conversations.jobs import Job
from conversations.keys import Subject
from conversations.redis_ops import text, translated, write_then_script

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Parked:
    id: str
    channel: str
    user: str  # hashed: for the operator's eyes and logs
    parked_at: float
    reason: str
    attempts: int


class Outbox:
    def __init__(
        self,
        client: Any,
        channels: Iterable[str],
        *,
        clock: Callable[[], float] = time.time,
        lease: float = 30.0,
    ) -> None:
        self.r = client
        self.channels = frozenset(channels)
        self.clock = clock
        self.lease = lease
        self._ledger_enqueue = client.register_script(jobs.LEDGER_ENQUEUE_LUA)
        self._put = client.register_script(jobs.PUT_LUA)
        self._requeue = client.register_script(jobs.REQUEUE_LUA)

    def handles(self, channel: str) -> bool:
        return channel in self.channels

    # ---- building jobs ----------------------------------------------------------------------------

    def job_for(self, ev: Any, outputs: Iterable[dict[str, Any]], now: float, previous: Job | None) -> Job:
        """The job for an inbound event's outputs. Its id survives the core's compare-and-set retries,
        and the channel's own facts (a reply token, a redelivery) go to the transport in its state."""
        state: dict[str, Any] = {}
        if ev.reply_token:
            state["reply_token"] = ev.reply_token
        if ev.redelivery:
            state["redelivery"] = True
        if ev.input.kind == I.FOLLOW:
            state["fetch_profile"] = True  # LINE: the worker fetches the display name once it has replied
        subject: Subject = ev.subject
        return Job.new(subject.channel, subject.user_id, subject.tag_name, list(outputs), now, state=state,
                       job_id=previous.id if previous is not None else None)

    def to_subject(self, subject: Subject, outputs: Iterable[dict[str, Any]], **meta: Any) -> Job:
        """A job for one subject's mailbox (a user, or a Slack channel as "<workspace>.<channel>")."""
        return Job.new(subject.channel, subject.user_id, subject.tag_name, list(outputs), self.clock(), meta=meta)

    def look_at(self, now: float | None = None) -> float:
        """When a worker should look at a job committed now, if nothing has delivered it by then."""
        return (self.clock() if now is None else now) + self.lease

    # ---- committing -------------------------------------------------------------------------------

    def enqueue(self, subject: Subject, outputs: Iterable[dict[str, Any]]) -> Job:
        """Queue a message that is not tied to a conversation step (one round trip)."""
        job = self.to_subject(subject, outputs)
        self.put(job)
        return job

    def put(self, job: Job) -> None:
        """Commit a job on its own: recovery mark, job, hint, in that order (one round trip on one
        server; three on a Cluster, where they live on different nodes)."""
        with translated():
            write_then_script(self.r, self._put, keys=[jobs.mailbox(job.tag)], args=[job.id, job.to_json()],
                              before=lambda p: jobs.intend(p, job, self.look_at(job.received)),
                              after=lambda p: jobs.wake(p, job))

    def put_once(self, ledger_key: str, job: Job, *, ttl: int, wake: bool = True) -> bool:
        """Queue ``job`` unless its ledger mark exists: the mark and the job are written by one Lua
        script (the mark must be in the job's hash slot), so it is queued at most once, never half.
        With ``wake=False`` no worker looks at it before the lease has passed, or :meth:`wake`."""
        with translated():
            claimed = write_then_script(
                self.r, self._ledger_enqueue, keys=[ledger_key, jobs.mailbox(job.tag)],
                args=[job.id, job.to_json(), ttl],
                before=lambda p: jobs.intend(p, job, self.look_at(job.received)),
                after=(lambda p: jobs.wake(p, job)) if wake else None,
            )
        return bool(claimed)

    def update(self, job: Job) -> None:
        """Store a job queued with ``wake=False`` again after changing it (no worker has looked at it)."""
        with translated():
            self.r.hset(jobs.mailbox(job.tag), job.id, job.to_json())

    def wake(self, queued: Iterable[Job]) -> None:
        """Wake the workers for jobs queued with ``wake=False`` (one round trip)."""
        with translated(), self.r.pipeline(transaction=False) as p:
            for job in queued:
                jobs.wake(p, job)
            p.execute()

    # ---- the operator -----------------------------------------------------------------------------

    def parked(self) -> list[Parked]:
        out = []
        with translated():
            for shard in range(jobs.QUEUE_SHARDS):
                for raw_ref, when in self.r.zrange(jobs.parked(shard), 0, -1, withscores=True):
                    tag, job_id = jobs.parse_ref(raw_ref)
                    raw = self.r.hget(jobs.mailbox(tag), job_id)
                    if raw is None:
                        continue
                    job = Job.from_json(raw)
                    out.append(Parked(job.id, job.channel, uid(job.to), when, job.parked or job.error, job.attempts))
        return sorted(out, key=lambda p: p.parked_at)

    def requeue(self, job_id: str) -> bool:
        """Put a parked job back in line (after the operator fixed the cause)."""
        job_id = job_id.strip()
        if not job_id or jobs.SEP in job_id or len(job_id) > 64:
            return False
        with translated():
            for shard in range(jobs.QUEUE_SHARDS):
                for raw_ref, _ in self.r.zscan_iter(jobs.parked(shard)):
                    tag, found = jobs.parse_ref(raw_ref)
                    if found != job_id:
                        continue
                    raw = self.r.hget(jobs.mailbox(tag), job_id)
                    if raw is None:
                        self.r.zrem(jobs.parked(shard), text(raw_ref))
                        return False
                    job = Job.from_json(raw)
                    job.parked, job.attempts = "", 0
                    if not self._requeue(keys=[jobs.mailbox(tag), jobs.leases(tag)], args=[job.id, job.to_json()]):
                        return False
                    with self.r.pipeline(transaction=False) as p:
                        p.zrem(jobs.parked(shard), job.ref)
                        p.zadd(jobs.due(shard), {job.ref: self.clock()})
                        jobs.wake(p, job)
                        p.execute()
                    log.info("outbox: requeued %s for %s", job.id[:8], uid(job.to))
                    return True
        return False
