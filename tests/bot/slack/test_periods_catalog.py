"""Business years in the labels, and the catalog's scoring rules at their edges, through the Slack form."""

from __future__ import annotations

import dataclasses
import re

import pytest

from bot.slack.texts import months_label, period_label
from conversations.keys import TeamRef
from scoring.periods import Quarter
from tests.bot.slack.conftest import (
    BASE,
    CH,
    CH2,
    FEB_2026,
    Q1_2026,
    Q4_2025,
    START,
    TEAM_NAME,
    WS,
    SlackEnv,
    area_names,
    fields_of,
    sections_of,
    txt,
)

OCT_2026 = 1_790_812_800.0  # 2026-10-01T00:00Z = 09:00 in Tokyo: July-September has ended


def header(message: dict) -> str:
    return message["blocks"][0]["text"]["text"]


# ---- labels ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quarter", "fy", "ja", "en"),
    [
        (Quarter(2026, 3), 4, "2026年度 第2四半期（7〜9月）", "FY2026 Q2 (Jul-Sep 2026)"),
        (Quarter(2027, 1), 4, "2026年度 第4四半期（2027年1〜3月）", "FY2026 Q4 (Jan-Mar 2027)"),
        (Quarter(2026, 2), 4, "2026年度 第1四半期（4〜6月）", "FY2026 Q1 (Apr-Jun 2026)"),
        (Quarter(2026, 3), 1, "2026年度 第3四半期（7〜9月）", "FY2026 Q3 (Jul-Sep 2026)"),
        (Quarter(2026, 3), 10, "2025年度 第4四半期（2026年7〜9月）", "FY2025 Q4 (Jul-Sep 2026)"),
        (Quarter(2026, 4), 10, "2026年度 第1四半期（10〜12月）", "FY2026 Q1 (Oct-Dec 2026)"),
        # a year from March (2月決算): quarters by their months, not the calendar's
        (Quarter.starting(2026, 3), 3, "2026年度 第1四半期（3〜5月）", "FY2026 Q1 (Mar-May 2026)"),
        (Quarter.starting(2026, 6), 3, "2026年度 第2四半期（6〜8月）", "FY2026 Q2 (Jun-Aug 2026)"),
        (Quarter.starting(2026, 9), 3, "2026年度 第3四半期（9〜11月）", "FY2026 Q3 (Sep-Nov 2026)"),
        (Quarter.starting(2026, 12), 3, "2026年度 第4四半期（2026年12月〜2027年2月）",
         "FY2026 Q4 (Dec 2026-Feb 2027)"),
        (Quarter.starting(2027, 2), 2, "2027年度 第1四半期（2〜4月）", "FY2027 Q1 (Feb-Apr 2027)"),
        (Quarter.starting(2026, 11), 8, "2026年度 第2四半期（2026年11月〜2027年1月）",
         "FY2026 Q2 (Nov 2026-Jan 2027)"),
        # a report stored before the team moved its year's start from April to March: its months alone
        (Quarter(2026, 1), 3, "2026年1〜3月", "Jan-Mar 2026"),
    ],
)
def test_period_labels_name_the_months(quarter: Quarter, fy: int, ja: str, en: str) -> None:
    assert (period_label("ja", quarter, fy), period_label("en", quarter, fy)) == (ja, en)


def test_month_labels() -> None:
    assert months_label("ja", Quarter(2026, 3)) == "2026年7〜9月"
    assert months_label("en", Quarter(2026, 3)) == "Jul-Sep 2026"
    assert months_label("en", Quarter(2026, 4)) == "Oct-Dec 2026"


def test_an_april_business_year_labels_july_to_september_as_its_second_quarter(slack_env: SlackEnv) -> None:
    slack_env.clock.t = OCT_2026
    slack_env.setup_team()  # the business year starts in April unless fy= says otherwise
    slack_env.setup_team("暦年の店", channel=CH2, extra="fy=1")

    view = slack_env.open_report()
    picker = next(b for b in view["blocks"] if b.get("block_id") == "quarter")["element"]
    assert picker["initial_option"] == {"text": {"type": "plain_text", "text": "2026年度 第2四半期（7〜9月）",
                                                 "emoji": True}, "value": "2026-Q3"}
    slack_env.submit(view, _form(slack_env, "2026-Q3"))
    [post] = slack_env.team_posts(CH)
    assert header(post) == f"CRM KPI 2026年度 第2四半期（7〜9月）｜{TEAM_NAME}"
    assert slack_env.teams.report(TeamRef(WS, CH), "2026-Q3") is not None  # stored by calendar quarter

    slack_env.report(BASE, quarter="2026-Q3", channel=CH2)
    [post] = slack_env.team_posts(CH2)
    assert header(post) == "CRM KPI 2026年度 第3四半期（7〜9月）｜暦年の店"
    assert slack_env.teams.report(TeamRef(WS, CH2), "2026-Q3") is not None


