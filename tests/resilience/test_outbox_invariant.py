"""The outbox invariant (conversations.jobs): every committed job is delivered, due or parked.

Driven on the suite's real Redis with the real worker's steps (bot.worker.Worker: ``claim_only``,
``settle_claim``, deliver, record) and the real commit's steps (the recovery mark, the commit script,
the wake-up hint, as conversations.redis_ops.write_then_script sends them), interleaved as two processes
may interleave them: a hint read before its commit, a commit that failed once (a NOSCRIPT or a lost
compare-and-set leaves a mark and a hint to nothing), a commit landing between a worker's claim and
what the worker does with the claim's answer, workers dying mid-attempt, the clock moving.
"""

from __future__ import annotations

import asyncio
import io
import time
import uuid
from collections.abc import Iterator
from contextlib import redirect_stdout
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis
import redis.asyncio as aredis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from bot.outbox import Outbox
from bot.worker import DELIVERED, Attempt, Claim, Outcome, RawClaim, Worker, WorkerThread
from conversations import jobs
from conversations.jobs import Job
from tests.conftest import FakeClock

LEASE = 30.0


class Receiver:
    """An idempotent API (as LINE's X-Line-Retry-Key makes a push): records each job id it accepts."""

    transport = "web"  # a real transport (jobs name one), delivered here by this recorder

    def __init__(self) -> None:
        self.accepted: dict[str, int] = {}  # job id -> times sent
        self.gate: asyncio.Event | None = None  # set: deliver waits for it

    async def deliver(self, attempt: Attempt) -> Outcome:
        if self.gate is not None:
            await self.gate.wait()
        self.accepted[attempt.job.id] = self.accepted.get(attempt.job.id, 0) + 1
        return Outcome(DELIVERED, "accepted")

    async def close(self) -> None:
        return None


@dataclass
class Env:
    r: redis.Redis
    clock: FakeClock
    receiver: Receiver
    thread: WorkerThread
    outbox: Outbox
    put_script: Any = field(default=None)

    @property
    def worker(self) -> Worker:
        return self.thread.worker

    def job(self, n: int = 0) -> Job:
        tag = f"u:line:U{n:032d}"
        return Job.new("web", tag[7:], tag, [{"type": "greeting"}], self.clock())

    # the commit's three writes, each on its own (write_then_script sends them in this order)
    def mark(self, job: Job) -> None:
        jobs.intend(self.r, job, self.clock() + LEASE)

    def script(self, job: Job) -> None:
        self.put_script(keys=[jobs.mailbox(job.tag)], args=[job.id, job.to_json()])

    def hint(self, job: Job) -> None:
        jobs.wake(self.r, job)

    def pop_hint(self, job: Job) -> str | None:
        raw = self.r.rpop(jobs.ready(jobs.shard_of(job.tag)))
        return raw.decode() if raw is not None else None

    def run(self, coro: Any) -> Any:
        return self.thread.call(coro)

    def quiesce(self, rounds: int = 6) -> None:
        """Deliver all that can go, moving the clock past every lease, until nothing is left."""
        for _ in range(rounds):
            self.thread.drain()
            self.clock.advance(LEASE + 1)
        self.thread.drain()


@pytest.fixture
def env(r: redis.Redis, redis_url: str) -> Iterator[Env]:
    clock = FakeClock()
    receiver = Receiver()

    async def build() -> Worker:
        return Worker(aredis.Redis.from_url(redis_url), {"web": receiver}, clock=clock, lease=LEASE)

    thread = WorkerThread(build)
    outbox = Outbox(r, ["web"], clock=clock, lease=LEASE)
    e = Env(r, clock, receiver, thread, outbox, r.register_script(jobs.PUT_LUA))
    yield e
    thread.close()


def orphans(r: redis.Redis) -> list[str]:
    """Jobs in a mailbox that are neither due nor parked (the invariant's breach)."""
    out = []
    for key in r.scan_iter(match="crmbot:{*}:out"):
        tag = key.decode()[len("crmbot:{"):-len("}:out")]
        for job_id in r.hkeys(key):
            ref = jobs.ref(tag, job_id.decode())
            shard = jobs.shard_of(tag)
            if r.zscore(jobs.due(shard), ref) is None and r.zscore(jobs.parked(shard), ref) is None:
                out.append(ref)
    return out


