"""Sources and qualification answers in the operator's figures (conversations.analytics) on a real Redis:
what a step's delta carries, and the source's sets counted exactly however often and in whatever order the
deltas are applied."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from conversations import inputs
from conversations.analytics import SHARDS, Analytics, channels_key, delta_of, japan_date
from conversations.content import load_script
from conversations.errors import InvalidInput
from conversations.inputs import Input
from conversations.keys import Subject
from conversations.machine import Conv, Settings, build

T0 = 1_767_225_600.0
DAY = 86400.0
M = build(Settings(qualify=load_script("ja").qualify.counts))


class User:
    def __init__(self, user_id: str) -> None:
        self.subject = Subject("line", user_id)
        self.conv = Conv()
        self.now = T0
        self.deltas: list[dict[str, Any]] = []

    def send(self, inp: Input) -> None:
        self.now += 20.0
        step = M.step(self.conv, inp, self.now)
        after = step.conv if step.changed else self.conv
        delta = delta_of(self.conv, after, step.outputs, self.subject, self.now, event=inp.kind)
        self.conv = after if after is not None else Conv()
        if delta is not None:
            self.deltas.append(delta)

    def answer(self, letters: str) -> None:
        for x in letters:
            self.send(Input(inputs.ANSWER, choice=x, q=self.conv.q, sid=self.conv.sid))


@pytest.fixture
def stats(r: redis.Redis) -> Analytics:
    return Analytics(r, clock=lambda: T0 + DAY)


def scripted() -> list[User]:
    ads = User("U" + "a" * 32)
    ads.send(Input(inputs.START, source="ads"))
    ads.answer("AAAAAAABBC")
    ads.send(Input(inputs.QUALIFY, q=0, choice="2"))
    ads.send(Input(inputs.QUALIFY, q=1, choice="0"))
    late = User("U" + "b" * 32)  # a plain start; the source comes mid-diagnosis (asked to resume)
    late.send(Input(inputs.START))
    late.answer("AB")
    late.send(Input(inputs.START, source="ads"))
    plain = User("U" + "c" * 32)
    plain.send(Input(inputs.START))
    plain.answer("A")
    return [ads, late, plain]


def test_a_delta_carries_the_source_and_the_answers() -> None:
    ads = scripted()[0]
    last = ads.deltas[-1]["lead"]
    assert (last["source"], last["qual"], last["tier"]) == ("ads", "20", "B")
    assert all(d["lead"]["source"] == "ads" for d in ads.deltas)


def test_counted_exactly_once_in_any_order(stats: Analytics, r: redis.Redis) -> None:
    deltas = [d for u in scripted() for d in u.deltas]
    for d in deltas:
        stats.apply(d)
    once = stats.funnel(source="ads"), stats.funnel(), stats.leads(source="ads")
    f = once[0]
    assert (f["started"], f["finished"], f["in_progress"], f["tiers"]) == (2, 1, 1, {"A": 0, "B": 1, "C": 0})
    assert [q["shown"] for q in f["questions"]] == [2, 2, 2, 1, 1, 1, 1, 1, 1, 1]
    assert f["questions"][9]["answers"] == {"A": 0, "B": 0, "C": 1, "D": 0}
    assert once[1]["started"] == 3
    assert [(x.source, x.qual) for x in once[2]] == [("ads", ""), ("ads", "20")]  # newest first
    for d in deltas:  # retried
        stats.apply(d)
    assert (stats.funnel(source="ads"), stats.funnel(), stats.leads(source="ads")) == once
    r.flushdb()
    for d in reversed(deltas):  # older records applied after newer ones
        stats.apply(d)
    assert (stats.funnel(source="ads"), stats.funnel(), stats.leads(source="ads")) == once
    chans = {m.decode() for k in range(SHARDS) for m in r.smembers(channels_key(k))}
    assert chans == {"line"}  # a source is no channel


def test_filters_combine(stats: Analytics) -> None:
    for u in scripted():
        for d in u.deltas:
            stats.apply(d)
    assert [x.source for x in stats.leads(source="ads", status="finished")] == ["ads"]
    assert [x.source for x in stats.leads(source="ads", status="in_progress")] == ["ads"]
    assert stats.leads(source="ads", tier="A") == []
    assert stats.leads(source="sns") == [] and stats.funnel(source="sns")["started"] == 0
    day = japan_date(T0)
    assert sum(row["started"] for row in stats.series(day, day, source="ads")) == 2


@pytest.mark.parametrize(("field", "value"), [("source", "Bad Name"), ("qual", "2x")])
def test_a_delta_with_a_bad_source_or_answers_is_refused(stats: Analytics, field: str, value: str) -> None:
    d = scripted()[0].deltas[-1]
    d = {**d, "lead": {**d["lead"], field: value}}
    with pytest.raises(InvalidInput):
        stats.apply(d)
