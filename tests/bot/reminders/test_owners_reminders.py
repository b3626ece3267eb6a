"""Reminders of a team with area owners (全員参加): the kickoff names the owners and last quarter's
actions; nudges mention only the owners still missing; the last nudge posts the result with the
missing areas shown as not reported, once."""

from __future__ import annotations

from typing import Any

from bot.slack.texts import t
from conversations.kpi_catalog import load_catalog
from conversations.teams import Action
from scoring.periods import Quarter
from tests.bot.reminders.conftest import World, at

Q4 = Quarter(2025, 4)
Q1 = Quarter(2026, 1)  # the quarter April's reminders ask for
KICKOFF = at("2026-04-01T10:00:00")
DAY = 86400
ALICE, BOB = "U0ALICE", "U0BOB"
OWNERS = {"engagement": ALICE, "data_quality": ALICE, "satisfaction": ALICE, "roi": BOB, "efficiency": BOB}
PERIOD = "2025年度 第4四半期（2026年1〜3月）"
CATALOG = load_catalog()
NAMES = {a: CATALOG.name(a, "ja") for a in CATALOG.area_keys}


def sections(msg: dict[str, Any]) -> list[str]:
    return [b["text"]["text"] for b in msg["blocks"] if b["type"] == "section"]


def owned_team(world: World) -> Any:
    ref = world.team("C1", "本店")
    world.teams.set_owners(ref, OWNERS, "UADMIN", world.clock())
    return ref


def alice_reports(world: World, ref: Any, now: float) -> None:
    areas = ["engagement", "data_quality", "satisfaction"]
    keys = [k for a in areas for k in CATALOG.area(a).indicator_keys]
    report = world.teams.report(ref, Q1)
    done = world.teams.submit(ref, Q1, {"active_members": 80, "complete_records": 92, "satisfaction_score": 4.2},
                              ALICE, now, areas=areas, replace=keys, expect=report.version if report else 0)
    assert done.applied


def run_at(world: World, when: float) -> Any:
    world.clock.t = when
    return world.reminders.run(when)


def test_the_kickoff_names_each_owner_beside_their_area_and_last_quarter_s_actions(world: World) -> None:
    ref = owned_team(world)
    acts = [Action("a1", "data_quality", "重複データを毎月整理する", BOB, "2026-03-31", ALICE, KICKOFF - 60 * DAY)]
    world.teams.add_actions(ref, Q4, acts, ALICE, KICKOFF - 60 * DAY)
    run_at(world, KICKOFF)
    [msg] = world.slack.messages("C1")
    assert msg["text"] == t("ja", "remind_kickoff", period=PERIOD)
    lines = "\n".join(t("ja", "owner_line", area=NAMES[a], user=OWNERS[a]) for a in CATALOG.area_keys)
    action = t("ja", "kickoff_action_line", area=NAMES["data_quality"], what="重複データを毎月整理する", owner=BOB,
               due="2026-03-31")
    assert sections(msg) == [msg["text"], t("ja", "kickoff_owners", lines=lines),
                             t("ja", "kickoff_actions", lines=action)]
    assert msg["blocks"][-1]["elements"][0]["action_id"] == "kpi_open"


def test_nudges_mention_only_the_owners_still_missing(world: World) -> None:
    ref = owned_team(world)
    run_at(world, KICKOFF)
    alice_reports(world, ref, KICKOFF + DAY)
    assert run_at(world, KICKOFF + 7 * DAY).queued == ["slack T1/C1 nudge7 for 2026-Q1"]
    nudge = world.slack.messages("C1")[-1]
    missing = f"{NAMES['roi']}（<@{BOB}>）、{NAMES['efficiency']}（<@{BOB}>）"
    assert sections(nudge) == [t("ja", "remind_nudge", period=PERIOD), t("ja", "nudge_missing", missing=missing)]
    assert ALICE not in str(nudge["blocks"])  # she reported: not pinged again


def test_the_last_nudge_posts_the_result_with_the_missing_area_once(world: World) -> None:
    ref = owned_team(world)
    run_at(world, KICKOFF)
    alice_reports(world, ref, KICKOFF + DAY)
    run_at(world, KICKOFF + 7 * DAY)
    before = len(world.slack.messages("C1"))
    summary = run_at(world, KICKOFF + 14 * DAY)
    assert summary.queued == ["slack T1/C1 nudge14 for 2026-Q1 (result, 2 area(s) missing)"]
    post, chart = world.slack.messages("C1")[before:]
    assert post["text"].startswith(f"CRM KPI {PERIOD}")
    fields = next(b for b in post["blocks"] if "fields" in b)["fields"]
    assert [f["text"] for f in fields][3:] == [
        f"*{NAMES[a]}*\n" + t("ja", "not_reported_owner", user=BOB) for a in ("roi", "efficiency")]
    assert "/10" in fields[0]["text"] and "/10" in fields[2]["text"]
    context = [e["text"] for b in post["blocks"] if b["type"] == "context" for e in b["elements"]]
    assert t("ja", "closed_note") in context and t("ja", "submitted_by", user=ALICE) in context
    assert "未報告" in chart["files"][0]["alt_txt"]  # the radar says which areas it lacks
    report = world.teams.report(ref, Q1)
    assert report is not None and report.posted
    # the pass again, and a second clock: nothing more
    for _ in range(3):
        run_at(world, KICKOFF + 14 * DAY + 3600)
    _, other = world.another_clock()
    other.run(KICKOFF + 14 * DAY + 7200)
    assert len(world.slack.messages("C1")) == before + 2
    # BOB reports late: the result is updated with every area
    keys = [k for a in ("roi", "efficiency") for k in CATALOG.area(a).indicator_keys]
    world.teams.submit(ref, Q1, {"repeat_sales_growth": -3, "report_time_saved": 25}, BOB, KICKOFF + 15 * DAY,
                       areas=["roi", "efficiency"], replace=keys, expect=report.version)
    assert sorted(world.teams.report(ref, Q1).areas) == sorted(OWNERS)


def test_a_complete_quarter_gets_no_nudge_and_nothing_in_gets_the_usual_one(world: World) -> None:
    done, silent = owned_team(world), world.team("C2", "二号店")
    world.teams.set_owners(silent, OWNERS, "UADMIN", world.clock())
    run_at(world, KICKOFF)
    keys = [k for a in CATALOG.area_keys for k in CATALOG.area(a).indicator_keys]
    world.teams.submit(done, Q1, {"active_members": 80}, ALICE, KICKOFF + DAY, areas=list(CATALOG.area_keys),
                       replace=keys, expect=0)
    summary = run_at(world, KICKOFF + 14 * DAY)
    assert ("slack T1/C1 nudge14 for 2026-Q1", "already reported") in summary.skipped
    assert summary.queued == ["slack T1/C2 nudge14 for 2026-Q1"]  # nothing in: a nudge, not an empty result
    nudge = world.slack.messages("C2")[-1]
    everyone = "、".join(f"{NAMES[a]}（<@{OWNERS[a]}>）" for a in CATALOG.area_keys)
    assert sections(nudge)[1] == t("ja", "nudge_missing", missing=everyone)
