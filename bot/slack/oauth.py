"""Many workspaces: Slack's OAuth install, and each workspace answered with its own bot token.

With ``SLACK_CLIENT_ID`` and ``SLACK_CLIENT_SECRET`` set (instead of ``SLACK_BOT_TOKEN``), the Bolt app
is built with Bolt's OAuth flow (:func:`oauth_settings`): ``GET /slack/install`` sends the browser to
Slack's consent page with a one-time state (kept in Redis, :class:`RedisStateStore`), and
``GET /slack/oauth_redirect`` exchanges the code for the workspace's bot token (``oauth.v2.access``)
and stores the installation (:class:`RedisInstallationStore`, slack_sdk's ``InstallationStore`` over
:mod:`conversations.installations`).

Requests (web tier): :class:`RefuseUninstalled` runs before Bolt's authorization and answers a
request from a workspace without an installation itself (ignored; a slash command is told to
reinstall), without any call to Slack. :class:`InstalledAuthorize` (Bolt's ``Authorize``) then gives
the request the workspace's token, so the listeners' client (``context.client``, handed to them in
``Deps.client``) opens modals with it. It builds Bolt's ``AuthorizeResult`` from the stored IDs (no
``auth.test`` per request: opening a modal stays the web tier's only call to Slack, apart from a
token refresh).

Deliveries (worker): :class:`bot.slack.tokens.InstalledTokens` finds a job's workspace token with the
worker's redis.asyncio client, caches it briefly, and refreshes it when it expires.

Token rotation (both): a token that expires within :data:`ROTATE_BEFORE` is exchanged with slack_sdk's
token rotator (the one Bolt uses) by one process at a time, and stored by compare-and-set: one
algorithm for both tiers, :func:`bot.slack.tokens.rotate` (the web tier's :class:`Rotation` is defined
there too). Expiry is real time, as Slack's.

Uninstalling (``app_uninstalled``; ``tokens_revoked`` for the bot) deletes the installation with
Bolt's built-in listeners: the worker then parks that workspace's jobs ("not installed") and the
reminder pass skips its teams until the app is installed again.
"""

from __future__ import annotations

import html
import logging
import re
import secrets
import time
from collections.abc import Callable
from datetime import datetime
from logging import Logger
from typing import Any

from slack_bolt import BoltRequest, BoltResponse
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.authorization.authorize import Authorize
from slack_bolt.context.context import BoltContext
from slack_bolt.error import BoltError
from slack_bolt.middleware import Middleware
from slack_bolt.oauth import OAuthFlow
from slack_bolt.oauth.oauth_settings import OAuthSettings
from slack_sdk import WebClient
from slack_sdk.oauth import InstallationStore, OAuthStateStore
from slack_sdk.oauth.installation_store import Bot, Installation

from bot.slack.tokens import ROTATE_BEFORE, OAuthOptions, Rotation, TokenBusy, sdk_bot
from bot.slack.unavailable import answer
from conversations import keys
from conversations.errors import InvalidInput, StoreUnavailable
from conversations.installations import MAX_STATES, STATES_PER_CLIENT, BotInstall, Installations

log = logging.getLogger(__name__)

# The bot scopes an install asks for: slack-manifest.yml's oauth_config.scopes.bot (a test keeps them equal).
BOT_SCOPES = ("commands", "chat:write", "im:write", "im:history", "channels:read", "channels:history",
              "groups:read", "groups:history", "users:read", "files:write", "reactions:write")
INSTALL_PATH = "/slack/install"
REDIRECT_PATH = "/slack/oauth_redirect"
STATE_TTL = 600  # seconds an install's state is good for (Slack's consent page, then the redirect)
CONTEXT_KEY = "crmbot_install"  # the request's BotInstall, from RefuseUninstalled to InstalledAuthorize
EXEMPT_EVENTS = ("app_uninstalled", "tokens_revoked")  # handled whether or not the installation is there

NOT_INSTALLED = {
    "ja": "このワークスペースには CRM KPI がインストールされていません。管理者に再インストールを依頼してください。",
    "en": "CRM KPI is not installed in this workspace. Ask an admin to install it again.",
}


