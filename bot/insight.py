"""LINE's statistics per aggregation unit, read once a day by the worker, for the console's nurture page.

Every push of a follow-up step or a nudge names a custom aggregation unit (``fu_q<N>_<step>``, ``nudge_q<N>``:
``LineState.unit``). Once a day (from :data:`RUN_HOUR` Japan time) one worker, whichever claims the day first,
asks LINE for the units used this month (``GET /v2/bot/message/aggregation/list``, every page) and, for each
unit listed now or within the last :data:`LOOKBACK_DAYS` days, its figures per Japan-time day
(``GET /v2/bot/insight/message/event/aggregation``, ``from`` = ``to`` = the day) for each of the last
:data:`LOOKBACK_DAYS` days up to yesterday not yet fetched, and the last :data:`REFETCH_DAYS` days again
(LINE's figures for a day settle only after a delay). Kept per unit per day: ``overview.uniqueImpression``
(opened) and ``overview.uniqueClick`` (clicked), a count LINE withholds for privacy (``null``) kept as None,
never as 0; days older than :data:`KEEP_DAYS` trimmed. "Delivered" is not in LINE's figures: the LINE
transport records each push LINE accepted with a unit (:func:`record_sent`, by job id: a retry counts once).

The first pass is due at the first RUN_HOUR after a worker first looks (a new deployment has nothing to read yet).
Once a day across all workers and crashes: the claim (:data:`CLAIM_LUA`) takes the day's pass with a lease
(Unix times in Redis, compared with the caller's clock); the pass ends by setting when the next is due
(:data:`DONE_LUA`: tomorrow's RUN_HOUR, or :data:`RETRY_AFTER` later when LINE failed), so a second worker
finds nothing to do, and a worker that dies mid-pass leaves the claim to run out: another takes it then.
LINE's errors are logged (the request, its status and ``x-line-request-id``; never the token) and the pass
tried again later; nothing here raises into the worker but a Redis outage (the worker's chores loop logs it).

The LINE side (the SDK) is the adapter's (:mod:`bot.line.insight`, an :class:`InsightSource`); this module is
core: Redis and time only.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from conversations import keys
from conversations.errors import CrmbotError
from conversations.redis_ops import async_runner, runner, text
from scoring.periods import DEFAULT_TZ, zone

log = logging.getLogger(__name__)
KEEP_DAYS = 400  # a unit's days kept (and its pushes counted): a year and a month of figures
LOOKBACK_DAYS = 35  # the days of a unit looked at in a pass (fetched if missing), and how long a unit is followed
REFETCH_DAYS = 3  # the last days fetched again in every pass: LINE's figures for a day settle after a delay
RUN_HOUR = 6  # the daily pass is due from 06:00 Japan time
RETRY_AFTER = 15 * 60  # seconds before a pass LINE failed (or one cut short at MAX_CALLS) is tried again
LEASE = 15 * 60  # seconds a claimed pass is its worker's; after that another may take it (a crash)
MAX_CALLS = 600  # requests to LINE in one pass at most; the rest in the next pass
DAY = 86400


# KEYS[1] the run hash (keys.INSIGHT_RUN). ARGV: now, the claimant's token, the lease (seconds), when the first
# pass is due (none has run yet: the next RUN_HOUR). 1: claimed (due, and no live claim); 0: not due, or another
# worker holds it.
CLAIM_LUA = """
local now = tonumber(ARGV[1])
local due = redis.call('HGET', KEYS[1], 'next')
if not due then
  redis.call('HSET', KEYS[1], 'next', ARGV[4])
  due = ARGV[4]
end
if now < tonumber(due) then return 0 end
if now < tonumber(redis.call('HGET', KEYS[1], 'until') or '0') then return 0 end
redis.call('HSET', KEYS[1], 'owner', ARGV[2], 'until', now + tonumber(ARGV[3]))
return 1
"""

# KEYS[1] the run hash. ARGV: the claimant's token, when the next pass is due.
# 1: done; 0: the claim was no longer this worker's (its lease ran out and another took it): nothing changed.
DONE_LUA = """
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'next', ARGV[2], 'until', 0)
redis.call('HDEL', KEYS[1], 'owner')
return 1
"""

# KEYS[1] a unit's days (keys.insight_days), KEYS[2] the units followed (keys.INSIGHT_UNITS).
# ARGV: the day (YYYYMMDD), its figures (JSON), the oldest day kept (YYYYMMDD), the TTL (seconds), the unit, now.
STORE_LUA = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
for _, day in ipairs(redis.call('HKEYS', KEYS[1])) do
  if day < ARGV[3] then redis.call('HDEL', KEYS[1], day) end
end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
local seen = tonumber(redis.call('ZSCORE', KEYS[2], ARGV[5]) or '0')
if tonumber(ARGV[6]) > seen then redis.call('ZADD', KEYS[2], ARGV[6], ARGV[5]) end
return 1
"""

