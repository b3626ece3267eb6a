"""The composition root: the web app factory ``create_app(config=None)``, and the services, worker,
reminders, KPI core and operator hook built from the configuration, with the adapters' renderers
injected into the core (:func:`build_kpi`, :func:`make_consult_hook`). No globals, nothing happens at
import time."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask

from bot.booking_flow import BookingFlow
from bot.booking_news import BookingHook, Fanout, nobody
from bot.config import Config
from bot.core import Bot
from bot.followups import Followups
from bot.kpi import KpiCore
from bot.operator import ConsultHook
from bot.outbox import Outbox
from bot.persistence import log_if_cannot_persist
from bot.privacy import Eraser
from bot.redis_conn import connect
from bot.worker import Faults, Sender, Worker
from conversations import jobs
from conversations.analytics import PeerFigures
from conversations.booking import Bookings
from conversations.content import Script, load_script
from conversations.content_versions import ContentVersions
from conversations.experiments import Assigner, BookedCounter
from conversations.machine import Machine, build
from conversations.redis_ops import Runner, runner
from conversations.store import RedisStore
from conversations.transports import Transport

log = logging.getLogger(__name__)
MAX_BODY = 1024 * 1024  # webhook bodies over 1 MiB are refused (413)


@dataclass
class Services:
    """Everything a request handler needs, built once per app."""

    config: Config
    redis: Runner  # every Redis call goes through it (redis-py errors become StoreUnavailable)
    script: Script
    machine: Machine
    store: RedisStore
    outbox: Outbox
    bot: Bot
    clock: Callable[[], float]
    kpi: KpiCore | None = None  # the KPI method when Slack is configured (its posts rendered for Slack)
    slack: Any = None  # bot.slack.app.SlackParts when Slack is configured and the Bolt app is wanted
    line_quota: Callable[[], Any] | None = None  # bot.line.quota's reader when LINE is configured
    # who hears of a consultation's change (the console's marks and cancels, the LINE booking flow): the
    # composed hooks (bot.booking_news.Fanout, make_booking_news): the owner's LINE chat, the Slack thread
    booking_news: BookingHook = nobody
    bookings: Bookings | None = None  # consultation bookings (conversations/booking)
    # the operator's conversation in the lead's Slack thread (bot/handoff.py), with CRMBOT_OPERATOR_SLACK_CHANNEL
    handoff: Any = None  # bot.handoff.Handoff
    followups: Any = None  # bot.followups.Followups: tips on the owner's point to fix, sent by the clock

    @property
    def versions(self) -> ContentVersions | None:
        """The content versions published from the console (conversations/content_versions.py): ``script``
        is the deployed file, :meth:`content` the one in use."""
        return self.bot.versions

    def content(self) -> Script:
        """The diagnosis script in use now (published from the console, else the deployed file)."""
        return self.versions.active()[1] if self.versions is not None else self.script


PACE_MARGIN = 0.9  # the share of LINE's push and multicast limits the worker paces its sends at


def build_services(
    config: Config, *, client: Any = None, clock: Callable[[], float] = time.time,
    slack_app: bool = True,
) -> Services:
    """Load content (fails fast on a bad file), connect Redis, wire the core. The web tier only
    commits jobs; the worker (:func:`build_worker`) delivers them. ``slack_app``: False builds no Bolt
    app (the clock and ``crmbot remind`` need the KPI core, not Slack's listeners)."""
    script = load_script(config.locale, config.content_dir)
    client = runner(client if client is not None else connect(config))
    log_if_cannot_persist(client, config)  # a full disk, said plainly at start-up (and on /healthz)
    machine = build(config.machine_settings(script.qualify.counts))
    store = RedisStore(client, dedupe_ttl=config.dedupe_ttl)
    # jobs record the script's content version; the first one's commit stores its text (for the worker)
    versions = ContentVersions(client, script)  # the content version in use: read every few seconds, not per webhook
    outbox = Outbox(client, _transports(config), clock=clock, lease=config.outbox_lease, script=script,
                    line_push_only=config.line_push_only, versions=versions)
    eraser = Eraser(client, outbox, clock=clock, operator_channel=config.operator_slack_channel,
                    ttl=config.dedupe_ttl)
    # consultations: requested and booked in the LINE chat; every change heard by the booking-news hooks
    bookings = Bookings(client, clock=clock)
    relay = operator_relay(config)  # the owner's messages into the lead's Slack thread, replies back
    followups = Followups(client, script, resources_url=config.resources_url or "", clock=clock)
    news = make_booking_news(outbox, bookings, relay, clock, followups=followups, client=client)
    flow = BookingFlow(bookings, news, page=config.booking_page) if config.line_enabled else None
    # LINE shared with another tool (CRMBOT_LINE_COEXIST): only crmbot's own events are answered
    bot = Bot(store, machine, outbox, clock=clock, conversation_ttl=config.conversation_ttl, eraser=eraser,
              owned_only=[Transport.LINE] if config.line_owned_only else [], booking=flow, relay=relay,
              peers=PeerFigures(client, clock=clock), nudge_after=config.nudge_after_hours * 3600,
              followups=followups.schedule,  # peers: a result's "N% of shops answer A here"
              assigner=Assigner(client, script), versions=versions)  # content experiments, content versions
    svc = Services(config, client, script, machine, store, outbox, bot, clock, booking_news=news, bookings=bookings,
                   followups=followups)
    if relay is not None:
        from bot.handoff import Handoff

        svc.handoff = Handoff(bot, outbox, relay, team=config.operator_slack_team or "", clock=clock)
    if config.line_enabled:  # LINE's message quota: read by the clock's reminder pass and the console
        from bot.line.quota import quota_reader

        svc.line_quota = quota_reader(config.line_api_host, config.line_channel_access_token or "")
    if config.slack_enabled:
        svc.kpi = build_kpi(config, client, clock)
    if svc.kpi is not None and slack_app:
        from slack_sdk import WebClient

        from bot.slack.app import build_slack
        from bot.slack.tokens import OAuthOptions

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
            catalog=svc.kpi.catalog,
            teams=svc.kpi.teams,
            outbox=outbox,
            locale=config.locale,
            clock=clock,
            post_lease=config.outbox_lease,
            oauth=oauth,
            kpi=svc.kpi,
            handoff=svc.handoff,
        )
    return svc


