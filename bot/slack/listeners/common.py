"""Helpers the listener modules share: scoring stored figures, ephemerals, posts to a team."""

from __future__ import annotations

from typing import Any

from bot.slack.deps import Deps
from conversations.keys import Subject, TeamRef
from conversations.kpi_catalog import Catalog
from conversations.teams import Report, Team, TeamStore
from scoring.kpi import KpiResult, target_problem


def subject_of(workspace: str, user: str) -> Subject:
    return Subject("slack", f"{workspace}.{user}")


def ephemeral(deps: Deps, ref: TeamRef, user: str, text: str, blocks: list[dict[str, Any]] | None = None) -> None:
    """A message only ``user`` sees in the channel: queued for the worker (the web tier sends nothing)."""
    out: dict[str, Any] = {"type": "slack_ephemeral", "user": user, "text": text}
    if blocks is not None:
        out["blocks"] = blocks
    deps.outbox.enqueue(subject_of(ref.workspace, ref.channel), [out])


def post_to_team(deps: Deps, team: Team, text: str, blocks: list[dict[str, Any]]) -> None:
    deps.outbox.enqueue(subject_of(team.ref.workspace, team.ref.channel),
                        [{"type": "slack_post", "text": text, "blocks": blocks}])


def usable(deps: Deps, figures: Any, *, targets: bool = False) -> dict[str, float]:
    return usable_figures(deps.catalog, figures, targets=targets)


def usable_figures(catalog: Catalog, figures: Any, *, targets: bool = False) -> dict[str, float]:
    """Figures the current catalog can score: stored reports outlive catalog edits (a renamed
    indicator, a narrower range, a new rule), and an old figure the catalog no longer knows is left
    out; so is an old target the indicator's rule no longer accepts (its default applies)."""
    out = {}
    for key, value in dict(figures or {}).items():
        try:
            ind = catalog.indicator(key)
        except KeyError:
            continue
        if ind.minimum <= value <= ind.maximum and not (targets and target_problem(ind, value)):
            out[key] = value
    return out


def score(deps: Deps, values: Any, targets: Any, previous: Any = None) -> KpiResult:
    """Score figures against targets; ``previous``: the previous quarter's figures (the improve rule)."""
    return deps.catalog.score(usable(deps, values), usable(deps, targets, targets=True), usable(deps, previous))


def score_report(deps: Deps, rep: Report, ref: TeamRef, previous: Report | None = None) -> KpiResult:
    return score_stored(deps.catalog, deps.teams, rep, ref, previous)


def score_stored(catalog: Catalog, teams: TeamStore, rep: Report, ref: TeamRef,
                 previous: Report | None = None) -> KpiResult:
    """A stored report, scored against the targets in force when it was reported (and, for the
    improve rule, the previous quarter's stored figures); the console uses it too."""
    targets = rep.targets if rep.targets is not None else teams.targets(ref)
    return catalog.score(usable_figures(catalog, rep.values), usable_figures(catalog, targets, targets=True),
                         usable_figures(catalog, previous.values if previous is not None else None))
