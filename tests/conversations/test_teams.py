"""The team store on a real Redis: area owners, reports merged per area with a version, the result
posted once, the last nudge's close, improvement actions."""

from __future__ import annotations

import json

import redis

from conversations import jobs, keys
from conversations.jobs import Job
from conversations.keys import TeamRef, ViewRef
from conversations.teams import MAX_ACTIONS, Action, TeamStore
from scoring.periods import Quarter

REF = TeamRef("T1", "C1")
Q = Quarter(2026, 1)
NOW = 1_775_001_600.0
POST = [{"type": "slack_post", "text": "result", "blocks": []}]
ENGAGEMENT = ("active_members", "updates_per_member", "logins_per_member")
QUALITY = ("complete_records", "duplicate_records")


def store(r: redis.Redis) -> TeamStore:
    teams = TeamStore(r)
    teams.register(REF, "本店", "Asia/Tokyo", "UADMIN", NOW)
    return teams


def mailbox(r: redis.Redis) -> list[Job]:
    return [Job.from_json(v) for v in r.hvals(jobs.mailbox(REF.tag[1:-1]))]


def test_owners_are_replaced_as_a_whole_with_an_audit_record(r: redis.Redis) -> None:
    teams = store(r)
    assert teams.owners(REF) == {}
    assert teams.set_owners(REF, {"engagement": "UA", "roi": "UB"}, "UADMIN", NOW, view=ViewRef("V1", "h1"))
    assert not teams.set_owners(REF, {"engagement": "UA"}, "UADMIN", NOW, view=ViewRef("V1", "h1"))  # a replay
    assert teams.owners(REF) == {"engagement": "UA", "roi": "UB"}
    teams.set_owners(REF, {"roi": "UC"}, "UADMIN", NOW + 1, post=POST)
    assert teams.owners(REF) == {"roi": "UC"}
    [audit, first] = teams.audit(REF, 2)
    assert (audit["kind"], audit["old"], audit["new"]) == ("owners", {"engagement": "UA", "roi": "UB"}, {"roi": "UC"})
    assert first["kind"] == "owners"
    assert [j.outputs for j in mailbox(r)] == [POST]


def test_an_owner_s_areas_merge_into_the_quarter(r: redis.Redis) -> None:
    teams = store(r)
    a = teams.submit(REF, Q, {"active_members": 80}, "UA", NOW, areas=["engagement"], replace=ENGAGEMENT, expect=0,
                     post=[{"type": "slack_ephemeral", "user": "UA", "text": "ok"}], result=False)
    assert a.applied and a.replaced == {}
    b = teams.submit(REF, Q, {"complete_records": 92, "duplicate_records": 3}, "UB", NOW + 5, areas=["data_quality"],
                     replace=QUALITY, expect=1)
    assert b.applied
    rep = teams.report(REF, Q)
    assert rep is not None
    assert dict(rep.values) == {"active_members": 80, "complete_records": 92, "duplicate_records": 3}
    assert rep.areas == {"engagement": ("UA", NOW), "data_quality": ("UB", NOW + 5)}
    assert (rep.version, rep.posted) == (2, "")  # the ephemeral was not the result
    # the owner corrects their area: its figures are replaced, a blank one removed, the others kept
    c = teams.submit(REF, Q, {"complete_records": 95}, "UB", NOW + 9, areas=["data_quality"], replace=QUALITY,
                     expect=2, post=POST)
    assert c.replaced == {"complete_records": 92, "duplicate_records": 3}
    rep = teams.report(REF, Q)
    assert rep is not None and dict(rep.values) == {"active_members": 80, "complete_records": 95}
    assert c.job is not None and rep.posted == c.job.id
    assert rep.has("engagement", ENGAGEMENT) and not rep.has("roi", ("repeat_sales_growth",))
    assert teams.audit(REF, 1)[0]["areas"] == ["data_quality"]


