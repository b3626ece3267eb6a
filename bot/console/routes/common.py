"""What every console page uses: the app's services, a page rendered with what every page shows, an SVG
response, the stores read by more than one page."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, g, render_template

from bot.console import fmt
from bot.console import leads as leads_mod
from bot.console.texts import texts


def svc() -> Any:
    return current_app.extensions["crmbot"]


def catalog() -> Any:
    from conversations.kpi_catalog import load_catalog

    return load_catalog()


def team_store() -> Any:
    """The request's team store (made once per request)."""
    from conversations.teams import TeamStore

    store = g.get("crmbot_teams")
    if store is None:
        store = g.crmbot_teams = TeamStore(svc().redis)
    return store


def svg(data: bytes) -> Response:
    return Response(data, mimetype="image/svg+xml", headers={"Cache-Control": "private, max-age=60"})


def page(template: str, **context: Any) -> str:
    """Render a console page with what every page shows (texts, the nav, the open-consultation badge)."""
    return render_template(template, t=texts(), fmt=fmt, open_consult=open_consultations(),
                           has_try=has_try(), **context)


def open_consultations() -> int:
    """The nav's badge: consultations requested and not yet taken up (status "new")."""
    return leads_mod.analytics(svc()).open_consultations()


def has_try() -> bool:
    return "console_try" in current_app.blueprints
