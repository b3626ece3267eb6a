"""Slack's own charts and tables (bot/slack/native.py) in the result post and the history's trend
(bot/slack/results.py): kept within Slack's documented limits, which the fake Slack API's checker reads
(slack_sdk's model of the table block and the documented limits of both blocks); every figure also
said in words; and a fallback without them in the same output."""

from __future__ import annotations

import dataclasses
from types import MappingProxyType
from typing import Any

import pytest

from bot.kpi.messages import ResultPost
from bot.slack import native, results
from bot.slack.texts import t
from conversations.keys import TeamRef
from conversations.kpi_catalog import Catalog, load_catalog
from conversations.teams import Team
from scoring.kpi import KpiResult
from scoring.periods import Quarter
from tests.fakes.slack_api import check_blocks, check_message

pytestmark = pytest.mark.fast

CATALOG = load_catalog()
TEAM = Team(TeamRef("T1", "C1"), "本店CRMチーム", "Asia/Tokyo", "U0ALICE", 0.0)
Q1_2026 = Quarter(2026, 1)
# the figures of tests/bot/slack/conftest.py BASE: 7.5, 8.0, 10.0, 5.0, 5.0, overall 7.1
BASE = {"active_members": 80.0, "updates_per_member": 10.0, "complete_records": 92.0, "satisfaction_score": 4.2,
        "repeat_sales_growth": -3.0, "f2_rate": 15.0, "report_time_saved": 25.0, "entry_time_saved": 10.0}
BEFORE = {**BASE, "active_members": 70.0, "repeat_sales_growth": 12.0, "f2_rate": 30.0}  # 6.5, 8, 10, 10, 5


def scored(values: dict[str, float], catalog: Catalog = CATALOG) -> KpiResult:
    return catalog.score(values)


def post_of(result: KpiResult, previous: KpiResult | None = None, catalog: Catalog = CATALOG,
            locale: str = "ja") -> list[dict[str, Any]]:
    deltas = None
    if previous is not None:
        deltas = {a.area: (None if a.score is None or previous.area(a.area).score is None
                           else round(a.score - (previous.area(a.area).score or 0), 1)) for a in result.areas}
        deltas["overall"] = round((result.overall or 0) - (previous.overall or 0), 1)
    post = ResultPost(TEAM, Q1_2026, result, previous, deltas, "U0ALICE", False)
    return results.result_outputs(catalog, locale, post)