def test_a_hint_read_before_its_commit_loses_nothing(env: Env) -> None:
    """The failure found by attack: a commit whose script failed once (its mark and hint landed), a
    worker that took the hint and claimed before the retried commit ran, and acted on the claim's
    answer ("missing") after the retried commit had written its mark, with the commit's own hint lost.
    Before the fix, the worker deleted the mark the commit needed and the job stayed forever."""
    job = env.job()
    env.mark(job)
    env.hint(job)  # the first commit: NOSCRIPT, its other writes landed
    ref = env.pop_hint(job)
    assert ref == job.ref
    raw = env.run(env.worker.claim_only(ref))  # the worker claims: the job is not there yet
    env.mark(job)
    env.script(job)
    env.hint(job)  # the retried commit, all of it
    assert env.run(env.worker.settle_claim(raw)) == "gone"
    assert env.pop_hint(job) == job.ref  # and its hint is lost (a worker died holding it)
    assert orphans(env.r) == []
    env.quiesce()
    assert env.receiver.accepted == {job.id: 1}
    assert env.r.keys("crmbot:*") == []  # no mark, hint, tombstone or mailbox left


def test_a_hint_to_a_commit_that_never_happens_is_cleaned_up_after_a_lease(env: Env) -> None:
    job = env.job()
    env.mark(job)
    env.hint(job)  # a commit that lost its compare-and-set and was never retried
    assert env.thread.drain() == 0
    shard = jobs.shard_of(job.tag)
    assert env.r.zscore(jobs.due(shard), job.ref) is not None  # kept for a lease: the commit may land
    env.clock.advance(LEASE)
    env.thread.drain()
    assert env.r.keys("crmbot:*") == []
    assert env.receiver.accepted == {}


def test_a_commit_landing_a_lease_after_its_first_hint_is_still_delivered(env: Env) -> None:
    """The tombstone is overridden by the job: a slow commit is claimed, not dropped."""
    job = env.job()
    env.mark(job)
    env.hint(job)
    env.thread.drain()  # missing: tombstone
    env.clock.advance(LEASE - 1)
    env.mark(job)
    env.script(job)
    env.hint(job)
    env.thread.drain()
    assert env.receiver.accepted == {job.id: 1}
    env.quiesce()
    assert env.r.keys("crmbot:*") == []


def test_a_hint_answered_busy_while_in_flight_is_looked_at_again(env: Env) -> None:
    """A second hint for a ref this worker has in flight is not dropped: the attempt looks once more."""
    job = env.job()
    env.receiver.gate = None

    async def hold() -> None:
        env.receiver.gate = asyncio.Event()

    env.run(hold())
    env.outbox.put(job)
    ref = env.pop_hint(job)
    assert ref is not None

    async def both() -> list[str]:
        first = asyncio.ensure_future(env.worker.process(ref))
        while ref not in env.worker._inflight:
            await asyncio.sleep(0)
        second = await env.worker.process(ref)  # answered busy at once
        looked: list[str] = []
        orig = env.worker.claim

        async def counting(r: str) -> Claim | str:
            result = await orig(r)
            looked.append(result if isinstance(result, str) else "claimed")
            return result

        env.worker.claim = counting  # type: ignore[method-assign]
        assert env.receiver.gate is not None
        env.receiver.gate.set()
        await first
        env.worker.claim = orig  # type: ignore[method-assign]
        return [second, *looked]

    result = env.run(both())
    assert result == ["busy", "gone"]  # the attempt in flight looked again (the job was delivered: gone)
    assert env.receiver.accepted == {job.id: 1}


