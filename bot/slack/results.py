"""The KPI core's messages said in Slack: :class:`KpiRenderer` turns each (:mod:`bot.kpi.messages`)
into the outputs of one job (a channel post, its radar chart, an ephemeral), in the words of
:mod:`bot.slack.texts` and the Block Kit of :mod:`bot.slack.blocks`.

The app factory (:mod:`bot.app`) injects it into :class:`bot.kpi.KpiCore`, which commits what it
returns with the change it announces (the report that completes a quarter, the last nudge's close,
the owners, the actions), so a post is never committed without its change, nor the change without it.
Also here: the report form's read-only areas and the history's trend. Pure over the catalog and the
data given (no Slack client, no Redis).

Slack draws the result's scores and the history's trend itself (a chart and a table:
:mod:`bot.slack.native`). A post that carries them has its ``fallback``: the outputs sent instead if
Slack refuses its blocks (``invalid_blocks``: a client or workspace without them), the same post
without them or the chart drawn as an image, as before they existed. Both are committed together, so
a retry, a recovery or the fallback sends what was prepared.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, assert_never

from bot.kpi.areas import areas_in
from bot.kpi.messages import (
    ActionsAdded,
    AreasSaved,
    KpiMessage,
    Output,
    OwnersSet,
    Reminder,
    ResultPost,
    Unchanged,
)
from bot.mrkdwn import escape, mrkdwn
from bot.slack import blocks as slack_blocks
from bot.slack import native
from bot.slack.texts import fiscal_label, months_label, period_label, t
from conversations.kpi_catalog import Catalog
from conversations.teams import Report, Team
from scoring.kpi import MAX_SCORE, AreaScore, KpiResult
from scoring.periods import Quarter


class KpiRenderer:
    """The Slack rendering of the KPI core's messages (:data:`bot.kpi.messages.Render`)."""

    def __init__(self, catalog: Catalog, locale: str) -> None:
        self.catalog = catalog
        self.locale = locale

    def __call__(self, message: KpiMessage) -> list[Output]:
        catalog, locale = self.catalog, self.locale
        match message:
            case ResultPost():
                return result_outputs(catalog, locale, message)
            case AreasSaved(user=user, areas=areas, missing=missing, owners=owners):
                names = slack_blocks.joined(locale, [catalog.name(a, locale) for a in areas])
                text = t(locale, "partial_saved", areas=names,
                         missing=slack_blocks.missing_text(catalog, locale, missing, owners))
                return [{"type": "slack_ephemeral", "user": user, "text": text}]
            case Unchanged(user=user):
                return [{"type": "slack_ephemeral", "user": user, "text": t(locale, "no_change")}]
            case OwnersSet(owners=owners, by=by):
                text, blocks = slack_blocks.owners_post(catalog, locale, owners, by)
                return [{"type": "slack_post", "text": text, "blocks": blocks}]
            case ActionsAdded(team=team, quarter=quarter, area=area, actions=actions, by=by):
                text, blocks = slack_blocks.actions_post(catalog, locale, team, quarter, area, actions, by)
                return [{"type": "slack_post", "text": text, "blocks": blocks}]
            case Reminder(team=team, asked=asked, kind=kind):
                text, blocks = slack_blocks.reminder_message(catalog, locale, team, asked, kind, owners=message.owners,
                                                  missing=message.missing, actions=message.actions)
                blocks.append(slack_blocks.report_button(locale, team, asked))
                return [{"type": "slack_post", "text": text, "blocks": blocks}]
            case _:
                assert_never(message)


