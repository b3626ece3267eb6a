"""The result's radar chart (this quarter against the last) and `/kpi export` (the CSV in a DM)."""

from __future__ import annotations

import pytest

from conversations.keys import TeamRef
from conversations.teams import Action
from scoring.periods import Quarter
from tests.bot.slack.conftest import (
    ALICE,
    BASE,
    BOB,
    CH,
    FEB_2026,
    P_Q1_2026,
    P_Q4_2025,
    Q1_2026,
    Q4_2025,
    START,
    TEAM_NAME,
    WS,
    SlackEnv,
    txt,
)
from tests.bot.test_charts import PNG_MAGIC, png_size
from tests.fakes.slack_api import dm_channel_id

Q4_FIGURES = {**BASE, "active_members": "70", "repeat_sales_growth": "12", "f2_rate": "30"}  # 6.5, 8, 10, 10, 5


@pytest.fixture
def two_quarters(slack_env: SlackEnv) -> SlackEnv:
    slack_env.setup_team()
    slack_env.clock.t = FEB_2026
    slack_env.report(Q4_FIGURES, quarter=Q4_2025)
    slack_env.clock.t = START + 3600
    slack_env.report(BASE, quarter=Q1_2026, user=BOB)
    return slack_env


def test_each_result_carries_a_radar_of_this_quarter_against_the_last(two_quarters: SlackEnv) -> None:
    first, second = two_quarters.fake.files(CH)
    assert first["alt_txt"] == txt("chart_radar_alt", series=txt(
        "chart_series", name="2025年10〜12月",
        values="ユーザー参加度 6.5、データ品質 8.0、顧客満足度 10.0、投資収益率（ROI） 10.0、プロセス効率 5.0"))
    assert second["alt_txt"] == txt("chart_radar_alt", series="。".join([
        txt("chart_series", name="2026年1〜3月",
            values="ユーザー参加度 7.5、データ品質 8.0、顧客満足度 10.0、投資収益率（ROI） 5.0、プロセス効率 5.0"),
        txt("chart_series", name="2025年10〜12月",
            values="ユーザー参加度 6.5、データ品質 8.0、顧客満足度 10.0、投資収益率（ROI） 10.0、プロセス効率 5.0")]))
    assert (first["title"], second["title"]) == (
        txt("chart_radar_title", team=TEAM_NAME, period=P_Q4_2025),
        txt("chart_radar_title", team=TEAM_NAME, period=P_Q1_2026))
    for chart in (first, second):
        assert chart["mimetype"] == "image/png" and chart["data"].startswith(PNG_MAGIC)
        assert png_size(chart["data"]) == (960, 750)
    assert first["data"] != second["data"]  # the second draws two quarters
    # each chart is shared right after its result post
    texts = [m["text"][:7] if "files" not in m else "chart" for m in two_quarters.channel_messages(CH)]
    assert texts[1:] == ["CRM KPI", "chart", "CRM KPI", "chart"]


def test_export_sends_the_history_as_csv_in_a_dm(two_quarters: SlackEnv) -> None:
    env = two_quarters
    env.teams.add_actions(TeamRef(WS, CH), Quarter.parse(Q4_2025),
                          [Action("a1", "data_quality", "=重複を, 毎月整理", BOB, "2026-03-31", ALICE, FEB_2026)],
                          ALICE, FEB_2026)
    env.command("export", user=ALICE)
    assert env.ephemerals(CH, ALICE)[-1] == txt("export_sent")
    [sent] = env.fake.files(ALICE)
    assert sent["channels"] == [dm_channel_id(ALICE)] and sent["name"].startswith(f"crm-kpi-{CH}-")
    assert sent["comment"] == txt("export_comment", team=TEAM_NAME)
    data: bytes = sent["data"]
    assert data.startswith(b"\xef\xbb\xbf")  # UTF-8 with a BOM: Excel on a Japanese PC reads it as UTF-8
    text = data[3:].decode("utf-8")
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")
    lines = text.split("\r\n")[:-1]
    catalog = env.catalog
    assert lines[0] == ",".join(
        ["四半期", "期間", "報告者", "報告日時 (Asia/Tokyo)", "総合", "ユーザー参加度", "データ品質", "顧客満足度",
         "投資収益率（ROI）", "プロセス効率", "報告した項目数"]
        + [f"{catalog.name(i.key)} ({catalog.unit(i.key)})" for i in catalog.indicators]
        + ["この期の結果から決めた改善アクション"])

    def figures(values: dict[str, str]) -> str:
        return ",".join(values.get(i.key, "") for i in catalog.indicators)

    assert lines[1:] == [
        f"2025-Q4,{P_Q4_2025},{ALICE},2026-02-15 09:00,7.9,6.5,8.0,10.0,10.0,5.0,8/16,{figures(Q4_FIGURES)},"
        f'"データ品質: =重複を, 毎月整理（担当 {BOB}、期限 2026-03-31）"',  # quoted: it holds a comma
        f"2026-Q1,{P_Q1_2026},{BOB},2026-04-01 10:00,7.1,7.5,8.0,10.0,5.0,5.0,8/16,{figures(BASE)},",
    ]


def test_export_before_any_report_sends_nothing(slack_env: SlackEnv) -> None:
    slack_env.setup_team()
    slack_env.command("export")
    assert slack_env.ephemerals(CH, ALICE)[-1] == txt("export_empty")
    assert slack_env.fake.files() == []
