"""Configuration from the environment, checked once at start-up.

A bad value raises :class:`ConfigError` naming the variable; nothing here exits the process.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

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
    # Below the lease (30 s) with the longest pacing wait (5 s), so no attempt outlives its claim.
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
    # Consultation (the step after the result)
    consult_url: str | None = None  # CRMBOT_CONSULT_URL: the booking page offered with the confirmation
    operator_slack_channel: str | None = None  # CRMBOT_OPERATOR_SLACK_CHANNEL: where the operator's briefs go
    handoff_hours: float = MachineSettings.handoff / 3600  # CRMBOT_HANDOFF_HOURS: free text left to a person
    fetch_profile: bool = True  # CRMBOT_FETCH_PROFILE: LINE display name fetched at follow (0: hashed ID only)
    # The operator console (bot.console)
    console_password: str | None = field(default=None, repr=False)  # CRMBOT_CONSOLE_PASSWORD: enables the login
    console_token: str | None = field(default=None, repr=False)  # CRMBOT_CONSOLE_TOKEN: Bearer for api/ and export/
    secret_key: str | None = field(default=None, repr=False)  # CRMBOT_SECRET_KEY: signs the forms' CSRF tokens
    console_idle_hours: float = 12.0  # CRMBOT_CONSOLE_IDLE_HOURS: a console session unused this long has ended
    console_session_days: float = 7.0  # CRMBOT_CONSOLE_SESSION_DAYS: and this long after its login, whatever
    # CRMBOT_TRUST_PROXY: the address of the proxy in front (waitress believes its X-Forwarded-For / -Proto),
    # "*" for any peer; None: no proxy, those headers are dropped
    trusted_proxy: str | None = None
    proxy_hops: int = 1  # CRMBOT_PROXY_HOPS: proxies in front that each add to X-Forwarded-For

    @property
    def line_enabled(self) -> bool:
        return bool(self.line_channel_secret and self.line_channel_access_token)

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

    def machine_settings(self) -> MachineSettings:
        return MachineSettings(expiry=self.conversation_ttl, resume_after=self.resume_after,
                               handoff=self.handoff_hours * 3600, consult_url=self.consult_url or "")

    def with_(self, **changes: object) -> Config:
        return replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Config:
        """Every variable unset or empty takes the field's default above (so each default is written once)."""
        env = os.environ if env is None else env

        def text(name: str) -> str | None:
            v = env.get(name, "").strip()
            return v or None

        def integer(name: str, default: int, minimum: int = 1) -> int:
            raw = text(name)
            if raw is None:
                return default
            try:
                value = int(raw)
            except ValueError:
                raise ConfigError(f"environment: {name} must be a whole number (got {raw[:20]!r})") from None
            if value < minimum:
                raise ConfigError(f"environment: {name} must be at least {minimum} (got {value})")
            return value

        def url(name: str, default: str | None) -> str | None:
            raw = text(name)
            if raw is None:
                return default
            if not raw.startswith(("http://", "https://", "redis://", "rediss://", "unix://")):
                raise ConfigError(f"environment: {name} is not a URL (got {raw[:30]!r})")
            return raw

        def rate(name: str, default: float) -> float | None:
            """Requests a second: a positive number, or 0 / off for no limit (None)."""
            raw = (text(name) or "").lower()
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

        def number(name: str, default: float, low: float, high: float, what: str) -> float:
            """A number in [low, high] (a bad or out-of-range value names the variable)."""
            raw = text(name)
            if raw is None:
                return default
            try:
                value = float(raw)
            except ValueError:
                value = math.nan
            if not low <= value <= high:
                raise ConfigError(f"environment: {name} must be {what} (got {raw[:20]!r})")
            return value

        def seconds(name: str, default: float) -> float:
            return number(name, default, 0.1, 600, "seconds between 0.1 and 600")

        def burst(name: str, default: float) -> float:
            return number(name, default, 1, math.nextafter(math.inf, 0), "a number of requests, at least 1")

        def flag(name: str, default: bool) -> bool:
            raw = (text(name) or ("1" if default else "0")).lower()
            if raw not in ("0", "1", "false", "true", "no", "yes", "off", "on"):
                raise ConfigError(f"environment: {name} must be 1 or 0 (got {raw[:20]!r})")
            return raw in ("1", "true", "yes", "on")

        locale = (text("CRMBOT_LOCALE") or cls.locale).lower()
        if locale not in LOCALES:
            raise ConfigError(f"environment: CRMBOT_LOCALE must be one of {', '.join(LOCALES)} (got {locale!r})")
        redis_url = url("REDIS_URL", None)
        if redis_url and not redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError("environment: REDIS_URL must start with redis://, rediss:// or unix://")
        redis_cluster = flag("REDIS_CLUSTER", False)
        if redis_cluster and not (redis_url and redis_url.startswith(("redis://", "rediss://"))):
            raise ConfigError("environment: REDIS_CLUSTER=1 needs REDIS_URL set to one node "
                              "(redis://host:port or rediss://host:port)")
        line_host = url("LINE_API_HOST", DEFAULT_LINE_API_HOST)
        line_data_host = url("LINE_API_DATA_HOST", DEFAULT_LINE_API_DATA_HOST)
        cadence = (text("CRMBOT_REMIND_CADENCE") or cls.remind_cadence).lower()
        if cadence not in ("quarterly", "half-yearly"):
            raise ConfigError(f"environment: CRMBOT_REMIND_CADENCE must be quarterly or half-yearly (got {cadence!r})")
        reply_unknown = (text("CRMBOT_REPLY_UNKNOWN") or cls.reply_unknown).lower()
        if reply_unknown not in ("push", "park"):
            raise ConfigError(f"environment: CRMBOT_REPLY_UNKNOWN must be push or park (got {reply_unknown!r})")
        raw_nudges = text("CRMBOT_REMIND_NUDGES")
        try:
            nudges = tuple(int(x) for x in raw_nudges.split(",") if x.strip()) if raw_nudges else cls.remind_nudges
        except ValueError:
            raise ConfigError("environment: CRMBOT_REMIND_NUDGES must be days, comma-separated (e.g. 7,14)") from None
        if any(not 1 <= n <= 80 for n in nudges):
            raise ConfigError("environment: CRMBOT_REMIND_NUDGES must be between 1 and 80 days")
        hour = integer("CRMBOT_REMIND_HOUR", cls.remind_hour, 0)
        if hour > 23:
            raise ConfigError("environment: CRMBOT_REMIND_HOUR must be 0-23")
        slack_url = url("SLACK_API_URL", DEFAULT_SLACK_API_URL) or DEFAULT_SLACK_API_URL
        consult_url = text("CRMBOT_CONSULT_URL")
        if consult_url is not None and (not consult_url.startswith(("https://", "http://")) or len(consult_url) > 1000
                                        or any(c.isspace() for c in consult_url)):
            raise ConfigError("environment: CRMBOT_CONSULT_URL must be a web page address (https://...), "
                              "at most 1000 characters")
        operator_channel = text("CRMBOT_OPERATOR_SLACK_CHANNEL")
        if operator_channel is not None:
            if not SLACK_CHANNEL_ID.fullmatch(operator_channel):
                raise ConfigError("environment: CRMBOT_OPERATOR_SLACK_CHANNEL must be a Slack channel ID "
                                  f"(like C0123ABCD; got {operator_channel[:20]!r})")
            if not (text("SLACK_SIGNING_SECRET") and text("SLACK_BOT_TOKEN")):
                raise ConfigError("environment: CRMBOT_OPERATOR_SLACK_CHANNEL needs Slack configured "
                                  "(SLACK_SIGNING_SECRET and SLACK_BOT_TOKEN)")
        raw_handoff = text("CRMBOT_HANDOFF_HOURS")
        handoff = cls.handoff_hours
        if raw_handoff is not None:
            try:
                handoff = float(raw_handoff)
            except ValueError:
                handoff = -1.0
            if not 0 <= handoff <= 24 * 365:
                raise ConfigError("environment: CRMBOT_HANDOFF_HOURS must be hours between 0 and 8760, "
                                  f"0 for none (got {raw_handoff[:20]!r})")
        fetch_profile = flag("CRMBOT_FETCH_PROFILE", True)

        def secret(name: str, minimum: int) -> str | None:
            raw = text(name)
            if raw is not None and len(raw) < minimum:
                raise ConfigError(f"environment: {name} must be at least {minimum} characters")
            return raw

        trusted_proxy = _trusted_proxy(text("CRMBOT_TRUST_PROXY"))
        proxy_hops = integer("CRMBOT_PROXY_HOPS", cls.proxy_hops, 1)
        if proxy_hops > 10:
            raise ConfigError(f"environment: CRMBOT_PROXY_HOPS must be between 1 and 10 (got {proxy_hops})")
        if text("CRMBOT_PROXY_HOPS") and trusted_proxy is None:
            raise ConfigError("environment: CRMBOT_PROXY_HOPS needs CRMBOT_TRUST_PROXY (the proxy in front)")
        client_id, client_secret = text("SLACK_CLIENT_ID"), text("SLACK_CLIENT_SECRET")
        if bool(client_id) != bool(client_secret):
            raise ConfigError("environment: the OAuth install needs both SLACK_CLIENT_ID and SLACK_CLIENT_SECRET "
                              f"({'SLACK_CLIENT_SECRET' if client_id else 'SLACK_CLIENT_ID'} is not set)")
        if client_id and text("SLACK_BOT_TOKEN"):
            raise ConfigError("environment: set SLACK_BOT_TOKEN (one workspace) or SLACK_CLIENT_ID and "
                              "SLACK_CLIENT_SECRET (many workspaces, installed by OAuth), not both")
        redirect_uri = url("SLACK_REDIRECT_URI", None)
        if redirect_uri and not redirect_uri.startswith(("https://", "http://")):
            raise ConfigError("environment: SLACK_REDIRECT_URI must be an https:// URL")
        data_dir = text("CRMBOT_DATA_DIR")
        per_client = integer("CRMBOT_MAX_CONNECTIONS_PER_CLIENT", cls.max_connections_per_client)
        if per_client > 500:
            raise ConfigError("environment: CRMBOT_MAX_CONNECTIONS_PER_CLIENT must be at most 500 (half the web "
                              f"server's connection limit, so one client cannot fill it; got {per_client})")
        try:
            cap_exempt = tuple(str(ipaddress.ip_network(x.strip(), strict=False))
                               for x in (text("CRMBOT_CONNECTION_CAP_EXEMPT") or "").split(",") if x.strip())
        except ValueError:
            raise ConfigError("environment: CRMBOT_CONNECTION_CAP_EXEMPT must be IP addresses or networks, "
                              "comma-separated (e.g. 10.0.0.5,192.168.1.0/24)") from None
        return cls(
            redis_url=redis_url,
            redis_cluster=redis_cluster,
            line_channel_secret=text("LINE_CHANNEL_SECRET"),
            line_channel_access_token=text("LINE_CHANNEL_ACCESS_TOKEN"),
            line_api_host=(line_host or DEFAULT_LINE_API_HOST).rstrip("/"),
            line_api_data_host=(line_data_host or DEFAULT_LINE_API_DATA_HOST).rstrip("/"),
            slack_signing_secret=text("SLACK_SIGNING_SECRET"),
            slack_bot_token=text("SLACK_BOT_TOKEN"),
            slack_client_id=client_id,
            slack_client_secret=client_secret,
            slack_redirect_uri=redirect_uri,
            slack_api_url=slack_url if slack_url.endswith("/") else slack_url + "/",
            port=integer("PORT", cls.port),
            max_connections_per_client=per_client,
            header_timeout=number("CRMBOT_HEADER_TIMEOUT", cls.header_timeout, 0.1, 60, "seconds between 0.1 and 60"),
            connection_cap_exempt=cap_exempt,
            data_dir=Path(data_dir).expanduser() if data_dir else _default_data_dir(),
            locale=locale,
            content_dir=text("CRMBOT_CONTENT_DIR"),
            conversation_ttl=integer("CRMBOT_CONVERSATION_TTL", cls.conversation_ttl, 60),
            resume_after=integer("CRMBOT_RESUME_AFTER", cls.resume_after, 1),
            dedupe_ttl=integer("CRMBOT_DEDUPE_TTL", cls.dedupe_ttl, 60),
            outbox_lease=integer("CRMBOT_OUTBOX_LEASE", cls.outbox_lease, 1),
            outbox_max_attempts=integer("CRMBOT_OUTBOX_MAX_ATTEMPTS", cls.outbox_max_attempts, 1),
            worker_concurrency=integer("CRMBOT_WORKER_CONCURRENCY", cls.worker_concurrency, 1),
            api_timeout=seconds("CRMBOT_API_TIMEOUT", cls.api_timeout),
            reply_unknown=reply_unknown,
            line_push_rate=rate("LINE_PUSH_RATE_PER_SECOND", 2000.0),
            line_multicast_rate=rate("LINE_RATE_PER_SECOND", 200.0),
            slack_rate=rate("SLACK_RATE_PER_SECOND", 1.0),
            slack_burst=burst("SLACK_RATE_BURST", cls.slack_burst),
            remind_hour=hour,
            remind_nudges=nudges,
            remind_cadence=cadence,
            remind_grace=integer("CRMBOT_REMIND_GRACE", cls.remind_grace, 0),
            consult_url=consult_url,
            operator_slack_channel=operator_channel,
            handoff_hours=handoff,
            fetch_profile=fetch_profile,
            console_password=secret("CRMBOT_CONSOLE_PASSWORD", 8),
            console_token=secret("CRMBOT_CONSOLE_TOKEN", 16),
            secret_key=secret("CRMBOT_SECRET_KEY", 16),
            console_idle_hours=number("CRMBOT_CONSOLE_IDLE_HOURS", cls.console_idle_hours, 0.1, 720,
                                      "hours between 0.1 and 720"),
            console_session_days=number("CRMBOT_CONSOLE_SESSION_DAYS", cls.console_session_days, 0.1, 365,
                                        "days between 0.1 and 365"),
            trusted_proxy=trusted_proxy,
            proxy_hops=proxy_hops,
        )


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
