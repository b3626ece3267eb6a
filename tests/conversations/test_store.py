"""Tests for conversations.store.RedisStore against a real redis-server (the ``r`` fixture)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest
import redis
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.retry import Retry

from conversations import handoff_log, jobs, keys
from conversations.errors import StoreUnavailable
from conversations.jobs import Figures, Job
from conversations.keys import Subject
from conversations.machine import ASKING, DONE, Conv
from conversations.store import CONFLICT, DUPLICATE, OK, RedisStore, Snapshot
from tests.redis_server import free_port

ALICE = Subject("line", "U00000000000000000000000000000a11")
BOB = Subject("line", "U00000000000000000000000000000b0b")
T0 = 1_767_225_600.0
DEDUPE_TTL = 3 * 86400


@pytest.fixture
def store(r: redis.Redis) -> RedisStore:
    return RedisStore(r, dedupe_ttl=DEDUPE_TTL)


def asking(q: int = 0, n: int = 1) -> Conv:
    return Conv(state=ASKING, sid=1, q=q, answers="A" * q, updated=T0 + q, n=n)


def write(message_id: str = "m-1") -> Job:
    return Job.new("line", ALICE.user_id, ALICE.tag_name,
                   [{"type": "question", "sid": 1, "q": 0}, {"type": "notice", "key": "診断"}], T0, job_id=message_id)


def mailbox(subject: Subject) -> str:
    return jobs.mailbox(subject.tag_name)


def leases(subject: Subject) -> str:
    return jobs.leases(subject.tag_name)



def seed(store: RedisStore, conv: Conv, event_id: str = "ev-seed") -> Snapshot:
    """Store conv for ALICE through the store itself and return a fresh snapshot."""
    assert store.update(store.get(ALICE, event_id), conv, event_id, ttl=0) == OK
    return store.get(ALICE, "ev-next")


# --- get ----------------------------------------------------------------------------------------


def test_get_on_an_empty_store(store: RedisStore) -> None:
    snap = store.get(ALICE, "ev-1")
    assert snap == Snapshot(ALICE, "", Conv(), False)
    assert store.load(ALICE) == Conv()


def test_get_reads_the_record_and_the_dedupe_mark(store: RedisStore, r: redis.Redis) -> None:
    conv = asking(2, n=5)
    r.set(keys.conv(ALICE), conv.to_json())
    r.set(keys.seen(ALICE, "ev-1"), "1")
    snap = store.get(ALICE, "ev-1")
    assert snap.raw == conv.to_json()
    assert snap.conv == conv
    assert snap.seen
    assert not store.get(ALICE, "ev-2").seen
    assert store.get(BOB, "ev-1") == Snapshot(BOB, "", Conv(), False)


# --- update -------------------------------------------------------------------------------------


def test_update_writes_the_record_and_the_dedupe_mark_with_ttls(store: RedisStore, r: redis.Redis) -> None:
    conv = asking(0)
    assert store.update(store.get(ALICE, "ev-1"), conv, "ev-1", ttl=691_200) == OK
    assert r.get(keys.conv(ALICE)) == conv.to_json().encode()
    assert 0 < r.ttl(keys.conv(ALICE)) <= 691_200
    assert r.get(keys.seen(ALICE, "ev-1")) == b"1"
    assert 0 < r.ttl(keys.seen(ALICE, "ev-1")) <= DEDUPE_TTL
    assert store.load(ALICE) == conv
    assert store.get(ALICE, "ev-1").seen


def test_ttl_zero_stores_the_record_without_expiry(store: RedisStore, r: redis.Redis) -> None:
    snap = store.get(ALICE, "ev-1")
    assert store.update(snap, asking(0), "ev-1", ttl=100) == OK
    assert r.ttl(keys.conv(ALICE)) > 0
    done = Conv(state=DONE, sid=1, last="A" * 10, finished=T0, updated=T0, n=2)
    assert store.update(store.get(ALICE, "ev-2"), done, "ev-2", ttl=0) == OK
    assert r.ttl(keys.conv(ALICE)) == -1  # -1: exists, no expiry (a previous TTL is cleared)
    assert 0 < r.ttl(keys.seen(ALICE, "ev-2")) <= DEDUPE_TTL


def test_the_same_event_again_is_a_duplicate_and_changes_nothing(store: RedisStore, r: redis.Redis) -> None:
    snap = store.get(ALICE, "ev-1")
    assert store.update(snap, asking(0, n=1), "ev-1", ttl=0) == OK
    stored = r.get(keys.conv(ALICE))
    again = store.get(ALICE, "ev-1")
    assert again.seen
    assert store.update(again, asking(1, n=2), "ev-1", ttl=0, job=write(), look_at=T0 + 30,
                        drop_outbox=True) == DUPLICATE
    assert r.get(keys.conv(ALICE)) == stored
    assert not r.exists(mailbox(ALICE))
    assert r.ttl(keys.conv(ALICE)) == -1


def test_a_stale_snapshot_is_a_conflict_and_changes_nothing(store: RedisStore, r: redis.Redis) -> None:
    first = store.get(ALICE, "ev-1")
    second = store.get(ALICE, "ev-2")  # read before ev-1 was committed
    assert store.update(first, asking(0, n=1), "ev-1", ttl=0) == OK
    stored = r.get(keys.conv(ALICE))
    assert store.update(second, Conv(state=DONE, last="B" * 10, n=1), "ev-2", ttl=0) == CONFLICT
    assert r.get(keys.conv(ALICE)) == stored
    assert not r.exists(keys.seen(ALICE, "ev-2"))  # the event may be applied after a fresh read
    retry = store.get(ALICE, "ev-2")
    assert store.update(retry, asking(1, n=2), "ev-2", ttl=0) == OK


def test_conflict_when_the_record_was_deleted_meanwhile(store: RedisStore, r: redis.Redis) -> None:
    snap = seed(store, asking(0))
    r.delete(keys.conv(ALICE))
    assert store.update(snap, asking(1, n=2), "ev-next", ttl=0) == CONFLICT
    assert not r.exists(keys.conv(ALICE))


def test_duplicate_wins_over_conflict(store: RedisStore) -> None:
    stale = store.get(ALICE, "ev-1")
    assert store.update(stale, asking(0), "ev-1", ttl=0) == OK
    assert store.update(stale, asking(0, n=7), "ev-1", ttl=0) == DUPLICATE


def test_outbox_write_lands_in_the_outbox_and_the_due_index(store: RedisStore, r: redis.Redis) -> None:
    w = write("m-1")
    assert store.update(store.get(ALICE, "ev-1"), asking(0), "ev-1", ttl=0, job=w, look_at=T0 + 30) == OK
    assert r.hkeys(mailbox(ALICE)) == [b"m-1"]
    assert Job.from_json(r.hget(mailbox(ALICE), "m-1")) == w
    assert "診断" in r.hget(mailbox(ALICE), "m-1").decode()  # stored as UTF-8, not \\u escapes
    assert r.zscore(jobs.due(jobs.shard_of(ALICE.tag_name)), jobs.ref(ALICE.tag_name, "m-1")) == T0 + 30
    assert not r.exists(mailbox(BOB))


def test_outbox_entries_accumulate(store: RedisStore, r: redis.Redis) -> None:
    store.update(store.get(ALICE, "ev-1"), asking(0), "ev-1", ttl=0, job=write("m-1"), look_at=T0 + 30)
    store.update(store.get(ALICE, "ev-2"), asking(1, n=2), "ev-2", ttl=0, job=write("m-2"), look_at=T0 + 60)
    assert sorted(r.hkeys(mailbox(ALICE))) == [b"m-1", b"m-2"]
    assert r.zcard(jobs.due(jobs.shard_of(ALICE.tag_name))) == 2


def test_a_duplicate_leaves_the_first_job_alone(store: RedisStore, r: redis.Redis) -> None:
    """The second commit's job is not written; its recovery mark and hint point at nothing, and a
    worker drops them when its claim finds no job (see tests/bot/test_worker.py)."""
    store.update(store.get(ALICE, "ev-1"), asking(0), "ev-1", ttl=0, job=write("m-1"), look_at=T0 + 30)
    result = store.update(store.get(ALICE, "ev-1"), asking(1, n=2), "ev-1", ttl=0, job=write("m-2"),
                          look_at=T0 + 30)
    assert result == DUPLICATE
    assert r.hkeys(mailbox(ALICE)) == [b"m-1"]
    shard = jobs.shard_of(ALICE.tag_name)
    assert r.lrange(jobs.ready(shard), 0, -1) == [jobs.ref(ALICE.tag_name, m).encode() for m in ("m-2", "m-1")]


def test_a_conflict_writes_no_job(store: RedisStore, r: redis.Redis) -> None:
    stale = store.get(ALICE, "ev-2")
    seed(store, asking(0))
    assert store.update(stale, asking(1, n=2), "ev-2", ttl=0, job=write("m-2"), look_at=T0 + 30) == CONFLICT
    assert not r.exists(mailbox(ALICE))


def test_drop_outbox_deletes_the_users_outbox(store: RedisStore, r: redis.Redis) -> None:
    r.hset(mailbox(ALICE), "old", "{}")
    r.hset(mailbox(BOB), "other", "{}")
    snap = store.get(ALICE, "ev-1")
    assert store.update(snap, None, "ev-1", ttl=0, drop_outbox=True) == OK
    assert not r.exists(mailbox(ALICE))
    assert r.hkeys(mailbox(BOB)) == [b"other"]


def test_drop_outbox_with_figures_sets_first_shape_jobs_aside_for_them(store: RedisStore, r: redis.Redis) -> None:
    """An unfollow's step commits figures of its own: the pending jobs are dropped (never sent), but a job
    of the first shape, whose step's figures ride in it, is renamed "x-<id>" instead: no worker claims it by
    its id any more (nothing is sent), and the unfollow's figures count it (bot/analytics_sink.py)."""
    old = json.dumps({"id": "old", "channel": "line", "to": ALICE.user_id, "tag": ALICE.tag_name, "outputs": [],
                      "received": T0, "meta": {"stats": {"at": T0}}})
    r.hset(mailbox(ALICE), mapping={"old": old, "new-shape": write("new-shape").to_json(), "bad": "{1}",
                                    "x-older": "{2}"})
    r.hset(leases(ALICE), "old", "1|token")
    figures = Figures.new(ALICE.tag_name, {"at": T0, "follow": 0, "person": f"line:{ALICE.user_id}"})
    assert store.update(store.get(ALICE, "ev-1"), asking(0), "ev-1", ttl=0, figures=figures, look_at=T0 + 30,
                        drop_outbox=True) == OK
    assert sorted(r.hkeys(mailbox(ALICE))) == [b"x-old", b"x-older"]
    assert r.hget(mailbox(ALICE), "x-old") == old.encode() and r.hget(mailbox(ALICE), "x-older") == b"{2}"
    assert not r.exists(leases(ALICE))
    assert Figures.from_json(r.hget(jobs.figures(ALICE.tag_name), figures.id)) == figures
    assert r.zscore(jobs.due(jobs.shard_of(ALICE.tag_name)), figures.ref) == T0 + 30


