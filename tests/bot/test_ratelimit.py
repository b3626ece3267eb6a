"""Rate limits shared in Redis (bot.ratelimit): GCRA reservations, holds, Retry-After, configuration."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from typing import Any

import pytest
import redis.asyncio as aredis

from bot.config import Config
from bot.ratelimit import MAX_RETRY_AFTER, Limit, SharedLimiter, retry_after
from conversations.errors import ConfigError


@pytest.fixture
def limiter(r: Any, redis_url: str) -> Iterator[tuple[SharedLimiter, asyncio.AbstractEventLoop]]:
    loop = asyncio.new_event_loop()
    client = aredis.Redis.from_url(redis_url)
    yield SharedLimiter(client), loop
    loop.run_until_complete(client.aclose())
    loop.close()


def reserve_many(limiter: tuple[SharedLimiter, asyncio.AbstractEventLoop], name: str, limit: Limit | None,
                 now: float, n: int) -> list[float]:
    lim, loop = limiter
    return [loop.run_until_complete(lim.reserve(name, limit, now))[1] for _ in range(n)]


def test_a_burst_goes_at_once_then_requests_are_spaced_by_the_rate(limiter) -> None:
    waits = reserve_many(limiter, "t", Limit(10.0, 3.0), 1000.0, 6)
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert waits[3:] == pytest.approx([0.1, 0.2, 0.3])


def test_the_limit_refills_with_time(limiter) -> None:
    reserve_many(limiter, "t", Limit(2.0, 1.0), 1000.0, 3)  # slots at 1000, 1000.5, 1001
    assert reserve_many(limiter, "t", Limit(2.0, 1.0), 1010.0, 1) == [0.0]


def test_two_workers_share_one_limit(limiter, redis_url: str) -> None:
    """Two limiters (two worker processes) on the same key: together they keep the rate."""
    lim, loop = limiter
    other_client = aredis.Redis.from_url(redis_url)
    other = SharedLimiter(other_client)
    limit = Limit(1.0, 1.0)
    try:
        waits = [loop.run_until_complete((lim if i % 2 else other).reserve("slack:ch:T:C", limit, 50.0))[1]
                 for i in range(4)]
    finally:
        loop.run_until_complete(other_client.aclose())
    assert waits == pytest.approx([0.0, 1.0, 2.0, 3.0])


def test_limits_are_separate_per_key(limiter) -> None:
    assert reserve_many(limiter, "slack:ch:T:C1", Limit(1.0), 5.0, 2)[1] == pytest.approx(1.0)
    assert reserve_many(limiter, "slack:ch:T:C2", Limit(1.0), 5.0, 1) == [0.0]


def test_hold_makes_everyone_wait_for_retry_after(limiter) -> None:
    lim, loop = limiter
    loop.run_until_complete(lim.hold("t", Limit(100.0, 5.0), 10.0, 7.0))
    assert reserve_many(limiter, "t", Limit(100.0, 5.0), 10.0, 1)[0] == pytest.approx(7.0, abs=0.02)


def test_no_limit_never_waits(limiter) -> None:
    assert reserve_many(limiter, "t", None, 1.0, 50) == [0.0] * 50


@pytest.mark.parametrize(("value", "expected"), [("7", 7.0), ("0", 0.0), (" 2.5", 2.5), (None, None), ("", None),
                                                 ("soon", None), ("-1", None), ("inf", None), ("nan", None),
                                                 ("1e400", None), ("86400", MAX_RETRY_AFTER)])
def test_retry_after_is_checked_and_capped(value: Any, expected: float | None) -> None:
    assert retry_after(value) == expected


@pytest.mark.parametrize("rate", [0.0, -1.0, math.inf, math.nan])
def test_a_limit_needs_a_positive_finite_rate(rate: float) -> None:
    with pytest.raises(ValueError):
        Limit(rate)


def test_rates_come_from_the_configuration() -> None:
    cfg = Config.from_env({"LINE_RATE_PER_SECOND": "150", "LINE_PUSH_RATE_PER_SECOND": "off",
                           "SLACK_RATE_PER_SECOND": "0.5", "SLACK_RATE_BURST": "3"})
    assert (cfg.line_multicast_rate, cfg.line_push_rate, cfg.slack_rate, cfg.slack_burst) == (150.0, None, 0.5, 3.0)
    defaults = Config.from_env({})
    assert (defaults.line_multicast_rate, defaults.line_push_rate, defaults.slack_rate) == (200.0, 2000.0, 1.0)


@pytest.mark.parametrize(("name", "value"), [("LINE_RATE_PER_SECOND", "fast"), ("SLACK_RATE_PER_SECOND", "-2"),
                                             ("SLACK_RATE_BURST", "0.5"), ("LINE_PUSH_RATE_PER_SECOND", "inf")])
def test_a_bad_rate_names_its_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Config.from_env({name: value})


def test_a_slot_further_than_the_caller_waits_is_not_taken(limiter) -> None:
    """A caller who will not wait that long takes nothing: the next caller's slot is not pushed back."""
    lim, loop = limiter
    limit = Limit(1.0, 1.0)
    assert loop.run_until_complete(lim.reserve("t", limit, 100.0, 5.0)) == (True, 0.0)
    for _ in range(5):
        assert loop.run_until_complete(lim.reserve("t", limit, 100.0, 5.0))[0] is True  # 1 .. 5 s away
    taken, wait = loop.run_until_complete(lim.reserve("t", limit, 100.0, 5.0))
    assert (taken, wait) == (False, pytest.approx(6.0))
    taken, wait = loop.run_until_complete(lim.reserve("t", limit, 100.0, 5.0))
    assert (taken, wait) == (False, pytest.approx(6.0))  # still 6: the refusal reserved nothing
