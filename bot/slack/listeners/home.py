"""The App Home tab: the workspace's teams, whether they reported the quarter that ended, their latest scores."""

from __future__ import annotations

from typing import Any

from slack_bolt import App

from bot.slack import blocks as B
from bot.slack.deps import Deps
from bot.slack.listeners.common import score_report, subject_of
from bot.slack.payload import strings
from bot.slack.results import missing_areas
from conversations.errors import InvalidInput
from scoring.periods import last_ended


def app_home_opened(event: dict[str, Any], body: dict[str, Any], deps: Deps) -> None:
    ids = strings(event, "user")
    workspace = body.get("team_id", "")
    if event.get("tab", "home") != "home" or ids is None or not isinstance(workspace, str) or not workspace:
        return
    try:
        subject = subject_of(workspace, ids[0])
    except InvalidInput:  # not a Slack team and user ID (e.g. control characters): nothing to show
        return
    teams = deps.teams
    now = deps.clock()
    rows = []
    for team in teams.workspace_teams(workspace):
        due = last_ended(now, team.tz)  # the quarter a report is due for
        report = teams.report(team.ref, due)
        # with area owners, a quarter is reported once its result is out (every area in, or the last nudge)
        reported = report is not None and (not teams.owners(team.ref) or bool(report.posted)
                                           or not missing_areas(deps.catalog, report))
        quarters = teams.quarters(team.ref)
        latest_q = quarters[-1] if quarters else None
        latest = None
        if latest_q is not None:
            rep = teams.report(team.ref, latest_q)
            latest = score_report(deps, rep, team.ref, teams.report(team.ref, latest_q.previous())) if rep else None
        rows.append((team, due, reported, latest_q, latest))
    view = B.home_view(deps.catalog, deps.locale, rows)
    deps.outbox.enqueue(subject, [{"type": "slack_home", "user": ids[0], "view": view}])


def register(app: App) -> None:
    app.event("app_home_opened")(app_home_opened)