def test_outbox_check_finds_a_planted_orphan_and_repair_delivers_it(env: Env, redis_url: str,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.cli import main

    kept = env.job(1)
    env.outbox.put(kept)
    orphan = env.job(2)
    env.script(orphan)  # in a mailbox, with neither mark nor parked entry
    monkeypatch.setenv("REDIS_URL", redis_url)
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["outbox", "--check"]) == 1
    printed = out.getvalue()
    assert orphan.id in printed and kept.id not in printed
    assert "1 orphan(s)" in printed
    assert env.thread.drain() == 1  # the kept one only: nothing finds the orphan
    assert env.receiver.accepted == {kept.id: 1}
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["outbox", "--check", "--repair"]) == 0
    assert "1 repaired" in out.getvalue()
    env.clock.t = time.time() + 1  # the command marks it due at its own (real) now
    env.thread.drain()
    assert env.receiver.accepted == {kept.id: 1, orphan.id: 1}
    with redirect_stdout(io.StringIO()):
        assert main(["outbox", "--check"]) == 0


def test_the_audit_puts_a_parked_job_that_lost_its_entry_back_in_parked(env: Env) -> None:
    job = env.job(3)
    env.script(job)
    env.r.hset(jobs.leases(job.tag), job.id, "inf|")
    report = env.outbox.audit(repair=True)
    assert [o.ref for o in report.orphans] == [job.ref] and report.orphans[0].lease == "inf|"
    assert env.r.zscore(jobs.parked(jobs.shard_of(job.tag)), job.ref) is not None
    assert env.outbox.audit().orphans == []
    assert [p.id for p in env.outbox.parked()] == [job.id]


def test_the_worker_audits_at_start(env: Env, r: redis.Redis, redis_url: str) -> None:
    clock = FakeClock()
    receiver = Receiver()
    orphan = env.job(4)
    env.script(orphan)
    audited = []

    def audit() -> Any:
        report = Outbox(r, (), clock=clock, lease=LEASE).audit(repair=True)
        audited.append(report)
        return report

    async def build() -> Worker:
        return Worker(aredis.Redis.from_url(redis_url), {"web": receiver}, clock=clock, lease=LEASE, audit=audit)

    thread = WorkerThread(build)
    try:
        thread.start()
        deadline = 200
        while not receiver.accepted and deadline:
            thread.call(asyncio.sleep(0.05))  # polling the worker's own loop, bounded
            deadline -= 1
        assert receiver.accepted == {orphan.id: 1}
        assert len(audited[0].orphans) == 1
    finally:
        thread.close()


# ---- every interleaving --------------------------------------------------------------------------


@dataclass
class Commit:
    job: Job
    steps: list[str]  # what is left to do, in order: "mark", "script", "hint"


@dataclass
class Attempting:
    ref: str
    phase: str  # "claimed-raw" (claim ran, answer not acted on) | "claimed" (job claimed, not delivered)
    raw: RawClaim | None = None
    claim: Claim | None = None


