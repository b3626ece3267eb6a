"""The worker: delivers every job, one path for all of them (claim -> deliver -> record).

Jobs are committed by the web process (replies), the Slack listeners (posts) and the clock
(reminders), and figures records by the web process beside its replies; see :mod:`conversations.jobs`
for the keys. A worker waits on each queue shard's
``ready`` list (BRPOP: a committed job is picked up within milliseconds) and sweeps each shard's
``due`` set every second (retries whose time has come, and jobs whose claim ran out because a worker
died). Whichever way a job is found, an attempt is the same code:

1. **claim** it in its mailbox (Lua compare-and-set of the lease, pipelined with the recovery mark
   ``due = now + lease``): one worker wins; a claim after an earlier one ran out unrecorded is a
   *recovery*, and the transport is told (the earlier attempt's outcome is unknown);
2. **deliver** it with the sender of its transport (asyncio: many sends in flight on one thread,
   a slow API costs waiting, not threads); a sender may checkpoint its transport's state mid-attempt.
   A figures record is *applied* instead (the operator's figures, by the worker's figures sink:
   bot/analytics_sink.py), never sent; a job of the first shape has its figures applied before it is sent;
3. **record** the outcome if the claim is still ours (Lua), pipelined with the queue update:
   delivered -> removed; failed for now -> retried after a backoff (2, 4, 8 ... s, at least the
   server's Retry-After, capped); failed for good or too often -> parked for the operator.

N workers on N machines share the work; rate limits are shared in Redis (:mod:`bot.ratelimit`).

**Fault hook** (for tests and drills, documented in the README): ``Worker(faults=...)`` takes an
object with the methods of :class:`Faults`: ``before_deliver(job)`` (claimed, nothing sent yet),
``after_checkpoint(job)`` (a transport stored its state mid-attempt, e.g. LINE's switch to push)
and ``after_deliver(job, outcome)`` (the API answered; nothing recorded yet). Raising :class:`Crash`
from any of them abandons the attempt exactly as a process dying there would: nothing more is
recorded, and the claim runs out after the lease. :class:`NoFaults` is a base that does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from bot import metrics
from bot.logs import uid
from bot.ratelimit import SharedLimiter
from conversations import jobs
from conversations.errors import InvalidInput, StoreUnavailable
from conversations.jobs import LEASE, Figures, Job
from conversations.redis_ops import AsyncRunner, Eval, async_runner, text
from conversations.transports import Transport

log = logging.getLogger(__name__)
T = TypeVar("T")

DELIVERED, RETRY, FAILED = "delivered", "retry", "failed"
# Not attempted: the transport asks to come back after ``retry_after`` (pacing). No failure is counted.
DEFER = "defer"
COUNTED = "counted"  # what process() answers for a figures record applied (not a delivery attempt)
SWEEP_EVERY = 0.5  # seconds between sweeps of the due sets (one round trip for all shards)
WAIT_TIMEOUT = 1  # seconds a BRPOP waits before the loop checks whether to stop
SWEEP_BATCH = 200
AUDIT_EVERY = 300.0  # seconds between the worker's audits of the outbox invariant (bot.outbox.Outbox.audit)
CHORES_EVERY = 2.0  # seconds between runs of the chores (the console's Slack names)


@dataclass(frozen=True)
class Outcome:
    kind: str  # delivered | retry | failed | defer
    detail: str = ""  # short, never a message text
    retry_after: float | None = None  # the server's Retry-After, already checked (bot.ratelimit.retry_after)


class Crash(Exception):
    """Raised by a fault hook: the worker abandons the attempt as a dying process would."""


class LostClaim(Exception):
    """The job's claim ran out and another worker took it over: this attempt stops, records nothing."""


class Faults(Protocol):
    def before_deliver(self, job: Job) -> None: ...

    def after_checkpoint(self, job: Job) -> None: ...

    def after_deliver(self, job: Job, outcome: Outcome) -> None: ...


class NoFaults:
    """A fault hook that injects nothing: subclass it and override the points you need."""

    def before_deliver(self, job: Job) -> None:
        return None

    def after_checkpoint(self, job: Job) -> None:
        return None

    def after_deliver(self, job: Job, outcome: Outcome) -> None:
        return None


