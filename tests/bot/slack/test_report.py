"""Reporting a quarter's figures through the modal: what is stored, what the channel sees, what is refused."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from bot.slack import blocks as B
from conversations.keys import TeamRef
from scoring.periods import Quarter
from tests.bot.slack.conftest import (
    ALICE,
    BASE,
    BASE_STORED,
    BOB,
    CH,
    NOV_2025,
    Q1_2026,
    Q4_2025,
    TEAM_NAME,
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


@pytest.fixture
def team_env(slack_env: SlackEnv) -> SlackEnv:
    slack_env.setup_team()
    return slack_env


def result_messages(env: SlackEnv) -> list[dict]:
    """The result posts of the team's reports."""
    return env.team_posts(CH)


# ---- the modal -----------------------------------------------------------------------------------


def test_kpi_opens_the_report_modal_for_the_current_quarter(team_env: SlackEnv) -> None:
    view = team_env.open_report()
    assert view["callback_id"] == B.REPORT_CALLBACK
    assert json.loads(view["private_metadata"]) == {"team": f"{WS}:{CH}"}
    blocks = view["blocks"]
    quarter = next(b for b in blocks if b.get("block_id") == "quarter")
    assert quarter["element"]["initial_option"]["value"] == Q1_2026
    assert [o["value"] for o in quarter["element"]["options"]] == [
        "2026-Q1", "2025-Q4", "2025-Q3", "2025-Q2", "2025-Q1"
    ]
    inputs = [b for b in blocks if b["type"] == "input" and b["block_id"] != "quarter"]
    catalog = team_env.catalog
    assert [b["block_id"] for b in inputs] == [f"ind:{ind.key}" for ind in catalog.indicators]
    assert len(inputs) == 13
    assert [b["optional"] for b in inputs] == [not ind.required for ind in catalog.indicators]
    assert all(b["element"]["type"] == "plain_text_input" and "initial_value" not in b["element"] for b in inputs)
    completeness = next(b for b in inputs if b["block_id"] == "ind:complete_records")
    assert completeness["hint"]["text"] == txt("target_hint", target="95", unit="%", direction=txt("higher"))
    assert [b["text"]["text"] for b in blocks if b["type"] == "header"] == list(area_names(team_env).values())


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
    figures = {**BASE, "new_leads": "1000000", "resolution_hours": "12.345678"}
    team_env.report(figures)
    view = team_env.open_report()
    initial = {b["block_id"]: b["element"].get("initial_value") for b in view["blocks"] if b["type"] == "input"}
    assert (initial["ind:new_leads"], initial["ind:resolution_hours"]) == ("1000000", "12.345678")
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
        "type": "header", "text": {"type": "plain_text", "text": f"CRM KPI {Q1_2026} ー {TEAM_NAME}", "emoji": True}
    }
    assert fields_of(message) == [
        area_line(names["engagement"], 7.5),
        area_line(names["data_quality"], 8.0),
        area_line(names["satisfaction"], 10.0),
        area_line(names["roi"], 5.0),
        area_line(names["efficiency"], 5.0),
    ]
    assert "`▰▰▰▰▰▰▰▰▱▱` 8.0/10" in fields_of(message)[1]
    overall, weakest = sections_of(message)
    assert overall == f"*{txt('overall')}*  `▰▰▰▰▰▰▰▱▱▱` *7.1/10*"
    assert weakest == txt("weakest", area=names["roi"], score="5.0")
    assert context_of(message) == [txt("submitted_by", user=ALICE), txt("no_previous")]
    assert f"<@{ALICE}>" in context_of(message)[0]
    assert message["text"] == f"CRM KPI {Q1_2026} ー {TEAM_NAME}: {txt('overall')} 7.1/10"
    assert team_env.pending() == 0


@pytest.mark.parametrize(("completeness", "score"), [("95", 10.0), ("92", 8.0), ("90", 8.0), ("89.9", 6.0)])
def test_domain_example_through_the_form(team_env: SlackEnv, completeness: str, score: float) -> None:
    """95% complete records score 10, 90-94% score 8 (data quality has only this figure reported)."""
    team_env.report({**BASE, "complete_records": completeness})
    [message] = result_messages(team_env)
    assert fields_of(message)[1] == area_line(area_names(team_env)["data_quality"], score)


