"""LINE's message quota for this month: the one reader, for the clock's reminder pass and the console.

Two requests to the Messaging API (the month's limit, and what was used of it), each tried once and
bounded by ``timeout`` (total: connecting, sending, waiting, reading): a stalled LINE API costs a
caller at most twice that, then an error. The reminder pass reads it before queueing LINE reminders (its clock lock
is renewed meanwhile, so an unbounded read would hold up every reminder); the console's delivery
page shows it (cached in Redis there, :mod:`bot.console.quota`). The callers get the reader from
:mod:`bot.app`, so neither imports this package.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

TIMEOUT = 5.0  # seconds each of the two requests may take


@dataclass(frozen=True)
class LineQuota:
    limit: int | None  # None: no monthly limit (LINE's "none")
    used: int

    @property
    def left(self) -> float:
        """Messages that may still go out this month (math.inf without a limit)."""
        return math.inf if self.limit is None else max(0, self.limit - self.used)


QuotaReader = Callable[[], LineQuota]


def quota_reader(host: str, token: str, *, timeout: float = TIMEOUT) -> QuotaReader:
    """A reader of the channel's quota: each call asks LINE (two requests, each at most ``timeout``
    seconds) and raises on any failure of LINE or the network (a timeout included)."""
    from linebot.v3.messaging import ApiClient, Configuration, MessagingApi

    from bot.line.answers import call_sync

    configuration = Configuration(host=host, access_token=token)
    configuration.retries = False  # urllib3 would retry a timed-out GET three times: one try, one timeout
    api = MessagingApi(ApiClient(configuration))

    def read() -> LineQuota:
        quota = call_sync("quota", api.get_message_quota, _request_timeout=timeout)
        used = int(call_sync("quota consumption", api.get_message_quota_consumption,
                             _request_timeout=timeout).total_usage)
        limit = int(quota.value) if quota.type == "limited" and quota.value is not None else None
        return LineQuota(limit, used)

    return read
