"""The operator's figures (conversations.analytics): what a step changed (pure), and the figures kept
from it on a real Redis (applied as the worker applies them, minus the worker)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
import redis

from conversations import analytics as A
from conversations import inputs as I
from conversations.analytics import Analytics, Lead, delta_of
from conversations.errors import InvalidInput
from conversations.inputs import Input
from conversations.keys import Subject
from conversations.machine import Conv, Settings, build

T0 = 1_767_225_600.0  # 2026-01-01 09:00 Japan time
DAY = 86400.0
M = build(Settings())
LINE_A = Subject("line", "U" + "a" * 32)


class User:
    """One user stepping the real machine; every step's delta is kept (and applied when asked)."""

    def __init__(self, subject: Subject = LINE_A, *, now: float = T0, stats: Analytics | None = None) -> None:
        self.subject = subject
        self.conv = Conv()
        self.now = now
        self.stats = stats
        self.deltas: list[dict[str, Any]] = []

    def send(self, inp: Input, dt: float = 20.0) -> dict[str, Any] | None:
        self.now += dt
        step = M.step(self.conv, inp, self.now)
        after = step.conv if step.changed else self.conv
        delta = delta_of(self.conv, after, step.outputs, self.subject, self.now, event=inp.kind)
        self.conv = after if after is not None else Conv()
        if delta is not None:
            self.deltas.append(delta)
            if self.stats is not None:
                self.stats.apply(delta, now=self.now)
        return delta

    def do(self, kind: str, dt: float = 20.0) -> dict[str, Any] | None:
        return self.send(Input(kind), dt)

    def answer(self, letters: str, dt: float = 20.0) -> None:
        for x in letters:
            self.send(Input(I.ANSWER, choice=x, q=self.conv.q, sid=self.conv.sid), dt)

    @property
    def lead_id(self) -> str:
        return A.lead_id(self.subject.channel, self.subject.user_id, self.conv.sid, self.conv.begun)


# ---- delta_of (pure) ------------------------------------------------------------------------------


def test_a_step_that_changes_nothing_counted_has_no_delta() -> None:
    u = User()
    u.do(I.START)
    assert u.do(I.TEXT) is None  # a hint: the record is unchanged
    assert u.send(Input(I.ANSWER, choice="A", q=5, sid=1)) is None  # stale: unchanged


def test_start_answer_and_finish() -> None:
    u = User()
    d = u.do(I.START)
    assert d is not None
    lead = d["lead"]
    assert lead["id"] == u.lead_id == f"line:{LINE_A.user_id}:1-{round((T0 + 20) * 1000):x}"
    assert (lead["reached"], lead["answers"], lead["open"], lead["n"], lead["begun"]) == (1, "", 1, 1, T0 + 20)
    d = u.send(Input(I.ANSWER, choice="B", q=0, sid=1))
    assert d is not None and (d["lead"]["reached"], d["lead"]["answers"]) == (2, "B")
    u.answer("AAAAAAAAA")
    last = u.deltas[-1]["lead"]
    assert (last["finished"], last["answers"], last["tier"], last["reached"], last["open"]) == (
        u.now, "BAAAAAAAAA", "A", 10, 0)


def test_back_keeps_the_highest_question_reached() -> None:
    u = User()
    u.do(I.START)
    u.answer("AB")
    d = u.send(Input(I.BACK, q=2, sid=1))
    assert d is not None and d["lead"]["reached"] == 2 and d["lead"]["answers"] == "A"  # shown Q2 again


def test_restart_ends_the_diagnosis_under_way() -> None:
    u = User()
    u.do(I.START)
    first = u.lead_id
    d = u.do(I.RESTART)
    assert d is not None and d["ended"] == first and d["lead"]["id"] == u.lead_id != first


def test_unfollow_mid_diagnosis_closes_it_and_counts_the_unfollow() -> None:
    u = User()
    u.do(I.FOLLOW)
    u.do(I.START)
    lead = u.lead_id
    d = u.do(I.UNFOLLOW)  # the record is deleted
    assert d is not None
    assert (d["follow"], d["person"]) == (0, f"line:{LINE_A.user_id}")
    assert d["lead"]["id"] == lead and d["lead"]["open"] == 0 and d["lead"]["n"] == 2 and "ended" not in d


def test_follow_without_a_diagnosis() -> None:
    d = User().do(I.FOLLOW)
    assert d == {"at": T0 + 20, "follow": 1, "person": f"line:{LINE_A.user_id}"}


def test_try_it_users_are_marked_as_tests() -> None:
    d = User(Subject("web", "w1")).do(I.START)
    assert d is not None and d["test"] == 1


def test_a_consultation_output_marks_the_lead() -> None:
    u = User()
    u.do(I.START)
    u.answer("ABCDABCDAB")
    d = delta_of(u.conv, u.conv, ({"type": A.CONSULT_ACK},), LINE_A, u.now + 5)
    assert d is not None and d["lead"]["consult"] == 1 and d["lead"]["id"] == u.lead_id


