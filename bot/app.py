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
from bot.persistence import log_if_cannot_persist
from bot.redis_conn import connect
from bot.worker import Faults, Sender, Worker
from conversations.content import Script, load_script
from conversations.machine import Machine, build
from conversations.store import RedisStore
from conversations.transports import Transport

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
    """Load content (fails fast on a bad file), connect Redis, wire the core. The web tier only
    commits jobs; the worker (:func:`build_worker`) delivers them."""
    script = load_script(config.locale, config.content_dir)
    client = client if client is not None else connect(config)
    log_if_cannot_persist(client, config)  # a full disk, said plainly at start-up (and on /healthz)
    machine = build(config.machine_settings())
    store = RedisStore(client, dedupe_ttl=config.dedupe_ttl)
    # the try-it page (bot/webchat.py): always on, delivered by the worker like the others
    transports = [Transport.WEB]
    if config.line_enabled:
        transports += [Transport.LINE, Transport.LINEBATCH]
    else:
        log.warning("LINE disabled: %s not set; /line/webhook answers 503", " and ".join(config.line_missing))
    if config.slack_enabled:
        transports.append(Transport.SLACK)
    else:
        log.warning("Slack disabled: %s not set; /slack/events answers 503", " and ".join(config.slack_missing))
    # jobs record the script's content version; the first one's commit stores its text (for the worker)
    outbox = Outbox(client, transports, clock=clock, lease=config.outbox_lease, script=script)
    bot = Bot(store, machine, outbox, clock=clock, conversation_ttl=config.conversation_ttl)
    svc = Services(config, client, script, machine, store, outbox, bot, clock)
    if config.slack_enabled:
        from slack_sdk import WebClient

        from bot.slack.app import build_slack
        from bot.slack.tokens import OAuthOptions
        from conversations.kpi_catalog import load_catalog
        from conversations.teams import TeamStore

        # The web tier's Slack client opens modals only (Slack accepts them within 3 s of the click).
        # Many workspaces (OAuth): it has no token of its own; each request gets its workspace's.
        oauth = (OAuthOptions(config.slack_client_id or "", config.slack_client_secret or "",
                              config.slack_redirect_uri) if config.slack_oauth else None)
        if oauth is not None and config.slack_bot_token:
            log.warning("Slack: SLACK_BOT_TOKEN is not used with the OAuth install (SLACK_CLIENT_ID)")
        slack_client = WebClient(token=None if oauth else config.slack_bot_token, base_url=config.slack_api_url,
                                 timeout=3)
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
            oauth=oauth,
        )
    return svc


