"""`/kpi history`, `/kpi targets` and the App Home tab."""

from __future__ import annotations

import pytest

from bot.slack import blocks as slack_blocks
from conversations.keys import TeamRef
from tests.bot.slack.conftest import (
    ALICE,
    BASE,
    BOB,
    CH,
    CH2,
    FEB_2026,
    P_Q1_2026,
    P_Q4_2025,
    Q1_2026,
    Q4_2025,
    START,
    TEAM_NAME,
    TOTALS,
    WS,
    SlackEnv,
    area_line,
    area_names,
    context_of,
    fields_of,
    form_values,
    txt,
)
from tests.fakes.slack_api import dm_channel_id
from tests.fakes.slack_signing import interaction_body, slash_command_body, view_submission_payload

REF = TeamRef(WS, CH)
TREND_SERIES = "。".join(["2025年度 第3四半期 → 2025年度 第4四半期", "総合: 7.9 → 7.1", "ユーザー参加度: 6.5 → 7.5",
                         "データ品質: 8.0 → 8.0", "顧客満足度: 10.0 → 10.0", "投資収益率（ROI）: 10.0 → 5.0",
                         "プロセス効率: 5.0 → 5.0"])


def cells(table: dict) -> list[list[str]]:
    assert table["type"] == "table"
    return [[c["text"] for c in row] for row in table["rows"]]
Q4_FIGURES = {**BASE, "active_members": "70", "repeat_sales_growth": "12", "f2_rate": "30"}  # 6.5, 8, 10, 10, 5: 7.9
APR_2 = START + 86400


@pytest.fixture
def team_env(slack_env: SlackEnv) -> SlackEnv:
    slack_env.setup_team()
    return slack_env


def report_two_quarters(env: SlackEnv, channel: str = CH) -> None:
    env.clock.t = FEB_2026
    env.report(Q4_FIGURES, quarter=Q4_2025, channel=channel)
    env.clock.t = APR_2
    env.report(BASE, quarter=Q1_2026, channel=channel)


# ---- history -------------------------------------------------------------------------------------


def test_history_shows_past_quarters_and_the_trend_per_area(team_env: SlackEnv) -> None:
    report_two_quarters(team_env)
    team_env.command("history", user=BOB)
    [history] = [m for m in team_env.fake.ephemerals(CH) if m["user"] == BOB]
    title = txt("history_title", team=TEAM_NAME)
    assert history["text"] == title
    assert [b["text"]["text"] for b in history["blocks"]] == [
        title,
        "2025年10〜12月 → 2026年1〜3月\n"  # one line per area: a table does not line up in Slack's font
        "*ユーザー参加度*  6.5 → 7.5 ↗\n"
        "*データ品質*  8.0 → 8.0 →\n"
        "*顧客満足度*  10.0 → 10.0 →\n"
        "*投資収益率（ROI）*  10.0 → 5.0 ↘\n"
        "*プロセス効率*  5.0 → 5.0 →\n"
        "*総合*  7.9 → 7.1 ↘",
        txt("history_chart_sent"),
    ]
    # the trend went to BOB's DM as Slack's own line chart and table (checked by the fake as it came),
    # every figure in the message's text too
    [trend] = team_env.dms(BOB)
    assert trend["text"] == txt("trend_text", team=TEAM_NAME, series=TREND_SERIES)
    heading, chart, table = trend["blocks"]
    assert heading["text"]["text"] == txt("history_chart_comment", team=TEAM_NAME)
    assert chart["type"] == "data_visualization" and chart["chart"]["type"] == "line"
    assert chart["chart"]["axis_config"]["categories"] == ["2025年度 第3四半期", "2025年度 第4四半期"]
    assert [(s["name"], [p["value"] for p in s["data"]]) for s in chart["chart"]["series"]] == [
        ("総合", [7.9, 7.1]), ("ユーザー参加度", [6.5, 7.5]), ("データ品質", [8.0, 8.0]), ("顧客満足度", [10.0, 10.0]),
        ("投資収益率（ROI）", [10.0, 5.0]), ("プロセス効率", [5.0, 5.0])]
    assert cells(table) == [
        ["四半期", "総合", "ユーザー参加度", "データ品質", "顧客満足度", "投資収益率（ROI）", "プロセス効率"],
        ["2025年度 第3四半期", "7.9", "6.5", "8.0", "10.0", "10.0", "5.0"],
        ["2025年度 第4四半期", "7.1", "7.5", "8.0", "10.0", "5.0", "5.0"]]
    assert team_env.fake.files(BOB) == []  # no image: Slack drew the chart
    results = team_env.team_posts(CH)
    assert results[-1]["text"].startswith(f"CRM KPI {P_Q1_2026}")  # history is not posted
    posted = [m["text"] for m in team_env.channel_messages(CH) if "files" not in m]  # not the results' charts
    assert posted == [txt("setup_announce", user=ALICE, name=TEAM_NAME), *(m["text"] for m in results)]


