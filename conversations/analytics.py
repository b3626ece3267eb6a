"""The operator's figures: one *lead* per diagnosis, and the funnel, tiers and answers counted per day.

How figures are kept (no scan of all users, no Redis round trip added to a webhook):

1. The core (bot/core.py) computes :func:`delta_of` for each step it commits: a small dict of what
   the step changed that the operator counts (absolute values: as of the step). It is committed by the
   same Lua script as the state change, as a figures record of its own in the user's hash slot
   (:class:`conversations.jobs.Figures`, queued like a job but never sent): a step is counted exactly
   when it is stored.
2. A worker applies each record from its own queue entry (bot/analytics_sink.py) with :data:`APPLY_LUA`
   in the person's **figures shard** (``{stats:<k>}``, k = crc32("<ch>:<user id>") mod :data:`SHARDS`),
   then deletes it. The lead's hash is the bookkeeping of what the diagnosis has been counted for
   (started ``k``, highest question ``r``, finished ``f`` with its tier and final answers, nudged ``nc``,
   resumed ``ns``, recovered ``nr``, the segments ``tg``, the in-progress bucket ``pb``): the script adds
   to the day counters only what the lead has not been counted for yet, in the same script as it marks it.
   So applying is idempotent and order-free: a retried or recovered record, an older record applied after
   a newer one, a double tap, going back or changing an answer never counts twice nor undoes anything,
   and no dedupe mark is needed (the lead itself says what was counted).
3. :class:`Analytics` reads the counters: one script call per shard (:data:`FIGURES_LUA`) sums the days of
   a range, whatever the number of diagnoses; :class:`PeerFigures` reads the finished diagnoses and the
   A answers per question the same way, for a result's peer line (conversations.results.peer_shares).

**What counts** (each at most once per diagnosis, on the Japan-time day it *started*): ``started``;
``r<q>``: shown question q at least once (the highest question shown only ever grows: going back to
change an answer never lowers it); when it finishes, ``t<T>`` its tier and ``a<q><X>`` its *final* answers
(answers changed before the end count as they end; a finished diagnosis is never counted again);
``n<q>`` nudged back to q after a drop-off (bot/nudges.py), ``s<q>`` answered q after that nudge, ``rec``
finished after it. **In progress** is kept apart, by the hour of the last change: each open diagnosis
counts once in ``p:<hour>`` at its highest question (moved as it goes on, taken out when it ends), and
a read sums the hours of the expiry window, so "in progress" is exact to the hour; stopped = started -
finished - in progress.

A lead's id is ``"<channel>:<user id>:<diagnosis number>-<start in ms, hex>"``: the diagnosis number
alone is not unique, since a user's record may expire (or be dropped on unfollow) and numbering
starts again from 1. Treat ids as opaque; :class:`Lead` carries the parts.

Storage: per shard k (every key of a shard shares the hash tag ``{stats:<k>}``, so one script touches
several of them on a Redis Cluster, and the shards spread over its nodes):

    crmbot:{stats:<k>}:d:<YYYYMMDD>              the day's counters (hash: "<seg>|<figure>" -> n, figures above)
    crmbot:{stats:<k>}:days                      the days that have counters (set)
    crmbot:{stats:<k>}:p:<hour>                  in progress, last changed in that hour (hash: "<day>|<seg>|<q>"
                                                 -> n; deleted once past the expiry window)
    crmbot:{stats:<k>}:hours                     the hours that have such a bucket (sorted set)
    crmbot:{stats:<k>}:lead:<lead id>            the lead (hash; fields below, see :meth:`Lead.from_hash`)
    crmbot:{stats:<k>}:lead:<lead id>:notes      the operator's notes on a lead (conversations/lead_work.py)
    crmbot:{stats:<k>}:lead:<lead id>:history    its status and assignee changes, oldest first (JSON entries)
    crmbot:{stats:<k>}:started:<ch>              index: the unfinished diagnoses started on ch (score: start)
    crmbot:{stats:<k>}:started:<ch>~s=<source>   index: every diagnosis from a source (the leads filter)
    crmbot:{stats:<k>}:asked:<ch>                index: consultations requested with no diagnosis taken (sid 0;
                                                 score: the first request): in the leads, never in the funnel
    crmbot:{stats:<k>}:tier:<ch>:<T>             index: finished diagnoses of tier T (A/B/C)
    crmbot:{stats:<k>}:active                    index: diagnoses in progress (score: last change; pruned)
    crmbot:{stats:<k>}:consult:open              index: consultations with status "new" (score: when requested)
    crmbot:{stats:<k>}:consult:worked            index: leads an operator set to another status (score: start)
    crmbot:{stats:<k>}:people                    one field per person, "<ch>:<user id>" -> "<time of the latest
                                                 follow/unfollow applied>|<1 follows, 0 not>|<their leads' id
                                                 suffixes, ",">|<display name, kept while they follow>"
                                                 (:class:`Person`: one hash entry a person, not four keys)
    crmbot:{stats:<k>}:followers                 how many follow now (a count, moved by follow changes)
    crmbot:{stats:<k>}:channels                  channels that have leads (set)
    crmbot:{stats:<k>}:assignees                 names assigned to the shard's leads (conversations/lead_work.py)

Permanent memory: 970 B per finished user over every key family, their conversation record included
(benchmarks/memory.py: 5,000 users, ``MEMORY USAGE``; the dedupe marks apart: they expire).
Before these shards, every figure and lead was in the one slot ``{stats}`` as sorted sets of diagnosis ids:
conversations/figures_migration.py moves such data here (``crmbot migrate figures``).

**Segments** (conversations/segments.py): a diagnosis also counts in ``"<ch>~<tag>"`` (:func:`segment`)
for each tag of its source (``s=``), experiment variants (``x=``) and content version (``v=``), in the same
counters, so the funnel and the series of one segment cost what the channel's cost. A lead keeps the first
source it is seen with; a tag first seen later counts all the lead was counted for so far in that segment.

Lead hash fields: ch, u, sid, b (start), t (last change), n, r (reached), a (answers), f (finished at),
tier, rm (reminder 1/0), x (closed: it finished, or ended without finishing), test, c (consultation
status), ca (requested or first set), cr (requested at), cn (operator notified: "done" or a lease end),
cu/cby (status last set, by whom), as (the assignee), mv/mvt (the quarterly reminder asked whether this
result's point to fix had moved: "1" yes, "0" not yet; when answered: the latest answer is kept), qa (the
qualification answers: ``Conv.qual``), src (the source), ng/ngt (nudged at question ng, at time ngt: set
once by :data:`NUDGED_LUA`), and the bookkeeping: k, d (the start's day), tg, pb, nc, ns, nr.

Erasing a person (bot/privacy.py, :data:`ERASE_LUA`) deletes their leads and index entries; the day
counters hold no id, so the totals stay as they were and nothing points back to the person.

Users of the try-it channel ("web") are tests: their leads are kept (channel "web") but never in a
figure summed over channels.
"""

from __future__ import annotations

import heapq
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from conversations import inputs, segments
from conversations.errors import InvalidInput
from conversations.keys import PREFIX, Subject
from conversations.machine import DONE, Conv
from conversations.outputs import ConsultAck, Output, Question, Result
from conversations.redis_ops import Batch, Eval, async_runner, runner, text
from conversations.results import PEER_MIN, PeerCounts
from scoring import CHOICES, QUESTION_COUNT, TIERS, next_point, tier_for
from scoring.periods import DEFAULT_TZ

STATUSES = ("new", "contacted", "booked", "closed")  # a lead's consultation status
LEAD_STATUSES = ("finished", "in_progress", "stopped")  # how far a diagnosis got
TEST_CHANNELS = frozenset({"web", "cli"})  # their users are tests: never in a figure summed over channels
BUCKETS = ("day", "week", "month")
NOTIFY_LEASE = 60.0  # seconds one worker has to run the first-consultation hook before another may

TZ = ZoneInfo(DEFAULT_TZ)
STATS = f"{PREFIX}:{{stats}}"  # the few keys that do not grow with people (assignees, the demo's lists)
SHARDS = 8  # the figures' shards, each its own hash slot: a person's leads and figures are in one
HISTORY_MAX = 500  # a lead's status and assignee changes kept (the oldest go first)
MAX_NAME = 100


# ---- keys -----------------------------------------------------------------------------------------


def shard_of_person(ref: str) -> int:
    """The figures shard of a person (``"<ch>:<user id>"``): their leads and their figures share its slot."""
    return zlib.crc32(ref.encode("utf-8", "surrogatepass")) % SHARDS


def shard_of(channel: str, user_id: str) -> int:
    return shard_of_person(person_ref(channel, user_id))


def base(shard: int) -> str:
    """The prefix of every key of one figures shard (its own hash slot)."""
    return f"{PREFIX}:{{stats:{shard}}}"


def _lead_base(lead_id: str) -> str:
    return base(shard_of_person(_person_of(lead_id)))


def lead_key(lead_id: str) -> str:
    return f"{_lead_base(lead_id)}:lead:{lead_id}"


def history_key(lead_id: str) -> str:
    return f"{_lead_base(lead_id)}:lead:{lead_id}:history"


