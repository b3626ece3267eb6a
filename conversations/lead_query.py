"""The console's leads list: filters, a search, a sort, a page and the total, answered from the indexes of
:mod:`conversations.analytics` wherever one can answer.

The indexes are per figures shard (:mod:`conversations.analytics`: ``started:<ch>`` the unfinished,
``tier:<ch>:<T>`` the finished, ``asked:<ch>``), merged newest first across the 8 shards. What each query
costs (N: diagnoses started in the date range on the channels asked for; P: the page's size; O: its
offset; C: leads with a consultation; A: diagnoses in progress):

* **no filter, a tier, "finished"** (sort by date): the total is a ZCOUNT per index, the page's ids
  ZREVRANGEBYSCORE from the indexes (O + P ids read, merged), then P hashes; the next page's link
  carries a **cursor** (:attr:`Query.after`: the last lead's start and how many leads started then were
  shown), read from there: a page reached by the next links costs what the second costs, whatever its
  number. Sort by tier: the same, section by section (A, B, C, then the unfinished, whose part reads
  the skipped leads' hashes too).
* **"stopped"**: the total from counts (started - finished - in progress); the page reads O + P hashes.
* **"in progress"**: the ``active`` set, A hashes.
* **a consultation status**, and **sort by status**: the ``consult:open`` and ``consult:worked`` sets,
  C hashes (consultations are few); sort by status then walks the other leads as sort by date does.
* Consultations asked for with no diagnosis (a lead numbered 0) are in their own index, ``asked:<ch>``:
  listed and counted with every lead when no tier or progress is asked for.
* **a source**: the source's own started sets (:func:`conversations.analytics.segment`), its leads'
  hashes (sorted, searched and counted here, as a small set).
* **a search** (part of a display name, of the ID the console shows, or of a user ID): no index can
  answer a part of a word, so it reads every display name (one HGETALL) and every diagnosis id in the
  range (ZRANGEBYSCORE per channel), then the matches' hashes. Only when a search is typed.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date

from conversations.analytics import (
    SHARDS,
    STATUSES,
    TEST_CHANNELS,
    Analytics,
    Lead,
    _bounds,
    _in_bounds,
    asked_key,
    channels_key,
    consult_open_key,
    consult_worked_key,
    parse_person,
    people_key,
    source_segment,
    started_key,
    tier_key,
)
from conversations.redis_ops import text
from scoring import TIERS

SORTS = ("date", "tier", "status")
SEARCH_MAX = 100
_BATCH = 200


@dataclass(frozen=True)
class Query:
    tier: str | None = None
    progress: str | None = None  # LEAD_STATUSES
    consult: str | None = None  # STATUSES
    start: date | None = None
    end: date | None = None
    channel: str | None = None
    search: str = ""
    sort: str = "date"
    source: str | None = None  # only the leads from this source (「診断 NAME」)
    after: str = ""  # a cursor (Found.cursor of the page before): the page after it, whatever its number


@dataclass(frozen=True)
class Found:
    leads: list[Lead]
    total: int
    cursor: str = ""  # where the next page starts ("<start>:<how many leads started then were shown>"), or ""


def parse_cursor(cursor: str) -> tuple[float, int] | None:
    """A page's cursor, None when it is none (a malformed one is none: the page is read by its number)."""
    score, _, seen = cursor.partition(":")
    try:
        found = float(score), int(seen)
    except ValueError:
        return None
    return found if found[1] >= 0 and found[0] == found[0] else None


def _tier_rank(lead: Lead) -> int:
    return TIERS.index(lead.tier) if lead.tier in TIERS else len(TIERS)


def _status_rank(lead: Lead) -> int:
    return STATUSES.index(lead.consult) if lead.consult in STATUSES else len(STATUSES)


def _order(leads: Iterable[Lead], sort: str) -> list[Lead]:
    newest = sorted(leads, key=lambda x: (x.started, x.id), reverse=True)
    if sort == "tier":
        return sorted(newest, key=_tier_rank)  # stable: newest first within a tier
    if sort == "status":
        return sorted(newest, key=_status_rank)
    return newest


