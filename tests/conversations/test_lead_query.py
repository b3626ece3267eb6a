"""The console's leads list (conversations.lead_query) on a real Redis: every filter, search, sort and page
answered from the indexes equals the same list worked out by hand from every lead; the totals too. And an
operator's notes, assignee and history (conversations.lead_work)."""

from __future__ import annotations

import hashlib
import itertools
from datetime import date
from typing import Any

import pytest
import redis

from conversations import analytics
from conversations.analytics import STATUSES, Analytics, Lead
from conversations.errors import InvalidInput
from conversations.lead_query import LeadQuery, Query, started_at
from conversations.lead_work import NOTE_MAX, NOTES_MAX, LeadWork
from scoring import TIERS

T0 = 1_767_225_600.0  # 2026-01-01 09:00 Japan time
DAY = 86400.0
NOW = T0 + 30 * DAY
ANSWERS = {"A": "AAAAAAAAAA", "B": "AAAAAAABBC", "C": "DDDDDDDDDD"}


def shown(user: str) -> str:
    return "u#" + hashlib.sha256(user.encode()).hexdigest()[:10]


def lead_delta(i: int, kind: str, channel: str, begun: float) -> dict[str, Any]:
    """Lead ``i``: finished with tier ``kind`` (A/B/C), in progress ("open") or stopped ("stopped")."""
    user = f"U{i:05d}x"
    lead: dict[str, Any] = {"id": analytics.lead_id(channel, user, 1, begun), "channel": channel, "user": user,
                            "sid": 1, "n": 1, "begun": begun, "updated": begun, "reached": 3, "remind": 0,
                            "open": int(kind == "open"), "answers": "AB"}
    if kind in ANSWERS:
        lead |= {"answers": ANSWERS[kind], "finished": begun + 60, "tier": kind, "reached": 10}
    if i % 5 == 0:
        lead["consult"] = 1
    return {"at": begun, "lead": lead}


@pytest.fixture
def stats(r: redis.Redis) -> Analytics:
    """260 leads over 40 days on two channels: every kind, some with a consultation, some with a name."""
    a = Analytics(r, clock=lambda: NOW)
    kinds = ["A", "B", "C", "open", "stopped", "B", "C"]
    for i in range(260):
        begun = T0 + i * 0.1 * DAY + (i % 5)  # before NOW - 7 days: no in-progress entry pruned
        kind = kinds[i % len(kinds)]
        if kind == "open":
            begun = NOW - DAY - i  # recent: still in progress
        d = lead_delta(i, kind, "slack" if i % 4 == 0 else "line", round(begun, 3))
        a.apply(d, now=d["at"])
        if i % 5 == 0 and i % 3:
            a.set_consult_status(d["lead"]["id"], STATUSES[1 + i % 3], by="op", now=NOW)
        if i % 11 == 0:
            a.set_name(d["lead"]["channel"], d["lead"]["user"], f"店舗{i} Shop")
    return a


def model(stats: Analytics, q: Query) -> list[Lead]:
    """The same list, from every lead, by hand."""
    chans = stats.channels(q.channel)
    every = stats.leads(limit=None, channel=q.channel)
    names = stats.names([f"{x.channel}:{x.user_id}" for x in every])
    needle = q.search.casefold()

    def keep(x: Lead) -> bool:
        found = (not needle or needle in names.get(f"{x.channel}:{x.user_id}", "").casefold()
                 or needle in x.user_id.casefold() or needle in shown(x.user_id).casefold())
        return (found and x.channel in chans and (q.tier is None or x.tier == q.tier)
                and (q.progress is None or x.status(NOW, stats.expiry) == q.progress)
                and (q.consult is None or x.consult == q.consult)
                and (q.start is None or analytics.japan_date(x.started) >= q.start)
                and (q.end is None or analytics.japan_date(x.started) <= q.end))

    out = sorted((x for x in every if keep(x)), key=lambda x: (x.started, x.id), reverse=True)
    if q.sort == "tier":
        out.sort(key=lambda x: TIERS.index(x.tier) if x.tier else 9)
    elif q.sort == "status":
        out.sort(key=lambda x: STATUSES.index(x.consult) if x.consult else 9)
    return out


QUERIES = [
    Query(), Query(tier="B"), Query(progress="finished"), Query(progress="stopped"), Query(progress="in_progress"),
    Query(consult="new"), Query(consult="booked"), Query(channel="slack"), Query(channel="line", tier="C"),
    Query(start=date(2026, 1, 10), end=date(2026, 1, 25)), Query(search="店舗1"), Query(search="shop"),
    Query(search="U0012"), Query(search=shown("U00042x")[3:9]), Query(progress="stopped", consult="new"),
]