def notes_key(lead_id: str) -> str:
    return f"{_lead_base(lead_id)}:lead:{lead_id}:notes"


def started_key(channel: str, shard: int) -> str:
    """Every diagnosis started on ``channel`` (or in a segment: :func:`segment`) of one shard (score: start)."""
    return f"{base(shard)}:started:{channel}"


def asked_key(channel: str, shard: int) -> str:
    return f"{base(shard)}:asked:{channel}"


def tier_key(channel: str, tier: str, shard: int) -> str:
    return f"{base(shard)}:tier:{channel}:{tier}"


def active_key(shard: int) -> str:
    return f"{base(shard)}:active"


def consult_open_key(shard: int) -> str:
    return f"{base(shard)}:consult:open"


def consult_worked_key(shard: int) -> str:
    return f"{base(shard)}:consult:worked"


def followers_key(shard: int) -> str:
    return f"{base(shard)}:followers"


def people_key(shard: int) -> str:
    """One field per person of the shard (``"<ch>:<user id>"``): :func:`parse_person`'s four parts."""
    return f"{base(shard)}:people"


def channels_key(shard: int) -> str:
    return f"{base(shard)}:channels"


def days_key(shard: int) -> str:
    return f"{base(shard)}:days"


def day_key(shard: int, day: str) -> str:
    """The counters of the diagnoses started on ``day`` ("YYYYMMDD", Japan time) in one shard."""
    return f"{base(shard)}:d:{day}"


def hour_key(shard: int, hour: int) -> str:
    """The in-progress counters of the diagnoses last changed in ``hour`` (hours since the epoch)."""
    return f"{base(shard)}:p:{hour}"


def segment(channel: str, tag: str | None) -> str:
    """The counters a figure of ``channel`` sums: the channel's own, or those of its diagnoses in segment
    ``tag`` (conversations/segments.py: ``s=<source>``, ``x=<exp>:<variant>``, ``v=<version>``)."""
    return f"{channel}~{tag}" if tag else channel


def source_segment(channel: str, source: str | None) -> str:
    """The segment of a channel's diagnoses from ``source`` (its leads' index: the leads filter)."""
    return segment(channel, segments.source_tag(source) if source else None)


@dataclass(frozen=True)
class Person:
    """A person's field in the shard's ``people`` hash: "<follow time>|<1 follows, 0 not, '' unknown>|<their
    leads' id suffixes, ','>|<display name>" (one field: a person costs one hash entry, not four keys)."""

    follow_at: str = ""
    follows: str = ""
    leads: tuple[str, ...] = ()  # "<sid>-<start in ms, hex>": the lead id is "<ch>:<user id>:" + this
    name: str = ""


def parse_person(raw: Any) -> Person:
    if not raw:
        return Person()
    at, follows, leads, name = [*text(raw).split("|", 3), "", "", "", ""][:4]
    return Person(at, follows, tuple(x for x in leads.split(",") if x), name)


def person_leads(ref: str, person: Person) -> list[str]:
    """The person's lead ids, oldest first."""
    return [f"{ref}:{x}" for x in sorted(person.leads, key=lambda x: int(x.rpartition("-")[2], 16))]


def person_ref(channel: str, user_id: str) -> str:
    return f"{channel}:{user_id}"


def lead_id(channel: str, user_id: str, sid: int, begun: float) -> str:
    """The id of diagnosis ``sid`` of a user, started at ``begun`` (seconds, as stored: 3 decimals)."""
    return f"{channel}:{user_id}:{sid}-{round(begun * 1000):x}"


def _person_of(lead: str) -> str:
    return lead.rsplit(":", 1)[0]


def shard_of_lead(lead: str) -> int:
    return shard_of_person(_person_of(lead))


def day_of(ts: float) -> str:
    """The Japan-time date of ``ts`` as a day key's suffix ("YYYYMMDD")."""
    return japan_date(ts).strftime("%Y%m%d")


# ---- the lead -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lead:
    """One diagnosis, as the operator sees it."""

    id: str  # "<channel>:<user id>:<diagnosis number>-<start>": opaque, see the module's docstring
    channel: str
    user_id: str
    name: str = ""  # LINE display name ("" unknown / not fetched)
    started: float = 0.0
    updated: float = 0.0
    finished: float = 0.0  # 0.0 while not finished
    reached: int = 0  # highest question number shown, 1..10 (0 = none yet)
    answers: str = ""  # current answers ("ABCD..."), the final ten when finished
    remind: bool = False
    consult: str = ""  # "" or a STATUSES value
    consult_at: float = 0.0  # when the consultation was requested (or its status first set)
    test: bool = False  # a try-it user: left out of every figure
    number: int = 0  # the user's diagnosis number (it starts again at 1 after the record expired)
    closed: bool = False  # finished, or ended without finishing (restarted, unfollowed, expired)
    consult_by: str = ""  # who last set the consultation status
    consult_updated: float = 0.0  # when
    moved: bool | None = None  # the reminder's "has the point to fix moved?": yes, not yet, None unanswered
    moved_at: float = 0.0  # when answered
    assignee: str = ""  # the operator the lead is assigned to ("" nobody)
    requested: float = 0.0  # when the owner asked for a consultation (0.0 never)
    qual: str = ""  # the qualification answers (Conv.qual: a digit per question; read with Script.qualify)
    source: str = ""  # where the person came from (the first source; "" none)

    @property
    def is_finished(self) -> bool:
        return self.finished > 0 and len(self.answers) == QUESTION_COUNT

    @property
    def a_count(self) -> int:
        return self.answers.count("A")

    @property
    def tier(self) -> str | None:
        """A, B or C for a finished diagnosis, else None."""
        return tier_for(self.a_count) if self.is_finished else None

    @property
    def point(self) -> int | None:
        """0-based index of the one question to fix next (finished only; None when all ten are A)."""
        return next_point(self.answers) if self.is_finished else None

    def status(self, now: float, expiry: float = 7 * 86400) -> str:
        """"finished", "in_progress" (may still go on: not closed, changed within ``expiry``) or "stopped"."""
        if self.is_finished:
            return "finished"
        if not self.closed and now - self.updated <= expiry:
            return "in_progress"
        return "stopped"

    @classmethod
    def from_hash(cls, lead: str, h: Mapping[str, str], name: str = "") -> Lead | None:
        """The lead stored under ``lead``; None when it is not (fully) there."""
        if not h.get("ch") or not h.get("u") or not h.get("b"):
            return None
        started = float(h["b"])
        return cls(
            id=lead,
            channel=h["ch"],
            user_id=h["u"],
            name=name,
            started=started,
            updated=float(h.get("t") or started),
            finished=float(h.get("f") or 0.0),
            reached=int(h.get("r") or 0),
            answers=h.get("a", ""),
            remind=h.get("rm") == "1",
            consult=h.get("c", ""),
            consult_at=float(h.get("ca") or 0.0),
            test=h.get("test") == "1",
            number=int(h.get("sid") or 0),
            closed=h.get("x") == "1" or bool(h.get("f")),
            consult_by=h.get("cby", ""),
            consult_updated=float(h.get("cu") or 0.0),
            moved=None if h.get("mv") not in ("0", "1") else h.get("mv") == "1",
            moved_at=float(h.get("mvt") or 0.0),
            assignee=h.get("as", ""),
            requested=float(h.get("cr") or 0.0),
            qual=h.get("qa", ""),
            source=h.get("src", ""),
        )


# ---- what a step changed (pure) --------------------------------------------------------------------


def _begun(conv: Conv) -> float:
    return conv.begun or conv.updated  # a record stored before ``begun`` existed (see Machine.step)


def _finished(conv: Conv, outputs: Sequence[Output], now: float) -> tuple[str, float] | None:
    """(final answers, when) if diagnosis ``conv.sid`` has finished: in this step (its result), or
    before (a record at rest whose kept result is this diagnosis', not an earlier one's: it finished
    after this one began). Every later delta of a finished diagnosis says so again (absolute values)."""
    for o in outputs:
        if isinstance(o, Result) and o.sid == conv.sid and not o.again:
            return o.answers, round(now, 3)
    if conv.state == DONE and len(conv.last) == QUESTION_COUNT and round(conv.finished, 3) >= round(_begun(conv), 3):
        return conv.last, round(conv.finished, 3)
    return None


