"""The figures' counters (conversations/analytics.py): exact whatever order and however often the figures
records are applied, with going back, changed answers, restarts, nudges and segments, on the real Redis."""

from __future__ import annotations

import random
from typing import Any

import redis

from conversations import inputs
from conversations.analytics import SHARDS, Analytics, japan_date, nudged_step
from conversations.inputs import Input
from conversations.keys import Subject
from conversations.machine import Conv
from conversations.redis_ops import Batch
from tests.conversations.test_analytics import DAY, T0, User

NOW = T0 + 2 * DAY
FILTERS: list[dict[str, str]] = [{}, {"source": "ads"}, {"variant": "hero:b"}, {"variant": "hero:a"},
                                 {"version": "v2"}]


def people() -> list[User]:
    """Scripted users, their deltas kept (not applied): each path a figure could count twice on."""
    out = []
    for i in range(12):
        u = User(Subject("line", f"U{i:032x}"), now=T0 + i * 600)
        u.conv = Conv(src="ads" if i % 3 == 0 else "", ver="v2" if i < 6 else "")
        u.var = "hero:b" if i % 2 else "hero:a"  # assigned as each diagnosis begins
        u.do(inputs.FOLLOW)
        u.do(inputs.START)
        u.answer("ABCA")
        u.do(inputs.BACK)  # back to Q4, answered again differently
        u.answer("D")
        if i % 4 == 1:  # left at Q5
            out.append(u)
            continue
        if i % 4 == 2:  # starts over: the first diagnosis ends at Q5
            u.do(inputs.RESTART)
            u.send(Input(inputs.RESTART_YES, sid=u.conv.sid))
            u.answer("AAAA")
        u.answer("BBBBBB")
        out.append(u)
    return out


def every_delta(users: list[User]) -> list[dict[str, Any]]:
    return [d for u in users for d in u.deltas]


def figures(stats: Analytics) -> list[dict[str, Any]]:
    return [stats.funnel(**kw) for kw in FILTERS] + [stats.series(japan_date(T0), japan_date(NOW))]


def test_counted_once_however_often_and_in_whatever_order_the_records_apply(r: redis.Redis) -> None:
    stats = Analytics(r, clock=lambda: NOW - DAY)
    users = people()
    for d in every_delta(users):
        stats.apply(d, now=NOW - DAY)
    f = stats.funnel()
    assert (f["started"], f["finished"], f["in_progress"], f["stopped"]) == (15, 9, 3, 3)  # 12 + 3 restarts
    assert [q["shown"] for q in f["questions"]] == [15] * 5 + [9] * 5
    assert f["questions"][3]["answers"] == {"A": 3, "B": 0, "C": 0, "D": 6}  # Q4's final answer, changed from A
    assert (f["questions"][4]["in_progress"], f["questions"][4]["stopped"]) == (3, 3)  # left at Q5; restarted
    assert f["questions"][3]["stopped"] == 0  # going back to Q4 did not lower how far they got
    assert stats.funnel(source="ads")["started"] == 5  # users 0, 3, 6 (a restart: two), 9
    assert stats.funnel(variant="hero:b")["started"] == 6 and stats.funnel(variant="hero:a")["started"] == 9
    assert stats.funnel(version="v2")["started"] == 7  # users 0..5, one restart among them
    once = figures(stats)
    r.flushdb()
    every = every_delta(users) * 2
    random.Random(3).shuffle(every)
    for d in every + list(reversed(every)):
        stats.apply(d, now=NOW - DAY)
    assert figures(stats) == once


def test_in_progress_lasts_the_expiry_then_counts_as_stopped(r: redis.Redis) -> None:
    [u] = people()[1:2]  # left at Q5
    stats = Analytics(r, clock=lambda: T0 + DAY, expiry=3 * DAY)
    for d in u.deltas:
        stats.apply(d, now=T0 + DAY)
    assert (stats.funnel()["in_progress"], stats.funnel()["stopped"]) == (1, 0)
    stats.clock = lambda: T0 + 4 * DAY  # past the expiry (to the hour)
    f = stats.funnel()
    assert (f["started"], f["in_progress"], f["stopped"], f["questions"][4]["stopped"]) == (1, 0, 1, 1)


def test_a_tag_seen_late_counts_what_the_diagnosis_was_counted_for_so_far(r: redis.Redis) -> None:
    u = User(Subject("line", "U" + "c" * 32), now=T0)
    u.do(inputs.START)
    u.answer("AB")
    late = User(u.subject, now=u.now)
    late.conv = Conv(**{**u.conv.__dict__, "ver": "v3"})
    late.answer("C")
    stats = Analytics(r, clock=lambda: u.now)
    for d in u.deltas + late.deltas:
        stats.apply(d, now=u.now)
    assert [q["shown"] for q in stats.funnel(version="v3")["questions"][:4]] == [1, 1, 1, 1]
    assert stats.funnel(version="v3")["started"] == stats.funnel()["started"] == 1


def test_a_nudge_counts_once_and_its_resumption_once(r: redis.Redis) -> None:
    [u] = people()[1:2]  # left at Q5, version v2, variant hero:b
    stats = Analytics(r, clock=lambda: u.now)
    for d in u.deltas:
        stats.apply(d, now=u.now)
    for _ in range(2):
        stats.r.do(nudged_step("line", u.subject.user_id, u.conv.sid, u.conv.begun, 5, u.now + 60))
    u.now += 120
    u.answer("A")
    for d in u.deltas[-1:] * 2:
        stats.apply(d, now=u.now)
    for kw in ({}, {"version": "v2"}, {"variant": "hero:b"}):
        q5 = stats.funnel(**kw)["questions"][4]
        assert (q5["nudged"], q5["resumed"]) == (1, 1), kw


def test_a_funnel_costs_one_round_trip_of_one_script_call_per_shard_whatever_the_leads(r: redis.Redis) -> None:
    stats = Analytics(r, clock=lambda: NOW)
    calls: list[Any] = []
    do = stats.r.do
    stats.r.do = lambda step: calls.append(step) or do(step)  # type: ignore[method-assign]
    stats.funnel()
    empty = len(calls)
    for d in every_delta(people()):
        stats.apply(d, now=NOW)
    calls.clear()
    stats.funnel()
    assert len(calls) == empty == 1 and isinstance(calls[0], Batch)  # one pipelined round trip
    with r.pipeline(transaction=False) as pipe:
        calls[0].fill(pipe)
        assert len(pipe.command_stack) == SHARDS  # of one script call per shard