# ---- slack_sdk models <-> our records ---------------------------------------------------------------

_BOT_FIELDS = {"bot_token", "bot_id", "bot_user_id", "bot_scopes", "bot_refresh_token", "bot_token_expires_at"}


def _workspace_of(enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool | None) -> str:
    """The workspace an installation is kept under. An org-wide install (Enterprise Grid, no team) is
    not supported: refused here (the manifest's org_deploy_enabled is true only because custom steps,
    the Workflow Builder step, need an org-ready app)."""
    if is_enterprise_install or not team_id:
        raise BoltError("org-wide (Enterprise Grid) installs are not supported: install the app per workspace")
    return keys.slack_id(team_id)


def bot_install(bot: Bot | Installation) -> BotInstall:
    workspace = _workspace_of(bot.enterprise_id, bot.team_id, bot.is_enterprise_install)
    if not bot.bot_token:
        raise BoltError("an installation without a bot token")
    return BotInstall(
        workspace=workspace, token=bot.bot_token, bot_id=bot.bot_id or "", bot_user_id=bot.bot_user_id or "",
        scopes=tuple(bot.bot_scopes or ()), refresh_token=bot.bot_refresh_token,
        expires_at=bot.bot_token_expires_at, app_id=bot.app_id, enterprise_id=bot.enterprise_id,
        team_name=bot.team_name, installed_at=float(bot.installed_at), extra=dict(bot.custom_values or {}),
    )


def installer_record(installation: Installation) -> dict[str, Any]:
    """The installer's side of an installation, as JSON values (the bot's is kept once, in the BotInstall)."""
    record: dict[str, Any] = {}
    for name, value in installation.to_dict_for_copying().items():
        if name in _BOT_FIELDS or value is None:
            continue
        record[name] = value.timestamp() if isinstance(value, datetime) else value
    return record


def sdk_installation(bot: BotInstall | None, installer: dict[str, Any] | None) -> Installation | None:
    if bot is None and installer is None:
        return None
    fields: dict[str, Any] = dict(installer or {})
    fields.setdefault("user_id", "")
    if bot is not None:
        fields |= {"app_id": bot.app_id, "enterprise_id": bot.enterprise_id, "team_id": bot.workspace,
                   "team_name": bot.team_name, "bot_token": bot.token, "bot_id": bot.bot_id,
                   "bot_user_id": bot.bot_user_id, "bot_scopes": list(bot.scopes),
                   "bot_refresh_token": bot.refresh_token, "bot_token_expires_at": bot.expires_at,
                   "installed_at": bot.installed_at}
    return Installation(**fields)


# ---- Bolt's stores ------------------------------------------------------------------------------------