def _transports(config: Config) -> list[Transport]:
    """What the web tier's outbox queues for: the channels configured (each one missing said once)."""
    # the try-it page (bot/webchat.py): always on, delivered by the worker like the others
    transports = [Transport.WEB, Transport.WEBHOOK]  # the client's webhook endpoints (bot/webhooks.py)
    if config.line_enabled:
        transports += [Transport.LINE, Transport.LINEBATCH]
    else:
        log.warning("LINE disabled: %s not set; /line/webhook answers 503", " and ".join(config.line_missing))
    if config.slack_enabled:
        transports.append(Transport.SLACK)
    else:
        log.warning("Slack disabled: %s not set; /slack/events answers 503", " and ".join(config.slack_missing))
    return transports


def make_booking_news(outbox: Outbox, bookings: Bookings, relay: Any = None,
                      clock: Callable[[], float] = time.time, *, followups: Followups | None = None,
                      client: Any = None) -> Fanout:
    """The app's booking-news hook (bot/booking_news.py): every part that changes a consultation (the LINE
    booking flow, the console) calls it; each listener queues what it tells, once. The owner's LINE chat
    hears of a cancellation the consultancy made (bot/booking_owner.py); with an operator Slack channel
    (``relay``), the lead's Slack thread hears of every change (bot/handoff.py ``BookingThread``)."""
    from bot.booking_owner import OwnerNews
    from bot.webhooks import BookingWebhooks, Webhooks

    hooks: list[BookingHook] = [OwnerNews(outbox, bookings, clock=clock),
                                BookingWebhooks(Webhooks(outbox, clock))]  # the client's webhook endpoints
    if relay is not None:
        from bot.handoff import BookingThread

        hooks.append(BookingThread(outbox, relay, clock=clock))
    if followups is not None:  # a consultation booked stops the follow-ups on the point to fix
        hooks.append(followups.on_booking_news)
    if client is not None:  # a booking counts for the content experiments' variants (conversations.experiments)
        hooks.append(BookedCounter(client))
    return Fanout(hooks)


def operator_workspace(config: Config) -> str:
    """The operator channel's Slack workspace as jobs name it: CRMBOT_OPERATOR_SLACK_TEAM (with OAuth, the
    installation whose token sends), else "op" (SLACK_BOT_TOKEN sends everything)."""
    from bot.operator import WORKSPACE

    return config.operator_slack_team or WORKSPACE


