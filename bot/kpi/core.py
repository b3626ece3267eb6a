"""The KPI method, channel-neutral: reports, owners, actions, closing a quarter, scores.

:class:`KpiCore` takes what a person submitted (figures as typed, the quarter chosen, owners, actions)
and answers with data: the problems found (:class:`Refused`), or the change committed together with
what it says (:mod:`bot.kpi.messages`, rendered by the injected :data:`~bot.kpi.messages.Render`).
It reads and writes through :class:`conversations.teams.TeamStore`; it knows no channel.

Areas shared out across departments: with owners, an owner's submission covers their areas and is merged
into the quarter (their areas' figures replaced, the others kept). The team's result is committed
with the submission that brings the last area in, or by the last nudge (:meth:`KpiCore.close_quarter`,
the missing areas shown as not reported); an area reported after the result is out posts it again;
unchanged figures post nothing. Without owners every report posts its result.

Posted once: a submission is prepared (figures merged, result rendered) against the quarter's version
it read and committed by one Lua script, with its post as a job, only if the version is unchanged; else
it is prepared again on what the others stored (:data:`SUBMIT_TRIES` times, then ``Contention``).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from bot.kpi.areas import editable_areas, indicator_keys, missing_areas, reporters
from bot.kpi.figures import Problem, check_figures, check_quarter, usable_figures
from bot.kpi.messages import (
    ActionsAdded,
    AreasSaved,
    KpiMessage,
    Output,
    OwnersSet,
    Reminder,
    Render,
    ResultPost,
    Unchanged,
)
from bot.logs import uid
from conversations.errors import Contention
from conversations.keys import TeamRef, ViewRef
from conversations.kpi_catalog import Catalog
from conversations.teams import POST_LEASE, Action, Report, Team, TeamStore
from scoring.kpi import KpiResult, compare, missing_required
from scoring.periods import Quarter, last_ended, quarter_of, reportable, zone

log = logging.getLogger(__name__)
SUBMIT_TRIES = 8  # a submission prepared again this often on newer figures, then Contention
CLOSE_TRIES = 3  # the last nudge's result rendered again this often when owners report meanwhile
HISTORY = 8  # quarters `/kpi history` shows


@dataclass(frozen=True)
class Refused:
    """Why a submission was not stored: a problem of the whole form (shown with the quarter), and
    problems of figures, by indicator key."""

    form: Problem | None = None
    figures: Mapping[str, Problem] = field(default_factory=dict)


@dataclass(frozen=True)
class ReportForm:
    """What the report form shows someone: the quarters they may report (the last ended first, never
    the running one), the one preselected, what is stored for it, and the areas they report."""

    team: Team
    choices: list[Quarter]
    initial: Quarter
    report: Report | None
    owners: dict[str, str]
    editable: list[str]  # the areas with inputs (this person's)
    others: list[str]  # the areas shown read-only (someone else's)
    targets: dict[str, float]


@dataclass(frozen=True)
class History:
    """The team's last reported quarters, each scored as when it was reported, and the actions decided
    on each result: (its quarter, the action, its area's change by the next quarter, whether that
    quarter is still to be reported)."""

    rows: list[tuple[Quarter, KpiResult]]
    actions: list[tuple[Quarter, Action, float | None, bool]]


@dataclass(frozen=True)
class TeamStatus:
    """A team at a glance: the quarter a report is due for, whether it is reported (with owners: once
    its result is out), and the latest reported quarter with its result."""

    team: Team
    due: Quarter
    reported: bool
    latest_quarter: Quarter | None
    latest: KpiResult | None


def score_stored(catalog: Catalog, teams: TeamStore, rep: Report, ref: TeamRef,
                 previous: Report | None = None) -> KpiResult:
    """A stored report, scored against the targets in force when it was reported (and, for the
    improve rule, the previous quarter's stored figures; for the yoy rule, the same quarter's a year
    earlier, read here when the catalog has such a rule); the console scores with it too."""
    targets = rep.targets if rep.targets is not None else teams.targets(ref)
    return catalog.score(usable_figures(catalog, rep.values), usable_figures(catalog, targets, targets=True),
                         usable_figures(catalog, previous.values if previous is not None else None),
                         year_ago_figures(catalog, teams, ref, rep.quarter))


def year_ago_figures(catalog: Catalog, teams: TeamStore, ref: TeamRef, quarter: Quarter | str) -> dict[str, float]:
    """The figures of the same quarter a year before ``quarter`` (the yoy rule), {} when the catalog has no
    such rule or that quarter was not reported."""
    if not catalog.uses_year_ago:
        return {}
    try:
        then = (quarter if isinstance(quarter, Quarter) else Quarter.parse(quarter)).previous(4)
    except ValueError:
        return {}
    rep = teams.report(ref, then)
    return usable_figures(catalog, rep.values) if rep is not None else {}


class KpiCore:
    """The KPI method over a catalog and a team store; ``render`` says its messages in the channel's
    terms (injected by the app factory); ``lease``: seconds a committed post waits for a worker before
    recovery looks at it."""

    def __init__(self, catalog: Catalog, teams: TeamStore, render: Render, *,
                 clock: Callable[[], float] = time.time, lease: float = POST_LEASE) -> None:
        self.catalog = catalog
        self.teams = teams
        self.render = render
        self.clock = clock
        self.lease = lease

    # ---- scores ----------------------------------------------------------------------------------

    def score_stored(self, rep: Report, ref: TeamRef, previous: Report | None = None) -> KpiResult:
        return score_stored(self.catalog, self.teams, rep, ref, previous)

    def result_post(
        self, team: Team, quarter: Quarter, values: Mapping[str, float], targets: Mapping[str, float], by: str, *,
        replaced: bool, people: Sequence[str] = (), owners: Mapping[str, str] | None = None, closed: bool = False,
    ) -> ResultPost:
        """The team's result for ``quarter`` with these figures. Read first: the previous quarter (the
        change, the improve rule) and the actions decided on its result (followed up here)."""
        catalog, teams, ref = self.catalog, self.teams, team.ref
        prev = teams.report(ref, quarter.previous())
        result = catalog.score(usable_figures(catalog, values), usable_figures(catalog, targets, targets=True),
                               usable_figures(catalog, prev.values if prev else None),
                               year_ago_figures(catalog, teams, ref, quarter))
        prev_result = None
        if prev is not None:
            prev_result = self.score_stored(prev, ref, teams.report(ref, quarter.previous(2)))
        deltas = compare(result, prev_result) if prev_result is not None else None
        follow = tuple((a, deltas.get(a.area) if deltas else None) for a in teams.actions(ref, quarter.previous())
                       if a.area in catalog.area_keys)
        return ResultPost(team, quarter, result, prev_result, deltas, by, replaced, tuple(people), dict(owners or {}),
                          follow, closed)

    def history(self, ref: TeamRef, count: int = HISTORY) -> History:
        """The team's last ``count`` reported quarters, each scored as when it was reported (its targets;
        the quarter before it for the improve rule), and the actions decided on them, followed up."""
        reports: dict[Quarter, Report | None] = {}

        def report(q: Quarter) -> Report | None:
            if q not in reports:
                reports[q] = self.teams.report(ref, q)
            return reports[q]

        rows = []
        for q in self.teams.quarters(ref)[-count:]:
            rep = report(q)
            if rep is not None:
                rows.append((q, self.score_stored(rep, ref, report(q.previous()))))
        return History(rows, self.actions_followed(ref, rows))

    def actions_followed(
        self, ref: TeamRef, rows: Sequence[tuple[Quarter, KpiResult]],
    ) -> list[tuple[Quarter, Action, float | None, bool]]:
        """The actions decided on each reported quarter's result, with the change of their area by the
        next quarter (None: not comparable), and whether the next quarter is still to be reported."""
        results = dict(rows)
        out: list[tuple[Quarter, Action, float | None, bool]] = []
        for q, res in rows:
            nxt = results.get(q.next())
            for a in self.teams.actions(ref, q):
                if a.area not in self.catalog.area_keys:
                    continue
                if nxt is None:
                    out.append((q, a, None, self.teams.report(ref, q.next()) is None))
                    continue
                before, after = res.area(a.area).score, nxt.area(a.area).score
                change = None if before is None or after is None else compare(nxt, res).get(a.area)
                out.append((q, a, change, False))
        return out

    def reported(self, ref: TeamRef) -> list[tuple[Quarter, KpiResult]]:
        """Every reported quarter of the team, oldest first, scored as when it was reported (the export)."""
        reports = {q: self.teams.report(ref, q) for q in self.teams.quarters(ref)}
        return [(q, self.score_stored(rep, ref, reports.get(q.previous()))) for q, rep in reports.items()
                if rep is not None]

    def detail(self, ref: TeamRef, quarter: Quarter | None = None) -> tuple[Quarter, KpiResult] | None:
        """A reported quarter scored as when it was reported, indicator by indicator (the breakdown):
        ``quarter``, or the latest reported; None when it was not reported."""
        if quarter is None:
            quarters = self.teams.quarters(ref)
            if not quarters:
                return None
            quarter = quarters[-1]
        rep = self.teams.report(ref, quarter)
        if rep is None:
            return None
        return quarter, self.score_stored(rep, ref, self.teams.report(ref, quarter.previous()))

    def status(self, team: Team, now: float) -> TeamStatus:
        teams, ref = self.teams, team.ref
        due = last_ended(now, team.tz, team.fy_start)  # the quarter a report is due for
        report = teams.report(ref, due)
        # with area owners, a quarter is reported once its result is out (every area in, or the last nudge)
        reported = report is not None and (not teams.owners(ref) or bool(report.posted)
                                           or not missing_areas(self.catalog, report))
        quarters = teams.quarters(ref)
        latest_q = quarters[-1] if quarters else None
        latest = None
        if latest_q is not None:
            rep = teams.report(ref, latest_q)
            latest = self.score_stored(rep, ref, teams.report(ref, latest_q.previous())) if rep else None
        return TeamStatus(team, due, reported, latest_q, latest)

    # ---- the report --------------------------------------------------------------------------------

    def report_form(self, team: Team, user: str, quarter: Quarter | None = None) -> ReportForm:
        """The form for ``user``: the last ended quarter preselected (or ``quarter``, if it is still among
        the choices); an area owner reports their areas, the others are shown read-only."""
        choices = reportable(self.clock(), team.tz, fy_start=team.fy_start)
        initial = quarter if quarter in choices else choices[0]
        owners = self.teams.owners(team.ref)
        editable = editable_areas(self.catalog, owners, user)
        others = [a for a in self.catalog.area_keys if a not in editable]
        return ReportForm(team, choices, initial, self.teams.report(team.ref, initial), owners, editable, others,
                          self.teams.targets(team.ref))

    def submit_report(self, team: Team, by: str, quarter_key: str, typed: Mapping[str, str | None],
                      view: ViewRef | None = None) -> Refused | None:
        """Check a report and store it with what it says (one script), or say why not. ``typed``: the
        figures as typed, for the inputs the form had (indicator key -> text; blank: not reported);
        the areas reported are this person's among those (the owners may have changed since the form
        was opened: an area it did not show is never taken as reported blank). None once stored (or
        already: a replay of the same ``view``)."""
        catalog = self.catalog
        now = self.clock()
        quarter, problem = check_quarter(quarter_key, quarter_of(now, team.tz, team.fy_start))
        owners = self.teams.owners(team.ref)
        areas = [a for a in editable_areas(catalog, owners, by)
                 if any(k in typed for k in catalog.area(a).indicator_keys)]
        if not areas:
            return Refused("owner_changed")
        keys = indicator_keys(catalog, areas)
        values, problems = check_figures(catalog, {k: typed[k] for k in keys if k in typed})
        for key in missing_required([i for i in catalog.indicators if i.key in keys], values):
            problems.setdefault(key, "number")
        if problem is not None or problems or quarter is None:
            return Refused(problem, problems)
        whole = len(areas) == len(catalog.areas)
        for _ in range(SUBMIT_TRIES):
            if self._submit(team, quarter, values, areas, whole, owners, by, now, view):
                return None
        raise Contention(f"team {team.ref.channel} {quarter}: figures kept changing")

    def _submit(self, team: Team, quarter: Quarter, values: dict[str, float], areas: list[str], whole: bool,
                owners: dict[str, str], by: str, now: float, view: ViewRef | None) -> bool:
        """One try: read the quarter, prepare what the submission commits (the result post when it brings
        the last area in, else a word to the reporter saying what is still to come), commit it against
        the version read. True when done (or a replay); False when the quarter changed meanwhile."""
        catalog, teams = self.catalog, self.teams
        current = teams.report(team.ref, quarter)
        targets = teams.targets(team.ref)
        keys = indicator_keys(catalog, areas)
        kept = {} if whole or current is None else {k: v for k, v in current.values.items() if k not in keys}
        merged = kept | values
        after = Report(str(quarter), merged, by, now, targets,
                       ({} if whole or current is None else dict(current.areas)) | {a: (by, now) for a in areas})
        missing = missing_areas(catalog, after)
        posted_before = current is not None and bool(current.posted)
        changed = current is None or dict(current.values) != merged
        if not owners:  # one person reports everything: every submission is the result, as it always was
            post_result, replaced = True, current is not None and bool(current.values)
        else:
            post_result = (not missing or posted_before) and (not posted_before or changed)
            replaced = posted_before
        message: KpiMessage
        if post_result:
            message = self.result_post(team, quarter, merged, targets, by, replaced=replaced,
                                       people=reporters(catalog, after), owners=owners)
        elif missing:
            message = AreasSaved(team, by, tuple(areas), tuple(missing), owners)
        else:
            message = Unchanged(team, by)
        outcome = teams.submit(team.ref, quarter, values, by, now, targets, view=view, post=self.render(message),
                               lease=self.lease, areas=areas, replace=None if whole else keys,
                               expect=current.version if current is not None else 0, result=post_result)
        if outcome.stale:
            return False
        if outcome.applied:
            log.info("kpi: team %s reported %s (%d figures, %d areas) by %s", team.ref.channel, quarter, len(values),
                     len(areas), uid(by))
        else:
            log.info("kpi: a report submitted again (team %s) was not applied twice", team.ref.channel)
        return True

    def close_quarter(self, team: Team, asked: Quarter, report: Report, owners: Mapping[str, str],
                      now: float) -> tuple[int, Report]:
        """The last nudge of a team with owners and some areas in: its result, the missing areas shown
        as not reported, committed once against the figures it was rendered from (rendered again if an
        owner reported meanwhile). Returns (1 posted, -1 posted before, 0 the figures kept changing;
        the report it was rendered from)."""
        current = report
        done = 0
        for _ in range(CLOSE_TRIES):
            targets = current.targets if current.targets is not None else self.teams.targets(team.ref)
            post = self.result_post(team, asked, current.values, targets, current.by, replaced=False,
                                    people=reporters(self.catalog, current), owners=owners, closed=True)
            done = self.teams.close(team.ref, asked, current.version, self.render(post), now, lease=self.lease)
            if done != 0:
                break
            again = self.teams.report(team.ref, asked)  # an owner reported meanwhile: render it again
            assert again is not None  # a quarter's figures are never deleted
            current = again
        return done, current

    def reminder(self, team: Team, asked: Quarter, kind: str, owners: Mapping[str, str],
                 missing: Sequence[str]) -> list[Output]:
        """A kickoff or nudge for the quarter that has ended, as the channel's outputs (the kickoff lists
        the actions decided on the quarter before)."""
        actions = self.teams.actions(team.ref, asked.previous()) if kind == "kickoff" else []
        return self.render(Reminder(team, asked, kind, dict(owners), tuple(missing), tuple(actions)))

    # ---- targets, owners, actions -------------------------------------------------------------------

    def set_targets(self, team: Team, by: str, typed: Mapping[str, str | None],
                    view: ViewRef | None = None) -> Refused | bool:
        """Check and store the team's targets (blank: the catalog's default). Refused, or whether they
        were applied (False: that form's submission was applied before)."""
        values, problems = check_figures(self.catalog, typed, as_targets=True)
        if problems:
            return Refused(None, problems)
        applied = self.teams.set_targets(team.ref, values, by, self.clock(), view=view)
        if not applied:
            log.info("kpi: a targets form submitted again (team %s) was not applied twice", team.ref.channel)
        return applied

    def set_owners(self, team: Team, owners: Mapping[str, str], by: str, view: ViewRef | None = None) -> bool:
        """Store the area owners with their announcement in the channel (one script). Whether they were
        applied (False: that form's submission was applied before)."""
        post = self.render(OwnersSet(team, dict(owners), by))
        applied = self.teams.set_owners(team.ref, owners, by, self.clock(), view=view, post=post, lease=self.lease)
        log.info("kpi: team %s owners %s by %s (%d areas)", team.ref.channel, "set" if applied else "replayed",
                 uid(by), len(owners))
        return applied

    def today(self, team: Team) -> str:
        """The team's date now (YYYY-MM-DD): an action is due today or later."""
        return datetime.fromtimestamp(self.clock(), zone(team.tz)).date().isoformat()

    def add_actions(self, team: Team, quarter: Quarter, area: str, rows: Sequence[tuple[str, str, str]], by: str,
                    view: ViewRef | None = None) -> bool | None:
        """Record improvement actions (what, owner, due) for an area of ``quarter``'s result, announced in
        the channel (one script). True when recorded; False when that form's submission was recorded
        before (a replay); None when the quarter would hold too many (nothing written)."""
        now = self.clock()
        actions = tuple(Action(uuid.uuid4().hex[:12], area, what, owner, due, by, now) for what, owner, due in rows)
        post = self.render(ActionsAdded(team, quarter, area, actions, by))
        done = self.teams.add_actions(team.ref, quarter, actions, by, now, view=view, post=post, lease=self.lease)
        if done is not None:
            log.info("kpi: team %s %d action(s) for %s by %s%s", team.ref.channel, len(actions), quarter, uid(by),
                     "" if done else " (replayed, not applied twice)")
        return done
