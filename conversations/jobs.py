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
second send. See :mod:`bot.outbox` for the delivery loop.
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
    return zlib.crc32(tag.encode()) % QUEUE_SHARDS


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
