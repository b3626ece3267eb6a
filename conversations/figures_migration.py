"""Moving the figures kept before issue 16 (every lead and figure in the one ``{stats}`` slot, sorted sets
holding every diagnosis id) to the sharded day counters of :mod:`conversations.analytics`.

``crmbot migrate figures`` runs it (and the worker at start-up, when old data is there). It reads the old
indexes, never the keyspace (but one SCAN of the old ``{stats}`` slot's ``started:`` keys, to find the sources'
sets), and for each diagnosis id:

* a lead still there: its hash is written in its person's shard with the bookkeeping (what it is counted
  for: started, highest question, finished, nudged, resumed, recovered, its source), then counted and
  indexed there by :data:`MIGRATE_LEAD_LUA`, as if every record had been applied; notes and history are
  copied beside it;
* an erased person's diagnosis (``anon-...``: counted, no lead): counted in the day counters only
  (:data:`MIGRATE_ANON_LUA`), once (the ids done are listed until the migration ends);

then followers, follow marks, display names and assignees, and finally the old keys are deleted and
``crmbot:{stats}:migrated`` set. Idempotent: a lead already in its shard is not counted again (a record
applied since the new code runs wrote it from absolute values), so a migration stopped half way is run
again from the start. The funnel, tiers, answers, nudges, series, lead list and followers read the same
before and after (tests/conversations/test_figures_migration.py).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from conversations import analytics
from conversations.analytics import (
    _LUA_LIB,
    SHARDS,
    STATS,
    base,
    day_of,
    followers_key,
    history_key,
    notes_key,
    people_key,
    shard_of_lead,
    shard_of_person,
)
from conversations.lead_work import assignees_key
from conversations.redis_ops import Eval, runner, text
from scoring import CHOICES, QUESTION_COUNT, TIERS

DONE = f"{STATS}:migrated"  # "1" once the old figures are moved
ANON_DONE = f"{STATS}:migrated:anon"  # erased people's diagnoses counted already (while migrating)
OLD_CHANNELS = f"{STATS}:channels"

# Write one lead in its shard (when it is not there yet), count it and index it.
# KEYS[1] the lead (new)  ARGV[1..3] as analytics._LUA_LIB  [4] its id  [5..] its hash's fields and values.
# Returns 1 when written, 0 when it was there.
MIGRATE_LEAD_LUA = _LUA_LIB + """
local lead, id = KEYS[1], ARGV[4]
if redis.call('EXISTS', lead) == 1 then return 0 end
for i = 5, #ARGV, 2 do redis.call('HSET', lead, ARGV[i], ARGV[i + 1]) end
local g = redis.call('HMGET', lead, 'ch', 'tg', 'src', 'u', 'b', 'sid', 'tier', 'x', 'f', 't', 'c', 'test', 'd',
                     'as')