def test_an_area_with_nothing_reported_shows_not_reported_not_zero(team_env: SlackEnv) -> None:
    """The shipped catalog makes one figure per area required, so the form cannot leave an area blank.
    With a catalog where every ROI figure is optional, the blank area is "未報告" and left out of the overall."""
    catalog = team_env.catalog
    relaxed = dataclasses.replace(
        catalog,
        indicators=tuple(dataclasses.replace(i, required=False) if i.area == "roi" else i for i in catalog.indicators),
    )
    team_env.rebuild_slack(relaxed)
    figures = {k: v for k, v in BASE.items() if k != "new_leads"}
    res = team_env.report(figures)
    assert res.get_data() == b""
    [message] = result_messages(team_env)
    names = area_names(team_env)
    assert fields_of(message)[3] == f"*{names['roi']}*\n{txt('not_reported')}"
    assert re.search(r"(?<![\d.])0\.0/10", json.dumps(message, ensure_ascii=False)) is None
    # overall of the four reported areas: (7.5 + 8 + 10 + 5) / 4 = 7.625 -> 7.6; weakest is efficiency
    overall, weakest = sections_of(message)
    assert "*7.6/10*" in overall
    assert weakest == txt("weakest", area=names["efficiency"], score="5.0")
    assert dict(team_env.teams.report(REF, Q1_2026).values) == {k: float(v) for k, v in figures.items()}


def test_full_width_digits_and_thousands_separators_are_accepted(team_env: SlackEnv) -> None:
    res = team_env.report({**BASE, "complete_records": "９５", "new_leads": "1,200", "satisfaction_score": "４．５"})
    assert res.get_data() == b""
    stored = dict(team_env.teams.report(REF, Q1_2026).values)
    assert (stored["complete_records"], stored["new_leads"], stored["satisfaction_score"]) == (95.0, 1200.0, 4.5)


def test_half_area_scores_fill_the_bar_half_up(team_env: SlackEnv) -> None:
    """8.5 shows nine blocks, 7.5 eight: the bar rounds like the scores (half up), not to even."""
    team_env.report({**BASE, "updates_per_member": "14"})  # engagement (10 + 7) / 2 = 8.5
    [message] = result_messages(team_env)
    assert fields_of(message)[0].endswith("`▰▰▰▰▰▰▰▰▰▱` 8.5/10")


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
        ({"new_leads": "-5"}, {"ind:new_leads": txt("err_range", min="0", max="1000000")}),
        ({"complete_records": "101"}, {"ind:complete_records": txt("err_percent")}),
        ({"close_rate": "150%"}, {"ind:close_rate": txt("err_percent")}),
        ({"nps": "nan"}, {"ind:nps": txt("err_number")}),
        ({"report_hours": "inf"}, {"ind:report_hours": txt("err_number")}),
        (
            {"active_members": "x", "satisfaction_score": "0"},
            {"ind:active_members": txt("err_number"), "ind:satisfaction_score": txt("err_range", min="1", max="5")},
        ),
    ],
    ids=["not-a-number", "out-of-range", "negative", "percent-over-100", "percent-sign", "nan", "inf", "two-errors"],
)
def test_invalid_figures_are_refused_in_the_modal(team_env: SlackEnv, changes: dict, errors: dict) -> None:
    view = team_env.open_report()
    res = team_env.submit(view, form_values(team_env.catalog, {**BASE, **changes}))
    assert_refused(team_env, res, errors)


def test_a_future_quarter_is_refused(team_env: SlackEnv) -> None:
    view = team_env.open_report()
    res = team_env.submit(view, form_values(team_env.catalog, BASE, quarter="2026-Q2"))  # not among the options
    assert_refused(team_env, res, {"quarter": txt("err_future")})
    assert team_env.teams.report(REF, "2026-Q2") is None


@pytest.mark.parametrize("quarter", [None, "next year", "2026-Q5"])
def test_a_missing_or_malformed_quarter_is_refused(team_env: SlackEnv, quarter: str | None) -> None:
    view = team_env.open_report()
    res = team_env.submit(view, form_values(team_env.catalog, BASE, quarter=quarter))
    assert_refused(team_env, res, {"quarter": txt("err_quarter")})


