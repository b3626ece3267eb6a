"""Which bot token a workspace's request or delivery uses, and the one token rotation of both tiers.

- :class:`StaticToken`: one workspace, ``SLACK_BOT_TOKEN``, the same token for every job.
- :class:`InstalledTokens`: many workspaces (OAuth), the worker's side: the job's workspace token from
  its installation (:mod:`conversations.installations`), read with the worker's redis.asyncio client,
  cached a few seconds, and refreshed when it expires within :data:`ROTATE_BEFORE`. None: the app is
  not installed in that workspace (uninstalled), and the transport parks the job saying so.
- :class:`Rotation`: the web tier's refresh (its authorize, :mod:`bot.slack.oauth`), on a redis-py client.

**One rotation algorithm** (:func:`rotate`, a plan run by the sync runner for the web tier and by
the async runner for the worker, with slack_sdk's TokenRotator and AsyncTokenRotator, the ones Bolt
uses, doing the :class:`Refresh` step): one process at a time refreshes a workspace's token (a lock),
and stores the new one by compare-and-set. **When another process holds the lock**, both tiers answer
the same: a token that has not expired yet is used meanwhile; an expired one waits up to
:data:`BUSY_WAIT` (1 s), reading the installation again every :data:`BUSY_POLL`, for the other process
to store the new token, and uses it; if none came, :class:`TokenBusy` ("the workspace's token is being
refreshed": the worker retries the job a second later, the web tier answers "temporarily unavailable").

Expiry is real time (``time.time``), as Slack's and slack_sdk's rotator's.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from slack_sdk import WebClient
from slack_sdk.oauth.installation_store import Bot
from slack_sdk.oauth.token_rotation import TokenRotator
from slack_sdk.oauth.token_rotation.async_rotator import AsyncTokenRotator
from slack_sdk.web.async_client import AsyncWebClient

from conversations.errors import Busy
from conversations.installations import (
    AsyncInstallations,
    BotInstall,
    Installations,
    plan_bot,
    plan_lock_rotation,
    plan_replace_bot,
    plan_unlock_rotation,
)
from conversations.redis_ops import Plan, async_runner

log = logging.getLogger(__name__)

ROTATE_BEFORE = 7200.0  # a rotating token is refreshed when it expires within this (Bolt's default, 2 hours)
ROTATION_LOCK = 15.0  # seconds one process may hold a workspace's refresh
CACHE_FOR = 10.0  # seconds the worker keeps a workspace's token before reading it again
BUSY_WAIT = 1.0  # seconds an expired token waits for another process's refresh before TokenBusy
BUSY_POLL = 0.25  # seconds between two reads of the installation meanwhile


@dataclass(frozen=True)
class OAuthOptions:
    """The app's OAuth credentials (SLACK_CLIENT_ID, SLACK_CLIENT_SECRET) and redirect URL."""

    client_id: str
    client_secret: str
    redirect_uri: str | None = None


class TokenBusy(Busy):
    """Another process is refreshing the workspace's expired token and has not stored the new one within
    :data:`BUSY_WAIT`: try again in a moment."""


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


# ---- the one rotation algorithm ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Refresh:
    """A step of :func:`rotate` for its runner's caller: exchange ``bot``'s refresh token at Slack.
    Answer: the refreshed record, or None when Slack refused or could not be reached (logged)."""

    bot: BotInstall


@dataclass(frozen=True)
class Pause:
    """A step of :func:`rotate`: wait ``seconds`` (another process is refreshing the token)."""

    seconds: float


