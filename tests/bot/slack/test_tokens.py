"""One token rotation for both tiers (bot.slack.tokens.rotate): the web tier's Rotation (sync runner) and
the worker's InstalledTokens (async runner) give the same answer when another process holds the
workspace's refresh. Time is injected: the wall clock, and the pauses while waiting for the other
process (each pause is where the test plays that process)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
import redis
import redis.asyncio as aredis
from slack_sdk import WebClient

from bot.slack.tokens import BUSY_POLL, BUSY_WAIT, InstalledTokens, OAuthOptions, Rotation, TokenBusy
from conversations import keys
from conversations.installations import BotInstall, Installations

WS = "T0ROTATE"
NOW = 1_767_225_600.0
NOWHERE = "http://127.0.0.1:9/api/"  # no refresh may reach Slack while another process holds the lock
OPTIONS = OAuthOptions("cid", "secret")


def installed(token: str, expires_at: float) -> BotInstall:
    return BotInstall(WS, token, "B1", "UB1", ("chat:write",), refresh_token=f"r-{token}", expires_at=int(expires_at))


@dataclass
class Other:
    """The other process, which holds the lock: what it does at each of our pauses."""

    store: Installations
    at_pause: Callable[[int], None] = lambda n: None
    pauses: list[float] = field(default_factory=list)

    def pause(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.at_pause(len(self.pauses))


def web_tier(store: Installations, other: Other, stored: BotInstall) -> str | None:
    rotation = Rotation(store, OPTIONS, WebClient(base_url=NOWHERE), wall=lambda: NOW, sleep=other.pause)
    current = rotation.current(stored)
    return current.token if current is not None else None


def worker(redis_url: str, other: Other) -> str | None:
    async def pause(seconds: float) -> None:
        other.pause(seconds)

    async def run() -> str | None:
        client = aredis.Redis.from_url(redis_url)
        tokens = InstalledTokens(OPTIONS, NOWHERE, wall=lambda: NOW, sleep=pause)
        try:
            return await tokens.token(client, WS)
        finally:
            await tokens.close()
            await client.aclose()

    return asyncio.run(run())


@pytest.fixture
def store(r: redis.Redis) -> Iterator[Installations]:
    yield Installations(r)


def both(store: Installations, redis_url: str, stored: BotInstall,
         at_pause: Callable[[int], None] = lambda n: None) -> list[tuple[str, str | None, int]]:
    """(the answer, or the error's name; the pauses made) of each tier, from the same start."""
    answers = []
    for tier in ("web", "worker"):
        store.save(WS, stored)
        assert store.lock_rotation(WS, "another-process", 15)
        other = Other(store, at_pause)
        try:
            token = web_tier(store, other, stored) if tier == "web" else worker(redis_url, other)
            answers.append(("token", token, len(other.pauses)))
        except TokenBusy:
            answers.append(("TokenBusy", None, len(other.pauses)))
        assert store.r.get(keys.installation_rotating(WS)) == b"another-process"  # never taken from it
        store.unlock_rotation(WS, "another-process")
    return answers


def test_an_expired_token_that_nobody_refreshes_in_time_is_busy_in_both_tiers(store: Installations,
                                                                               redis_url: str) -> None:
    tries = round(BUSY_WAIT / BUSY_POLL)
    assert both(store, redis_url, installed("xoxe.xoxb-old", NOW - 1)) == [("TokenBusy", None, tries)] * 2


def test_an_expired_token_waits_for_the_other_process_s_refresh_in_both_tiers(store: Installations,
                                                                            redis_url: str) -> None:
    def refreshes(n: int) -> None:
        if n == 2:  # the other process stores its new token during our second pause
            store.save(WS, installed("xoxe.xoxb-new", NOW + 43_200))

    assert both(store, redis_url, installed("xoxe.xoxb-old", NOW - 1), refreshes) == [("token", "xoxe.xoxb-new", 2)] * 2


def test_a_token_still_valid_is_used_while_the_other_process_refreshes_in_both_tiers(store: Installations,
                                                                                     redis_url: str) -> None:
    expiring = installed("xoxe.xoxb-old", NOW + 600)  # within the 2 hours before expiry: due for a refresh
    assert both(store, redis_url, expiring) == [("token", "xoxe.xoxb-old", 0)] * 2


def test_a_workspace_uninstalled_meanwhile_has_no_token_in_both_tiers(store: Installations, redis_url: str) -> None:
    assert both(store, redis_url, installed("xoxe.xoxb-old", NOW - 1),
                lambda n: store.delete_all(WS) and None) == [("token", None, 1)] * 2


def test_a_busy_token_is_one_of_our_errors() -> None:
    """TokenBusy sits in the one exception tree (a temporary refusal, not an outage of the store)."""
    from bot.slack.tokens import TokenBusy
    from conversations.errors import Busy, CrmbotError, StoreUnavailable

    assert issubclass(TokenBusy, Busy) and issubclass(Busy, CrmbotError)
    assert not issubclass(TokenBusy, StoreUnavailable)