# KEYS[1] a unit's pushes (keys.insight_sent), KEYS[2] the units followed.
# ARGV: the job id, now, the oldest time kept, the TTL (seconds), the unit.
SENT_LUA = """
redis.call('ZADD', KEYS[1], 'NX', ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[3])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
local seen = tonumber(redis.call('ZSCORE', KEYS[2], ARGV[5]) or '0')
if tonumber(ARGV[2]) > seen then redis.call('ZADD', KEYS[2], ARGV[2], ARGV[5]) end
return 1
"""

# KEYS[1] the units followed. ARGV: now, the oldest time kept, then the units LINE listed.
LISTED_LUA = """
for i = 3, #ARGV do redis.call('ZADD', KEYS[1], ARGV[1], ARGV[i]) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[2])
return 1
"""


@dataclass(frozen=True)
class DayFigures:
    """One unit's figures for one day; None: LINE withheld the count (too few people to show)."""

    opened: int | None  # people who opened the message (overview.uniqueImpression)
    clicked: int | None  # people who opened a link in it (overview.uniqueClick)

    def to_json(self, fetched_at: float) -> str:
        return json.dumps({"opened": self.opened, "clicked": self.clicked, "at": round(fetched_at)})

    @classmethod
    def from_json(cls, raw: Any) -> DayFigures:
        d = json.loads(text(raw))
        return cls(_count(d.get("opened")), _count(d.get("clicked")))


