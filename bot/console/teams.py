"""The Slack teams as the console shows them: every registered team, per quarter reported or not, the
five area scores and the overall score (scored by the KPI core, as every channel shows them:
:func:`bot.kpi.score_stored`, against the targets in force when reported)."""

from __future__ import annotations

from dataclasses import dataclass

from bot.kpi import score_stored
from bot.kpi.labels import fiscal_label, months_label, period_label, with_unit
from conversations.keys import TeamRef
from conversations.kpi_catalog import Catalog
from conversations.teams import Report, Team, TeamStore
from scoring.kpi import KpiResult
from scoring.periods import DEFAULT_TZ, Quarter, last_ended, quarter_of

HISTORY = 12  # quarters on a team's page and in its trend chart


@dataclass(frozen=True)
class QuarterRow:
    quarter: Quarter
    report: Report | None  # None: not reported
    result: KpiResult | None

    def area(self, key: str) -> float | None:
        return self.result.area(key).score if self.result else None

    @property
    def overall(self) -> float | None:
        return self.result.overall if self.result else None


@dataclass(frozen=True)
class TeamView:
    team: Team
    rows: list[QuarterRow]  # oldest first, one per quarter from the first shown to the current one

    @property
    def latest(self) -> QuarterRow | None:
        reported = [r for r in self.rows if r.report is not None]
        return reported[-1] if reported else None

    def row(self, quarter: Quarter) -> QuarterRow | None:
        """The team's quarter ``quarter`` or, for a team whose business year shifts its quarters from the
        calendar's (a year from March), its quarter that ended within ``quarter``."""
        def ends_in(q: Quarter) -> bool:
            return (q.last_year, q.last_month) in ((quarter.year, quarter.first_month + i) for i in range(3))

        return next((r for r in self.rows if r.quarter == quarter or
                     (r.quarter.shift != quarter.shift and ends_in(r.quarter))), None)


def recent_quarters(now: float, count: int, tz: str = DEFAULT_TZ) -> list[Quarter]:
    """The last ``count`` quarters a report can be for (those that ended), oldest first."""
    current = last_ended(now, tz)
    return [current.previous(i) for i in reversed(range(count))]


def team_view(store: TeamStore, catalog: Catalog, team: Team, now: float, history: int = HISTORY) -> TeamView:
    """One team's quarters: the current one (in the team's time zone) and up to ``history`` - 1 before
    it, from the quarter of its first report or of its registration, whichever is earlier."""
    current = last_ended(now, team.tz, team.fy_start)  # the latest quarter a report can be for
    reported = store.quarters(team.ref)
    first = min([*reported, quarter_of(team.created_at or now, team.tz, team.fy_start)])
    start = max(first.ordinal, current.ordinal - history + 1)
    rows = []
    for ordinal in range(start, current.ordinal + 1):
        q = Quarter.from_ordinal(ordinal, current.shift)
        rep = store.report(team.ref, q) if q in reported else None
        previous = store.report(team.ref, q.previous()) if rep else None
        rows.append(QuarterRow(q, rep, score_stored(catalog, store, rep, team.ref, previous) if rep else None))
    return TeamView(team, rows)


def all_reports(store: TeamStore, catalog: Catalog) -> list[tuple[Team, QuarterRow]]:
    """Every reported quarter of every team (the KPI CSV), teams by name, quarters oldest first."""
    out = []
    for team in sorted(store.all_teams(), key=lambda t: (t.name, t.ref.id)):
        for q in store.quarters(team.ref):
            rep = store.report(team.ref, q)
            if rep is not None:
                previous = store.report(team.ref, q.previous())
                out.append((team, QuarterRow(q, rep, score_stored(catalog, store, rep, team.ref, previous))))
    return out


def reporters(report: Report) -> list[str]:
    """Who reported a quarter (Slack user IDs): the last submitter and each area's reporter."""
    return list(dict.fromkeys([report.by, *(who for who, _ in report.areas.values())]))


def slack_ids(views: list[TeamView]) -> list[tuple[str, str]]:
    """The ``(workspace, id)`` of every channel and person these views name (for their Slack names)."""
    out = []
    for v in views:
        out.append((v.team.ref.workspace, v.team.ref.channel))
        out.extend((v.team.ref.workspace, who) for row in v.rows if row.report for who in reporters(row.report))
    return out


@dataclass(frozen=True)
class Words:
    """What the teams' pages say of a quarter, a figure and a Slack ID, in the console's locale."""

    locale: str
    names: dict[tuple[str, str], str]  # (workspace, id) -> the Slack name cached by the worker
    pending: str  # said while a name is not fetched yet
    sep: str = "、"  # between names

    def period(self, quarter: Quarter, team: Team) -> str:
        return period_label(self.locale, quarter, team.fy_start)

    def short(self, quarter: Quarter, team: Team) -> str:
        return fiscal_label(self.locale, quarter, team.fy_start)

    def months(self, quarter: Quarter) -> str:
        return months_label(self.locale, quarter)

    def unit(self, value: str, unit: str) -> str:
        return with_unit(self.locale, value, unit) if value else "–"

    def channel(self, team: Team) -> str:
        name = self.names.get((team.ref.workspace, team.ref.channel))
        return f"#{name}" if name else self.pending

    def person(self, team: Team, user: str) -> str:
        return self.names.get((team.ref.workspace, user)) or self.pending

    def people(self, team: Team, report: Report) -> str:
        return self.sep.join(dict.fromkeys(self.person(team, u) for u in reporters(report)))


def find_team(store: TeamStore, team_id: str) -> Team | None:
    try:
        ref = TeamRef.parse(team_id)
    except ValueError:
        return None
    return store.get(ref)