class LeadQuery:
    """A page of leads and their total (see the module's docstring for what each costs). ``shown_id``: the
    ID the console shows for a user ID (a search matches a part of it)."""

    def __init__(self, analytics: Analytics, shown_id: Callable[[str], str]) -> None:
        self.a = analytics
        self.r = analytics.r
        self.shown_id = shown_id

    def page(self, q: Query, *, offset: int, limit: int) -> Found:
        chans = self.a.channels(q.channel)
        now = self.a.clock()

        def wanted(lead: Lead) -> bool:
            return (lead.channel in chans and _in_bounds(lead.started, q.start, q.end)
                    and (q.progress is None or lead.status(now, self.a.expiry) == q.progress)
                    and (q.tier is None or lead.tier == q.tier) and (q.consult is None or lead.consult == q.consult)
                    and (q.source is None or lead.source == q.source))

        if q.source is not None:  # the source's own sets: its leads read here (never everyone's)
            ids = self._all_ids([source_segment(ch, q.source) for ch in chans], q.start, q.end)
            return self._small(self._matching(q, ids) if q.search else ids, wanted, q.sort, offset, limit)
        if q.search:
            return self._small(self._search(q, chans), wanted, q.sort, offset, limit)
        if q.progress == "in_progress":
            return self._small([x.id for x in self.a._active()], wanted, q.sort, offset, limit)
        indexed = not set(chans) & TEST_CHANNELS  # a test's new consultation is in no index
        if q.consult is not None and indexed:
            return self._small(self._consulted(), wanted, q.sort, offset, limit)
        if q.consult is not None:
            return self._small(self._all_ids(chans, q.start, q.end), wanted, q.sort, offset, limit)
        at = parse_cursor(q.after) if q.sort == "date" else None
        return self._walk(q, chans, wanted, 0 if at else offset, limit, at)

    # -- a small set: every lead read, sorted here --------------------------------------------------

    def _small(self, ids: Iterable[str], wanted: Callable[[Lead], bool], sort: str, offset: int,
               limit: int) -> Found:
        found = _order((x for x in self._fetch(ids) if wanted(x)), sort)
        return Found(found[offset:offset + limit], len(found))

    def _fetch(self, ids: Iterable[str]) -> list[Lead]:
        ids = list(dict.fromkeys(ids))
        out: list[Lead] = []
        for i in range(0, len(ids), _BATCH):
            out += self.a._fetch(ids[i:i + _BATCH])
        return out

    def _consulted(self) -> list[str]:
        """Every lead with a consultation status (new: consult:open; set by an operator: consult:worked)."""
        with self.r.pipeline(transaction=False) as p:
            for k in range(SHARDS):
                p.zrange(consult_open_key(k), 0, -1)
                p.zrange(consult_worked_key(k), 0, -1)
            got = p.execute()
        return [text(x) for ids in got for x in ids]

    def _all_ids(self, chans: Sequence[str], start: date | None, end: date | None) -> list[str]:
        lo, hi = _bounds(start, end)
        with self.r.pipeline(transaction=False) as p:
            for ch in chans:
                for k in range(SHARDS):
                    for key in _every(ch, k):
                        p.zrangebyscore(key, lo, hi)
            got = p.execute()
        return [text(x) for ids in got for x in ids]

    def _search(self, q: Query, chans: Sequence[str]) -> list[str]:
        return self._matching(q, self._all_ids(chans, q.start, q.end))

    def _matching(self, q: Query, ids: Iterable[str]) -> list[str]:
        """The diagnoses of ``ids`` whose person matches the search (a part of a name or of an ID)."""
        needle = q.search.strip().casefold()[:SEARCH_MAX]
        with self.r.pipeline(transaction=False) as p:
            for k in range(SHARDS):
                p.hgetall(people_key(k))
            every = p.execute()
        named = {text(ref) for people in every for ref, raw in people.items()
                 if needle in parse_person(raw).name.casefold()}
        out = []
        for lid in ids:
            ref = lid.rsplit(":", 1)[0]
            user = ref.split(":", 1)[-1]
            if ref in named or needle in user.casefold() or needle in self.shown_id(user).casefold():
                out.append(lid)
        return out

    # -- the indexes walked, newest first --------------------------------------------------------------

    def _walk(self, q: Query, chans: Sequence[str], wanted: Callable[[Lead], bool], offset: int,
              limit: int, at: tuple[float, int] | None = None) -> Found:
        lo, hi = _bounds(q.start, q.end)
        total = self._count(q, chans, lo, hi)
        if at is not None and (hi == "+inf" or at[0] < float(hi.lstrip("("))):
            hi = repr(at[0])  # a cursor: from where the page before ended (as cheap as the first page)
        finished_only = q.tier is not None or q.progress == "finished"
        tiers = [q.tier] if q.tier else list(TIERS)
        every = [key for ch in chans for k in range(SHARDS)
                 for key in (started_key(ch, k), *(tier_key(ch, t, k) for t in TIERS))]
        if q.progress is None:  # and the consultations asked for with no diagnosis (no progress of their own)
            every += [asked_key(ch, k) for ch in chans for k in range(SHARDS)]
        # sections: (sorted sets merged newest first, whether a lead needs its hash to be kept, ids to skip)
        sections: list[tuple[list[str], bool, frozenset[str]]] = []
        head: list[Lead] = []
        if q.sort == "status":
            head = _order((x for x in self._fetch(self._consulted()) if wanted(x)), "status")
            skip = frozenset(self._consulted())
        else:
            skip = frozenset()
        if q.sort == "tier" and q.progress != "stopped":
            sections = [([tier_key(ch, t, k) for ch in chans for k in range(SHARDS)], False, skip) for t in tiers]
            if not finished_only:
                sections.append((every, True, skip))  # the unfinished, after the tiers
        elif finished_only:
            sections = [([tier_key(ch, t, k) for ch in chans for t in tiers for k in range(SHARDS)], False, skip)]
        else:
            sections = [(every, q.progress == "stopped", skip)]
        out = head[offset:offset + limit]
        to_skip = max(0, offset - len(head))
        finished_seen = q.sort == "tier" and not finished_only
        for keys, needs_hash, excluded in sections:
            if len(out) >= limit:
                break
            only_unfinished = finished_seen and keys is every
            to_skip = self._take(keys, lo, hi, needs_hash or only_unfinished, excluded,
                                 (lambda x: wanted(x) and not x.is_finished) if only_unfinished else wanted,
                                 to_skip, limit, out, at)
        return Found(out, total, _cursor(out, at) if q.sort == "date" and len(out) >= limit else "")

    def _take(self, keys: list[str], lo: str, hi: str, needs_hash: bool, excluded: frozenset[str],
              wanted: Callable[[Lead], bool], to_skip: int, limit: int, out: list[Lead],
              at: tuple[float, int] | None = None) -> int:
        """Append to ``out`` (until it holds ``limit``) the leads of ``keys`` after skipping ``to_skip`` of
        them (and, after a cursor, the leads started at its instant that were shown); returns how many are
        still to skip."""
        merged = heapq.merge(*(self.a._ids_desc(k, lo, hi) for k in keys), reverse=True)
        ids = (lid for _, lid in _after(merged, at) if lid not in excluded)
        for batch in _chunks(ids):
            if not needs_hash and to_skip >= len(batch):
                to_skip -= len(batch)
                continue
            if not needs_hash:
                batch, to_skip = batch[to_skip:], 0
            for lead in self.a._fetch(batch):
                if not wanted(lead):
                    continue
                if to_skip:
                    to_skip -= 1
                    continue
                out.append(lead)
                if len(out) >= limit:
                    return 0
        return to_skip

    def _count(self, q: Query, chans: Sequence[str], lo: str, hi: str) -> int:
        tiers = [q.tier] if q.tier else list(TIERS)
        with self.r.pipeline(transaction=False) as p:
            for ch in chans:
                for k in range(SHARDS):
                    p.zcount(started_key(ch, k), lo, hi)
                    for t in tiers:
                        p.zcount(tier_key(ch, t, k), lo, hi)
                    p.zcount(asked_key(ch, k), lo, hi)  # consultations asked for with no diagnosis: leads only
            raw = iter(int(x) for x in p.execute())
        unfinished = finished = asked = 0
        for _ in range(len(chans) * SHARDS):
            unfinished += next(raw)
            finished += sum(next(raw) for _ in tiers)
            asked += next(raw)
        started = unfinished + finished  # (a tier asked for returns before it is used)
        if q.tier is not None or q.progress == "finished":
            return finished
        if q.progress == "stopped":
            active = [x for x in self.a._active() if x.channel in chans and _in_bounds(x.started, q.start, q.end)]
            return started - finished - len(active)
        return started + asked


