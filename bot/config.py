"""Configuration from the environment, checked once at start-up.

A bad value raises :class:`ConfigError` naming the variable; nothing here exits the process.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from conversations.content import LOCALES
from conversations.errors import ConfigError
from conversations.jobs import LEASE
from conversations.machine import Settings as MachineSettings
from conversations.store import DEDUPE_TTL

DEFAULT_LINE_API_HOST = "https://api.line.me"
DEFAULT_LINE_API_DATA_HOST = "https://api-data.line.me"  # LINE's host for images (a rich menu's)
DEFAULT_SLACK_API_URL = "https://slack.com/api/"
SLACK_CHANNEL_ID = re.compile(r"[CG][A-Z0-9]{2,30}")


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "crmbot"


@dataclass(frozen=True)
class Config:
    redis_url: str | None = None
    redis_cluster: bool = False  # REDIS_CLUSTER: REDIS_URL names one node of a Redis Cluster
    line_channel_secret: str | None = field(default=None, repr=False)
    line_channel_access_token: str | None = field(default=None, repr=False)
    line_api_host: str = DEFAULT_LINE_API_HOST
    line_api_data_host: str = DEFAULT_LINE_API_DATA_HOST  # LINE_API_DATA_HOST
    # Coexistence with another LINE tool on the same account (README, "Coexistence with another LINE tool").
    # CRMBOT_LINE_FORWARD_URL: crmbot first, the other tool's webhook URL: every accepted body relayed there as is
    # (repr=False: a tool's webhook URL may carry its account's secret).
    line_forward_url: str | None = field(default=None, repr=False)
    # CRMBOT_LINE_COEXIST: "off" (crmbot alone), "first" (the default with a forward URL: answers only its own
    # events, by reply), "second" (behind the other tool's relay: answers only its own events, by push only)
    line_coexist: str = "off"
    # CRMBOT_LINE_BASIC_ID: the account's basic ID ("@123abcde") for `crmbot line links`; unset: asked of LINE
    line_basic_id: str = ""
    slack_signing_secret: str | None = field(default=None, repr=False)
    slack_bot_token: str | None = field(default=None, repr=False)
    # Many workspaces: Slack's OAuth install (SLACK_CLIENT_ID / SLACK_CLIENT_SECRET), instead of one SLACK_BOT_TOKEN
    slack_client_id: str | None = None
    slack_client_secret: str | None = field(default=None, repr=False)
    slack_redirect_uri: str | None = None  # SLACK_REDIRECT_URI: unset, Slack uses the app's one redirect URL
    slack_api_url: str = DEFAULT_SLACK_API_URL
    port: int = 8000
    # The web server's flood limits (bot/web.py). CRMBOT_MAX_CONNECTIONS_PER_CLIENT: open connections per client
    # address, at most half the connection limit (1000); CRMBOT_HEADER_TIMEOUT: seconds for a request's headers;
    # CRMBOT_CONNECTION_CAP_EXEMPT: addresses or networks the cap does not count (a reverse proxy in front)
    max_connections_per_client: int = 64
    header_timeout: float = 10.0
    connection_cap_exempt: tuple[str, ...] = ()
    data_dir: Path = field(default_factory=_default_data_dir)
    locale: str = "ja"
    content_dir: str | None = None
    conversation_ttl: int = int(MachineSettings.expiry)  # CRMBOT_CONVERSATION_TTL: unfinished diagnosis expiry
    resume_after: int = int(MachineSettings.resume_after)  # CRMBOT_RESUME_AFTER: then "continue or start over?"
    dedupe_ttl: int = DEDUPE_TTL  # CRMBOT_DEDUPE_TTL: how long an inbound event id is remembered
    outbox_lease: int = LEASE  # CRMBOT_OUTBOX_LEASE: seconds before an unacknowledged message is retried
    outbox_max_attempts: int = 8  # CRMBOT_OUTBOX_MAX_ATTEMPTS: then the message is parked
    # CRMBOT_API_TIMEOUT: seconds to wait for a LINE or Slack API answer. Longer than the SDKs' 10 s: a
    # reply whose answer is lost cannot be told from one never sent, and waiting (asyncio) costs nothing.
    # Below the lease (30 s) with the longest pacing wait inside an attempt (1 s, MAX_WAIT_IN_ATTEMPT in
    # bot/line/transport.py and bot/slack/transport.py). One exception: a LINE reply waits to the end of its
    # token's window (up to 50 s, past the lease); a recovery meanwhile replies with the same token, which
    # LINE accepts once, and the first attempt, its claim lost, records nothing (the record is fenced).
    api_timeout: float = 20.0
    # CRMBOT_REPLY_UNKNOWN: a LINE reply whose outcome is unknown when its token's window closes (a worker died
    # mid-reply, LINE answered after the window): "push" sends it once more with a short "in case it did not
    # arrive" line (the user may see it twice, marked as such); "park" keeps it for the operator (never twice,
    # but the user may be left without an answer until the operator requeues it).
    reply_unknown: str = "push"
    worker_concurrency: int = 256  # CRMBOT_WORKER_CONCURRENCY: sends in flight per worker process
    # Rate limits shared by all workers (requests a second; None: not limited)
    line_push_rate: float | None = 2000.0  # LINE_PUSH_RATE_PER_SECOND: LINE's limit for push
    line_multicast_rate: float | None = 200.0  # LINE_RATE_PER_SECOND: LINE's limit for multicast
    slack_rate: float | None = 1.0  # SLACK_RATE_PER_SECOND: posts per workspace
    slack_burst: float = 20.0  # SLACK_RATE_BURST
    remind_hour: int = 10  # CRMBOT_REMIND_HOUR: local hour of the quarter's first reminder
    remind_nudges: tuple[int, ...] = (7, 14)  # CRMBOT_REMIND_NUDGES: days after it, for teams yet to report
    remind_cadence: str = "quarterly"  # CRMBOT_REMIND_CADENCE: quarterly | half-yearly
    remind_grace: int = 3 * 86400  # CRMBOT_REMIND_GRACE: a missed reminder is still sent this long after
    nudge_after_hours: float = 24.0  # CRMBOT_NUDGE_AFTER_HOURS: a LINE diagnosis left mid-way is nudged once (0: never)
    push_budget_month: int | None = None  # CRMBOT_PUSH_BUDGET_MONTH: pushes a calendar month (Japan time; None: any)
    # Consultation (the step after the result)
    consult_url: str | None = None  # CRMBOT_CONSULT_URL: the booking page offered with the confirmation
    operator_slack_channel: str | None = None  # CRMBOT_OPERATOR_SLACK_CHANNEL: where the operator's briefs go
    # CRMBOT_OPERATOR_SLACK_TEAM: the workspace of that channel (needed with the OAuth install: its token sends
    # the briefs and thread posts, and only its replies reach owners)
    operator_slack_team: str | None = None
    handoff_hours: float = MachineSettings.handoff / 3600  # CRMBOT_HANDOFF_HOURS: free text left to a person
    privacy_url: str | None = None  # CRMBOT_PRIVACY_URL: the consultancy's privacy policy, named by the note
    fetch_profile: bool = True  # CRMBOT_FETCH_PROFILE: LINE display name fetched at follow (0: hashed ID only)
    booking_page: int = 8  # CRMBOT_BOOKING_PAGE: free consultation slots shown at once in LINE (1-10)
    resources_url: str | None = None  # CRMBOT_RESOURCES_URL: where a follow-up's link path goes (bot/followups.py)
    # The operator console (bot.console)
    console_password: str | None = field(default=None, repr=False)  # CRMBOT_CONSOLE_PASSWORD: enables the login
    console_token: str | None = field(default=None, repr=False)  # CRMBOT_CONSOLE_TOKEN: Bearer for api/ and export/
    secret_key: str | None = field(default=None, repr=False)  # CRMBOT_SECRET_KEY: signs the forms' CSRF tokens
    console_idle_hours: float = 12.0  # CRMBOT_CONSOLE_IDLE_HOURS: a console session unused this long has ended
    console_session_days: float = 7.0  # CRMBOT_CONSOLE_SESSION_DAYS: and this long after its login, whatever
    # CRMBOT_CONSOLE_FIGURES_SECONDS: the funnel's and the overview's figures kept this long per query (0: never)
    console_figures_seconds: float = 5.0
    # CRMBOT_TRUST_PROXY: the address of the proxy in front (waitress believes its X-Forwarded-For / -Proto),
    # "*" for any peer; None: no proxy, those headers are dropped
    trusted_proxy: str | None = None
    proxy_hops: int = 1  # CRMBOT_PROXY_HOPS: proxies in front that each add to X-Forwarded-For
    # Observe (bot/metrics.py, bot/logs.py, bot/errors.py)
    # CRMBOT_METRICS_TOKEN: the Bearer token /metrics (and a worker's or the clock's metrics port) asks for;
    # None: the metrics are open to whoever reaches them (firewall them)
    metrics_token: str | None = field(default=None, repr=False)
    # CRMBOT_METRICS_PORT ("9100" or "127.0.0.1:9100"): where a worker and the clock serve their metrics
    metrics_address: tuple[str, int] | None = None
    log_format: str = "text"  # CRMBOT_LOG_FORMAT: text (one line per record) or json (one object per line)
    sentry_dsn: str | None = field(default=None, repr=False)  # SENTRY_DSN: report errors to Sentry

    @property
    def line_enabled(self) -> bool:
        return bool(self.line_channel_secret and self.line_channel_access_token)

    @property
    def line_owned_only(self) -> bool:
        """LINE is shared with another tool: crmbot answers only the events it owns (conversations.ownership)."""
        return self.line_coexist in ("first", "second")

    @property
    def line_push_only(self) -> bool:
        """Behind another tool's relay, which may have used a reply token: every LINE job pushes."""
        return self.line_coexist == "second"

    @property
    def line_missing(self) -> list[str]:
        return [
            name
            for name, v in (
                ("LINE_CHANNEL_SECRET", self.line_channel_secret),
                ("LINE_CHANNEL_ACCESS_TOKEN", self.line_channel_access_token),
            )
            if not v
        ]

    @property
    def slack_oauth(self) -> bool:
        """Many workspaces: each installs the app by OAuth and is answered with its own token."""
        return bool(self.slack_client_id and self.slack_client_secret)

    @property
    def slack_enabled(self) -> bool:
        return bool(self.slack_signing_secret and (self.slack_bot_token or self.slack_oauth))

    @property
    def slack_missing(self) -> list[str]:
        missing = [] if self.slack_signing_secret else ["SLACK_SIGNING_SECRET"]
        if not (self.slack_bot_token or self.slack_oauth):
            missing.append("SLACK_BOT_TOKEN (or SLACK_CLIENT_ID and SLACK_CLIENT_SECRET)")
        return missing

    def machine_settings(self, qualify: tuple[int, ...] = ()) -> MachineSettings:
        """``qualify``: the script's qualification questions, each one's number of choices (Script.qualify)."""
        return MachineSettings(expiry=self.conversation_ttl, resume_after=self.resume_after,
                               handoff=self.handoff_hours * 3600, consult_url=self.consult_url or "",
                               privacy_url=self.privacy_url or "", qualify=qualify)

    def with_(self, **changes: object) -> Config:
        return replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Config:
        """Every variable unset or empty takes the field's default above (so each default is written once).
        Parsed section by section (each a function below, in the README's order of the settings)."""
        e = _Env(os.environ if env is None else env)
        return cls(**_redis(e), **_line(e), **_slack(e), **_web(e), **_conversations(e), **_delivery(e),
                   **_reminders(e), **_consultation(e), **_console(e), **_observe(e))


