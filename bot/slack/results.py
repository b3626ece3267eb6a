"""A team's quarter as the method sees it: which areas are in, who may report which, and the result
post rendered from the figures (the message, its radar chart, last quarter's actions followed up).

Shared by the report modal (:mod:`bot.slack.listeners.kpi`), which commits the post with the report
that completes the quarter, and the reminders' last nudge (:mod:`bot.reminders`), which posts what is
in with the missing areas shown as not reported. Pure over the catalog and the team store's reads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bot.mrkdwn import escape
from bot.slack import blocks as B
from bot.slack.texts import months_label, period_label, t
from conversations.keys import TeamRef
from conversations.kpi_catalog import Catalog
from conversations.teams import Action, Report, Team, TeamStore
from scoring.kpi import KpiResult, compare, target_problem
from scoring.periods import Quarter


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


def score_stored(catalog: Catalog, teams: TeamStore, rep: Report, ref: TeamRef,
                 previous: Report | None = None) -> KpiResult:
    """A stored report, scored against the targets in force when it was reported (and, for the
    improve rule, the previous quarter's stored figures); the console uses it too."""
    targets = rep.targets if rep.targets is not None else teams.targets(ref)
    return catalog.score(usable_figures(catalog, rep.values), usable_figures(catalog, targets, targets=True),
                         usable_figures(catalog, previous.values if previous is not None else None))


# ---- areas and owners ------------------------------------------------------------------------------


def indicator_keys(catalog: Catalog, areas: Sequence[str]) -> list[str]:
    return [k for a in areas for k in catalog.area(a).indicator_keys]


def areas_in(catalog: Catalog, report: Report | None) -> list[str]:
    """The areas of a quarter that are in (reported), in catalog order."""
    if report is None:
        return []
    return [a.key for a in catalog.areas if report.has(a.key, a.indicator_keys)]


def missing_areas(catalog: Catalog, report: Report | None) -> list[str]:
    have = set(areas_in(catalog, report))
    return [a for a in catalog.area_keys if a not in have]


def editable_areas(catalog: Catalog, owners: Mapping[str, str], user: str) -> list[str]:
    """The areas ``user`` reports: without owners, or for someone who owns none (the team lead, the
    consultant), every area; for an owner, their areas and any area nobody owns."""
    if not any(owners.get(a) == user for a in catalog.area_keys):
        return list(catalog.area_keys)
    return [a for a in catalog.area_keys if owners.get(a) == user or not owners.get(a)]


def reporters(catalog: Catalog, report: Report | None) -> list[str]:
    """Who reported the quarter's areas, in area order, each once."""
    if report is None:
        return []
    people = [report.areas[a][0] for a in catalog.area_keys if a in report.areas]
    return list(dict.fromkeys(people or ([report.by] if report.by else [])))


def readonly_texts(catalog: Catalog, locale: str, report: Report | None, owners: Mapping[str, str],
                   areas: Sequence[str]) -> dict[str, str]:
    """What the report form shows for the areas someone else reports: the owner, and the figures
    reported so far (or 「未報告」)."""
    out = {}
    have = set(areas_in(catalog, report))
    for area in areas:
        lines = [t(locale, "owner_of", user=owners[area])] if owners.get(area) else []
        if report is not None and area in have:
            figures = [f"{catalog.name(k, locale)} {B.figure(catalog, locale, k, report.values[k])}"
                       for k in catalog.area(area).indicator_keys if k in report.values]
            who = report.areas.get(area, (report.by, 0.0))[0]
            lines.append(t(locale, "readonly_in", user=who, figures=B.joined(locale, figures)))
        else:
            lines.append(t(locale, "readonly_missing"))
        out[area] = "\n".join(lines)
    return out


# ---- the result post -------------------------------------------------------------------------------


def result_outputs(
    catalog: Catalog,
    teams: TeamStore,
    locale: str,
    team: Team,
    quarter: Quarter,
    values: Mapping[str, float],
    targets: Mapping[str, float],
    by: str,
    *,
    replaced: bool,
    people: Sequence[str] = (),
    owners: Mapping[str, str] | None = None,
    closed: bool = False,
) -> list[dict[str, Any]]:
    """The team's result post for ``quarter`` with these figures, then its radar chart: the outputs of
    one job (:mod:`bot.slack.transport` sends them in order). Read first: the previous quarter (the
    change, the improve rule) and the actions decided on its result (followed up here)."""
    ref = team.ref
    prev = teams.report(ref, quarter.previous())
    result = catalog.score(usable_figures(catalog, values), usable_figures(catalog, targets, targets=True),
                           usable_figures(catalog, prev.values if prev else None))
    prev_result = None
    if prev is not None:
        prev_result = score_stored(catalog, teams, prev, ref, teams.report(ref, quarter.previous(2)))
    deltas = compare(result, prev_result) if prev_result is not None else None
    follow = [(a, deltas.get(a.area) if deltas else None) for a in teams.actions(ref, quarter.previous())
              if a.area in catalog.area_keys]
    text, blocks = B.result_message(catalog, locale, team, quarter, result, deltas, by, replaced,
                                    reporters=people, owners=owners, follow=follow, closed=closed)
    blocks.append(B.actions_button(locale, team, quarter, result.weakest))
    post = {"type": "slack_post", "text": text, "blocks": blocks}
    return [post, radar_output(catalog, locale, team, quarter, result,
                               (quarter.previous(), prev_result) if prev_result is not None else None)]


def _series_text(catalog: Catalog, locale: str, label: str, scores: Sequence[tuple[str, float | None]]) -> str:
    values = B.joined(locale, [f"{catalog.name(a, locale)} {t(locale, 'not_reported') if s is None else f'{s:.1f}'}"
                               for a, s in scores])
    return t(locale, "chart_series", name=label, values=values)


def radar_output(
    catalog: Catalog, locale: str, team: Team, quarter: Quarter, result: KpiResult,
    previous: tuple[Quarter, KpiResult] | None,
) -> dict[str, Any]:
    """The radar chart of the five areas, this quarter against the last (when it was reported), as a
    ``slack_chart`` output; its alt text says every score."""
    rows = [(months_label(locale, quarter), result)]
    if previous is not None:
        rows.append((months_label(locale, previous[0]), previous[1]))
    series = {label: [res.area(a).score for a in catalog.area_keys] for label, res in rows}
    sep = "。" if locale != "en" else ". "
    alt = t(locale, "chart_radar_alt", series=sep.join(
        _series_text(catalog, locale, label, [(a, res.area(a).score) for a in catalog.area_keys])
        for label, res in rows))
    return {
        "type": "slack_chart",
        "kind": "radar",
        "name": f"kpi-radar-{quarter}",
        "title": t(locale, "chart_radar_title", team=team.name, period=period_label(locale, quarter, team.fy_start)),
        "labels": [catalog.name(a, locale) for a in catalog.area_keys],
        "series": series,
        "alt": alt,
        "empty": t(locale, "not_reported"),
    }


def trend_output(
    catalog: Catalog, locale: str, team: Team, rows: Sequence[tuple[Quarter, KpiResult]]
) -> dict[str, Any]:
    """The line chart of each area across the reported quarters (``slack_chart``, ``lines``)."""
    labels = [months_label(locale, q) for q, _ in rows]
    series = {catalog.name(a, locale): [res.area(a).score for _, res in rows] for a in catalog.area_keys}
    sep = "。" if locale != "en" else ". "
    parts = []
    for a in catalog.area_keys:
        values = " → ".join("-" if res.area(a).score is None else f"{res.area(a).score:.1f}" for _, res in rows)
        parts.append(t(locale, "chart_series", name=catalog.name(a, locale), values=values))
    span = f"{labels[0]} → {labels[-1]}" if labels else ""
    return {
        "type": "slack_chart",
        "kind": "lines",
        "name": "kpi-trend",
        "title": t(locale, "chart_lines_title", team=team.name),
        "labels": labels,
        "series": series,
        "alt": t(locale, "chart_lines_alt", series=f"{span}{sep}" + sep.join(parts)),
        "empty": t(locale, "not_reported"),
        "comment": t(locale, "history_chart_comment", team=escape(team.name)),  # a file's comment is mrkdwn
    }


def actions_followed(
    catalog: Catalog, teams: TeamStore, ref: TeamRef, rows: Sequence[tuple[Quarter, KpiResult]],
) -> list[tuple[Quarter, Action, float | None, bool]]:
    """The actions decided on each reported quarter's result, with the change of their area by the
    next quarter (None: not comparable), and whether the next quarter is still to be reported."""
    results = dict(rows)
    out: list[tuple[Quarter, Action, float | None, bool]] = []
    for q, res in rows:
        nxt = results.get(q.next())
        for a in teams.actions(ref, q):
            if a.area not in catalog.area_keys:
                continue
            if nxt is None:
                out.append((q, a, None, teams.report(ref, q.next()) is None))
                continue
            before, after = res.area(a.area).score, nxt.area(a.area).score
            change = None if before is None or after is None else compare(nxt, res).get(a.area)
            out.append((q, a, change, False))
    return out