def test_a_submission_prepared_against_an_older_version_changes_nothing(r: redis.Redis) -> None:
    teams = store(r)
    teams.submit(REF, Q, {"active_members": 80}, "UA", NOW, areas=["engagement"], replace=ENGAGEMENT, expect=0)
    stale = teams.submit(REF, Q, {"complete_records": 92}, "UB", NOW, areas=["data_quality"], replace=QUALITY,
                         expect=0, post=POST, view=ViewRef("V2", "h"))
    assert (stale.applied, stale.stale, stale.job) == (False, True, None)
    rep = teams.report(REF, Q)
    assert rep is not None and dict(rep.values) == {"active_members": 80} and rep.posted == ""
    assert mailbox(r) == [] and not r.exists(keys.team_view_submitted(REF, ViewRef("V2", "h")))
    again = teams.submit(REF, Q, {"complete_records": 92}, "UB", NOW, areas=["data_quality"], replace=QUALITY,
                         expect=1, post=POST, view=ViewRef("V2", "h"))
    assert again.applied
    assert not teams.submit(REF, Q, {"complete_records": 1}, "UB", NOW, areas=["data_quality"], replace=QUALITY,
                            expect=2, view=ViewRef("V2", "h")).applied  # the same modal again: a replay


def test_a_whole_report_keeps_the_posted_mark_and_a_legacy_report_counts_its_figures(r: redis.Redis) -> None:
    teams = store(r)
    first = teams.submit(REF, Q, {"active_members": 80}, "UA", NOW, post=POST)
    assert first.job is not None
    teams.submit(REF, Q, {"active_members": 70}, "UA", NOW + 1)  # replaced as a whole, no post
    rep = teams.report(REF, Q)
    assert rep is not None and rep.posted == first.job.id and rep.areas == {} and rep.version == 2
    assert rep.has("engagement", ENGAGEMENT) and not rep.has("data_quality", QUALITY)


def test_close_commits_the_post_once_and_only_over_the_figures_it_read(r: redis.Redis) -> None:
    teams = store(r)
    teams.submit(REF, Q, {"active_members": 80}, "UA", NOW, areas=["engagement"], replace=ENGAGEMENT)
    assert teams.close(REF, Q, 0, POST, NOW) == 0  # rendered from version 0: the figures changed since
    assert mailbox(r) == []
    assert teams.close(REF, Q, 1, POST, NOW) == 1
    assert teams.close(REF, Q, 1, POST, NOW) == -1
    [job] = mailbox(r)
    rep = teams.report(REF, Q)
    assert rep is not None and rep.posted == job.id
    assert teams.audit(REF, 1)[0] == {"kind": "closed", "quarter": str(Q), "at": NOW}


def test_actions_are_kept_per_quarter_in_order_and_capped(r: redis.Redis) -> None:
    teams = store(r)
    acts = [Action(f"a{i}", "data_quality", f"重複を整理 {i}", "UB", "2026-06-30", "UA", NOW + i) for i in range(3)]
    assert teams.add_actions(REF, Q, acts[:2], "UA", NOW, view=ViewRef("V3", "h"), post=POST) is True
    assert teams.add_actions(REF, Q, acts[:2], "UA", NOW, view=ViewRef("V3", "h")) is False  # a replay
    assert teams.add_actions(REF, Q, acts[2:], "UA", NOW + 2) is True
    assert teams.actions(REF, Q) == acts and teams.actions(REF, Q.previous()) == []
    many = [Action(f"b{i}", "roi", "x", "UB", "2026-06-30", "UA", NOW + 10) for i in range(MAX_ACTIONS - 2)]
    assert teams.add_actions(REF, Q, many, "UA", NOW + 10) is None  # 3 + 10 > 12: nothing written
    assert len(teams.actions(REF, Q)) == 3
    audit = teams.audit(REF, 1)[0]
    assert audit["kind"] == "actions" and [a["id"] for a in audit["new"]] == ["a2"]
    assert json.loads(r.hget(keys.team_actions(REF, str(Q)), "a0"))["what"] == "重複を整理 0"
    assert len(mailbox(r)) == 1