def _count(v: Any) -> int | None:
    return int(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


class InsightError(CrmbotError):
    """LINE refused or did not answer a statistics request. ``status`` None: no answer (timeout, network)."""

    def __init__(self, what: str, status: int | None, request_id: str = "-", detail: str = "") -> None:
        super().__init__(f"{what}: {'HTTP ' + str(status) if status else detail or 'no answer'}")
        self.what, self.status, self.request_id = what, status, request_id

    @property
    def later(self) -> bool:
        """Worth asking again soon: no answer, rate limited or LINE's own failure (not a refusal of the request)."""
        return self.status is None or self.status == 429 or self.status >= 500


class InsightSource(Protocol):
    """LINE's side (bot.line.insight.LineInsight): raises :class:`InsightError` for any failed request."""

    async def units(self) -> list[str]: ...

    async def day(self, unit: str, day: str) -> DayFigures: ...

    async def close(self) -> None: ...


def jst_day(t: float) -> date:
    return datetime.fromtimestamp(t, zone(DEFAULT_TZ)).date()


def day_start(d: date) -> float:
    """The Unix time a Japan-time day begins."""
    return datetime(d.year, d.month, d.day, tzinfo=zone(DEFAULT_TZ)).timestamp()


def ymd(d: date) -> str:
    return d.strftime("%Y%m%d")


def next_run(now: float) -> float:
    """The next RUN_HOUR (Japan time) after ``now``."""
    today = datetime.fromtimestamp(now, zone(DEFAULT_TZ)).replace(hour=RUN_HOUR, minute=0, second=0, microsecond=0)
    at = today.timestamp()
    return at if at > now else (today + timedelta(days=1)).timestamp()


def days_to_fetch(have: Iterable[str], yesterday: date) -> list[str]:
    """The days of a unit to ask LINE for, oldest first: those of the look-back not stored, and the last few."""
    stored = set(have)
    days = [yesterday - timedelta(days=i) for i in range(LOOKBACK_DAYS)]
    return [ymd(d) for i, d in reversed(list(enumerate(days))) if i < REFETCH_DAYS or ymd(d) not in stored]


class InsightChore:
    """The worker's chore (bot/app.py wires it when LINE is configured): the day's pass, once across workers."""

    def __init__(self, source: InsightSource, *, clock: Callable[[], float] = time.time) -> None:
        self.source = source
        self.clock = clock
        self.token = uuid.uuid4().hex  # this worker's claims

    async def __call__(self, redis: Any) -> int:
        """Run the day's pass if it is due and this worker claims it. Returns the unit-days stored."""
        r = async_runner(redis)
        now = self.clock()
        if not await r.script(CLAIM_LUA)([keys.INSIGHT_RUN], [now, self.token, LEASE, next_run(now)]):
            return 0
        try:
            stored, complete = await self._pass(r, now)
        finally:
            await self.source.close()
        due = next_run(now) if complete else now + RETRY_AFTER
        await r.script(DONE_LUA)([keys.INSIGHT_RUN], [self.token, due])
        log.info("insight: %d unit-day(s) stored; next pass at %s", stored,
                 datetime.fromtimestamp(due, zone(DEFAULT_TZ)).isoformat(timespec="minutes"))
        return stored

    async def _pass(self, r: Any, now: float) -> tuple[int, bool]:
        """(unit-days stored, whether the pass got everything it should)."""
        try:
            listed = [u for u in await self.source.units() if keys.valid_unit(u)]
        except InsightError as e:
            _warn(e)
            return 0, False
        await r.script(LISTED_LUA)([keys.INSIGHT_UNITS], [now, now - KEEP_DAYS * DAY, *listed])
        followed = [text(u) for u in await r.zrangebyscore(keys.INSIGHT_UNITS, now - LOOKBACK_DAYS * DAY, "+inf")]
        yesterday = jst_day(now) - timedelta(days=1)
        oldest = ymd(jst_day(now) - timedelta(days=KEEP_DAYS))
        stored = calls = 0
        for unit in sorted(u for u in followed if keys.valid_unit(u)):
            have = [text(d) for d in await r.hkeys(keys.insight_days(unit))]
            for day in days_to_fetch(have, yesterday):
                if calls >= MAX_CALLS:
                    return stored, False
                calls += 1
                try:
                    figures = await self.source.day(unit, day)
                except InsightError as e:
                    _warn(e, unit)
                    if e.later:
                        return stored, False
                    break  # LINE refused this unit's request: the next unit (this one again tomorrow)
                await r.script(STORE_LUA)([keys.insight_days(unit), keys.INSIGHT_UNITS],
                                          [day, figures.to_json(now), oldest, KEEP_DAYS * DAY, unit, now])
                stored += 1
        return stored, True


def _warn(e: InsightError, unit: str = "") -> None:
    log.warning("insight: %s%s failed (%s; x-line-request-id %s); tried again %s", e.what,
                f" for {unit}" if unit else "", e, e.request_id, "soon" if e.later else "tomorrow")


async def record_sent(redis: Any, unit: str, job_id: str, now: float) -> None:
    """A push with a custom aggregation unit that LINE accepted (called by the LINE transport): counted once per
    job, kept KEEP_DAYS; the unit followed from now on."""
    if not keys.valid_unit(unit):
        return
    await async_runner(redis).script(SENT_LUA)([keys.insight_sent(unit), keys.INSIGHT_UNITS],
                                               [job_id, now, now - KEEP_DAYS * DAY, KEEP_DAYS * DAY, unit])


# ---- reading (the console's nurture page) ---------------------------------------------------------------------


@dataclass(frozen=True)
class UnitFigures:
    """One unit over a period. ``opened``/``clicked`` None: LINE withheld the count on at least one of its days
    (a sum of known days would say too little); ``days`` the days LINE's figures are in for (0: none yet)."""

    unit: str
    delivered: int
    opened: int | None
    clicked: int | None
    days: int

    def rate(self, count: int | None) -> float | None:
        """``count`` per delivered push; None when withheld or nothing was delivered."""
        return None if count is None or not self.delivered else count / self.delivered


def period_figures(client: Any, start: date, end: date) -> list[UnitFigures]:
    """Every unit sent or counted in ``start``..``end`` (Japan time, inclusive): delivered, opened, clicked, by name
    (the units followed since ``start`` looked at: one last listed, sent or stored before has nothing then)."""
    r = runner(client)
    since, until = day_start(start), day_start(end + timedelta(days=1))
    units = [text(u) for u in r.zrangebyscore(keys.INSIGHT_UNITS, since, "+inf")]
    units = sorted(u for u in units if keys.valid_unit(u))
    if not units:
        return []
    with r.pipeline() as p:
        for unit in units:
            p.hgetall(keys.insight_days(unit))
            p.zcount(keys.insight_sent(unit), since, f"({until}")
        answers = p.execute()
    first, last = ymd(start), ymd(end)
    out = []
    for i, unit in enumerate(units):
        days = [DayFigures.from_json(v) for k, v in answers[2 * i].items() if first <= text(k) <= last]
        if not days and not int(answers[2 * i + 1]):
            continue  # neither sent nor counted in the period
        out.append(UnitFigures(unit, int(answers[2 * i + 1]), _total(d.opened for d in days),
                               _total(d.clicked for d in days), len(days)))
    return out


def _total(counts: Iterable[int | None]) -> int | None:
    total = 0
    for c in counts:
        if c is None:
            return None
        total += c
    return total