def operator_relay(config: Config) -> Any:
    """The handoff's relay (bot.handoff.Relay) when the operator has a Slack channel, else None. The thread's
    words and Block Kit are Slack's (bot.slack.thread), injected here."""
    if not config.operator_slack_channel or not config.slack_enabled:
        return None
    from bot.handoff import Relay
    from bot.slack.thread import ThreadRenderer

    return Relay(ThreadRenderer(config.locale), config.operator_slack_channel, operator_workspace(config))


def build_kpi(config: Config, client: Any, clock: Callable[[], float] = time.time) -> KpiCore:
    """The KPI core over the catalog and the team store, its messages rendered for Slack (the one channel
    the KPI method has): the renderer is injected here, so the core imports no adapter."""
    from bot.slack.results import KpiRenderer
    from conversations.kpi_catalog import load_catalog
    from conversations.teams import TeamStore

    catalog = load_catalog()
    return KpiCore(catalog, TeamStore(client), KpiRenderer(catalog, config.locale), clock=clock,
                   lease=config.outbox_lease)


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
    chores: list[Callable[[Any], Awaitable[Any]]] = []
    if config.line_enabled:
        from bot.line.transport import LineApi, LineBatchTransport, LineTransport

        api = LineApi(config.line_api_host, config.line_channel_access_token or "", read_timeout=config.api_timeout)
        # paced at 90% of LINE's limits: sends the limiter spaces out may reach LINE bunched (an event loop
        # waking late on a busy CPU), and the margin keeps such a bunch within LINE's burst (benchmarks/README.md)
        push = (Limit(config.line_push_rate * PACE_MARGIN, max(1.0, config.line_push_rate / 20))
                if config.line_push_rate else None)
        multi = (Limit(config.line_multicast_rate * PACE_MARGIN, max(1.0, config.line_multicast_rate / 20))
                 if config.line_multicast_rate else None)
        senders[Transport.LINE] = LineTransport(api, scripts, push_limit=push, unknown_policy=config.reply_unknown,
                                                on_profile=_keep_line_name if config.fetch_profile else None)
        senders[Transport.LINEBATCH] = LineBatchTransport(api, scripts, limit=multi)
        from bot.insight import InsightChore
        from bot.line.insight import LineInsight

        chores.append(InsightChore(LineInsight(api), clock=clock))  # LINE's statistics per unit, once a day
        if config.line_forward_url:  # LINE's webhooks relayed to the other LINE tool (bot/line/forward.py)
            from bot.line.forward import ForwardTransport

            senders[Transport.LINEFORWARD] = ForwardTransport(config.line_forward_url, timeout=config.api_timeout)
    if config.slack_enabled:
        from bot.slack.tokens import InstalledTokens, OAuthOptions, TokenSource
        from bot.slack.transport import SlackLimits, SlackTransport

        limits = SlackLimits(workspace=Limit(config.slack_rate, config.slack_burst) if config.slack_rate else None)
        tokens: str | TokenSource = config.slack_bot_token or ""
        if config.slack_oauth:  # many workspaces: each job's workspace token from its installation
            tokens = InstalledTokens(OAuthOptions(config.slack_client_id or "", config.slack_client_secret or ""),
                                     config.slack_api_url, timeout=config.api_timeout)
        slack = SlackTransport(tokens, config.slack_api_url, scripts, limits=limits, timeout=config.api_timeout)
        senders[Transport.SLACK] = slack
        from bot.slack.names import SlackNameFetcher

        chores.append(SlackNameFetcher(slack))  # the console's Slack names (conversations/slack_names.py)
    from bot.analytics_sink import StatsSink
    from bot.outbox import Outbox
    from bot.redis_conn import connect
    from bot.webhooks import Webhooks, WebhookTransport

    senders[Transport.WEBHOOK] = WebhookTransport(timeout=config.api_timeout)  # the client's endpoints, signed
    # the operator's figures, applied from their own records; a first consultation request briefs the operator;
    # a finished diagnosis: diagnosis.completed queued (once per lead and endpoint) for the client's endpoints
    webhooks = Webhooks(Outbox(connect(config), [Transport.WEBHOOK], clock=clock, lease=config.outbox_lease), clock)
    sink = StatsSink(expiry=config.conversation_ttl, on_first_consult=make_consult_hook(config, script, clock=clock),
                     on_finished=webhooks.diagnosis_completed)

    # the outbox invariant's audit, at start and every few minutes (sync: run in a thread, own client)
    audit = Outbox(connect(config), (), clock=clock, lease=config.outbox_lease).audit
    # one connection per attempt in flight, one per queue shard's blocked BRPOP, a few for the loops' chores
    client = connect_async(config, connections=config.worker_concurrency + jobs.QUEUE_SHARDS + 16)
    return Worker(client, senders, figures=sink, clock=clock, lease=config.outbox_lease,
                  max_attempts=config.outbox_max_attempts, concurrency=config.worker_concurrency, faults=faults,
                  audit=audit, chores=chores)


