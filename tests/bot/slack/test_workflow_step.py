"""The Workflow Builder step 「CRM KPIを報告」 (a Bolt custom step), end to end: a run's signed
``function_executed`` event opens the /kpi form as the run's; its signed submission stores the report and
completes the run once with the quarter's scores; a closed form, or a run that cannot report, completes it
with an error saying why. Real Redis, the fake Slack API (its runs: tokens, pointers, functions.complete*
checked against the manifest's declared outputs), the worker delivering the completion.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from slack_sdk import WebClient

from bot.kpi.figures import usable_figures
from bot.slack.listeners.workflow import CALLBACK_ID, INPUTS, OUTPUTS, VIEW_CALLBACK
from conversations import keys
from conversations.keys import TeamRef
from scoring.periods import Quarter
from tests.bot.slack import test_oauth
from tests.bot.slack.conftest import (
    ALICE,
    BASE,
    BASE_STORED,
    CH,
    CH2,
    Q1_2026,
    TOKEN,
    WS,
    SlackEnv,
    form_values,
    in_view,
    txt,
)
from tests.bot.slack.test_oauth import CH1, W1, OAuthEnv
from tests.fakes.slack_api import StepRun
from tests.fakes.slack_signing import (
    event_body,
    function_executed_event,
    function_scope,
    interaction_body,
    view_closed_payload,
    view_submission_payload,
)

MANIFEST = Path(__file__).resolve().parents[3] / "slack-manifest.yml"
oauth_env = test_oauth.oauth_env  # two workspaces installed by OAuth, the worker delivering
# BASE's scores by hand (see conftest): what the run's outputs must say for them
BASE_OUTPUTS = {"quarter": Q1_2026, "overall": 7.1, "engagement": 7.5, "data_quality": 8.0, "satisfaction": 10.0,
                "roi": 5.0, "efficiency": 5.0}


def step() -> dict[str, Any]:
    return yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))["functions"][CALLBACK_ID]


# ---- what Slack does for a run ------------------------------------------------------------------------


def start(env: SlackEnv, inputs: dict[str, Any], *, user: str | None = ALICE, team: str = WS,
          event_id: str | None = None) -> StepRun:
    """A workflow reaches the step: the fake starts a run (checked against the manifest's outputs) and Slack
    sends its signed function_executed event."""
    declared = step()
    run = env.fake.start_run(CALLBACK_ID, inputs, team=team, user=user,
                             output_parameters=declared["output_parameters"])
    send_event(env, run, event_id=event_id)
    return run


def send_event(env: SlackEnv, run: StepRun, *, event_id: str | None = None, retry_num: int | None = None) -> None:
    declared = step()
    event = function_executed_event(CALLBACK_ID, run.execution, run.token, run.inputs, title=declared["title"],
                                    input_parameters=declared["input_parameters"],
                                    output_parameters=declared["output_parameters"])
    env.ok(event_body(event, event_id=event_id, team_id=run.team), retry_num=retry_num)


def run_view(env: SlackEnv, run: StepRun) -> dict[str, Any]:
    views = [v for v in env.fake.opened_views() if env.fake.run_of_view(v["id"]) == run.execution]
    assert len(views) == 1, env.fake.summary()
    return views[0]


def submit(env: SlackEnv, run: StepRun, figures: dict[str, Any], *, quarter: str | None = Q1_2026,
           settle: bool = True) -> Any:
    """The run's person submits its form (the payload carries the run, as Slack sends it)."""
    view = run_view(env, run)
    values = in_view(view, form_values(env.catalog, figures, quarter))
    payload = view_submission_payload(run.user, view, values, team_id=run.team,
                                      scope=function_scope(CALLBACK_ID, run.execution, run.token, run.inputs))
    res = env.post(interaction_body(payload))
    assert res.status_code == 200, (res.status_code, res.get_data(as_text=True))
    if settle:
        env.settle()
    return res


def close(env: SlackEnv, run: StepRun) -> None:
    payload = view_closed_payload(run.user, run_view(env, run), team_id=run.team,
                                  scope=function_scope(CALLBACK_ID, run.execution, run.token, run.inputs))
    env.ok(interaction_body(payload))


def completions(env: SlackEnv, run: StepRun) -> list[tuple[str, Any, str]]:
    """(method, outputs or error, bearer token) of every accepted completion call for the run."""
    found = []
    for method in ("functions.completeSuccess", "functions.completeError"):
        for call in env.fake.calls(method):
            if call.args.get("function_execution_id") == run.execution and call.response.get("ok"):
                what = call.args.get("outputs") if method.endswith("Success") else call.args.get("error")
                found.append((method, what, call.headers.get("authorization", "").removeprefix("Bearer ")))
    return found


@pytest.fixture
def team_env(slack_env: SlackEnv) -> SlackEnv:
    slack_env.setup_team()
    return slack_env


# ---- the form ------------------------------------------------------------------------------------------


def test_a_run_opens_the_same_form_as_kpi_for_its_person(team_env: SlackEnv) -> None:
    env = team_env
    form = env.open_report(user=ALICE)
    run = start(env, {"channel": CH})

    opened = run_view(env, run)
    call = env.fake.calls("views.open")[-1]
    assert call.args["interactivity_pointer"] == run.pointer and "trigger_id" not in call.args
    assert call.headers["authorization"] == f"Bearer {run.token}"  # the run's token: the form is the run's
    assert opened["blocks"] == form["blocks"]  # the very /kpi form: quarters, inputs, hints
    assert [opened[k] for k in ("title", "submit", "close")] == [form[k] for k in ("title", "submit", "close")]
    assert (opened["callback_id"], opened["notify_on_close"]) == (VIEW_CALLBACK, True)
    assert json.loads(opened["private_metadata"]) == {"team": TeamRef(WS, CH).id, "run": run.execution}
    assert env.fake.run(run.execution).state == "running"  # type: ignore[union-attr]
    assert completions(env, run) == []


def test_a_quarter_given_as_the_business_year_names_is_preselected(team_env: SlackEnv) -> None:
    env = team_env
    run = start(env, {"channel": CH, "quarter": "2025年度 第3四半期"})  # October-December 2025
    quarter = next(b for b in run_view(env, run)["blocks"] if b.get("block_id") == "quarter")
    assert quarter["element"]["initial_option"]["value"] == "2025-Q4"


# ---- submitted: stored once, completed once ------------------------------------------------------------


def test_a_submitted_form_is_reported_and_completes_the_run_with_its_scores(team_env: SlackEnv) -> None:
    env = team_env
    run = start(env, {"channel": CH})
    submit(env, run, BASE)

    stored = env.teams.report(TeamRef(WS, CH), Quarter.parse(Q1_2026))
    assert stored is not None and stored.values == BASE_STORED  # stored as the /kpi form's
    assert len(env.team_posts()) == 1  # the result in the channel, as from /kpi
    assert completions(env, run) == [("functions.completeSuccess", BASE_OUTPUTS, run.token)]
    ended = env.fake.run(run.execution)
    assert ended is not None and (ended.state, ended.outputs) == ("completed", BASE_OUTPUTS)
    # the outputs are what the KPI core scores for the same figures
    core = env.catalog.score(usable_figures(env.catalog, BASE_STORED), {}, {})
    assert ended.outputs["overall"] == core.overall
    assert {a.area: a.score for a in core.areas} == {k: ended.outputs[k] for k in env.catalog.area_keys}
    assert set(ended.outputs) == set(OUTPUTS)


def test_an_area_not_reported_is_left_out_of_the_outputs(team_env: SlackEnv) -> None:
    env = team_env
    run = start(env, {"channel": CH})
    only_required = {k: v for k, v in BASE.items() if env.catalog.indicator(k).required}
    submit(env, run, only_required)
    outputs = env.fake.run(run.execution).outputs  # type: ignore[union-attr]
    core = env.catalog.score(usable_figures(env.catalog, {k: float(v) for k, v in only_required.items()}), {}, {})
    expected = {"quarter": Q1_2026, "overall": core.overall} | {
        a.area: a.score for a in core.areas if a.score is not None}
    assert outputs == expected


def test_a_refused_form_stays_open_and_the_run_goes_on(team_env: SlackEnv) -> None:
    env = team_env
    run = start(env, {"channel": CH})
    res = submit(env, run, BASE | {"active_members": "たくさん"})
    assert res.get_json()["response_action"] == "errors"
    assert "ind:active_members" in res.get_json()["errors"]
    assert completions(env, run) == [] and env.fake.run(run.execution).state == "running"  # type: ignore[union-attr]
    submit(env, run, BASE)
    assert [c[0] for c in completions(env, run)] == ["functions.completeSuccess"]


def test_a_redelivered_submission_a_late_close_and_a_redelivered_event_complete_once(team_env: SlackEnv) -> None:
    env = team_env
    run = start(env, {"channel": CH}, event_id="Ev0RUN1")
    send_event(env, run, event_id="Ev0RUN1", retry_num=1)  # Slack's retry of the same event
    assert len(env.fake.calls("views.open")) == 1
    with env.worker_paused():  # nothing delivered between them: only the mark keeps the second out
        submit(env, run, BASE, settle=False)
        submit(env, run, BASE, settle=False)  # the same submission again
        env.settle()
        close(env, run)  # a close that crossed the submission
        done = keys.step_done(TeamRef(WS, CH).tag[1:-1], run.execution)
        assert env.r.exists(done)
    env.settle()
    assert [c[0] for c in completions(env, run)] == ["functions.completeSuccess"]
    assert len(env.fake.calls("functions.completeSuccess")) + len(env.fake.calls("functions.completeError")) == 1
    assert len(env.team_posts()) == 1
    assert env.pending() == 0


# ---- ended in an error -----------------------------------------------------------------------------


def test_a_closed_form_fails_the_run_and_reports_nothing(team_env: SlackEnv) -> None:
    env = team_env
    run = start(env, {"channel": CH})
    close(env, run)
    assert completions(env, run) == [("functions.completeError", txt("step_cancelled"), run.token)]
    assert env.fake.run(run.execution).state == "failed"  # type: ignore[union-attr]
    assert env.teams.quarters(TeamRef(WS, CH)) == [] and env.team_posts() == []
    close(env, run)  # closed again (a redelivery): completed before, never twice
    assert len(env.fake.calls("functions.completeError")) == 1


@pytest.mark.parametrize(("inputs", "user", "reason"), [
    ({"channel": CH2}, ALICE, ("step_not_a_team", {})),
    ({"channel": CH, "quarter": "去年の冬"}, ALICE, ("step_bad_quarter", {"quarter": "去年の冬"})),
    ({"channel": CH, "quarter": "2026-Q2"}, ALICE, ("step_quarter_closed",
                                                    {"period": "2026年度 第1四半期（4〜6月）"})),  # running
    ({"channel": CH, "quarter": "FY2024 Q1"}, ALICE, ("step_quarter_closed",
                                                      {"period": "2024年度 第1四半期（4〜6月）"})),  # too old
    ({"channel": CH}, None, ("step_no_interactivity", {})),  # a workflow no person started
    ({"channel": "not a channel"}, ALICE, ("step_no_channel", {})),
])
def test_a_run_that_cannot_report_fails_saying_why(team_env: SlackEnv, inputs: dict[str, Any], user: str | None,
                                                  reason: tuple[str, dict[str, str]]) -> None:
    env = team_env
    run = start(env, inputs, user=user)
    key, params = reason
    assert completions(env, run) == [("functions.completeError", txt(key, **params), run.token)]
    assert env.fake.calls("views.open") == []
    start_again = env.fake.calls("functions.completeError")
    send_event(env, run)  # a second event for the run (another event id): completed before
    assert env.fake.calls("functions.completeError") == start_again


def test_a_form_slack_will_not_open_fails_the_run(team_env: SlackEnv) -> None:
    env = team_env
    env.fake.fail("views.open", "trigger_expired")
    run = start(env, {"channel": CH})
    assert completions(env, run) == [("functions.completeError", txt("step_open_failed"), run.token)]


# ---- the worker's side ---------------------------------------------------------------------------------


def test_a_run_whose_token_ran_out_is_completed_with_the_bot_token(team_env: SlackEnv) -> None:
    env = team_env
    run = start(env, {"channel": CH})
    with env.worker_paused():  # the worker was away for longer than the run's token lives
        submit(env, run, BASE)
        env.fake.expire_run_token(run.execution)
    env.settle()
    assert completions(env, run) == [("functions.completeSuccess", BASE_OUTPUTS, TOKEN)]
    refused = [c for c in env.fake.calls("functions.completeSuccess") if not c.response.get("ok")]
    assert [c.response["error"] for c in refused] == ["token_expired"]


def test_a_run_completed_before_the_attempt_counts_as_delivered(team_env: SlackEnv) -> None:
    """An earlier attempt whose answer was lost completed it: Slack says it is no longer running."""
    env = team_env
    run = start(env, {"channel": CH})
    with env.worker_paused():
        submit(env, run, BASE)
        WebClient(token=run.token, base_url=env.fake.base_url).functions_completeSuccess(
            function_execution_id=run.execution, outputs=BASE_OUTPUTS)
    env.settle()
    assert env.pending() == 0
    assert [c.response.get("error") for c in env.fake.calls("functions.completeSuccess")] == [
        None, "invalid_auth", "execution_not_in_running_state"]  # the run's token ended: the bot's learns it


def test_a_completion_slack_answers_with_a_5xx_is_retried(team_env: SlackEnv) -> None:
    env = team_env
    env.fake.fail("functions.completeSuccess", status=500)
    run = start(env, {"channel": CH})
    submit(env, run, BASE)
    assert completions(env, run) == [] and env.pending() == 1
    env.clock.advance(3)  # the retry's backoff (2 s)
    env.settle()
    assert completions(env, run) == [("functions.completeSuccess", BASE_OUTPUTS, run.token)]


# ---- many workspaces (OAuth) -----------------------------------------------------------------------------


def test_a_run_in_a_workspace_installed_by_oauth(oauth_env: OAuthEnv) -> None:
    env = oauth_env
    installed = env.install(W1)
    env.kpi(W1, CH1, "setup 本店")
    run = start(env, {"channel": CH1}, team=W1)
    assert env.calls_of("views.open") == [(W1, run.token)]
    with env.worker_paused():
        submit(env, run, BASE)
        env.fake.expire_run_token(run.execution)
    env.settle()
    assert completions(env, run) == [("functions.completeSuccess", BASE_OUTPUTS, installed)]  # W1's own token


# ---- the manifest ----------------------------------------------------------------------------------------


def test_the_manifest_declares_the_step_as_the_code_runs_it(slack_env: SlackEnv) -> None:
    manifest = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    declared = manifest["functions"][CALLBACK_ID]
    assert declared["title"] == "CRM KPIを報告"

    def params(section: str) -> dict[str, tuple[str, bool]]:
        found = declared[section]
        assert all(p["name"] == name for name, p in found.items())
        return {name: (p["type"], p["is_required"]) for name, p in found.items()}

    assert params("input_parameters") == INPUTS
    assert params("output_parameters") == OUTPUTS
    catalog = slack_env.catalog
    for area in catalog.areas:  # each area's output is titled by the catalog's names
        assert declared["output_parameters"][area.key]["title"] == f"{area.name_ja} / {area.name_en}"
    settings = manifest["settings"]
    assert "function_executed" in settings["event_subscriptions"]["bot_events"]
    assert (settings["org_deploy_enabled"], settings["function_runtime"]) == (True, "remote")
    assert settings["interactivity"]["is_enabled"] is True
