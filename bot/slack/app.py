"""Slack: a Bolt app mounted in Flask at POST /slack/events (slash commands, interactivity, events),
and, for many workspaces, Bolt's OAuth install at GET /slack/install and /slack/oauth_redirect.

This module wires the app (:func:`build_slack`) and guards the endpoint (:func:`blueprint`); the
listeners live in :mod:`bot.slack.listeners`, one module per feature, and get their dependencies
as one :class:`bot.slack.deps.Deps`.

Listeners ack first (Bolt then answers Slack at once and runs the rest in its thread pool), so
Slack never waits past its 3 seconds; a modal submission is the exception: it is stored first and
acknowledged after, so a modal closes only on a stored submission (else it stays open, saying so).
The blueprint refuses signing headers of any form Slack never sends; Bolt verifies the signature
and refuses timestamps older than five minutes. Events Slack retries (same event_id) are handled
once, and a modal submission delivered twice is applied once.

One workspace: ``SLACK_BOT_TOKEN``. Many (OAuth, ``SLACK_CLIENT_ID`` / ``SLACK_CLIENT_SECRET``): see
:mod:`bot.slack.oauth`; every request is answered with its own workspace's token.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, current_app, request
from slack_bolt import App
from slack_bolt.adapter.flask import SlackRequestHandler
from slack_bolt.adapter.flask.handler import to_bolt_request, to_flask_response
from slack_bolt.request.internals import parse_body
from slack_sdk import WebClient

from bot.core import Bot
from bot.kpi import KpiCore
from bot.slack import listeners
from bot.slack.deps import Deps
from bot.slack.oauth import (
    CLIENT_KEY,
    INSTALL_PATH,
    InstalledAuthorize,
    LimitedOAuthFlow,
    Redact,
    RefuseUninstalled,
    Rotation,
    oauth_settings,
)
from bot.slack.payload import obj
from bot.slack.results import KpiRenderer
from bot.slack.tokens import OAuthOptions
from conversations.content import Script
from conversations.installations import Installations
from conversations.jobs import LEASE
from conversations.kpi_catalog import Catalog
from conversations.teams import TeamStore

log = logging.getLogger(__name__)


@dataclass
class SlackParts:
    app: App
    handler: SlackRequestHandler
    client: WebClient
    teams: TeamStore
    catalog: Catalog
    deps: Deps
    installations: Installations | None = None  # many workspaces (OAuth): who is installed, with which token


def build_slack(
    *,
    signing_secret: str,
    client: WebClient,
    redis_client: Any,
    bot: Bot,
    script: Script,
    catalog: Catalog,
    teams: TeamStore,
    outbox: Any,
    locale: str,
    clock: Callable[[], float],
    post_lease: float = LEASE,
    oauth: OAuthOptions | None = None,
    kpi: KpiCore | None = None,
    handoff: Any = None,
) -> SlackParts:
    """The Bolt app. ``client``: with one workspace, carries ``SLACK_BOT_TOKEN``; with ``oauth`` (many
    workspaces) it has no token, and each request gets its workspace's from the installation store.
    ``kpi``: the KPI core over ``catalog`` and ``teams`` (the app factory's); None: one is made here,
    its posts rendered by :class:`bot.slack.results.KpiRenderer`, committed with ``post_lease``."""
    if kpi is None:
        kpi = KpiCore(catalog, teams, KpiRenderer(catalog, locale), clock=clock, lease=post_lease)
    elif kpi.catalog is not catalog or kpi.teams is not teams:
        raise ValueError("the KPI core must work over the Slack app's catalog and team store")
    bolt_log = logging.getLogger("crmbot.slack.bolt")
    installations = None
    if oauth is None:
        app = App(
            client=client,
            signing_secret=signing_secret,
            token_verification_enabled=False,
            process_before_response=False,
            logger=bolt_log,
        )
        app.event("app_uninstalled")(_uninstalled_one_workspace)  # the manifest subscribes to them (for OAuth)
        app.event("tokens_revoked")(_uninstalled_one_workspace)
    else:
        installations = Installations(redis_client)
        rotation = Rotation(installations, oauth, client)
        if not any(isinstance(f, Redact) for f in bolt_log.filters):  # the OAuth flow may log a code or state
            bolt_log.addFilter(Redact())
        app = App(
            client=client,
            signing_secret=signing_secret,
            process_before_response=False,
            logger=bolt_log,
            before_authorize=RefuseUninstalled(installations, locale, rotation),
            # an Authorize instance is taken as is (beside the OAuth settings); its None means "not installed"
            authorize=InstalledAuthorize(installations, rotation),  # type: ignore[arg-type]
            # Bolt's flow, with the install's states limited per client address and in all (bot.slack.oauth)
            oauth_flow=LimitedOAuthFlow(logger=bolt_log, settings=oauth_settings(oauth, installations, clock,
                                                                                 bolt_log)),
        )
        app.enable_token_revocation_listeners()  # app_uninstalled, tokens_revoked: the installation is deleted
    deps = Deps(client=client, redis=redis_client, bot=bot, script=script, catalog=catalog, teams=teams, kpi=kpi,
                outbox=outbox, locale=locale, clock=clock, handoff=handoff)
    # Bolt logs a refused request's body at INFO; request bodies never go to our logs
    logging.getLogger("slack_bolt.RequestVerification").setLevel(logging.WARNING)
    listeners.register(app, deps)
    return SlackParts(app, SlackRequestHandler(app), client, teams, catalog, deps, installations)


def _uninstalled_one_workspace(event: dict[str, Any]) -> None:
    log.error("slack: %s: SLACK_BOT_TOKEN no longer works; install the app again and set its new token",
              str(event.get("type"))[:20])


# What Bolt relies on in a request body, as Slack always sends it. Bolt raises on anything else:
# before even checking the signature when the body does not parse or is not an object (a 500), in
# its middleware (a 500), or in a listener after its ack. Such a body cannot be Slack's: refused.
_ID_FIELDS = ("team", "user", "channel", "enterprise")  # an ID, or an object carrying it
# Objects Bolt reads IDs from, recursively (the event, the message acted on, ...).
_NESTED = ("event", "message", "previous_message", "item", "assistant_thread", "view", "function_data", "container",
           "state", "workflow_step")
_NOT_NULL = ("event", "view", "actions", "response_urls", "authorizations")  # read with .get(name, {}) / [0]
_STRING_FIELDS = ("type", "command", "text", "team_id", "channel_id", "user_id", "trigger_id", "event_id",
                  "callback_id", "action_id", "response_url", "api_app_id", "token", "enterprise_id")


def _shape(obj: dict[str, Any], where: str, depth: int = 0) -> str | None:
    """The first field of ``obj`` (or of the objects nested in it) of a type Bolt cannot take."""
    for name in _ID_FIELDS:
        if obj.get(name) is not None and not isinstance(obj[name], str | dict):
            return where + name
    for name in ("authorizations", "actions", "response_urls"):  # lists of objects
        value = obj.get(name)
        if value is not None and not (isinstance(value, list) and all(isinstance(v, dict) for v in value)):
            return where + name
    nested = [(name, obj.get(name)) for name in _NESTED]
    nested.append(("authorizations[0]", (obj.get("authorizations") or [None])[0]))
    for name, value in nested:
        if value is None:
            continue
        if not isinstance(value, dict):
            return where + name
        if depth < 4 and (problem := _shape(value, f"{where}{name}.", depth + 1)):
            return problem
    return None


def malformed(raw: str, content_type: str | None) -> str | None:
    """Why a request body cannot be one of Slack's (so must not reach Bolt), or None."""
    try:
        body = parse_body(raw, content_type)  # exactly as Bolt will parse it
        json.dumps(body, ensure_ascii=False).encode()  # lone surrogates ("\ud800") are not text
    except (ValueError, RecursionError) as e:
        return type(e).__name__
    if not isinstance(body, dict):
        return "not an object"
    for name in _NOT_NULL:
        if name in body and body[name] is None:
            return name
    for name in _STRING_FIELDS:
        if body.get(name) is not None and not isinstance(body[name], str):
            return name
    if problem := _shape(body, ""):
        return problem
    urls = body.get("response_urls")
    if urls is not None and (not isinstance(urls, list) or len(urls) > 1 or not all(isinstance(u, dict) for u in urls)):
        # Bolt 1.x logs "several response_urls" on its context's logger before the context has one (KeyError:
        # a 500); our modals ask for no response_url (response_url_enabled), so Slack never sends more than one
        return "response_urls"
    if body.get("actions") == [] or not all(isinstance(a.get("action_id"), str) for a in body.get("actions") or []):
        return "actions"  # Bolt matches actions[0].action_id
    for name, inner in (("event", "type"), ("view", "callback_id"), ("view", "type")):
        value = obj(body.get(name)).get(inner)
        if value is not None and not isinstance(value, str):
            return f"{name}.{inner}"
    return None


_TIMESTAMP = re.compile(r"[0-9]{1,12}")  # Unix seconds, ASCII digits
_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")  # Slack's v0 HMAC-SHA256, lower-case hex


def unsigned(timestamp: str | None, signature: str | None) -> str | None:
    """Which signing header cannot be Slack's (absent, or not of the one form Slack sends), or None.

    Bolt reads the timestamp with int() and the signature with hmac.compare_digest: a non-ASCII
    signature, or a timestamp that is not a number or too large for a float, raises there (a 500).
    A header of any other form could never verify, so refusing it early changes no answer but those.
    """
    if timestamp is None or not _TIMESTAMP.fullmatch(timestamp):
        return "timestamp"
    if signature is None or not _SIGNATURE.fullmatch(signature):
        return "signature"
    return None


def blueprint() -> Blueprint:
    bp = Blueprint("slack", __name__)

    @bp.post("/slack/events")
    def events() -> Any:
        svc = current_app.extensions["crmbot"]
        if svc.slack is None:
            return "Slack is not configured on this server", 503
        headers = request.headers
        bad_header = unsigned(headers.get("X-Slack-Request-Timestamp"), headers.get("X-Slack-Signature"))
        if bad_header is not None:
            log.warning("slack: request refused: malformed or missing %s header", bad_header)
            return "invalid request", 401
        content_type = request.headers.get("Content-Type")
        problem = malformed(request.get_data(as_text=True), content_type.split(";")[0] if content_type else None)
        if problem is not None:
            log.warning("slack: malformed request body (%s)", problem)
            return "malformed body", 400
        return svc.slack.handler.handle(request)

    @bp.get("/slack/install")
    @bp.get("/slack/oauth_redirect")
    def oauth() -> Any:
        """Bolt's OAuth flow (many workspaces): the install's start, and Slack's redirect back. The start
        is handed the client's address (behind a trusted proxy, X-Forwarded-For's: CRMBOT_TRUST_PROXY),
        which its state is issued to (at most so many a minute per address)."""
        svc = current_app.extensions["crmbot"]
        flow = svc.slack.app.oauth_flow if svc.slack is not None else None
        if flow is None:
            return "Slack's OAuth install is not configured on this server", 404
        if request.path == INSTALL_PATH:
            bolt_request = to_bolt_request(request)
            bolt_request.context[CLIENT_KEY] = request.remote_addr or "unknown"
            return to_flask_response(flow.handle_installation(bolt_request))
        return svc.slack.handler.handle(request)

    return bp
