"""The App Home tab: the workspace's teams, whether they reported the quarter that ended, their latest scores."""

from __future__ import annotations

from typing import Any

from slack_bolt import App

from bot.slack import blocks
from bot.slack.deps import Deps
from bot.slack.listeners.common import subject_of
from bot.slack.payload import strings
from conversations.errors import InvalidInput


def app_home_opened(event: dict[str, Any], body: dict[str, Any], deps: Deps) -> None:
    ids = strings(event, "user")
    workspace = body.get("team_id", "")
    if event.get("tab", "home") != "home" or ids is None or not isinstance(workspace, str) or not workspace:
        return
    try:
        subject = subject_of(workspace, ids[0])
    except InvalidInput:  # not a Slack team and user ID (e.g. control characters): nothing to show
        return
    now = deps.clock()
    rows = []
    for team in deps.teams.workspace_teams(workspace):
        status = deps.kpi.status(team, now)
        rows.append((team, status.due, status.reported, status.latest_quarter, status.latest))
    view = blocks.home_view(deps.catalog, deps.locale, rows)
    deps.outbox.enqueue(subject, [{"type": "slack_home", "user": ids[0], "view": view}])


def register(app: App) -> None:
    app.event("app_home_opened")(app_home_opened)
