"""Reporting a quarter's figures through the modal: what is stored, what the channel sees, what is refused."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from bot.slack import blocks as slack_blocks
from conversations.keys import TeamRef
from scoring.periods import Quarter
from tests.bot.slack.conftest import (
    ALICE,
    BASE,
    BASE_REPORTED,
    BASE_STORED,
    BOB,
    CH,
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
    sections_of,
    txt,
)

REF = TeamRef(WS, CH)
ROI_FIGURES = ("repeat_sales_growth", "f2_rate")  # the ROI figures in BASE


def base_line(env: SlackEnv, area: str, score: float, change: str = "", **coverage: int) -> str:
    """An area line of a result post of BASE (or of figures with the given coverage)."""
    reported = coverage.get("reported", BASE_REPORTED[area])
    return area_line(area_names(env)[area], score, change, reported=reported, total=TOTALS[area])


@pytest.fixture
def team_env(slack_env: SlackEnv) -> SlackEnv:
    slack_env.setup_team()
    return slack_env


def result_messages(env: SlackEnv) -> list[dict]:
    """The result posts of the team's reports."""
    return env.team_posts(CH)


# ---- the modal -----------------------------------------------------------------------------------


def test_kpi_opens_the_report_modal_for_the_quarter_that_ended(team_env: SlackEnv) -> None:
    """On 1 April the report is for January-March; earlier quarters are offered, the running one is not."""
    view = team_env.open_report()
    assert view["callback_id"] == slack_blocks.REPORT_CALLBACK
    assert json.loads(view["private_metadata"]) == {"team": f"{WS}:{CH}"}
    blocks = view["blocks"]
    quarter = next(b for b in blocks if b.get("block_id") == "quarter")
    assert quarter["element"]["initial_option"]["value"] == Q1_2026
    assert [(o["value"], o["text"]["text"]) for o in quarter["element"]["options"]] == [
        ("2026-Q1", "2025年度 第4四半期（2026年1〜3月）"),
        ("2025-Q4", "2025年度 第3四半期（10〜12月）"),
        ("2025-Q3", "2025年度 第2四半期（7〜9月）"),
        ("2025-Q2", "2025年度 第1四半期（4〜6月）"),
        ("2025-Q1", "2024年度 第4四半期（2025年1〜3月）"),
    ]
    assert quarter["hint"]["text"] == txt("quarter_hint")
    inputs = [b for b in blocks if b["type"] == "input" and b["block_id"] != "quarter"]
    catalog = team_env.catalog
    asked = [ind for ind in catalog.indicators if not ind.retired]  # a retired indicator is not asked for
    assert [b["block_id"] for b in inputs] == [f"ind:{ind.key}" for ind in asked]
    assert len(inputs) == 18  # the retired indicators are not asked for
    assert [b["optional"] for b in inputs] == [not ind.required for ind in asked]
    assert all(b["element"]["type"] == "plain_text_input" and "initial_value" not in b["element"] for b in inputs)
    completeness = next(b for b in inputs if b["block_id"] == "ind:complete_records")
    assert completeness["label"]["text"] == "必要項目がそろった顧客データ（%）"
    assert completeness["hint"]["text"] == (
        catalog.definition("complete_records", "ja") + "\n" + txt("target_hint", target="95%", direction=txt("higher"))
        + "\n" + txt("rule_gap", step="5%")  # the scoring rule, published with the form
    )
    assert [b["text"]["text"] for b in blocks if b["type"] == "header"] == list(area_names(team_env).values())


def test_every_field_shows_its_definition_and_says_its_unit_once(team_env: SlackEnv) -> None:
    view = team_env.open_report()
    fields = {b["block_id"][len("ind:"):]: b for b in view["blocks"] if b.get("block_id", "").startswith("ind:")}
    labels = {key: b["label"]["text"] for key, b in fields.items()}
    assert labels["resolved_next_day"] == "1営業日以内に解決した問い合わせ（%）"
    assert labels["repeat_sales_growth"] == "リピート売上の伸び（前年同期比、%）"  # not 「…（前年同期比）（%）」
    assert labels["updates_per_member"] == "1人あたりの顧客データ更新（件/週）"
    assert labels["satisfaction_score"] == "アンケートの平均満足度（点）"
    assert labels["nps"] == "NPS（pt）"
    for key, block in fields.items():
        definition, target_line, rule = block["hint"]["text"].split("\n")
        assert definition == team_env.catalog.definition(key, "ja") and "÷" in definition
        assert target_line.startswith("目標: ") and rule.startswith(("採点: ", "参考指標: "))
    assert fields["nps"]["hint"]["text"].endswith(txt("target_hint", target="0pt", direction=txt("higher")) + "\n"
                                                  + txt("rule_gap", step="10pt"))


