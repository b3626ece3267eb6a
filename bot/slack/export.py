"""A team's KPI history as CSV (`/kpi export`), for Excel on a Japanese PC: UTF-8 with a BOM, a header
row, CRLF line ends. A cell someone typed (an action) that starts with ``= + - @`` gets a leading
``'`` so no spreadsheet runs it as a formula.

One row per reported quarter, oldest first: the quarter's key and its name in the team's business
year, who reported and when (the team's time zone), the overall and five area scores (as posted:
against the targets in force then), the coverage, every indicator's figure (blank: not reported) in
catalog order, and the improvement actions decided on that quarter's result.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import datetime

from bot.kpi.areas import reporters
from bot.slack.blocks import fmt
from bot.slack.texts import period_label, t
from conversations.kpi_catalog import Catalog
from conversations.teams import Team, TeamStore
from scoring.kpi import KpiResult
from scoring.periods import Quarter, zone

BOM = "\ufeff"
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def cell(text: str) -> str:
    """A text cell safe from spreadsheet formula injection."""
    return "'" + text if text.startswith(_FORMULA) else text


def _score(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def kpi_csv(catalog: Catalog, teams: TeamStore, locale: str, team: Team,
            rows: Sequence[tuple[Quarter, KpiResult]]) -> str:
    """The CSV as text (its BOM first); encode it as UTF-8."""
    header = [t(locale, "csv_quarter"), t(locale, "csv_period"), t(locale, "csv_reported_by"),
              f"{t(locale, 'csv_reported_at')} ({team.tz})", t(locale, "overall"),
              *(catalog.name(a, locale) for a in catalog.area_keys), t(locale, "csv_coverage"),
              *(f"{catalog.name(i.key, locale)} ({catalog.unit(i.key, locale)})" for i in catalog.indicators),
              t(locale, "csv_actions")]
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\r\n")
    out.writerow(header)
    for quarter, result in rows:
        rep = teams.report(team.ref, quarter)
        if rep is None:
            continue
        at = datetime.fromtimestamp(rep.at, zone(team.tz)).strftime("%Y-%m-%d %H:%M") if rep.at else ""
        actions = " / ".join(t(locale, "csv_action", area=catalog.name(a.area, locale), what=a.what, owner=a.owner,
                                due=a.due) for a in teams.actions(team.ref, quarter) if a.area in catalog.area_keys)
        out.writerow([str(quarter), period_label(locale, quarter, team.fy_start), " ".join(reporters(catalog, rep)),
                      at, _score(result.overall), *(_score(result.area(a).score) for a in catalog.area_keys),
                      f"{result.reported}/{result.total}",
                      *(fmt(rep.values[i.key]) if i.key in rep.values else "" for i in catalog.indicators),
                      cell(actions)])
    return BOM + buf.getvalue()
