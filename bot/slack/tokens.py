"""Which bot token a delivery to a workspace uses (the worker's side; the web tier's is bot.slack.oauth).

- :class:`StaticToken`: one workspace, ``SLACK_BOT_TOKEN``, the same token for every job.
- :class:`InstalledTokens`: many workspaces (OAuth): the job's workspace token from its installation
  (:mod:`conversations.installations`), read with the worker's redis.asyncio client, cached a few
  seconds, and refreshed when it expires within :data:`ROTATE_BEFORE` (slack_sdk's AsyncTokenRotator,
  the one Bolt uses; one process at a time, stored by compare-and-set). None: the app is not installed
  in that workspace (uninstalled), and the transport parks the job saying so.

Expiry is real time (``time.time``), as Slack's and slack_sdk's rotator's.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from slack_sdk.oauth.installation_store import Bot
from slack_sdk.oauth.token_rotation.async_rotator import AsyncTokenRotator
from slack_sdk.web.async_client import AsyncWebClient

from conversations.installations import AsyncInstallations, BotInstall

log = logging.getLogger(__name__)

ROTATE_BEFORE = 7200.0  # a rotating token is refreshed when it expires within this (Bolt's default, 2 hours)
ROTATION_LOCK = 15.0  # seconds one process may hold a workspace's refresh
CACHE_FOR = 10.0  # seconds the worker keeps a workspace's token before reading it again


@dataclass(frozen=True)
class OAuthOptions:
    """The app's OAuth credentials (SLACK_CLIENT_ID, SLACK_CLIENT_SECRET) and redirect URL."""

    client_id: str
    client_secret: str
    redirect_uri: str | None = None


class TokenBusy(Exception):
    """Another process is refreshing the workspace's expired token: try again in a moment."""


class TokenSource(Protocol):
    async def token(self, redis: Any, workspace: str) -> str | None: ...

    async def fresh(self, redis: Any, workspace: str) -> str | None: ...

    async def close(self) -> None: ...


def sdk_bot(bot: BotInstall) -> Bot:
    """Our record as slack_sdk's Bot (what its token rotator and Bolt's stores take)."""
    return Bot(app_id=bot.app_id, enterprise_id=bot.enterprise_id, team_id=bot.workspace, team_name=bot.team_name,
               bot_token=bot.token, bot_id=bot.bot_id, bot_user_id=bot.bot_user_id, bot_scopes=list(bot.scopes),
               bot_refresh_token=bot.refresh_token, bot_token_expires_at=bot.expires_at,
               installed_at=bot.installed_at, custom_values=dict(bot.extra))


def rotation_error(e: Exception) -> str:
    """A failed refresh, in a few words (Slack's error code, or the exception's type; never a token)."""
    api_error = getattr(e, "api_error", None)
    response = getattr(api_error, "response", None)
    if response is not None:
        return str(response.get("error") or type(e).__name__)
    return type(e).__name__


class StaticToken:
    """One workspace (``SLACK_BOT_TOKEN``): the same token for every job."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def token(self, redis: Any, workspace: str) -> str | None:
        return self._token

    async def fresh(self, redis: Any, workspace: str) -> str | None:
        return self._token

    async def close(self) -> None:
        return None


@dataclass
class _Cached:
    bot: BotInstall
    until: float  # monotonic


class InstalledTokens:
    """Many workspaces: each job's workspace token from its installation (see the module's doc)."""

    def __init__(self, options: OAuthOptions, base_url: str, *, timeout: float = 10.0, cache_for: float = CACHE_FOR,
                 before: float = ROTATE_BEFORE, wall: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.options = options
        self.base_url = base_url
        self.timeout = timeout
        self.cache_for = cache_for
        self.before = before
        self.wall = wall
        self.monotonic = monotonic
        self._cache: dict[str, _Cached] = {}
        self._rotator: AsyncTokenRotator | None = None

    @property
    def rotator(self) -> AsyncTokenRotator:
        if self._rotator is None:  # made on first use, inside the worker's event loop
            client = AsyncWebClient(base_url=self.base_url, timeout=max(1, round(self.timeout)))
            self._rotator = AsyncTokenRotator(client_id=self.options.client_id,
                                              client_secret=self.options.client_secret, client=client)
        return self._rotator

    async def _read(self, redis: Any, workspace: str) -> BotInstall | None:
        """The stored installation; kept ``cache_for`` seconds. "Not installed" is not kept: an install
        takes effect at once."""
        bot = await AsyncInstallations(redis).bot(workspace)
        if bot is None:
            self._cache.pop(workspace, None)
        else:
            self._cache[workspace] = _Cached(bot, self.monotonic() + self.cache_for)
        return bot

    async def token(self, redis: Any, workspace: str) -> str | None:
        """The workspace's bot token; None when the app is not installed there. Raises TokenBusy when the
        token has expired and another process is refreshing it."""
        hit = self._cache.get(workspace)
        bot = hit.bot if hit is not None and self.monotonic() < hit.until else await self._read(redis, workspace)
        if bot is not None and bot.expiring(self.wall(), self.before):
            bot = await self._rotate(redis, bot)
        return bot.token if bot is not None else None

    async def fresh(self, redis: Any, workspace: str) -> str | None:
        """The stored token now, past the cache (after Slack refused the cached one)."""
        bot = await self._read(redis, workspace)
        return bot.token if bot is not None else None

    async def _rotate(self, redis: Any, bot: BotInstall) -> BotInstall | None:
        store = AsyncInstallations(redis)
        owner = uuid.uuid4().hex
        if not await store.lock_rotation(bot.workspace, owner, ROTATION_LOCK):
            if bot.expired(self.wall()):
                raise TokenBusy(bot.workspace)
            return bot  # another process refreshes it; this token still works meanwhile
        try:
            current = await self._read(redis, bot.workspace)
            if current is None or not current.expiring(self.wall(), self.before):
                return current
            try:
                new = await self.rotator.perform_bot_token_rotation(bot=sdk_bot(current),
                                                                    minutes_before_expiration=int(self.before // 60))
            except Exception as e:  # refused (a revoked refresh token) or Slack unreachable
                log.error("slack: refreshing the token of workspace %s failed (%s)", bot.workspace, rotation_error(e))
                return current
            if new is None:
                return current
            refreshed = current.refreshed(new.bot_token, new.bot_refresh_token, new.bot_token_expires_at)
            if not await store.replace_bot(current, refreshed):  # reinstalled or uninstalled meanwhile
                return await self._read(redis, bot.workspace)
            log.info("slack: the token of workspace %s was refreshed (worker)", bot.workspace)
            self._cache[bot.workspace] = _Cached(refreshed, self.monotonic() + self.cache_for)
            return refreshed
        finally:
            await store.unlock_rotation(bot.workspace, owner)

    async def close(self) -> None:
        if self._rotator is not None and self._rotator.client.session is not None:
            await self._rotator.client.session.close()
        self._rotator = None
