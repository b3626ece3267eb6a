"""Tests for conversations.installations (Slack installations, token rotation's compare-and-set, one-time
OAuth states) against a real redis-server."""

from __future__ import annotations

import asyncio

import pytest
import redis
import redis.asyncio as aredis
from redis.crc import key_slot

from conversations import keys
from conversations.errors import InvalidInput
from conversations.installations import AsyncInstallations, BotInstall, Installations

T1, T2 = "T0AAA", "T0BBB"
NOW = 1_767_225_600.0


def bot(workspace: str = T1, token: str = "xoxb-1", refresh: str | None = None, expires_at: int | None = None,
        **extra: object) -> BotInstall:
    return BotInstall(workspace, token, "B1", "UB1", ("commands", "chat:write"), refresh, expires_at, **extra)  # type: ignore[arg-type]


@pytest.fixture
def store(r: redis.Redis) -> Installations:
    return Installations(r)


def test_keys_of_a_workspace_share_its_hash_slot() -> None:
    assert keys.installation(T1) == "crmbot:{ws:T0AAA}:install"
    assert key_slot(keys.installation(T1).encode()) == key_slot(keys.installation_rotating(T1).encode()) \
        == key_slot(keys.workspace_teams(T1).encode())
    for bad in ("", "T1:x", "T{1}", "Ｔ１", "T" * 33, None):
        with pytest.raises(InvalidInput):
            keys.installation(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        keys.oauth_state("short")
    with pytest.raises(InvalidInput):
        keys.oauth_state("x" * 20 + "}")


def test_save_find_and_delete(store: Installations, r: redis.Redis) -> None:
    assert store.bot(T1) is None and not store.installed(T1)
    store.save(T1, bot(team_name="本店"), {"user_id": "U1", "token_type": "bot"}, "U1")
    store.save(T2, bot(T2, "xoxb-2"), {"user_id": "U9"}, "U9")
    assert store.bot(T1) == bot(team_name="本店") and store.installed(T1)
    assert store.bot(T2).token == "xoxb-2"  # type: ignore[union-attr]
    assert store.installer(T1) == {"user_id": "U1", "token_type": "bot"} == store.installer(T1, "U1")
    assert store.installer(T1, "U2") is None
    # a second installer: the latest, and each one's
    store.save(T1, bot(token="xoxb-1b"), {"user_id": "U2"}, "U2")
    assert store.installer(T1) == {"user_id": "U2"}
    assert store.installer(T1, "U1") == {"user_id": "U1", "token_type": "bot"}
    assert store.delete_installers(T1, "U2") == 2  # theirs and the latest (theirs)
    assert store.installer(T1) is None and store.installer(T1, "U1") is not None
    assert store.delete_installers(T1) == 1
    assert store.bot(T1).token == "xoxb-1b"  # type: ignore[union-attr]  # the bot stays
    assert store.delete_bot(T1) and not store.installed(T1)
    assert not r.exists(keys.installation(T1))  # nothing left: the hash is gone
    assert store.delete_all(T2) and not store.delete_all(T2)
    assert r.keys("*") == []


def test_a_bot_saved_under_another_workspace_is_refused(store: Installations) -> None:
    with pytest.raises(ValueError):
        store.save(T2, bot(T1))


def test_replace_bot_is_a_compare_and_set_on_the_refresh_token(store: Installations) -> None:
    first = bot(token="xoxe.xoxb-1", refresh="xoxe-1", expires_at=int(NOW) + 60)
    store.save(T1, first, {"user_id": "U1"}, "U1")
    second = first.refreshed("xoxe.xoxb-2", "xoxe-2", int(NOW) + 43200)
    assert store.replace_bot(first, second)
    assert store.bot(T1) == second
    # a slower process that refreshed from the same (now used) refresh token cannot put its token back
    assert not store.replace_bot(first, first.refreshed("xoxe.xoxb-late", "xoxe-late", int(NOW) + 43200))
    assert store.bot(T1) == second
    store.delete_all(T1)
    assert not store.replace_bot(second, second.refreshed("xoxe.xoxb-3", "xoxe-3", 0))  # uninstalled meanwhile
    assert store.bot(T1) is None


def test_expiring_and_expired() -> None:
    rotating = bot(refresh="xoxe-1", expires_at=int(NOW) + 3600)
    assert rotating.expiring(NOW, 7200) and not rotating.expiring(NOW, 1800)
    assert not rotating.expired(NOW) and rotating.expired(NOW + 3600)
    assert not bot().expiring(NOW, 10**9)  # no rotation: never expires


def test_the_rotation_lock_has_one_owner(store: Installations, r: redis.Redis) -> None:
    assert store.lock_rotation(T1, "a", 15)
    assert not store.lock_rotation(T1, "b", 15)
    store.unlock_rotation(T1, "b")  # not b's: stays
    assert not store.lock_rotation(T1, "c", 15)
    assert 0 < r.pttl(keys.installation_rotating(T1)) <= 15000
    store.unlock_rotation(T1, "a")
    assert store.lock_rotation(T1, "b", 15)


def test_a_state_is_consumed_once_and_only_while_fresh(store: Installations, r: redis.Redis) -> None:
    state, old = "s" * 43, "o" * 43
    assert store.issue_state(state, NOW, 600) and not store.issue_state(state, NOW, 600)
    assert store.issue_state(old, NOW, 600)
    assert 600 < r.ttl(keys.oauth_state(state)) <= 660  # Redis forgets it soon after in any case
    assert store.consume_state(state, NOW + 599, 600)
    assert not store.consume_state(state, NOW + 599, 600)  # used
    assert not store.consume_state(old, NOW + 601, 600)  # expired (by the injected clock)
    assert not store.consume_state("n" * 43, NOW, 600)  # never issued
    assert r.keys("*") == [keys.oauth_client("").encode()]  # what the (unnamed) client was issued this minute


def test_issuing_states_is_limited_per_client_and_in_all(store: Installations, r: redis.Redis) -> None:
    for i in range(3):
        assert store.issue_state(f"a{i}" * 20, NOW + i, 600, client="192.0.2.1", per_client=3, most=5)
    refused = store.issue_state("a3" * 20, NOW + 10, 600, client="192.0.2.1", per_client=3, most=5)
    assert not refused and (refused.refused, refused.retry_after) == ("client", 50)  # its first is 60 s old at NOW+60
    assert not r.exists(keys.oauth_state("a3" * 20))
    assert store.issue_state("a3" * 20, NOW + 60, 600, client="192.0.2.1", per_client=3, most=5)  # a minute on
    assert store.issue_state("b0" * 20, NOW + 60, 600, client="192.0.2.2", per_client=3, most=5)
    full = store.issue_state("c0" * 20, NOW + 60, 600, client="192.0.2.3", per_client=3, most=5)
    assert (full.ok, full.refused, full.retry_after) == (False, "full", 540)  # the first runs out at NOW+600
    assert r.zcard(keys.OAUTH_STATES) == 5 and not r.exists(keys.oauth_client("192.0.2.3"))
    assert store.consume_state("a0" * 20, NOW + 70, 600)  # a consumed state leaves the count at once
    assert r.zcard(keys.OAUTH_STATES) == 4
    assert store.issue_state("c0" * 20, NOW + 70, 600, client="192.0.2.3", per_client=3, most=5)
    assert not store.issue_state("c1" * 20, NOW + 601, 600, client="192.0.2.3", per_client=3, most=5)
    assert store.issue_state("c1" * 20, NOW + 602, 600, client="192.0.2.3", per_client=3, most=5)  # a1 expired
    exists = store.issue_state("c1" * 20, NOW + 603, 600, client="192.0.2.4", per_client=3, most=5)
    assert (exists.ok, exists.refused) == (False, "")  # the same state again: draw another


def test_the_worker_reads_and_rotates_with_redis_asyncio(store: Installations, redis_url: str) -> None:
    first = bot(token="xoxe.xoxb-1", refresh="xoxe-1", expires_at=int(NOW))
    store.save(T1, first, {"user_id": "U1"}, "U1")

    async def run() -> tuple[BotInstall | None, bool, bool, bool, BotInstall | None]:
        client = aredis.Redis.from_url(redis_url)
        try:
            worker = AsyncInstallations(client)
            found = await worker.bot(T1)
            locked = await worker.lock_rotation(T1, "w", 15)
            again = await worker.lock_rotation(T1, "x", 15)
            replaced = await worker.replace_bot(first, first.refreshed("xoxe.xoxb-2", "xoxe-2", int(NOW) + 1))
            await worker.unlock_rotation(T1, "w")
            return found, locked, again, replaced, await worker.bot(T2)
        finally:
            await client.aclose()

    found, locked, again, replaced, other = asyncio.run(run())
    assert found == first and locked and not again and replaced and other is None
    assert store.bot(T1).token == "xoxe.xoxb-2"  # type: ignore[union-attr]
    assert store.lock_rotation(T1, "y", 15)  # the worker let go of it
