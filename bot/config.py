"""Configuration from the environment, checked once at start-up.

A bad value raises :class:`ConfigError` naming the variable; nothing here exits the process.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from conversations.content import LOCALES
from conversations.errors import ConfigError
from conversations.machine import Settings as MachineSettings
from conversations.store import DEDUPE_TTL

DEFAULT_LINE_API_HOST = "https://api.line.me"
DEFAULT_LINE_API_DATA_HOST = "https://api-data.line.me"  # LINE's host for images (a rich menu's)
DEFAULT_SLACK_API_URL = "https://slack.com/api/"


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
    slack_api_url: str = DEFAULT_SLACK_API_URL
    port: int = 8000
    data_dir: Path = field(default_factory=_default_data_dir)
    locale: str = "ja"
    content_dir: str | None = None
    conversation_ttl: int = int(MachineSettings.expiry)  # CRMBOT_CONVERSATION_TTL: unfinished diagnosis expiry
    resume_after: int = int(MachineSettings.resume_after)  # CRMBOT_RESUME_AFTER: then "continue or start over?"
    dedupe_ttl: int = DEDUPE_TTL  # CRMBOT_DEDUPE_TTL: how long an inbound event id is remembered
    outbox_lease: int = 30  # CRMBOT_OUTBOX_LEASE: seconds before an unacknowledged message is retried
    outbox_max_attempts: int = 8  # CRMBOT_OUTBOX_MAX_ATTEMPTS: then the message is parked
    api_timeout: float = 10.0  # CRMBOT_API_TIMEOUT: seconds to wait for a LINE or Slack API answer
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
    # The operator console (bot.console)
    console_password: str | None = field(default=None, repr=False)  # CRMBOT_CONSOLE_PASSWORD: enables the login
    console_token: str | None = field(default=None, repr=False)  # CRMBOT_CONSOLE_TOKEN: Bearer for api/ and export/
    secret_key: str | None = field(default=None, repr=False)  # CRMBOT_SECRET_KEY: signs the console's cookie
    trust_proxy: bool = False  # CRMBOT_TRUST_PROXY: believe X-Forwarded-Proto/-For of the one proxy in front

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
    def slack_enabled(self) -> bool:
        return bool(self.slack_signing_secret and self.slack_bot_token)

    @property
    def slack_missing(self) -> list[str]:
        return [
            name
            for name, v in (
                ("SLACK_SIGNING_SECRET", self.slack_signing_secret),
                ("SLACK_BOT_TOKEN", self.slack_bot_token),
            )
            if not v
        ]

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

        def seconds(name: str, default: float) -> float:
            raw = text(name)
            if raw is None:
                return default
            try:
                value = float(raw)
            except ValueError:
                value = 0.0
            if not 0.1 <= value <= 600:
                raise ConfigError(f"environment: {name} must be seconds between 0.1 and 600 (got {raw[:20]!r})")
            return value

        def burst(name: str, default: float) -> float:
            raw = text(name)
            if raw is None:
                return default
            try:
                value = float(raw)
            except ValueError:
                value = 0.0
            if not 1 <= value < math.inf:
                raise ConfigError(f"environment: {name} must be a number of requests, at least 1 (got {raw[:20]!r})")
            return value

        locale = (text("CRMBOT_LOCALE") or cls.locale).lower()
        if locale not in LOCALES:
            raise ConfigError(f"environment: CRMBOT_LOCALE must be one of {', '.join(LOCALES)} (got {locale!r})")
        redis_url = url("REDIS_URL", None)
        if redis_url and not redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError("environment: REDIS_URL must start with redis://, rediss:// or unix://")
        raw_cluster = (text("REDIS_CLUSTER") or "0").lower()
        if raw_cluster not in ("0", "1", "false", "true", "no", "yes", "off", "on"):
            raise ConfigError(f"environment: REDIS_CLUSTER must be 1 or 0 (got {raw_cluster[:20]!r})")
        redis_cluster = raw_cluster in ("1", "true", "yes", "on")
        if redis_cluster and not (redis_url and redis_url.startswith(("redis://", "rediss://"))):
            raise ConfigError("environment: REDIS_CLUSTER=1 needs REDIS_URL set to one node "
                              "(redis://host:port or rediss://host:port)")
        line_host = url("LINE_API_HOST", DEFAULT_LINE_API_HOST)
        line_data_host = url("LINE_API_DATA_HOST", DEFAULT_LINE_API_DATA_HOST)
        cadence = (text("CRMBOT_REMIND_CADENCE") or cls.remind_cadence).lower()
        if cadence not in ("quarterly", "half-yearly"):
            raise ConfigError(f"environment: CRMBOT_REMIND_CADENCE must be quarterly or half-yearly (got {cadence!r})")
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

        def secret(name: str, minimum: int) -> str | None:
            raw = text(name)
            if raw is not None and len(raw) < minimum:
                raise ConfigError(f"environment: {name} must be at least {minimum} characters")
            return raw

        raw_proxy = (text("CRMBOT_TRUST_PROXY") or "0").lower()
        if raw_proxy not in ("0", "1", "false", "true", "no", "yes", "off", "on"):
            raise ConfigError(f"environment: CRMBOT_TRUST_PROXY must be 1 or 0 (got {raw_proxy[:20]!r})")
        data_dir = text("CRMBOT_DATA_DIR")
        return cls(
            redis_url=redis_url,
            redis_cluster=redis_cluster,
            line_channel_secret=text("LINE_CHANNEL_SECRET"),
            line_channel_access_token=text("LINE_CHANNEL_ACCESS_TOKEN"),
            line_api_host=(line_host or DEFAULT_LINE_API_HOST).rstrip("/"),
            line_api_data_host=(line_data_host or DEFAULT_LINE_API_DATA_HOST).rstrip("/"),
            slack_signing_secret=text("SLACK_SIGNING_SECRET"),
            slack_bot_token=text("SLACK_BOT_TOKEN"),
            slack_api_url=slack_url if slack_url.endswith("/") else slack_url + "/",
            port=integer("PORT", cls.port),
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
            line_push_rate=rate("LINE_PUSH_RATE_PER_SECOND", 2000.0),
            line_multicast_rate=rate("LINE_RATE_PER_SECOND", 200.0),
            slack_rate=rate("SLACK_RATE_PER_SECOND", 1.0),
            slack_burst=burst("SLACK_RATE_BURST", cls.slack_burst),
            remind_hour=hour,
            remind_nudges=nudges,
            remind_cadence=cadence,
            remind_grace=integer("CRMBOT_REMIND_GRACE", cls.remind_grace, 0),
            console_password=secret("CRMBOT_CONSOLE_PASSWORD", 8),
            console_token=secret("CRMBOT_CONSOLE_TOKEN", 16),
            secret_key=secret("CRMBOT_SECRET_KEY", 16),
            trust_proxy=raw_proxy in ("1", "true", "yes", "on"),
        )