def test_the_modal_of_a_reported_quarter_is_filled_in(team_env: SlackEnv) -> None:
    team_env.report(BASE)
    view = team_env.open_report()
    initial = {
        b["block_id"]: b["element"]["initial_value"]
        for b in view["blocks"]
        if b["type"] == "input" and "initial_value" in b["element"]
    }
    assert initial == {f"ind:{k}": v for k, v in BASE.items()}


def test_the_prefilled_modal_keeps_every_digit(team_env: SlackEnv) -> None:
    """Reopening the modal and submitting it unchanged must not change a figure (no 6-digit rounding)."""
    figures = {**BASE, "repeat_sales_growth": "10000", "duplicate_records": "12.345678"}
    team_env.report(figures)
    view = team_env.open_report()
    initial = {b["block_id"]: b["element"].get("initial_value") for b in view["blocks"] if b["type"] == "input"}
    assert (initial["ind:repeat_sales_growth"], initial["ind:duplicate_records"]) == ("10000", "12.345678")
    unchanged = {k[len("ind:"):]: v for k, v in initial.items() if k != "quarter" and v is not None}
    team_env.submit(view, form_values(team_env.catalog, unchanged))
    assert dict(team_env.teams.report(REF, Q1_2026).values) == {k: float(v) for k, v in figures.items()}


# ---- a valid report ------------------------------------------------------------------------------


def test_a_valid_report_closes_the_modal_stores_the_figures_and_posts_the_scores(team_env: SlackEnv) -> None:
    team_env.clock.advance(86400)
    view = team_env.open_report()
    res = team_env.submit(view, form_values(team_env.catalog, BASE))
    assert (res.status_code, res.get_data()) == (200, b"")  # an empty ack closes the modal

    report = team_env.teams.report(REF, Q1_2026)
    assert report is not None
    assert (dict(report.values), report.by, report.at) == (BASE_STORED, ALICE, team_env.clock())
    assert team_env.teams.quarters(REF) == [Quarter(2026, 1)]

    [message] = result_messages(team_env)
    names = area_names(team_env)
    assert message["blocks"][0] == {
        "type": "header",
        "text": {"type": "plain_text", "emoji": True,
                 "text": "CRM KPI 2025年度 第4四半期（2026年1〜3月）｜本店CRMチーム"},
    }
    assert fields_of(message) == [
        base_line(team_env, "engagement", 7.5),
        base_line(team_env, "data_quality", 8.0),
        base_line(team_env, "satisfaction", 10.0),
        base_line(team_env, "roi", 5.0),
        base_line(team_env, "efficiency", 5.0),
    ]
    assert fields_of(message)[1].endswith("`▰▰▰▰▰▰▰▰▱▱` 8.0/10\n2項目中1項目を報告")
    overall, weakest = sections_of(message)
    assert overall == f"*{txt('overall')}*  `▰▰▰▰▰▰▰▱▱▱` *7.1/10*"
    # the weakest area and the figure that pulled it down, against its target
    assert weakest == txt("weakest", area=names["roi"], score="5.0") + "\n" + txt(
        "weakest_figure", name="リピート売上の伸び（前年同期比）", value="-3%", target="10%", score=4)
    assert weakest.endswith("この領域の点数を下げている指標: リピート売上の伸び（前年同期比） -3%（目標 10%、4/10）")
    assert context_of(message) == [txt("submitted_by", user=ALICE), "16項目中8項目を報告", txt("no_previous")]
    assert f"<@{ALICE}>" in context_of(message)[0]
    assert message["text"] == f"CRM KPI {P_Q1_2026}｜{TEAM_NAME}: {txt('overall')} 7.1/10"
    assert team_env.pending() == 0


@pytest.mark.parametrize(("completeness", "score"), [("95", 10.0), ("92", 8.0), ("90", 8.0), ("89.9", 6.0)])
def test_domain_example_through_the_form(team_env: SlackEnv, completeness: str, score: float) -> None:
    """95% complete records score 10, 90-94% score 8 (data quality has only this figure reported)."""
    team_env.report({**BASE, "complete_records": completeness})
    [message] = result_messages(team_env)
    assert fields_of(message)[1] == base_line(team_env, "data_quality", score)