def result_outputs(catalog: Catalog, locale: str, post: ResultPost) -> list[Output]:
    """The team's result post, with Slack's bar chart and table of the scores, then its radar chart (an
    image: Slack draws no radar): the outputs of one job (:mod:`bot.slack.transport` sends them in order).
    The post's ``fallback`` is the same post without the chart and table."""
    team, quarter, result = post.team, post.quarter, post.result
    previous = (quarter.previous(), post.previous) if post.previous is not None else None
    chart = scores_chart(catalog, locale, team, quarter, result, previous)
    drawn = ([chart] if chart is not None else []) + [scores_table(catalog, locale, result, post.deltas)]
    text, blocks = slack_blocks.result_message(catalog, locale, team, quarter, result, post.deltas, post.by,
                                               post.replaced,
                                    reporters=post.reporters, owners=post.owners, follow=post.follow,
                                    closed=post.closed, native=drawn)
    blocks.append(slack_blocks.with_detail_button(locale, team, quarter,
                                                  slack_blocks.actions_button(locale, team, quarter, result.weakest)))
    plain = {"type": "slack_post", "text": text, "blocks": native.without_native(blocks)}
    message = {"type": "slack_post", "text": text, "blocks": blocks, "fallback": [plain]}
    return [message, radar_output(catalog, locale, team, quarter, result, previous)]


def scores_chart(
    catalog: Catalog, locale: str, team: Team, quarter: Quarter, result: KpiResult,
    previous: tuple[Quarter, KpiResult] | None,
) -> dict[str, Any] | None:
    """Slack's bar chart of the areas' scores: the last quarter's bars beside this one's when it has a
    score for every area shown. An area not reported is left out (never drawn as 0); None when none is."""
    areas = [a for a in result.areas if a.score is not None]
    if not areas:
        return None
    rows = [(quarter, {a.area: a.score for a in areas})]
    if previous is not None:
        before = {a.area: a.score for a in previous[1].areas}
        if all(before.get(a.area) is not None for a in areas):
            rows.insert(0, (previous[0], before))
    series = [(fiscal_label(locale, q, team.fy_start), [float(scores[a.area] or 0) for a in areas])
              for q, scores in rows]
    return native.series_chart("bar", t(locale, "scores_chart_title"), [catalog.name(a.area, locale) for a in areas],
                               series, x_label=t(locale, "axis_area"), y_label=t(locale, "axis_score"))


def scores_table(catalog: Catalog, locale: str, result: KpiResult,
                 deltas: Mapping[str, float | None] | None) -> dict[str, Any]:
    """Slack's table of the result: each area's score, its change, the figures reported and the lowest
    one against its target; then the overall score."""
    none = t(locale, "cell_none")

    def change(key: str) -> str:
        if deltas is None:
            return none
        return slack_blocks.delta_text(deltas.get(key)).strip() or none

    def score(value: float | None) -> str:
        return t(locale, "not_reported") if value is None else f"{value:.1f}"

    rows = [[catalog.name(a.area, locale), score(a.score), change(a.area),
             t(locale, "cell_coverage", reported=a.reported, total=a.total), lowest_cell(catalog, locale, a)]
            for a in result.areas]
    rows.append([t(locale, "overall"), score(result.overall), change("overall"),
                 t(locale, "cell_coverage", reported=result.reported, total=result.total), none])
    header = [t(locale, key) for key in ("col_area", "col_score", "col_change", "col_coverage", "col_lowest")]
    right = {"align": "right"}
    return native.table(header, rows, [{"is_wrapped": True}, right, right, right, {"is_wrapped": True}])


def lowest_cell(catalog: Catalog, locale: str, area: AreaScore) -> str:
    """An area's reported figure with the lowest score against its target (the earlier one on a tie);
    a dash when none is below 10 or none was reported."""
    reported = [row for row in area.indicators if row.value is not None and row.score is not None]
    if not reported:
        return t(locale, "cell_none")
    row = min(reported, key=lambda r: r.score or 0)
    if row.value is None or row.score is None or row.score >= MAX_SCORE:
        return t(locale, "cell_none")
    key = "cell_lowest_previous" if row.basis == "previous" else "cell_lowest"
    return t(locale, key, name=catalog.name(row.key, locale), value=slack_blocks.figure(catalog, locale, row.key,
                                                                                       row.value),
             target=slack_blocks.figure(catalog, locale, row.key, row.target))


