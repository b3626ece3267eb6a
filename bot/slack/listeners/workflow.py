"""The Workflow Builder step 「CRM KPIを報告」: a Bolt custom step (``app.function``, event ``function_executed``).

A workflow reaches the step: Slack sends ``function_executed`` with the step's inputs (:data:`INPUTS`: the
team's channel, optionally a quarter, and the interactivity of the person who started the workflow) and a
token for the run. The listener opens the same report form as ``/kpi``
(:func:`bot.slack.listeners.kpi.report_view`) with the interactivity pointer, as the run's token (Bolt puts
it on the request's client), so the form belongs to the run: the web tier's one call to Slack, as for every
modal. Its submission is parsed and stored by the KPI core exactly as the ``/kpi`` form's
(:func:`bot.slack.listeners.kpi.store_report`: checked, merged with the owners' areas, posted once), and
then the run is completed with the quarter's scores (:data:`OUTPUTS`). Closing the form, or a run that
cannot report (the channel not set up, a quarter that cannot be read or reported, no interactivity),
completes it with an error saying why, in the bot's language (texts ``step_*``).

A completion is a job of the worker (:mod:`bot.slack.completion`: ``functions.completeSuccess`` or
``completeError``), queued once per run: its mark (:func:`conversations.keys.step_done`, in the team's hash
slot) and the job are written by one Lua script, so a redelivered submission, a close after a submission, a
redelivered event or a second event for the run completes it once, first answer wins. The run's execution
ID travels in the form's private_metadata.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from slack_bolt import Ack, App
from slack_sdk.errors import SlackApiError

from bot.logs import uid
from bot.slack import blocks, completion
from bot.slack.deps import Deps
from bot.slack.listeners import kpi
from bot.slack.listeners.common import modal_submission
from bot.slack.payload import json_object, obj, sender_workspace
from bot.slack.texts import period_label, t
from conversations import keys
from conversations.errors import Contention, InvalidInput, StoreUnavailable
from conversations.jobs import Job
from conversations.keys import TeamRef
from conversations.kpi_catalog import AREA_KEYS
from conversations.transports import Transport
from scoring.kpi import KpiResult
from scoring.periods import Quarter, parse_period, reportable

log = logging.getLogger(__name__)

CALLBACK_ID = "report_kpi"  # the function's callback_id in slack-manifest.yml
VIEW_CALLBACK = "kpi_report_step"  # the form opened by a run (the /kpi form's blocks)
# The step's inputs and outputs as slack-manifest.yml declares them: name -> (type, required).
INPUTS: dict[str, tuple[str, bool]] = {
    "channel": ("slack#/types/channel_id", True),
    "quarter": ("string", False),  # "2026-Q1" or the business year's 「2025年度 第4四半期」; blank: the last ended
    "interactivity": ("slack#/types/interactivity", True),  # what lets a run open a form for its person
}
# The quarter reported (its key), the overall score and each area's (0-10, one decimal; an area without
# figures is left out, as the result post shows it "not reported"), named by the catalog's area keys.
OUTPUTS: dict[str, tuple[str, bool]] = {
    "quarter": ("string", True),
    "overall": ("number", True),
    **{area: ("number", False) for area in AREA_KEYS},
}
DONE_TTL = 30 * 86400  # seconds a run's completion mark is kept (a form may stay open for days)


@dataclass(frozen=True)
class Run:
    """One run of the step: its execution ID, the token Slack gave it (None: none sent), and where its
    completion is queued (the team's hash tag, or the workspace's when the run names no valid channel)."""

    workspace: str
    execution: str
    token: str | None
    tag: str


def run_of(workspace: Any, execution: Any, token: Any, ref: TeamRef | None) -> Run | None:
    try:
        ws = keys.slack_id(workspace)
        tag = ref.tag[1:-1] if ref is not None else f"ws:{ws}"
        keys.step_done(tag, execution)  # checks the execution ID
    except InvalidInput:
        return None
    return Run(ws, execution, token if isinstance(token, str) and token else None, tag)


def finish(deps: Deps, run: Run, *, outputs: dict[str, Any] | None = None, error: str | None = None) -> bool:
    """Queue the run's completion for the worker, once per run: False when it was queued before."""
    out = completion.completion(run.execution, run.token, outputs=outputs, error=error)
    job = Job.new(Transport.SLACK, f"{run.workspace}.{run.execution}", run.tag, [out], deps.clock())
    queued = deps.outbox.put_once(keys.step_done(run.tag, run.execution), job, ttl=DONE_TTL)
    log.info("slack: step run %s %s%s", run.execution[:16], "succeeded" if outputs is not None else "failed",
             "" if queued else " (completed before: not again)")
    return queued


def fail(deps: Deps, run: Run, key: str, **params: object) -> None:
    try:
        finish(deps, run, error=t(deps.locale, key, **params))
    except StoreUnavailable as e:  # the event was acknowledged: Slack ends the run when it times out
        log.error("slack: step run %s could not be completed (%s)", run.execution[:16], e)


def outputs_of(quarter: Quarter, result: KpiResult) -> dict[str, Any]:
    """The run's outputs (:data:`OUTPUTS`) from the quarter's scores."""
    scores = {"overall": result.overall} | {area.area: area.score for area in result.areas if area.area in OUTPUTS}
    return {"quarter": str(quarter)} | {name: score for name, score in scores.items() if score is not None}


