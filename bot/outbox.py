"""The outbox: replies are committed with the state change and delivered after it, never lost.

Flow (see conversations/keys.py for the keys):
1. The core commits the state change together with an outbox entry in the user's outbox hash, and
   (pipelined just before) an index entry ``ref -> now + lease`` in ``crmbot:{outbox}:due``.
2. Right after the commit the entry is handed to a sender thread in this process (first attempt).
   Delivered -> acknowledged (entry and index entry removed, one round trip).
   Failed transiently -> rescheduled with exponential backoff (honouring Retry-After).
   Failed permanently, or too often -> parked in ``crmbot:{outbox}:parked`` for the operator.
3. If this process dies before acknowledging, the index entry comes due after the lease and any
   worker's :meth:`Outbox.sweep` claims it (a Lua compare-and-set on the score, so one worker wins)
   and delivers it as a *recovery*. The transport decides how to deliver a recovery safely (LINE:
   the push API with the entry's X-Line-Retry-Key, so a repeat is never a duplicate).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import redis

from bot.logs import uid
from conversations import keys
from conversations.errors import StoreUnavailable
from conversations.keys import Subject
from conversations.redis_ops import write_then_script
from conversations.store import OutboxWrite

log = logging.getLogger(__name__)

DELIVERED, RETRY, FAILED = "delivered", "retry", "failed"
# The transport wants to deliver another way (LINE: push instead of a refused reply): the outbox
# records the switch first, so a recovery after a crash knows which way the message may have gone.
SWITCH = "switch"

# Claim a due outbox message for this worker.
# KEYS[1] the outbox index (sorted set ref -> due time)
# ARGV[1] ref, ARGV[2] now, ARGV[3] new due time (the claim's lease)
# Returns 1 if claimed (its due time was <= now; it is pushed to the lease), else 0.
CLAIM_LUA = """
local due = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not due or tonumber(due) > tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
return 1
"""


# Claim a one-off message (a reminder) and queue it, exactly once.
# KEYS[1] the ledger mark of the message (string)   crmbot:{u:<ch>:<id>}:rem:<period>:<kind>
# KEYS[2] the recipient's outbox (hash)             crmbot:{u:<ch>:<id>}:out
# ARGV[1] message id, ARGV[2] entry JSON, ARGV[3] TTL of the ledger mark in seconds
# Returns 1 if claimed and queued, 0 if the ledger mark already existed (nothing written).
CLAIM_ENQUEUE_LUA = """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[3]) then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
"""


@dataclass(frozen=True)
class Outcome:
    kind: str  # delivered | retry | failed
    detail: str = ""
    retry_after: float | None = None


class Transport(Protocol):
    channel: str

    def deliver(self, entry: Mapping[str, Any], *, recovering: bool, now: float) -> Outcome: ...


def backoff(attempt: int, retry_after: float | None = None, base: float = 2.0, cap: float = 300.0) -> float:
    """Seconds to wait before attempt ``attempt + 1``: 2, 4, 8 ... capped, at least Retry-After."""
    delay = min(cap, base * (2 ** max(0, attempt - 1)))
    return max(delay, retry_after or 0.0)


class Outbox:
    def __init__(
        self,
        client: redis.Redis,
        transports: Mapping[str, Transport],
        *,
        clock: Callable[[], float] = time.time,
        lease: float = 30.0,
        max_attempts: int = 8,
        background: bool = True,
        threads: int = 32,
    ) -> None:
        self.r = client
        self.transports = dict(transports)
        self.clock = clock
        self.lease = lease
        self.max_attempts = max_attempts
        self._claim = client.register_script(CLAIM_LUA)
        self._claim_enqueue = client.register_script(CLAIM_ENQUEUE_LUA)
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="outbox") if background else None
        self._pending: set[Future[None]] = set()
        self._lock = threading.Lock()

    # ---- producing --------------------------------------------------------------------------------

    def handles(self, channel: str) -> bool:
        return channel in self.transports

    def prepare(
        self, ev: Any, outputs: tuple[dict[str, Any], ...], now: float, previous: OutboxWrite | None
    ) -> OutboxWrite:
        """The outbox entry for an inbound event's outputs (the id is kept across CAS retries)."""
        return self._write(
            ev.subject,
            outputs,
            now,
            message_id=previous.message_id if previous else None,
            reply_token=ev.reply_token,
            timestamp=ev.timestamp,
            redelivery=bool(ev.redelivery),
        )

    def _write(
        self,
        subject: Subject,
        outputs: Iterable[dict[str, Any]],
        now: float,
        *,
        message_id: str | None = None,
        reply_token: str | None = None,
        timestamp: float | None = None,
        redelivery: bool = False,
    ) -> OutboxWrite:
        message_id = message_id or str(uuid.uuid4())
        entry = {
            "id": message_id,  # also the LINE X-Line-Retry-Key
            "ch": subject.channel,
            "to": subject.user_id,
            "rt": reply_token or "",
            "ts": timestamp if timestamp is not None else now,
            "redelivery": redelivery,
            "out": list(outputs),
            "n": 0,  # failed attempts so far
            "via": "reply",  # how the next attempt goes: reply (first) or push (after a failure)
        }
        return OutboxWrite(message_id, entry, now + self.lease)

    def update_entry(self, write: OutboxWrite) -> None:
        """Store a queued entry again after changing it (before its first attempt)."""
        self.r.hset(keys.outbox(Subject(write.entry["ch"], write.entry["to"])), write.message_id,
                    _dumps(write.entry))

    def enqueue(self, subject: Subject, outputs: list[dict[str, Any]]) -> OutboxWrite:
        """Queue a message that is not tied to a conversation step (e.g. a KPI result post)."""
        write = self._write(subject, outputs, self.clock())
        ref = keys.outbox_ref(subject, write.message_id)
        try:
            with self.r.pipeline(transaction=False) as p:
                p.zadd(keys.OUTBOX_DUE, {ref: write.due})
                p.hset(keys.outbox(subject), write.message_id, _dumps(write.entry))
                p.execute()
        except redis.RedisError as e:
            raise StoreUnavailable(f"redis: {type(e).__name__}") from e
        self.submit(write)
        return write

    def claim_and_enqueue(
        self,
        subject: Subject,
        ledger_key: str,
        outputs: list[dict[str, Any]],
        *,
        ttl: int,
        extra: dict[str, Any] | None = None,
    ) -> OutboxWrite | None:
        """Queue a message unless its ledger mark exists: the mark and the entry are written by one
        Lua script (same hash slot), so a message is queued at most once and never half-queued."""
        write = self._write(subject, outputs, self.clock())
        if extra:
            write.entry.update(extra)
        ref = keys.outbox_ref(subject, write.message_id)
        try:
            claimed = write_then_script(self.r, self._claim_enqueue, keys=[ledger_key, keys.outbox(subject)],
                                        args=[write.message_id, _dumps(write.entry), ttl],
                                        before=lambda p: p.zadd(keys.OUTBOX_DUE, {ref: write.due}))
            if not claimed:
                self.r.zrem(keys.OUTBOX_DUE, ref)
                return None
        except redis.RedisError as e:
            raise StoreUnavailable(f"redis: {type(e).__name__}") from e
        return write

    def submit(self, write: OutboxWrite) -> None:
        """Hand a just-committed entry to a sender (background thread, or inline for tests)."""
        if self._pool is None:
            self.attempt_now(write)
            return
        fut = self._pool.submit(self._first_attempt, write, time.monotonic())
        with self._lock:
            self._pending.add(fut)
        fut.add_done_callback(self._forget)

    def _first_attempt(self, write: OutboxWrite, queued_at: float) -> Outcome | None:
        """A sender thread's first attempt, unless the entry waited so long in this process's queue
        that the worker may already have taken it over (its lease ran out): then it is the worker's,
        and attempting it here could send it twice."""
        if time.monotonic() - queued_at > self.lease / 2:
            log.warning("outbox: %s waited over half its lease in the send queue; left to the worker",
                        write.message_id[:8])
            return None
        return self.attempt_now(write)

    def attempt_now(self, write: OutboxWrite) -> Outcome:
        """The first delivery attempt, in the calling thread."""
        subject = Subject(write.entry["ch"], write.entry["to"])
        return self._attempt(subject, write.message_id, dict(write.entry), recovering=False)

    def _forget(self, fut: Future[None]) -> None:
        with self._lock:
            self._pending.discard(fut)

    def drain(self, timeout: float = 30.0) -> None:
        """Wait until this process's in-flight first attempts are done."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                pending = list(self._pending)
            if not pending:
                return
            for f in pending:
                f.result(timeout=max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    # ---- delivering -------------------------------------------------------------------------------

    def _attempt(self, subject: Subject, message_id: str, entry: dict[str, Any], *, recovering: bool) -> Outcome:
        transport = self.transports.get(subject.channel)
        now = self.clock()
        if transport is None:
            outcome = Outcome(FAILED, f"no transport for channel {subject.channel!r}")
            self._park(subject, message_id, entry, outcome.detail)
            return outcome
        try:
            outcome = transport.deliver(entry, recovering=recovering, now=now)
            if outcome.kind == SWITCH:
                entry["via"] = outcome.detail
                self.r.hset(keys.outbox(subject), message_id, _dumps(entry))
                outcome = transport.deliver(entry, recovering=recovering, now=now)
        except Exception as e:  # a bug or an unexpected client error must not lose the message
            log.exception("outbox: transport error for %s", uid(subject.user_id))
            outcome = Outcome(RETRY, f"{type(e).__name__}")
        try:
            if outcome.kind == DELIVERED:
                self._ack(subject, message_id)
                log.info("outbox: delivered %s to %s (%s)", message_id[:8], uid(subject.user_id), outcome.detail)
                return outcome
            entry["n"] = int(entry.get("n", 0)) + 1
            entry["via"] = "push"
            entry["last_error"] = outcome.detail[:200]
            if outcome.kind == FAILED or entry["n"] >= self.max_attempts:
                self._park(subject, message_id, entry, outcome.detail)
                return Outcome(FAILED, outcome.detail)
            due = self.clock() + backoff(entry["n"], outcome.retry_after)
            self._reschedule(subject, message_id, entry, due)
            log.warning(
                "outbox: attempt %d for %s failed (%s); retry in %.0fs",
                entry["n"],
                uid(subject.user_id),
                outcome.detail,
                due - now,
            )
        except redis.RedisError:
            # The index entry still points here; a sweep will pick the message up again.
            log.warning("outbox: redis unavailable while recording %s; left for the sweeper", message_id[:8])
        return outcome

    def _ack(self, subject: Subject, message_id: str) -> None:
        with self.r.pipeline(transaction=False) as p:
            p.hdel(keys.outbox(subject), message_id)
            p.zrem(keys.OUTBOX_DUE, keys.outbox_ref(subject, message_id))
            p.execute()

    def _reschedule(self, subject: Subject, message_id: str, entry: dict[str, Any], due: float) -> None:
        with self.r.pipeline(transaction=False) as p:
            p.hset(keys.outbox(subject), message_id, _dumps(entry))
            p.zadd(keys.OUTBOX_DUE, {keys.outbox_ref(subject, message_id): due})
            p.execute()

    def _park(self, subject: Subject, message_id: str, entry: dict[str, Any], reason: str) -> None:
        entry["parked"] = reason[:200]
        ref = keys.outbox_ref(subject, message_id)
        with self.r.pipeline(transaction=False) as p:
            p.hset(keys.outbox(subject), message_id, _dumps(entry))
            p.zadd(keys.OUTBOX_PARKED, {ref: self.clock()})
            p.zrem(keys.OUTBOX_DUE, ref)
            p.execute()
        log.error("outbox: parked %s for %s after %s attempt(s): %s", message_id[:8], uid(subject.user_id),
                  entry.get("n"), reason)

    # ---- recovering -------------------------------------------------------------------------------

    def sweep(self, limit: int = 100) -> int:
        """Deliver every message whose lease or backoff has run out. Returns how many were tried."""
        now = self.clock()
        try:
            refs = self.r.zrangebyscore(keys.OUTBOX_DUE, "-inf", now, start=0, num=limit)
        except redis.RedisError as e:
            raise StoreUnavailable(f"redis: {type(e).__name__}") from e
        tried = 0
        for raw_ref in refs:
            ref = raw_ref.decode() if isinstance(raw_ref, bytes) else raw_ref
            if not self._claim(keys=[keys.OUTBOX_DUE], args=[ref, now, now + self.lease]):
                continue  # another worker has it
            subject, message_id = keys.parse_outbox_ref(ref)
            raw = self.r.hget(keys.outbox(subject), message_id)
            if raw is None:  # acknowledged meanwhile, or its commit never happened
                self.r.zrem(keys.OUTBOX_DUE, ref)
                continue
            entry = json.loads(raw)
            if entry.get("parked"):
                self.r.zrem(keys.OUTBOX_DUE, ref)
                continue
            tried += 1
            self._attempt(subject, message_id, entry, recovering=True)
        return tried

    # ---- operator ---------------------------------------------------------------------------------

    def parked(self) -> list[dict[str, Any]]:
        out = []
        for raw_ref, when in self.r.zrange(keys.OUTBOX_PARKED, 0, -1, withscores=True):
            ref = raw_ref.decode() if isinstance(raw_ref, bytes) else raw_ref
            subject, message_id = keys.parse_outbox_ref(ref)
            raw = self.r.hget(keys.outbox(subject), message_id)
            entry = json.loads(raw) if raw else {}
            out.append({"id": message_id, "user": uid(subject.user_id), "parked_at": when,
                        "reason": entry.get("parked", "?"), "attempts": entry.get("n", 0)})
        return out

    def requeue(self, message_id: str) -> bool:
        """Put a parked message back in line (after the operator fixed the cause)."""
        if not message_id or ":" in message_id or "*" in message_id:
            return False
        refs = [r.decode() if isinstance(r, bytes) else r
                for r, _ in self.r.zscan_iter(keys.OUTBOX_PARKED, match=f"*:{message_id}:*")]
        if not refs:
            return False
        ref = refs[0]
        subject, message_id = keys.parse_outbox_ref(ref)
        raw = self.r.hget(keys.outbox(subject), message_id)
        if raw is None:
            self.r.zrem(keys.OUTBOX_PARKED, ref)
            return False
        entry = json.loads(raw)
        entry.pop("parked", None)
        entry["n"] = 0
        entry["via"] = "push"
        with self.r.pipeline(transaction=False) as p:
            p.hset(keys.outbox(subject), message_id, _dumps(entry))
            p.zadd(keys.OUTBOX_DUE, {ref: self.clock()})
            p.zrem(keys.OUTBOX_PARKED, ref)
            p.execute()
        return True


def _dumps(entry: Mapping[str, Any]) -> str:
    return json.dumps(entry, ensure_ascii=False, separators=(",", ":"))
