"""The console's figures kept a few seconds per query (bot/console/figures_cache.py): the same funnel query
within that time reads Redis once (counted with MONITOR on the suite's real Redis, as
benchmarks/consolecost.py counts), a new query or a later one reads again, a change made in the console
shows at once, and the consultations' counts (an operator changes them) are read every time. The clock is
injected: nothing waits."""

from __future__ import annotations

import re
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from benchmarks.consolecost import counting, seed
from bot.config import Config, ConfigError
from bot.console.figures_cache import FiguresCache
from conversations import keys
from conversations.analytics import japan_date
from tests.bot.console.conftest import TOKEN, Console, console_config, make_console
from tests.conftest import FakeClock

AUTH = {"Authorization": f"Bearer {TOKEN}"}
TTL = 5.0


@pytest.fixture
def cached(r: redis.Redis, redis_url: str, clock: FakeClock, tmp_path: Path) -> Console:
    return make_console(console_config(redis_url, tmp_path, console_figures_seconds=TTL), r, clock)


def span(c: Console) -> str:
    day = japan_date(c.clock())
    return f"from={(day - timedelta(days=29)).isoformat()}&to={day.isoformat()}"


def funnel_reads(seen: list[str]) -> int:
    """The figures scripts a view ran over a range of days (one per figures shard a funnel reads); every
    page's count of open consultations asks for no day (its range starts at 9999-12-31) and is left out."""
    return sum(1 for line in seen if line.upper().startswith(("EVALSHA", "EVAL ")) and " 99991231 " not in line)


def read(c: Console, query: str) -> tuple[dict[str, Any], int, int]:
    """The funnel API's answer to ``query``, the figures scripts it ran and every command it sent."""
    with counting(c.r) as seen:
        res = c.http.get(f"/console/api/funnel?{query}", headers=AUTH)
    assert res.status_code == 200, res.get_data(as_text=True)
    return dict(res.get_json()), funnel_reads(seen), len(seen)


def test_the_same_funnel_query_within_the_time_reads_redis_once(cached: Console) -> None:
    seed(cached.r, 30, cached.clock())
    first, scripts, _ = read(cached, span(cached))
    assert scripts > 0 and first["started"] == 30
    seed(cached.r, 60, cached.clock())  # 30 more leads: the worker applied them after that read
    cached.clock.advance(TTL - 0.5)
    again, scripts, commands = read(cached, "&".join(reversed(span(cached).split("&"))) + "&channel=")
    assert scripts == 0 and commands > 0  # the same query, written otherwise: the figures kept; the counts read
    assert again == first  # the figures as they were (a few seconds old, as the API's docs say)
    other, scripts, _ = read(cached, span(cached) + "&channel=line")  # a new query reads
    assert scripts > 0 and other["started"] == 60
    cached.clock.advance(0.5)  # the first query's time is over: read again
    later, scripts, _ = read(cached, span(cached))
    assert scripts > 0 and later["started"] == 60


def test_the_consultations_counts_are_never_kept(cached: Console) -> None:
    seed(cached.r, 30, cached.clock())
    first, _, _ = read(cached, span(cached))
    assert first["consultations"]["requested"] == 0
    cached.r.zadd(keys.booking_consult("line", "requested"), {"line:U1": cached.clock()})  # someone asked
    again, scripts, _ = read(cached, span(cached))
    assert scripts == 0 and again["started"] == first["started"]
    assert again["consultations"]["requested"] == 1


def test_the_overview_and_its_funnel_read_once_within_the_time(cached: Console) -> None:
    cached.login()
    seed(cached.r, 30, cached.clock())

    def scripts_of(path: str) -> int:
        with counting(cached.r) as seen:
            assert cached.http.get(path).status_code == 200
        return funnel_reads(seen)

    assert scripts_of(f"/console/?{span(cached)}") > 0
    assert scripts_of(f"/console/?{span(cached)}") == 0  # the funnel, the series, the followers: kept
    assert scripts_of(f"/console/charts/tiers.svg?{span(cached)}") == 0
    _, scripts, _ = read(cached, span(cached))  # the API's funnel of the same filters: the same figures
    assert scripts == 0


def test_a_change_made_in_the_console_shows_at_once(cached: Console) -> None:
    cached.login()
    seed(cached.r, 30, cached.clock())
    html = cached.http.get("/console/").get_data(as_text=True)
    assert re.search(r'id="fig-started">30<', html)
    seed(cached.r, 60, cached.clock())
    token = cached.csrf("/console/")
    assert re.search(r'id="fig-started">30<', cached.http.get("/console/").get_data(as_text=True))  # kept
    res = cached.http.post("/console/demo/remove", data={"csrf_token": token}, follow_redirects=True)
    assert res.status_code == 200  # a change (nothing to remove here): what was kept is read again
    assert re.search(r'id="fig-started">60<', res.get_data(as_text=True))


def test_the_cache_keeps_a_bounded_number_of_queries() -> None:
    clock = FakeClock()
    cache = FiguresCache(TTL, clock, size=2)
    reads: list[str] = []

    def reader(key: str) -> Any:
        return lambda: reads.append(key) or key.upper()

    assert [cache.get(k, reader(k)) for k in ("a", "b", "a", "c", "a", "b")] == ["A", "B", "A", "C", "A", "B"]
    assert reads == ["a", "b", "c", "b"]  # "b", least recently used, made room for "c"


def test_an_error_is_not_kept_and_zero_seconds_keep_nothing() -> None:
    clock = FakeClock()
    cache = FiguresCache(TTL, clock)
    calls = []

    def failing() -> int:
        calls.append(1)
        raise ConnectionError("down")

    for _ in range(2):
        with pytest.raises(ConnectionError):
            cache.get("k", failing)
    assert len(calls) == 2
    off = FiguresCache(0, clock)
    assert [off.get("k", lambda n=n: n) for n in range(3)] == [0, 1, 2]


def test_concurrent_reads_of_one_query_make_one_read() -> None:
    cache = FiguresCache(TTL, FakeClock())
    started, release = threading.Event(), threading.Event()
    reads = []

    def slow() -> str:
        reads.append(1)
        started.set()
        assert release.wait(10)
        return "figures"

    got: list[str] = []
    first = threading.Thread(target=lambda: got.append(cache.get("k", slow)))
    first.start()
    assert started.wait(10)
    others = [threading.Thread(target=lambda: got.append(cache.get("k", slow))) for _ in range(5)]
    for t in others:
        t.start()
    release.set()
    for t in [first, *others]:
        t.join(10)
    assert got == ["figures"] * 6 and len(reads) == 1


def test_the_time_is_configured_from_the_environment() -> None:
    assert Config().console_figures_seconds == 5.0
    assert Config.from_env({"CRMBOT_CONSOLE_FIGURES_SECONDS": "0"}).console_figures_seconds == 0
    with pytest.raises(ConfigError, match="CRMBOT_CONSOLE_FIGURES_SECONDS"):
        Config.from_env({"CRMBOT_CONSOLE_FIGURES_SECONDS": "-1"})
