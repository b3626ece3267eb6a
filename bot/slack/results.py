"""The KPI core's messages said in Slack: :class:`KpiRenderer` turns each (:mod:`bot.kpi.messages`)
into the outputs of one job (a channel post, its radar chart, an ephemeral), in the words of
:mod:`bot.slack.texts` and the Block Kit of :mod:`bot.slack.blocks`.

The app factory (:mod:`bot.app`) injects it into :class:`bot.kpi.KpiCore`, which commits what it
returns with the change it announces (the report that completes a quarter, the last nudge's close,
the owners, the actions), so a post is never committed without its change, nor the change without it.
Also here: the report form's read-only areas and the history's chart. Pure over the catalog and the
data given (no Slack client, no Redis).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import assert_never

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
from bot.mrkdwn import escape
from bot.slack import blocks as slack_blocks
from bot.slack.texts import months_label, period_label, t
from conversations.kpi_catalog import Catalog
from conversations.teams import Report, Team
from scoring.kpi import KpiResult
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
    """The team's result post, then its radar chart: the outputs of one job (:mod:`bot.slack.transport`
    sends them in order)."""
    team, quarter, result = post.team, post.quarter, post.result
    text, blocks = slack_blocks.result_message(catalog, locale, team, quarter, result, post.deltas, post.by,
                                               post.replaced,
                                    reporters=post.reporters, owners=post.owners, follow=post.follow,
                                    closed=post.closed)
    blocks.append(slack_blocks.with_detail_button(locale, team, quarter,
                                                  slack_blocks.actions_button(locale, team, quarter, result.weakest)))
    message = {"type": "slack_post", "text": text, "blocks": blocks}
    return [message, radar_output(catalog, locale, team, quarter, result,
                                  (quarter.previous(), post.previous) if post.previous is not None else None)]


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
