"""Reading Slack payloads defensively: a field of an unexpected type reads as absent, never raises."""

from __future__ import annotations

import json
from typing import Any


def obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def json_object(text: Any) -> dict[str, Any]:
    """A JSON object carried in a string field (button value, private_metadata); {} for anything else."""
    try:
        return obj(json.loads(text)) if isinstance(text, str) else {}
    except (ValueError, RecursionError):
        return {}


def strings(d: dict[str, Any], *names: str) -> tuple[str, ...] | None:
    """The named fields, when every one is a non-empty string (as Slack always sends them); else None."""
    values = tuple(d.get(n) for n in names)
    return values if all(isinstance(v, str) and v for v in values) else None  # type: ignore[return-value]


def sender_workspace(body: dict[str, Any]) -> str | None:
    """The workspace an interaction payload comes from: ``team.id`` (the user's ``team_id`` when Slack
    leaves ``team`` out, as for org-wide apps); None when neither is there."""
    for value in (obj(body.get("team")).get("id"), obj(body.get("user")).get("team_id")):
        if isinstance(value, str) and value:
            return value
    return None
