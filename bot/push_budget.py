"""The push budget (``CRMBOT_PUSH_BUDGET_MONTH``): messages a calendar month (Japan time) that pushes may cost.

Pushes cost the account money (replies are free), so a push the owner did not ask for (a drop-off nudge,
later a follow-up) asks :meth:`PushBudget.reserve` first: allowed, or *held* (not sent, not lost: its caller
keeps it and tries again when the next month opens, see :func:`next_month_opens`) when sending it would go
over the budget or over what LINE says is left of the month's quota. Reminders the owner asked for (the
quarterly retake, booking reminders) come first: they are never held but are counted all the same
(``must=True``). A held push that is no longer relevant when its month comes is dropped with a reason
(:meth:`PushBudget.dropped`: logged and counted).

One hash per month (:func:`conversations.keys.push_budget`, slot ``{budget}``): ``n`` the messages counted,
``k:<kind>`` per kind, ``j:<job id>`` each push counted (a reservation is idempotent by its job id: a clock
that dies after reserving and a second that reserves again count it once), ``held:<kind>`` and
``dropped:<kind>``. The console's delivery page shows it (:meth:`PushBudget.usage`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from conversations import keys
from conversations.redis_ops import runner, text
from scoring.periods import DEFAULT_TZ, zone

log = logging.getLogger(__name__)
TTL = 400 * 86400  # a month's hash is kept a year for the console, then expires
OPENING_HOUR = 0  # a held push is due again at 00:00 of the 1st (the sender's own hours then apply)

# Reserve n messages for one push.  KEYS[1] the month's hash.
# ARGV[1] the job id  ARGV[2] kind  ARGV[3] n  ARGV[4] the budget ("" none)  ARGV[5] "1": asked for by the
# owner (never held)  ARGV[6] the hash's TTL (seconds)  ARGV[7] messages LINE says are left ("" unknown)
# Returns 1 allowed (counted now or already), 0 held by the budget, -1 held by LINE's quota.
RESERVE_LUA = """
local field = 'j:' .. ARGV[1]
if redis.call('HEXISTS', KEYS[1], field) == 1 then return 1 end
local n = tonumber(ARGV[3])
if ARGV[5] ~= '1' then
  local used = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
  local held = 0
  if ARGV[4] ~= '' and used + n > tonumber(ARGV[4]) then held = 0
  elseif ARGV[7] ~= '' and n > tonumber(ARGV[7]) then held = -1
  else held = 1 end
  if held ~= 1 then
    if redis.call('HSETNX', KEYS[1], 'h:' .. ARGV[1], '1') == 1 then
      redis.call('HINCRBY', KEYS[1], 'held:' .. ARGV[2], 1)
    end
    redis.call('EXPIRE', KEYS[1], ARGV[6])
    return held
  end
end
redis.call('HSET', KEYS[1], field, n)
redis.call('HINCRBY', KEYS[1], 'n', n)
redis.call('HINCRBY', KEYS[1], 'k:' .. ARGV[2], n)
redis.call('EXPIRE', KEYS[1], ARGV[6])
return 1
"""

ALLOWED, HELD_BUDGET, HELD_QUOTA = 1, 0, -1


def month_of(now: float, tz: str = DEFAULT_TZ) -> str:
    """The calendar month of ``now`` in ``tz``: "2026-12"."""
    return datetime.fromtimestamp(now, zone(tz)).strftime("%Y-%m")


def next_month_opens(now: float, tz: str = DEFAULT_TZ) -> float:
    """00:00 of the 1st of the month after ``now``'s, in ``tz``."""
    local = datetime.fromtimestamp(now, zone(tz))
    year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
    return datetime(year, month, 1, OPENING_HOUR, tzinfo=zone(tz)).timestamp()


@dataclass(frozen=True)
class Usage:
    """One month's pushes, for the console: messages by kind against the budget."""

    month: str
    budget: int | None
    used: int
    by_kind: dict[str, int]
    held: dict[str, int]
    dropped: dict[str, int]


class PushBudget:
    """The month's budget over a redis-py client. ``limit`` None: no budget (pushes are still counted)."""

    def __init__(self, client: Any, limit: int | None, *, tz: str = DEFAULT_TZ) -> None:
        self.r = runner(client)
        self.limit = limit
        self.tz = tz
        self._reserve = self.r.script(RESERVE_LUA)

    def reserve(self, job_id: str, kind: str, now: float, *, n: int = 1, must: bool = False,
                quota_left: float = math.inf) -> int:
        """Count ``n`` messages of one push (idempotent by ``job_id``): ALLOWED, or HELD_BUDGET / HELD_QUOTA
        (nothing counted but the hold). ``must``: asked for by the owner, never held."""
        left = "" if math.isinf(quota_left) else str(max(0, int(quota_left)))
        return int(self._reserve(keys=[keys.push_budget(month_of(now, self.tz))],
                                 args=[job_id, kind, int(n), "" if self.limit is None else int(self.limit),
                                       "1" if must else "0", TTL, left]))

    def dropped(self, kind: str, now: float, reason: str) -> None:
        """A held push no longer relevant when it could go: counted in this month, and logged."""
        key = keys.push_budget(month_of(now, self.tz))
        with self.r.pipeline(transaction=False) as p:
            p.hincrby(key, f"dropped:{kind}", 1)
            p.expire(key, TTL)
            p.execute()
        log.info("push budget: a held %s dropped: %s", kind, reason)

    def usage(self, now: float) -> Usage:
        month = month_of(now, self.tz)
        raw = {text(k): int(text(v)) for k, v in self.r.hgetall(keys.push_budget(month)).items()
               if not text(k).startswith(("j:", "h:"))}

        def part(prefix: str) -> dict[str, int]:
            return {k[len(prefix):]: v for k, v in sorted(raw.items()) if k.startswith(prefix)}

        return Usage(month, self.limit, raw.get("n", 0), part("k:"), part("held:"), part("dropped:"))