@pytest.mark.parametrize("sort", ["date", "tier", "status"])
def test_every_page_and_total_equal_the_list_by_hand(stats: Analytics, sort: str) -> None:
    lq = LeadQuery(stats, shown)
    for base in QUERIES:
        q = Query(**{**base.__dict__, "sort": sort})
        expected = model(stats, q)
        assert expected or base.search, q  # every query finds something (but a search may not)
        for offset, limit in [(0, 50), (50, 50), (190, 25), (205, 10), (len(expected) - 3, 50)]:
            got = lq.page(q, offset=max(0, offset), limit=limit)
            assert got.total == len(expected), q
            assert [x.id for x in got.leads] == [x.id for x in expected[max(0, offset):max(0, offset) + limit]], \
                (q, offset)


def test_searches_find_a_name_a_user_id_and_the_shown_id(stats: Analytics) -> None:
    lq = LeadQuery(stats, shown)
    assert [x.user_id for x in lq.page(Query(search=" 店舗22 SHOP"), offset=0, limit=10).leads] == ["U00022x"]
    assert [x.user_id for x in lq.page(Query(search="u00033X"), offset=0, limit=10).leads] == ["U00033x"]
    assert [x.user_id for x in lq.page(Query(search=shown("U00101x")), offset=0, limit=10).leads] == ["U00101x"]
    assert lq.page(Query(search="nobody"), offset=0, limit=10).total == 0


def test_a_lead_is_found_by_its_start_millisecond(stats: Analytics) -> None:
    lead = stats.leads(limit=1)[0]
    assert lead.id in started_at(stats, round(lead.started * 1000))
    assert started_at(stats, round(lead.started * 1000) + 1) == []


def test_status_changes_are_kept_in_order_and_only_when_they_change(stats: Analytics) -> None:
    lead = stats.leads(tier="A", limit=1)[0]
    work = LeadWork(stats.r, clock=lambda: NOW)
    start = len(work.history(lead.id))
    assert stats.set_consult(lead.id, "contacted", by="佐藤", now=NOW + 1) == 1
    assert stats.set_consult(lead.id, "contacted", by="佐藤", now=NOW + 2) == 2  # no change: no entry
    assert stats.set_consult(lead.id, "booked", by="鈴木", now=NOW + 3) == 1
    assert stats.set_consult("line:nobody:1-0", "booked", by="x", now=NOW) == 0
    got = work.history(lead.id)[start:]
    assert [(c.by, c.field, c.before, c.after, c.at) for c in got] == [
        ("佐藤", "status", lead.consult, "contacted", NOW + 1), ("鈴木", "status", "contacted", "booked", NOW + 3)]


def test_notes_assignee_and_history(stats: Analytics) -> None:
    lead = stats.leads(tier="B", limit=1)[0]
    clock = iter(itertools.count(NOW, 10.0))
    work = LeadWork(stats.r, clock=lambda: next(clock))
    assert work.add_note(lead.id, "  お電話しました。\r\n来週もう一度。 ", by="佐藤", form_id="f1") == 1
    assert work.add_note(lead.id, "お電話しました。", by="佐藤", form_id="f1") == 2  # the same form again
    assert work.add_note(lead.id, "資料を送付", by="鈴木", form_id="f2") == 1
    assert work.add_note("line:nobody:1-0", "x", by="a", form_id="f3") == 0
    for bad in ("", "   ", "x" * (NOTE_MAX + 1)):
        with pytest.raises(InvalidInput):
            work.add_note(lead.id, bad, by="a", form_id="f4")
    notes = work.notes(lead.id)
    assert [(n.by, n.text) for n in notes] == [("佐藤", "お電話しました。\n来週もう一度。"), ("鈴木", "資料を送付")]
    assert notes[0].at < notes[1].at
    assert work.assign(lead.id, " 佐藤 ", by="鈴木") == 1
    assert work.assign(lead.id, "佐藤", by="鈴木") == 2
    assert work.assign(lead.id, "", by="佐藤") == 1
    assert work.assign("line:nobody:1-0", "a", by="b") == 0
    assert [(c.field, c.before, c.after, c.by) for c in work.history(lead.id)] == [
        ("assignee", "", "佐藤", "鈴木"), ("assignee", "佐藤", "", "佐藤")]
    assert stats.lead(lead.id).assignee == ""  # type: ignore[union-attr]
    assert work.assignees() == ["佐藤"]


def test_notes_are_capped(stats: Analytics) -> None:
    lead = stats.leads(limit=1)[0]
    work = LeadWork(stats.r, clock=lambda: NOW)
    for i in range(NOTES_MAX + 3):
        work.add_note(lead.id, f"n{i}", by="a", form_id=f"f{i}")
    texts = [n.text for n in work.notes(lead.id)]
    assert len(texts) == NOTES_MAX and texts[0] == "n3" and texts[-1] == f"n{NOTES_MAX + 2}"