def test_no_drop_keeps_the_outbox(store: RedisStore, r: redis.Redis) -> None:
    r.hset(mailbox(ALICE), "old", "{}")
    store.update(store.get(ALICE, "ev-1"), asking(0), "ev-1", ttl=0)
    assert r.hkeys(mailbox(ALICE)) == [b"old"]


def test_conv_none_deletes_the_record(store: RedisStore, r: redis.Redis) -> None:
    snap = seed(store, asking(3))
    assert store.update(snap, None, "ev-next", ttl=0) == OK
    assert not r.exists(keys.conv(ALICE))
    assert r.exists(keys.seen(ALICE, "ev-next"))
    assert store.get(ALICE, "ev-3").conv == Conv()


def test_unchanged_conv_keeps_the_stored_bytes(store: RedisStore, r: redis.Redis) -> None:
    # Stored bytes that are not what to_json would write today (key order, spacing).
    odd = '{"n": 4, "sid": 1, "s": "asking", "t": 1767225600.0, "q": 2, "a": "AB"}'
    r.set(keys.conv(ALICE), odd, ex=5000)
    snap = store.get(ALICE, "ev-1")
    assert snap.conv.to_json() != odd
    assert store.update(snap, snap.conv, "ev-1", ttl=100) == OK
    assert r.get(keys.conv(ALICE)) == odd.encode()
    assert r.ttl(keys.conv(ALICE)) > 100  # not rewritten: the TTL is the one it had


