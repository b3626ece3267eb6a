"""The web app factory: ``create_app(config=None)``. No globals, nothing happens at import time."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
from flask import Flask

from bot.config import Config
from bot.core import Bot
from bot.outbox import Outbox
from bot.redis_conn import connect
from conversations.content import Script, load_script
from conversations.machine import Machine, Settings, build
from conversations.store import RedisStore

log = logging.getLogger(__name__)
MAX_BODY = 1024 * 1024  # webhook bodies over 1 MiB are refused (413)


@dataclass
class Services:
    """Everything a request handler needs, built once per app."""

    config: Config
    redis: redis.Redis
    script: Script
    machine: Machine
    store: RedisStore
    outbox: Outbox
    bot: Bot
    clock: Callable[[], float]
    slack: Any = None  # bot.slack.app.SlackParts when Slack is configured


def build_services(
    config: Config, *, client: redis.Redis | None = None, clock: Callable[[], float] = time.time
) -> Services:
    """Load content (fails fast on a bad file), connect Redis, wire the core and the transports."""
    script = load_script(config.locale, config.content_dir)
    client = client if client is not None else connect(config)
    machine = build(Settings(expiry=config.conversation_ttl, resume_after=config.resume_after))
    store = RedisStore(client, dedupe_ttl=config.dedupe_ttl)
    transports: dict[str, Any] = {}
    if config.line_enabled:
        from bot.line.transport import LineBatchTransport, LineTransport

        line = LineTransport(config.line_api_host, config.line_channel_access_token or "", script)
        transports["line"] = line
        transports["linebatch"] = LineBatchTransport(line.api, script, client)
    else:
        log.warning("LINE disabled: %s not set; /line/webhook answers 503", " and ".join(config.line_missing))
    slack_client = None
    if config.slack_enabled:
        from slack_sdk import WebClient

        from bot.slack.transport import SlackTransport

        slack_client = WebClient(token=config.slack_bot_token, base_url=config.slack_api_url, timeout=10)
        transports["slack"] = SlackTransport(slack_client, script)
    else:
        log.warning("Slack disabled: %s not set; /slack/events answers 503", " and ".join(config.slack_missing))
    outbox = Outbox(
        client,
        transports,
        clock=clock,
        lease=config.outbox_lease,
        max_attempts=config.outbox_max_attempts,
        background=config.send_in_background,
        threads=config.outbox_threads,
    )
    bot = Bot(store, machine, outbox, clock=clock, conversation_ttl=config.conversation_ttl)
    svc = Services(config, client, script, machine, store, outbox, bot, clock)
    if slack_client is not None:
        from bot.slack.app import build_slack
        from conversations.kpi_catalog import load_catalog
        from conversations.teams import TeamStore

        svc.slack = build_slack(
            signing_secret=config.slack_signing_secret or "",
            client=slack_client,
            redis_client=client,
            bot=bot,
            script=script,
            catalog=load_catalog(),
            teams=TeamStore(client),
            outbox=outbox,
            locale=config.locale,
            clock=clock,
        )
    return svc


def build_reminders(svc: Services) -> Any:
    """The quarterly reminder engine over the app's services (bot.reminders.Reminders)."""
    from bot.reminders import Reminders, ReminderSettings
    from conversations.teams import TeamStore

    cfg = svc.config
    line = svc.outbox.transports.get("line")
    button = None
    if svc.slack is not None:
        from bot.slack.blocks import report_button

        def button(team: Any, quarter: Any) -> dict[str, Any]:
            return report_button(cfg.locale, team, quarter)

    return Reminders(
        svc.redis,
        TeamStore(svc.redis),
        svc.outbox,
        locale=cfg.locale,
        settings=ReminderSettings(
            hour=cfg.remind_hour, nudges=cfg.remind_nudges, cadence=cfg.remind_cadence, grace=cfg.remind_grace
        ),
        line_api=line.api if line is not None else None,
        report_button=button,
    )


def create_app(config: Config | None = None, *, services: Services | None = None) -> Flask:
    config = config or (services.config if services else Config.from_env())
    svc = services or build_services(config)
    app = Flask("crmbot")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.extensions["crmbot"] = svc

    from bot.health import blueprint as health_bp
    from bot.line.webhook import blueprint as line_bp
    from bot.slack.app import blueprint as slack_bp

    app.register_blueprint(health_bp())
    app.register_blueprint(line_bp())
    app.register_blueprint(slack_bp())
    return app
