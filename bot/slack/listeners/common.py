"""Helpers the listener modules share: ephemerals, posts to a team, the team a modal names."""

from __future__ import annotations

import logging
from typing import Any

from bot.slack.deps import Deps
from bot.slack.payload import json_object, obj, sender_workspace, strings
from conversations.errors import InvalidInput
from conversations.keys import Subject, TeamRef, ViewRef
from conversations.teams import Team
from conversations.transports import Transport

__all__ = [
    "ephemeral",
    "modal_submission",
    "post_to_team",
    "subject_of",
    "team_of_view",
    "view_ref",
]
log = logging.getLogger(__name__)


def subject_of(workspace: str, user: str) -> Subject:
    return Subject(Transport.SLACK, f"{workspace}.{user}")


def ephemeral(deps: Deps, ref: TeamRef, user: str, text: str, blocks: list[dict[str, Any]] | None = None) -> None:
    """A message only ``user`` sees in the channel: queued for the worker (the web tier sends nothing)."""
    out: dict[str, Any] = {"type": "slack_ephemeral", "user": user, "text": text}
    if blocks is not None:
        out["blocks"] = blocks
    deps.outbox.enqueue(subject_of(ref.workspace, ref.channel), [out])


def post_to_team(deps: Deps, team: Team, text: str, blocks: list[dict[str, Any]]) -> None:
    deps.outbox.enqueue(subject_of(team.ref.workspace, team.ref.channel),
                        [{"type": "slack_post", "text": text, "blocks": blocks}])


def team_of_view(deps: Deps, body: dict[str, Any], view: dict[str, Any]) -> Team | None:
    """The registered team a modal names in its private_metadata, if it is one of the workspace the
    submission comes from (a payload never acts on another workspace's team)."""
    name = json_object(view.get("private_metadata")).get("team")
    try:
        ref = TeamRef.parse(name) if isinstance(name, str) else None
    except InvalidInput:
        return None
    if ref is not None and ref.workspace != sender_workspace(body):
        log.warning("slack: a modal naming another workspace's team refused")
        return None
    return deps.teams.get(ref) if ref is not None else None


def view_ref(view: dict[str, Any]) -> ViewRef | None:
    """The submitted modal's ID and hash (Slack always sends both): what makes a replay recognisable."""
    try:
        return ViewRef(view.get("id"), view.get("hash"))  # type: ignore[arg-type]  # checked there
    except InvalidInput:
        return None


def modal_submission(deps: Deps, body: dict[str, Any], view: dict[str, Any]) -> tuple[Team, str, ViewRef] | None:
    """What every modal submission needs first: the team it names (of the sending workspace), the
    submitting user's ID and the modal's ID and hash; None when any of them is missing."""
    team = team_of_view(deps, body, view)
    user = strings(obj(body.get("user")), "id")
    submitted = view_ref(view)
    if team is None or user is None or submitted is None:
        return None
    return team, user[0], submitted
