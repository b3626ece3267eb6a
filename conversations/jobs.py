"""Outbound messages and the operator's figures as typed records, and where they live in Redis.

A job is committed into its owner's *mailbox* (a hash in the owner's hash slot: the user's for a
reply, the team's for a KPI post), in the same Lua script as the state change that caused it, so a
message is queued exactly when its cause is stored. A step's figures for the operator
(:func:`conversations.analytics.delta_of`) are committed by the same script as a record of their own
(:class:`Figures`, in the user's ``figs`` hash), never inside a message: a step with nothing to say
commits its figures alone. Beside them, every job and figures record is named in one of
``QUEUE_SHARDS`` queue shards (each its own hash slot, so Redis Cluster has no single hot key):

    crmbot:{<tag>}:out          mailbox (hash: job id -> job JSON)
    crmbot:{<tag>}:lease        leases (hash: job id -> "<not before>|<claim token>")
    crmbot:{<tag>}:figs         figures records (hash: "f-<id>" -> figures JSON)
    crmbot:{<tag>}:figs:lease   their leases (as the jobs')
    crmbot:{q<k>}:ready         refs committed just now (list): workers wait on it (BRPOP)
    crmbot:{q<k>}:due           refs to look at again at a time (sorted set: ref -> time):
                                a retry's time, or a claim's lease (recovery if the worker dies)
    crmbot:{q<k>}:parked        refs that kept failing (sorted set: ref -> when parked)

A ref is ``<tag>|<id>``; a figures record's id starts with ``f-`` (:func:`record_keys` says which hash
holds a ref). The shard lists are hints: every attempt first *claims* the record (a Lua compare-and-set
on its lease), so a duplicate or stale hint costs a look, never a second send. The worker delivers a
job with its transport and applies a figures record (bot/analytics_sink.py); both go through the same
claim, retry, park and recovery.

**The invariant**: every job or figures record is delivered or applied (and gone), *due* (its ref is in
its shard's ``due`` set), or *parked* (in ``parked``); nothing else. It holds because every writer keeps
an order: a commit writes the mark before the record and the hint after it; a worker may move a mark
(claim, retry) but removes it only after the record is gone (done), after writing ``parked`` (parked),
or when the record has been missing for a whole lease (a tombstone in the leases hash, see CLAIM_LUA)
and no commit re-marked it since (UNMARK_LUA). A hint is never needed for correctness: it only saves
the sweep's wait. ``crmbot outbox --check`` audits the invariant (the worker runs it too).

**Shapes.** A job stores its transport (:class:`~conversations.transports.Transport`), its outputs
(:mod:`conversations.outputs`: the machine's typed outputs, or Slack KPI payloads), its transport's
typed state and the content version its outputs are rendered with (``content``: a reply already
committed keeps its wording when the script file is edited). :meth:`Job.from_json` also reads the
shape jobs had before (``channel``, free ``state`` and ``meta`` dicts, the step's figures in
``meta["stats"]``, and figures-only jobs of a ``"stats"`` channel): such a job still delivers, and its
figures are applied before it (``Job.legacy_figures``).

:mod:`bot.outbox` commits jobs; :mod:`bot.worker` delivers them.
"""

from __future__ import annotations

import json
import uuid
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from conversations import outputs as typed_outputs
from conversations.errors import InvalidInput
from conversations.keys import PREFIX
from conversations.outputs import JobOutput, Output
from conversations.redis_ops import Eval
from conversations.transports import (
    ForwardState,
    LineBatchState,
    LineState,
    NoState,
    SlackState,
    Transport,
    TransportState,
    WebhookState,
    state_for,
    state_from_json,
)

QUEUE_SHARDS = 8
SEP = "|"
# Seconds (CRMBOT_OUTBOX_LEASE's default; the one lease setting): how long a worker's claim on a job lasts,
# and how long a job just committed waits for a worker before the recovery sweep looks at it.
LEASE = 30
FIGURES = "f-"  # the id prefix of a figures record
SHAPE = 2  # the job record's shape ("v"); a record without one is read as the first shape
LEGACY_STATS = "stats"  # the first shape's figures-only jobs had this for a channel