def rotate(bot: BotInstall, *, wall: Callable[[], float], before: float, owner: str, lock_ttl: float = ROTATION_LOCK,
           wait: float = BUSY_WAIT, poll: float = BUSY_POLL) -> Plan[BotInstall | None]:
    """``bot`` with a token good for now: refreshed first if it expires within ``before`` seconds, by one
    process at a time (the workspace's lock, held by ``owner``), stored by compare-and-set. Answers None
    when the workspace is no longer installed. Another process holding the lock: see the module's doc."""
    if not bot.expiring(wall(), before):
        return bot
    waited = 0.0
    while not (yield from plan_lock_rotation(bot.workspace, owner, lock_ttl)):
        if not bot.expired(wall()):
            return bot  # another process refreshes it; this token still works meanwhile
        if waited >= wait:
            raise TokenBusy(bot.workspace)
        yield Pause(poll)
        waited += poll
        current = yield from plan_bot(bot.workspace)
        if current is None or not current.expired(wall()):
            return current  # uninstalled meanwhile, or the other process stored the new token
        bot = current
    try:
        current = yield from plan_bot(bot.workspace)
        if current is None or not current.expiring(wall(), before):
            return current  # uninstalled, or refreshed by another process meanwhile
        refreshed = yield Refresh(current)
        if refreshed is None:
            return current  # Slack refused or is unreachable: the current token is used meanwhile
        if not (yield from plan_replace_bot(current, refreshed)):  # reinstalled or uninstalled meanwhile
            return (yield from plan_bot(bot.workspace))
        log.info("slack: the token of workspace %s was refreshed", bot.workspace)
        return refreshed
    finally:
        yield from plan_unlock_rotation(bot.workspace, owner)


def _refreshed(current: BotInstall, new: Bot | None) -> BotInstall | None:
    return None if new is None else current.refreshed(new.bot_token, new.bot_refresh_token, new.bot_token_expires_at)


def _refresh_failed(bot: BotInstall, e: Exception) -> None:
    log.error("slack: refreshing the token of workspace %s failed (%s)", bot.workspace, rotation_error(e))


class Rotation:
    """The web tier's refresh of expiring tokens: :func:`rotate` on the sync runner, slack_sdk's
    TokenRotator doing the refresh."""

    def __init__(self, installations: Installations, options: OAuthOptions, client: WebClient, *,
                 before: float = ROTATE_BEFORE, wall: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.installations = installations
        self.rotator = TokenRotator(client_id=options.client_id, client_secret=options.client_secret, client=client)
        self.before = before
        self.wall = wall
        self.sleep = sleep

    def current(self, bot: BotInstall) -> BotInstall | None:
        """``bot`` with a token good for now (None: uninstalled meanwhile); TokenBusy, see the module's doc."""
        if not bot.expiring(self.wall(), self.before):
            return bot

        def step(s: Refresh | Pause) -> BotInstall | None:
            if isinstance(s, Pause):
                self.sleep(s.seconds)
                return None
            try:
                return _refreshed(s.bot, self.rotator.perform_bot_token_rotation(
                    bot=sdk_bot(s.bot), minutes_before_expiration=int(self.before // 60)))
            except Exception as e:  # refused (e.g. a revoked refresh token) or Slack unreachable
                _refresh_failed(s.bot, e)
                return None

        plan = rotate(bot, wall=self.wall, before=self.before, owner=uuid.uuid4().hex)
        return self.installations.r.run(plan, step)


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
                 monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.options = options
        self.base_url = base_url
        self.timeout = timeout
        self.cache_for = cache_for
        self.before = before
        self.wall = wall
        self.monotonic = monotonic
        self.sleep = sleep
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
        """:func:`rotate` on the worker's async runner, slack_sdk's AsyncTokenRotator doing the refresh."""

        async def step(s: Refresh | Pause) -> BotInstall | None:
            if isinstance(s, Pause):
                await self.sleep(s.seconds)
                return None
            try:
                return _refreshed(s.bot, await self.rotator.perform_bot_token_rotation(
                    bot=sdk_bot(s.bot), minutes_before_expiration=int(self.before // 60)))
            except Exception as e:  # refused (a revoked refresh token) or Slack unreachable
                _refresh_failed(s.bot, e)
                return None

        plan = rotate(bot, wall=self.wall, before=self.before, owner=uuid.uuid4().hex)
        current = await async_runner(redis).run(plan, step)
        if current is None:
            self._cache.pop(bot.workspace, None)
        else:
            self._cache[bot.workspace] = _Cached(current, self.monotonic() + self.cache_for)
        return current

    async def close(self) -> None:
        if self._rotator is not None and self._rotator.client.session is not None:
            await self._rotator.client.session.close()
        self._rotator = None
