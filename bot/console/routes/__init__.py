"""The console's pages, one module per page, each registering its views on the ``console`` blueprint
(made by :func:`bot.console.pages.blueprint`), as the Slack listeners are registered on the Bolt app.

    common    what every page uses: the app's services, a page rendered with the nav, an SVG response
    login     /console/login, /console/logout
    overview  /console/ (the figures over a date range) and its charts
    leads     /console/leads, a lead (and its consultation status), a person
    teams     /console/teams, a team, its trend chart
    delivery  /console/delivery (parked messages, LINE's quota) and the requeue form
    operators /console/operators (admins): the operators, adding one, roles, sessions, requiring TOTP
    profile   /console/profile: one's own password, second factor (TOTP) and sessions
    audit_log /console/audit: the audit log, filtered, a page at a time
    bookings  /console/availability (the editor, the calendar URL), /console/bookings and the forms that
              mark or cancel a booking (a lead's page posts them too)
    content   /console/content: the diagnosis content's versions (upload, draft, publish, go back)
    webhooks  /console/webhooks: the client's webhook endpoints (added with a secret shown once, deleted, their
              last answers) and /console/api/webhooks (GET, POST, DELETE: the same through the Bearer token)
    nurture   /console/nurture: LINE's figures per follow-up step and per nudge over a period (bot/insight.py)

Every view is a module-level function; ``register(bp)`` adds its URL rules, each endpoint named
``console.<view>`` (``url_for("console.delivery")``).
"""

from __future__ import annotations

from flask import Blueprint

from bot.console.routes import (
    audit_log,
    bookings,
    content,
    delivery,
    leads,
    login,
    nurture,
    operators,
    overview,
    profile,
    teams,
    webhooks,
)


def register(bp: Blueprint) -> None:
    for page in (login, overview, leads, teams, delivery, operators, profile, audit_log, bookings, webhooks, nurture,
                 content):
        page.register(bp)
    from bot.console import experiments  # /console/experiments (bot/console/experiments.py)

    experiments.register(bp)