def readonly_texts(catalog: Catalog, locale: str, report: Report | None, owners: Mapping[str, str],
                   areas: Sequence[str]) -> dict[str, str]:
    """What the report form shows for the areas someone else reports: the owner, and the figures
    reported so far (or 「未報告」)."""
    out = {}
    have = set(areas_in(catalog, report))
    for area in areas:
        lines = [t(locale, "owner_of", user=owners[area])] if owners.get(area) else []
        if report is not None and area in have:
            figures = [f"{catalog.name(k, locale)} {slack_blocks.figure(catalog, locale, k, report.values[k])}"
                       for k in catalog.area(area).indicator_keys if k in report.values]
            who = report.areas.get(area, (report.by, 0.0))[0]
            lines.append(t(locale, "readonly_in", user=who, figures=slack_blocks.joined(locale, figures)))
        else:
            lines.append(t(locale, "readonly_missing"))
        out[area] = "\n".join(lines)
    return out


def _series_text(catalog: Catalog, locale: str, label: str, scores: Sequence[tuple[str, float | None]]) -> str:
    values = slack_blocks.joined(locale, [
        f"{catalog.name(a, locale)} {t(locale, 'not_reported') if s is None else f'{s:.1f}'}"
                               for a, s in scores])
    return t(locale, "chart_series", name=label, values=values)


def radar_output(
    catalog: Catalog, locale: str, team: Team, quarter: Quarter, result: KpiResult,
    previous: tuple[Quarter, KpiResult] | None,
) -> Output:
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
) -> Output:
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


def trend_post(
    catalog: Catalog, locale: str, team: Team, rows: Sequence[tuple[Quarter, KpiResult]]
) -> Output:
    """The trend in a DM (``slack_post``): Slack's line chart of the overall score and of each area with a
    score in every quarter shown, and its table of every score; the last MAX_POINTS quarters. Its text
    says every figure (screen readers, notifications, clients that draw neither); its ``fallback`` is
    the line chart drawn as an image (:func:`trend_output`), as before Slack drew charts."""
    shown = list(rows)[-native.MAX_POINTS:]
    quarters = [fiscal_label(locale, q, team.fy_start) for q, _ in shown]
    columns = [(t(locale, "overall"), [res.overall for _, res in shown])]
    columns += [(catalog.name(a, locale), [_score(res, a) for _, res in shown]) for a in catalog.area_keys]
    charted = [(name, [float(v) for v in values if v is not None]) for name, values in columns
               if all(v is not None for v in values)][:native.MAX_SERIES]
    left_out = [name for name, _ in columns if name not in {n for n, _ in charted}]
    chart = native.series_chart("line", t(locale, "trend_chart_title"), quarters, charted,
                                x_label=t(locale, "axis_quarter"), y_label=t(locale, "axis_score"))
    none = t(locale, "not_reported")
    table = native.table([t(locale, "col_quarter"), *(name for name, _ in columns)],
                         [[quarter, *(none if v[i] is None else f"{v[i]:.1f}" for _, v in columns)]
                          for i, quarter in enumerate(quarters)],
                         [{"is_wrapped": True}] + [{"align": "right"}] * len(columns))
    notes = ([t(locale, "trend_left_out", areas=slack_blocks.joined(locale, left_out))] if left_out else [])
    if len(shown) < len(rows):
        notes.append(t(locale, "trend_shortened", shown=len(shown), total=len(rows)))
    blocks = [slack_blocks.section(t(locale, "history_chart_comment", team=escape(team.name))), chart, table]
    if notes:
        blocks.append({"type": "context", "elements": [mrkdwn(n) for n in notes]})
    sep = "。" if locale != "en" else ". "
    series = sep.join([" → ".join(quarters)] + [
        t(locale, "chart_series", name=name, values=" → ".join(none if v is None else f"{v:.1f}" for v in values))
        for name, values in columns])
    text = t(locale, "trend_text", team=escape(team.name), series=series)
    fallback = trend_output(catalog, locale, team, rows)
    return {"type": "slack_post", "text": text, "blocks": blocks, "fallback": [fallback]}


def _score(result: KpiResult, area: str) -> float | None:
    try:
        return result.area(area).score
    except KeyError:  # an area the catalog has now, not when this quarter was scored
        return None