def _after(merged: Iterable[tuple[float, str]], at: tuple[float, int] | None) -> Iterator[tuple[float, str]]:
    """The merged (start, id) pairs past a cursor: those started at its instant already shown are left out."""
    seen = 0
    for score, lid in merged:
        if at is not None and score == at[0] and seen < at[1]:
            seen += 1
            continue
        yield score, lid


def _cursor(shown: Sequence[Lead], at: tuple[float, int] | None) -> str:
    """The cursor after a page: its last lead's start, and how many leads started then were shown so far."""
    last = shown[-1].started
    same = sum(1 for x in shown if x.started == last) + (at[1] if at is not None and at[0] == last else 0)
    return f"{last!r}:{same}"


def _every(ch: str, k: int) -> tuple[str, ...]:
    """The indexes that hold every lead of a channel in one shard: the unfinished, the finished by tier, the
    consultations asked for with no diagnosis."""
    return (started_key(ch, k), *(tier_key(ch, t, k) for t in TIERS), asked_key(ch, k))


def _chunks(ids: Iterable[str]) -> Iterator[list[str]]:
    batch: list[str] = []
    for lid in ids:
        batch.append(lid)
        if len(batch) >= _BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def started_at(analytics: Analytics, ms: int) -> list[str]:
    """The ids of the diagnoses (any channel, tests' too) started at this millisecond, and of the consultations
    asked for with no diagnosis at it: two ZRANGEBYSCOREs per channel (how the console finds a lead from its
    opaque id)."""
    with analytics.r.pipeline(transaction=False) as p:
        for k in range(SHARDS):
            p.smembers(channels_key(k))
        chans = sorted({text(c) for got in p.execute() for c in got})
    lo, hi = repr((ms - 0.5) / 1000), repr((ms + 0.5) / 1000)
    with analytics.r.pipeline(transaction=False) as p:
        for ch in chans:
            for k in range(SHARDS):
                for key in _every(ch, k):
                    p.zrangebyscore(key, lo, hi)
        got = p.execute()
    return [text(x) for ids in got for x in ids]