@dataclass
class Job:
    """One outbound message (or one multicast) and its delivery bookkeeping."""

    id: str  # unique; LINE's X-Line-Retry-Key, Slack's message metadata
    transport: Transport  # how it goes: line | linebatch | slack | web
    to: str  # the address within the transport (a LINE user ID, "<workspace>.<user or channel>")
    tag: str  # the mailbox owner's hash tag, without braces: "u:line:U123", "t:T1:C1"
    outputs: list[JobOutput]  # what to say: the machine's outputs (rendered by the transport) or Slack payloads
    received: float  # server time when its cause arrived (LINE's reply window counts from here)
    attempts: int = 0  # failed attempts so far
    state: TransportState = field(default_factory=NoState)  # the transport's own (see conversations.transports)
    content: str = ""  # the script version its outputs are rendered with ("" the worker's own)
    var: str = ""  # the content experiments' variants its outputs are rendered with (Conv.var; "" none)
    error: str = ""  # the last failure, short, no message text
    parked: str = ""  # why it was parked (set: no further attempts until requeued)
    legacy_figures: dict[str, Any] | None = None  # a job of the first shape: the figures that rode in it

    @classmethod
    def new(
        cls,
        transport: Transport | str,
        to: str,
        tag: str,
        outputs: Iterable[Output | Mapping[str, Any]],
        received: float,
        *,
        state: TransportState | None = None,
        content: str = "",
        job_id: str | None = None,
        var: str = "",
    ) -> Job:
        if not tag or "{" in tag or "}" in tag or SEP in tag:
            raise InvalidInput(f"job tag {tag[:20]!r} is not a hash tag")
        t = Transport.parse(transport)
        if state is None:
            state = state_for(t)
        elif not isinstance(state, type(state_for(t))):
            raise InvalidInput(f"a {type(state).__name__} is not the state of a {t} job")
        return cls(job_id or str(uuid.uuid4()), t, to, tag, [typed_outputs.job_output(o) for o in outputs], received,
                   state=state, content=content, var=var)

    @property
    def ref(self) -> str:
        return ref(self.tag, self.id)

    # -- the transport's state, typed (a job's state always belongs to its transport) --------------

    @property
    def line(self) -> LineState:
        if not isinstance(self.state, LineState):
            raise InvalidInput(f"a {self.transport} job has no LINE state")
        return self.state

    @property
    def batch(self) -> LineBatchState:
        if not isinstance(self.state, LineBatchState):
            raise InvalidInput(f"a {self.transport} job has no multicast state")
        return self.state

    @property
    def forward(self) -> ForwardState:
        if not isinstance(self.state, ForwardState):
            raise InvalidInput(f"a {self.transport} job has no forward state")
        return self.state

    @property
    def webhook(self) -> WebhookState:
        if not isinstance(self.state, WebhookState):
            raise InvalidInput(f"a {self.transport} job has no webhook state")
        return self.state

    @property
    def says_something(self) -> bool:
        """Whether there is anything to deliver: outputs, a forward's body, a LINE follower's display name to
        fetch. A job with none is a figures-only job of the first shape (its figures applied, it is done)."""
        return (bool(self.outputs) or isinstance(self.state, ForwardState | WebhookState)
                or (isinstance(self.state, LineState) and self.state.fetch_profile))

    @property
    def slack(self) -> SlackState:
        if not isinstance(self.state, SlackState):
            raise InvalidInput(f"a {self.transport} job has no Slack state")
        return self.state

    # -- JSON --------------------------------------------------------------------------------------

    def to_json(self) -> str:
        d: dict[str, Any] = {
            "v": SHAPE, "id": self.id, "transport": self.transport.value, "to": self.to, "tag": self.tag,
            "outputs": [typed_outputs.to_json(o) for o in self.outputs], "received": self.received,
            "attempts": self.attempts,
            "state": self.state.to_json(), "content": self.content, "error": self.error, "parked": self.parked,
        }
        if self.var:
            d["var"] = self.var
        if self.legacy_figures is not None:
            d["stats"] = self.legacy_figures
        return json.dumps(d, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> Job:
        """A stored job, of either shape; InvalidInput when it is not one."""
        try:
            d = json.loads(raw)
            if not isinstance(d, dict):
                raise InvalidInput("a job is not an object")
            if "v" in d:
                transport = Transport.parse(d["transport"])
                state = state_from_json(transport, d.get("state") or {})
                figures = d.get("stats")
            else:
                transport, state, figures = _first_shape(d)
            return cls(
                id=str(d["id"]), transport=transport, to=str(d["to"]), tag=str(d["tag"]),
                outputs=[typed_outputs.job_output(o) for o in d.get("outputs") or []], received=float(d["received"]),
                attempts=int(d.get("attempts") or 0), state=state, content=str(d.get("content") or ""),
                var=str(d.get("var") or ""),
                error=str(d.get("error") or ""), parked=str(d.get("parked") or ""),
                legacy_figures=figures if isinstance(figures, dict) else None,
            )
        except (KeyError, TypeError, ValueError) as e:
            raise InvalidInput(f"not a job record: {type(e).__name__}") from None


def _first_shape(d: Mapping[str, Any]) -> tuple[Transport, TransportState, Any]:
    """A job stored before outputs, transports and states were typed: ``channel``, ``state`` and
    ``meta`` (free dicts, merged: a multicast's recipients were in meta), the figures in ``meta["stats"]``.
    A figures-only job (channel "stats") belongs to its user's transport, and has nothing to send."""
    meta = dict(d.get("meta") or {})
    figures = meta.pop("stats", None)
    channel = str(d.get("channel"))
    if channel == LEGACY_STATS:
        kind, _, rest = str(d.get("tag")).partition(":")
        channel = rest.partition(":")[0] if kind == "u" else ""
    transport = Transport.parse(channel)
    return transport, state_from_json(transport, {**meta, **dict(d.get("state") or {})}), figures


@dataclass(frozen=True)
class Once:
    """A job queued at most once: its ledger mark, a key in the job's hash slot, set by the same script
    that stores the job (LEDGER_ENQUEUE_LUA) and kept ``ttl`` seconds. A LINE webhook's forward is
    one (its mark named after the webhook's events, so a redelivery is not forwarded again): committed on
    its own (:meth:`bot.outbox.Outbox.put_once`), or riding on a step's commit, in the same round trip
    (:meth:`conversations.store.RedisStore.update`)."""

    mark: str
    job: Job
    ttl: int

    def script(self) -> Eval:
        """The script that sets the mark and stores the job, unless the mark exists (then nothing)."""
        return Eval(LEDGER_ENQUEUE_LUA, [self.mark, mailbox(self.job.tag)], [self.job.id, self.job.to_json(), self.ttl])


@dataclass
class Figures:
    """What one committed step changed for the operator (a :func:`conversations.analytics.delta_of`
    dict), in the user's hash slot until a worker applies it; queued like a job, never sent."""

    id: str  # "f-<uuid>"
    tag: str  # the user's hash tag, without braces
    delta: dict[str, Any]
    attempts: int = 0
    error: str = ""
    parked: str = ""

    @classmethod
    def new(cls, tag: str, delta: Mapping[str, Any], *, record_id: str | None = None) -> Figures:
        if not tag or "{" in tag or "}" in tag or SEP in tag:
            raise InvalidInput(f"figures tag {tag[:20]!r} is not a hash tag")
        if record_id is not None and not is_figures(record_id):
            raise InvalidInput(f"a figures record's id starts with {FIGURES!r}")
        return cls(record_id or FIGURES + str(uuid.uuid4()), tag, dict(delta))

    @property
    def ref(self) -> str:
        return ref(self.tag, self.id)

    @property
    def to(self) -> str:
        """The user (for logs, hashed there)."""
        return self.tag.rpartition(":")[2]

    def to_json(self) -> str:
        d: dict[str, Any] = {"v": SHAPE, "id": self.id, "tag": self.tag, "delta": self.delta,
                             "attempts": self.attempts}
        if self.error:
            d["error"] = self.error
        if self.parked:
            d["parked"] = self.parked
        return json.dumps(d, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> Figures:
        try:
            d = json.loads(raw)
            if not isinstance(d, dict) or not isinstance(d.get("delta"), dict):
                raise InvalidInput("not a figures record")
            return cls(str(d["id"]), str(d["tag"]), d["delta"], int(d.get("attempts") or 0),
                       str(d.get("error") or ""), str(d.get("parked") or ""))
        except (KeyError, TypeError, ValueError) as e:
            raise InvalidInput(f"not a figures record: {type(e).__name__}") from None


def is_figures(record_id: str) -> bool:
    return record_id.startswith(FIGURES)


def read(record_id: str, raw: str | bytes) -> Job | Figures:
    """The stored record named ``record_id``: a figures record or a job."""
    return Figures.from_json(raw) if is_figures(record_id) else Job.from_json(raw)


def ref(tag: str, job_id: str) -> str:
    return f"{tag}{SEP}{job_id}"


def parse_ref(value: str | bytes) -> tuple[str, str]:
    """(tag, job id) of a ref; InvalidInput when it is not one."""
    text = value.decode() if isinstance(value, bytes) else value
    tag, sep, job_id = text.partition(SEP)
    if not sep or not tag or not job_id:
        raise InvalidInput(f"not a job ref: {text[:40]!r}")
    return tag, job_id


def mailbox(tag: str) -> str:
    return f"{PREFIX}:{{{tag}}}:out"


def leases(tag: str) -> str:
    return f"{PREFIX}:{{{tag}}}:lease"


def figures(tag: str) -> str:
    return f"{PREFIX}:{{{tag}}}:figs"


def figures_leases(tag: str) -> str:
    return f"{PREFIX}:{{{tag}}}:figs:lease"


def record_keys(tag: str, record_id: str) -> list[str]:
    """The hash holding a record and its leases: a figures record's, or the mailbox's."""
    if is_figures(record_id):
        return [figures(tag), figures_leases(tag)]
    return [mailbox(tag), leases(tag)]


# Discard every job and figures record of one owner, never to be sent or applied (a person's data erased).
# KEYS[1] the mailbox  [2] its leases  [3] the figures records  [4] their leases
# Returns the ids discarded (their refs may still be due: a worker clears a mark whose record has been
# missing for a lease, as for any record gone; the caller removes the parked ones).
DISCARD_LUA = """
local ids = redis.call('HKEYS', KEYS[1])
for _, id in ipairs(redis.call('HKEYS', KEYS[3])) do ids[#ids + 1] = id end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
return ids
"""


def shard_of(tag: str) -> int:
    """The queue shard of an owner: all of one owner's jobs go through one shard."""
    return zlib.crc32(tag.encode("utf-8", "surrogatepass")) % QUEUE_SHARDS


def ready(shard: int) -> str:
    return f"{PREFIX}:{{q{shard}}}:ready"


def due(shard: int) -> str:
    return f"{PREFIX}:{{q{shard}}}:due"


def parked(shard: int) -> str:
    return f"{PREFIX}:{{q{shard}}}:parked"


def intend(pipe: Any, job: Job | Figures, look_at: float) -> None:
    """Queue (on ``pipe``) the recovery mark of a job (or figures record) about to be committed: if
    nothing acknowledges it by ``look_at``, a worker looks at it. Written *before* the commit."""
    pipe.zadd(due(shard_of(job.tag)), {job.ref: look_at})


def wake(pipe: Any, job: Job | Figures) -> None:
    """Queue (on ``pipe``) the hint that a job (or figures record) was just committed. Written *after*
    the commit."""
    pipe.lpush(ready(shard_of(job.tag)), job.ref)


# ---- claiming and recording (Lua, in the owner's hash slot; the same for figures records) -----------
#
# A lease is "<not before>|<claim token>". A token means "someone is delivering it": a claim after
# its time has run out is a *recovery* (the earlier attempt's outcome is unknown). No token means
# "waiting until <not before>" (a retry's backoff). A parked job's lease is "inf|".
#
# A job found missing leaves a *tombstone* lease "gone|<first seen>". Its marks are removed only once
# it has been missing for a whole grace period (a lease): a mark or hint may precede its commit (a
# commit retried after a compare-and-set conflict, a hint read before the script ran), and a mark a
# later commit needs must never be deleted. A job committed meanwhile overrides the tombstone.

# Claim a job (or a figures record) for one delivery attempt.
# KEYS[1] the mailbox (hash: job id -> job JSON)       crmbot:{<tag>}:out   (figures: crmbot:{<tag>}:figs)
# KEYS[2] its leases (hash: job id -> lease)           crmbot:{<tag>}:lease (figures: crmbot:{<tag>}:figs:lease)
# ARGV[1] job id, ARGV[2] now, ARGV[3] the lease's end (now + lease seconds), ARGV[4] a fresh claim token,
# ARGV[5] the grace (seconds a job must have been missing before its marks may go)
# Returns {1, job JSON, recovering (1 when an earlier claim ran out unrecorded)} when claimed;
# {0, time} when it may not be claimed before that time (leased to another worker, or waiting);
# {-2, time} when the job is missing but may still be committed: look again at that time;
# {-1} when the job has been missing for the grace: its marks may go.
CLAIM_LUA = """
local job = redis.call('HGET', KEYS[1], ARGV[1])
local lease = redis.call('HGET', KEYS[2], ARGV[1])
local tomb = lease and string.sub(lease, 1, 5) == 'gone|'
if not job then
  if tomb then
    local again = tonumber(string.sub(lease, 6)) + tonumber(ARGV[5])
    if again <= tonumber(ARGV[2]) then
      redis.call('HDEL', KEYS[2], ARGV[1])
      return {-1}
    end
    return {-2, tostring(again)}
  end
  redis.call('HSET', KEYS[2], ARGV[1], 'gone|' .. ARGV[2])
  return {-2, tostring(tonumber(ARGV[2]) + tonumber(ARGV[5]))}
end
local recovering = 0
if lease and not tomb then
  local sep = string.find(lease, '|', 1, true)
  local until_s = string.sub(lease, 1, sep - 1)
  local held_by = string.sub(lease, sep + 1)
  if until_s == 'inf' then return {0, 'inf'} end
  if tonumber(until_s) > tonumber(ARGV[2]) then return {0, until_s} end
  if held_by ~= '' then recovering = 1 end
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3] .. '|' .. ARGV[4])
return {1, job, recovering}
"""

# Remove a job's recovery mark if it still has the score this worker gave it (a commit that wrote
# the mark since then keeps it).
# KEYS[1] the due set of the job's shard; ARGV[1] the ref, ARGV[2] the score written. Returns 1 if removed.
UNMARK_LUA = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) == tonumber(ARGV[2]) then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 1
end
return 0
"""

# Record what an attempt did, if the claim is still ours.
# KEYS[1] the mailbox, KEYS[2] its leases (as in CLAIM_LUA)
# ARGV[1] job id, ARGV[2] the claim token, ARGV[3] what happened:
#   "done"   delivered: the job and its lease are removed
#   "save"   a checkpoint mid-attempt (the transport changed its state): the job is stored, the claim kept
#   "retry"  failed for now: the job is stored and may be claimed again from ARGV[5]
#   "park"   failed for good: the job is stored and never claimed again until requeued
# ARGV[4] the job JSON (save, retry, park), ARGV[5] not before (retry)
# Returns 1 when recorded, 0 when the claim was no longer ours (another worker took the job over).
RECORD_LUA = """
local lease = redis.call('HGET', KEYS[2], ARGV[1])
if not lease then return 0 end
local sep = string.find(lease, '|', 1, true)
if string.sub(lease, sep + 1) ~= ARGV[2] then return 0 end
if ARGV[3] == 'done' then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
  return 1
end
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[4])
if ARGV[3] == 'retry' then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[5] .. '|')
elseif ARGV[3] == 'park' then
  redis.call('HSET', KEYS[2], ARGV[1], 'inf|')