async def _keep_line_name(client: Any, user_id: str, name: str) -> None:
    """A follower's LINE display name, fetched by the worker at follow, kept for the operator's leads."""
    from conversations.analytics import set_name_async

    await set_name_async(client, "line", user_id, name)


def make_consult_hook(config: Config, script: Script, *, client: Any = None,
                      clock: Callable[[], float] = time.time) -> ConsultHook:
    """The hook for the worker's analytics sink: the operator's Slack brief when
    ``CRMBOT_OPERATOR_SLACK_CHANNEL`` is set (Config checks that Slack is configured), else nothing
    (the console's badge still shows the request). ``client``: a redis-py client (default: one
    connected from ``config``). The brief's words and Block Kit are Slack's (:mod:`bot.slack.brief`),
    injected into the core's :class:`bot.operator.ConsultBriefs`."""
    from bot.operator import ConsultBriefs, nobody

    channel = config.operator_slack_channel
    if not channel or not config.slack_enabled:
        return nobody
    from bot.slack.brief import BriefRenderer

    if client is None:
        client = connect(config)
    outbox = Outbox(client, [Transport.SLACK], clock=clock, lease=config.outbox_lease)
    return ConsultBriefs(outbox, BriefRenderer(script, config.locale), channel, clock=clock,
                         workspace=operator_workspace(config))


def build_reminders(svc: Services) -> Any:
    """The quarterly reminder engine over the app's services (bot.reminders.Reminders): the KPI core
    says what a team's reminder says; no Bolt app is needed (the clock builds none)."""
    from bot.followups import PassQuota
    from bot.nudges import Nudges
    from bot.push_budget import PushBudget
    from bot.reminders import Reminders, ReminderSettings
    from conversations.teams import TeamStore

    cfg = svc.config
    budget = PushBudget(svc.redis, cfg.push_budget_month)
    quota = PassQuota(svc.line_quota) if svc.line_quota is not None else None  # shared by follow-ups and nudges
    installed = None
    if svc.kpi is not None and cfg.slack_oauth:  # many workspaces: an uninstalled one's teams are skipped
        from conversations.installations import Installations

        installed = Installations(svc.redis).installed

    return Reminders(
        svc.redis,
        svc.kpi.teams if svc.kpi is not None else TeamStore(svc.redis),
        svc.outbox,
        locale=cfg.locale,
        settings=ReminderSettings(
            hour=cfg.remind_hour, nudges=cfg.remind_nudges, cadence=cfg.remind_cadence, grace=cfg.remind_grace
        ),
        line_quota=svc.line_quota,  # read before LINE reminders are queued (bounded by its timeout)
        installed=installed,
        kpi=svc.kpi,
        bookings=svc.bookings,  # consultation reminders, the day before (and hours before), once each
        budget=budget,  # CRMBOT_PUSH_BUDGET_MONTH: the asked-for reminders count, follow-ups and nudges may be held
        # tips on the owner's point to fix (9:00-20:00, once each), then the nudges: LINE's quota read once a pass
        followups=svc.followups.sender(svc.outbox, budget, quota) if cfg.line_enabled and svc.followups else None,
        nudges=Nudges(svc.redis, svc.outbox, budget, after=cfg.nudge_after_hours * 3600,
                      expiry=cfg.conversation_ttl, quota=quota) if cfg.line_enabled else None,
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
    from bot.metrics import timed_webhooks

    app.wsgi_app = timed_webhooks(app.wsgi_app)  # type: ignore[method-assign]  # webhooks counted and timed
    return app