class Interleavings(RuleBasedStateMachine):
    """Commits (some failing once first), hints, claims, sweeps, deliveries, records, crashes and the
    clock, in any order; after every step no job in a mailbox lacks a mark; at the end every committed
    job was accepted exactly once and nothing is left in Redis."""

    env: Env

    def __init__(self) -> None:
        super().__init__()
        self.env.r.flushdb()
        self.env.receiver.accepted.clear()
        self.commits: list[Commit] = []
        self.committed: set[str] = set()
        self.abandoned_ids: set[str] = set()  # commits that never happened
        self.attempts: list[Attempting] = []
        self.n = 0

    # -- the committing process --
    @rule(fails_first=st.booleans())
    def begin_commit(self, fails_first: bool) -> None:
        self.n += 1
        job = self.env.job(self.n % 3)  # three owners, so their refs share shards and mailboxes
        steps = ["mark", "hint", "mark", "script", "hint"] if fails_first else ["mark", "script", "hint"]
        self.commits.append(Commit(job, steps))

    @rule()
    def abandon_commit(self) -> None:
        """A commit that lost its compare-and-set: its mark and hint land, the job never does."""
        self.n += 1
        job = self.env.job(self.n % 3)
        self.env.mark(job)
        self.env.hint(job)
        self.abandoned_ids.add(job.id)

    @precondition(lambda self: self.commits)
    @rule(i=st.integers(0, 10))
    def commit_step(self, i: int) -> None:
        c = self.commits[i % len(self.commits)]
        step = c.steps.pop(0)
        getattr(self.env, step)(c.job)
        if step == "script":
            self.committed.add(c.job.id)
        if not c.steps:
            self.commits.remove(c)

    # -- the workers --
    @rule(shard=st.integers(0, jobs.QUEUE_SHARDS - 1))
    def take_hint(self, shard: int) -> None:
        raw = self.env.r.rpop(jobs.ready(shard))
        if raw is not None:
            self.attempts.append(Attempting(raw.decode(), "hint"))

    @rule()
    def sweep(self) -> None:
        for shard in range(jobs.QUEUE_SHARDS):
            for ref in self.env.run(self.env.worker.due_refs(shard, self.env.clock())):
                self.attempts.append(Attempting(ref, "hint"))

    @precondition(lambda self: self.attempts)
    @rule(i=st.integers(0, 10))
    def attempt_step(self, i: int) -> None:
        a = self.attempts[i % len(self.attempts)]
        w = self.env.worker
        if a.phase == "hint":
            a.raw = self.env.run(w.claim_only(a.ref))
            a.phase = "claimed-raw"
        elif a.phase == "claimed-raw":
            assert a.raw is not None
            result = self.env.run(w.settle_claim(a.raw))
            if isinstance(result, str):
                self.attempts.remove(a)
            else:
                a.claim, a.phase = result, "claimed"
        else:
            assert a.claim is not None
            claim = a.claim

            async def deliver_and_record() -> None:
                attempt = Attempt(claim.job, claim.now, claim.recovering, w.r, w.limiter, w.clock)
                outcome = await w._deliver(attempt)
                await w._finish(claim.job, claim.token, claim.shard, outcome)

            self.env.run(deliver_and_record())
            self.attempts.remove(a)

    @precondition(lambda self: self.attempts)
    @rule(i=st.integers(0, 10))
    def crash(self, i: int) -> None:
        """A worker dies mid-attempt: nothing more of it happens."""
        self.attempts.pop(i % len(self.attempts))

    @rule(seconds=st.sampled_from([1.0, 10.0, LEASE, LEASE + 1]))
    def tick(self, seconds: float) -> None:
        self.env.clock.advance(seconds)

    @invariant()
    def every_job_in_a_mailbox_is_due_or_parked(self) -> None:
        assert orphans(self.env.r) == []

    def teardown(self) -> None:
        for c in list(self.commits):  # finish the commits under way
            while c.steps:
                step = c.steps.pop(0)
                getattr(self.env, step)(c.job)
                if step == "script":
                    self.committed.add(c.job.id)
        self.env.quiesce()
        accepted = self.env.receiver.accepted
        assert set(accepted) == self.committed, "a committed job was lost, or a never-committed one sent"
        assert all(n == 1 for n in accepted.values())
        assert self.env.r.keys("crmbot:*") == [], "a mark, hint, tombstone or job was left behind"


def test_every_interleaving_of_commit_hint_claim_sweep_and_record(env: Env) -> None:
    Interleavings.env = env
    run_state_machine_as_test(
        Interleavings,
        settings=settings(max_examples=80, stateful_step_count=40, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]),
    )


def test_the_interleaving_machine_would_catch_the_old_gone_rule(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """The property test is honest: with the old rule (a missing job's mark deleted at once), the
    hint-before-commit sequence strands the job."""

    async def old_rule(raw: RawClaim) -> Claim | str:
        if int(raw.answer[0]) in (-1, -2):
            await env.worker.r.zrem(jobs.due(raw.shard), raw.ref)
            return "gone"
        return await Worker.settle_claim(env.worker, raw)

    monkeypatch.setattr(env.worker, "settle_claim", old_rule)
    job = env.job()
    env.mark(job)
    env.hint(job)
    ref = env.pop_hint(job)
    assert ref is not None
    raw = env.run(env.worker.claim_only(ref))
    env.mark(job)
    env.script(job)
    env.hint(job)
    env.run(env.worker.settle_claim(raw))
    env.pop_hint(job)
    assert orphans(env.r) == [job.ref]
    assert uuid.UUID(job.id)  # the job is still there, unreachable
