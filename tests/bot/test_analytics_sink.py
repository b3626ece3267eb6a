"""The worker's figures sink (bot/analytics_sink.py) on a real Redis: a record with experiment variants is
counted in the lead and in each variant's counts (sent together), a retried record counts nothing twice, and
the finished-diagnosis hook is given the lead with its person's display name (read together)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import redis.asyncio as aredis

from bot.analytics_sink import StatsSink
from conversations import analytics
from conversations.jobs import Figures

NOW = 1_790_000_000.0
USER = "U" + "5" * 32


@pytest.fixture
def aclient(r: redis.Redis, redis_url: str) -> Iterator[tuple[Any, asyncio.AbstractEventLoop]]:
    loop = asyncio.new_event_loop()
    client = aredis.Redis.from_url(redis_url)
    yield client, loop
    loop.run_until_complete(client.aclose())
    loop.close()


def finished_record(var: str) -> Figures:
    lead = {"id": analytics.lead_id("line", USER, 1, NOW - 300), "channel": "line", "user": USER, "sid": 1,
            "n": 1, "begun": NOW - 300, "updated": NOW, "reached": 10, "remind": 0, "open": 0,
            "answers": "ABCDABCDAB", "finished": NOW, "tier": "B", "var": var}
    return Figures.new(f"line:{USER}", {"at": NOW, "lead": lead})


def test_a_record_with_variants_counts_in_the_lead_and_each_variant_once(
        r: redis.Redis, aclient: tuple[Any, asyncio.AbstractEventLoop]) -> None:
    client, loop = aclient
    analytics.Analytics(r).set_name("line", USER, "山田商店")
    finished: list[analytics.Lead] = []
    sink = StatsSink(on_finished=finished.append)
    record = finished_record("cta:b,q1:short")
    for _ in range(2):  # applied twice (a retried record): counted once
        loop.run_until_complete(sink.count(client, record, NOW))
    lead = analytics.Analytics(r, clock=lambda: NOW).lead(str(record.delta["lead"]["id"]))
    assert lead is not None and lead.is_finished and lead.answers == "ABCDABCDAB"
    for name, variant in (("cta", "b"), ("q1", "short")):
        for stage in ("started", "finished"):
            assert r.smembers(f"crmbot:{{x:{name}}}:{variant}:{stage}") == {f"line:{USER}:1".encode()}
        assert not r.exists(f"crmbot:{{x:{name}}}:{variant}:requested")  # no consultation asked for
    assert [x.id for x in finished] == [lead.id, lead.id]  # the hook is idempotent itself: told each time
    assert finished[0].name == "山田商店" and finished[0].answers == "ABCDABCDAB"


def test_a_record_without_variants_counts_no_experiment(
        r: redis.Redis, aclient: tuple[Any, asyncio.AbstractEventLoop]) -> None:
    client, loop = aclient
    record = finished_record("")
    loop.run_until_complete(StatsSink().count(client, record, NOW))
    assert analytics.Analytics(r, clock=lambda: NOW).lead(str(record.delta["lead"]["id"])) is not None
    assert r.keys("crmbot:{x:*") == []


def test_a_record_with_no_hook_to_call_is_applied_in_the_round_trip_that_deletes_it(r: redis.Redis) -> None:
    """The worker sends :meth:`StatsSink.steps` before the record's deletion, in one pipeline: the experiments'
    counts, then the apply script. A record that needs a hook (or an unfollow's set-aside jobs) has none."""
    plain = finished_record("cta:b")
    steps = StatsSink().steps(plain, NOW)
    assert steps is not None and [s.lua for s in steps][-1] == analytics.APPLY_LUA and len(steps) == 2
    assert StatsSink(on_finished=print).steps(plain, NOW) is None  # the hook reads the lead once applied
    assert StatsSink(on_finished=print).steps(finished_record(""), NOW) is None
    asking = Figures.new(plain.tag, {**plain.delta, "lead": {**plain.delta["lead"], "consult": 1}})
    assert StatsSink(on_first_consult=print).steps(asking, NOW) is None
    assert StatsSink().steps(asking, NOW) is not None
    unfollow = Figures.new(plain.tag, {"at": NOW, "follow": 0, "person": f"line:{USER}"})
    assert StatsSink().steps(unfollow, NOW) is None
    bad = Figures.new(plain.tag, {"at": NOW, "lead": {**plain.delta["lead"], "reached": 99}})
    assert StatsSink().steps(bad, NOW) == []  # dropped (logged), as count() drops it
    for step in steps * 2:  # sent twice (a deletion lost): counted once
        r.eval(step.lua, len(step.keys), *step.keys, *step.args)
    lead = analytics.Analytics(r, clock=lambda: NOW).lead(str(plain.delta["lead"]["id"]))
    assert lead is not None and lead.is_finished
    assert r.smembers("crmbot:{x:cta}:b:finished") == {f"line:{USER}:1".encode()}
    assert analytics.Analytics(r, clock=lambda: NOW).funnel(channel="line")["finished"] == 1