def test_an_area_with_nothing_reported_shows_not_reported_not_zero(team_env: SlackEnv) -> None:
    """The shipped catalog makes one figure per area required, so the form cannot leave an area blank.
    With a catalog where every ROI figure is optional, the blank area is "未報告" and left out of the overall."""
    catalog = team_env.catalog
    relaxed = dataclasses.replace(
        catalog,
        indicators=tuple(dataclasses.replace(i, required=False) if i.area == "roi" else i for i in catalog.indicators),
    )
    team_env.rebuild_slack(relaxed)
    figures = {k: v for k, v in BASE.items() if k not in ROI_FIGURES}
    res = team_env.report(figures)
    assert res.get_data() == b""
    [message] = result_messages(team_env)
    names = area_names(team_env)
    assert fields_of(message)[3] == f"*{names['roi']}*\n{txt('not_reported')}"
    assert re.search(r"(?<![\d.])0\.0/10", json.dumps(message, ensure_ascii=False)) is None
    # overall of the four reported areas: (7.5 + 8 + 10 + 5) / 4 = 7.625 -> 7.6; weakest is efficiency,
    # pulled down by the report's time saved: 25% against 50% (4/10)
    overall, weakest = sections_of(message)
    assert "*7.6/10*" in overall
    assert weakest == txt("weakest", area=names["efficiency"], score="5.0") + "\n" + txt(
        "weakest_figure", name="月次レポート作成の時間削減", value="25%", target="50%", score=4)
    assert "16項目中6項目を報告" in context_of(message)
    assert dict(team_env.teams.report(REF, Q1_2026).values) == {k: float(v) for k, v in figures.items()}


def test_full_width_digits_and_thousands_separators_are_accepted(team_env: SlackEnv) -> None:
    res = team_env.report({**BASE, "complete_records": "９５", "repeat_sales_growth": "1,200",
                           "satisfaction_score": "４．５", "nps": "\u221212", "ltv_growth": "－５"})
    assert res.get_data() == b""
    stored = dict(team_env.teams.report(REF, Q1_2026).values)
    assert [stored[k] for k in ("complete_records", "repeat_sales_growth", "satisfaction_score", "nps", "ltv_growth")
            ] == [95.0, 1200.0, 4.5, -12.0, -5.0]  # the minus sign U+2212 and a full-width minus are minus


def test_half_area_scores_fill_the_bar_half_up(team_env: SlackEnv) -> None:
    """8.5 shows nine blocks, 7.5 eight: the bar rounds like the scores (half up), not to even."""
    team_env.report({**BASE, "updates_per_member": "14"})  # engagement (10 + 7) / 2 = 8.5
    [message] = result_messages(team_env)
    assert fields_of(message)[0] == base_line(team_env, "engagement", 8.5)
    assert "`▰▰▰▰▰▰▰▰▰▱` 8.5/10" in fields_of(message)[0]


# ---- invalid input: errors in the modal, nothing stored ----------------------------------------


def assert_refused(env: SlackEnv, res, errors: dict[str, str]) -> None:
    assert res.status_code == 200
    assert res.get_json() == {"response_action": "errors", "errors": errors}
    assert env.teams.quarters(REF) == []
    assert env.teams.report(REF, Q1_2026) is None
    assert env.teams.audit(REF) == []
    assert result_messages(env) == []
    assert env.pending() == 0


@pytest.mark.parametrize(
    ("changes", "errors"),
    [
        ({"complete_records": "abc"}, {"ind:complete_records": txt("err_number")}),
        ({"satisfaction_score": "6"}, {"ind:satisfaction_score": txt("err_range", min="1", max="5")}),
        ({"f2_rate": "-5"}, {"ind:f2_rate": txt("err_range", min="0", max="100")}),
        ({"complete_records": "101"}, {"ind:complete_records": txt("err_percent")}),
        ({"line_open_rate": "150%"}, {"ind:line_open_rate": txt("err_percent")}),
        ({"nps": "nan"}, {"ind:nps": txt("err_number")}),
        ({"report_time_saved": "inf"}, {"ind:report_time_saved": txt("err_number")}),
        ({"repeat_sales_growth": "-101"}, {"ind:repeat_sales_growth": txt("err_range", min="-100", max="10000")}),
        (
            {"active_members": "x", "satisfaction_score": "0"},
            {"ind:active_members": txt("err_number"), "ind:satisfaction_score": txt("err_range", min="1", max="5")},
        ),
    ],
    ids=["not-a-number", "out-of-range", "negative", "percent-over-100", "percent-sign", "nan", "inf", "growth-range",
         "two-errors"],
)
def test_invalid_figures_are_refused_in_the_modal(team_env: SlackEnv, changes: dict, errors: dict) -> None:
    view = team_env.open_report()
    res = team_env.submit(view, form_values(team_env.catalog, {**BASE, **changes}))
    assert_refused(team_env, res, errors)


