"""The method beyond the figures: every department (`/kpi owners`), improvement discussed and
followed (the 「改善アクションを登録」 button under a result and its modal), the history to take away
(`/kpi export`).

The KPI core (``deps.kpi``) commits each submission with its channel post in one script (the owners,
the actions), applied once per modal state; these listeners parse the modal and say the core's answer.
The CSV is sent by the worker as a file in a DM with the asker, since a file cannot be shown to one
person alone in a channel (an ephemeral message carries no file).
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App

from bot.mrkdwn import escape
from bot.slack import blocks
from bot.slack.deps import Deps
from bot.slack.export import kpi_csv
from bot.slack.listeners.common import ephemeral, modal_submission, subject_of
from bot.slack.payload import json_object, obj, sender_workspace
from bot.slack.texts import t
from conversations.errors import InvalidInput, StoreUnavailable
from conversations.keys import TeamRef
from conversations.teams import MAX_ACTIONS, Team
from scoring.periods import Quarter

log = logging.getLogger(__name__)


# ---- area owners ---------------------------------------------------------------------------------


def open_owners(deps: Deps, trigger_id: str, team: Team) -> None:
    view = blocks.owners_modal(deps.catalog, deps.locale, team, deps.teams.owners(team.ref))
    deps.client.views_open(trigger_id=trigger_id, view=view)


def owners_submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any], deps: Deps) -> None:
    """Store the owners with their announcement in the channel, then close the modal."""
    locale, catalog = deps.locale, deps.catalog
    first = f"owner:{catalog.area_keys[0]}"
    try:
        found = modal_submission(deps, body, view)
        if found is None:
            ack(response_action="errors", errors={first: t(locale, "not_a_team")})
            return
        team, by, submitted = found
        state = obj(obj(view.get("state")).get("values"))
        owners: dict[str, str] = {}
        errors: dict[str, str] = {}
        for area in catalog.area_keys:
            block = f"owner:{area}"
            chosen = blocks.chosen_user(state, block)
            owner = blocks.parse_user(state, block)
            if owner is not None:
                owners[area] = owner
            elif chosen is not None:
                errors[block] = t(locale, "err_user")
        if errors:
            ack(response_action="errors", errors=errors)
            return
        deps.kpi.set_owners(team, owners, by, submitted)
    except StoreUnavailable as e:
        log.error("slack: owners could not be stored (%s)", e)
        ack(response_action="errors", errors={first: t(locale, "err_store")})
        return
    ack()


# ---- improvement actions -------------------------------------------------------------------------


def open_actions_button(ack: Ack, body: dict[str, Any], action: dict[str, Any], deps: Deps) -> None:
    """「改善アクションを登録」 under a result post: the actions modal for that quarter's result."""
    ack()
    data = json_object(action.get("value"))
    trigger_id = body.get("trigger_id")
    try:
        team_id = data.get("team")
        ref = TeamRef.parse(team_id) if isinstance(team_id, str) else None
        quarter = Quarter.parse(data.get("quarter", ""))
    except (ValueError, InvalidInput):
        return
    if ref is None or ref.workspace != sender_workspace(body):
        log.warning("slack: an actions button naming no team, or another workspace's, ignored")
        return
    team = deps.teams.get(ref)
    area = data.get("area")
    if team is not None and isinstance(trigger_id, str) and trigger_id:
        view = blocks.actions_modal(deps.catalog, deps.locale, team, quarter, area if isinstance(area, str) else None)
        deps.client.views_open(trigger_id=trigger_id, view=view)


def actions_submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any], deps: Deps) -> None:
    """Validate and record the actions with their post in the channel, then close the modal."""
    locale, catalog = deps.locale, deps.catalog
    try:
        found = modal_submission(deps, body, view)
        try:
            quarter = Quarter.parse(json_object(view.get("private_metadata")).get("quarter", ""))
        except ValueError:
            found = None
        if found is None:
            ack(response_action="errors", errors={"area": t(locale, "not_a_team")})
            return
        team, by, submitted = found
        state = obj(obj(view.get("state")).get("values"))
        area, rows, errors = blocks.parse_actions(locale, state, deps.kpi.today(team), catalog.area_keys)
        if errors or area is None:
            ack(response_action="errors", errors=errors or {"area": t(locale, "action_area")})
            return
        done = deps.kpi.add_actions(team, quarter, area, rows, by, submitted)
    except StoreUnavailable as e:
        log.error("slack: actions could not be stored (%s)", e)
        ack(response_action="errors", errors={"area": t(locale, "err_store")})
        return
    if done is None:
        ack(response_action="errors", errors={"what:1": t(locale, "err_actions_full", max=MAX_ACTIONS)})
        return
    ack()


# ---- the breakdown of a result --------------------------------------------------------------------


def detail(deps: Deps, team: Team, user: str, quarter: Quarter | None = None) -> None:
    """A result's breakdown (each figure, what it was scored against, its score) to the asker alone:
    ``quarter``, or the latest reported (`/kpi detail`)."""
    found = deps.kpi.detail(team.ref, quarter)
    if found is None:
        ephemeral(deps, team.ref, user, t(deps.locale, "detail_none"))
        return
    text, blks = blocks.detail_blocks(deps.catalog, deps.locale, team, *found)
    ephemeral(deps, team.ref, user, text, blks)


def open_detail_button(ack: Ack, body: dict[str, Any], action: dict[str, Any], deps: Deps) -> None:
    """「内訳を見る」 under a result post: that quarter's breakdown, to whoever tapped it."""
    ack()
    data = json_object(action.get("value"))
    try:
        team_id = data.get("team")
        ref = TeamRef.parse(team_id) if isinstance(team_id, str) else None
        quarter = Quarter.parse(data.get("quarter", ""))
    except (ValueError, InvalidInput):
        return
    user = obj(body.get("user")).get("id")
    if ref is None or ref.workspace != sender_workspace(body) or not isinstance(user, str):
        log.warning("slack: a breakdown button naming no team, or another workspace's, ignored")
        return
    team = deps.teams.get(ref)
    if team is not None:
        detail(deps, team, user, quarter)


# ---- the history to take away --------------------------------------------------------------------


def export(deps: Deps, team: Team, user: str) -> None:
    """The team's history as a CSV file in a DM with the asker (queued; the worker uploads it)."""
    locale, teams = deps.locale, deps.teams
    rows = deps.kpi.reported(team.ref)  # every reported quarter
    if not rows:
        ephemeral(deps, team.ref, user, t(locale, "export_empty"))
        return
    content = kpi_csv(deps.catalog, teams, locale, team, rows)
    deps.outbox.enqueue(subject_of(team.ref.workspace, user), [{
        "type": "slack_file", "name": f"crm-kpi-{team.ref.channel}", "ext": "csv", "content": content,
        "title": f"{team.name} KPI", "comment": t(locale, "export_comment", team=escape(team.name))}])
    ephemeral(deps, team.ref, user, t(locale, "export_sent"))


def register(app: App) -> None:
    app.view(blocks.OWNERS_CALLBACK)(owners_submitted)
    app.action(blocks.ACTIONS_ACTION)(open_actions_button)
    app.action(blocks.DETAIL_ACTION)(open_detail_button)
    app.view(blocks.ACTIONS_CALLBACK)(actions_submitted)