class RedisInstallationStore(InstallationStore):
    """slack_sdk's InstallationStore over :class:`conversations.installations.Installations`: what Bolt's
    OAuth flow saves an install with and its uninstall listeners delete (bot installs per workspace)."""

    def __init__(self, installations: Installations) -> None:
        self.installations = installations

    @property
    def logger(self) -> Logger:
        return log

    def save(self, installation: Installation) -> None:
        workspace = _workspace_of(installation.enterprise_id, installation.team_id,
                                  installation.is_enterprise_install)
        bot = bot_install(installation) if installation.bot_token else None
        user = installation.user_id or None
        try:
            self.installations.save(workspace, bot, installer_record(installation), user)
        except (StoreUnavailable, InvalidInput) as e:
            raise BoltError(f"the installation could not be stored ({e})") from e  # Bolt's failure page
        log.info("slack: installed in workspace %s (%s)", workspace,
                 "token rotation" if bot and bot.refresh_token else "no token rotation")

    def save_bot(self, bot: Bot) -> None:
        record = bot_install(bot)
        self.installations.save(record.workspace, record)

    def find_bot(self, *, enterprise_id: str | None, team_id: str | None,
                 is_enterprise_install: bool | None = False) -> Bot | None:
        try:
            workspace = _workspace_of(enterprise_id, team_id, is_enterprise_install)
        except (BoltError, InvalidInput):
            return None
        bot = self.installations.bot(workspace)
        return sdk_bot(bot) if bot is not None else None

    def find_installation(self, *, enterprise_id: str | None, team_id: str | None, user_id: str | None = None,
                          is_enterprise_install: bool | None = False) -> Installation | None:
        try:
            workspace = _workspace_of(enterprise_id, team_id, is_enterprise_install)
            installer = self.installations.installer(workspace, user_id)
        except (BoltError, InvalidInput):
            return None
        if user_id is not None and installer is None:
            return None
        return sdk_installation(self.installations.bot(workspace), installer)

    def delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        try:
            workspace = _workspace_of(enterprise_id, team_id, False)
        except (BoltError, InvalidInput):
            return
        if self.installations.delete_bot(workspace):
            log.warning("slack: the bot token of workspace %s was revoked: its jobs are parked and its "
                        "reminders paused until the app is installed again", workspace)

    def delete_installation(self, *, enterprise_id: str | None, team_id: str | None,
                            user_id: str | None = None) -> None:
        try:
            self.installations.delete_installers(_workspace_of(enterprise_id, team_id, False), user_id)
        except (BoltError, InvalidInput):
            return

    def delete_all(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        try:
            workspace = _workspace_of(enterprise_id, team_id, False)
        except (BoltError, InvalidInput):
            return
        if self.installations.delete_all(workspace):
            log.warning("slack: the app was uninstalled from workspace %s: its installation is deleted, its "
                        "jobs are parked and its reminders paused until it is installed again", workspace)


class RedisStateStore(OAuthStateStore):
    """One-time OAuth states in Redis: issued by /slack/install, consumed once by /slack/oauth_redirect
    within ``ttl`` seconds (by the injected clock), whichever web process serves either request. At most
    ``per_client`` states a minute per client address, and ``most`` outstanding in all."""

    def __init__(self, installations: Installations, clock: Callable[[], float], ttl: int = STATE_TTL, *,
                 per_client: int = STATES_PER_CLIENT, most: int = MAX_STATES) -> None:
        self.installations = installations
        self.clock = clock
        self.ttl = ttl
        self.per_client = per_client
        self.most = most

    @property
    def logger(self) -> Logger:
        return log

    def issue(self, *args: Any, client: str = "", **kwargs: Any) -> str:
        """A new state for ``client`` (the browser's address); :class:`InstallRefused` past the limits."""
        while True:
            state = secrets.token_urlsafe(32)
            issue = self.installations.issue_state(state, self.clock(), self.ttl, client=client,
                                                   per_client=self.per_client, most=self.most)
            if issue:
                return state
            if issue.refused:
                raise InstallRefused(issue.refused, issue.retry_after)

    def consume(self, state: str) -> bool:
        try:
            ok = self.installations.consume_state(state, self.clock(), self.ttl)
        except InvalidInput:
            ok = False
        if not ok:
            log.warning("slack: an OAuth redirect with an unknown, used or expired state refused")
        return ok


def oauth_settings(options: OAuthOptions, installations: Installations, clock: Callable[[], float],
                   logger: Logger) -> OAuthSettings:
    """Bolt's OAuth flow: /slack/install redirects to Slack's consent page (no page of our own)."""
    return OAuthSettings(
        client_id=options.client_id,
        client_secret=options.client_secret,
        scopes=list(BOT_SCOPES),
        user_scopes=[],
        redirect_uri=options.redirect_uri,
        install_path=INSTALL_PATH,
        redirect_uri_path=REDIRECT_PATH,
        install_page_rendering_enabled=False,
        installation_store=RedisInstallationStore(installations),
        installation_store_bot_only=True,
        token_rotation_expiration_minutes=int(ROTATE_BEFORE // 60),
        state_store=RedisStateStore(installations, clock, STATE_TTL),
        state_expiration_seconds=STATE_TTL,
        logger=logger,
    )


# ---- the install's limits: per client address, and in all ---------------------------------------------

CLIENT_KEY = "crmbot_client"  # the browser's address, put in the BoltRequest's context by the Flask route

REFUSED_PAGES = {
    "client": (429, "アクセスが続いたため、少しお待ちいただいています。1分ほどしてから、もう一度お試しください。",
               "Too many install attempts from your address. Please wait a minute and try again."),
    "full": (503, "ただいまインストールの受付が混み合っています。しばらくしてから、もう一度お試しください。",
             "Too many installs are in progress right now. Please try again in a few minutes."),
    "store": (503, "一時的に利用できません。少し時間をおいてもう一度お試しください。",
              "Temporarily unavailable, please try again in a moment."),
}


class InstallRefused(Exception):
    """An install state not issued: ``reason`` "client" (the address had its share of the minute) or
    "full" (too many outstanding); raised by :class:`RedisStateStore`, answered by :class:`LimitedOAuthFlow`."""

    def __init__(self, reason: str, retry_after: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


def refused_page(reason: str, retry_after: int) -> BoltResponse:
    """A short page (Japanese, then English) with its status and Retry-After; no store, no Slack call."""
    status, ja, en = REFUSED_PAGES[reason]
    body = (f'<!doctype html><html lang="ja"><head><meta charset="utf-8"><title>CRM KPI</title></head>'
            f'<body><p>{html.escape(ja)}</p><p lang="en">{html.escape(en)}</p></body></html>')
    return BoltResponse(status=status, body=body, headers={"Content-Type": "text/html; charset=utf-8",
                                                           "Retry-After": str(max(1, retry_after)),
                                                           "Cache-Control": "no-store"})


class LimitedOAuthFlow(OAuthFlow):
    """Bolt's OAuth flow, with its state issued per client address (:data:`CLIENT_KEY` in the request's
    context) within the limits of :meth:`Installations.issue_state`: a client past its share is answered
    429, a full store 503, each with a short page and Retry-After; a store that does not answer, 503
    (on the redirect too), never a 500."""

    def __init__(self, *, client: WebClient | None = None, logger: Logger | None = None,
                 settings: OAuthSettings) -> None:
        super().__init__(client=client, logger=logger, settings=settings)
        self._warned: dict[str, float] = {}  # reason -> when last logged (monotonic)

    def issue_new_state(self, request: BoltRequest) -> str:
        client = request.context.get(CLIENT_KEY)
        store = self.settings.state_store
        if isinstance(store, RedisStateStore):
            return store.issue(client=client if isinstance(client, str) else "")
        return super().issue_new_state(request)

    def handle_installation(self, request: BoltRequest) -> BoltResponse:
        try:
            return super().handle_installation(request)
        except InstallRefused as e:
            self._warn(e.reason, "slack: /slack/install refused: "
                       + ("a client address over its install states a minute (answered 429)" if e.reason == "client"
                          else "too many install states outstanding (answered 503)"))
            return refused_page(e.reason, e.retry_after)
        except StoreUnavailable as e:
            log.error("slack: /slack/install: store unavailable (%s)", e)
            return refused_page("store", 30)

    def handle_callback(self, request: BoltRequest) -> BoltResponse:
        try:
            return super().handle_callback(request)
        except StoreUnavailable as e:
            log.error("slack: /slack/oauth_redirect: store unavailable (%s)", e)
            return refused_page("store", 30)

    def _warn(self, reason: str, message: str) -> None:
        """At most one line a minute per reason: a client hammering the page cannot flood the log."""
        now = time.monotonic()
        if now - self._warned.get(reason, -60.0) >= 60.0:
            self._warned[reason] = now
            log.warning("%s", message)


# ---- the web tier: refuse what comes from uninstalled workspaces, authorize the rest -----------------


def _exempt(body: Any) -> bool:
    """Requests Bolt answers without a workspace (url_verification, ssl_check) and the uninstall events."""
    if not isinstance(body, dict):
        return True
    if body.get("type") in ("url_verification", "ssl_check"):
        return True
    event = body.get("event")
    return body.get("type") == "event_callback" and isinstance(event, dict) and event.get("type") in EXEMPT_EVENTS


class RefuseUninstalled(Middleware):
    """Runs after the signature check, before Bolt's authorization: a request from a workspace without
    an installation (uninstalled, or never installed) is answered here, 200 (Slack must not retry it):
    a slash command with "not installed, ask an admin to install it again", anything else empty.
    Bolt's own answer would post to the response_url, a call to Slack the web tier does not make."""

    def __init__(self, installations: Installations, locale: str, rotation: Rotation | None = None) -> None:
        self.installations = installations
        self.locale = locale
        self.rotation = rotation  # a token that expires soon is refreshed here, where the request can be answered

    def process(self, *, req: BoltRequest, resp: BoltResponse, next: Callable[[], BoltResponse]) -> Any:
        if _exempt(req.body):
            return next()
        workspace = req.context.team_id
        bot = None
        try:
            if workspace and not req.context.is_enterprise_install:
                bot = self.installations.bot(keys.slack_id(workspace))
            if bot is not None and self.rotation is not None:
                bot = self.rotation.current(bot)
        except InvalidInput:
            bot = None
        except StoreUnavailable as e:  # a command or a click is told so at once; an event gets 503 (retried)
            return answer(req.body, self.locale, f"store unavailable ({e})")
        except TokenBusy:  # expired, and another process's refresh did not land within a second
            return answer(req.body, self.locale, "the workspace's token is being refreshed")
        if bot is None:
            log.warning("slack: a request from workspace %s, where the app is not installed, ignored",
                        (workspace or "?")[:32])
            if isinstance(req.body, dict) and isinstance(req.body.get("command"), str):
                return BoltResponse(status=200, body=NOT_INSTALLED.get(self.locale, NOT_INSTALLED["en"]))
            return BoltResponse(status=200, body="")
        req.context[CONTEXT_KEY] = bot
        return next()


class InstalledAuthorize(Authorize):
    """Bolt's authorize for many workspaces: the request's workspace token from the installation
    (read by :class:`RefuseUninstalled`), refreshed if it expires soon. Bolt then gives the listeners
    a client with that token."""

    token_rotation_expiration_minutes: int  # Bolt sets it from the OAuth settings (the rotation has its own)

    def __init__(self, installations: Installations, rotation: Rotation) -> None:
        super().__init__()
        self.installations = installations
        self.rotation = rotation

    def __call__(self, *, context: BoltContext, enterprise_id: str | None, team_id: str | None,
                 user_id: str | None, actor_enterprise_id: str | None = None, actor_team_id: str | None = None,
                 actor_user_id: str | None = None) -> AuthorizeResult | None:
        bot = context.get(CONTEXT_KEY)  # read (and refreshed if need be) by RefuseUninstalled
        if not isinstance(bot, BotInstall):
            try:
                bot = self.installations.bot(keys.slack_id(team_id)) if team_id else None
            except InvalidInput:
                bot = None
            bot = self.rotation.current(bot) if bot is not None else None
        if bot is None:
            return None
        return AuthorizeResult(enterprise_id=bot.enterprise_id or enterprise_id, team_id=bot.workspace,
                               team=bot.team_name, bot_user_id=bot.bot_user_id or None, bot_id=bot.bot_id or None,
                               bot_token=bot.token, bot_scopes=list(bot.scopes), user_id=user_id)


# ---- logs: Bolt's OAuth flow may log the code, the state or a token -----------------------------------

_TOKEN = re.compile(r"xox[a-z](?:\.xox[a-z])?-[A-Za-z0-9-]+")
_PARAM = re.compile(r"(\b(?:code|state|refresh_token|client_secret|access_token|token)\b['\"]?\s*[:=]\s*\[?\s*['\"]?)"
                    r"[^'\"\s,&\]}]+")


def redact(message: str) -> str:
    return _PARAM.sub(r"\1[redacted]", _TOKEN.sub("xox-[redacted]", message))


class Redact(logging.Filter):
    """Rewrites a record's message without OAuth codes, states and tokens (Bolt's OAuth flow logs
    the redirect's query, and a refused code)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            return True
        record.msg, record.args = redact(message), ()
        return True
