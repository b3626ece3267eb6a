"""The App Home tab: the workspace's teams, whether they reported this quarter, their latest scores."""

from __future__ import annotations

from typing import Any

from slack_bolt import App

from bot.slack import blocks as B
from bot.slack.deps import Deps
from bot.slack.listeners.common import score_report, subject_of
from bot.slack.payload import strings
from conversations.errors import InvalidInput
from scoring.periods import quarter_of


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
        current = quarter_of(now, team.tz)
        reported = teams.report(team.ref, current) is not None
        quarters = teams.quarters(team.ref)
        latest_q = quarters[-1] if quarters else None
        latest = None
        if latest_q is not None:
            rep = teams.report(team.ref, latest_q)
            latest = score_report(deps, rep, team.ref) if rep else None
        rows.append((team, current, reported, latest_q, latest))
    view = B.home_view(deps.catalog, deps.locale, rows)
    deps.outbox.enqueue(subject, [{"type": "slack_home", "user": ids[0], "view": view}])


def register(app: App) -> None:
    app.event("app_home_opened")(app_home_opened)
