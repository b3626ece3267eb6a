"""LINE's message quota for this month, as the delivery page shows it.

The web tier never calls LINE on a webhook. This is the one exception, and only for an operator
looking at the delivery page: the figures are read with the app's LINE quota reader (``Services.line_quota``:
:func:`bot.line.quota.quota_reader`, the clock's too, each request bounded by a timeout) at most once every
``TTL`` seconds for all web processes, the answer kept in Redis; a failed read is remembered for
``FAILED_TTL`` seconds, so LINE being down costs one slow page view a minute, not one per view.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from conversations import keys
from conversations.redis_ops import runner

log = logging.getLogger(__name__)

CACHE_KEY = "crmbot:{console}:line-quota"
TTL = 300
FAILED_TTL = 60


@dataclass(frozen=True)
class Quota:
    ok: bool  # False: LINE could not be read (the other fields are 0 / None)
    limit: int | None  # None: no monthly limit (LINE's "none")
    used: int
    read_at: float

    @property
    def left(self) -> int | None:
        return None if self.limit is None else max(0, self.limit - self.used)


def read_quota(client: Any, reader: Callable[[], Any] | None, clock: Callable[[], float]) -> Quota | None:
    """The cached quota; None when LINE is not configured (no reader). ``reader``: answers the month's
    ``limit`` (None: no limit) and ``used`` (bot.line.quota.LineQuota), or raises."""
    if reader is None:
        return None
    r = runner(client)
    cached = r.get(CACHE_KEY)
    if cached is not None:
        return Quota(**json.loads(cached))
    now = clock()
    try:
        figures = reader()
        found = Quota(True, figures.limit, int(figures.used), now)
    except Exception as e:  # any failure of LINE or the network (a timeout too): shown as "could not be read"
        log.warning("console: LINE message quota not read: %s", type(e).__name__)
        found = Quota(False, None, 0, now)
    r.set(CACHE_KEY, json.dumps(asdict(found)), ex=TTL if found.ok else FAILED_TTL)
    return found


def reply_unknown_counts(client: Any, now: float, days: int = 30) -> dict[str, int]:
    """LINE replies whose outcome was unknown when their window closed, in the last ``days`` days, by
    what the policy (CRMBOT_REPLY_UNKNOWN) did: ``pushed`` again with a note, or ``parked``."""
    with runner(client).pipeline(transaction=False) as p:
        for outcome in keys.REPLY_UNKNOWN_OUTCOMES:
            p.zcount(keys.reply_unknown(outcome), now - days * 86400, "+inf")
        counts = p.execute()
    return {outcome: int(n) for outcome, n in zip(keys.REPLY_UNKNOWN_OUTCOMES, counts, strict=True)}