local ch = g[1]
counted(lead, segs(ch, g[2]), 1)
place(lead)
local ref = ch .. ':' .. g[4]
local pp = person_get(P .. 'people', ref)
person_lead(pp, string.sub(id, #ref + 2), true)
person_put(P .. 'people', ref, pp)
if g[6] == '0' then redis.call('ZADD', P .. 'asked:' .. ch, g[5], id)
elseif not g[9] then redis.call('ZADD', P .. 'started:' .. ch, g[5], id) end
if g[3] and g[3] ~= '' and g[6] ~= '0' then redis.call('ZADD', P .. 'started:' .. ch .. '~s=' .. g[3], g[5], id) end
if g[7] and g[9] then redis.call('ZADD', P .. 'tier:' .. ch .. ':' .. g[7], g[5], id) end
if not g[8] and not g[9] then redis.call('ZADD', P .. 'active', g[10] or g[5], id) end
local ca = redis.call('HGET', lead, 'ca')
if g[11] == 'new' and g[12] ~= '1' then redis.call('ZADD', P .. 'consult:open', ca or g[5], id)
elseif g[11] and g[11] ~= '' and g[11] ~= 'new' then redis.call('ZADD', P .. 'consult:worked', g[5], id) end
if g[14] and g[14] ~= '' then redis.call('ZADD', P .. 'assignees', g[10] or g[5], g[14]) end
redis.call('SADD', P .. 'channels', ch)
if g[13] then redis.call('SADD', P .. 'days', g[13]) end
return 1
"""

# A person's follow mark and display name. KEYS[1] people; ARGV[1..3] as analytics._LUA_LIB  [4] "<ch>:<user>"
# [5] the follow mark's time ("" none)  [6] 1 / 0  [7] the name ("" none). Returns 1.
MIGRATE_PERSON_LUA = _LUA_LIB + """
local pp = person_get(KEYS[1], ARGV[4])
if ARGV[5] ~= '' then pp[1], pp[2] = ARGV[5], ARGV[6] end
if ARGV[7] ~= '' then pp[4] = ARGV[7] end
person_put(KEYS[1], ARGV[4], pp)
return 1
"""

# Count an erased person's diagnosis (no lead: a passing hash holds what it was counted for).
# KEYS[1] a passing key of the shard  ARGV[1..3] as analytics._LUA_LIB  [4] the segments' channel  [5..] the
# bookkeeping's fields and values (k, d, r, f, tier, a, tg, ng, nc, ns, nr). Returns 1.
MIGRATE_ANON_LUA = _LUA_LIB + """
redis.call('DEL', KEYS[1])
for i = 5, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
local g = redis.call('HMGET', KEYS[1], 'tg', 'd')
counted(KEYS[1], segs(ARGV[4], g[1]), 1)
redis.call('SADD', P .. 'days', g[2])
redis.call('DEL', KEYS[1])
return 1
"""


@dataclass
class Migrated:
    leads: int = 0  # written in their shard now
    erased: int = 0  # erased people's diagnoses counted
    skipped: int = 0  # already there
    already: bool = False  # nothing to do: migrated before, or no old data


def pending(client: Any) -> bool:
    """Old figures are there to move (one EXISTS)."""
    return bool(runner(client).exists(OLD_CHANNELS))


class _Old:
    """What the old sets say of every diagnosis id, read whole (a migration runs once)."""

    def __init__(self, r: Any) -> None:
        self.r = r
        self.chans = sorted(text(c) for c in r.smembers(OLD_CHANNELS))
        self.keys = sorted(text(k) for k in r.scan_iter(match=f"{STATS}:started:*", count=1000))
        self.started: dict[str, tuple[str, float]] = {}  # id -> (channel, start)
        self.sources: dict[str, str] = {}
        self.member: dict[str, set[str]] = {}  # id -> the old sets it is in (by their names past "{stats}:")
        for key in self.keys:
            seg = key[len(f"{STATS}:started:"):]
            ch, _, src = seg.partition("~")
            for m, score in r.zrange(key, 0, -1, withscores=True):
                if src:
                    self.sources[text(m)] = src
                else:
                    self.started[text(m)] = (ch, float(score))
        for ch in self.chans:
            for m, score in r.zrange(f"{STATS}:asked:{ch}", 0, -1, withscores=True):
                self.started.setdefault(text(m), (ch, float(score)))
            names = ([f"reached:{ch}:{q}" for q in range(1, QUESTION_COUNT + 1)]
                     + [f"tier:{ch}:{t}" for t in TIERS]
                     + [f"answer:{ch}:{q}:{x}" for q in range(1, QUESTION_COUNT + 1) for x in CHOICES]
                     + [f"{kind}:{ch}:{q}" for kind in ("nudged", "resumed") for q in range(1, QUESTION_COUNT + 1)]
                     + [f"recovered:{ch}"])
            for name in names:
                for m in r.zrange(f"{STATS}:{name}", 0, -1):
                    self.member.setdefault(text(m), set()).add(name.removeprefix(f"{ch}:").replace(f":{ch}", ""))

    def bookkeeping(self, lid: str, h: dict[str, str]) -> dict[str, str]:
        """What the diagnosis was counted for, as the new lead's hash keeps it."""
        begun = self.started[lid][1]
        sets = self.member.get(lid, set())
        out = {"d": day_of(begun)}
        if h.get("sid", "1") != "0":
            out["k"] = "1"
        reached = max([q for q in range(1, QUESTION_COUNT + 1) if f"reached:{q}" in sets], default=0)
        if reached:
            out["r"] = str(max(reached, int(h.get("r") or 0)))
        tier = next((t for t in TIERS if f"tier:{t}" in sets), "")
        if tier:
            answers = "".join(next((x for x in CHOICES if f"answer:{q}:{x}" in sets), "A")
                              for q in range(1, QUESTION_COUNT + 1))
            kept = (h.get("a") or answers) if h.get("f") else answers
            out |= {"tier": tier, "f": h.get("f") or repr(begun), "a": kept}
        src = h.get("src") or self.sources.get(lid, "")
        if src:
            out["tg"] = f"s={src}"
        nudged = [q for q in range(1, QUESTION_COUNT + 1) if f"nudged:{q}" in sets]
        if nudged:
            out |= {"ng": str(nudged[0]), "nc": "1", "ngt": h.get("ngt") or repr(begun)}
            if f"resumed:{nudged[0]}" in sets:
                out["ns"] = "1"
            if "recovered" in sets:
                out["nr"] = "1"
        return out


def migrate(client: Any, *, now: float, expiry: float) -> Migrated:
    """Move the old figures (see the module's docstring); idempotent."""
    r = runner(client)
    if not pending(client):
        return Migrated(already=True)
    old = _Old(r)
    done = Migrated()
    anon_done = {text(x) for x in r.smembers(ANON_DONE)}
    for lid, (ch, _) in old.started.items():
        h = {text(k): text(v) for k, v in r.hgetall(f"{STATS}:lead:{lid}").items()}
        if not h.get("ch"):
            if lid in anon_done:
                continue
            book = old.bookkeeping(lid, {})
            k = zlib.crc32(lid.encode()) % SHARDS
            r.do(Eval(MIGRATE_ANON_LUA, [f"{base(k)}:migrating"],
                      [f"{base(k)}:", repr(now), repr(float(expiry)), ch, *_flat(book)]))
            r.sadd(ANON_DONE, lid)
            done.erased += 1
            continue
        h |= old.bookkeeping(lid, h)
        k = shard_of_lead(lid)
        wrote = r.do(Eval(MIGRATE_LEAD_LUA, [analytics.lead_key(lid)],
                          [f"{base(k)}:", repr(now), repr(float(expiry)), lid, *_flat(h)]))
        if int(wrote):
            _copy_list(r, f"{STATS}:lead:{lid}:notes", notes_key(lid))
            _copy_list(r, f"{STATS}:lead:{lid}:history", history_key(lid))
            done.leads += 1
        else:
            done.skipped += 1
    _people(r)
    _drop_old(r, old)
    r.set(DONE, "1")
    return done


def _flat(h: dict[str, str]) -> list[str]:
    return [x for pair in sorted(h.items()) for x in pair]


def _copy_list(r: Any, old: str, new: str) -> None:
    items = r.lrange(old, 0, -1)
    if items:
        r.delete(new)
        r.rpush(new, *items)


def _people(r: Any) -> None:
    """Follow marks, the followers' count (set absolute: idempotent), display names, assignees."""
    follow = {text(k): text(v) for k, v in r.hgetall(f"{STATS}:follow").items()}
    following = {text(m) for m in r.smembers(f"{STATS}:followers")}
    names = {text(k): text(v) for k, v in r.hgetall(f"{STATS}:names").items()}
    counts = [0] * SHARDS
    for ref in following:
        counts[shard_of_person(ref)] += 1
    for ref in sorted(set(follow) | set(names)):
        at, _, follows = follow.get(ref, "").partition("|")
        k = shard_of_person(ref)
        r.do(Eval(MIGRATE_PERSON_LUA, [people_key(k)], [f"{base(k)}:", "0", "0", ref, at, follows,
                                                        names.get(ref, "")]))
    with r.pipeline(transaction=False) as p:
        for k, n in enumerate(counts):
            if n:
                p.set(followers_key(k), n)
        for name, score in r.zrange(f"{STATS}:assignees", 0, -1, withscores=True):
            p.zadd(assignees_key(0), {text(name): float(score)})
        p.execute()


def _drop_old(r: Any, old: _Old) -> None:
    """Every old key: the leads and their work, the persons, every set of the slot."""
    doomed: list[str] = list(old.keys)
    for lid in old.started:
        doomed += [f"{STATS}:lead:{lid}", f"{STATS}:lead:{lid}:notes", f"{STATS}:lead:{lid}:history",
                   f"{STATS}:person:{lid.rsplit(':', 1)[0]}"]
    for ch in old.chans:
        doomed += [f"{STATS}:asked:{ch}", f"{STATS}:recovered:{ch}", f"{STATS}:anon:{ch}",
                   *(f"{STATS}:anon:{ch}:{t}" for t in TIERS), *(f"{STATS}:tier:{ch}:{t}" for t in TIERS),
                   *(f"{STATS}:{kind}:{ch}:{q}" for kind in ("reached", "nudged", "resumed")
                     for q in range(1, QUESTION_COUNT + 1)),
                   *(f"{STATS}:answer:{ch}:{q}:{x}" for q in range(1, QUESTION_COUNT + 1) for x in CHOICES)]
    for src in set(old.sources.values()):
        for ch in old.chans:
            seg = f"{ch}~{src}"
            doomed += [*(f"{STATS}:tier:{seg}:{t}" for t in TIERS),
                       *(f"{STATS}:reached:{seg}:{q}" for q in range(1, QUESTION_COUNT + 1)),
                       *(f"{STATS}:answer:{seg}:{q}:{x}" for q in range(1, QUESTION_COUNT + 1) for x in CHOICES)]
    doomed += [f"{STATS}:{name}" for name in ("active", "consult:open", "consult:worked", "consult:worked:built",
                                              "followers", "follow", "names", "assignees", "migrated:anon")]
    for chunk in _chunks(doomed):
        r.delete(*chunk)
    r.delete(OLD_CHANNELS)  # last: while it is there, the migration is to be (re)run


def _chunks(items: Iterable[str], size: int = 500) -> Iterable[list[str]]:
    batch: list[str] = []
    for x in items:
        batch.append(x)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
