"""``/console/teams`` (every Slack team, its last four quarters), a team (every quarter) and its trend
chart, ``/console/teams/<id>/trend.svg``."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort

from bot.console.routes.common import catalog, page, svc, svg, team_store
from bot.console.teams import TeamView, Words, find_team, recent_quarters, slack_ids, team_view
from bot.console.texts import texts
from conversations.slack_names import SlackNames


def register(bp: Blueprint) -> None:
    bp.add_url_rule("/teams", "teams", teams, methods=["GET"])
    bp.add_url_rule("/teams/<team_id>", "team", team, methods=["GET"])
    bp.add_url_rule("/teams/<team_id>/trend.svg", "team_trend", team_trend, methods=["GET"])


def teams() -> Any:
    now = svc().clock()
    kpis = catalog()
    store = team_store()
    quarters = recent_quarters(now, 4)
    views = [team_view(store, kpis, t, now) for t in sorted(store.all_teams(), key=lambda t: (t.name, t.ref.id))]
    return page("console_teams.html", nav="teams", views=views, quarters=quarters, catalog=kpis,
                locale=svc().config.locale, words=words(views))


def team(team_id: str) -> Any:
    found = find_team(team_store(), team_id)
    if found is None:
        abort(404)
    kpis = catalog()
    view = team_view(team_store(), kpis, found, svc().clock())
    return page("console_team.html", nav="teams", view=view, catalog=kpis, locale=svc().config.locale,
                words=words([view]))


def words(views: list[TeamView]) -> Words:
    """The pages' words, with the Slack names of the channels and people they show (as the worker cached
    them: a name not cached yet is asked of the worker, never of Slack here)."""
    return Words(svc().config.locale, SlackNames(svc().redis).get(slack_ids(views)), texts()["name_pending"],
                 texts()["list_sep"])


def team_trend(team_id: str) -> Any:
    from bot import charts

    found = find_team(team_store(), team_id)
    if found is None:
        abort(404)
    kpis = catalog()
    locale = svc().config.locale
    view = team_view(team_store(), kpis, found, svc().clock())
    series = {kpis.name(key, locale): [row.area(key) for row in view.rows] for key in kpis.area_keys}
    label = Words(locale, {}, "").short
    return svg(charts.lines([label(row.quarter, found) for row in view.rows], series, y_range=(0, 10.5),
                            empty=texts()["not_reported"]))