@dataclass
class Attempt:
    """What a transport gets for one delivery attempt."""

    job: Job
    now: float
    recovering: bool  # an earlier attempt's outcome is unknown (it was claimed and never recorded)
    redis: AsyncRunner  # the worker's Redis runner (a multicast's ledger marks, a transport's own counters)
    limiter: SharedLimiter
    clock: Callable[[], float]
    _save: Callable[[], Awaitable[bool]] = field(repr=False, default=None)  # type: ignore[assignment]
    _faults: Faults | None = field(repr=False, default=None)

    async def checkpoint(self) -> None:
        """Store the job's changed state before acting on it (e.g. LINE: "push from now on"), so a
        recovery knows what this attempt may have done. Raises LostClaim if the job is no longer ours."""
        if not await self._save():
            raise LostClaim(self.job.id)
        if self._faults is not None:
            self._faults.after_checkpoint(self.job)


@dataclass(frozen=True)
class RawClaim:
    """A claim script's answer, before the worker acted on it (see :meth:`Worker.settle_claim`)."""

    ref: str
    shard: int
    now: float
    mark: float  # the recovery mark written before the claim (the lease's end)
    token: str
    answer: list[Any]


@dataclass(frozen=True)
class Claim:
    """A job claimed for one attempt."""

    job: Job
    token: str
    shard: int
    now: float
    recovering: bool


@dataclass(frozen=True)
class FiguresClaim:
    """A figures record claimed to be applied."""

    figures: Figures
    token: str
    shard: int
    now: float


class Sender(Protocol):
    """Delivers the jobs of one transport (bot/line/transport.py, bot/slack/transport.py, bot/webchat.py)."""

    transport: Transport

    async def deliver(self, attempt: Attempt) -> Outcome: ...

    async def close(self) -> None: ...


class FiguresSink(Protocol):
    """Applies the operator's figures (bot/analytics_sink.py). Raises StoreUnavailable when Redis
    failed (the record is tried again); anything else it handles itself."""

    async def count(self, client: Any, figures: Figures, now: float) -> None: ...

    async def count_legacy(self, client: Any, job: Job, now: float) -> None:
        """The figures a job of the first shape carries (``job.legacy_figures``), before it is sent."""

    def steps(self, figures: Figures, now: float) -> Sequence[Eval] | None:
        """The steps applying ``figures``, sent in the round trip that deletes it (before the deletion), or
        None: :meth:`count` applies it first."""


def backoff(attempts: int, retry_after: float | None = None, base: float = 2.0, cap: float = 300.0) -> float:
    """Seconds before the next attempt after ``attempts`` failures: 2, 4, 8 ... capped, at least Retry-After."""
    delay = min(cap, base * (2 ** max(0, attempts - 1)))
    return max(delay, retry_after or 0.0)