def of_type(blocks: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [b for b in blocks if b["type"] == kind]


def cells(table: dict[str, Any]) -> list[list[str]]:
    return [[c["text"] for c in row] for row in table["rows"]]


def series_of(chart: dict[str, Any]) -> list[tuple[str, list[float]]]:
    return [(s["name"], [p["value"] for p in s["data"]]) for s in chart["chart"]["series"]]


def with_names(names: dict[str, dict[str, str]]) -> Catalog:
    """The catalog with some areas renamed (names up to the catalog's own limits: 24 ja, 40 en)."""
    merged = {k: dict(v) for k, v in CATALOG.names.items()}
    for key, by_locale in names.items():
        merged[key].update(by_locale)
    return dataclasses.replace(CATALOG, names=MappingProxyType(merged))


# ---- the builders ----------------------------------------------------------------------------------


def test_labels_are_cut_to_slacks_length_and_stay_unique() -> None:
    assert native.fit("  顧客  満足度 ", 20) == "顧客 満足度"
    assert native.fit("Customer satisfaction", 20) == "Customer satisfacti…"
    long = "とても長い領域の名前ですがグラフでは二十文字までです"
    cut = native.labels([long + "（その一）", long + "（その二）", ""])
    assert cut == [long[:19] + "…", long[:17] + "… 2", native.EMPTY_CELL]
    assert all(len(x) <= native.MAX_LABEL for x in cut) and len(set(cut)) == 3


def test_a_chart_keeps_the_last_points_and_the_first_series_slack_allows() -> None:
    categories = [f"第{n}期" for n in range(1, 31)]
    series = [(f"系列{k}", [float(n % 11) for n in range(30)]) for k in range(8)]
    chart = native.series_chart("line", "長い題名" * 20, categories, series, x_label="x" * 60, y_label="点数")
    assert check_blocks([chart]) == []
    assert len(chart["title"]) == native.MAX_CHART_TITLE == 50
    assert len(chart["chart"]["axis_config"]["x_label"]) == native.MAX_AXIS_LABEL
    assert chart["chart"]["axis_config"]["categories"] == categories[-20:]  # the newest points
    assert [name for name, _ in series_of(chart)] == [f"系列{k}" for k in range(6)]
    assert series_of(chart)[0][1] == [float(n % 11) for n in range(10, 30)]


def test_a_chart_draws_no_gap_and_no_empty_chart() -> None:
    with pytest.raises(ValueError):
        native.series_chart("bar", "t", ["a", "b"], [("s", [1.0])])
    with pytest.raises(ValueError):
        native.series_chart("bar", "t", [], [("s", [])])


def test_a_table_keeps_within_rows_columns_and_characters() -> None:
    header = [f"列{c}" for c in range(25)]
    rows = [[f"{r}-{c}" for c in range(25)] for r in range(150)]
    table = native.table(header, rows, [{"align": "right"}] * 25)
    assert check_blocks([table]) == []
    kept = cells(table)
    assert len(kept) == native.MAX_TABLE_ROWS and kept[0] == header[:20]  # the header and the last 99 rows
    assert kept[1][0] == "51-0" and kept[-1][0] == "149-0" and {len(r) for r in kept} == {20}
    assert len(table["column_settings"]) == native.MAX_TABLE_COLUMNS
    wide = native.table(["a", "b"], [["x" * 300, ""] for _ in range(60)])
    assert check_blocks([wide]) == []
    assert sum(len(c) for r in cells(wide) for c in r) <= native.MAX_TABLE_CHARS
    assert cells(wide)[1][1] == native.EMPTY_CELL  # a cell Slack would refuse empty shows a dash
    assert len(cells(wide)) == 1 + 10_000 // 301


def test_a_message_keeps_two_charts_and_one_table() -> None:
    chart = native.series_chart("bar", "t", ["a"], [("s", [1.0])])
    table = native.table(["a"], [["1"]])
    assert native.within_limits([chart, chart, table])
    assert not native.within_limits([chart, chart, chart]) and not native.within_limits([table, table])
    assert check_blocks([chart, chart, chart]) and check_blocks([table, table])  # the fake refuses them too


# ---- the result post ---------------------------------------------------------------------------------


def test_the_result_post_has_slacks_bar_chart_and_table_of_the_scores() -> None:
    post, radar = post_of(scored(BASE), scored(BEFORE))
    assert check_message(post) == [] and native.within_limits(post["blocks"])
    [chart] = of_type(post["blocks"], "data_visualization")
    [table] = of_type(post["blocks"], "table")
    assert chart["title"] == t("ja", "scores_chart_title") and chart["chart"]["type"] == "bar"
    assert chart["chart"]["axis_config"]["categories"] == [
        "ユーザー参加度", "データ品質", "顧客満足度", "投資収益率（ROI）", "プロセス効率"]
    assert series_of(chart) == [("2025年度 第3四半期", [6.5, 8.0, 10.0, 10.0, 5.0]),  # last quarter's bars first
                                ("2025年度 第4四半期", [7.5, 8.0, 10.0, 5.0, 5.0])]
    assert cells(table) == [
        ["領域", "点数", "前期比", "報告した数値", "点数を下げている指標（実績／目標）"],
        ["ユーザー参加度", "7.5", "▲1.0", "2／3", "1人あたりの顧客データ更新 10件/週（目標 20件/週）"],
        ["データ品質", "8.0", "±0", "1／2", "必要項目がそろった顧客データ 92%（目標 95%）"],
        ["顧客満足度", "10.0", "±0", "1／3", "－"],  # every figure at its target
        ["投資収益率（ROI）", "5.0", "▼5.0", "2／6", "リピート売上の伸び（前年同期比） -3%（目標 10%）"],
        ["プロセス効率", "5.0", "±0", "2／2", "月次レポート作成の時間削減 25%（目標 50%）"],
        ["総合", "7.1", "▼0.8", "8／16", "－"]]
    assert radar["type"] == "slack_chart" and radar["kind"] == "radar"  # Slack draws no radar: still an image


def test_the_result_post_says_its_scores_in_words_and_falls_back_to_itself_without_them() -> None:
    post, _ = post_of(scored(BASE))
    [fallback] = post["fallback"]
    assert fallback["text"] == post["text"] and check_message(fallback) == []
    assert fallback["blocks"] == [b for b in post["blocks"] if b["type"] not in ("data_visualization", "table")]
    assert len(fallback["blocks"]) == len(post["blocks"]) - 2
    # the section of the areas says every score the chart and the table show (screen readers, old clients)
    fields = next(b for b in post["blocks"] if "fields" in b)["fields"]
    for area, score in zip(CATALOG.area_keys, ("7.5", "8.0", "10.0", "5.0", "5.0"), strict=True):
        assert any(f["text"].startswith(f"*{CATALOG.name(area, 'ja')}*") and f" {score}/10" in f["text"]
                   for f in fields)
    assert post["text"].endswith(f"{t('ja', 'overall')} 7.1/10")
    [chart] = of_type(post["blocks"], "data_visualization")
    assert len(series_of(chart)) == 1  # no previous quarter: this quarter's bars alone


def test_an_area_not_reported_is_left_out_of_the_bar_chart_never_drawn_as_0() -> None:
    without = {k: v for k, v in BASE.items() if k not in ("complete_records",)}  # no data quality figure
    post, _ = post_of(scored(without), scored(BEFORE))
    [chart] = of_type(post["blocks"], "data_visualization")
    assert "データ品質" not in chart["chart"]["axis_config"]["categories"]
    assert [len(values) for _, values in series_of(chart)] == [4, 4]
    [table] = of_type(post["blocks"], "table")
    assert cells(table)[2][:4] == ["データ品質", "未報告", "－", "0／2"]
    assert check_message(post) == []
    nothing, _ = post_of(scored({}))
    assert of_type(nothing["blocks"], "data_visualization") == [] and check_message(nothing) == []


def test_long_area_names_are_cut_in_the_chart_and_whole_in_the_table() -> None:
    long = "顧客満足度（アンケート・NPS・問い合わせ）"  # 22 characters: the catalog allows 24
    catalog = with_names({"satisfaction": {"ja": long, "en": "Customer satisfaction"}})
    for locale, name, cut in (("ja", long, "顧客満足度（アンケート・NPS・問い合…"),
                              ("en", "Customer satisfaction", "Customer satisfacti…")):
        post, _ = post_of(scored(BASE, catalog), scored(BEFORE, catalog), catalog, locale)
        assert check_message(post) == []
        [chart] = of_type(post["blocks"], "data_visualization")
        assert chart["chart"]["axis_config"]["categories"][2] == cut
        [table] = of_type(post["blocks"], "table")
        assert cells(table)[3][0] == name
    [chart] = of_type(post["blocks"], "data_visualization")
    assert [name for name, _ in series_of(chart)] == ["FY2025 Q3", "FY2025 Q4"]


# ---- the history's trend -----------------------------------------------------------------------------


def quarters(count: int, last: Quarter = Q1_2026) -> list[Quarter]:
    out = [last]
    while len(out) < count:
        out.insert(0, out[0].previous())
    return out


def test_thirty_quarters_of_history_are_shortened_to_the_charts_points() -> None:
    rows = [(q, scored(BASE if i % 2 else BEFORE)) for i, q in enumerate(quarters(30))]
    post = results.trend_post(CATALOG, "ja", TEAM, rows)
    assert check_message(post) == [] and native.within_limits(post["blocks"])
    heading, chart, table, notes = post["blocks"]
    assert heading["text"]["text"] == t("ja", "history_chart_comment", team=TEAM.name)
    labels = chart["chart"]["axis_config"]["categories"]
    assert len(labels) == native.MAX_POINTS == 20
    assert labels[0] == "2021年度 第1四半期" and labels[-1] == "2025年度 第4四半期"  # the last 20 of them
    assert [name for name, _ in series_of(chart)] == ["総合", "ユーザー参加度", "データ品質", "顧客満足度",
                                                      "投資収益率（ROI）", "プロセス効率"]
    assert len(cells(table)) == 21 and [r[0] for r in cells(table)[1:]] == labels  # the same figures
    assert notes["elements"][0]["text"] == t("ja", "trend_shortened", shown=20, total=30)
    # the text says every figure shown (screen readers, notifications, clients that draw neither)
    assert post["text"].startswith(t("ja", "trend_text", team=TEAM.name, series=" → ".join(labels) + "。総合: "))
    assert post["text"].count(" → ") == 19 * 7
    # its fallback, the image, draws all 30
    [image] = post["fallback"]
    assert image["type"] == "slack_chart" and image["kind"] == "lines" and len(image["labels"]) == 30


def test_an_area_with_a_quarter_not_reported_is_left_out_of_the_line_chart() -> None:
    gap = {k: v for k, v in BASE.items() if k != "complete_records"}
    rows = [(q, scored(v)) for q, v in zip(quarters(3), (BASE, gap, BEFORE), strict=True)]
    post = results.trend_post(CATALOG, "ja", TEAM, rows)
    assert check_message(post) == []
    _, chart, table, notes = post["blocks"]
    assert "データ品質" not in [name for name, _ in series_of(chart)] and len(series_of(chart)) == 5
    assert [r[3] for r in cells(table)] == ["データ品質", "8.0", "未報告", "8.0"]
    assert notes["elements"][0]["text"] == t("ja", "trend_left_out", areas="データ品質")
    assert "データ品質: 8.0 → 未報告 → 8.0" in post["text"]


def test_the_trend_in_english() -> None:
    post = results.trend_post(CATALOG, "en", TEAM, [(q, scored(BASE)) for q in quarters(2)])
    assert check_message(post) == []
    _, chart, table = post["blocks"]
    assert chart["chart"]["axis_config"]["categories"] == ["FY2025 Q3", "FY2025 Q4"]
    assert cells(table)[0][:3] == ["Quarter", "Overall", "User engagement"]
    assert chart["chart"]["axis_config"]["y_label"] == "Score (0-10)"
