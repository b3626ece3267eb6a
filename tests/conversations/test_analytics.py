"""The operator's figures (conversations.analytics): what a step changed (pure), and the figures kept
from it on a real Redis (applied as the worker applies them, minus the worker)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Any

import pytest
import redis

from conversations import analytics, inputs
from conversations.analytics import Analytics, Lead, delta_of
from conversations.errors import InvalidInput
from conversations.inputs import Input
from conversations.keys import Subject
from conversations.machine import Conv, Settings, build
from conversations.outputs import ConsultAck

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
        self.var = ""  # the experiments' variants each new diagnosis gets, as the core's assigner gives them

    def send(self, inp: Input, dt: float = 20.0) -> dict[str, Any] | None:
        self.now += dt
        step = M.step(self.conv, inp, self.now)
        after = step.conv if step.changed else self.conv
        if self.var and after is not None and after.sid != self.conv.sid:  # a diagnosis begins (bot/core.py)
            after = replace(after, var=self.var)
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
            self.send(Input(inputs.ANSWER, choice=x, q=self.conv.q, sid=self.conv.sid), dt)

    @property
    def lead_id(self) -> str:
        return analytics.lead_id(self.subject.transport, self.subject.user_id, self.conv.sid, self.conv.begun)


# ---- delta_of (pure) ------------------------------------------------------------------------------


def test_a_step_that_changes_nothing_counted_has_no_delta() -> None:
    u = User()
    u.do(inputs.START)
    assert u.do(inputs.TEXT) is None  # a hint: the record is unchanged
    assert u.send(Input(inputs.ANSWER, choice="A", q=5, sid=1)) is None  # stale: unchanged


def test_start_answer_and_finish() -> None:
    u = User()
    d = u.do(inputs.START)
    assert d is not None
    lead = d["lead"]
    assert lead["id"] == u.lead_id == f"line:{LINE_A.user_id}:1-{round((T0 + 20) * 1000):x}"
    assert (lead["reached"], lead["answers"], lead["open"], lead["n"], lead["begun"]) == (1, "", 1, 1, T0 + 20)
    d = u.send(Input(inputs.ANSWER, choice="B", q=0, sid=1))
    assert d is not None and (d["lead"]["reached"], d["lead"]["answers"]) == (2, "B")
    u.answer("AAAAAAAAA")
    last = u.deltas[-1]["lead"]
    assert (last["finished"], last["answers"], last["tier"], last["reached"], last["open"]) == (
        u.now, "BAAAAAAAAA", "A", 10, 0)


def test_back_keeps_the_highest_question_reached() -> None:
    u = User()
    u.do(inputs.START)
    u.answer("AB")
    d = u.send(Input(inputs.BACK, q=2, sid=1))
    assert d is not None and d["lead"]["reached"] == 2 and d["lead"]["answers"] == "A"  # shown Q2 again


def test_restart_ends_the_diagnosis_under_way() -> None:
    u = User()
    u.do(inputs.START)
    first = u.lead_id
    d = u.do(inputs.RESTART)  # start over? the diagnosis is still under way
    assert d is not None and "ended" not in d and d["lead"]["id"] == first and d["lead"]["open"] == 1
    d = u.send(Input(inputs.RESTART_YES, sid=1))  # yes
    assert d is not None and d["ended"] == first and d["lead"]["id"] == u.lead_id != first


def test_unfollow_mid_diagnosis_closes_it_and_counts_the_unfollow() -> None:
    u = User()
    u.do(inputs.FOLLOW)
    u.do(inputs.START)
    lead = u.lead_id
    d = u.do(inputs.UNFOLLOW)  # the record is deleted
    assert d is not None
    assert (d["follow"], d["person"]) == (0, f"line:{LINE_A.user_id}")
    assert d["lead"]["id"] == lead and d["lead"]["open"] == 0 and d["lead"]["n"] == 2 and "ended" not in d


def test_follow_without_a_diagnosis() -> None:
    d = User().do(inputs.FOLLOW)
    assert d == {"at": T0 + 20, "follow": 1, "person": f"line:{LINE_A.user_id}"}


def test_try_it_users_are_marked_as_tests() -> None:
    d = User(Subject("web", "w1")).do(inputs.START)
    assert d is not None and d["test"] == 1


def test_a_consultation_output_marks_the_lead() -> None:
    u = User()
    u.do(inputs.START)
    u.answer("ABCDABCDAB")
    d = delta_of(u.conv, u.conv, (ConsultAck(u.conv.sid),), LINE_A, u.now + 5)
    assert d is not None and d["lead"]["consult"] == 1 and d["lead"]["id"] == u.lead_id


def test_a_record_from_before_begun_keeps_one_lead_id() -> None:
    old = Conv.from_json('{"s":"asking","sid":3,"t":1767225600.5,"n":4,"q":2,"a":"AB"}')
    u = User()
    u.conv = old
    d1 = u.send(Input(inputs.ANSWER, choice="C", q=2, sid=3))
    d2 = u.send(Input(inputs.ANSWER, choice="C", q=3, sid=3))
    assert d1 is not None and d2 is not None
    assert d1["lead"]["id"] == d2["lead"]["id"] == analytics.lead_id("line", LINE_A.user_id, 3, 1767225600.5)
    assert "ended" not in d1


# ---- the figures on Redis --------------------------------------------------------------------------


@pytest.fixture
def stats(r: redis.Redis) -> Analytics:
    return Analytics(r, clock=lambda: T0 + 30 * DAY)


def q(funnel: dict[str, Any], n: int) -> dict[str, Any]:
    return funnel["questions"][n - 1]


def test_one_finished_diagnosis(stats: Analytics) -> None:
    u = User(stats=stats)
    u.do(inputs.START)
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
    u.do(inputs.START)
    u.answer("ABC")
    u.send(Input(inputs.BACK, q=3, sid=1))
    u.answer("D")
    for d in u.deltas:
        stats.apply(d)
    once = stats.funnel(), stats.leads()
    for d in u.deltas:  # a retried job applies its delta again
        stats.apply(d)
    assert (stats.funnel(), stats.leads()) == once
    for d in reversed(u.deltas):  # an older job applied after newer ones (a retry that waited)
        stats.apply(d)
    assert (stats.funnel(), stats.leads()) == once
    [lead] = once[1]
    assert (lead.answers, lead.reached) == ("ABD", 4)


def test_dates_are_japan_time_and_filter_by_start(stats: Analytics) -> None:
    # 2026-01-01 23:59 and 2026-01-02 00:01 Japan time
    early = User(Subject("line", "U1"), now=T0 + 15 * 3600 - 80, stats=stats)
    early.do(inputs.START)
    late = User(Subject("line", "U2"), now=T0 + 15 * 3600 + 40, stats=stats)
    late.do(inputs.START)
    assert analytics.japan_date(early.conv.begun) == date(2026, 1, 1)
    assert analytics.japan_date(late.conv.begun) == date(2026, 1, 2)
    assert stats.funnel(date(2026, 1, 1), date(2026, 1, 1))["started"] == 1
    assert stats.funnel(date(2026, 1, 2))["started"] == 1
    assert stats.funnel(end=date(2026, 1, 2))["started"] == 2
    assert stats.funnel(date(2026, 1, 3))["started"] == 0
    assert [x.user_id for x in stats.leads(start=date(2026, 1, 2))] == ["U2"]


def test_consult_status(stats: Analytics) -> None:
    u = User(stats=stats)
    u.do(inputs.START)
    u.answer("ABCDABCDAB")
    assert stats.apply(delta_of(u.conv, u.conv, (ConsultAck(u.conv.sid),), LINE_A, u.now) or {}) is True
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


def test_a_restart_ends_the_first_diagnosis_at_once(stats: Analytics) -> None:
    stats.clock = lambda: T0 + 600  # minutes later: the first would still be in progress
    u = User(stats=stats)
    u.do(inputs.START)
    u.answer("AB")
    first = u.lead_id
    u.do(inputs.RESTART)
    u.send(Input(inputs.RESTART_YES, sid=1))
    f = stats.funnel()
    assert (f["started"], f["in_progress"]) == (2, 1)
    assert [x["dropoff"] for x in f["questions"][:3]] == [0.0, 0.0, 1.0]  # the first stopped at Q3
    assert (f["stopped"], q(f, 3)["stopped"], q(f, 1)["in_progress"]) == (1, 1, 1)  # the second at Q1
    lead = stats.lead(first)
    assert lead is not None and lead.closed and lead.status(T0 + 600) == "stopped"
    assert [x.id for x in stats.leads(status="in_progress")] == [u.lead_id]


def test_an_unfollow_mid_diagnosis_stops_it_and_forgets_the_name(stats: Analytics, r: redis.Redis) -> None:
    stats.clock = lambda: T0 + 600
    u = User(stats=stats)
    u.do(inputs.FOLLOW)
    stats.set_name("line", LINE_A.user_id, "山田\x00 商店  ")
    assert stats.followers() == 1
    u.do(inputs.START)
    u.answer("A")
    [lead] = stats.leads()
    assert (lead.name, lead.status(T0 + 600)) == ("山田 商店", "in_progress")
    u.do(inputs.UNFOLLOW)
    [lead] = stats.leads()
    assert (lead.name, lead.status(T0 + 600), lead.reached, lead.answers) == ("", "stopped", 2, "A")
    assert stats.followers() == 0 and stats.funnel()["in_progress"] == 0
    stats.set_name("line", LINE_A.user_id, "late profile")  # a profile fetch that lost the race
    assert analytics.name_of(r, f"line:{LINE_A.user_id}") == ""
    u.do(inputs.FOLLOW)
    assert stats.followers() == 1


def test_an_older_follow_applied_after_an_unfollow_does_not_count(stats: Analytics) -> None:
    u = User()
    follow = u.do(inputs.FOLLOW)
    unfollow = u.do(inputs.UNFOLLOW)
    assert follow is not None and unfollow is not None
    stats.apply(unfollow)
    stats.apply(follow)  # a retried follow job
    assert stats.followers() == 0


def synthetic(i: int, channel: str = "line", *, begun: float = T0, reached: int = 3) -> dict[str, Any]:
    user = f"U{i:05d}"
    return {"at": begun, "lead": {"id": analytics.lead_id(channel, user, 1, begun + i), "channel": channel,
                                  "user": user,
                                  "sid": 1, "n": 1, "begun": begun + i, "updated": begun + i, "reached": reached,
                                  "remind": 0, "open": 0, "answers": "AB"}}


def test_leads_page_newest_first_across_channels(stats: Analytics) -> None:
    for i in range(230):
        stats.apply(synthetic(i, "line" if i % 3 else "slack"))
    everyone = stats.leads(limit=None)
    assert [x.started for x in everyone] == [T0 + i for i in reversed(range(230))]
    assert stats.leads(limit=5, offset=200) == everyone[200:205]
    assert len(stats.leads()) == 200
    assert [x.channel for x in stats.leads(channel="slack", limit=None)] == ["slack"] * 77
    assert stats.funnel()["started"] == 230
    assert [x["shown"] for x in stats.funnel()["questions"][:4]] == [230, 230, 230, 0]


def test_series_by_day_week_and_month(stats: Analytics) -> None:
    jst_noon = analytics.day_start(date(2026, 1, 5)) + 3 * 3600  # a Monday
    for i, days in enumerate([0, 1, 6, 7, 30]):
        stats.apply(synthetic(i, begun=jst_noon + days * DAY))
    by_day = stats.series(date(2026, 1, 5), date(2026, 1, 7))
    assert [(x["label"], x["started"]) for x in by_day] == [("2026-01-05", 1), ("2026-01-06", 1), ("2026-01-07", 0)]
    by_week = stats.series(date(2026, 1, 1), date(2026, 1, 31), "week")
    assert [(x["label"], x["started"]) for x in by_week] == [
        ("2025-12-29", 0), ("2026-01-05", 3), ("2026-01-12", 1), ("2026-01-19", 0), ("2026-01-26", 0)]
    by_month = stats.series(date(2026, 1, 10), date(2026, 2, 28), "month")
    assert [(x["label"], x["started"]) for x in by_month] == [("2026-01", 2), ("2026-02", 1)]  # from the 10th
    with pytest.raises(InvalidInput):
        stats.series(date(2026, 1, 1), date(2026, 1, 2), "year")


def test_a_delta_that_is_not_one_is_refused(stats: Analytics) -> None:
    bad = synthetic(1)
    bad["lead"] |= {"finished": T0, "answers": "ABC", "tier": "A"}
    with pytest.raises(InvalidInput):
        stats.apply(bad)
    worse = synthetic(2, reached=11)
    with pytest.raises(InvalidInput):
        stats.apply(worse)


def test_every_delta_of_a_finished_diagnosis_says_it_finished(stats: Analytics) -> None:
    """Absolute values: the opt-in after the result alone is enough to know the diagnosis finished."""
    u = User()
    u.do(inputs.START)
    u.answer("AAAAAAAABB")
    optin = u.send(Input(inputs.OPT_IN))
    assert optin is not None
    stats.apply(optin)
    [lead] = stats.leads()
    assert (lead.tier, lead.answers, lead.reached, lead.remind, lead.finished) == ("B", "AAAAAAAABB", 10, True,
                                                                                  u.deltas[-2]["lead"]["finished"])


def test_a_kept_result_of_an_earlier_diagnosis_is_not_this_ones() -> None:
    """Diagnosis 2 expired and was put to rest: the record is "done" with diagnosis 1's result, and a
    later step's delta about diagnosis 2 does not call it finished."""
    u = User()
    u.do(inputs.START)
    u.answer("ABABABABAB")
    u.do(inputs.START)
    u.answer("A")
    u.do(inputs.TEXT, dt=8 * DAY)  # expired: put to rest
    assert (u.conv.state, u.conv.sid, u.conv.last) == ("done", 2, "ABABABABAB")
    d = u.send(Input(inputs.OPT_IN))
    assert d is not None and d["lead"]["id"] == u.lead_id and "finished" not in d["lead"]
    assert d["lead"]["reached"] == 0 and d["lead"]["open"] == 0


def test_a_diagnosis_from_before_the_figures_seen_only_as_it_ends_is_no_lead(stats: Analytics) -> None:
    u = User(stats=stats)
    u.conv = Conv.from_json('{"s":"asking","sid":3,"t":1767225600.5,"n":4,"q":2,"a":"AB"}')  # no "b": stored before
    d = u.do(inputs.TEXT, dt=8 * DAY)  # it expired: put to rest, never shown again
    assert d is not None and d["lead"]["reached"] == 0
    assert stats.leads() == [] and stats.funnel()["started"] == 0
    u.do(inputs.START)
    assert [x.number for x in stats.leads()] == [4]


def test_the_result_shown_after_an_unfinished_retake_expired_does_not_finish_the_retake() -> None:
    u = User()
    u.do(inputs.START)
    u.answer("AAAAAAAAAB")
    u.do(inputs.START)
    u.answer("AB")
    retake = u.lead_id
    d = u.do(inputs.RESULT, dt=8 * 86400)  # 「結果」 after the retake expired: the first result, shown again
    assert d is not None and d["lead"]["id"] == retake
    assert d["lead"]["open"] == 0 and "finished" not in d["lead"] and "tier" not in d["lead"]
