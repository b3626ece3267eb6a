"""Rate limits shared by every worker, kept in Redis (GCRA: one timestamp per limit).

The APIs limit per LINE channel and per Slack workspace and channel, whatever number of worker
processes send; so the pacing lives in Redis, where all of them see it. A limit of ``rate``
requests a second with bursts of ``burst`` keeps one number, its *theoretical arrival time* (TAT).
:meth:`SharedLimiter.reserve` takes the next slot and answers how long to wait before using it:
callers go in the order they asked, a waiting caller holds its slot. :meth:`SharedLimiter.hold` is
for a server that answered 429 with Retry-After: no slot before then.

Time comes from the worker's clock (``time.time`` in production, injected in tests), so workers on
several machines need their clocks in step (NTP); a skew of ``s`` seconds shifts the pacing by ``s``.
A limit whose next slot lies over an hour ahead is taken for a clock that went back, and reset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from conversations.keys import PREFIX
from conversations.redis_ops import async_runner

# Retry-After is honoured up to this long; a longer or a senseless one (negative, not finite, not a
# number) is not trusted: the caller's own backoff applies instead.
MAX_RETRY_AFTER = 300.0

# Reserve the next slot of a limit, unless it is further away than the caller will wait.
# KEYS[1] the limit's TAT (string, seconds)   crmbot:{rl:<name>}
# ARGV[1] now, ARGV[2] seconds per request (1/rate), ARGV[3] burst (requests at once),
# ARGV[4] the longest wait the caller accepts (seconds)
# Returns {taken (1 or 0), the seconds to wait before the slot (a string)}: with 0 nothing was
# reserved (no slot is wasted by a caller who comes back later instead of waiting).
RESERVE_LUA = """
local now = tonumber(ARGV[1])
local step = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now or tat > now + 3600 then tat = now end  -- over an hour ahead: a clock that went back
local new_tat = tat + step
local wait = new_tat - burst * step - now
if wait < 0 then wait = 0 end
if wait > tonumber(ARGV[4]) then return {0, string.format('%.6f', wait)} end
redis.call('SET', KEYS[1], string.format('%.6f', new_tat), 'PX', math.ceil((new_tat - now) * 1000) + 1000)
return {1, string.format('%.6f', wait)}
"""

# Hold a limit: no slot before now + seconds.
# KEYS[1] the limit's TAT; ARGV[1] now, ARGV[2] seconds, ARGV[3] seconds per request, ARGV[4] burst
# Returns "1".
HOLD_LUA = """
local now = tonumber(ARGV[1])
local want = now + tonumber(ARGV[2]) + (tonumber(ARGV[4]) - 1) * tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < want then tat = want end
redis.call('SET', KEYS[1], string.format('%.6f', tat), 'PX', math.ceil((tat - now) * 1000) + 1000)
return '1'
"""


@dataclass(frozen=True)
class Limit:
    """``rate`` requests a second, ``burst`` at once."""

    rate: float
    burst: float = 1.0

    def __post_init__(self) -> None:
        if not (0 < self.rate < math.inf):
            raise ValueError(f"rate must be positive (got {self.rate!r})")
        if not (1 <= self.burst < math.inf):
            raise ValueError(f"burst must be at least 1 (got {self.burst!r})")


def limit_key(name: str) -> str:
    return f"{PREFIX}:{{rl:{name}}}"


def retry_after(value: Any) -> float | None:
    """A Retry-After header as seconds, or None when absent or not to be trusted."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, MAX_RETRY_AFTER)


class SharedLimiter:
    """Limits in Redis, used from a worker's event loop (a redis.asyncio client, through its runner)."""

    def __init__(self, client: Any) -> None:
        self.r = async_runner(client)
        self._reserve = self.r.script(RESERVE_LUA)
        self._hold = self.r.script(HOLD_LUA)

    async def reserve(self, name: str, limit: Limit | None, now: float,
                      max_wait: float = math.inf) -> tuple[bool, float]:
        """Take the next slot of ``name`` if it is at most ``max_wait`` seconds away. Returns (taken, the
        seconds to wait before the slot): not taken, nothing is reserved, and the caller comes back later
        (a caller who reserved and then gave up would waste the slot for everyone)."""
        if limit is None:
            return True, 0.0
        cap = max_wait if math.isfinite(max_wait) else 1e12
        taken, wait = await self._reserve(keys=[limit_key(name)],
                                          args=[repr(now), repr(1.0 / limit.rate), limit.burst, repr(cap)])
        return bool(int(taken)), float(wait)

    async def hold(self, name: str, limit: Limit | None, now: float, seconds: float) -> None:
        """The server refused for ``seconds``: nobody gets a slot of ``name`` before then."""
        if limit is None or seconds <= 0:
            return
        await self._hold(keys=[limit_key(name)], args=[repr(now), repr(seconds), repr(1.0 / limit.rate), limit.burst])
