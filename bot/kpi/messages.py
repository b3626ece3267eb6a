"""What the KPI method says, as data: each a typed record the core hands to the channel's renderer.

The core decides *what* is said and to whom (the result of a quarter, an owner's areas stored, the
owners or the actions announced, a reminder); a renderer injected by the app factory
(:data:`Render`, Slack's is :class:`bot.slack.results.KpiRenderer`) turns one into the outputs of a
job, which the core commits in the same Lua script as the change it announces. Rendering at commit
(not at delivery) keeps a committed post as it was prepared: the figures and the wording it was
checked against, even if the catalog or the code changes before a worker sends it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from conversations.teams import Action, Team
from scoring.kpi import KpiResult
from scoring.periods import Quarter

Output = dict[str, Any]  # one output of a job, as the channel's transport sends it


@dataclass(frozen=True)
class ResultPost:
    """The team's result for a quarter, for the whole channel (with its chart)."""

    team: Team
    quarter: Quarter
    result: KpiResult
    previous: KpiResult | None  # the quarter before, scored as it was reported (None: not reported)
    deltas: Mapping[str, float | None] | None  # the change against it, per area and "overall"
    by: str  # who submitted what completed it
    replaced: bool  # a quarter posted before, posted again with new figures
    reporters: tuple[str, ...] = ()  # everyone who reported an area (``by`` alone when empty)
    owners: Mapping[str, str] = field(default_factory=dict)  # an area not reported names its owner
    follow: tuple[tuple[Action, float | None], ...] = ()  # last quarter's actions, the change of their area
    closed: bool = False  # posted at the last reminder with areas missing


@dataclass(frozen=True)
class AreasSaved:
    """An owner's areas stored while others are still to come: told to the reporter alone."""

    team: Team
    user: str
    areas: tuple[str, ...]  # the areas this submission reported
    missing: tuple[str, ...]  # the areas still to come
    owners: Mapping[str, str]


@dataclass(frozen=True)
class Unchanged:
    """A quarter whose result is out, submitted again with the same figures: nothing posted; told to the
    reporter alone."""

    team: Team
    user: str


@dataclass(frozen=True)
class OwnersSet:
    """The area owners set (or cleared), announced in the team's channel."""

    team: Team
    owners: Mapping[str, str]
    by: str


@dataclass(frozen=True)
class ActionsAdded:
    """Improvement actions decided on a quarter's result, announced in the team's channel."""

    team: Team
    quarter: Quarter
    area: str
    actions: tuple[Action, ...]
    by: str


@dataclass(frozen=True)
class Reminder:
    """A quarter's kickoff or nudge in the team's channel, asking for the quarter that has ended."""

    team: Team
    asked: Quarter
    kind: str  # "kickoff", or "nudge<days>"
    owners: Mapping[str, str] = field(default_factory=dict)  # the kickoff names each; a nudge, the missing ones'
    missing: tuple[str, ...] = ()
    actions: tuple[Action, ...] = ()  # the kickoff lists last quarter's actions


KpiMessage = ResultPost | AreasSaved | Unchanged | OwnersSet | ActionsAdded | Reminder

# A channel's renderer: one message -> the outputs of its job (in order). Injected by the app factory.
Render = Callable[[KpiMessage], list[Output]]