def test_equal_but_new_conv_is_rewritten(store: RedisStore, r: redis.Redis) -> None:
    odd = '{"n": 4, "sid": 1, "s": "asking", "t": 1767225600.0, "q": 2, "a": "AB"}'
    r.set(keys.conv(ALICE), odd)
    snap = store.get(ALICE, "ev-1")
    copy = Conv.from_json(snap.raw)
    assert copy == snap.conv and copy is not snap.conv
    assert store.update(snap, copy, "ev-1", ttl=0) == OK
    assert r.get(keys.conv(ALICE)) == copy.to_json().encode()


def test_unchanged_absent_record_stays_absent(store: RedisStore, r: redis.Redis) -> None:
    snap = store.get(ALICE, "ev-1")
    assert store.update(snap, snap.conv, "ev-1", ttl=0) == OK
    assert not r.exists(keys.conv(ALICE))


def test_concurrent_commits_on_one_snapshot_exactly_one_wins(store: RedisStore, r: redis.Redis) -> None:
    snap = seed(store, asking(0))
    barrier = threading.Barrier(8)
    results: list[str] = []
    lock = threading.Lock()

    def commit(i: int) -> None:
        conv = Conv(state=ASKING, sid=1, q=1, answers="ABCD"[i % 4], updated=T0 + i, n=snap.conv.n + 1)
        barrier.wait()
        res = store.update(snap, conv, f"ev-{i}", ttl=0, job=write(f"m-{i}"), look_at=T0 + 30)
        with lock:
            results.append(res)

    threads = [threading.Thread(target=commit, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [CONFLICT] * 7 + [OK]
    winner = store.load(ALICE)
    assert winner.q == 1
    assert len(r.hkeys(mailbox(ALICE))) == 1  # only the winner's job; the losers' marks point at nothing
    (message_id,) = r.hkeys(mailbox(ALICE))
    i = int(message_id.decode().removeprefix("m-"))
    assert r.exists(keys.seen(ALICE, f"ev-{i}"))
    assert winner.updated == T0 + i


def test_drop_deletes_record_and_outbox(store: RedisStore, r: redis.Redis) -> None:
    seed(store, asking(2))
    r.hset(mailbox(ALICE), "m", "{}")
    r.set(keys.conv(BOB), asking(0).to_json())
    store.drop(ALICE)
    assert not r.exists(keys.conv(ALICE), mailbox(ALICE))
    assert r.exists(keys.conv(BOB))


# --- keys and slots -----------------------------------------------------------------------------


def test_one_subjects_keys_share_a_cluster_slot() -> None:
    for subject in (ALICE, BOB, Subject("slack", "T01-U02"), Subject("cli", "me")):
        slots = {
            key_slot(k.encode())
            for k in (
                keys.conv(subject),
                keys.seen(subject, "ev-1"),
                keys.seen(subject, "x" * 64),
                jobs.mailbox(subject.tag_name),
                jobs.leases(subject.tag_name),
                jobs.figures(subject.tag_name),
                jobs.figures_leases(subject.tag_name),
            )
        }
        assert len(slots) == 1
        assert slots == {key_slot(subject.tag[1:-1].encode())}


def test_different_users_generally_use_different_slots() -> None:
    subjects = [Subject("line", f"U{i:032x}") for i in range(50)]
    assert len({s.tag for s in subjects}) == 50
    assert len({key_slot(keys.conv(s).encode()) for s in subjects}) > 40
    assert key_slot(keys.conv(ALICE).encode()) != key_slot(keys.conv(BOB).encode())


def test_each_queue_shard_has_its_own_slot() -> None:
    for shard in range(jobs.QUEUE_SHARDS):
        slots = {key_slot(k.encode()) for k in (jobs.ready(shard), jobs.due(shard), jobs.parked(shard))}
        assert slots == {key_slot(f"q{shard}".encode())}
    assert len({key_slot(jobs.ready(s).encode()) for s in range(jobs.QUEUE_SHARDS)}) == jobs.QUEUE_SHARDS


# --- an unreachable server ----------------------------------------------------------------------


@pytest.fixture
def dead_store() -> Iterator[RedisStore]:
    # Nothing listens on the port; no retries (redis-py retries with backoff by default).
    client = redis.Redis(port=free_port(), socket_connect_timeout=0.2, socket_timeout=0.2, retry=Retry(NoBackoff(), 0))
    yield RedisStore(client)
    client.close()


def test_get_raises_store_unavailable(dead_store: RedisStore) -> None:
    with pytest.raises(StoreUnavailable, match="redis: ConnectionError"):
        dead_store.get(ALICE, "ev-1")


def test_update_raises_store_unavailable(dead_store: RedisStore) -> None:
    snap = Snapshot(ALICE, "", Conv(), False)
    with pytest.raises(StoreUnavailable):
        dead_store.update(snap, asking(0), "ev-1", ttl=0)
    with pytest.raises(StoreUnavailable):
        dead_store.update(snap, asking(0), "ev-1", ttl=0, job=write(), look_at=T0 + 30)


def test_drop_and_load_raise_store_unavailable(dead_store: RedisStore) -> None:
    with pytest.raises(StoreUnavailable):
        dead_store.drop(ALICE)
    with pytest.raises(StoreUnavailable):
        dead_store.load(ALICE)


def test_store_unavailable_keeps_the_cause(dead_store: RedisStore) -> None:
    with pytest.raises(StoreUnavailable) as info:
        dead_store.get(ALICE, "ev-1")
    assert isinstance(info.value.__cause__, redis.ConnectionError)


def _count_round_trips(client, monkeypatch) -> list[list[bytes]]:
    """Every request/response exchange the client makes (a pipeline is one)."""
    sent: list[list[bytes]] = []
    conn = client.connection_pool.get_connection()
    client.connection_pool.release(conn)  # back to the pool: the next command reuses it, no handshake
    conn_cls = type(conn)
    real_one, real_many = conn_cls.send_command, conn_cls.send_packed_command

    def one(self, *args, **kw):
        sent.append([args[0] if isinstance(args[0], bytes) else str(args[0]).encode()])
        return real_one(self, *args, **kw)

    def many(self, command, check_health=True):
        if isinstance(command, list):  # a pipeline: one write, one round trip
            sent.append([b"pipeline"])
        return real_many(self, command, check_health)

    monkeypatch.setattr(conn_cls, "send_command", one)
    monkeypatch.setattr(conn_cls, "send_packed_command", many)
    return sent


def test_a_commit_with_an_outbox_entry_is_one_round_trip(r, monkeypatch) -> None:
    from conversations.machine import ASKING

    store = RedisStore(r)
    subject = Subject("line", "U" + "7" * 32)
    snap = store.get(subject, "e0")
    job = Job.new("line", subject.user_id, subject.tag_name, [{"type": "question", "sid": 1, "q": 0}], 100.0,
                  job_id="m1")
    assert store.update(snap, Conv(state=ASKING, sid=1), "e0", ttl=0, job=job, look_at=130.0) == "ok"  # loads it
    snap = store.get(subject, "e1")
    sent = _count_round_trips(r, monkeypatch)
    assert store.update(snap, Conv(state=ASKING, sid=1, q=1, answers="A", n=2), "e1", ttl=0, job=job,
                        look_at=130.0) == "ok"
    assert sent == [[b"pipeline"]]


def test_a_flushed_script_cache_is_reloaded(r) -> None:
    from conversations.machine import ASKING

    store = RedisStore(r)
    subject = Subject("line", "U" + "8" * 32)
    r.script_flush()
    snap = store.get(subject, "e0")
    assert store.update(snap, Conv(state=ASKING, sid=1), "e0", ttl=0) == "ok"
    assert store.load(subject).state == ASKING


def test_a_refusal_to_write_for_want_of_disk_is_named() -> None:
    import redis as _redis

    from conversations.errors import StoreUnavailable
    from conversations.redis_ops import translated

    with pytest.raises(StoreUnavailable, match=r"MISCONF: disk full\?"), translated():
        raise _redis.ResponseError("MISCONF Redis is configured to save RDB snapshots, but it's currently unable")
    with pytest.raises(StoreUnavailable, match=r"^redis: ResponseError$"), translated():
        raise _redis.ResponseError("WRONGTYPE secret value here")


def test_a_handoff_log_entry_is_appended_by_the_commit_only(store: RedisStore, r: redis.Redis) -> None:
    """conversations.handoff_log: written by the step's commit, capped, with a TTL; a duplicate or a stale
    snapshot writes nothing."""
    said = handoff_log.owner_entry("text", "料金を教えてください", T0)
    stale = store.get(ALICE, "ev-2")
    assert store.update(store.get(ALICE, "ev-1"), asking(0, n=1), "ev-1", ttl=0, log=said) == OK
    assert store.update(store.get(ALICE, "ev-1"), asking(1, n=2), "ev-1", ttl=0, log=said) == DUPLICATE
    answer = handoff_log.operator_entry("無料です", T0 + 5, by="U0SATO", ws="T0WS")
    assert store.update(stale, asking(1, n=2), "ev-2", ttl=0, log=answer) == CONFLICT
    assert [json.loads(x) for x in r.lrange(keys.handoff_log(ALICE), 0, -1)] == [
        {"who": "owner", "at": T0, "kind": "text", "text": "料金を教えてください"}]
    assert 0 < r.ttl(keys.handoff_log(ALICE)) <= handoff_log.TTL
    assert store.update(store.get(ALICE, "ev-2"), asking(1, n=2), "ev-2", ttl=0, log=answer) == OK
    later = handoff_log.owner_entry("sticker", "", T0 + 9)
    assert store.update(store.get(ALICE, "ev-3"), asking(1, n=2), "ev-3", ttl=0, log=later) == OK
    got = handoff_log.read(r, ALICE)
    assert [(e.who, e.kind, e.by, e.unread) for e in got] == [
        ("owner", "text", "", False), ("operator", "text", "U0SATO", False), ("owner", "sticker", "", True)]


def test_the_handoff_log_keeps_the_latest_entries(store: RedisStore, r: redis.Redis,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(handoff_log, "CAP", 2)
    conv = asking(0, n=1)
    for n in range(4):
        snap = store.get(ALICE, f"ev-{n}")
        assert store.update(snap, snap.conv if n else conv, f"ev-{n}", ttl=0,
                            log=handoff_log.owner_entry("text", f"m{n}", T0 + n)) == OK
    assert [e.text for e in handoff_log.read(r, ALICE)] == ["m2", "m3"]