async def build_worker(
    config: Config,
    script: Script,
    *,
    clock: Callable[[], float] = time.time,
    faults: Faults | None = None,
) -> Worker:
    """The worker with a sender per configured transport (call it inside the worker's event loop); each
    job rendered with the script it was committed with (bot.scripts), ``script`` the worker's own."""
    from bot.ratelimit import Limit
    from bot.redis_conn import connect_async
    from bot.scripts import Scripts
    from bot.webchat import WebChatTransport

    scripts = Scripts(script)
    senders: dict[Transport, Sender] = {Transport.WEB: WebChatTransport(scripts)}
    if config.line_enabled:
        from bot.line.transport import LineApi, LineBatchTransport, LineTransport

        api = LineApi(config.line_api_host, config.line_channel_access_token or "", read_timeout=config.api_timeout)
        push = Limit(config.line_push_rate, max(1.0, config.line_push_rate / 20)) if config.line_push_rate else None
        multi = (Limit(config.line_multicast_rate, max(1.0, config.line_multicast_rate / 20))
                 if config.line_multicast_rate else None)
        senders[Transport.LINE] = LineTransport(api, scripts, push_limit=push, unknown_policy=config.reply_unknown,
                                                on_profile=_keep_line_name if config.fetch_profile else None)
        senders[Transport.LINEBATCH] = LineBatchTransport(api, scripts, limit=multi)
    if config.slack_enabled:
        from bot.slack.tokens import InstalledTokens, OAuthOptions, TokenSource
        from bot.slack.transport import SlackLimits, SlackTransport

        limits = SlackLimits(workspace=Limit(config.slack_rate, config.slack_burst) if config.slack_rate else None)
        tokens: str | TokenSource = config.slack_bot_token or ""
        if config.slack_oauth:  # many workspaces: each job's workspace token from its installation
            tokens = InstalledTokens(OAuthOptions(config.slack_client_id or "", config.slack_client_secret or ""),
                                     config.slack_api_url, timeout=config.api_timeout)
        senders[Transport.SLACK] = SlackTransport(tokens, config.slack_api_url, scripts, limits=limits,
                                                  timeout=config.api_timeout)
    from bot.analytics_sink import StatsSink
    from bot.operator import make_consult_hook

    # the operator's figures, applied from their own records; a first consultation request briefs the operator
    sink = StatsSink(expiry=config.conversation_ttl, on_first_consult=make_consult_hook(config, script, clock=clock))
    from bot.outbox import Outbox
    from bot.redis_conn import connect

    # the outbox invariant's audit, at start and every few minutes (sync: run in a thread, own client)
    audit = Outbox(connect(config), (), clock=clock, lease=config.outbox_lease).audit
    return Worker(connect_async(config), senders, figures=sink, clock=clock, lease=config.outbox_lease,
                  max_attempts=config.outbox_max_attempts, concurrency=config.worker_concurrency, faults=faults,
                  audit=audit)


async def _keep_line_name(client: Any, user_id: str, name: str) -> None:
    """A follower's LINE display name, fetched by the worker at follow, kept for the operator's leads."""
    from conversations.analytics import set_name_async

    await set_name_async(client, "line", user_id, name)


def build_reminders(svc: Services) -> Any:
    """The quarterly reminder engine over the app's services (bot.reminders.Reminders)."""
    from bot.reminders import Reminders, ReminderSettings
    from conversations.teams import TeamStore

    cfg = svc.config
    line_api = None
    if cfg.line_enabled:  # the clock reads LINE's message quota before a pass
        from linebot.v3.messaging import ApiClient, Configuration, MessagingApi

        line_api = MessagingApi(ApiClient(Configuration(host=cfg.line_api_host,
                                                        access_token=cfg.line_channel_access_token)))
    button = None
    installed = None
    catalog = None
    if svc.slack is not None:
        from bot.slack.blocks import report_button

        catalog = svc.slack.catalog

        def button(team: Any, quarter: Any) -> dict[str, Any]:
            return report_button(cfg.locale, team, quarter)

        if svc.slack.installations is not None:  # many workspaces: an uninstalled one's teams are skipped
            installed = svc.slack.installations.installed

    return Reminders(
        svc.redis,
        TeamStore(svc.redis),
        svc.outbox,
        locale=cfg.locale,
        settings=ReminderSettings(
            hour=cfg.remind_hour, nudges=cfg.remind_nudges, cadence=cfg.remind_cadence, grace=cfg.remind_grace
        ),
        line_api=line_api,
        report_button=button,
        installed=installed,
        catalog=catalog,
    )


def create_app(config: Config | None = None, *, services: Services | None = None) -> Flask:
    config = config or (services.config if services else Config.from_env())
    svc = services or build_services(config)
    app = Flask("crmbot")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.extensions["crmbot"] = svc

    from bot.console.try_chat import blueprint as try_bp
    from bot.health import blueprint as health_bp
    from bot.line.webhook import blueprint as line_bp
    from bot.slack.app import blueprint as slack_bp

    app.register_blueprint(health_bp())
    app.register_blueprint(line_bp())
    app.register_blueprint(slack_bp())

    from bot.console import register as register_console

    register_console(app, svc)  # /console/ (and / leads there)
    app.register_blueprint(try_bp())  # /console/try/, behind the console's login
    return app
