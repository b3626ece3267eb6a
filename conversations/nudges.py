"""The drop-off nudge schedule: diagnoses left mid-way, each to be nudged once (bot/nudges.py sends them).

Every step that leaves a LINE diagnosis in progress adds its diagnosis to :data:`conversations.keys.NUDGE_DUE`
with the time it becomes due (its last change + ``CRMBOT_NUDGE_AFTER_HOURS``), before the step's commit
(bot/core.py through the store, as the reminder index: the schedule is a superset, the user's record is
the truth, read again at send time). A later step of the same diagnosis moves it later (ZADD overwrites
the score). The clock claims what is due with a lease (the score becomes the lease's end: another clock
does not see it until then), queues the push with its ledger mark, then acknowledges it (removed only if
the score is still this claim's lease: a step that moved it since keeps it), or defers it (a push held
by the budget: due again when the next month opens, noted in :data:`conversations.keys.NUDGE_HELD`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from conversations import keys
from conversations.errors import InvalidInput
from conversations.keys import Subject
from conversations.redis_ops import runner, text
from conversations.transports import Transport

LEASE = 60.0  # seconds a claimed nudge stays handed out before it is due again

# Claim what is due.  KEYS[1] the schedule  KEYS[2] the held nudges (hash).
# ARGV[1] now  ARGV[2] at most this many  ARGV[3] the lease's end.
# Returns a flat list: member, the month it was held in ("" never held), ...
CLAIM_LUA = """
local out = {}
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))) do
  redis.call('ZADD', KEYS[1], ARGV[3], m)
  out[#out + 1] = m
  out[#out + 1] = redis.call('HGET', KEYS[2], m) or ''
end
return out
"""

# Done with a claim: off the schedule, unless a step moved it since (its score is no longer the lease).
# KEYS[1] the schedule  KEYS[2] the held nudges.  ARGV[1] member  ARGV[2] the claim's lease end.
# Returns 1 when removed.
ACK_LUA = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) == tonumber(ARGV[2]) then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
  return 1
end
return 0
"""

# Held by the budget: due again at ARGV[3] (the next month's opening), noted as held in month ARGV[4],
# unless a step moved it since.  KEYS, ARGV[1..2] as ACK_LUA.  Returns 1 when deferred.
DEFER_LUA = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) == tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[4])
  return 1
end
return 0
"""


@dataclass(frozen=True)
class DueNudge:
    """A diagnosis handed out by :meth:`NudgeSchedule.claim`: its user, number and start, and the claim."""

    member: str
    subject: Subject
    sid: int
    begun: float  # seconds (from the member's milliseconds)
    lease: float  # its score while claimed (what ack and defer check)
    held: str  # the month a budget held it in ("" never held)

    @property
    def ledger_key(self) -> str:
        return keys.nudge_sent(self.subject, self.sid, self.begun)


def parse_member(member: str) -> tuple[Subject, int, float]:
    ref, sid, ms = member.split("|")
    transport, user_id = ref.split(":", 1)
    return Subject(Transport.parse(transport), user_id), int(sid), int(ms) / 1000


class NudgeSchedule:
    """The schedule over a redis-py client (the clock's pass); every call one script."""

    def __init__(self, client: Any, *, lease: float = LEASE) -> None:
        self.r = runner(client)
        self.lease = lease
        self._claim = self.r.script(CLAIM_LUA)
        self._ack = self.r.script(ACK_LUA)
        self._defer = self.r.script(DEFER_LUA)

    def due(self, now: float) -> list[str]:
        """What is due at ``now`` (a dry run: nothing claimed)."""
        return [text(m) for m in self.r.zrangebyscore(keys.NUDGE_DUE, "-inf", repr(float(now)))]

    def claim(self, now: float, limit: int = 100) -> list[DueNudge]:
        until = round(now + self.lease, 3)
        reply = [text(x) for x in self._claim(keys=[keys.NUDGE_DUE, keys.NUDGE_HELD],
                                               args=[repr(float(now)), str(int(limit)), repr(until)])]
        out = []
        for member, held in zip(reply[::2], reply[1::2], strict=True):
            try:
                subject, sid, begun = parse_member(member)
            except (ValueError, InvalidInput):
                self.r.zrem(keys.NUDGE_DUE, member)  # not ours to read: dropped
                continue
            out.append(DueNudge(member, subject, sid, begun, until, held))
        return out

    def ack(self, due: DueNudge) -> bool:
        return bool(self._ack(keys=[keys.NUDGE_DUE, keys.NUDGE_HELD], args=[due.member, repr(due.lease)]))

    def defer(self, due: DueNudge, until: float, month: str) -> bool:
        return bool(self._defer(keys=[keys.NUDGE_DUE, keys.NUDGE_HELD],
                                args=[due.member, repr(due.lease), repr(float(until)), month]))