def test_a_record_from_before_begun_keeps_one_lead_id() -> None:
    old = Conv.from_json('{"s":"asking","sid":3,"t":1767225600.5,"n":4,"q":2,"a":"AB"}')
    u = User()
    u.conv = old
    d1 = u.send(Input(I.ANSWER, choice="C", q=2, sid=3))
    d2 = u.send(Input(I.ANSWER, choice="C", q=3, sid=3))
    assert d1 is not None and d2 is not None
    assert d1["lead"]["id"] == d2["lead"]["id"] == A.lead_id("line", LINE_A.user_id, 3, 1767225600.5)
    assert "ended" not in d1


# ---- the figures on Redis --------------------------------------------------------------------------


@pytest.fixture
def stats(r: redis.Redis) -> Analytics:
    return Analytics(r, clock=lambda: T0 + 30 * DAY)


def q(funnel: dict[str, Any], n: int) -> dict[str, Any]:
    return funnel["questions"][n - 1]


def test_one_finished_diagnosis(stats: Analytics) -> None:
    u = User(stats=stats)
    u.do(I.START)
    u.answer("AAAAAAAABC")
    f = stats.funnel()
    assert (f["started"], f["finished"], f["in_progress"], f["tiers"]) == (1, 1, 0, {"A": 0, "B": 1, "C": 0})
    assert [(x["shown"], x["answered"]) for x in f["questions"]] == [(1, 1)] * 10
    assert q(f, 9)["answers"] == {"A": 0, "B": 1, "C": 0, "D": 0}
    assert q(f, 10)["answers"] == {"A": 0, "B": 0, "C": 1, "D": 0}
    assert all(x["dropoff"] == 0.0 for x in f["questions"])
    [lead] = stats.leads()
    assert lead == stats.lead(lead.id)
    assert (lead.tier, lead.a_count, lead.point, lead.answers, lead.reached) == ("B", 8, 9, "AAAAAAAABC", 10)
    assert lead.status(stats.clock()) == "finished"
    assert stats.person("line", LINE_A.user_id) == [lead]


def test_applying_twice_or_out_of_order_changes_nothing(stats: Analytics, r: redis.Redis) -> None:
    u = User()
    u.do(I.START)
    u.answer("ABC")
    u.send(Input(I.BACK, q=3, sid=1))
    u.answer("D")
    for d in u.deltas:
        stats.apply(d)
    once = stats.funnel(), stats.leads()
    for d in reversed(u.deltas):
        stats.apply(d)
    for d in u.deltas:
        stats.apply(d)
    assert (stats.funnel(), stats.leads()) == once
    [lead] = once[1]
    assert (lead.answers, lead.reached) == ("ABD", 4)


def test_dates_are_japan_time_and_filter_by_start(stats: Analytics) -> None:
    # 2026-01-01 23:59 and 2026-01-02 00:01 Japan time
    early = User(Subject("line", "U1"), now=T0 + 15 * 3600 - 80, stats=stats)
    early.do(I.START)
    late = User(Subject("line", "U2"), now=T0 + 15 * 3600 + 40, stats=stats)
    late.do(I.START)
    assert A.japan_date(early.conv.begun) == date(2026, 1, 1) and A.japan_date(late.conv.begun) == date(2026, 1, 2)
    assert stats.funnel(date(2026, 1, 1), date(2026, 1, 1))["started"] == 1
    assert stats.funnel(date(2026, 1, 2))["started"] == 1
    assert stats.funnel(end=date(2026, 1, 2))["started"] == 2
    assert stats.funnel(date(2026, 1, 3))["started"] == 0
    assert [x.user_id for x in stats.leads(start=date(2026, 1, 2))] == ["U2"]


def test_consult_status(stats: Analytics) -> None:
    u = User(stats=stats)
    u.do(I.START)
    u.answer("ABCDABCDAB")
    assert stats.apply(delta_of(u.conv, u.conv, ({"type": A.CONSULT_ACK},), LINE_A, u.now) or {}) is True
    lead = stats.lead(u.lead_id)
    assert lead is not None and (lead.consult, lead.consult_at) == ("new", u.now)
    assert stats.open_consultations() == 1
    assert stats.set_consult_status(u.lead_id, "contacted", by="op", now=u.now + 60)
    assert stats.open_consultations() == 0
    assert not stats.set_consult_status("line:nobody:1-1", "booked", by="op", now=u.now)
    with pytest.raises(InvalidInput):
        stats.set_consult_status(u.lead_id, "won", by="op", now=u.now)


def test_lead_properties() -> None:
    lead = Lead("x", "line", "U", started=T0, updated=T0, reached=4, answers="ABC")
    assert (lead.tier, lead.point, lead.a_count) == (None, None, 1)
    assert lead.status(T0 + 60) == "in_progress"
    assert lead.status(T0 + 8 * DAY) == "stopped"