def delta_of(
    before: Conv,
    after: Conv | None,
    outputs: Sequence[Output],
    subject: Subject,
    now: float,
    *,
    event: str = "",
) -> dict[str, Any] | None:
    """What one committed step changed that the operator counts, or None when nothing.

    ``before``/``after``: the user's record before and after the step (``after`` is ``before`` itself
    when the step changed nothing, None when it deleted the record); ``outputs``: what the step says;
    ``event``: the input's kind (conversations.inputs: follow and unfollow count). Values are absolute
    (as of ``after``), so applying a delta twice, or an older one after a newer one, changes nothing::

        {"at": step time, "test": 1 (channel "web"),
         "follow": 1 | 0, "person": "<ch>:<user>",             # a follow or an unfollow
         "ended": lead id,                                      # the diagnosis under way ended (restart...)
         "lead": {"id", "channel", "user", "sid", "n", "begun", "updated", "reached", "remind" 1|0,
                  "open" 1|0 (in progress), "answers" (while open, or the final ten),
                  "finished", "tier" (once finished), "consult": 1 (a ConsultAck output),
                  "moved": 1 | 0 (the reminder's "has the point moved?" answered about this finished one),
                  "qual": the qualification answers, "source": where the person came from (each when any)}}
    """
    d: dict[str, Any] = {"at": round(now, 3)}
    if subject.transport in TEST_CHANNELS:
        d["test"] = 1
    if event in (inputs.FOLLOW, inputs.UNFOLLOW):
        d["follow"] = int(event == inputs.FOLLOW)
        d["person"] = person_ref(subject.transport, subject.user_id)
    changed = after is not before
    consult = any(isinstance(o, ConsultAck) for o in outputs)
    cur = after if after is not None else before
    # an answer to the reminder's question is about the last finished diagnosis, not one under way
    moved = event in (inputs.MOVED_YES, inputs.MOVED_NO) and not cur.in_progress and bool(cur.last)
    cur_id = lead_id(subject.transport, subject.user_id, cur.sid, _begun(cur)) if cur.sid else ""
    if not cur.sid and consult and cur.begun:  # asked with no diagnosis: a lead without answers (number 0)
        cur_id = lead_id(subject.transport, subject.user_id, 0, cur.begun)
    if before.in_progress and before.sid:
        before_id = lead_id(subject.transport, subject.user_id, before.sid, _begun(before))
        if before_id != cur_id:
            d["ended"] = before_id  # a new diagnosis began (or the record went): the one under way ended
    if cur_id and (changed or consult or moved):
        is_open = after is not None and after.in_progress
        reached = [o.q + 1 for o in outputs if isinstance(o, Question) and o.sid == cur.sid]
        if is_open:
            reached.append(cur.q + 1)
        lead: dict[str, Any] = {
            "id": cur_id,
            "channel": str(subject.transport),
            "user": subject.user_id,
            "sid": cur.sid,
            "n": after.n if after is not None else before.n + 1,
            "begun": round(_begun(cur), 3),
            "updated": round(after.updated if after is not None else now, 3),
            "remind": int(after is not None and after.remind),
            "open": int(is_open),
        }
        if is_open:
            lead["answers"] = cur.answers
        finished = _finished(cur, outputs, now)
        if finished is not None:
            answers, at = finished
            lead |= {"answers": answers, "finished": at, "tier": tier_for(answers.count("A"))}
            reached.append(QUESTION_COUNT)
        lead["reached"] = max(reached, default=0)
        if consult:
            lead["consult"] = 1
        if moved:
            lead["moved"] = int(event == inputs.MOVED_YES)
        lead |= {k: v for k, v in (("qual", cur.qual), ("source", cur.src), ("var", cur.var), ("ver", cur.ver)) if v}
        d["lead"] = lead
    if len(d.keys() - {"at", "test"}) == 0:
        return None
    return d


# ---- applying a delta (Lua, in the person's figures shard) ----------------------------------------

# Shared by the scripts below (each sets P, its shard's key prefix "crmbot:{stats:<k>}:", first). They build
# the names of the shard's counter hashes (d:<day>, p:<hour>) and of a lead's indexes themselves: every such
# key shares the shard's hash tag, so on a Redis Cluster they are in the slot of the script's declared keys.
#   segs(ch, tg)               the segments a lead counts in: its channel, and "<ch>~<tag>" for each tag
#   bump(day, ss, fig, by)     add ``by`` to figure ``fig`` of day ``day`` in each segment of ``ss``
#   counted(lead, ss, by)      add (1) or take away (-1) all a lead is counted for, in the segments ``ss``
#   place(lead) / unplace(lead)  keep the lead's one in-progress count in the bucket of its last change
#                              ("pb": "<hour>|<highest question>"; none once closed, finished or expired)
#   person_get / person_put / person_lead  a person's field of the shard's "people" hash (analytics.Person)
#   prune()                    delete the in-progress buckets older than the expiry window (listed in "hours":
#                              the scripts' clock, not Redis's, decides, so tests may set the time)
_LUA_LIB = """
local P = ARGV[1]
local NOW, EXPIRY = tonumber(ARGV[2]), tonumber(ARGV[3])
local function person_get(key, ref)
  local v = redis.call('HGET', key, ref)
  if not v then return {'', '', '', ''} end
  local a, b, c, d = string.match(v, '^([^|]*)|([^|]*)|([^|]*)|(.*)$')
  return {a or '', b or '', c or '', d or ''}
end
local function person_put(key, ref, p)
  if p[1] == '' and p[2] == '' and p[3] == '' and p[4] == '' then redis.call('HDEL', key, ref)
  else redis.call('HSET', key, ref, table.concat(p, '|')) end
end
local function person_lead(p, suffix, keep)
  local out, found = {}, false
  for x in string.gmatch(p[3], '[^,]+') do
    if x == suffix then found = true end
    if x ~= suffix or keep then out[#out + 1] = x end
  end
  if keep and not found then out[#out + 1] = suffix end
  p[3] = table.concat(out, ',')
end
local function segs(ch, tg)
  local out = {ch}
  for t in string.gmatch(tg or '', '[^\\t]+') do out[#out + 1] = ch .. '~' .. t end
  return out
end
local function bump(day, ss, fig, by)
  local key = P .. 'd:' .. day
  for _, s in ipairs(ss) do
    if redis.call('HINCRBY', key, s .. '|' .. fig, by) == 0 and by < 0 then redis.call('HDEL', key, s .. '|' .. fig) end
  end
end
local function counted(lead, ss, by)
  local g = redis.call('HMGET', lead, 'k', 'r', 'f', 'a', 'tier', 'ng', 'nc', 'ns', 'nr', 'd')
  local day = g[10]
  if not day then return end
  if g[1] then
    bump(day, ss, 'started', by)
    for q = 1, tonumber(g[2] or '0') do bump(day, ss, 'r' .. q, by) end
    if g[3] and g[5] then
      bump(day, ss, 't' .. g[5], by)
      for q = 1, 10 do bump(day, ss, 'a' .. q .. string.sub(g[4], q, q), by) end
    end
  end
  if g[7] then bump(day, ss, 'n' .. g[6], by) end
  if g[8] then bump(day, ss, 's' .. g[6], by) end
  if g[9] then bump(day, ss, 'rec', by) end
end
local function unplace(lead)
  local g = redis.call('HMGET', lead, 'pb', 'd', 'ch', 'tg')
  if not g[1] then return end
  local h, q = string.match(g[1], '^(%d+)|(%d+)$')
  local key = P .. 'p:' .. h
  if redis.call('EXISTS', key) == 1 then
    for _, s in ipairs(segs(g[3], g[4])) do
      local f = g[2] .. '|' .. s .. '|' .. q
      if redis.call('HINCRBY', key, f, -1) <= 0 then redis.call('HDEL', key, f) end
    end
    if redis.call('EXISTS', key) == 0 then redis.call('ZREM', P .. 'hours', h) end
  end
  redis.call('HDEL', lead, 'pb')
end
local function place(lead)
  local g = redis.call('HMGET', lead, 'x', 'f', 't', 'r', 'd', 'ch', 'tg', 'k', 'pb')
  local want = nil
  local h = math.floor(tonumber(g[3] or '0') / 3600)
  if g[8] and not g[1] and not g[2] and tonumber(g[3] or '0') >= NOW - EXPIRY then
    want = h .. '|' .. (g[4] or '0')
  end
  if want == g[9] then return end
  unplace(lead)
  if want then
    local key = P .. 'p:' .. h
    for _, s in ipairs(segs(g[6], g[7])) do redis.call('HINCRBY', key, g[5] .. '|' .. s .. '|' .. (g[4] or '0'), 1) end
    redis.call('ZADD', P .. 'hours', h, h)
    redis.call('HSET', lead, 'pb', want)
  end
end
local function prune()
  local before = '(' .. math.floor((NOW - EXPIRY) / 3600)
  for _, h in ipairs(redis.call('ZRANGEBYSCORE', P .. 'hours', '-inf', before)) do redis.call('DEL', P .. 'p:' .. h) end
  redis.call('ZREMRANGEBYSCORE', P .. 'hours', '-inf', before)
end
local function followup(lead)
  local g = redis.call('HMGET', lead, 'ng', 'ngt', 'a', 'f', 't', 'ns', 'nr', 'd', 'ch', 'tg')
  local ng = tonumber(g[1])
  if not ng or ng < 1 or ng > 10 or not g[8] or not g[9] then return end
  local ss = segs(g[9], g[10])
  if not g[6] and tonumber(g[5] or '0') >= tonumber(g[2]) and (#(g[3] or '') >= ng or g[4]) then
    bump(g[8], ss, 's' .. ng, 1)
    redis.call('HSET', lead, 'ns', '1')
  end
  if not g[7] and g[4] and tonumber(g[4]) >= tonumber(g[2]) then
    bump(g[8], ss, 'rec', 1)
    redis.call('HSET', lead, 'nr', '1')
  end
end
"""

