"""The operator console: server-rendered pages at ``/console/`` (``/`` leads there), the token API and
the CSV exports. :func:`register` adds it to the app (called by :func:`bot.app.create_app`).

    pages.py    the pages' blueprint (guard, headers, error pages); each page's views in routes/
    routes/     one module per page (login, overview, leads, teams, delivery, operators, profile, audit,
                bookings)
    try_chat.py /console/try/, the diagnosis in a chat page (registered by bot.app.create_app)
    tools.py    /console/api/* and /console/export/* (Bearer token or a logged-in session)
    bookings.py /console/api/availability, /console/api/bookings, /console/api/calendar (the same auth) and
                the bookings' iCalendar feed at /console/calendar/<token>.ics (its secret token only)
    consultations.py  the availability editor's form, booking rows, marking and cancelling (audit log,
                then the app's booking-news hook, Services.booking_news), the funnel's consultation counts
    auth.py     login, roles (who acts: operator_name(), may_change()), CSRF, the throttle, the token
    operators.py operators' accounts: Argon2id passwords, roles, TOTP, the first admin
    audit.py    the audit log (a Redis stream): record(), the audit page's reads, a record's entries
    sessions.py sessions kept in Redis (the cookie carries a random id): logout, lifetimes, each
                operator's sessions listed and revocable
    keys.py     the console's Redis keys
    texts.py    every word shown (the try-it page's too), Japanese and English
    quota.py    LINE's message quota, read at most every 5 minutes
    fmt.py      dates in Japan time, numbers
    figures_cache.py  the funnel's and the overview's figures kept a few seconds per query (one Redis read
                for many dashboards), emptied by any change made in the console
Charts are drawn by :mod:`bot.charts` (matplotlib, SVG).
"""

from __future__ import annotations

from typing import Any

from flask import Flask, redirect, request
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response


def register(app: Flask, svc: Any) -> None:
    """The console's blueprints, sessions and CSRF on ``app``; ``svc`` is the app's Services."""
    from bot.console import auth, bookings, figures_cache, pages, tools

    auth.install(app, svc.config, svc.redis, svc.clock)
    figures_cache.install(app, svc.config.console_figures_seconds, svc.clock)
    app.register_blueprint(pages.blueprint())
    app.register_blueprint(tools.blueprint())
    app.register_blueprint(bookings.api_blueprint())
    app.register_blueprint(bookings.feed_blueprint())

    def root() -> Response:
        return redirect("/console/")

    app.add_url_rule("/", "root", root)

    def not_found(e: HTTPException) -> Any:
        """An unknown address under /console: the console's own page (a blueprint's handler hears only its
        own views' 404s, never an address that matches no route)."""
        return pages.not_found(e) if request.path.startswith("/console/") else e

    app.register_error_handler(404, not_found)
