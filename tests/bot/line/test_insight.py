"""LINE's statistics per aggregation unit (bot/insight.py), read by the worker's daily chore through the fake LINE
API (every request checked against LINE's insight.yml and messaging-api.yml), on the suite's real Redis and an
injected clock: once a day across two workers (and across a crash), each unit's days not yet fetched plus the
last few again (a refetch updates a day), withheld counts kept as None, LINE's errors logged without secrets and
the pass tried again later; a nudge LINE accepted counted as delivered once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from datetime import date
from typing import Any
from urllib.parse import parse_qs

import pytest
import redis.asyncio as aioredis

from bot.insight import LOOKBACK_DAYS, REFETCH_DAYS, DayFigures, InsightChore, period_figures, record_sent
from bot.line.insight import LineInsight
from bot.line.transport import LineApi
from conversations import keys
from tests.bot.line.conftest import LineEnv
from tests.bot.line.helpers import TOKEN
from tests.bot.line.test_nudges import at, nudge_line, nudges, remind, stop_at_q4  # noqa: F401 (a fixture)
from tests.conftest import FakeClock
from tests.fakes.line_api import AGGREGATION_LIST, INSIGHT_UNIT, FakeLineApi


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(at("2026-12-07T03:00"))


class Crashing:
    """A LINE side that dies mid-pass (a worker process killed while it reads)."""

    async def units(self) -> list[str]:
        raise RuntimeError("the process died")

    async def day(self, unit: str, day: str) -> DayFigures:
        raise AssertionError("never reached")

    async def close(self) -> None:
        pass


def run(redis_url: str, fake: FakeLineApi, clock: FakeClock, workers: int = 1, source: Any = None) -> list[Any]:
    """``workers`` worker processes' chores at the same instant, each with its own Redis client and LINE client."""
    async def go() -> list[Any]:
        apis = [LineApi(fake.base_url, TOKEN) for _ in range(workers)]
        clients = [aioredis.Redis.from_url(redis_url) for _ in range(workers)]
        chores = [InsightChore(source or LineInsight(api), clock=clock) for api in apis]
        try:
            return list(await asyncio.gather(*(c(r) for c, r in zip(chores, clients, strict=True)),
                                             return_exceptions=True))
        finally:
            for api, client in zip(apis, clients, strict=True):
                await api.close()
                await client.aclose()
    return asyncio.run(go())


@pytest.fixture
def line(r: Any, fake_line: FakeLineApi) -> Iterator[FakeLineApi]:
    yield fake_line


def figures(r: Any, first: str, last: str) -> dict[str, tuple[int, int | None, int | None, int]]:
    return {f.unit: (f.delivered, f.opened, f.clicked, f.days)
            for f in period_figures(r, date.fromisoformat(first), date.fromisoformat(last))}


def test_once_a_day_across_two_workers_the_missing_days_then_only_the_last_few(
        r: Any, redis_url: str, line: FakeLineApi, clock: FakeClock) -> None:
    line.set_unit_figures("nudge_q4", "20261207", 25, 3)
    line.set_unit_figures("fu_q3_1", "20261206", 40, 12)
    assert run(redis_url, line, clock, workers=2) == [0, 0]  # the first look: due at the next 06:00
    assert line.recorded(INSIGHT_UNIT) == [] and line.recorded(AGGREGATION_LIST) == []
    clock.t = at("2026-12-08T06:00")
    results = run(redis_url, line, clock, workers=2)
    assert sorted(results) == [0, 2 * LOOKBACK_DAYS]  # one worker read both units' days; the other nothing
    assert len(line.recorded(AGGREGATION_LIST)) == 1
    asked = [(q.path, _query(q)) for q in line.recorded(INSIGHT_UNIT)]
    assert len(asked) == 2 * LOOKBACK_DAYS
    assert all(q["from"] == q["to"] for _, q in asked)  # a day at a time: figures kept per day
    assert max(q["to"] for _, q in asked) == "20261207"  # up to yesterday, Japan time
    assert figures(r, "2026-12-01", "2026-12-07") == {"nudge_q4": (0, 25, 3, 7), "fu_q3_1": (0, 40, 12, 7)}
    clock.t = at("2026-12-08T23:00")  # later the same day, two more workers: nothing
    assert run(redis_url, line, clock, workers=2) == [0, 0]
    assert len(line.recorded(INSIGHT_UNIT)) == 2 * LOOKBACK_DAYS
    clock.t = at("2026-12-09T06:30")  # the next day: yesterday, and the last days again
    assert sorted(run(redis_url, line, clock, workers=2)) == [0, 2 * REFETCH_DAYS]
    newest = [_query(q)["from"] for q in line.recorded(INSIGHT_UNIT)[2 * LOOKBACK_DAYS:]]
    assert sorted(set(newest)) == ["20261206", "20261207", "20261208"]
    assert line.contract_errors == []


def test_a_refetch_updates_a_recent_day_and_an_older_day_is_kept(
        r: Any, redis_url: str, line: FakeLineApi, clock: FakeClock) -> None:
    line.set_unit_figures("nudge_q2", "20261207", 20, 2)
    line.set_unit_figures("nudge_q2", "20261201", 30, 5)
    clock.t = at("2026-12-08T05:00")
    run(redis_url, line, clock)
    clock.t = at("2026-12-08T06:00")
    assert run(redis_url, line, clock) == [LOOKBACK_DAYS]
    line.set_unit_figures("nudge_q2", "20261207", 26, 4)  # LINE's figures for the 7th settled higher
    line.set_unit_figures("nudge_q2", "20261201", 99, 99)  # a week old: not asked again
    clock.t = at("2026-12-09T06:00")
    assert run(redis_url, line, clock) == [REFETCH_DAYS]
    assert figures(r, "2026-12-07", "2026-12-07") == {"nudge_q2": (0, 26, 4, 1)}
    assert figures(r, "2026-12-01", "2026-12-01") == {"nudge_q2": (0, 30, 5, 1)}
    assert figures(r, "2026-12-01", "2026-12-08") == {"nudge_q2": (0, 56, 9, 8)}


