"""The Slack listeners, one module per feature, registered on the Bolt app by :func:`register`.

    middleware  the dependencies in every request's context; Slack's event retries handled once
    kpi         /kpi and its subcommands, the report and targets modals, the open-report button
    method      area owners, improvement actions, the CSV export (registered by kpi)
    diagnosis   /diagnosis, the diagnosis buttons, direct messages
    home        the App Home tab
    handoff     a person's reply in a lead's thread of the operator's channel, and 「対応終了」 (bot/handoff.py)
    workflow    the Workflow Builder step 「CRM KPIを報告」 (a custom step: the /kpi form, its scores as outputs)

Every listener is a module-level function; Bolt injects its arguments by name (``ack``, ``body``,
``command``, ...), and ``deps`` (:class:`bot.slack.deps.Deps`) from the request context.
"""

from __future__ import annotations

from slack_bolt import App

from bot.slack.deps import Deps
from bot.slack.listeners import diagnosis, handoff, home, kpi, middleware, workflow


def register(app: App, deps: Deps) -> None:
    middleware.register(app, deps)
    kpi.register(app)
    handoff.register(app)  # its thread messages first: the diagnosis listens to every message
    diagnosis.register(app)
    home.register(app)
    workflow.register(app)
