"""The migration of the figures kept before issue 16 (one ``{stats}`` slot of sorted sets) to the sharded day
counters: the same funnel, series, leads, followers and work on leads before and after; run twice, or again
after stopping half way, it counts nothing twice."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from conversations import figures_migration as mig
from conversations.analytics import Analytics, japan_date, lead_id, nudged_step
from conversations.lead_work import LeadWork
from conversations.redis_ops import runner
from tests.conversations import old_figures as old
from tests.conversations.test_figures import NOW, people
from tests.conversations.test_figures import every_delta as deltas

EXPIRY = 7 * 86400.0
ERASED = 4  # the index of the person erased (an old "anon-" diagnosis: counted, no lead)


def apply_old(r: redis.Redis, delta: dict[str, Any]) -> None:
    keys, args = old.apply_call(delta, NOW - 86400, EXPIRY)
    r.eval(old.APPLY_LUA, len(keys), *keys, *args)


def nudge_old(r: redis.Redis, ch: str, user: str, sid: int, begun: float, q: int, at: float) -> None:
    lid = lead_id(ch, user, sid, begun)
    r.eval(old.NUDGED_LUA, 4, old.lead_key(lid), old.nudged_key(ch, q), old.resumed_key(ch, q),
           old.recovered_key(ch), lid, str(q), repr(at), repr(round(begun, 3)))


def erase_old(r: redis.Redis, ch: str, user: str) -> None:
    """What the old erasure did: each lead's id replaced by a random one in every set, the lead deleted."""
    for raw in r.zrange(old.person_key(ch, user), 0, -1):
        lid = raw.decode()
        for key in r.scan_iter(match="crmbot:{stats}:*"):
            if r.type(key) == b"zset" and (score := r.zscore(key, lid)) is not None:
                r.zrem(key, lid)
                r.zadd(key, {f"anon-{lid[-6:]}": score})
        r.delete(old.lead_key(lid))
    r.delete(old.person_key(ch, user))
    r.srem(old.FOLLOWERS, f"{ch}:{user}")
    r.hdel(old.FOLLOW, f"{ch}:{user}")


def story(r: redis.Redis, *, legacy: bool) -> None:
    users = people()
    stats = Analytics(r, clock=lambda: NOW - 86400, expiry=EXPIRY)
    for d in deltas(users):
        if legacy:
            apply_old(r, d)
        else:
            stats.apply(d, now=NOW - 86400)
    left = users[1]  # left at Q5: nudged
    args = ("line", left.subject.user_id, left.conv.sid, left.conv.begun, 5, left.now + 60)
    if legacy:
        nudge_old(r, *args)
    else:
        stats.r.do(nudged_step(*args))
    first = users[0].conv  # finished
    lid = lead_id("line", users[0].subject.user_id, first.sid, first.begun)
    if legacy:
        r.rpush(old.notes_key(lid), '{"id": "f1", "at": 1, "by": "佐藤", "text": "電話済み"}')
    else:
        LeadWork(r, clock=lambda: NOW).add_note(lid, "電話済み", by="佐藤", form_id="f1")
    gone = users[ERASED].subject.user_id
    if legacy:
        erase_old(r, "line", gone)
    else:
        stats.erase("line", gone)


def read(r: redis.Redis) -> dict[str, Any]:
    stats = Analytics(r, clock=lambda: NOW, expiry=EXPIRY)
    out: dict[str, Any] = {kw: stats.funnel(**({kw: v} if kw else {})) for kw, v in
                           (("", ""), ("source", "ads"))}
    out["series"] = stats.series(japan_date(NOW - 5 * 86400), japan_date(NOW), "day")
    out["followers"] = stats.followers()
    leads = stats.leads(limit=100)
    out["leads"] = [(x.id, x.answers, x.tier, x.reached, x.source, x.status(NOW)) for x in leads]
    out["notes"] = [(x.id, [n.text for n in LeadWork(r, clock=lambda: NOW).notes(x.id)]) for x in leads]
    return out


def test_the_figures_read_the_same_after_the_migration(r: redis.Redis) -> None:
    story(r, legacy=False)
    expected = read(r)
    assert expected[""]["started"] == 15 and expected[""]["questions"][4]["nudged"] == 1
    r.flushdb()
    story(r, legacy=True)
    assert mig.pending(r)
    got = mig.migrate(r, now=NOW, expiry=EXPIRY)
    assert (got.leads, got.erased) == (14, 1)  # 15 diagnoses, the erased person's counted still (no lead)
    assert read(r) == expected
    assert r.keys("crmbot:{stats}:*") == [b"crmbot:{stats}:migrated"]  # nothing of the old keys is left
    assert mig.migrate(r, now=NOW, expiry=EXPIRY).already and read(r) == expected


def test_a_migration_stopped_half_way_runs_again_and_counts_once(r: redis.Redis,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    story(r, legacy=True)
    real = mig._drop_old
    monkeypatch.setattr(mig, "_drop_old", lambda *a: (_ for _ in ()).throw(RuntimeError("stopped")))
    with pytest.raises(RuntimeError):
        mig.migrate(r, now=NOW, expiry=EXPIRY)
    monkeypatch.setattr(mig, "_drop_old", real)
    again = mig.migrate(r, now=NOW, expiry=EXPIRY)
    assert (again.leads, again.skipped, again.erased) == (0, 14, 0)
    after = read(r)
    assert runner(r).exists(mig.DONE)
    r.flushdb()
    story(r, legacy=False)
    assert after == read(r)


def test_crmbot_migrate_figures_moves_them_once(r: redis.Redis, redis_url: str) -> None:
    import io

    from bot.cli import migrate_cmd
    from bot.config import Config

    story(r, legacy=True)
    out = io.StringIO()
    assert migrate_cmd(Config(redis_url=redis_url), out, clock=lambda: NOW) == 0
    assert "14 leads moved, 1 erased" in out.getvalue() and not mig.pending(r)
    out = io.StringIO()
    assert migrate_cmd(Config(redis_url=redis_url), out, clock=lambda: NOW) == 0
    assert "nothing to move" in out.getvalue()
    assert Analytics(r, clock=lambda: NOW).funnel()["started"] == 15


def test_a_worker_moves_old_figures_as_it_starts(r: redis.Redis, redis_url: str) -> None:
    from bot.cli import _migrate_figures
    from bot.config import Config

    story(r, legacy=True)
    _migrate_figures(Config(redis_url=redis_url))
    assert not mig.pending(r) and Analytics(r, clock=lambda: NOW).funnel()["finished"] == 9
    _migrate_figures(Config(redis_url=redis_url))  # nothing left to move: one EXISTS
    assert Analytics(r, clock=lambda: NOW).funnel()["finished"] == 9
