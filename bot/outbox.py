"""The outbox, producer side: jobs are committed with their cause and delivered by the worker.

The web process never sends. It builds a :class:`~conversations.jobs.Job` for what the bot has to
say and commits it together with the state change that caused it (see
:meth:`conversations.store.RedisStore.update`), or on its own with :meth:`Outbox.enqueue`. Each
commit also writes, in the same round trip, the job's recovery mark (before) and a wake-up hint
(after) in the job's queue shard; :mod:`bot.worker` claims, delivers and records every job.

The operator's side is here too: :meth:`Outbox.parked` lists jobs that kept failing,
:meth:`Outbox.requeue` puts one back in line, and :meth:`Outbox.audit` checks the invariant (every
job in a mailbox is due or parked, see :mod:`conversations.jobs`): ``crmbot outbox --check``, and the
worker at start and every few minutes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from bot.logs import uid
from conversations import inputs as I
from conversations import jobs
from conversations.jobs import LEASE, Job
from conversations.keys import Subject
from conversations.redis_ops import runner, text
from conversations.store import SET_ASIDE

log = logging.getLogger(__name__)


AUDIT_SCAN_COUNT = 500  # keys a SCAN step looks at
AUDIT_STEPS = 200  # SCAN steps per audit run and node, at most (a larger keyspace goes on at the next run)


@dataclass(frozen=True)
class Orphan:
    ref: str
    channel: str
    user: str  # hashed
    lease: str  # what the leases hash says ("" none, "<until>|<token>", "inf|" parked, "gone|<t>")

    @property
    def job_id(self) -> str:
        return jobs.parse_ref(self.ref)[1]


@dataclass
class AuditReport:
    mailboxes: int = 0  # mailboxes looked at
    jobs: int = 0  # jobs looked at (set-aside jobs of an unfollow are not delivered: not counted)
    orphans: list[Orphan] = field(default_factory=list)  # jobs neither due nor parked
    repaired: int = 0
    complete: bool = True  # False: the step budget ran out; the next run goes on from there

    def __str__(self) -> str:
        done = "" if self.complete else " (partial: goes on at the next run)"
        fixed = f", {self.repaired} repaired" if self.repaired else ""
        return f"{self.jobs} job(s) in {self.mailboxes} mailbox(es), {len(self.orphans)} orphan(s){fixed}{done}"


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
        lease: float = LEASE,
    ) -> None:
        self.r = runner(client)
        self.channels = frozenset(channels)
        self.clock = clock
        self.lease = lease
        self._cursors: dict[str, int] = {}  # the audit's place per node, kept between runs

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
        self.r.write_then_script(jobs.PUT_LUA, keys=[jobs.mailbox(job.tag)], args=[job.id, job.to_json()],
                                 before=lambda p: jobs.intend(p, job, self.look_at(job.received)),
                                 after=lambda p: jobs.wake(p, job))

    def put_once(self, ledger_key: str, job: Job, *, ttl: int, wake: bool = True) -> bool:
        """Queue ``job`` unless its ledger mark exists: the mark and the job are written by one Lua
        script (the mark must be in the job's hash slot), so it is queued at most once, never half.
        With ``wake=False`` no worker looks at it before the lease has passed, or :meth:`wake`."""
        claimed = self.r.write_then_script(
            jobs.LEDGER_ENQUEUE_LUA, keys=[ledger_key, jobs.mailbox(job.tag)],
            args=[job.id, job.to_json(), ttl],
            before=lambda p: jobs.intend(p, job, self.look_at(job.received)),
            after=(lambda p: jobs.wake(p, job)) if wake else None,
        )
        return bool(claimed)

    def update(self, job: Job) -> None:
        """Store a job queued with ``wake=False`` again after changing it (no worker has looked at it)."""
        self.r.hset(jobs.mailbox(job.tag), job.id, job.to_json())

    def wake(self, queued: Iterable[Job]) -> None:
        """Wake the workers for jobs queued with ``wake=False`` (one round trip)."""
        with self.r.pipeline(transaction=False) as p:
            for job in queued:
                jobs.wake(p, job)
            p.execute()

    # ---- the operator -----------------------------------------------------------------------------

    def parked(self) -> list[Parked]:
        out = []
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
                requeue = self.r.script(jobs.REQUEUE_LUA)
                if not requeue(keys=[jobs.mailbox(tag), jobs.leases(tag)], args=[job.id, job.to_json()]):
                    return False
                with self.r.pipeline(transaction=False) as p:  # due before it leaves parked
                    p.zadd(jobs.due(shard), {job.ref: self.clock()})
                    p.zrem(jobs.parked(shard), job.ref)
                    jobs.wake(p, job)
                    p.execute()
                log.info("outbox: requeued %s for %s", job.id[:8], uid(job.to))
                return True
        return False

    # ---- the invariant's audit --------------------------------------------------------------------

    def audit(self, *, repair: bool = False, steps: int = AUDIT_STEPS) -> AuditReport:
        """Every job in a mailbox must be due or parked. Looks at the mailboxes (a bounded SCAN, going
        on where the last run stopped), and lists the jobs that are neither, after a second look (a
        job may move between the two sets while it is read). With ``repair`` each orphan is marked due
        now (a parked one, lease ``inf|``, is put back in the parked set), so a worker claims it."""
        report = AuditReport()
        for name, node in self.r.nodes():
            cursor = self._cursors.get(name, 0)
            for _ in range(steps):
                cursor, found = node.scan(cursor, match=f"{jobs.mailbox('*')}", count=AUDIT_SCAN_COUNT)
                for key in found:
                    self._audit_mailbox(text(key), report)
                if cursor == 0:
                    break
            else:
                report.complete = False
            self._cursors[name] = cursor
        if repair and report.orphans:
            with self.r.pipeline(transaction=False) as p:
                for o in report.orphans:
                    tag, _ = jobs.parse_ref(o.ref)
                    target = jobs.parked if o.lease == "inf|" else jobs.due
                    p.zadd(target(jobs.shard_of(tag)), {o.ref: self.clock()}, nx=True)
                p.execute()
            report.repaired = len(report.orphans)
        for o in report.orphans:
            log.warning("outbox: orphan %s for %s (%s)%s", o.job_id[:8], o.user, o.channel,
                        ": marked due" if repair else "")
        return report

    def _audit_mailbox(self, key: str, report: AuditReport) -> None:
        tag = key[key.index("{") + 1:key.rindex("}")]
        ids = [text(i) for i in self.r.hkeys(key)]
        ids = [i for i in ids if not i.startswith(SET_ASIDE)]
        report.mailboxes += 1
        report.jobs += len(ids)
        suspects, leases = ids, {}
        shard = jobs.shard_of(tag)
        for _look in (1, 2):  # a second look: a job mid-move between due and parked is no orphan
            if not suspects:
                return
            with self.r.pipeline(transaction=False) as p:
                for job_id in suspects:
                    ref = jobs.ref(tag, job_id)
                    p.zscore(jobs.due(shard), ref)
                    p.zscore(jobs.parked(shard), ref)
                    p.hexists(key, job_id)
                    p.hget(jobs.leases(tag), job_id)
                got = p.execute()
            rows = dict(zip(suspects, (got[i:i + 4] for i in range(0, len(got), 4)), strict=True))
            suspects = [j for j, (due, parked, there, _) in rows.items() if due is None and parked is None and there]
            leases = {j: text(row[3]) for j, row in rows.items()}
        for job_id in suspects:
            raw = self.r.hget(key, job_id)
            channel, to = "?", ""
            if raw is not None:
                job = Job.from_json(raw)
                channel, to = job.channel, job.to
            report.orphans.append(Orphan(jobs.ref(tag, job_id), channel, uid(to) if to else "?",
                                         leases.get(job_id, "")))

