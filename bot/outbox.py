"""The outbox, producer side: jobs are committed with their cause and delivered by the worker.

The web process never sends. It builds a :class:`~conversations.jobs.Job` for what the bot has to
say and commits it together with the state change that caused it (see
:meth:`conversations.store.RedisStore.update`), or on its own with :meth:`Outbox.enqueue`. Each
commit also writes, in the same round trip, the job's recovery mark (before) and a wake-up hint
(after) in the job's queue shard; :mod:`bot.worker` claims, delivers and records every job.

A job with machine outputs records the content version of the script they are to be rendered with (the
one this process loaded). The script's text is stored under that version (SET NX) by the first such
job's commit, in the same round trip, before the job: a worker started with an edited file still finds
the wording a job was committed with (bot.scripts).

The operator's side is here too: :meth:`Outbox.parked` lists jobs that kept failing,
:meth:`Outbox.requeue` puts one back in line, and :meth:`Outbox.audit` checks the invariant (every
job in a mailbox is due or parked, see :mod:`conversations.jobs`): ``crmbot outbox --check``, and the
worker at start and every few minutes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.logs import uid
from conversations import inputs, jobs, keys
from conversations import outputs as typed_outputs
from conversations.content import Script, stored
from conversations.content_versions import ContentVersions
from conversations.errors import InvalidInput
from conversations.jobs import LEASE, Figures, Job
from conversations.keys import PREFIX, Subject
from conversations.outputs import JobOutput, Output
from conversations.redis_ops import runner, text
from conversations.store import SET_ASIDE
from conversations.transports import LineState, Transport, TransportState

log = logging.getLogger(__name__)


AUDIT_SCAN_COUNT = 500  # keys a SCAN step looks at
AUDIT_STEPS = 200  # SCAN steps per audit run and node, at most (a larger keyspace goes on at the next run)
_AUDITED = "[of][ui][tg]*"  # the keys the audit scans: mailboxes ("out") and figures records ("figs")


@dataclass(frozen=True)
class Orphan:
    ref: str
    transport: str  # the job's transport, "figures" for a figures record, "?" unreadable
    user: str  # hashed
    lease: str  # what the leases hash says ("" none, "<until>|<token>", "inf|" parked, "gone|<t>")

    @property
    def job_id(self) -> str:
        return jobs.parse_ref(self.ref)[1]


@dataclass
class AuditReport:
    mailboxes: int = 0  # mailboxes (and users' figures hashes) looked at
    jobs: int = 0  # jobs and figures records looked at (set-aside jobs of an unfollow are not delivered: not counted)
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
    transport: str  # the job's transport, "figures" for a figures record
    user: str  # hashed: for the operator's eyes and logs
    parked_at: float
    reason: str
    attempts: int
    to: str = ""  # the address within the transport (the operator's page names it; never logged)
    tag: str = ""  # the owner's hash tag ("u:line:U1", "t:T1:C1")
    kinds: tuple[str, ...] = ()  # what it said: its outputs' kinds ("question", "result", "slack_post" ...)

    @property
    def is_job(self) -> bool:
        """A message (which the operator may discard), not a figures record or an unreadable one."""
        return self.transport not in ("figures", "?")


class Outbox:
    def __init__(
        self,
        client: Any,
        transports: Iterable[Transport | str],
        *,
        clock: Callable[[], float] = time.time,
        lease: float = LEASE,
        script: Script | None = None,
        line_push_only: bool = False,
        versions: ContentVersions | None = None,
    ) -> None:
        self.r = runner(client)
        # CRMBOT_LINE_COEXIST=second: another tool relays LINE's webhooks and may have used a reply token,
        # so every LINE job pushes (with its retry key) and never replies
        self.line_push_only = line_push_only
        self.transports = frozenset(Transport.parse(t) for t in transports)
        self.clock = clock
        self.lease = lease
        self.script = script  # its version is recorded in each job of machine outputs (see content_for)
        self._stored = script is None  # its text is in Redis (stored with this process's first such job)
        self.versions = versions  # the content version in use (conversations.content_versions), None: ``script``
        self._cursors: dict[str, int] = {}  # the audit's place per node, kept between runs

    def handles(self, transport: Transport | str) -> bool:
        return transport in self.transports

    def _content(self, outputs: Sequence[JobOutput]) -> str:
        """The content version a job records: this process's script's, when the job has machine outputs
        to render (Slack KPI payloads are rendered already)."""
        if self.script is None or all(isinstance(o, dict) for o in outputs):
            return ""
        if self.versions is not None:  # published from the console (conversations.content_versions)
            return self.versions.active()[1].version
        return self.script.version

    def content_of(self, label: str) -> str:
        """The content version (hash) of a diagnosis' ``Conv.ver`` label, "" when versions are not in use."""
        return self.versions.script_of(label).version if self.versions is not None else ""

    def content_for(self, job: Job | None) -> tuple[str, str] | None:
        """(key, value) of this process's script, to store (SET NX) before ``job`` is committed, while no
        commit of this process has stored it yet; None when the job needs nothing stored."""
        if job is None or self._stored or self.script is None or job.content != self.script.version:
            return None
        return keys.content(self.script.version), stored(self.script)

    def content_stored(self) -> None:
        """A commit that carried :meth:`content_for` succeeded: the text is in Redis."""
        self._stored = True

    def _before(self, job: Job | Figures, look_at: float) -> tuple[Callable[[Any], None], bool]:
        """The writes before a job's commit: its script's text if needed, then its recovery mark."""
        content = self.content_for(job) if isinstance(job, Job) else None

        def before(p: Any) -> None:
            if content is not None:
                p.set(content[0], content[1], nx=True)
            jobs.intend(p, job, look_at)

        return before, content is not None

    # ---- building jobs ----------------------------------------------------------------------------

    def job_for(self, ev: Any, outputs: Iterable[Output], now: float, previous: Job | None, *,
                read: str = "", var: str = "", content: str = "") -> Job:
        """The job for an inbound event's outputs. Its id survives the core's compare-and-set retries,
        and the transport's own facts (LINE: a reply token, a redelivery, a follow; ``read``, the
        markAsReadToken of a message answered during a handoff) go in its state. ``content``: the content
        version to render it with (the step's diagnosis', bot.core), "" the one :meth:`_content` gives."""
        subject: Subject = ev.subject
        state: TransportState | None = None
        if subject.transport == Transport.LINE:
            # a follow: the worker fetches the display name once it has replied
            follow = ev.input.kind == inputs.FOLLOW
            if self.line_push_only:
                state = LineState(via="push", fetch_profile=follow, read=read)
            else:
                state = LineState(reply_token=ev.reply_token or "", redelivery=bool(ev.redelivery),
                                  fetch_profile=follow, read=read)
        said = list(outputs)
        return Job.new(subject.transport, subject.user_id, subject.tag_name, said, now, state=state,
                       content=content or self._content(said), job_id=previous.id if previous is not None else None,
                       var=var)

    def silent_job(self, ev: Any, now: float, previous: Job | None) -> Job | None:
        """The job of an event left to another tool (the ownership rule: nothing is said): a LINE follow
        still fetches the display name for the operator's leads (``sent`` from the start); else none."""
        subject: Subject = ev.subject
        if subject.transport != Transport.LINE or ev.input.kind != inputs.FOLLOW:
            return None
        return Job.new(subject.transport, subject.user_id, subject.tag_name, [], now,
                       state=LineState(via="push", fetch_profile=True, sent=True),
                       job_id=previous.id if previous is not None else None)

    def to_subject(self, subject: Subject, outputs: Iterable[JobOutput], *, state: TransportState | None = None) -> Job:
        """A job for one subject's mailbox (a user, or a Slack channel as "<workspace>.<channel>")."""
        said = [typed_outputs.job_output(o) for o in outputs]
        return Job.new(subject.transport, subject.user_id, subject.tag_name, said, self.clock(), state=state,
                       content=self._content(said))

    def look_at(self, now: float | None = None) -> float:
        """When a worker should look at a job committed now, if nothing has delivered it by then."""
        return (self.clock() if now is None else now) + self.lease

    # ---- committing -------------------------------------------------------------------------------

    def enqueue(self, subject: Subject, outputs: Iterable[JobOutput]) -> Job:
        """Queue a message that is not tied to a conversation step (one round trip)."""
        job = self.to_subject(subject, outputs)
        self.put(job)
        return job

    def put(self, job: Job | Figures) -> None:
        """Commit a job (or a figures record) on its own: recovery mark, record, hint, in that order (one
        round trip on one server; three on a Cluster, where they live on different nodes)."""
        before, content = self._before(job, self.look_at(job.received if isinstance(job, Job) else None))
        self.r.write_then_script(jobs.PUT_LUA, keys=jobs.record_keys(job.tag, job.id)[:1],
                                 args=[job.id, job.to_json()], before=before, after=lambda p: jobs.wake(p, job))
        if content:
            self.content_stored()

    def put_once(self, ledger_key: str, job: Job, *, ttl: int, wake: bool = True) -> bool:
        """Queue ``job`` unless its ledger mark exists: the mark and the job are written by one Lua
        script (the mark must be in the job's hash slot), so it is queued at most once, never half.
        With ``wake=False`` no worker looks at it before the lease has passed, or :meth:`wake`."""
        before, content = self._before(job, self.look_at(job.received))
        claimed = self.r.write_then_script(
            jobs.LEDGER_ENQUEUE_LUA, keys=[ledger_key, jobs.mailbox(job.tag)],
            args=[job.id, job.to_json(), ttl], before=before,
            after=(lambda p: jobs.wake(p, job)) if wake else None,
        )
        if content:
            self.content_stored()
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

    def discard(self, tag: str) -> int:
        """Drop every pending job and figures record of one owner (never sent, never applied: a person's
        data erased, bot/privacy.py), and the parked refs of those records. The invariant holds: a record
        is gone, and its due mark, if any, is cleared by a worker once it has been missing for a lease."""
        ids = [text(i) for i in self.r.script(jobs.DISCARD_LUA)(
            keys=[jobs.mailbox(tag), jobs.leases(tag), jobs.figures(tag), jobs.figures_leases(tag)])]
        refs = [jobs.ref(tag, i.removeprefix(SET_ASIDE)) for i in ids]
        if refs:
            self.r.zrem(jobs.parked(jobs.shard_of(tag)), *refs)
        return len(ids)

    # ---- the operator -----------------------------------------------------------------------------

    def parked(self) -> list[Parked]:
        out = []
        for shard in range(jobs.QUEUE_SHARDS):
            for raw_ref, when in self.r.zrange(jobs.parked(shard), 0, -1, withscores=True):
                tag, job_id = jobs.parse_ref(raw_ref)
                raw = self.r.hget(jobs.record_keys(tag, job_id)[0], job_id)
                if raw is None:
                    continue
                try:
                    rec = jobs.read(job_id, raw)
                except InvalidInput:
                    out.append(Parked(job_id, "?", "?", when, "unreadable record", 0))
                    continue
                kinds = tuple(_kind_of(o) for o in rec.outputs) if isinstance(rec, Job) else ()
                out.append(Parked(rec.id, _transport_of(rec), uid(rec.to), when, rec.parked or rec.error,
                                  rec.attempts, rec.to, tag, kinds))
        return sorted(out, key=lambda p: p.parked_at)

    def discard_parked(self, job_id: str) -> bool:
        """Drop a parked message for good (the operator chose not to send it): the job and its parked
        ref. A job requeued meanwhile (no longer parked) is left alone. False when there is none."""
        job_id = job_id.strip()
        if not job_id or jobs.SEP in job_id or len(job_id) > 64 or jobs.is_figures(job_id):
            return False
        for shard in range(jobs.QUEUE_SHARDS):
            for raw_ref, _ in self.r.zscan_iter(jobs.parked(shard)):
                tag, found = jobs.parse_ref(raw_ref)
                if found != job_id:
                    continue
                dropped = self.r.script(jobs.DISCARD_PARKED_LUA)(keys=jobs.record_keys(tag, job_id), args=[job_id])
                if dropped or self.r.hget(jobs.record_keys(tag, job_id)[0], job_id) is None:
                    self.r.zrem(jobs.parked(shard), text(raw_ref))  # the job first: never a job without its ref
                return bool(dropped)
        return False

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
                raw = self.r.hget(jobs.record_keys(tag, job_id)[0], job_id)
                if raw is None:
                    self.r.zrem(jobs.parked(shard), text(raw_ref))
                    return False
                job = jobs.read(job_id, raw)
                job.parked, job.attempts = "", 0
                requeue = self.r.script(jobs.REQUEUE_LUA)
                if not requeue(keys=jobs.record_keys(tag, job_id), args=[job.id, job.to_json()]):
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
                cursor, found = node.scan(cursor, match=f"{PREFIX}:{{*}}:{_AUDITED}", count=AUDIT_SCAN_COUNT)
                for key in found:
                    self._audit_records(text(key), report)
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
            log.warning("outbox: orphan %s for %s (%s)%s", o.job_id[:8], o.user, o.transport,
                        ": marked due" if repair else "")
        return report

    def _audit_records(self, key: str, report: AuditReport) -> None:
        """One mailbox, or one user's figures records."""
        tag = key[key.index("{") + 1:key.rindex("}")]
        if key not in (jobs.mailbox(tag), jobs.figures(tag)):
            return  # another key matching the pattern (a figures hash's leases: "...:figs:lease" never does)
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
                    p.hget(jobs.record_keys(tag, job_id)[1], job_id)
                got = p.execute()
            rows = dict(zip(suspects, (got[i:i + 4] for i in range(0, len(got), 4)), strict=True))
            suspects = [j for j, (due, parked, there, _) in rows.items() if due is None and parked is None and there]
            leases = {j: text(row[3]) for j, row in rows.items()}
        for job_id in suspects:
            raw = self.r.hget(key, job_id)
            transport, to = "?", ""
            if raw is not None:
                try:
                    rec = jobs.read(job_id, raw)
                    transport, to = _transport_of(rec), rec.to
                except InvalidInput:
                    pass
            report.orphans.append(Orphan(jobs.ref(tag, job_id), transport, uid(to) if to else "?",
                                         leases.get(job_id, "")))


def _kind_of(output: JobOutput) -> str:
    return str(output.get("type", "?")) if isinstance(output, dict) else output.kind


def _transport_of(rec: Job | Figures) -> str:
    return "figures" if isinstance(rec, Figures) else str(rec.transport)