class _Env:
    """Reads one environment; every bad value raises :class:`ConfigError` naming its variable."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def text(self, name: str) -> str | None:
        v = self.env.get(name, "").strip()
        return v or None

    def integer(self, name: str, default: int, minimum: int = 1) -> int:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"environment: {name} must be a whole number (got {raw[:20]!r})") from None
        if value < minimum:
            raise ConfigError(f"environment: {name} must be at least {minimum} (got {value})")
        return value

    def url(self, name: str, default: str | None) -> str | None:
        raw = self.text(name)
        if raw is None:
            return default
        if not raw.startswith(("http://", "https://", "redis://", "rediss://", "unix://")):
            raise ConfigError(f"environment: {name} is not a URL (got {raw[:30]!r})")
        return raw

    def rate(self, name: str, default: float) -> float | None:
        """Requests a second: a positive number, or 0 / off for no limit (None)."""
        raw = (self.text(name) or "").lower()
        if not raw:
            return default
        if raw in ("0", "off", "none"):
            return None
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        if not 0 < value < math.inf:
            raise ConfigError(f"environment: {name} must be requests per second, or 0 for no limit "
                              f"(got {raw[:20]!r})")
        return value

    def number(self, name: str, default: float, low: float, high: float, what: str) -> float:
        """A number in [low, high] (a bad or out-of-range value names the variable)."""
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not low <= value <= high:
            raise ConfigError(f"environment: {name} must be {what} (got {raw[:20]!r})")
        return value

    def seconds(self, name: str, default: float) -> float:
        return self.number(name, default, 0.1, 600, "seconds between 0.1 and 600")

    def burst(self, name: str, default: float) -> float:
        return self.number(name, default, 1, math.nextafter(math.inf, 0), "a number of requests, at least 1")

    def flag(self, name: str, default: bool) -> bool:
        raw = (self.text(name) or ("1" if default else "0")).lower()
        if raw not in ("0", "1", "false", "true", "no", "yes", "off", "on"):
            raise ConfigError(f"environment: {name} must be 1 or 0 (got {raw[:20]!r})")
        return raw in ("1", "true", "yes", "on")

    def choice(self, name: str, default: str, allowed: tuple[str, ...], what: str) -> str:
        value = (self.text(name) or default).lower()
        if value not in allowed:
            raise ConfigError(f"environment: {name} must be {what} (got {value!r})")
        return value

    def secret(self, name: str, minimum: int) -> str | None:
        raw = self.text(name)
        if raw is not None and len(raw) < minimum:
            raise ConfigError(f"environment: {name} must be at least {minimum} characters")
        return raw


# ---- the sections: each returns its fields of Config ------------------------------------------------


def _redis(e: _Env) -> dict[str, Any]:
    """REDIS_URL, REDIS_CLUSTER, CRMBOT_DATA_DIR (the embedded Redis's)."""
    redis_url = e.url("REDIS_URL", None)
    if redis_url and not redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError("environment: REDIS_URL must start with redis://, rediss:// or unix://")
    redis_cluster = e.flag("REDIS_CLUSTER", False)
    if redis_cluster and not (redis_url and redis_url.startswith(("redis://", "rediss://"))):
        raise ConfigError("environment: REDIS_CLUSTER=1 needs REDIS_URL set to one node "
                          "(redis://host:port or rediss://host:port)")
    data_dir = e.text("CRMBOT_DATA_DIR")
    return {"redis_url": redis_url, "redis_cluster": redis_cluster,
            "data_dir": Path(data_dir).expanduser() if data_dir else _default_data_dir()}


def _line(e: _Env) -> dict[str, Any]:
    """The LINE channel: its secret and token, the API's hosts, coexistence with another LINE tool."""
    line_host = e.url("LINE_API_HOST", DEFAULT_LINE_API_HOST)
    line_data_host = e.url("LINE_API_DATA_HOST", DEFAULT_LINE_API_DATA_HOST)
    forward_url = _forward_url(e.text("CRMBOT_LINE_FORWARD_URL"))
    coexist = e.choice("CRMBOT_LINE_COEXIST", "first" if forward_url else Config.line_coexist,
                       ("off", "first", "second"), "off, first or second")
    if coexist == "first" and not forward_url:
        raise ConfigError("environment: CRMBOT_LINE_COEXIST=first needs CRMBOT_LINE_FORWARD_URL (the other LINE "
                          "tool's webhook URL, where crmbot relays every webhook)")
    if coexist == "off" and forward_url:
        raise ConfigError("environment: CRMBOT_LINE_FORWARD_URL relays LINE's webhooks to another tool, which "
                          "answers them too: CRMBOT_LINE_COEXIST must be first (or second), not off")
    return {"line_channel_secret": e.text("LINE_CHANNEL_SECRET"),
            "line_channel_access_token": e.text("LINE_CHANNEL_ACCESS_TOKEN"),
            "line_api_host": (line_host or DEFAULT_LINE_API_HOST).rstrip("/"),
            "line_api_data_host": (line_data_host or DEFAULT_LINE_API_DATA_HOST).rstrip("/"),
            "line_forward_url": forward_url, "line_coexist": coexist, "line_basic_id": _basic_id(e)}


def _basic_id(e: _Env) -> str:
    value = e.text("CRMBOT_LINE_BASIC_ID") or ""
    if value and not re.fullmatch(r"@[A-Za-z0-9._-]{1,40}", value):
        raise ConfigError("environment: CRMBOT_LINE_BASIC_ID is the account's basic ID as LINE shows it, e.g. "
                          "@123abcde")
    return value


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")  # where a forward may go over plain http (a local receiver)


def _forward_url(raw: str | None) -> str | None:
    """CRMBOT_LINE_FORWARD_URL: an https:// URL with a host (http:// only to this machine's loopback)."""
    if raw is None:
        return None
    bad = ConfigError("environment: CRMBOT_LINE_FORWARD_URL must be the other LINE tool's webhook URL, "
                      "https://... (http:// only to 127.0.0.1 or localhost), at most 1000 characters")
    if len(raw) > 1000 or any(c.isspace() or not c.isprintable() for c in raw):
        raise bad
    try:
        url = urllib.parse.urlsplit(raw)
        host, _port = url.hostname, url.port  # a port that is not a number raises ValueError
    except ValueError:
        raise bad from None
    if not host or url.scheme not in ("https", "http") or (url.scheme == "http" and host not in LOOPBACK_HOSTS):
        raise bad
    return raw


def _slack(e: _Env) -> dict[str, Any]:
    """Slack: one workspace (SLACK_BOT_TOKEN) or many (the OAuth install), the API's URL."""
    slack_url = e.url("SLACK_API_URL", DEFAULT_SLACK_API_URL) or DEFAULT_SLACK_API_URL
    client_id, client_secret = e.text("SLACK_CLIENT_ID"), e.text("SLACK_CLIENT_SECRET")
    if bool(client_id) != bool(client_secret):
        raise ConfigError("environment: the OAuth install needs both SLACK_CLIENT_ID and SLACK_CLIENT_SECRET "
                          f"({'SLACK_CLIENT_SECRET' if client_id else 'SLACK_CLIENT_ID'} is not set)")
    if client_id and e.text("SLACK_BOT_TOKEN"):
        raise ConfigError("environment: set SLACK_BOT_TOKEN (one workspace) or SLACK_CLIENT_ID and "
                          "SLACK_CLIENT_SECRET (many workspaces, installed by OAuth), not both")
    redirect_uri = e.url("SLACK_REDIRECT_URI", None)
    if redirect_uri and not redirect_uri.startswith(("https://", "http://")):
        raise ConfigError("environment: SLACK_REDIRECT_URI must be an https:// URL")
    return {"slack_signing_secret": e.text("SLACK_SIGNING_SECRET"), "slack_bot_token": e.text("SLACK_BOT_TOKEN"),
            "slack_client_id": client_id, "slack_client_secret": client_secret, "slack_redirect_uri": redirect_uri,
            "slack_api_url": slack_url if slack_url.endswith("/") else slack_url + "/"}


def _web(e: _Env) -> dict[str, Any]:
    """The web server: its port, the connection flood limits, the proxy in front."""
    per_client = e.integer("CRMBOT_MAX_CONNECTIONS_PER_CLIENT", Config.max_connections_per_client)
    if per_client > 500:
        raise ConfigError("environment: CRMBOT_MAX_CONNECTIONS_PER_CLIENT must be at most 500 (half the web "
                          f"server's connection limit, so one client cannot fill it; got {per_client})")
    try:
        cap_exempt = tuple(str(ipaddress.ip_network(x.strip(), strict=False))
                           for x in (e.text("CRMBOT_CONNECTION_CAP_EXEMPT") or "").split(",") if x.strip())
    except ValueError:
        raise ConfigError("environment: CRMBOT_CONNECTION_CAP_EXEMPT must be IP addresses or networks, "
                          "comma-separated (e.g. 10.0.0.5,192.168.1.0/24)") from None
    trusted_proxy = _trusted_proxy(e.text("CRMBOT_TRUST_PROXY"))
    proxy_hops = e.integer("CRMBOT_PROXY_HOPS", Config.proxy_hops, 1)
    if proxy_hops > 10:
        raise ConfigError(f"environment: CRMBOT_PROXY_HOPS must be between 1 and 10 (got {proxy_hops})")
    if e.text("CRMBOT_PROXY_HOPS") and trusted_proxy is None:
        raise ConfigError("environment: CRMBOT_PROXY_HOPS needs CRMBOT_TRUST_PROXY (the proxy in front)")
    return {"port": e.integer("PORT", Config.port), "max_connections_per_client": per_client,
            "header_timeout": e.number("CRMBOT_HEADER_TIMEOUT", Config.header_timeout, 0.1, 60,
                                       "seconds between 0.1 and 60"),
            "connection_cap_exempt": cap_exempt, "trusted_proxy": trusted_proxy, "proxy_hops": proxy_hops}


def _conversations(e: _Env) -> dict[str, Any]:
    """The diagnosis: the script's language and folder, how long a conversation and an event id last."""
    locale = (e.text("CRMBOT_LOCALE") or Config.locale).lower()
    if locale not in LOCALES:
        raise ConfigError(f"environment: CRMBOT_LOCALE must be one of {', '.join(LOCALES)} (got {locale!r})")
    return {"locale": locale, "content_dir": e.text("CRMBOT_CONTENT_DIR"),
            "conversation_ttl": e.integer("CRMBOT_CONVERSATION_TTL", Config.conversation_ttl, 60),
            "resume_after": e.integer("CRMBOT_RESUME_AFTER", Config.resume_after, 1),
            "dedupe_ttl": e.integer("CRMBOT_DEDUPE_TTL", Config.dedupe_ttl, 60)}


def _delivery(e: _Env) -> dict[str, Any]:
    """The worker and its outbox: the lease, attempts, concurrency, the API timeout, the shared rate limits."""
    reply_unknown = e.choice("CRMBOT_REPLY_UNKNOWN", Config.reply_unknown, ("push", "park"), "push or park")
    return {"outbox_lease": e.integer("CRMBOT_OUTBOX_LEASE", Config.outbox_lease, 1),
            "outbox_max_attempts": e.integer("CRMBOT_OUTBOX_MAX_ATTEMPTS", Config.outbox_max_attempts, 1),
            "worker_concurrency": e.integer("CRMBOT_WORKER_CONCURRENCY", Config.worker_concurrency, 1),
            "api_timeout": e.seconds("CRMBOT_API_TIMEOUT", Config.api_timeout),
            "reply_unknown": reply_unknown,
            "line_push_rate": e.rate("LINE_PUSH_RATE_PER_SECOND", 2000.0),
            "line_multicast_rate": e.rate("LINE_RATE_PER_SECOND", 200.0),
            "slack_rate": e.rate("SLACK_RATE_PER_SECOND", 1.0),
            "slack_burst": e.burst("SLACK_RATE_BURST", Config.slack_burst)}


def _reminders(e: _Env) -> dict[str, Any]:
    """The quarterly reminders: hour, nudges, cadence, grace; the drop-off nudge and the push budget."""
    cadence = e.choice("CRMBOT_REMIND_CADENCE", Config.remind_cadence, ("quarterly", "half-yearly"),
                       "quarterly or half-yearly")
    raw_nudges = e.text("CRMBOT_REMIND_NUDGES")
    try:
        nudges = tuple(int(x) for x in raw_nudges.split(",") if x.strip()) if raw_nudges else Config.remind_nudges
    except ValueError:
        raise ConfigError("environment: CRMBOT_REMIND_NUDGES must be days, comma-separated (e.g. 7,14)") from None
    if any(not 1 <= n <= 80 for n in nudges):
        raise ConfigError("environment: CRMBOT_REMIND_NUDGES must be between 1 and 80 days")
    hour = e.integer("CRMBOT_REMIND_HOUR", Config.remind_hour, 0)
    if hour > 23:
        raise ConfigError("environment: CRMBOT_REMIND_HOUR must be 0-23")
    budget = e.text("CRMBOT_PUSH_BUDGET_MONTH")
    return {"remind_hour": hour, "remind_nudges": nudges, "remind_cadence": cadence,
            "remind_grace": e.integer("CRMBOT_REMIND_GRACE", Config.remind_grace, 0),
            "nudge_after_hours": e.number("CRMBOT_NUDGE_AFTER_HOURS", Config.nudge_after_hours, 0, 24 * 30,
                                          "hours between 0 (never) and 720"),
            "push_budget_month": None if budget is None else e.integer("CRMBOT_PUSH_BUDGET_MONTH", 0, 0)}


def _consultation(e: _Env) -> dict[str, Any]:
    """The step after the result: the booking page, the operator's channel, the hand-off, the LINE name."""
    consult_url, privacy_url = e.text("CRMBOT_CONSULT_URL"), e.text("CRMBOT_PRIVACY_URL")
    resources_url = e.text("CRMBOT_RESOURCES_URL")
    for name, url in (("CRMBOT_CONSULT_URL", consult_url), ("CRMBOT_PRIVACY_URL", privacy_url),
                      ("CRMBOT_RESOURCES_URL", resources_url)):
        if url is not None and (not url.startswith(("https://", "http://")) or len(url) > 1000
                                or any(c.isspace() for c in url)):
            raise ConfigError(f"environment: {name} must be a web page address (https://...), "
                              "at most 1000 characters")
    operator_channel = e.text("CRMBOT_OPERATOR_SLACK_CHANNEL")
    if operator_channel is not None:
        if not SLACK_CHANNEL_ID.fullmatch(operator_channel):
            raise ConfigError("environment: CRMBOT_OPERATOR_SLACK_CHANNEL must be a Slack channel ID "
                              f"(like C0123ABCD; got {operator_channel[:20]!r})")
        oauth = bool(e.text("SLACK_CLIENT_ID"))
        if not (e.text("SLACK_SIGNING_SECRET") and (e.text("SLACK_BOT_TOKEN") or oauth)):
            raise ConfigError("environment: CRMBOT_OPERATOR_SLACK_CHANNEL needs Slack configured "
                              "(SLACK_SIGNING_SECRET and SLACK_BOT_TOKEN)")
        if oauth and not e.text("CRMBOT_OPERATOR_SLACK_TEAM"):
            raise ConfigError("environment: with the OAuth install (SLACK_CLIENT_ID), CRMBOT_OPERATOR_SLACK_CHANNEL "
                              "needs CRMBOT_OPERATOR_SLACK_TEAM: the workspace ID of that channel (like T0123ABCD)")
    operator_team = e.text("CRMBOT_OPERATOR_SLACK_TEAM")
    if operator_team is not None and not (operator_team.isascii() and operator_team.isalnum()
                                          and operator_team[:1] in ("T", "E") and len(operator_team) <= 32):
        raise ConfigError("environment: CRMBOT_OPERATOR_SLACK_TEAM must be a Slack workspace ID "
                          f"(like T0123ABCD; got {operator_team[:20]!r})")
    raw_handoff = e.text("CRMBOT_HANDOFF_HOURS")
    handoff = Config.handoff_hours
    if raw_handoff is not None:
        try:
            handoff = float(raw_handoff)
        except ValueError:
            handoff = -1.0
        if not 0 <= handoff <= 24 * 365:
            raise ConfigError("environment: CRMBOT_HANDOFF_HOURS must be hours between 0 and 8760, "
                              f"0 for none (got {raw_handoff[:20]!r})")
    page = e.integer("CRMBOT_BOOKING_PAGE", Config.booking_page, 1)
    if page > 10:
        raise ConfigError(f"environment: CRMBOT_BOOKING_PAGE must be 1-10 (got {page})")
    return {"consult_url": consult_url, "privacy_url": privacy_url, "operator_slack_channel": operator_channel,
            "operator_slack_team": operator_team, "handoff_hours": handoff,
            "fetch_profile": e.flag("CRMBOT_FETCH_PROFILE", True), "booking_page": page,
            "resources_url": resources_url}


def _console(e: _Env) -> dict[str, Any]:
    """The operator console: its password, token, CSRF key, session lifetimes and its figures' cache."""
    return {"console_password": e.secret("CRMBOT_CONSOLE_PASSWORD", 8),
            "console_token": e.secret("CRMBOT_CONSOLE_TOKEN", 16),
            "secret_key": e.secret("CRMBOT_SECRET_KEY", 16),
            "console_idle_hours": e.number("CRMBOT_CONSOLE_IDLE_HOURS", Config.console_idle_hours, 0.1, 720,
                                           "hours between 0.1 and 720"),
            "console_session_days": e.number("CRMBOT_CONSOLE_SESSION_DAYS", Config.console_session_days, 0.1, 365,
                                             "days between 0.1 and 365"),
            "console_figures_seconds": e.number("CRMBOT_CONSOLE_FIGURES_SECONDS", Config.console_figures_seconds,
                                                0, 300, "seconds between 0 and 300")}


def _observe(e: _Env) -> dict[str, Any]:
    """Observe: the metrics' token and port, the log format, Sentry."""
    dsn = e.text("SENTRY_DSN")
    if dsn is not None and not dsn.startswith(("https://", "http://")):
        raise ConfigError("environment: SENTRY_DSN must be the project's DSN from Sentry (https://...@.../...)")
    return {"metrics_token": e.secret("CRMBOT_METRICS_TOKEN", 16),
            "metrics_address": _metrics_address(e.text("CRMBOT_METRICS_PORT")),
            "log_format": e.choice("CRMBOT_LOG_FORMAT", Config.log_format, ("text", "json"), "text or json"),
            "sentry_dsn": dsn}


def _metrics_address(raw: str | None) -> tuple[str, int] | None:
    """CRMBOT_METRICS_PORT: a port (every interface), or HOST:PORT ([::1]:9100 for IPv6)."""
    if raw is None:
        return None
    host, sep, port = raw.rpartition(":")
    host = host.strip("[]") if sep else "0.0.0.0"
    try:
        number = int(port)
        if host:
            ipaddress.ip_address(host)
    except ValueError:
        number = -1
    if not 1 <= number <= 65535 or not host:
        raise ConfigError("environment: CRMBOT_METRICS_PORT must be a port (9100) or an IP address and a port "
                          f"(127.0.0.1:9100; got {raw[:40]!r})")
    return host, number


def _trusted_proxy(raw: str | None) -> str | None:
    """CRMBOT_TRUST_PROXY: 0 (or unset): no proxy; 1: the proxy on this machine (127.0.0.1); an IP address:
    the proxy there; *: any peer (a platform's router whose address changes; the app must then be
    reachable only through it)."""
    value = (raw or "0").lower()
    if value in ("0", "false", "no", "off"):
        return None
    if value in ("1", "true", "yes", "on"):
        return "127.0.0.1"
    if value == "*":
        return "*"
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ConfigError("environment: CRMBOT_TRUST_PROXY must be 0, 1 (a proxy on this machine), the proxy's "
                          f"IP address, or * (got {value[:40]!r})") from None