def test_a_business_year_from_march_reports_march_to_may_as_its_first_quarter(slack_env: SlackEnv) -> None:
    slack_env.clock.t = 1_780_326_000.0  # 2026-06-01T15:00Z = 2 June, 00:00 in Tokyo: March-May has ended
    slack_env.setup_team(extra="fy=3")
    view = slack_env.open_report()
    picker = next(b for b in view["blocks"] if b.get("block_id") == "quarter")["element"]
    assert picker["initial_option"]["text"]["text"] == "2026年度 第1四半期（3〜5月）"
    assert [o["value"] for o in picker["options"]] == ["2026-M03", "2025-M12", "2025-M09", "2025-M06", "2025-M03"]
    assert picker["options"][1]["text"]["text"] == "2025年度 第4四半期（2025年12月〜2026年2月）"
    slack_env.submit(view, _form(slack_env, "2026-M03"))
    [post] = slack_env.team_posts(CH)
    assert "2026年度 第1四半期（3〜5月）" in header(post)
    assert slack_env.teams.report(TeamRef(WS, CH), "2026-M03") is not None
    # a calendar quarter is none of this team's: refused, nothing stored
    slack_env.submit(slack_env.open_report(), _form(slack_env, "2026-Q1"))
    assert slack_env.teams.report(TeamRef(WS, CH), "2026-Q1") is None


def _form(env: SlackEnv, quarter: str, **changes: str) -> dict:
    from tests.bot.slack.conftest import form_values

    return form_values(env.catalog, {**BASE, **changes}, quarter)


# ---- satisfaction on its 1-5 scale -------------------------------------------------------------------


@pytest.mark.parametrize(("answer", "score"), [("1", 0.0), ("1.0", 0.0), ("2.6", 5.0), ("4.2", 10.0), ("5", 10.0)])
def test_satisfaction_scores_zero_at_the_bottom_of_the_scale_and_ten_at_the_target(
    slack_env: SlackEnv, answer: str, score: float
) -> None:
    slack_env.setup_team()
    slack_env.report({**BASE, "satisfaction_score": answer})
    [post] = slack_env.team_posts(CH)
    name = area_names(slack_env)["satisfaction"]
    assert fields_of(post)[2].startswith(f"*{name}*\n") and f" {score:.1f}/10\n" in fields_of(post)[2]


def test_the_worst_satisfaction_is_named_as_the_figure_to_work_on(slack_env: SlackEnv) -> None:
    slack_env.setup_team()
    slack_env.report({**BASE, "satisfaction_score": "1"})
    [post] = slack_env.team_posts(CH)
    _, weakest = sections_of(post)
    assert weakest == txt("weakest", area=area_names(slack_env)["satisfaction"], score="0.0") + "\n" + txt(
        "weakest_figure", name="アンケートの平均満足度", value="1点", target="4.2点", score=0)


# ---- NPS: better than the last quarter ---------------------------------------------------------------


@pytest.fixture
def improve_env(slack_env: SlackEnv) -> SlackEnv:
    """The catalog with NPS scored by the improve rule (kpi.toml: rule = "improve")."""
    catalog = slack_env.catalog
    slack_env.rebuild_slack(dataclasses.replace(catalog, indicators=tuple(
        dataclasses.replace(i, rule="improve") if i.key == "nps" else i for i in catalog.indicators)))
    slack_env.setup_team()
    return slack_env


def test_nps_scored_against_the_last_quarter(improve_env: SlackEnv) -> None:
    env = improve_env
    env.clock.t = FEB_2026
    env.report({**BASE, "nps": "-20"}, quarter=Q4_2025)  # no quarter before: against the target 0, 6/10
    env.clock.t = START
    # held at -20: one step short of beating it (8); satisfaction (10 + 8) / 2 = 9.0
    env.report({**BASE, "nps": "-20"}, quarter=Q1_2026)
    # beaten: 10; fallen to -40, two steps below: 4, and with satisfaction at 2.6 (5) the weakest area
    env.report({**BASE, "nps": "-15"}, quarter=Q1_2026)
    env.report({**BASE, "nps": "-40", "satisfaction_score": "2.6"}, quarter=Q1_2026)
    first, held, beaten, fallen = env.team_posts(CH)
    sat = area_names(env)["satisfaction"]
    scores = [re.search(r"` (\d+\.\d)/10", fields_of(p)[2]) for p in (first, held, beaten, fallen)]
    assert [m.group(1) if m else None for m in scores] == ["8.0", "9.0", "10.0", "4.5"]
    assert fields_of(held)[2].split("\n")[0] == f"*{sat}*"
    _, weakest = sections_of(fallen)
    assert weakest == txt("weakest", area=sat, score="4.5") + "\n" + txt(
        "weakest_figure_previous", name="NPS", value="-40pt", target="-20pt", score=4)
    assert weakest.endswith("この領域の点数を下げている指標: NPS -40pt（前期 -20pt、4/10）")


def test_the_improve_rule_hint_and_history(improve_env: SlackEnv) -> None:
    env = improve_env
    view = env.open_report()
    hint = next(b for b in view["blocks"] if b.get("block_id") == "ind:nps")["hint"]["text"]
    assert "\n" + txt("improve_hint", target="0pt") + "\n" + txt("rule_improve", step="10pt") in hint
    env.clock.t = FEB_2026
    env.report({**BASE, "nps": "-20"}, quarter=Q4_2025)
    env.clock.t = START
    env.report({**BASE, "nps": "-15"}, quarter=Q1_2026)
    env.command("history")
    table = env.fake.ephemerals(CH)[-1]["blocks"][1]["text"]["text"]
    assert "*顧客満足度*  8.0 → 10.0 ↗" in table  # each quarter scored against the one before it
