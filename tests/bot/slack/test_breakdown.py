"""Published scoring criteria (the method asks for them): each field's hint says how it is scored, and
every result has a breakdown, figure by figure (「内訳を見る」 under the post, or `/kpi detail`). Reports
stored with an older catalog still read, and score, as they did."""

from __future__ import annotations

from typing import Any

from conversations.keys import TeamRef
from scoring.periods import Quarter
from tests.bot.slack.conftest import ALICE, BASE, BOB, CH, WS, SlackEnv, txt

ROI_OLD = {"repeat_sales_growth": 10.0, "open_rate": 15.0}  # as the catalog before open rates were split stored it


def field(view: dict[str, Any], key: str) -> dict[str, Any]:
    return next(b for b in view["blocks"] if b.get("block_id") == f"ind:{key}")


def last_ephemeral(env: SlackEnv, user: str = ALICE) -> dict[str, Any]:
    return [m for m in env.fake.ephemerals(CH) if m["user"] == user][-1]


def text_of(message: dict[str, Any]) -> str:
    out = []
    for block in message.get("blocks", []):
        if block.get("text"):
            out.append(block["text"]["text"])
        out += [e["text"] for e in block.get("elements", []) if isinstance(e.get("text"), str)]
    return "\n".join(out)


def test_each_hint_says_how_the_field_is_scored_and_no_label_has_double_brackets(slack_env: SlackEnv) -> None:
    slack_env.setup_team()
    view = slack_env.open_report()
    assert txt("rule_gap", step="5%") in field(view, "complete_records")["hint"]["text"]
    assert txt("rule_scale", floor="1点") in field(view, "satisfaction_score")["hint"]["text"]
    assert txt("rule_ratio") in field(view, "f2_rate")["hint"]["text"]
    assert txt("rule_year", step="10%") in field(view, "report_time_saved")["hint"]["text"]
    assert txt("rule_reference") in field(view, "line_open_rate")["hint"]["text"]
    labels = [b["label"]["text"] for b in view["blocks"] if str(b.get("block_id", "")).startswith("ind:")]
    assert "リピート売上の伸び（前年同期比、%）" in labels and not any("）（" in x for x in labels)
    # the retired indicators are not asked for
    assert not any(b.get("block_id") in ("ind:open_rate", "ind:resolution_hours") for b in view["blocks"])


def test_the_result_offers_its_breakdown_figure_by_figure(slack_env: SlackEnv) -> None:
    slack_env.setup_team()
    slack_env.report({**BASE, "line_open_rate": "70"})
    [post] = slack_env.team_posts(CH)
    assert post["blocks"][0]["text"]["text"].endswith("｜本店CRMチーム") and " ー " not in post["text"]
    button = next(e for b in post["blocks"] if b["type"] == "actions" for e in b["elements"]
                  if e["action_id"] == "kpi_detail")
    assert button["text"]["text"] == "内訳を見る"
    slack_env.click(BOB, post, "kpi_detail", button["value"])  # anyone in the channel may ask
    shown = text_of(last_ephemeral(slack_env, BOB))
    assert txt("detail_title", period="2025年度 第4四半期（2026年1〜3月）") in shown
    assert txt("detail_line", name="必要項目がそろった顧客データ", value="92%", basis="目標", target="95%",
               score="8/10") in shown
    assert txt("detail_line", name="アンケートの平均満足度", value="4.2点", basis="目標", target="4.2点",
               score="10/10") in shown
    assert txt("detail_blank", name="NPS") in shown
    assert txt("detail_reference", name="LINEの開封率", value="70%") + " (10/10)" in shown
    assert "問い合わせ解決までの平均" not in shown  # retired, and not in this report
    slack_env.command("detail", user=ALICE)  # the same on request
    assert text_of(last_ephemeral(slack_env)) == shown


def test_a_report_stored_with_the_old_catalog_still_reads_and_scores_as_it_did(slack_env: SlackEnv) -> None:
    """Before open rates were split and resolution counted in business days, a report held open_rate and
    resolution_hours: its breakdown and history still show them, and the ROI score counts the open rate,
    as it did then ((10 + 5) / 2 = 7.5)."""
    slack_env.setup_team()
    ref = TeamRef(WS, CH)
    slack_env.teams.submit(ref, Quarter(2025, 4), {**ROI_OLD, "complete_records": 95.0, "resolution_hours": 48.0},
                           ALICE, slack_env.clock())
    slack_env.command("detail")
    shown = text_of(last_ephemeral(slack_env))
    assert txt("detail_area", area="投資収益率（ROI）", score="7.5/10") in shown
    assert txt("detail_line", name="メッセージの開封率（メール・LINE）", value="15%", basis="目標", target="30%",
               score="5/10") in shown
    assert txt("detail_line", name="問い合わせ解決までの平均", value="48時間", basis="目標", target="24時間",
               score="5/10") in shown
    [(_, result)] = slack_env.svc.kpi.history(ref).rows  # type: ignore[union-attr]
    assert result.area("roi").score == 7.5 and result.area("satisfaction").score == 5.0
    slack_env.command("history")
    assert "*投資収益率（ROI）*  7.5" in text_of(last_ephemeral(slack_env))


def test_time_saved_is_compared_with_the_same_quarter_last_year_after_the_first_year(slack_env: SlackEnv) -> None:
    slack_env.setup_team()
    ref = TeamRef(WS, CH)
    slack_env.teams.submit(ref, Quarter(2025, 1), {"report_time_saved": 60.0}, ALICE, slack_env.clock())
    slack_env.report({**BASE, "report_time_saved": "60"})  # 2026-Q1: held, not beaten
    slack_env.command("detail")
    shown = text_of(last_ephemeral(slack_env))
    assert txt("detail_line", name="月次レポート作成の時間削減", value="60%", basis="前年同期", target="60%",
               score="8/10") in shown