def test_history_falls_back_to_the_image_when_slack_refuses_its_chart(team_env: SlackEnv) -> None:
    report_two_quarters(team_env)
    team_env.fake.fail("chat.postMessage", "invalid_blocks", block_type="data_visualization", times=99)
    team_env.command("history", user=BOB)
    # the post was refused once (nothing posted), then its fallback went, once: the line chart per area
    # as an image, its numbers in the alt text; nothing else left to send
    to_bob = [c for c in team_env.fake.calls("chat.postMessage") if c.args["channel"] == dm_channel_id(BOB)]
    assert [c.response.get("error") for c in to_bob] == ["invalid_blocks"]
    uploads = [c for c in team_env.fake.calls("files.completeUploadExternal") if c.args.get("channel_id") != CH]
    assert [c.response["ok"] for c in uploads] == [True]
    [shared] = team_env.dms(BOB)
    [chart] = team_env.fake.files(BOB)
    assert shared["files"][0]["id"] == chart["id"]
    assert chart["mimetype"] == "image/png" and chart["data"].startswith(b"\x89PNG")
    assert chart["alt_txt"] == txt("chart_lines_alt", series="2025年10〜12月 → 2026年1〜3月。" + "。".join([
        "ユーザー参加度: 6.5 → 7.5", "データ品質: 8.0 → 8.0", "顧客満足度: 10.0 → 10.0",
        "投資収益率（ROI）: 10.0 → 5.0", "プロセス効率: 5.0 → 5.0"]))
    assert chart["comment"] == txt("history_chart_comment", team=TEAM_NAME)
    assert team_env.pending() == 0


def test_history_before_any_report(team_env: SlackEnv) -> None:
    team_env.command("history")
    history = team_env.fake.ephemerals(CH)[-1]
    assert [b["text"]["text"] for b in history["blocks"]] == [
        txt("history_title", team=TEAM_NAME), txt("history_empty")
    ]


# ---- targets -------------------------------------------------------------------------------------


def open_targets(env: SlackEnv, user: str = ALICE) -> dict:
    env.command("targets", user=user)
    view = env.fake.opened_views()[-1]
    assert view["callback_id"] == slack_blocks.TARGETS_CALLBACK
    return view


def submit_targets(env: SlackEnv, view: dict, targets: dict[str, str], user: str = ALICE):
    values = form_values(env.catalog, targets, quarter=None)
    res = env.post(interaction_body(view_submission_payload(user, view, values)))
    assert res.status_code == 200
    env.settle()
    return res


def test_targets_modal_lists_every_indicator_as_optional(team_env: SlackEnv) -> None:
    view = open_targets(team_env)
    inputs = [b for b in view["blocks"] if b["type"] == "input"]
    assert [b["block_id"] for b in inputs] == [f"ind:{i.key}" for i in team_env.catalog.indicators if not i.retired]
    assert all(b["optional"] for b in inputs)
    completeness = next(b for b in inputs if b["block_id"] == "ind:complete_records")
    assert completeness["hint"]["text"] == (team_env.catalog.definition("complete_records", "ja") + "\n"
                                            + txt("default_hint", target="95%", direction=txt("higher")) + "\n"
                                            + txt("rule_gap", step="5%"))


def test_a_new_target_changes_later_scoring_and_is_audited(team_env: SlackEnv) -> None:
    figures = {**BASE, "complete_records": "95"}
    team_env.report(figures)
    quality = area_names(team_env)["data_quality"]
    assert fields_of(team_env.team_posts(CH)[-1])[1] == area_line(quality, 10.0, reported=1, total=2)

    team_env.clock.advance(600)
    res = submit_targets(team_env, open_targets(team_env, BOB), {"complete_records": "98"}, BOB)
    assert res.get_data() == b""
    assert team_env.teams.targets(REF) == {"complete_records": 98.0}
    assert team_env.teams.audit(REF)[0] == {
        "kind": "targets", "by": BOB, "at": team_env.clock(), "old": {}, "new": {"complete_records": "98"}
    }
    assert team_env.ephemerals(CH, BOB) == [txt("targets_saved")]

    # the same 95% now falls 3 points short of 98: one started step of 5 -> 8
    team_env.clock.advance(600)
    view = team_env.open_report()
    hint = next(b for b in view["blocks"] if b.get("block_id") == "ind:complete_records")["hint"]["text"]
    assert "\n" + txt("target_hint", target="98%", direction=txt("higher")) + "\n" in hint
    team_env.submit(view, form_values(team_env.catalog, figures))
    message = team_env.team_posts(CH)[-1]
    assert fields_of(message)[1] == area_line(quality, 8.0, reported=1, total=TOTALS["data_quality"])
    assert context_of(message)[0] == txt("replaced_by", user=ALICE, period=P_Q1_2026)

    # the targets modal shows the team's target; clearing it goes back to the default
    view = open_targets(team_env)
    field = next(b for b in view["blocks"] if b.get("block_id") == "ind:complete_records")
    assert field["element"]["initial_value"] == "98"
    submit_targets(team_env, view, {})
    assert team_env.teams.targets(REF) == {}
    assert team_env.teams.audit(REF)[0] | {"at": 0} == {
        "kind": "targets", "by": ALICE, "at": 0, "old": {"complete_records": "98"}, "new": {}
    }