def test_a_required_figure_left_out_is_refused(team_env: SlackEnv) -> None:
    view = team_env.open_report()
    # crafted: the block is missing altogether (Slack itself would refuse a blank required input)
    res = team_env.submit(view, form_values(team_env.catalog, BASE, omit=("new_leads",)))
    assert_refused(team_env, res, {"ind:new_leads": txt("err_number")})
    res = team_env.submit(view, form_values(team_env.catalog, {**BASE, "report_hours": "   "}))
    assert_refused(team_env, res, {"ind:report_hours": txt("err_number")})


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
    assert context_of(second)[0] == txt("replaced_by", user=BOB, quarter=Q1_2026)
    assert fields_of(second)[1] == area_line(area_names(team_env)["data_quality"], 10.0)


def test_change_against_the_previous_quarter(team_env: SlackEnv) -> None:
    team_env.clock.t = NOV_2025
    q4 = {**BASE, "active_members": "70", "new_leads": "300"}  # engagement 6.5, ROI 10: overall 7.9
    team_env.report(q4, quarter=Q4_2025)
    [q4_message] = result_messages(team_env)
    assert context_of(q4_message)[1] == txt("no_previous")
    assert "▲" not in json.dumps(q4_message, ensure_ascii=False)

    team_env.clock.t = 1_767_225_600.0 + 86400  # 2026-01-02
    team_env.report(BASE, quarter=Q1_2026)
    _, message = result_messages(team_env)
    names = area_names(team_env)
    assert fields_of(message) == [
        area_line(names["engagement"], 7.5, "  ▲1.0"),
        area_line(names["data_quality"], 8.0, "  ±0"),
        area_line(names["satisfaction"], 10.0, "  ±0"),
        area_line(names["roi"], 5.0, "  ▼5.0"),
        area_line(names["efficiency"], 5.0, "  ±0"),
    ]
    assert sections_of(message)[0].endswith("*7.1/10*  ▼0.8")
    assert context_of(message)[1] == f"▲▼ {txt('vs_previous')}"
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
    assert message["blocks"][0]["text"]["text"] == f"CRM KPI {Q4_2025} ー {TEAM_NAME}"


def test_the_current_quarter_follows_the_team_time_zone(slack_env: SlackEnv) -> None:
    """At 2025-12-31T20:00Z it is already 2026-Q1 in Tokyo but still 2025-Q4 in London."""
    slack_env.clock.t = 1_767_211_200.0
    slack_env.setup_team("東京", channel="C0TOKYO")
    slack_env.setup_team("London", channel="C0LONDON", extra="tz=Europe/London")

    def initial(channel: str) -> str:
        view = slack_env.open_report(channel=channel)
        quarter = next(b for b in view["blocks"] if b.get("block_id") == "quarter")
        return quarter["element"]["initial_option"]["value"]

    assert initial("C0TOKYO") == Q1_2026
    assert initial("C0LONDON") == Q4_2025
    res = slack_env.report(BASE, quarter=Q1_2026, channel="C0LONDON")
    assert res.get_json() == {"response_action": "errors", "errors": {"quarter": txt("err_future")}}
    assert slack_env.teams.quarters(TeamRef(WS, "C0LONDON")) == []
    assert slack_env.report(BASE, quarter=Q1_2026, channel="C0TOKYO").get_data() == b""
    assert slack_env.teams.quarters(TeamRef(WS, "C0TOKYO")) == [Quarter(2026, 1)]


def test_the_report_button_opens_the_modal_for_its_quarter(team_env: SlackEnv) -> None:
    team = team_env.teams.get(REF)
    button_block = B.report_button("ja", team, Quarter(2025, 4))
    message = {"channel": CH, "ts": "1767225600.000900", "text": "reminder", "blocks": [button_block]}
    value = button_block["elements"][0]["value"]
    team_env.click(ALICE, message, B.OPEN_REPORT_ACTION, value)
    [view] = team_env.fake.opened_views()
    quarter = next(b for b in view["blocks"] if b.get("block_id") == "quarter")
    assert quarter["element"]["initial_option"]["value"] == Q4_2025
    assert json.loads(view["private_metadata"]) == {"team": f"{WS}:{CH}"}
    team_env.submit(view, form_values(team_env.catalog, BASE, quarter=Q4_2025))
    assert dict(team_env.teams.report(REF, Q4_2025).values) == BASE_STORED
