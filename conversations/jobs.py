"""Outbound messages as typed job records, and where they live in Redis.

A job is committed into its owner's *mailbox* (a hash in the owner's hash slot: the user's for a
reply, the team's for a KPI post), in the same Lua script as the state change that caused it, so a
message is queued exactly when its cause is stored. Beside the mailbox, every job is named in one of
``QUEUE_SHARDS`` queue shards (each its own hash slot, so Redis Cluster has no single hot key):

    crmbot:{<tag>}:out          mailbox (hash: job id -> job JSON)
    crmbot:{<tag>}:lease        leases (hash: job id -> "<not before>|<claim token>")
    crmbot:{q<k>}:ready         refs committed just now (list): workers wait on it (BRPOP)
    crmbot:{q<k>}:due           refs to look at again at a time (sorted set: ref -> time):
                                a retry's time, or a claim's lease (recovery if the worker dies)
    crmbot:{q<k>}:parked        refs that kept failing (sorted set: ref -> when parked)

A ref is ``<tag>|<job id>``. The shard lists are hints: every attempt first *claims* the job in its
mailbox (a Lua compare-and-set on the lease), so a duplicate or stale hint costs a look, never a
second send.

**The invariant**: every job in a mailbox is delivered (and gone), *due* (its ref is in its shard's
``due`` set), or *parked* (in ``parked``); nothing else. It holds because every writer keeps an order:
a commit writes the mark before the job and the hint after it; a worker may move a mark (claim,
retry) but removes it only after the job is gone (delivered), after writing ``parked`` (parked), or
when the job has been missing for a whole lease (a tombstone in the leases hash, see CLAIM_LUA) and
no commit re-marked it since (UNMARK_LUA). A hint is never needed for correctness: it only
saves the sweep's wait. ``crmbot outbox --check`` audits the invariant (the worker runs it too).

:mod:`bot.outbox` commits jobs; :mod:`bot.worker` delivers them.
"""

from __future__ import annotations

import json
import uuid
import zlib
from dataclasses import asdict, dataclass, field
from typing import Any

from conversations.errors import InvalidInput
from conversations.keys import PREFIX

QUEUE_SHARDS = 8
SEP = "|"
# Seconds (CRMBOT_OUTBOX_LEASE's default; the one lease setting): how long a worker's claim on a job lasts,
# and how long a job just committed waits for a worker before the recovery sweep looks at it.
LEASE = 30


@dataclass
class Job:
    """One outbound message (or one multicast) and its delivery bookkeeping."""

    id: str  # unique; LINE's X-Line-Retry-Key, Slack's message metadata
    channel: str  # the transport: line | linebatch | slack | web ...
    to: str  # the address within the channel (a LINE user ID, "<workspace>.<user or channel>")
    tag: str  # the mailbox owner's hash tag, without braces: "u:line:U123", "t:T1:C1"
    outputs: list[dict[str, Any]]  # what to say, as the core produced it (rendered by the transport)
    received: float  # server time when its cause arrived (LINE's reply window counts from here)
    attempts: int = 0  # failed attempts so far
    state: dict[str, Any] = field(default_factory=dict)  # owned by the transport (LINE: reply token, via)
    meta: dict[str, Any] = field(default_factory=dict)  # for the transport (a multicast's recipients, ...)
    error: str = ""  # the last failure, short, no message text
    parked: str = ""  # why it was parked (set: no further attempts until requeued)

    @classmethod
    def new(
        cls,
        channel: str,
        to: str,
        tag: str,
        outputs: list[dict[str, Any]],
        received: float,
        *,
        state: dict[str, Any] | None = None,
        meta: dict[str, Any] | None = None,
        job_id: str | None = None,
    ) -> Job:
        if not tag or "{" in tag or "}" in tag or SEP in tag:
            raise InvalidInput(f"job tag {tag[:20]!r} is not a hash tag")
        return cls(job_id or str(uuid.uuid4()), channel, to, tag, list(outputs), received,
                   state=dict(state or {}), meta=dict(meta or {}))

    @property
    def ref(self) -> str:
        return ref(self.tag, self.id)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> Job:
        data = json.loads(raw)
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


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


def shard_of(tag: str) -> int:
    """The queue shard of an owner: all of one owner's jobs go through one shard."""
    return zlib.crc32(tag.encode("utf-8", "surrogatepass")) % QUEUE_SHARDS


def ready(shard: int) -> str:
    return f"{PREFIX}:{{q{shard}}}:ready"


def due(shard: int) -> str:
    return f"{PREFIX}:{{q{shard}}}:due"


def parked(shard: int) -> str:
    return f"{PREFIX}:{{q{shard}}}:parked"


def intend(pipe: Any, job: Job, look_at: float) -> None:
    """Queue (on ``pipe``) the recovery mark of a job about to be committed: if nothing acknowledges
    it by ``look_at``, a worker looks at it. Written *before* the commit."""
    pipe.zadd(due(shard_of(job.tag)), {job.ref: look_at})


def wake(pipe: Any, job: Job) -> None:
    """Queue (on ``pipe``) the hint that a job was just committed. Written *after* the commit."""
    pipe.lpush(ready(shard_of(job.tag)), job.ref)


# ---- claiming and recording (Lua, in the mailbox's hash slot) -------------------------------------
#
# A lease is "<not before>|<claim token>". A token means "someone is delivering it": a claim after
# its time has run out is a *recovery* (the earlier attempt's outcome is unknown). No token means
# "waiting until <not before>" (a retry's backoff). A parked job's lease is "inf|".
#
# A job found missing leaves a *tombstone* lease "gone|<first seen>". Its marks are removed only once
# it has been missing for a whole grace period (a lease): a mark or hint may precede its commit (a
# commit retried after a compare-and-set conflict, a hint read before the script ran), and a mark a
# later commit needs must never be deleted. A job committed meanwhile overrides the tombstone.

# Claim a job for one delivery attempt.
# KEYS[1] the mailbox (hash: job id -> job JSON)       crmbot:{<tag>}:out
# KEYS[2] its leases (hash: job id -> lease)           crmbot:{<tag>}:lease
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