@pytest.mark.parametrize(
    ("targets", "errors"),
    [
        ({"complete_records": "abc"}, {"ind:complete_records": txt("err_number")}),
        ({"complete_records": "120"}, {"ind:complete_records": txt("err_percent")}),
        ({"satisfaction_score": "9"}, {"ind:satisfaction_score": txt("err_range", min="1", max="5")}),
        # the scale's bottom scores 0: a target there (or below) would leave nothing to score
        ({"satisfaction_score": "1"}, {"ind:satisfaction_score": txt("err_floor_higher", floor="1点")}),
    ],
    ids=["not-a-number", "percent-over-100", "out-of-range", "satisfaction-at-the-floor"],
)
def test_an_invalid_target_is_refused_and_nothing_is_stored(team_env: SlackEnv, targets: dict, errors: dict) -> None:
    view = open_targets(team_env)
    res = submit_targets(team_env, view, {"report_time_saved": "30", **targets})
    assert res.get_json() == {"response_action": "errors", "errors": errors}
    assert team_env.teams.targets(REF) == {}
    assert team_env.teams.audit(REF) == []
    assert txt("targets_saved") not in team_env.ephemerals(CH)


# ---- App Home ------------------------------------------------------------------------------------


def home_opened(env: SlackEnv, user: str, tab: str = "home", event_id: str | None = None, retry: int | None = None):
    event = {"type": "app_home_opened", "user": user, "channel": dm_channel_id(user), "tab": tab,
             "event_ts": "1767225600.000100"}
    return env.event(event, event_id=event_id, retry_num=retry)


def test_app_home_lists_the_workspace_teams_with_latest_scores(slack_env: SlackEnv) -> None:
    slack_env.setup_team("本店", channel=CH)
    slack_env.setup_team("二号店", channel=CH2)
    slack_env.ok(slash_command_body("/kpi", "setup よその店", ALICE, "C0ELSEWHERE", team_id="T2"))
    slack_env.clock.t = FEB_2026
    slack_env.report(Q4_FIGURES, quarter=Q4_2025, channel=CH2)
    slack_env.clock.t = APR_2
    slack_env.report(BASE, quarter=Q1_2026, channel=CH)

    home_opened(slack_env, BOB)
    [publish] = slack_env.fake.calls("views.publish")
    assert publish.args["user_id"] == BOB
    view = slack_env.fake.home_view(BOB)
    assert view is not None and view["type"] == "home"
    names = area_names(slack_env)
    texts = [b["text"]["text"] for b in view["blocks"] if b["type"] == "section"]
    assert texts == [
        txt("home_intro"),
        f"*本店*  <#{CH}>\n✅ {txt('home_reported', period=P_Q1_2026)}\n"
        + txt("home_latest", period=P_Q1_2026, score="7.1") + "\n"
        + f"{names['engagement']} 7.5 {names['data_quality']} 8.0 {names['satisfaction']} 10.0 "
        f"{names['roi']} 5.0 {names['efficiency']} 5.0",
        f"*二号店*  <#{CH2}>\n⏳ {txt('home_missing', period=P_Q1_2026)}\n"
        + txt("home_latest", period=P_Q4_2025, score="7.9") + "\n"
        + f"{names['engagement']} 6.5 {names['data_quality']} 8.0 {names['satisfaction']} 10.0 "
        f"{names['roi']} 10.0 {names['efficiency']} 5.0",
    ]
    assert "よその店" not in str(view)  # another workspace's team


def test_app_home_without_teams(slack_env: SlackEnv) -> None:
    home_opened(slack_env, ALICE)
    view = slack_env.fake.home_view(ALICE)
    assert view is not None
    assert [b["text"]["text"] for b in view["blocks"] if b["type"] == "section"] == [
        txt("home_intro"), txt("home_none")
    ]


def test_the_messages_tab_publishes_nothing(slack_env: SlackEnv) -> None:
    home_opened(slack_env, ALICE, tab="messages")
    assert slack_env.fake.calls("views.publish") == []


def test_a_new_target_does_not_rewrite_past_scores(team_env: SlackEnv) -> None:
    report_two_quarters(team_env)
    submit_targets(team_env, open_targets(team_env), {"complete_records": "99", "active_members": "95"})
    team_env.command("history", user=BOB)
    [history] = [m for m in team_env.fake.ephemerals(CH) if m["user"] == BOB]
    table = history["blocks"][1]["text"]["text"]
    assert "*データ品質*  8.0 → 8.0 →" in table  # scored against the targets in force when reported
    assert "*総合*  7.9 → 7.1 ↘" in table
    assert team_env.teams.report(REF, Q4_2025).targets == {}


def test_figures_the_catalog_no_longer_knows_are_left_out(team_env: SlackEnv) -> None:
    report_two_quarters(team_env)
    from conversations import keys

    team_env.r.hset(keys.team_kpi(REF, str(Q4_2025)), "retired_indicator", "12")  # removed from kpi.toml
    team_env.command("history", user=BOB)
    [history] = [m for m in team_env.fake.ephemerals(CH) if m["user"] == BOB]
    assert "*総合*  7.9 → 7.1 ↘" in history["blocks"][1]["text"]["text"]