def test_growth_may_pass_100_percent(team_env: SlackEnv) -> None:
    """Shares stop at 100%; growth against a year ago does not (it doubled: +100%)."""
    assert team_env.report({**BASE, "repeat_sales_growth": "150", "ltv_growth": "120%"}).get_data() == b""
    stored = team_env.teams.report(REF, Q1_2026).values
    assert (stored["repeat_sales_growth"], stored["ltv_growth"]) == (150.0, 120.0)


@pytest.mark.parametrize("quarter", ["2026-Q2", "2026-Q3", "2027-Q1"])
def test_the_running_quarter_and_later_ones_are_refused(team_env: SlackEnv, quarter: str) -> None:
    """On 1 April, April-June has not ended: its figures do not exist yet (a crafted submission, as
    the form does not offer it)."""
    view = team_env.open_report()
    assert quarter not in [o["value"] for o in view["blocks"][1]["element"]["options"]]
    res = team_env.submit(view, form_values(team_env.catalog, BASE, quarter=quarter))
    assert_refused(team_env, res, {"quarter": txt("err_running")})
    assert res.get_json()["errors"]["quarter"] == "まだ終わっていない四半期は報告できません。終わった期を選んでください"
    assert team_env.teams.report(REF, quarter) is None


@pytest.mark.parametrize("quarter", [None, "next year", "2026-Q5"])
def test_a_missing_or_malformed_quarter_is_refused(team_env: SlackEnv, quarter: str | None) -> None:
    view = team_env.open_report()
    res = team_env.submit(view, form_values(team_env.catalog, BASE, quarter=quarter))
    assert_refused(team_env, res, {"quarter": txt("err_quarter")})


def test_a_required_figure_left_out_is_refused(team_env: SlackEnv) -> None:
    view = team_env.open_report()
    # crafted: the block is missing altogether (Slack itself would refuse a blank required input)
    res = team_env.submit(view, form_values(team_env.catalog, BASE, omit=("repeat_sales_growth",)))
    assert_refused(team_env, res, {"ind:repeat_sales_growth": txt("err_number")})
    res = team_env.submit(view, form_values(team_env.catalog, {**BASE, "report_time_saved": "   "}))
    assert_refused(team_env, res, {"ind:report_time_saved": txt("err_number")})


def test_a_submission_for_an_unregistered_team_is_refused(team_env: SlackEnv) -> None:
    view = team_env.open_report()
    forged = {**view, "private_metadata": json.dumps({"team": f"{WS}:C0NOTEAM"})}
    res = team_env.submit(forged, form_values(team_env.catalog, BASE))
    assert_refused(team_env, res, {"quarter": txt("not_a_team")})
    assert team_env.team_keys("C0NOTEAM") == []


# ---- resubmission, deltas, late entry -----------------------------------------------------------


def test_resubmission_replaces_the_figures_and_is_audited(team_env: SlackEnv) -> None:
    team_env.report(BASE)
    first_at = team_env.clock()
    team_env.clock.advance(7200)
    changed = {**BASE, "complete_records": "96", "nps": "-20"}
    res = team_env.report(changed, user=BOB)
    assert res.get_data() == b""

    report = team_env.teams.report(REF, Q1_2026)
    assert dict(report.values) == {k: float(v) for k, v in changed.items()}
    assert (report.by, report.at) == (BOB, team_env.clock())
    assert team_env.teams.quarters(REF) == [Quarter(2026, 1)]  # one quarter, not two

    newest, oldest = team_env.teams.audit(REF)
    assert oldest == {"kind": "report", "quarter": Q1_2026, "by": ALICE, "at": first_at, "old": {}, "new": BASE}
    assert newest == {
        "kind": "report", "quarter": Q1_2026, "by": BOB, "at": team_env.clock(), "old": BASE, "new": changed
    }

    first, second = result_messages(team_env)
    assert context_of(first)[0] == txt("submitted_by", user=ALICE)
    assert context_of(second)[0] == txt("replaced_by", user=BOB, period=P_Q1_2026)
    assert fields_of(second)[1] == base_line(team_env, "data_quality", 10.0)
    # NPS -20 against its target 0 (two started steps of 10 short): 6, so satisfaction (10 + 6) / 2
    assert fields_of(second)[2] == base_line(team_env, "satisfaction", 8.0, reported=2)