# Apply one delta. All keys in the person's shard ({stats:<k>}).
# KEYS[1] the lead (hash)        [2] started:<ch> (asked:<ch> for a lead numbered 0)   [3] people (hash)
# [4] active                     [5] people (again)         [6] followers (a count)     [7] people (again)
# [8] consult:open               [9] the ended lead (hash)  [10] tier:<ch>:<T>          [11] channels (set)
# [12] days (set)                [13] started:<ch>~s=<source> (the source's leads index)
# (a key a delta does not use is given as KEYS[1]; it is then not touched)
# ARGV[1] the shard's key prefix  [2] now  [3] the expiry (seconds)  [4] lead id ("" none)  [5] channel
# [6] user  [7] sid  [8] n  [9] begun  [10] updated  [11] reached  [12] "=" .. answers, or "" (unchanged)
# [13] finished at ("" not in this step)  [14] tier  [15] remind 1/0  [16] open 1/0  [17] test 1/0
# [18] ended lead id ("" none)  [19] follow "1" / "0" / ""  [20] "<ch>:<user>"  [21] the step's time
# [22] consult "1" / ""  [23] the hook's lease end  [24] moved "1" / "0" / ""  [25] qualification answers
# [26] the source ("" none)  [27] the start's day (YYYYMMDD, Japan time)  [28] the diagnosis' tags ("\t")
# Returns 1 when the operator is to be told of a first consultation request (the caller runs the hook,
# then calls NOTIFIED_LUA), else 0.
APPLY_LUA = _LUA_LIB + """
local notify = 0
local id = ARGV[4]
local test = ARGV[17] == '1'
local s = {}
if id ~= '' then
  s = redis.call('HMGET', KEYS[1], 'n', 'r', 'f', 'x', 'cr', 'cn', 'c', 'src', 'k', 'tg')
  -- a diagnosis from before the figures began, first seen as it ends (nothing shown, not finished): no lead
  if not s[1] and ARGV[11] == '0' and ARGV[13] == '' and ARGV[22] ~= '1' then id = '' end
end
if id ~= '' then
  local lead = KEYS[1]
  local newer = tonumber(ARGV[8]) > (tonumber(s[1]) or -1)
  local finished = s[3] or ''
  local counts = ARGV[7] ~= '0'
  redis.call('HSET', lead, 'ch', ARGV[5], 'u', ARGV[6], 'sid', ARGV[7], 'b', ARGV[9])
  if test then redis.call('HSET', lead, 'test', '1') end
  local pp = person_get(KEYS[3], ARGV[5] .. ':' .. ARGV[6])
  person_lead(pp, string.sub(id, #ARGV[5] + #ARGV[6] + 3), true)
  person_put(KEYS[3], ARGV[5] .. ':' .. ARGV[6], pp)
  redis.call('SADD', KEYS[11], ARGV[5])
  if newer then
    redis.call('HSET', lead, 'n', ARGV[8], 't', ARGV[10], 'rm', ARGV[15])
    if finished == '' and ARGV[12] ~= '' then redis.call('HSET', lead, 'a', string.sub(ARGV[12], 2)) end
    if ARGV[25] ~= '' then redis.call('HSET', lead, 'qa', ARGV[25]) end
  end
  local src = s[8] or ''
  if ARGV[26] ~= '' and src == '' then
    redis.call('HSET', lead, 'src', ARGV[26])
    src = ARGV[26]
  end
  if counts then
    -- the segments: the delta's tags not counted yet (a source: only the lead's own) count all it has so far
    redis.call('HSETNX', lead, 'd', ARGV[27])
    redis.call('SADD', KEYS[12], ARGV[27])
    local tg = s[10] or ''
    local have, add = {}, {}
    for t in string.gmatch(tg, '[^\\t]+') do have[t] = true end
    for t in string.gmatch(ARGV[28], '[^\\t]+') do
      if not have[t] and (string.sub(t, 1, 2) ~= 's=' or t == 's=' .. src) then
        add[#add + 1] = t
        have[t] = true
      end
    end
    if #add > 0 then
      unplace(lead)
      local ss = {}
      for _, t in ipairs(add) do ss[#ss + 1] = ARGV[5] .. '~' .. t end
      counted(lead, ss, 1)
      tg = tg .. (tg == '' and '' or '\\t') .. table.concat(add, '\\t')
      redis.call('HSET', lead, 'tg', tg)
    end
    local day = redis.call('HGET', lead, 'd')
    local ss = segs(ARGV[5], tg)
    if not s[9] then
      redis.call('HSET', lead, 'k', '1')
      bump(day, ss, 'started', 1)
    end
    local sr = tonumber(s[2]) or 0
    local r = tonumber(ARGV[11])
    if r > sr then
      for q = sr + 1, r do bump(day, ss, 'r' .. q, 1) end
      redis.call('HSET', lead, 'r', r)
    end
    if ARGV[13] ~= '' and finished == '' then
      bump(day, ss, 't' .. ARGV[14], 1)
      for q = 1, 10 do bump(day, ss, 'a' .. q .. string.sub(ARGV[12], q + 1, q + 1), 1) end
    end
    if src ~= '' and src == ARGV[26] then redis.call('ZADD', KEYS[13], ARGV[9], id) end
  elseif tonumber(ARGV[11]) > (tonumber(s[2]) or 0) then
    redis.call('HSET', lead, 'r', ARGV[11])
  end
  if ARGV[13] ~= '' then
    if finished == '' then
      redis.call('HSET', lead, 'f', ARGV[13], 'a', string.sub(ARGV[12], 2), 'tier', ARGV[14])
      finished = ARGV[13]
    end
    redis.call('ZADD', KEYS[10], ARGV[9], id)
  end
  -- the started index holds the unfinished diagnoses, the tier indexes the finished ones
  if finished == '' then redis.call('ZADD', KEYS[2], ARGV[9], id) else redis.call('ZREM', KEYS[2], id) end
  if ARGV[16] == '0' or finished ~= '' then
    redis.call('HSET', lead, 'x', '1')
    redis.call('ZREM', KEYS[4], id)
  elseif newer and not s[4] then
    redis.call('ZADD', KEYS[4], ARGV[10], id)
  end
  if ARGV[24] ~= '' then
    local mvt = redis.call('HGET', lead, 'mvt')
    if not mvt or tonumber(ARGV[21]) >= tonumber(mvt) then
      redis.call('HSET', lead, 'mv', ARGV[24], 'mvt', ARGV[21])
    end
  end
  if ARGV[22] == '1' then
    if not s[5] then
      redis.call('HSET', lead, 'cr', ARGV[21])
      if not s[7] or s[7] == '' then
        redis.call('HSET', lead, 'c', 'new', 'ca', ARGV[21])
        if not test then redis.call('ZADD', KEYS[8], ARGV[21], id) end
      end
    end
    local cn = s[6]
    if not cn or (cn ~= 'done' and tonumber(cn) < NOW) then
      redis.call('HSET', lead, 'cn', ARGV[23])
      notify = 1
    end
  end
  if counts then
    followup(lead)
    place(lead)
  end
end
if ARGV[18] ~= '' then
  redis.call('HSET', KEYS[9], 'x', '1')
  redis.call('ZREM', KEYS[4], ARGV[18])
  place(KEYS[9])
end
if ARGV[19] ~= '' and not test then
  local pp = person_get(KEYS[5], ARGV[20])
  if pp[1] == '' or tonumber(ARGV[21]) >= tonumber(pp[1]) then
    local was = pp[2] == '1'
    pp[1], pp[2] = ARGV[21], ARGV[19]
    if ARGV[19] == '1' then
      if not was then redis.call('INCR', KEYS[6]) end
    else
      if was and redis.call('DECR', KEYS[6]) <= 0 then redis.call('DEL', KEYS[6]) end
      pp[4] = ''
    end
    person_put(KEYS[5], ARGV[20], pp)
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', '(' .. (NOW - EXPIRY))
prune()
return notify
"""

# The first-consultation hook ran: the lead's operator was told. KEYS[1] the lead. Returns 1.
NOTIFIED_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'cn', 'done') end
return 1
"""

# A diagnosis was nudged back to question q (bot/nudges.py, after its push is queued): marked once on its
# lead ("ng", "ngt") and counted then in "n<q>" of its start's day; a lead already past q since the nudge (its
# figures applied first) is counted as resumed ("s<q>") / recovered ("rec") here, as APPLY_LUA does later.
# KEYS[1] the lead  KEYS[2] days (set)
# ARGV[1..3] as _LUA_LIB  [4] q (1-based)  [5] the nudge's time  [6] the start's day  [7] the channel
# Returns 1 when marked now, 0 when it was already.
NUDGED_LUA = _LUA_LIB + """
local first = redis.call('HSETNX', KEYS[1], 'ng', ARGV[4])
if first == 1 then
  redis.call('HSET', KEYS[1], 'ngt', ARGV[5], 'nc', '1')
  redis.call('HSETNX', KEYS[1], 'd', ARGV[6])
  redis.call('HSETNX', KEYS[1], 'ch', ARGV[7])
  local g = redis.call('HMGET', KEYS[1], 'd', 'ch', 'tg')
  redis.call('SADD', KEYS[2], g[1])
  bump(g[1], segs(g[2], g[3]), 'n' .. ARGV[4], 1)