class Worker:
    def __init__(
        self,
        client: Any,  # redis.asyncio.Redis or RedisCluster
        senders: Mapping[Transport, Sender],
        *,
        figures: FiguresSink | None = None,
        clock: Callable[[], float] = time.time,
        lease: float = LEASE,
        max_attempts: int = 8,
        concurrency: int = 256,
        faults: Faults | None = None,
        audit: Callable[[], Any] | None = None,
        chores: Sequence[Callable[[Any], Awaitable[Any]]] = (),
    ) -> None:
        self.r = async_runner(client)  # every Redis call of the worker and its senders: errors translated
        self.senders = dict(senders)  # the transport table: each transport's sender
        self.figures = figures  # None: figures records are dropped unapplied (a worker for tests)
        self.clock = clock
        self.lease = lease
        self.max_attempts = max_attempts
        self.faults = faults
        self.limiter = SharedLimiter(self.r)
        self._record = self.r.script(jobs.RECORD_LUA)
        self._token_prefix = secrets.token_hex(6)
        self._tokens = itertools.count(1)
        self._slots = asyncio.Semaphore(concurrency)
        self._inflight: set[str] = set()
        self._again: set[str] = set()  # refs hinted again while in flight: looked at once more after
        self.audit = audit  # sync: the outbox's invariant audit (run in a thread), see bot.outbox.Outbox.audit
        self.outage = Outage()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.chores = list(chores)  # small periodic tasks given the Redis runner (e.g. bot/slack/names.py)

    # ---- one attempt ------------------------------------------------------------------------------

    async def process(self, ref: str) -> str:
        """Claim, deliver and record the job named by ``ref``. Returns what happened: delivered,
        retry, failed, busy (someone else has it, or its time has not come), gone, or crashed.

        A ref found already in flight in this worker is not dropped: the attempt in flight looks at it
        once more when it ends (the hint may be for a commit that landed after that attempt's claim)."""
        if ref in self._inflight:
            self._again.add(ref)
            return "busy"
        self._inflight.add(ref)
        try:
            while True:
                async with self._slots:
                    result = await self._process(ref)
                if ref not in self._again:
                    return result
                self._again.discard(ref)
        finally:
            self._inflight.discard(ref)
            self._again.discard(ref)

    async def _process(self, ref: str) -> str:
        claim = await self.claim(ref)
        if isinstance(claim, str):
            return claim
        if isinstance(claim, FiguresClaim):
            return await self._count(claim)
        job, token = claim.job, claim.token

        async def save() -> bool:
            return bool(await self._record(keys=[jobs.mailbox(job.tag), jobs.leases(job.tag)],
                                           args=[job.id, token, "save", job.to_json(), ""]))

        attempt = Attempt(job, claim.now, claim.recovering, self.r, self.limiter, self.clock, save, self.faults)
        try:
            outcome = await self._deliver(attempt)
        except (Crash, LostClaim) as e:
            log.warning("worker: attempt for %s abandoned (%s)", job.id[:8], type(e).__name__)
            return "crashed"
        result = await self._finish(job, token, claim.shard, outcome)
        metrics.delivery(str(job.transport), result)  # delivered, retry or parked (a deferral is not counted)
        return result

    async def claim(self, ref: str) -> Claim | FiguresClaim | str:
        """Step 1 of an attempt: the claim, then what its answer means for the job's marks. Returns the
        claim, or what happened instead: gone (missing), or busy (another worker's, waiting, parked)."""
        raw = await self.claim_only(ref)
        return await self.settle_claim(raw)

    async def claim_only(self, ref: str) -> RawClaim:
        """The claim itself (Lua, pipelined after moving the job's recovery mark to the lease's end)."""
        tag, job_id = jobs.parse_ref(ref)
        shard = jobs.shard_of(tag)
        now = self.clock()
        token = f"{self._token_prefix}{next(self._tokens):x}"  # unique: a random prefix per worker, a counter
        mark = now + self.lease
        res = await self.r.write_then_script(
            jobs.CLAIM_LUA, keys=jobs.record_keys(tag, job_id),
            args=[job_id, repr(now), repr(mark), token, repr(self.lease)],
            before=lambda p: p.zadd(jobs.due(shard), {ref: mark}),
        )
        self.outage.over()
        return RawClaim(ref, shard, now, mark, token, list(res))

    async def settle_claim(self, raw: RawClaim) -> Claim | FiguresClaim | str:
        """What a claim's answer means for the job's marks (separate from :meth:`claim_only` so that a
        test can interleave commits between the two, as another process may)."""
        ref, shard, res = raw.ref, raw.shard, raw.answer
        status = int(res[0])
        if status == -1:  # missing for a whole lease: the mark goes, unless a commit wrote it since
            await self.r.script(jobs.UNMARK_LUA)(keys=[jobs.due(shard)], args=[ref, repr(raw.mark)])
            return "gone"
        if status == -2:  # missing, but its commit may still land: the mark stays, looked at again then
            await self.r.zadd(jobs.due(shard), {ref: float(text(res[1]))})
            return "gone"
        if status == 0:
            until = text(res[1])
            if until == "inf":  # parked: it lives in the parked set until requeued (the set first)
                async with self.r.pipeline(transaction=False) as p:
                    p.zadd(jobs.parked(shard), {ref: raw.now}, nx=True)
                    p.zrem(jobs.due(shard), ref)
                    await p.execute()
            else:
                await self.r.zadd(jobs.due(shard), {ref: float(until)})
            return "busy"
        tag, record_id = jobs.parse_ref(ref)
        try:
            record = jobs.read(record_id, res[1])
        except InvalidInput as e:  # never sent nor applied: parked for the operator, as it is
            await self._park_unreadable(ref, tag, record_id, raw, str(e))
            return FAILED
        if isinstance(record, Figures):
            return FiguresClaim(record, raw.token, shard, raw.now)
        return Claim(record, raw.token, shard, raw.now, int(res[2]) == 1)

    async def _park_unreadable(self, ref: str, tag: str, record_id: str, raw: RawClaim, why: str) -> None:
        def park(p: Any) -> None:  # parked before unmarked: at no instant is it neither
            p.zadd(jobs.parked(raw.shard), {ref: raw.now})
            p.zrem(jobs.due(raw.shard), ref)

        await self.r.write_then_script(jobs.RECORD_LUA, keys=jobs.record_keys(tag, record_id),
                                       args=[record_id, raw.token, "park", text(raw.answer[1]), ""], after=park)
        log.error("worker: parked %s: %s", record_id[:10], why[:200])
        metrics.delivery("unreadable", FAILED)

    async def _count(self, claim: FiguresClaim) -> str:
        """Apply a figures record (never sent): done, or retried after a backoff when Redis failed."""
        record = claim.figures
        first: Sequence[Eval] = ()  # applied in the round trip that deletes the record, before the deletion
        try:
            if self.figures is None:
                outcome = Outcome(DELIVERED, "figures dropped: this worker has no figures sink")
            elif (steps := self.figures.steps(record, self.clock())) is not None:
                first, outcome = steps, Outcome(DELIVERED, "figures applied")
            else:
                await self.figures.count(self.r, record, self.clock())
                outcome = Outcome(DELIVERED, "figures applied")
        except StoreUnavailable as e:
            self.outage.began(e)
            outcome = Outcome(RETRY, type(e).__name__)
        except Exception as e:  # the sink handles a bad record itself: this is a bug, retried
            log.exception("worker: figures %s for %s failed", record.id[:10], uid(record.to))
            outcome = Outcome(RETRY, type(e).__name__)
        result = await self._finish(record, claim.token, claim.shard, outcome, first)
        metrics.delivery("figures", result)
        return COUNTED if result == DELIVERED else result

    async def _deliver(self, attempt: Attempt) -> Outcome:
        job = attempt.job
        sender = self.senders.get(job.transport)
        if sender is None and job.says_something:
            return Outcome(FAILED, f"no sender for transport {job.transport!r}")
        if self.faults is not None:
            self.faults.before_deliver(job)
        try:
            if job.legacy_figures is not None and self.figures is not None:
                await self.figures.count_legacy(self.r, job, self.clock())  # nothing sent before they count
            if not job.says_something or sender is None:  # a figures-only job of the first shape
                outcome = Outcome(DELIVERED, "nothing to send")
            else:
                outcome = await sender.deliver(attempt)
        except (Crash, LostClaim):
            raise
        except StoreUnavailable as e:  # Redis went away mid-attempt: retried, logged once
            self.outage.began(e)
            outcome = Outcome(RETRY, type(e).__name__)
        except Exception as e:  # a bug or an unexpected client error must not lose the message
            log.exception("worker: transport %s failed for %s", job.transport, uid(job.to))
            outcome = Outcome(RETRY, type(e).__name__)
        if self.faults is not None:
            self.faults.after_deliver(job, outcome)
        return outcome

    async def _finish(self, job: Job | Figures, token: str, shard: int, outcome: Outcome,
                      first: Sequence[Eval] = ()) -> str:
        """Record the outcome; ``first``: a figures record's steps, run before it is deleted (same round trip)."""
        ref = job.ref
        now = self.clock()
        keys = jobs.record_keys(job.tag, job.id)
        if outcome.kind == DELIVERED:
            await self.r.write_then_script(jobs.RECORD_LUA, keys=keys, args=[job.id, token, "done", "", ""],
                                           after=lambda p: p.zrem(jobs.due(shard), ref), first=first)
            if log.isEnabledFor(logging.DEBUG):  # one line a delivery is a cost at hundreds a second: DEBUG only
                log.debug("worker: %s %s for %s (%s)", "applied" if isinstance(job, Figures) else "delivered",
                          job.id[:8], uid(job.to), outcome.detail)
            return DELIVERED
        if outcome.kind == DEFER:
            at = now + max(0.05, outcome.retry_after or 1.0)
            await self.r.write_then_script(jobs.RECORD_LUA, keys=keys,
                                           args=[job.id, token, "retry", job.to_json(), repr(at)],
                                           after=lambda p: p.zadd(jobs.due(shard), {ref: at}))
            return DEFER
        job.attempts += 1
        job.error = outcome.detail[:200]
        if outcome.kind == FAILED or job.attempts >= self._limit(job):
            job.parked = job.error or "failed"

            def park(p: Any) -> None:  # parked before unmarked: at no instant is it neither
                p.zadd(jobs.parked(shard), {ref: now})
                p.zrem(jobs.due(shard), ref)

            await self.r.write_then_script(jobs.RECORD_LUA, keys=keys,
                                           args=[job.id, token, "park", job.to_json(), ""], after=park)
            log.error("worker: parked %s for %s after %d attempt(s): %s", job.id[:8], uid(job.to), job.attempts,
                      job.error)
            return FAILED
        at = now + backoff(job.attempts, outcome.retry_after)
        await self.r.write_then_script(jobs.RECORD_LUA, keys=keys,
                                       args=[job.id, token, "retry", job.to_json(), repr(at)],
                                       after=lambda p: p.zadd(jobs.due(shard), {ref: at}))
        log.warning("worker: attempt %d for %s failed (%s); again in %.0fs", job.attempts, uid(job.to),
                    job.error, at - now)
        return RETRY

    def _limit(self, job: Job | Figures) -> int:
        """Attempts before a job is parked: its sender's own limit if it has one (a webhook's sender retries
        for days and parks by age), else the worker's."""
        sender = self.senders.get(job.transport) if isinstance(job, Job) else None
        return int(getattr(sender, "max_attempts", 0) or self.max_attempts)

    # ---- finding work -----------------------------------------------------------------------------

    async def due_refs(self, shard: int, now: float) -> list[str]:
        raw = await self.r.zrangebyscore(jobs.due(shard), "-inf", now, start=0, num=SWEEP_BATCH)
        return [text(x) for x in raw]

    async def all_due_refs(self, now: float) -> list[str]:
        """The refs due by ``now`` in every shard, in one round trip (a pipeline; on a Cluster, one per node)."""
        async with self.r.pipeline(transaction=False) as p:
            for shard in range(jobs.QUEUE_SHARDS):
                p.zrangebyscore(jobs.due(shard), "-inf", now, start=0, num=SWEEP_BATCH)
            found = await p.execute()
        return [text(x) for raw in found for x in raw]

    async def drain(self, rounds: int = 100) -> int:
        """Deliver everything that can go now, then return how many delivery attempts were made (tests,
        and ``crmbot remind``; figures records applied are not deliveries: not counted). Hints are taken
        without waiting; retries whose time has not come stay."""
        attempts = 0
        for _ in range(rounds):
            refs: set[str] = set()
            now = self.clock()
            for shard in range(jobs.QUEUE_SHARDS):
                while (raw := await self.r.rpop(jobs.ready(shard))) is not None:
                    refs.add(text(raw))
                refs.update(await self.due_refs(shard, now))
            if not refs:
                break
            # A ref that is busy, crashed or retried comes back later than now: the rounds end.
            results = await asyncio.gather(*(self.process(ref) for ref in sorted(refs)))
            attempts += sum(r not in ("busy", "gone", COUNTED) for r in results)
        return attempts

    def _spawn(self, ref: str) -> None:
        task = asyncio.get_running_loop().create_task(self._guarded(ref))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guarded(self, ref: str) -> None:
        try:
            await self.process(ref)
        except StoreUnavailable as e:
            self.outage.began(e)
        except Exception as e:
            log.error("worker: attempt failed: %s", type(e).__name__)

    async def _consume(self, shard: int, stop: asyncio.Event) -> None:
        key = jobs.ready(shard)
        while not stop.is_set():
            try:
                got = await self.r.brpop([key], timeout=WAIT_TIMEOUT)
            except Exception as e:  # Redis away: wait a little and try again
                self.outage.began(e)
                await _wait(stop, SWEEP_EVERY)
                continue
            if got:
                self._spawn(text(got[1]))

    async def _sweep(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                for ref in await self.all_due_refs(self.clock()):
                    self._spawn(ref)
            except Exception as e:
                self.outage.began(e)
            await _wait(stop, SWEEP_EVERY)

    async def _audit(self, stop: asyncio.Event) -> None:
        """The outbox's invariant audit at start and every AUDIT_EVERY seconds (bounded per run)."""
        if self.audit is None:
            return
        while not stop.is_set():
            try:
                report = await asyncio.to_thread(self.audit)
                log.log(logging.WARNING if getattr(report, "orphans", None) else logging.INFO, "worker: audit: %s",
                        report)
            except Exception as e:
                self.outage.began(e)
            await _wait(stop, AUDIT_EVERY)

    async def _chores(self, stop: asyncio.Event) -> None:
        """Each chore every CHORES_EVERY seconds (a failing one is logged by its type and tried again)."""
        if not self.chores:
            return
        while not stop.is_set():
            for chore in self.chores:
                try:
                    await chore(self.r)
                except StoreUnavailable as e:
                    self.outage.began(e)
                except Exception as e:
                    log.warning("worker: chore %s failed: %s", type(chore).__name__, type(e).__name__)
            await _wait(stop, CHORES_EVERY)

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set; then let the attempts in flight finish (up to a lease)."""
        log.info("worker: running (%d queue shards)", jobs.QUEUE_SHARDS)
        loops = [asyncio.create_task(self._consume(s, stop)) for s in range(jobs.QUEUE_SHARDS)]
        loops.append(asyncio.create_task(self._sweep(stop)))
        loops.append(asyncio.create_task(self._audit(stop)))
        loops.append(asyncio.create_task(self._chores(stop)))
        try:
            await stop.wait()
        finally:
            await asyncio.gather(*loops, return_exceptions=True)
            if self._tasks:
                await asyncio.wait(set(self._tasks), timeout=self.lease)
            log.info("worker: stopped")

    async def close(self) -> None:
        for transport, sender in self.senders.items():
            try:
                await sender.close()
            except Exception as e:
                log.warning("worker: closing %s: %s", transport, type(e).__name__)


class Outage:
    """Redis unreachable: one warning when it starts (not a traceback per job), one line when it ends."""

    def __init__(self) -> None:
        self.since: float | None = None
        self.errors = 0

    def began(self, error: BaseException) -> None:
        self.errors += 1
        if self.since is None:
            self.since = time.monotonic()
            log.warning("worker: redis unreachable (%s); jobs wait in Redis and are retried when it is back",
                        error if isinstance(error, StoreUnavailable) else type(error).__name__)

    def over(self) -> None:
        if self.since is not None:
            log.warning("worker: redis reachable again after %.0fs (%d failed calls meanwhile)",
                        time.monotonic() - self.since, self.errors)
            self.since, self.errors = None, 0


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


class WorkerThread:
    """A worker on an event loop in a thread of its own: ``crmbot serve`` runs one beside the web
    server; tests use :meth:`drain` to deliver what is due, on the same loop every time (the HTTP
    clients' sessions belong to it).

    ``build`` is called on the loop's thread (clients that need a running loop are made there).
    """

    def __init__(self, build: Callable[[], Coroutine[Any, Any, Worker]]) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="worker", daemon=True)
        self._thread.start()
        self.worker: Worker = self.call(build())
        self._stop: asyncio.Event | None = None
        self._running: Any = None

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def drain(self, timeout: float = 60.0) -> int:
        return self.call(self.worker.drain(), timeout)

    def start(self) -> None:
        """Deliver continuously (until :meth:`close`)."""

        async def begin() -> None:
            self._stop = asyncio.Event()
            self._running = asyncio.ensure_future(self.worker.run(self._stop))

        self.call(begin())

    def close(self, timeout: float = 60.0) -> None:
        if not self._loop.is_running():
            return

        async def end() -> None:
            if self._stop is not None:
                self._stop.set()
                await self._running
            await self.worker.close()
            await _close_client(self.worker.r.raw)

        try:
            self.call(end(), timeout)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
            if not self._thread.is_alive():
                self._loop.close()


async def _close_client(client: Any) -> None:
    closer = getattr(client, "aclose", None) or getattr(client, "close", None)
    if closer is not None:
        result = closer()
        if asyncio.iscoroutine(result):
            await result