def test_change_against_the_previous_quarter(team_env: SlackEnv) -> None:
    team_env.clock.t = FEB_2026
    q4 = {**BASE, "active_members": "70", "repeat_sales_growth": "12", "f2_rate": "30"}  # engagement 6.5, ROI 10
    team_env.report(q4, quarter=Q4_2025)
    [q4_message] = result_messages(team_env)
    assert context_of(q4_message)[2] == txt("no_previous")
    assert "▲" not in json.dumps(q4_message, ensure_ascii=False)
    assert q4_message["blocks"][0]["text"]["text"] == f"CRM KPI {P_Q4_2025}｜{TEAM_NAME}"

    team_env.clock.t = START + 86400  # 2 April
    team_env.report(BASE, quarter=Q1_2026)
    _, message = result_messages(team_env)
    assert fields_of(message) == [
        base_line(team_env, "engagement", 7.5, "  ▲1.0"),
        base_line(team_env, "data_quality", 8.0, "  ±0"),
        base_line(team_env, "satisfaction", 10.0, "  ±0"),
        base_line(team_env, "roi", 5.0, "  ▼5.0"),
        base_line(team_env, "efficiency", 5.0, "  ±0"),
    ]
    assert sections_of(message)[0].endswith("*7.1/10*  ▼0.8")
    assert context_of(message)[2] == f"▲▼ {txt('vs_previous')}"
    assert team_env.teams.quarters(REF) == [Quarter(2025, 4), Quarter(2026, 1)]


def test_late_entry_for_the_previous_quarter(team_env: SlackEnv) -> None:
    view = team_env.open_report()
    res = team_env.submit(view, form_values(team_env.catalog, BASE, quarter=Q4_2025))
    assert res.get_data() == b""
    assert dict(team_env.teams.report(REF, Q4_2025).values) == BASE_STORED
    assert team_env.teams.report(REF, Q1_2026) is None
    assert team_env.teams.quarters(REF) == [Quarter(2025, 4)]
    assert team_env.teams.audit(REF)[0]["quarter"] == Q4_2025
    [message] = result_messages(team_env)
    assert message["blocks"][0]["text"]["text"] == f"CRM KPI {P_Q4_2025}｜{TEAM_NAME}"


def test_the_quarter_that_ended_follows_the_team_time_zone(slack_env: SlackEnv) -> None:
    """At 2026-03-31T20:00Z it is already April in Tokyo (January-March has ended) but still March in
    London (only October-December has)."""
    slack_env.clock.t = START - 4 * 3600
    slack_env.setup_team("東京", channel="C0TOKYO")
    slack_env.setup_team("London", channel="C0LONDON", extra="tz=Europe/London")

    def initial(channel: str) -> str:
        view = slack_env.open_report(channel=channel)
        quarter = next(b for b in view["blocks"] if b.get("block_id") == "quarter")
        return quarter["element"]["initial_option"]["value"]

    assert initial("C0TOKYO") == Q1_2026
    assert initial("C0LONDON") == Q4_2025
    res = slack_env.report(BASE, quarter=Q1_2026, channel="C0LONDON")
    assert res.get_json() == {"response_action": "errors", "errors": {"quarter": txt("err_running")}}
    assert slack_env.teams.quarters(TeamRef(WS, "C0LONDON")) == []
    assert slack_env.report(BASE, quarter=Q1_2026, channel="C0TOKYO").get_data() == b""
    assert slack_env.teams.quarters(TeamRef(WS, "C0TOKYO")) == [Quarter(2026, 1)]


def test_the_report_button_opens_the_modal_for_its_quarter(team_env: SlackEnv) -> None:
    team = team_env.teams.get(REF)
    button_block = slack_blocks.report_button("ja", team, Quarter(2025, 4))
    message = {"channel": CH, "ts": "1767225600.000900", "text": "reminder", "blocks": [button_block]}
    value = button_block["elements"][0]["value"]
    team_env.click(ALICE, message, slack_blocks.OPEN_REPORT_ACTION, value)
    [view] = team_env.fake.opened_views()
    quarter = next(b for b in view["blocks"] if b.get("block_id") == "quarter")
    assert quarter["element"]["initial_option"]["value"] == Q4_2025
    assert json.loads(view["private_metadata"]) == {"team": f"{WS}:{CH}"}
    team_env.submit(view, form_values(team_env.catalog, BASE, quarter=Q4_2025))
    assert dict(team_env.teams.report(REF, Q4_2025).values) == BASE_STORED