def test_a_withheld_count_is_kept_as_none_never_zero(
        r: Any, redis_url: str, line: FakeLineApi, clock: FakeClock) -> None:
    line.set_unit_figures("nudge_q5", "20261206", None, None)
    line.set_unit_figures("nudge_q5", "20261207", 22, None)
    clock.t = at("2026-12-08T05:00")
    run(redis_url, line, clock)
    clock.t = at("2026-12-08T06:00")
    run(redis_url, line, clock)
    stored = r.hgetall(keys.insight_days("nudge_q5"))
    assert DayFigures.from_json(stored[b"20261206"]) == DayFigures(None, None)
    assert DayFigures.from_json(stored[b"20261207"]) == DayFigures(22, None)
    assert DayFigures.from_json(stored[b"20261205"]) == DayFigures(0, 0)  # a day with nothing: LINE's zero
    assert figures(r, "2026-12-07", "2026-12-07") == {"nudge_q5": (0, 22, None, 1)}
    assert figures(r, "2026-12-06", "2026-12-07") == {"nudge_q5": (0, None, None, 2)}  # withheld in the sum
    assert figures(r, "2026-12-01", "2026-12-05") == {"nudge_q5": (0, 0, 0, 5)}


def test_an_error_from_line_is_logged_and_the_pass_tried_again_later(
        r: Any, redis_url: str, line: FakeLineApi, clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    line.set_unit_figures("nudge_q3", "20261207", 21, 1)
    clock.t = at("2026-12-08T05:00")
    run(redis_url, line, clock)
    clock.t = at("2026-12-08T06:00")
    line.fail(INSIGHT_UNIT, 500, times=1)
    with caplog.at_level(logging.INFO):
        assert run(redis_url, line, clock) == [0]
    warned = [rec.getMessage() for rec in caplog.records if rec.name == "bot.insight" and rec.levelname == "WARNING"]
    assert len(warned) == 1 and "HTTP 500" in warned[0] and "nudge_q3" in warned[0] and "x-line-request-id" in warned[0]
    assert TOKEN not in caplog.text
    clock.t = at("2026-12-08T06:10")  # before the retry is due: nothing asked
    before = len(line.recorded(INSIGHT_UNIT))
    assert run(redis_url, line, clock) == [0] and len(line.recorded(INSIGHT_UNIT)) == before
    line.fail(AGGREGATION_LIST, 429, times=1)  # then LINE's rate limit on the list
    clock.t = at("2026-12-08T06:15")
    assert run(redis_url, line, clock) == [0]
    clock.t = at("2026-12-08T06:30")
    assert run(redis_url, line, clock) == [LOOKBACK_DAYS]  # then it answers: every day read
    assert figures(r, "2026-12-07", "2026-12-07") == {"nudge_q3": (0, 21, 1, 1)}


def test_a_worker_dying_mid_pass_leaves_it_to_another_after_the_lease(
        r: Any, redis_url: str, line: FakeLineApi, clock: FakeClock) -> None:
    line.set_unit_figures("nudge_q1", "20261207", 20, 0)
    clock.t = at("2026-12-08T05:00")
    run(redis_url, line, clock)
    clock.t = at("2026-12-08T06:00")
    [died] = run(redis_url, line, clock, source=Crashing())
    assert isinstance(died, RuntimeError)  # the worker's chores loop logs it; the claim stays until its lease ends
    clock.t = at("2026-12-08T06:05")
    assert run(redis_url, line, clock, workers=2) == [0, 0] and line.recorded(INSIGHT_UNIT) == []
    clock.t = at("2026-12-08T06:16")
    assert sorted(run(redis_url, line, clock, workers=2)) == [0, LOOKBACK_DAYS]


def test_a_nudge_line_accepted_counts_as_delivered_once(nudge_line: LineEnv, redis_url: str) -> None:  # noqa: F811
    env = nudge_line
    stop_at_q4(env, env.user())
    remind(env, redis_url, "2026-12-08T09:00")
    [push] = nudges(env)
    # the worker records it; a retry of the same job (LINE answers 409 to its retry key) counts it once
    asyncio.run(_record_again(redis_url, push.headers["x-line-retry-key"], env.clock()))
    env.fake.set_unit_figures("nudge_q4", "20261208", None, None)  # one person: withheld
    env.clock.t = at("2026-12-08T23:00")
    run(redis_url, env.fake, env.clock)
    env.clock.t = at("2026-12-09T06:00")
    run(redis_url, env.fake, env.clock)
    assert figures(env.r, "2026-12-08", "2026-12-08") == {"nudge_q4": (1, None, None, 1)}
    assert figures(env.r, "2026-12-01", "2026-12-07") == {"nudge_q4": (0, 0, 0, 7)}


async def _record_again(redis_url: str, job_id: str, now: float) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        await record_sent(client, "nudge_q4", job_id, now)
    finally:
        await client.aclose()


def _query(recorded: Any) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(recorded.query).items()}