end
followup(KEYS[1])
return first
"""

# Take a lead out of every figure and index of its shard, and delete it with the operator's notes and
# history on it (the demo's removal: bot/demo.py). KEYS[1] the lead; ARGV[1..3] as _LUA_LIB, [4] its id.
# Returns 1 when it was there.
UNCOUNT_LUA = _LUA_LIB + """
local g = redis.call('HMGET', KEYS[1], 'ch', 'tg', 'src', 'u')
if not g[1] then return 0 end
unplace(KEYS[1])
counted(KEYS[1], segs(g[1], g[2]), -1)
local day = redis.call('HGET', KEYS[1], 'd')
if day and redis.call('EXISTS', P .. 'd:' .. day) == 0 then redis.call('SREM', P .. 'days', day) end
local id = ARGV[4]
for _, k in ipairs({'started:' .. g[1], 'asked:' .. g[1], 'tier:' .. g[1] .. ':A', 'tier:' .. g[1] .. ':B',
                    'tier:' .. g[1] .. ':C', 'started:' .. g[1] .. '~s=' .. (g[3] or ''), 'active',
                    'consult:open', 'consult:worked'}) do
  redis.call('ZREM', P .. k, id)
end
local ref = g[1] .. ':' .. (g[4] or '')
local pp = person_get(P .. 'people', ref)
person_lead(pp, string.sub(id, #ref + 2), false)
person_put(P .. 'people', ref, pp)
redis.call('DEL', KEYS[1], KEYS[1] .. ':notes', KEYS[1] .. ':history')
return 1
"""

# Erase one person's leads (bot/privacy.py): each lead leaves every index and the in-progress counters, and
# is deleted with the operator's notes and history on it; the person's index, display name and follow
# mark go too. The day counters keep counting the diagnoses: they hold no id, nothing points back.
# KEYS[1] people (hash)  [2] followers (a count)
# ARGV[1..3] as _LUA_LIB  [4] "<ch>:<user>". Returns how many leads went.
ERASE_LUA = _LUA_LIB + """
local pp = person_get(KEYS[1], ARGV[4])
local ids = {}
for x in string.gmatch(pp[3], '[^,]+') do ids[#ids + 1] = ARGV[4] .. ':' .. x end
for _, id in ipairs(ids) do
  local lead = P .. 'lead:' .. id
  local g = redis.call('HMGET', lead, 'ch', 'src')
  unplace(lead)
  local ch = g[1] or ''
  for _, k in ipairs({'started:' .. ch, 'asked:' .. ch, 'tier:' .. ch .. ':A', 'tier:' .. ch .. ':B',
                      'tier:' .. ch .. ':C', 'started:' .. ch .. '~s=' .. (g[2] or ''), 'active',
                      'consult:open', 'consult:worked'}) do
    redis.call('ZREM', P .. k, id)
  end
  redis.call('DEL', lead, lead .. ':notes', lead .. ':history')
end
if pp[2] == '1' and redis.call('DECR', KEYS[2]) <= 0 then redis.call('DEL', KEYS[2]) end
redis.call('HDEL', KEYS[1], ARGV[4])
return #ids
"""

# Set a lead's consultation status, and append the change to its history (when it changed).
# KEYS[1] the lead, KEYS[2] consult:open, KEYS[3] consult:worked, KEYS[4] the lead's history (list)
# ARGV[1] lead id, [2] status, [3] now, [4] by, [5] the history's length kept.
# Returns 0 when there is no such lead, 1 when the status changed, 2 when it was already that.
SET_CONSULT_LUA = """
local s = redis.call('HMGET', KEYS[1], 'ch', 'ca', 'test', 'c', 'b')
if not s[1] then return 0 end
local at = s[2] or ARGV[3]
local before = s[4] or ''
redis.call('HSET', KEYS[1], 'c', ARGV[2], 'ca', at, 'cu', ARGV[3], 'cby', ARGV[4])
if ARGV[2] == 'new' and s[3] ~= '1' then
  redis.call('ZADD', KEYS[2], at, ARGV[1])
else
  redis.call('ZREM', KEYS[2], ARGV[1])
end
if ARGV[2] == 'new' then
  redis.call('ZREM', KEYS[3], ARGV[1])
else
  redis.call('ZADD', KEYS[3], s[5], ARGV[1])
end
if before == ARGV[2] then return 2 end
redis.call('RPUSH', KEYS[4], cjson.encode({at = tonumber(ARGV[3]), by = ARGV[4], field = 'status',
                                           from = before, to = ARGV[2]}))
redis.call('LTRIM', KEYS[4], -tonumber(ARGV[5]), -1)
return 1
"""

# Keep a display name unless the person's latest follow event is an unfollow ("" forgets it).
# KEYS[1] people; ARGV[1..3] as _LUA_LIB  [4] "<ch>:<user>"  [5] the name. Returns 1 when kept.
SET_NAME_LUA = _LUA_LIB + """
local pp = person_get(KEYS[1], ARGV[4])
if pp[2] == '0' and ARGV[5] ~= '' then return 0 end
pp[4] = ARGV[5]
person_put(KEYS[1], ARGV[4], pp)
return 1
"""

# Sum one shard's figures (the console's and the API's reads: one call per shard, whatever the data).
# KEYS[1] days (set)  [2] channels (set)  [3] followers (a count)  [4] consult:open
# ARGV[1] the shard's key prefix  [2] first day ("" open)  [3] last day ("" open)  [4] the channel ("" every
# channel but the tests')  [5] the segment's tag ("" the channels' own figures)  [6] the test channels ("\\t")
# [7] the first hour of the in-progress window  [8] the last  [9] "1": per-day started and tiers too
# Returns a flat list: name, value, ...: each figure summed ("started", "r<q>", "t<T>", "a<q><X>", "n<q>",
# "s<q>", "rec"), "p<q>" in progress with q the highest question, "<day>|started" and "<day>|t<T>" (ARGV[9]),
# "channel:<ch>" for each channel with leads, "followers" and "open".
FIGURES_LUA = """
local P = ARGV[1]
local lo, hi = ARGV[2], ARGV[3]
local chans = {}
local out = {}
local skip = {}
for c in string.gmatch(ARGV[6], '[^\\t]+') do skip[c] = true end
for _, c in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  out['channel:' .. c] = 1
  if (ARGV[4] == '' and not skip[c]) or c == ARGV[4] then chans[#chans + 1] = c end
end
if ARGV[4] ~= '' then chans = {ARGV[4]} end
local want = {}
for _, c in ipairs(chans) do want[ARGV[5] == '' and c or (c .. '~' .. ARGV[5])] = true end
local function add(k, n) out[k] = (out[k] or 0) + n end
local function inrange(day) return (lo == '' or day >= lo) and (hi == '' or day <= hi) end
for _, day in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if inrange(day) then
    local h = redis.call('HGETALL', P .. 'd:' .. day)
    for i = 1, #h, 2 do
      local seg, fig = string.match(h[i], '^(.*)|([^|]+)$')
      if seg and want[seg] then
        local n = tonumber(h[i + 1])
        add(fig, n)
        if ARGV[9] == '1' and (fig == 'started' or string.sub(fig, 1, 1) == 't') then add(day .. '|' .. fig, n) end
      end
    end
  end
end
for hour = tonumber(ARGV[7]), tonumber(ARGV[8]) do
  local h = redis.call('HGETALL', P .. 'p:' .. hour)
  for i = 1, #h, 2 do
    local day, seg, q = string.match(h[i], '^(%d+)|(.*)|(%d+)$')
    if day and want[seg] and inrange(day) then add('p' .. q, tonumber(h[i + 1])) end
  end
end
add('followers', tonumber(redis.call('GET', KEYS[3]) or '0'))
add('open', redis.call('ZCARD', KEYS[4]))
local flat = {}
for k, v in pairs(out) do
  flat[#flat + 1] = k
  flat[#flat + 1] = tostring(v)
end
return flat
"""


def apply_call(delta: Mapping[str, Any], now: float, expiry: float,
               lease: float = NOTIFY_LEASE) -> tuple[list[str], list[str]]:
    """KEYS and ARGV of :data:`APPLY_LUA` for one delta (as made by :func:`delta_of`)."""
    lead: Mapping[str, Any] = delta.get("lead") or {}
    lid = str(lead.get("id", ""))
    ch, user = str(lead.get("channel", "")), str(lead.get("user", ""))
    follow = delta.get("follow")
    fol_ref = str(delta.get("person", ""))
    if follow is not None and not fol_ref:
        raise InvalidInput("stats: a follow or unfollow without the person")
    if lid and _person_of(lid) != person_ref(ch, user):
        raise InvalidInput("stats: a lead id that is not the lead's person's")
    if lid and fol_ref and fol_ref != person_ref(ch, user):
        raise InvalidInput("stats: a follow of another person than the lead's")
    k = shard_of_person(fol_ref or _person_of(lid)) if (lid or fol_ref) else 0
    key1 = lead_key(lid) if lid else f"{base(k)}:none"
    finishing = bool(lead.get("finished"))
    tier = str(lead.get("tier", ""))
    answers = str(lead.get("answers", ""))
    if finishing and (tier not in TIERS or len(answers) != QUESTION_COUNT or set(answers) - set(CHOICES)):
        raise InvalidInput("stats: a finished diagnosis without ten answers and a tier")
    reached = int(lead.get("reached", 0))
    if not 0 <= reached <= QUESTION_COUNT:
        raise InvalidInput(f"stats: reached {reached} out of range")
    source = str(lead.get("source", "")) if lid else ""
    if source and inputs.source_name(source) != source:
        raise InvalidInput("stats: a source that is not a source name")
    qual = str(lead.get("qual", ""))
    if not (qual.isdigit() or qual == "") or len(qual) > inputs.QUALIFY_MAX:
        raise InvalidInput("stats: qualification answers that are not digits")
    tags = segments.tags(source, str(lead.get("var", "")), str(lead.get("ver", ""))) if lid else ()
    if any(set(t) & {"|", "\t", "\n"} for t in tags):
        raise InvalidInput("stats: a tag with a separator in it")
    ended = str(delta.get("ended", ""))
    if ended and shard_of_lead(ended) != k:
        raise InvalidInput("stats: an ended lead of another person")
    begun = float(lead.get("begun", 0.0))
    keys = [
        key1,
        (started_key(ch, k) if str(lead.get("sid", 0)) != "0" else asked_key(ch, k)) if lid else key1,
        people_key(k) if lid else key1,
        active_key(k), people_key(k), followers_key(k), people_key(k), consult_open_key(k),
        lead_key(ended) if ended else key1,
        tier_key(ch, tier, k) if finishing else key1,
        channels_key(k), days_key(k),
        started_key(source_segment(ch, source), k) if source else key1,
    ]
    args = [
        f"{base(k)}:", repr(now), repr(float(expiry)),
        lid, ch, user, str(lead.get("sid", 0)), str(lead.get("n", 0)), repr(begun),
        repr(float(lead.get("updated", 0.0))), str(reached), ("=" + answers) if "answers" in lead else "",
        repr(float(lead["finished"])) if finishing else "", tier, str(lead.get("remind", 0)),
        str(lead.get("open", 0)), "1" if delta.get("test") else "0", ended,
        "" if follow is None else str(int(follow)), fol_ref, repr(float(delta.get("at", now))),
        "1" if lead.get("consult") else "", repr(now + lease),
        "" if lead.get("moved") is None else str(int(lead["moved"])),
        qual, source, day_of(begun) if lid else "", "\t".join(tags),
    ]
    return keys, args


# ---- reading ------------------------------------------------------------------------------------


def day_start(day: date) -> float:
    """00:00 of a Japan-time date, in seconds since the epoch."""
    return datetime(day.year, day.month, day.day, tzinfo=TZ).timestamp()


def japan_date(ts: float) -> date:
    return datetime.fromtimestamp(ts, TZ).date()


def _bounds(start: date | None, end: date | None) -> tuple[str, str]:
    """ZCOUNT bounds of diagnoses started from ``start`` to ``end`` (both included, Japan time)."""
    lo = repr(day_start(start)) if start is not None else "-inf"
    hi = "(" + repr(day_start(end + timedelta(days=1))) if end is not None else "+inf"
    return lo, hi


def _in_bounds(ts: float, start: date | None, end: date | None) -> bool:
    return (start is None or ts >= day_start(start)) and (end is None or ts < day_start(end + timedelta(days=1)))


def _decode(h: Mapping[Any, Any]) -> dict[str, str]:
    return {text(k): text(v) for k, v in h.items()}


def figures_step(shard: int, start: date | None, end: date | None, channel: str | None, tag: str | None,
                 now: float, expiry: float, rows: bool) -> Eval:
    """One shard's figures summed (:data:`FIGURES_LUA`)."""
    return Eval(FIGURES_LUA, [days_key(shard), channels_key(shard), followers_key(shard), consult_open_key(shard)],
                [f"{base(shard)}:", start.strftime("%Y%m%d") if start else "", end.strftime("%Y%m%d") if end else "",
                 channel or "", tag or "", "\t".join(sorted(TEST_CHANNELS)), str(int((now - expiry) // 3600)),
                 str(int(now // 3600)), "1" if rows else ""])


def read_figures(r: Any, start: date | None, end: date | None, channel: str | None, tag: str | None,
                 now: float, expiry: float, rows: bool = False) -> dict[str, int]:
    """Every shard's figures summed: one script call per shard (:data:`FIGURES_LUA`'s names), all sent in one
    pipelined round trip on one server (a result's peer line reads them in the webhook); a Cluster's shards
    live on several nodes, so there each is a call of its own."""
    steps = [figures_step(shard, start, end, channel, tag, now, expiry, rows) for shard in range(SHARDS)]

    def fill(pipe: Any) -> None:
        for step in steps:
            pipe.eval(step.lua, len(step.keys), *step.keys, *step.args)

    replies = [r.do(step) for step in steps] if r.cluster else r.do(Batch(fill))
    out: dict[str, int] = {}
    for flat in replies:
        for i in range(0, len(flat), 2):
            name = text(flat[i])
            out[name] = out.get(name, 0) + int(text(flat[i + 1]))
    return out


def pick_tag(source: str | None = None, variant: str | None = None, version: str | None = None) -> str | None:
    """The one segment a figure is narrowed to (None: the channels' own); at most one may be given."""
    given = [t for t in (source and segments.source_tag(source), variant and _variant_tag(variant),
                         version and segments.version_tag(version)) if t]
    if len(given) > 1:
        raise InvalidInput("give one of source, variant and version")
    return given[0] if given else None


def _variant_tag(variant: str) -> str:
    exp, _, name = str(variant).partition(":")
    if not exp or not name:
        raise InvalidInput("variant must be <experiment>:<variant>")
    return segments.variant_tag(exp, name)


class Analytics:
    """The operator's figures and leads (sync: redis-py, plain or Cluster). ``expiry``: the seconds after
    which an unfinished diagnosis no longer counts as in progress (CRMBOT_CONVERSATION_TTL). ``keep``: the
    figures read are kept for the instance's life (the console makes one per request: a page that shows
    the funnel, its series and the followers reads each shard once); else each call reads them."""

    def __init__(self, client: Any, *, clock: Callable[[], float] = time.time, expiry: float = 7 * 86400,
                 keep: bool = False) -> None:
        self.r = runner(client)
        self.clock = clock
        self.expiry = expiry
        self.keep = keep
        self._read: dict[tuple[Any, ...], dict[str, int]] = {}

    # -- figures ---------------------------------------------------------------------------------

    def figures(self, start: date | None = None, end: date | None = None, channel: str | None = None,
                tag: str | None = None) -> dict[str, int]:
        """The summed figures (:data:`FIGURES_LUA`), per-day rows included; read once per instance."""
        key = (start, end, channel, tag)
        if key in self._read:
            return self._read[key]
        found = read_figures(self.r, start, end, channel, tag, self.clock(), self.expiry, rows=True)
        if self.keep:
            self._read[key] = found
        return found

    def _any(self) -> dict[str, int]:
        """Whichever figures were read already (the totals that do not depend on a range), else a fresh read."""
        return next(iter(self._read.values())) if self._read else self.figures(date.max, date.min)

    def channels(self, channel: str | None = None) -> list[str]:
        """The channels a figure sums: the one asked for, else every channel with leads but the tests'."""
        if channel is not None:
            return [channel]
        found = {name[len("channel:"):] for name in self._any() if name.startswith("channel:")}
        return sorted(found - TEST_CHANNELS)

    def funnel(self, start: date | None = None, end: date | None = None, channel: str | None = None,
               source: str | None = None, *, variant: str | None = None, version: str | None = None
               ) -> dict[str, Any]:
        """Diagnoses started from ``start`` to ``end`` (Japan-time dates, both included; None: open):

            {"started": n, "finished": n, "in_progress": n, "stopped": n,
             "questions": [{"q": 1, "shown": n, "answered": n, "in_progress": n, "stopped": n,
                            "answers": {"A": n, "B": n, "C": n, "D": n}, "dropoff": 0.25 | None,
                            "nudged": n, "resumed": n}, ... 10 items],
             "tiers": {"A": n, "B": n, "C": n}, "recovered": n}

        Per question ``nudged``: diagnoses left at q that got the drop-off nudge (bot/nudges.py);
        ``resumed``: of those, the ones that answered q after it. ``recovered``: diagnoses that finished
        after a nudge.

        ``stopped``: diagnoses that ended without finishing (restarted, unfollowed, expired), so
        started = finished + in_progress + stopped. Per question, ``shown``/``answered``: diagnoses shown /
        that answered question q at least once; ``in_progress``/``stopped``: those whose highest question
        is q and that may still go on / that ended there (shown = answered + in_progress + stopped);
        ``answers``: the final answers of finished diagnoses; ``dropoff``: stopped / (answered + stopped),
        the share of the diagnoses that went past q or ended there that ended there (those still at q are
        left out; None when none). Every channel but the tests' when ``channel`` is None; only one segment's
        diagnoses when ``source``, ``variant`` ("<experiment>:<variant>") or ``version`` is given (one of them).
        In progress: changed within the expiry, to the hour (the counters' buckets).
        """
        f = self.figures(start, end, channel, pick_tag(source, variant, version))
        tiers = {t: f.get(f"t{t}", 0) for t in TIERS}
        finished = sum(tiers.values())
        shown = [f.get(f"r{q}", 0) for q in range(QUESTION_COUNT + 1)] + [0]
        here = [f.get(f"p{q}", 0) for q in range(QUESTION_COUNT + 1)]
        in_progress = sum(here)
        questions = []
        for q in range(1, QUESTION_COUNT + 1):
            answered = shown[q + 1] if q < QUESTION_COUNT else finished
            stopped = shown[q] - answered - here[q]
            questions.append({
                "q": q,
                "shown": shown[q],
                "answered": answered,
                "in_progress": here[q],
                "stopped": stopped,
                "answers": {x: f.get(f"a{q}{x}", 0) for x in CHOICES},
                "dropoff": round(stopped / (answered + stopped), 4) if answered + stopped > 0 else None,
                "nudged": f.get(f"n{q}", 0),
                "resumed": f.get(f"s{q}", 0),
            })
        started = f.get("started", 0)
        return {"started": started, "finished": finished, "in_progress": in_progress,
                "stopped": max(0, started - finished - in_progress), "questions": questions, "tiers": tiers,
                "recovered": f.get("rec", 0)}

    def series(self, start: date, end: date, bucket: str = "day", channel: str | None = None,
               source: str | None = None, *, variant: str | None = None, version: str | None = None
               ) -> list[dict[str, Any]]:
        """Diagnoses started per day, week (from Monday; labelled by that Monday) or month ("2026-12"),
        from ``start`` to ``end`` (Japan time, both included; the first and last buckets are clipped):
        ``[{"label": "2026-12-01", "started": n, "finished": n, "tiers": {"A": n, "B": n, "C": n}}]``."""
        if bucket not in BUCKETS:
            raise InvalidInput(f"bucket must be one of {', '.join(BUCKETS)}, not {str(bucket)[:10]!r}")
        if end < start:
            return []
        f = self.figures(start, end, channel, pick_tag(source, variant, version))
        out: list[dict[str, Any]] = []
        day = start
        while day <= end:
            if bucket == "day":
                last, label = day, day.isoformat()
            elif bucket == "week":
                first = day - timedelta(days=day.weekday())
                last, label = first + timedelta(days=6), first.isoformat()
            else:
                first = day.replace(day=1)
                last = (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)
                label = f"{first.year:04d}-{first.month:02d}"
            row: dict[str, Any] = {"label": label, "started": 0, "finished": 0, "tiers": dict.fromkeys(TIERS, 0)}
            while day <= min(last, end):
                d = day.strftime("%Y%m%d")
                row["started"] += f.get(f"{d}|started", 0)
                for t in TIERS:
                    row["tiers"][t] += f.get(f"{d}|t{t}", 0)
                day += timedelta(days=1)
            row["finished"] = sum(row["tiers"].values())
            out.append(row)
        return out

    def followers(self) -> int:
        """People following now (LINE follow events applied since the figures began; tests not counted)."""
        return self._any().get("followers", 0)

    def open_consultations(self) -> int:
        """Leads whose consultation status is "new" (tests not counted)."""
        return self._any().get("open", 0)

    # -- leads -----------------------------------------------------------------------------------

    def lead(self, lead_id: str) -> Lead | None:
        if not isinstance(lead_id, str) or not lead_id or len(lead_id) > 300:
            return None
        found = self._fetch([lead_id])
        return found[0] if found else None

    def person(self, channel: str, user_id: str) -> list[Lead]:
        """Every diagnosis of one person, oldest first."""
        return self._fetch(self.person_ids(channel, user_id))

    def person_ids(self, channel: str, user_id: str) -> list[str]:
        ref = person_ref(channel, user_id)
        return person_leads(ref, parse_person(self.r.hget(people_key(shard_of_person(ref)), ref)))

    def _people(self, refs: Sequence[str]) -> dict[str, Person]:
        """Each person's field (one pipeline, an HMGET per shard)."""
        by_shard: dict[int, list[str]] = {}
        for ref in refs:
            by_shard.setdefault(shard_of_person(ref), []).append(ref)
        if not by_shard:
            return {}
        with self.r.pipeline(transaction=False) as p:
            for shard, group in by_shard.items():
                p.hmget(people_key(shard), group)
            got = p.execute()
        return {ref: parse_person(raw) for group, raws in zip(by_shard.values(), got, strict=True)
                for ref, raw in zip(group, raws, strict=True)}

    def latest(self, people: Sequence[str]) -> dict[str, Lead]:
        """Each person's (``"<ch>:<user id>"``) latest finished diagnosis, else their latest one; a person
        with none is left out. Two round trips, however many people."""
        refs = list(dict.fromkeys(people))
        if not refs:
            return {}
        found = [person_leads(ref, person) for ref, person in self._people(refs).items()]
        by_person: dict[str, list[Lead]] = {}
        for lead in self._fetch(x for ids in found for x in ids):
            by_person.setdefault(person_ref(lead.channel, lead.user_id), []).append(lead)
        return {ref: max([x for x in leads if x.is_finished] or leads, key=lambda x: (x.started, x.id))
                for ref, leads in by_person.items()}

    def sources_of(self, people: Sequence[str]) -> dict[str, str]:
        """Where each person (``"<ch>:<user id>"``) came from: the source of their latest diagnosis (a person
        keeps their first one); those with none are left out. Two round trips, however many people."""
        refs = list(dict.fromkeys(people))
        if not refs:
            return {}
        found = {ref: ids[-1] for ref, person in self._people(refs).items() if (ids := person_leads(ref, person))}
        with self.r.pipeline(transaction=False) as p:
            for lid in found.values():
                p.hget(lead_key(lid), "src")
            got = p.execute()
        return {ref: text(src) for ref, src in zip(found, got, strict=True) if src}

    def names(self, people: Sequence[str]) -> dict[str, str]:
        """The display names kept of these people (``"<ch>:<user id>"``), those known only."""
        return {ref: person.name for ref, person in self._people(list(dict.fromkeys(people))).items() if person.name}

    def leads(
        self,
        *,
        tier: str | None = None,
        status: str | None = None,
        start: date | None = None,
        end: date | None = None,
        channel: str | None = None,
        consult: str | None = None,
        source: str | None = None,
        limit: int | None = 200,
        offset: int = 0,
    ) -> list[Lead]:
        """Leads newest first (by start), filtered: ``tier`` A/B/C (finished only), ``status`` one of
        LEAD_STATUSES, ``start``/``end`` Japan-time dates of the start, ``channel`` (None: every channel
        but the tests'), ``consult`` a consultation status, ``source`` where the person came from. ``limit``
        None: all of them."""
        out: list[Lead] = []
        for i, lead in enumerate(self.iter_leads(tier=tier, status=status, start=start, end=end, channel=channel,
                                                 consult=consult, source=source)):
            if i < offset:
                continue
            if limit is not None and len(out) >= limit:
                break
            out.append(lead)
        return out

    def iter_leads(
        self,
        *,
        tier: str | None = None,
        status: str | None = None,
        start: date | None = None,
        end: date | None = None,
        channel: str | None = None,
        consult: str | None = None,
        source: str | None = None,
    ) -> Iterator[Lead]:
        """:meth:`leads` without paging, read in chunks from the shards' indexes, merged (the CSV export)."""
        if tier is not None and tier not in TIERS:
            raise InvalidInput(f"tier must be one of {', '.join(TIERS)}")
        if status is not None and status not in LEAD_STATUSES:
            raise InvalidInput(f"status must be one of {', '.join(LEAD_STATUSES)}")
        if consult is not None and consult not in STATUSES:
            raise InvalidInput(f"consultation status must be one of {', '.join(STATUSES)}")
        now = self.clock()
        chans = self.channels(channel)

        def wanted(lead: Lead) -> bool:
            return (lead.channel in chans and (status is None or lead.status(now, self.expiry) == status)
                    and (tier is None or lead.tier == tier) and (consult is None or lead.consult == consult)
                    and (source is None or lead.source == source))

        if status == "in_progress":
            active = [x for x in self._active() if _in_bounds(x.started, start, end) and wanted(x)]
            yield from sorted(active, key=lambda x: (x.started, x.id), reverse=True)
            return
        segs = [source_segment(ch, source) for ch in chans]
        if tier is not None:
            sets = [tier_key(ch, tier, k) for ch in chans for k in range(SHARDS)]
        elif status == "finished":
            sets = [tier_key(ch, t, k) for ch in chans for t in TIERS for k in range(SHARDS)]
        elif source is not None:  # the source's index holds all its diagnoses
            sets = [started_key(seg, k) for seg in segs for k in range(SHARDS)]
        else:  # the unfinished, the finished, and the consultations asked for without a diagnosis
            sets = [key for ch in chans for k in range(SHARDS)
                    for key in (started_key(ch, k), *(tier_key(ch, t, k) for t in TIERS), asked_key(ch, k))]
        lo, hi = _bounds(start, end)
        batch: list[str] = []
        for lead_ref in heapq.merge(*(self._ids_desc(k, lo, hi) for k in sets), reverse=True):
            batch.append(lead_ref[1])
            if len(batch) >= 200:
                yield from (x for x in self._fetch(batch) if wanted(x))
                batch = []
        if batch:
            yield from (x for x in self._fetch(batch) if wanted(x))

    def _ids_desc(self, key: str, lo: str, hi: str, chunk: int = 200) -> Iterator[tuple[float, str]]:
        offset = 0
        while True:
            got = self.r.zrevrangebyscore(key, hi, lo, start=offset, num=chunk, withscores=True)
            for member, score in got:
                yield float(score), text(member)
            if len(got) < chunk:
                return
            offset += chunk

    def _active(self) -> list[Lead]:
        """The diagnoses in progress now (changed within the expiry and not closed)."""
        now = self.clock()
        with self.r.pipeline(transaction=False) as p:
            for k in range(SHARDS):
                p.zrangebyscore(active_key(k), now - self.expiry, "+inf")
            found = p.execute()
        ids = [text(x) for got in found for x in got]
        return [x for x in self._fetch(ids) if x.status(now, self.expiry) == "in_progress"]

    def _fetch(self, ids: Iterable[str]) -> list[Lead]:
        ids = list(ids)
        if not ids:
            return []
        with self.r.pipeline(transaction=False) as p:
            for lid in ids:
                p.hgetall(lead_key(lid))
            hashes = p.execute()
        names = self.names([_person_of(lid) for lid in ids])
        out = []
        for lid, h in zip(ids, hashes, strict=True):
            lead = Lead.from_hash(lid, _decode(h), names.get(_person_of(lid), ""))
            if lead is not None:
                out.append(lead)
        return out

    # -- the operator's changes ------------------------------------------------------------------

    def set_consult_status(self, lead_id: str, status: str, *, by: str, now: float) -> bool:
        """Set a lead's consultation status (STATUSES); False when there is no such lead."""
        if status not in STATUSES:
            raise InvalidInput(f"consultation status must be one of {', '.join(STATUSES)}")
        if not isinstance(lead_id, str) or not lead_id or len(lead_id) > 300:
            return False
        return self.set_consult(lead_id, status, by=by, now=now) > 0

    def set_consult(self, lead_id: str, status: str, *, by: str, now: float) -> int:
        """:meth:`set_consult_status`, saying what happened: 0 no such lead, 1 changed (and written to the
        lead's history), 2 it already was that status."""
        if status not in STATUSES:
            raise InvalidInput(f"consultation status must be one of {', '.join(STATUSES)}")
        if not isinstance(lead_id, str) or not lead_id or len(lead_id) > 300:
            return 0
        k = shard_of_lead(lead_id)
        self._read.clear()
        return int(self.r.script(SET_CONSULT_LUA)(
            keys=[lead_key(lead_id), consult_open_key(k), consult_worked_key(k), history_key(lead_id)],
            args=[lead_id, status, repr(now), str(by)[:100], HISTORY_MAX]))

    def set_name(self, channel: str, user_id: str, name: str) -> None:
        """Keep a person's display name (from the profile fetch at follow) while they follow."""
        step = set_name_step(channel, user_id, name)
        if step is not None:
            self.r.do(step)

    def forget_name(self, channel: str, user_id: str) -> None:
        self.r.do(forget_name_step(channel, user_id))

    # -- applying (the worker does this: bot/analytics_sink.py; here for tools and tests) -----------

    def apply(self, delta: Mapping[str, Any], *, now: float | None = None) -> bool:
        """Apply one delta; True when the operator is to be told of a first consultation request
        (then call :meth:`notified` once told)."""
        self._read.clear()
        return bool(self.r.do(apply_step(delta, self.clock() if now is None else now, self.expiry)))

    def notified(self, lead_id: str) -> None:
        self.r.do(notified_step(lead_id))

    def erase(self, channel: str, user_id: str) -> int:
        """Erase one person's leads (:data:`ERASE_LUA`); how many went."""
        self._read.clear()
        return int(self.r.do(erase_step(channel, user_id, self.clock(), self.expiry)))

    def uncount(self, lead_id: str) -> bool:
        """Take one lead out of every figure and delete it (:data:`UNCOUNT_LUA`; the demo's removal)."""
        self._read.clear()
        k = shard_of_lead(lead_id)
        return bool(self.r.do(Eval(UNCOUNT_LUA, [lead_key(lead_id)],
                                   [f"{base(k)}:", repr(self.clock()), repr(float(self.expiry)), lead_id])))


def clean_name(name: str) -> str:
    """A display name as kept: printable, trimmed, at most MAX_NAME characters."""
    if not isinstance(name, str):
        return ""
    return "".join(c for c in name if c.isprintable()).strip()[:MAX_NAME]


# ---- the operations both tiers run (the web tier's Analytics, the worker's sink), each written once ----


def apply_step(delta: Mapping[str, Any], now: float, expiry: float) -> Eval:
    """Apply one delta (:data:`APPLY_LUA`); its reply is 1 when the operator is to be told of a first
    consultation request."""
    keys, args = apply_call(delta, now, expiry)
    return Eval(APPLY_LUA, keys, args)


def nudged_step(channel: str, user_id: str, sid: int, begun: float, q: int, at: float,
                expiry: float = 7 * 86400) -> Eval:
    """Mark diagnosis ``sid`` (started at ``begun``) nudged back to question ``q`` (1-based) at ``at``
    (:data:`NUDGED_LUA`; idempotent)."""
    lid = lead_id(channel, user_id, sid, begun)
    k = shard_of(channel, user_id)
    return Eval(NUDGED_LUA, [lead_key(lid), days_key(k)],
                [f"{base(k)}:", repr(float(at)), repr(float(expiry)), str(q), repr(float(at)), day_of(begun), channel])


def erase_step(channel: str, user_id: str, now: float, expiry: float) -> Eval:
    k = shard_of(channel, user_id)
    return Eval(ERASE_LUA, [people_key(k), followers_key(k)],
                [f"{base(k)}:", repr(now), repr(float(expiry)), person_ref(channel, user_id)])


def notified_step(lead_id: str) -> Eval:
    """Mark the operator told of the lead's consultation request (:data:`NOTIFIED_LUA`)."""
    return Eval(NOTIFIED_LUA, [lead_key(lead_id)], [])


def set_name_step(channel: str, user_id: str, name: str) -> Eval | None:
    """Keep a follower's display name (:data:`SET_NAME_LUA`); None when nothing is left of it once cleaned."""
    clean = clean_name(name)
    return _name_step(channel, user_id, clean) if clean else None


def _name_step(channel: str, user_id: str, name: str) -> Eval:
    k = shard_of(channel, user_id)
    return Eval(SET_NAME_LUA, [people_key(k)], [f"{base(k)}:", "0", "0", person_ref(channel, user_id), name])


def forget_name_step(channel: str, user_id: str) -> Eval:
    return _name_step(channel, user_id, "")


def name_of(r: Any, ref: str) -> str:
    """One person's display name kept ("" none)."""
    return parse_person(r.hget(people_key(shard_of_person(ref)), ref)).name


async def set_name_async(client: Any, channel: str, user_id: str, name: str) -> None:
    """:meth:`Analytics.set_name` for the worker's redis.asyncio client (the profile fetch at follow)."""
    step = set_name_step(channel, user_id, name)
    if step is not None:
        await async_runner(client).do(step)


async def forget_name_async(client: Any, channel: str, user_id: str) -> None:
    await async_runner(client).do(forget_name_step(channel, user_id))


class PeerFigures:
    """How other shops answered, for a result's peer line (conversations.results.peer_shares): the finished
    diagnoses and their A answers per question, summed over every channel but the tests' from the day
    counters (one script call per shard: :data:`FIGURES_LUA`; never a scan) and kept ``max_age`` seconds
    once they are enough to be shown (29 finished: the 30th, finishing, counts itself), so a busy hour
    reads them once a minute, only on steps that show a result; below that they are read each time, so the
    line appears with the 30th finished diagnosis exactly. ``clock``: the core's."""

    def __init__(self, client: Any, *, clock: Callable[[], float] = time.time, max_age: float = 60.0) -> None:
        self.r = runner(client)
        self.clock = clock
        self.max_age = max_age
        self._kept: tuple[float, PeerCounts] | None = None

    def counts(self) -> PeerCounts:
        now = self.clock()
        if self._kept is not None and 0 <= now - self._kept[0] < self.max_age:
            return self._kept[1]
        self._kept = None
        f = read_figures(self.r, None, None, None, None, now, 0.0)
        found = PeerCounts(sum(f.get(f"t{t}", 0) for t in TIERS),
                           tuple(f.get(f"a{q}A", 0) for q in range(1, QUESTION_COUNT + 1)))
        if found.finished >= PEER_MIN - 1:
            self._kept = (now, found)
        return found