def _interactivity(inputs: dict[str, Any]) -> tuple[str | None, str]:
    """(the interactivity pointer, the interactor's user ID) of the step's inputs (Slack sends the object
    and, flattened, its fields)."""
    given = obj(inputs.get("interactivity"))
    pointer = given.get("interactivity_pointer", inputs.get("interactivity.interactivity_pointer"))
    user = obj(given.get("interactor")).get("id", inputs.get("interactivity.interactor.id"))
    return (pointer if isinstance(pointer, str) and pointer else None), (user if isinstance(user, str) else "")


# ---- the run starts: open the form -----------------------------------------------------------------


def report_kpi(event: dict[str, Any], body: dict[str, Any], deps: Deps) -> None:
    """``function_executed`` (acknowledged by Bolt): open the team's report form for the run's person."""
    inputs = obj(event.get("inputs"))
    channel = inputs.get("channel")
    try:
        ref = TeamRef(body.get("team_id"), channel)  # type: ignore[arg-type]  # checked there
    except InvalidInput:
        ref = None
    run = run_of(body.get("team_id"), event.get("function_execution_id"), event.get("bot_access_token"), ref)
    if run is None:
        log.warning("slack: a step run without a valid workspace or execution ID ignored")
        return
    if ref is None:
        fail(deps, run, "step_no_channel")
        return
    try:
        team = deps.teams.get(ref)
    except StoreUnavailable as e:
        log.error("slack: step run %s: the team could not be read (%s)", run.execution[:16], e)
        return
    if team is None:
        fail(deps, run, "step_not_a_team")
        return
    quarter = None
    typed = inputs.get("quarter")
    if typed is not None and str(typed).strip():
        try:
            quarter = parse_period(str(typed), team.fy_start)
        except ValueError:
            fail(deps, run, "step_bad_quarter", quarter=str(typed).strip()[:40])
            return
        if quarter not in reportable(deps.clock(), team.tz, fy_start=team.fy_start):
            fail(deps, run, "step_quarter_closed", period=period_label(deps.locale, quarter, team.fy_start))
            return
    pointer, user = _interactivity(inputs)
    if pointer is None:
        fail(deps, run, "step_no_interactivity")
        return
    view = kpi.report_view(deps, team, quarter, user)
    view |= {"callback_id": VIEW_CALLBACK, "notify_on_close": True,
             "private_metadata": json.dumps({"team": ref.id, "run": run.execution})}
    try:
        deps.client.views_open(interactivity_pointer=pointer, view=view)
    except SlackApiError as e:
        log.warning("slack: step run %s: the form could not be opened (%s)", run.execution[:16],
                    str(e.response.get("error", ""))[:40])
        fail(deps, run, "step_open_failed")
        return
    log.info("slack: step run %s: report form opened for %s", run.execution[:16], uid(user))


# ---- the form submitted, or closed ------------------------------------------------------------------


def _run_of_view(body: dict[str, Any], view: dict[str, Any]) -> Run | None:
    """The run a form belongs to (private_metadata), if it names a team of the sending workspace."""
    meta = json_object(view.get("private_metadata"))
    name = meta.get("team")
    try:
        ref = TeamRef.parse(name) if isinstance(name, str) else None
    except InvalidInput:
        ref = None
    if ref is None or ref.workspace != sender_workspace(body):
        return None
    given = obj(body.get("function_data")).get("execution_id")
    if given is not None and given != meta.get("run"):
        log.warning("slack: a step form's run and its function_data differ: the form's run is completed")
    return run_of(ref.workspace, meta.get("run"), body.get("bot_access_token"), ref)


def complete_with_scores(deps: Deps, body: dict[str, Any], view: dict[str, Any], run: Run) -> None:
    """The form is stored: complete the run with the quarter's scores as they stand now (with area owners,
    the areas reported so far)."""
    found = modal_submission(deps, body, view)
    state = obj(obj(view.get("state")).get("values"))
    try:
        quarter = Quarter.parse(blocks.chosen_quarter(state))
    except ValueError:
        quarter = None
    report = deps.teams.report(found[0].ref, quarter) if found is not None and quarter is not None else None
    if found is None or quarter is None or report is None:  # stored a moment ago: never so, short of a deletion
        log.error("slack: step run %s: the stored report could not be read back", run.execution[:16])
        return
    ref = found[0].ref
    result = deps.kpi.score_stored(report, ref, deps.teams.report(ref, quarter.previous()))
    finish(deps, run, outputs=outputs_of(quarter, result))


def step_submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any], deps: Deps) -> None:
    """Store the report as the /kpi form's submission is stored, then complete the run; the form stays open
    with the core's problems (the run goes on), or saying so when the store does not answer."""
    try:
        answer = kpi.store_report(body, view, deps)
        run = _run_of_view(body, view)
        if not answer and run is not None:
            complete_with_scores(deps, body, view, run)
        elif not answer:
            log.warning("slack: a step form without a valid run stored; no run to complete")
    except (StoreUnavailable, Contention) as e:
        log.error("slack: a step form could not be stored or its run completed (%s)", e)
        answer = {"quarter": t(deps.locale, "err_store")}
    if answer:
        ack(response_action="errors", errors=answer)
    else:
        ack()


def step_closed(ack: Ack, body: dict[str, Any], view: dict[str, Any], deps: Deps) -> None:
    """The form closed without submitting: the run ends in an error (nothing was reported)."""
    ack()
    run = _run_of_view(body, view)
    if run is None:
        log.warning("slack: a closed step form without a valid run ignored")
        return
    fail(deps, run, "step_cancelled")


def register(app: App) -> None:
    app.function(CALLBACK_ID)(report_kpi)
    app.view_submission(VIEW_CALLBACK)(step_submitted)
    app.view_closed(VIEW_CALLBACK)(step_closed)
