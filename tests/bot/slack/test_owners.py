"""Every department (全員参加): area owners report their own areas; the team's result is posted once,
complete, whatever the order, the double submits and the races."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from bot.slack import blocks as slack_blocks
from conversations.keys import TeamRef
from conversations.teams import Report, TeamStore
from scoring.periods import Quarter
from tests.bot.slack.conftest import (
    ALICE,
    BASE,
    BASE_STORED,
    BOB,
    CH,
    P_Q1_2026,
    Q1_2026,
    TEAM_NAME,
    WS,
    SlackEnv,
    area_names,
    context_of,
    fields_of,
    form_values,
    in_view,
    txt,
)
from tests.bot.slack.test_history_targets_home import home_opened
from tests.fakes.slack_signing import interaction_body, view_submission_payload

REF = TeamRef(WS, CH)
CAROL = "U0CAROL"
ALICE_AREAS = ("engagement", "data_quality", "satisfaction")
BOB_AREAS = ("roi", "efficiency")
OWNERS = {a: ALICE for a in ALICE_AREAS} | {a: BOB for a in BOB_AREAS}
ALICE_FIGURES = {k: BASE[k] for k in ("active_members", "updates_per_member", "complete_records", "satisfaction_score")}
BOB_FIGURES = {k: BASE[k] for k in ("repeat_sales_growth", "f2_rate", "report_time_saved", "entry_time_saved")}


def choose_owners(env: SlackEnv, owners: dict[str, str | None], user: str = ALICE) -> Any:
    env.command("owners", user=user)
    view = env.fake.opened_views()[-1]
    assert view["callback_id"] == slack_blocks.OWNERS_CALLBACK
    return env.submit(view, {f"owner:{a}": {f"owner:{a}": owners.get(a)} for a in env.catalog.area_keys}, user=user)


@pytest.fixture
def owned(slack_env: SlackEnv) -> SlackEnv:
    slack_env.setup_team()
    choose_owners(slack_env, dict(OWNERS))
    return slack_env


def form(env: SlackEnv, view: dict[str, Any], figures: dict[str, str]) -> dict[str, dict[str, Any]]:
    return in_view(view, form_values(env.catalog, figures))


def inputs(view: dict[str, Any]) -> list[str]:
    return [b["block_id"] for b in view["blocks"] if b["type"] == "input" and b["block_id"] != "quarter"]


def result_posts(env: SlackEnv) -> list[dict[str, Any]]:
    return env.team_posts(CH)


def test_owners_modal_stores_the_owners_and_announces_them(slack_env: SlackEnv) -> None:
    slack_env.setup_team()
    slack_env.command("owners")
    view = slack_env.fake.opened_views()[-1]
    assert [b["block_id"] for b in view["blocks"] if b["type"] == "input"] == [
        f"owner:{a}" for a in slack_env.catalog.area_keys]
    assert all(b["element"]["type"] == "users_select" and b["optional"] for b in view["blocks"] if b["type"] == "input")
    res = slack_env.submit(view, {f"owner:{a}": {f"owner:{a}": o} for a, o in OWNERS.items()})
    assert res.get_data() == b""
    assert slack_env.teams.owners(REF) == OWNERS
    names = area_names(slack_env)
    lines = "\n".join(txt("owner_line", area=names[a], user=OWNERS[a]) for a in slack_env.catalog.area_keys)
    assert slack_env.channel_messages(CH)[-1]["text"] == txt("owners_post", user=ALICE, lines=lines)
    # the modal opens again with them chosen
    slack_env.command("owners", user=BOB)
    again = slack_env.fake.opened_views()[-1]
    assert [b["element"].get("initial_user") for b in again["blocks"] if b["type"] == "input"] == [
        OWNERS[a] for a in slack_env.catalog.area_keys]
    # a picker holding something that is no user ID is refused, nothing changes
    bad = slack_env.submit(again, {"owner:roi": {"owner:roi": "#general"}}, user=BOB)
    assert bad.get_json() == {"response_action": "errors", "errors": {"owner:roi": txt("err_user")}}
    assert slack_env.teams.owners(REF) == OWNERS


def test_an_owner_s_form_shows_their_areas_and_the_rest_read_only(owned: SlackEnv) -> None:
    alice = owned.open_report(user=ALICE)
    keys = [f"ind:{k}" for a in ALICE_AREAS for k in owned.catalog.area(a).indicator_keys]
    assert inputs(alice) == keys
    names = area_names(owned)
    assert txt("report_intro_owner", team=TEAM_NAME, areas="、".join(names[a] for a in ALICE_AREAS)) in str(alice)
    readonly = [b["elements"][0]["text"] for b in alice["blocks"] if b["type"] == "context"]
    assert readonly == [f"{txt('owner_of', user=BOB)}\n{txt('readonly_missing')}"] * 2
    # someone who owns no area (the consultant) gets the whole form
    assert len(inputs(owned.open_report(user=CAROL))) == 18


def test_two_owners_each_report_their_areas_and_the_result_posts_once_complete(owned: SlackEnv) -> None:
    owned.report(ALICE_FIGURES, user=ALICE)
    assert result_posts(owned) == []
    names = area_names(owned)
    missing = "、".join(f"{names[a]}（<@{BOB}>）" for a in BOB_AREAS)
    assert owned.ephemerals(CH, ALICE)[-1] == txt(
        "partial_saved", areas="、".join(names[a] for a in ALICE_AREAS), missing=missing)
    # BOB's form shows what ALICE reported
    bob = owned.open_report(user=BOB)
    shown = [b["elements"][0]["text"] for b in bob["blocks"] if b["type"] == "context"]
    assert shown[1] == f"{txt('owner_of', user=ALICE)}\n" + txt(
        "readonly_in", user=ALICE, figures="必要項目がそろった顧客データ 92%")
    owned.submit(bob, form(owned, bob, BOB_FIGURES), user=BOB)

    [post] = result_posts(owned)
    assert post["text"] == f"CRM KPI {P_Q1_2026}｜{TEAM_NAME}: {txt('overall')} 7.1/10"
    assert [f.split("\n")[1].split("` ")[1] for f in fields_of(post)] == [
        "7.5/10", "8.0/10", "10.0/10", "5.0/10", "5.0/10"]  # the five areas, complete
    assert context_of(post)[0] == txt("submitted_by_many", users=f"<@{ALICE}>、<@{BOB}>")
    report = owned.teams.report(REF, Q1_2026)
    assert report is not None and dict(report.values) == BASE_STORED
    assert {a: who for a, (who, _) in report.areas.items()} == OWNERS
    assert report.posted  # the post's job
    # its radar chart followed, with the numbers in the alt text
    [chart] = owned.fake.files(CH)
    assert chart["alt_txt"] == txt("chart_radar_alt", series=txt(
        "chart_series", name="2026年1〜3月",
        values="ユーザー参加度 7.5、データ品質 8.0、顧客満足度 10.0、投資収益率（ROI） 5.0、プロセス効率 5.0"))
    assert chart["data"].startswith(b"\x89PNG")
    assert owned.pending() == 0


def test_a_double_submit_and_an_unchanged_resubmission_post_nothing_more(owned: SlackEnv) -> None:
    owned.report(ALICE_FIGURES, user=ALICE)
    bob = owned.open_report(user=BOB)
    body = interaction_body(view_submission_payload(BOB, bob, form(owned, bob, BOB_FIGURES)))
    owned.ok(body)
    owned.ok(body)  # the same submission delivered twice
    assert len(result_posts(owned)) == 1
    owned.report(BOB_FIGURES, user=BOB)  # the form again, nothing changed
    assert len(result_posts(owned)) == 1
    assert owned.ephemerals(CH, BOB)[-1] == txt("no_change")
    # a real correction after the result is out posts the corrected result, saying so
    owned.report({**BOB_FIGURES, "f2_rate": "25"}, user=BOB)
    first, second = result_posts(owned)
    assert context_of(second)[0] == txt("replaced_by_many", users=f"<@{ALICE}>、<@{BOB}>", period=P_Q1_2026)
    assert "5.0/10" in fields_of(first)[3] and "7.0/10" in fields_of(second)[3]  # ROI (4 + 10) / 2


class RacingStore(TeamStore):
    """Both owners read the quarter before either commits: the two submissions race for real."""

    def __init__(self, client: Any, quarter: Quarter) -> None:
        super().__init__(client)
        self.quarter = quarter
        self.barrier = threading.Barrier(2, timeout=10)
        self.waited: set[int] = set()
        self.armed = False

    def report(self, ref: TeamRef, quarter: Quarter | str) -> Report | None:
        rep = super().report(ref, quarter)
        me = threading.get_ident()
        if self.armed and str(quarter) == str(self.quarter) and me not in self.waited:
            self.waited.add(me)
            self.barrier.wait()  # until the other submission has read the same version
        return rep


def test_two_owners_racing_to_report_post_the_result_once(owned: SlackEnv) -> None:
    racing = RacingStore(owned.r, Quarter.parse(Q1_2026))
    owned.rebuild_slack(teams=racing)
    alice, bob = owned.open_report(user=ALICE), owned.open_report(user=BOB)
    racing.armed = True
    bodies = [interaction_body(view_submission_payload(ALICE, alice, form(owned, alice, ALICE_FIGURES))),
              interaction_body(view_submission_payload(BOB, bob, form(owned, bob, BOB_FIGURES)))]
    answers: list[int] = []
    clients = [owned.http.application.test_client() for _ in bodies]

    def send(i: int) -> None:
        answers.append(owned_post(owned, clients[i], bodies[i]))

    threads = [threading.Thread(target=send, args=(i,)) for i in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    owned.settle()
    racing.armed = False
    assert answers == [200, 200] and len(racing.waited) == 2  # both read version 0 before either wrote
    [post] = result_posts(owned)  # one of them lost the race, prepared again on the other's figures, completed it
    assert all("/10" in f and txt("not_reported") not in f for f in fields_of(post))
    report = owned.teams.report(REF, Q1_2026)
    assert report is not None and dict(report.values) == BASE_STORED and report.version == 2
    assert len(owned.fake.files(CH)) == 1


def owned_post(env: SlackEnv, client: Any, body: bytes) -> int:
    import time

    from tests.bot.slack.conftest import SECRET
    from tests.fakes.slack_signing import signed_headers

    res = client.post("/slack/events", data=body, headers=signed_headers(SECRET, body, int(time.time())))
    return res.status_code


def test_owners_changed_while_the_form_was_open(owned: SlackEnv) -> None:
    """BOB's form shows ROI and efficiency; then they go to CAROL and BOB gets ALICE's areas: his old
    form reports nothing, and asks him to open it again (no area taken as reported blank)."""
    bob = owned.open_report(user=BOB)
    choose_owners(owned, {a: BOB for a in ALICE_AREAS} | {a: CAROL for a in BOB_AREAS})
    res = owned.submit(bob, form(owned, bob, BOB_FIGURES), user=BOB)
    assert res.get_json() == {"response_action": "errors", "errors": {"quarter": txt("err_owner_changed")}}
    assert owned.teams.report(REF, Q1_2026) is None and result_posts(owned) == []


def test_without_owners_one_person_reports_everything_as_before(slack_env: SlackEnv) -> None:
    slack_env.setup_team()
    choose_owners(slack_env, dict(OWNERS))
    choose_owners(slack_env, {})  # every picker cleared: no owners
    assert slack_env.teams.owners(REF) == {}
    assert slack_env.channel_messages(CH)[-1]["text"] == txt("owners_cleared_post", user=ALICE)
    assert len(inputs(slack_env.open_report(user=BOB))) == 18
    slack_env.report(BASE, user=BOB)
    [post] = result_posts(slack_env)
    assert context_of(post)[0] == txt("submitted_by", user=BOB)


def test_a_late_owner_updates_a_result_posted_at_the_last_nudge(owned: SlackEnv) -> None:
    owned.report(ALICE_FIGURES, user=ALICE)
    report = owned.teams.report(REF, Q1_2026)
    assert report is not None
    # the last nudge posted what was in (the reminders' close, tested with the reminders)
    assert owned.teams.close(REF, Quarter.parse(Q1_2026), report.version, [
        {"type": "slack_post", "text": "CRM KPI closed", "blocks": []}], owned.clock()) == 1
    owned.deliver()
    owned.report(BOB_FIGURES, user=BOB)
    closed, updated = result_posts(owned)
    assert closed["text"] == "CRM KPI closed"
    assert all(txt("not_reported") not in f for f in fields_of(updated))
    assert context_of(updated)[0] == txt("replaced_by_many", users=f"<@{ALICE}>、<@{BOB}>", period=P_Q1_2026)


def test_app_home_counts_a_quarter_reported_once_every_area_is_in(owned: SlackEnv) -> None:
    def status() -> str:
        home_opened(owned, CAROL)
        view = owned.fake.home_view(CAROL)
        assert view is not None
        return next(b["text"]["text"] for b in view["blocks"] if b.get("text", {}).get("text", "").startswith("*本店"))

    owned.report(ALICE_FIGURES, user=ALICE)
    assert f"⏳ {txt('home_missing', period=P_Q1_2026)}" in status()
    owned.report(BOB_FIGURES, user=BOB)
    assert f"✅ {txt('home_reported', period=P_Q1_2026)}" in status()