end
return 1
"""

# Put a parked job back in line.
# KEYS[1] the mailbox, KEYS[2] its leases
# ARGV[1] job id, ARGV[2] the job JSON with its failure count reset
# Returns 1 when requeued, 0 when there is no such parked job.
REQUEUE_LUA = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
if redis.call('HGET', KEYS[2], ARGV[1]) ~= 'inf|' then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
"""

# Drop a parked job for good (the operator discards it). The caller then removes its parked ref.
# KEYS[1] the mailbox, KEYS[2] its leases
# ARGV[1] job id
# Returns 1 when dropped, 0 when there is no such parked job (gone, or requeued meanwhile).
DISCARD_PARKED_LUA = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
if redis.call('HGET', KEYS[2], ARGV[1]) ~= 'inf|' then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
"""

# Queue a one-off job (a reminder) unless its ledger mark exists, exactly once.
# KEYS[1] the ledger mark (string)    KEYS[2] the recipient's mailbox (hash)
# ARGV[1] job id, ARGV[2] job JSON, ARGV[3] TTL of the ledger mark in seconds
# Returns 1 when claimed and queued, 0 when the mark already existed (nothing written).
LEDGER_ENQUEUE_LUA = """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[3]) then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
"""

# Store a job in its mailbox (for a job committed on its own, ordered between its queue marks).
# KEYS[1] the mailbox; ARGV[1] job id, ARGV[2] job JSON. Returns 1.
PUT_LUA = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""
