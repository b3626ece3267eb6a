"""What the Slack listeners work with: one typed object built by :func:`bot.slack.app.build_slack`.

Bolt hands it to every listener and middleware by name: a middleware puts it in the request context
(``context["deps"]``) and Bolt injects context entries into any listener parameter of the same name,
so a listener is a plain module-level function ``def listener(ack: Ack, ..., deps: Deps)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slack_sdk import WebClient

from bot.core import Bot
from bot.kpi import KpiCore
from conversations.content import Script
from conversations.kpi_catalog import Catalog
from conversations.teams import TeamStore


@dataclass(frozen=True)
class Deps:
    client: WebClient  # the Slack Web API (ephemerals, views, conversations.info)
    redis: Any  # redis-py client (event retry marks)
    bot: Bot  # the diagnosis core
    script: Script  # the diagnosis content (keywords of typed answers)
    catalog: Catalog  # the KPI catalog
    teams: TeamStore  # teams, targets and reports
    kpi: KpiCore  # the KPI method: reports, owners, actions, scores (its posts rendered by bot.slack.results)
    outbox: Any  # bot.outbox.Outbox: posts that must not be lost (the setup announcement)
    locale: str  # "ja" or "en"
    clock: Callable[[], float]  # server time, injectable
    handoff: Any = None  # bot.handoff.Handoff: the operator's replies in a lead's thread (None: no operator channel)
