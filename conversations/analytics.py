"""The operator's figures: one *lead* per diagnosis, and the funnel, tiers and answers counted per diagnosis.

How figures are kept (no scan of all users, no Redis round trip added to a webhook):

1. The core (bot/core.py) computes :func:`delta_of` for each step it commits: a small dict of what
   the step changed that the operator counts. It is committed by the same Lua script as the state
   change, as a figures record of its own in the user's hash slot (:class:`conversations.jobs.Figures`,
   queued like a job but never sent: not inside a message): a step is counted exactly when it is stored.
2. A worker applies each record from its own queue entry (bot/analytics_sink.py) with :data:`APPLY_LUA`,
   then deletes it. Applying is idempotent and order-free, so a retried or recovered record, or an older
   record applied after a newer one, never counts twice nor undoes anything: membership of sorted sets keyed by the
   diagnosis (a set member is there once however often it is added), the highest question reached
   only ever grows, a finished diagnosis stays finished, and the lead's other fields are overwritten
   only by a delta with a greater change counter ``n`` (the user's record's counter).
3. :class:`Analytics` reads them: ZCOUNT over the diagnoses' start times (Japan-time dates);
   :class:`PeerFigures` reads the finished diagnoses and the A answers per question (ZCARD) for a result's
   peer line (conversations.results.peer_shares).

A lead's id is ``"<channel>:<user id>:<diagnosis number>-<start in ms, hex>"``: the diagnosis number
alone is not unique, since a user's record may expire (or be dropped on unfollow) and numbering
starts again from 1. Treat ids as opaque; :class:`Lead` carries the parts.

Storage, all in the one hash slot ``{stats}`` (so one Lua script may touch several keys on a Redis
Cluster). Every sorted set of diagnoses is scored by the diagnosis' start time:

    crmbot:{stats}:lead:<lead id>            the lead (hash; fields below, see :meth:`Lead.from_hash`)
    crmbot:{stats}:started:<ch>              every diagnosis started on channel ch
    crmbot:{stats}:asked:<ch>                leads of consultations requested with no diagnosis taken (sid 0;
                                             score: the first request): in the leads, never in the funnel
    crmbot:{stats}:reached:<ch>:<q>          diagnoses whose highest question shown is q (1..10); each is
                                             in exactly one, moved forward as it goes on
    crmbot:{stats}:tier:<ch>:<T>             finished diagnoses of tier T (A/B/C)
    crmbot:{stats}:answer:<ch>:<q>:<X>       finished diagnoses whose final answer to question q is X
    crmbot:{stats}:person:<ch>:<user id>     one person's diagnoses
    crmbot:{stats}:nudged:<ch>:<q>           diagnoses nudged back to question q after a drop-off (bot/nudges.py)
    crmbot:{stats}:resumed:<ch>:<q>          of those, the ones that answered q after the nudge
    crmbot:{stats}:recovered:<ch>            diagnoses that finished after a nudge
    crmbot:{stats}:active                    diagnoses in progress (score: last change, not the start);
                                             entries older than the expiry are pruned
    crmbot:{stats}:consult:open              consultations with status "new" (score: when requested)
    crmbot:{stats}:consult:worked            leads whose status an operator set to another (score: start)
    crmbot:{stats}:lead:<lead id>:notes      the operator's notes on a lead (conversations/lead_work.py)
    crmbot:{stats}:lead:<lead id>:history    its status and assignee changes, oldest first (JSON entries)
    crmbot:{stats}:anon:<ch>[:<T>]           diagnoses of erased people still counted (bot/privacy.py: in
                                             started:<ch> / tier:<ch>:<T> under a random id), so a list's
                                             total can leave them out
    crmbot:{stats}:assignees                 names ever assigned (score: last used), the console's choices
    crmbot:{stats}:followers                 who follows now (set of "<ch>:<user id>")
    crmbot:{stats}:follow                    the latest follow/unfollow applied per person (hash:
                                             "<ch>:<user id>" -> "<time>|1" or "<time>|0")
    crmbot:{stats}:names                     display names (hash: "<ch>:<user id>" -> name), kept while
                                             the person follows
    crmbot:{stats}:channels                  channels that have leads (set)

Sources (where a person came from: 「診断 NAME」, ``crmbot line links``): a lead with a source is also in
``started``, ``reached``, ``tier`` and ``answer`` sets of the *segment* ``"<ch>~<source>"`` (:func:`segment`),
so the funnel, the series and the leads filtered by a source count those sets exactly as a channel's (no
scan). A lead keeps the first source it is seen with.

The funnel is derived from ``reached`` because questions are shown in order and answering question q
(q < 10) shows q+1 in the same step: a diagnosis was shown q iff it reached q or more, and answered q
iff it reached q+1 or more (question 10: iff it finished). Lead hash fields: ch, u, sid, b (start),
t (last change), n, r (reached), a (answers), f (finished at), tier, rm (reminder 1/0), x (closed: it
finished, or ended without finishing), test, c (consultation status), ca (requested or first set),
cr (requested at), cn (operator notified: "done" or a lease end), cu/cby (status last set, by whom), as (the assignee),
mv/mvt (the quarterly reminder asked whether this result's point to fix had moved: "1" yes, "0" not yet;
when answered: the latest answer is kept), qa (the qualification answers: ``Conv.qual``), src (the source),
ng/ngt (the diagnosis was nudged at question ng, at time ngt: set
once by :data:`NUDGED_LUA`; a later step's figures that answer ng add it to ``resumed``, a finish after ngt to
``recovered``: sorted-set members, so each is counted once however often a record is applied).

Users of the try-it channel ("web") are tests: their leads are kept (channel "web") but never in a
figure summed over channels.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from conversations import inputs
from conversations.errors import InvalidInput
from conversations.keys import PREFIX, Subject
from conversations.machine import DONE, Conv
from conversations.outputs import ConsultAck, Output, Question, Result
from conversations.redis_ops import Call, Eval, async_runner, call, runner, text
from conversations.results import PEER_MIN, PeerCounts
from scoring import CHOICES, QUESTION_COUNT, TIERS, next_point, tier_for
from scoring.periods import DEFAULT_TZ

STATUSES = ("new", "contacted", "booked", "closed")  # a lead's consultation status
LEAD_STATUSES = ("finished", "in_progress", "stopped")  # how far a diagnosis got
TEST_CHANNELS = frozenset({"web", "cli"})  # their users are tests: never in a figure summed over channels
BUCKETS = ("day", "week", "month")
NOTIFY_LEASE = 60.0  # seconds one worker has to run the first-consultation hook before another may

TZ = ZoneInfo(DEFAULT_TZ)
STATS = f"{PREFIX}:{{stats}}"
ACTIVE = f"{STATS}:active"
CONSULT_OPEN = f"{STATS}:consult:open"
CONSULT_WORKED = f"{STATS}:consult:worked"
HISTORY_MAX = 500  # a lead's status and assignee changes kept (the oldest go first)
FOLLOWERS = f"{STATS}:followers"
FOLLOW = f"{STATS}:follow"
NAMES = f"{STATS}:names"
CHANNELS = f"{STATS}:channels"
MAX_NAME = 100


# ---- keys -----------------------------------------------------------------------------------------


def lead_key(lead_id: str) -> str:
    return f"{STATS}:lead:{lead_id}"


def history_key(lead_id: str) -> str:
    return f"{STATS}:lead:{lead_id}:history"


def notes_key(lead_id: str) -> str:
    return f"{STATS}:lead:{lead_id}:notes"


def anon_key(channel: str, tier: str = "") -> str:
    return f"{STATS}:anon:{channel}" + (f":{tier}" if tier else "")


def started_key(channel: str) -> str:
    return f"{STATS}:started:{channel}"


def asked_key(channel: str) -> str:
    return f"{STATS}:asked:{channel}"


def reached_key(channel: str, q: int) -> str:
    return f"{STATS}:reached:{channel}:{q}"


def tier_key(channel: str, tier: str) -> str:
    return f"{STATS}:tier:{channel}:{tier}"


def answer_key(channel: str, q: int, letter: str) -> str:
    return f"{STATS}:answer:{channel}:{q}:{letter}"


def segment(channel: str, source: str | None) -> str:
    """The sets a figure of ``channel`` counts: the channel's own, or those of its leads from ``source``."""
    return f"{channel}~{source}" if source else channel


def nudged_key(channel: str, q: int) -> str:
    return f"{STATS}:nudged:{channel}:{q}"


def resumed_key(channel: str, q: int) -> str:
    return f"{STATS}:resumed:{channel}:{q}"


def recovered_key(channel: str) -> str:
    return f"{STATS}:recovered:{channel}"


def person_key(channel: str, user_id: str) -> str:
    return f"{STATS}:person:{channel}:{user_id}"


def person_ref(channel: str, user_id: str) -> str:
    return f"{channel}:{user_id}"


def lead_id(channel: str, user_id: str, sid: int, begun: float) -> str:
    """The id of diagnosis ``sid`` of a user, started at ``begun`` (seconds, as stored: 3 decimals)."""
    return f"{channel}:{user_id}:{sid}-{round(begun * 1000):x}"


def _person_of(lead: str) -> str:
    return lead.rsplit(":", 1)[0]


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
        if cur.qual:
            lead["qual"] = cur.qual
        if cur.src:
            lead["source"] = cur.src
        d["lead"] = lead
    if len(d.keys() - {"at", "test"}) == 0:
        return None
    return d


# ---- applying a delta (Lua, in the {stats} slot) -------------------------------------------------

# KEYS[1] the lead (hash)                 KEYS[2] started:<ch>        KEYS[3] person:<ch>:<user>
# KEYS[4] active                          KEYS[5] followers (set)     KEYS[6] follow (hash)
# KEYS[7] names (hash)                    KEYS[8] consult:open        KEYS[9] the ended lead (hash)
# KEYS[10] tier:<ch>:<T>                  KEYS[11] channels (set)
# KEYS[12..21] reached:<ch>:1..10         KEYS[22..31] answer:<ch>:<q>:<X> for q = 1..10
# KEYS[32] started:<seg>   KEYS[33] tier:<seg>:<T>   KEYS[34..43] reached:<seg>:1..10
# KEYS[44..53] answer:<seg>:<q>:<X> for q = 1..10   (<seg>: "<ch>~<source>", see segment())
# KEYS[54..63] resumed:<ch>:1..10         KEYS[64] recovered:<ch> (a lead nudged at q: see NUDGED_LUA)
# (a key a delta does not use is given as KEYS[1]; it is then not touched)
# ARGV[1] lead id ("" none)  [2] channel  [3] user  [4] sid  [5] n  [6] begun  [7] updated
# [8] reached  [9] "=" .. answers, or "" (unchanged)  [10] finished at ("" not in this step)  [11] tier
# [12] remind 1/0  [13] open 1/0  [14] test 1/0  [15] ended lead id ("" none)
# [16] follow "1" / "0" / ""  [17] "<ch>:<user>"  [18] the step's time  [19] consult "1" / ""
# [20] the hook's lease end  [21] now  [22] active entries changed before this are pruned
# [23] the reminder's "has the point moved?" answered: "1" / "0" / "" (kept unless a later answer is there)
# [24] the qualification answers ("" none: unchanged)  [25] the source ("" none)
# Returns 1 when the operator is to be told of a first consultation request (the caller runs the
# hook, then calls NOTIFIED_LUA), else 0.
APPLY_LUA = """
local notify = 0
local id = ARGV[1]
local test = ARGV[14] == '1'
local s = {}
if id ~= '' then
  s = redis.call('HMGET', KEYS[1], 'n', 'r', 'f', 'x', 'cr', 'cn', 'c', 'src')
  -- a diagnosis from before the figures began, first seen as it ends (nothing shown, not finished): no lead
  if not s[1] and ARGV[8] == '0' and ARGV[10] == '' and ARGV[19] ~= '1' then id = '' end
end
if id ~= '' then
  local lead = KEYS[1]
  local newer = tonumber(ARGV[5]) > (tonumber(s[1]) or -1)
  local finished = s[3] or ''
  redis.call('HSET', lead, 'ch', ARGV[2], 'u', ARGV[3], 'sid', ARGV[4], 'b', ARGV[6])
  if test then redis.call('HSET', lead, 'test', '1') end
  redis.call('ZADD', KEYS[2], ARGV[6], id)
  redis.call('ZADD', KEYS[3], ARGV[6], id)
  redis.call('SADD', KEYS[11], ARGV[2])
  if newer then
    redis.call('HSET', lead, 'n', ARGV[5], 't', ARGV[7], 'rm', ARGV[12])
    if finished == '' and ARGV[9] ~= '' then redis.call('HSET', lead, 'a', string.sub(ARGV[9], 2)) end
    if ARGV[24] ~= '' then redis.call('HSET', lead, 'qa', ARGV[24]) end
  end
  local sr = tonumber(s[2]) or 0
  local r = tonumber(ARGV[8])
  if r > sr then
    if sr > 0 then redis.call('ZREM', KEYS[11 + sr], id) end
    redis.call('ZADD', KEYS[11 + r], ARGV[6], id)
    redis.call('HSET', lead, 'r', r)
  end
  if ARGV[10] ~= '' then
    if finished == '' then
      redis.call('HSET', lead, 'f', ARGV[10], 'a', string.sub(ARGV[9], 2), 'tier', ARGV[11])
      finished = ARGV[10]
    end
    redis.call('ZADD', KEYS[10], ARGV[6], id)
    for i = 1, 10 do redis.call('ZADD', KEYS[21 + i], ARGV[6], id) end
  end
  if ARGV[13] == '0' or finished ~= '' then
    redis.call('HSET', lead, 'x', '1')
    redis.call('ZREM', KEYS[4], id)
  elseif newer and not s[4] then
    redis.call('ZADD', KEYS[4], ARGV[7], id)
  end
  local src = s[8]
  if ARGV[25] ~= '' and (not src or src == '') then
    redis.call('HSET', lead, 'src', ARGV[25])
    src = ARGV[25]
  end
  if ARGV[25] ~= '' and src == ARGV[25] then
    -- the source's segment: the same sets as the channel's (reached: only the highest, as there)
    local top = math.max(sr, r)
    redis.call('ZADD', KEYS[32], ARGV[6], id)
    for q = 1, 10 do
      if q == top then redis.call('ZADD', KEYS[33 + q], ARGV[6], id) else redis.call('ZREM', KEYS[33 + q], id) end
    end
    if ARGV[10] ~= '' then
      redis.call('ZADD', KEYS[33], ARGV[6], id)
      for i = 1, 10 do redis.call('ZADD', KEYS[43 + i], ARGV[6], id) end
    end
  end
  if ARGV[23] ~= '' then
    local mvt = redis.call('HGET', lead, 'mvt')
    if not mvt or tonumber(ARGV[18]) >= tonumber(mvt) then
      redis.call('HSET', lead, 'mv', ARGV[23], 'mvt', ARGV[18])
    end
  end
  if ARGV[19] == '1' then
    if not s[5] then
      redis.call('HSET', lead, 'cr', ARGV[18])
      if not s[7] or s[7] == '' then
        redis.call('HSET', lead, 'c', 'new', 'ca', ARGV[18])
        if not test then redis.call('ZADD', KEYS[8], ARGV[18], id) end
      end
    end
    local cn = s[6]
    if not cn or (cn ~= 'done' and tonumber(cn) < tonumber(ARGV[21])) then
      redis.call('HSET', lead, 'cn', ARGV[20])
      notify = 1
    end
  end
end
if id ~= '' then
  local g = redis.call('HMGET', KEYS[1], 'ng', 'ngt', 'a', 'f', 't')
  local ng = tonumber(g[1])
  if ng and ng >= 1 and ng <= 10 then
    if tonumber(g[5] or '0') >= tonumber(g[2]) and (#(g[3] or '') >= ng or g[4]) then
      redis.call('ZADD', KEYS[53 + ng], ARGV[6], id)
    end
    if g[4] and tonumber(g[4]) >= tonumber(g[2]) then redis.call('ZADD', KEYS[64], ARGV[6], id) end
  end
end
if ARGV[15] ~= '' then
  redis.call('HSET', KEYS[9], 'x', '1')
  redis.call('ZREM', KEYS[4], ARGV[15])
end
if ARGV[16] ~= '' and not test then
  local prev = redis.call('HGET', KEYS[6], ARGV[17])
  if not prev or tonumber(ARGV[18]) >= tonumber(string.match(prev, '^[^|]+')) then
    redis.call('HSET', KEYS[6], ARGV[17], ARGV[18] .. '|' .. ARGV[16])
    if ARGV[16] == '1' then
      redis.call('SADD', KEYS[5], ARGV[17])
    else
      redis.call('SREM', KEYS[5], ARGV[17])
      redis.call('HDEL', KEYS[7], ARGV[17])
    end
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', '(' .. ARGV[22])
return notify
"""

# The first-consultation hook ran: the lead's operator was told. KEYS[1] the lead. Returns 1.
NOTIFIED_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'cn', 'done') end
return 1
"""

# A diagnosis was nudged back to question q (bot/nudges.py, after its push is queued): marked once on its
# lead, counted in nudged:<ch>:<q>; a lead already past q since the nudge (its figures applied first) is
# counted as resumed / recovered here, as APPLY_LUA does for a later step.
# KEYS[1] the lead  KEYS[2] nudged:<ch>:<q>  KEYS[3] resumed:<ch>:<q>  KEYS[4] recovered:<ch>
# ARGV[1] lead id  ARGV[2] q (1-based)  ARGV[3] the nudge's time  ARGV[4] the diagnosis' start (its score)
# Returns 1 when marked now, 0 when it was already.
NUDGED_LUA = """
local first = redis.call('HSETNX', KEYS[1], 'ng', ARGV[2])
if first == 1 then redis.call('HSET', KEYS[1], 'ngt', ARGV[3]) end
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
local g = redis.call('HMGET', KEYS[1], 'ng', 'ngt', 'a', 'f', 't')
local ng = tonumber(g[1])
if ng == tonumber(ARGV[2]) then
  if tonumber(g[5] or '0') >= tonumber(g[2]) and (#(g[3] or '') >= ng or g[4]) then
    redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
  end
  if g[4] and tonumber(g[4]) >= tonumber(g[2]) then redis.call('ZADD', KEYS[4], ARGV[4], ARGV[1]) end
end
return first
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

# Keep a display name unless the person's latest follow event is an unfollow.
# KEYS[1] names, KEYS[2] follow; ARGV[1] "<ch>:<user>", ARGV[2] name. Returns 1 when kept.
SET_NAME_LUA = """
local f = redis.call('HGET', KEYS[2], ARGV[1])
if f and string.sub(f, -2) == '|0' then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""


def apply_call(delta: Mapping[str, Any], now: float, expiry: float,
               lease: float = NOTIFY_LEASE) -> tuple[list[str], list[str]]:
    """KEYS and ARGV of :data:`APPLY_LUA` for one delta (as made by :func:`delta_of`)."""
    lead: Mapping[str, Any] = delta.get("lead") or {}
    lid = str(lead.get("id", ""))
    key1 = lead_key(lid) if lid else f"{STATS}:none"
    ch, user = str(lead.get("channel", "")), str(lead.get("user", ""))
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
    seg = segment(ch, source)
    ended = str(delta.get("ended", ""))
    follow = delta.get("follow")
    fol_ref = str(delta.get("person", ""))
    if follow is not None and not fol_ref:
        raise InvalidInput("stats: a follow or unfollow without the person")
    keys = [
        key1,
        (started_key(ch) if str(lead.get("sid", 0)) != "0" else asked_key(ch)) if lid else key1,
        person_key(ch, user) if lid else key1,
        ACTIVE,
        FOLLOWERS,
        FOLLOW,
        NAMES,
        CONSULT_OPEN,
        lead_key(ended) if ended else key1,
        tier_key(ch, tier) if finishing else key1,
        CHANNELS,
        *(reached_key(ch, q) if lid else key1 for q in range(1, QUESTION_COUNT + 1)),
        *(answer_key(ch, q + 1, answers[q]) if finishing else key1 for q in range(QUESTION_COUNT)),
        started_key(seg) if source else key1,
        tier_key(seg, tier) if source and finishing else key1,
        *(reached_key(seg, q) if source else key1 for q in range(1, QUESTION_COUNT + 1)),
        *(answer_key(seg, q + 1, answers[q]) if source and finishing else key1 for q in range(QUESTION_COUNT)),
        *(resumed_key(ch, q) if lid else key1 for q in range(1, QUESTION_COUNT + 1)),
        recovered_key(ch) if lid else key1,
    ]
    args = [
        lid, ch, user, str(lead.get("sid", 0)), str(lead.get("n", 0)), repr(float(lead.get("begun", 0.0))),
        repr(float(lead.get("updated", 0.0))), str(reached), ("=" + answers) if "answers" in lead else "",
        repr(float(lead["finished"])) if finishing else "", tier, str(lead.get("remind", 0)),
        str(lead.get("open", 0)), "1" if delta.get("test") else "0", ended,
        "" if follow is None else str(int(follow)), fol_ref, repr(float(delta.get("at", now))),
        "1" if lead.get("consult") else "", repr(now + lease), repr(now), repr(now - expiry),
        "" if lead.get("moved") is None else str(int(lead["moved"])),
        qual, source,
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


class Analytics:
    """The operator's figures and leads (sync: redis-py, plain or Cluster). ``expiry``: the seconds after
    which an unfinished diagnosis no longer counts as in progress (CRMBOT_CONVERSATION_TTL)."""

    def __init__(self, client: Any, *, clock: Callable[[], float] = time.time, expiry: float = 7 * 86400) -> None:
        self.r = runner(client)
        self.clock = clock
        self.expiry = expiry

    # -- figures ---------------------------------------------------------------------------------

    def channels(self, channel: str | None = None) -> list[str]:
        """The channels a figure sums: the one asked for, else every channel with leads but the tests'."""
        if channel is not None:
            return [channel]
        found = {text(c) for c in self.r.smembers(CHANNELS)}
        return sorted(found - TEST_CHANNELS)

    def segments(self, channel: str | None = None, source: str | None = None) -> list[str]:
        """The sets a figure sums (:meth:`channels`), narrowed to the leads from ``source`` when given."""
        return [segment(ch, source) for ch in self.channels(channel)]

    def funnel(self, start: date | None = None, end: date | None = None, channel: str | None = None,
               source: str | None = None) -> dict[str, Any]:
        """Diagnoses started from ``start`` to ``end`` (Japan-time dates, both included; None: open):

            {"started": n, "finished": n, "in_progress": n, "stopped": n,
             "questions": [{"q": 1, "shown": n, "answered": n, "in_progress": n, "stopped": n,
                            "answers": {"A": n, "B": n, "C": n, "D": n}, "dropoff": 0.25 | None}, ... 10 items],
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
        left out; None when none). Every channel but
        the tests' when ``channel`` is None; only the leads from ``source`` when given.
        """
        chans = self.segments(channel, source)
        lo, hi = _bounds(start, end)
        started = 0
        reached = [0] * (QUESTION_COUNT + 2)  # reached[q]: diagnoses whose highest question is q
        tiers = dict.fromkeys(TIERS, 0)
        answers = [dict.fromkeys(CHOICES, 0) for _ in range(QUESTION_COUNT + 1)]
        with self.r.pipeline(transaction=False) as p:
            for ch in chans:
                p.zcount(started_key(ch), lo, hi)
                for q in range(1, QUESTION_COUNT + 1):
                    p.zcount(reached_key(ch, q), lo, hi)
                for t in TIERS:
                    p.zcount(tier_key(ch, t), lo, hi)
                for q in range(1, QUESTION_COUNT + 1):
                    for x in CHOICES:
                        p.zcount(answer_key(ch, q, x), lo, hi)
            counts = iter(int(c) for c in p.execute())
        for _ in chans:
            started += next(counts)
            for q in range(1, QUESTION_COUNT + 1):
                reached[q] += next(counts)
            for t in TIERS:
                tiers[t] += next(counts)
            for q in range(1, QUESTION_COUNT + 1):
                for x in CHOICES:
                    answers[q][x] += next(counts)
        finished = sum(tiers.values())
        nudged, resumed, recovered = self._nudges(chans, lo, hi)
        active = [lead for lead in self._active() if segment(lead.channel, source and lead.source) in chans
                  and _in_bounds(lead.started, start, end)]
        shown = [0] * (QUESTION_COUNT + 2)
        act_shown = [0] * (QUESTION_COUNT + 2)
        for q in range(QUESTION_COUNT, 0, -1):
            shown[q] = shown[q + 1] + reached[q]
            act_shown[q] = act_shown[q + 1] + sum(1 for lead in active if lead.reached == q)
        questions = []
        for q in range(1, QUESTION_COUNT + 1):
            answered = shown[q + 1] if q < QUESTION_COUNT else finished
            here = act_shown[q] - act_shown[q + 1]  # in progress with q as their highest question
            stopped = shown[q] - answered - here  # ended there without answering it
            questions.append({
                "q": q,
                "shown": shown[q],
                "answered": answered,
                "in_progress": here,
                "stopped": stopped,
                "answers": answers[q],
                "dropoff": round(stopped / (answered + stopped), 4) if answered + stopped > 0 else None,
                "nudged": nudged[q],
                "resumed": resumed[q],
            })
        return {"started": started, "finished": finished, "in_progress": len(active),
                "stopped": max(0, started - finished - len(active)), "questions": questions, "tiers": tiers,
                "recovered": recovered}

    def _nudges(self, chans: Sequence[str], lo: str, hi: str) -> tuple[list[int], list[int], int]:
        """Per question (index 1..10) the diagnoses nudged back to it and those that answered it after, and
        those that finished after a nudge, among the diagnoses started within ``lo``..``hi``."""
        nudged, resumed, recovered = [0] * (QUESTION_COUNT + 1), [0] * (QUESTION_COUNT + 1), 0
        with self.r.pipeline(transaction=False) as p:
            for ch in chans:
                for q in range(1, QUESTION_COUNT + 1):
                    p.zcount(nudged_key(ch, q), lo, hi)
                    p.zcount(resumed_key(ch, q), lo, hi)
                p.zcount(recovered_key(ch), lo, hi)
            counts = iter(int(c) for c in p.execute())
        for _ in chans:
            for q in range(1, QUESTION_COUNT + 1):
                nudged[q] += next(counts)
                resumed[q] += next(counts)
            recovered += next(counts)
        return nudged, resumed, recovered

    def series(self, start: date, end: date, bucket: str = "day", channel: str | None = None,
               source: str | None = None) -> list[dict[str, Any]]:
        """Diagnoses started per day, week (from Monday; labelled by that Monday) or month ("2026-12"),
        from ``start`` to ``end`` (Japan time, both included; the first and last buckets are clipped):
        ``[{"label": "2026-12-01", "started": n, "finished": n, "tiers": {"A": n, "B": n, "C": n}}]``."""
        if bucket not in BUCKETS:
            raise InvalidInput(f"bucket must be one of {', '.join(BUCKETS)}, not {str(bucket)[:10]!r}")
        if end < start:
            return []
        spans: list[tuple[str, date, date]] = []
        day = start
        while day <= end:
            if bucket == "day":
                first, last, label = day, day, day.isoformat()
            elif bucket == "week":
                first = day - timedelta(days=day.weekday())
                last, label = first + timedelta(days=6), first.isoformat()
            else:
                first = day.replace(day=1)
                last = (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)
                label = f"{first.year:04d}-{first.month:02d}"
            spans.append((label, max(first, start), min(last, end)))
            day = last + timedelta(days=1)
        chans = self.segments(channel, source)
        with self.r.pipeline(transaction=False) as p:
            for _, a, b in spans:
                lo, hi = _bounds(a, b)
                for ch in chans:
                    p.zcount(started_key(ch), lo, hi)
                    for t in TIERS:
                        p.zcount(tier_key(ch, t), lo, hi)
            counts = iter(int(c) for c in p.execute())
        out = []
        for label, _, _ in spans:
            row: dict[str, Any] = {"label": label, "started": 0, "finished": 0, "tiers": dict.fromkeys(TIERS, 0)}
            for _ in chans:
                row["started"] += next(counts)
                for t in TIERS:
                    row["tiers"][t] += next(counts)
            row["finished"] = sum(row["tiers"].values())
            out.append(row)
        return out

    def followers(self) -> int:
        """People following now (LINE follow events applied since the figures began; tests not counted)."""
        return int(self.r.scard(FOLLOWERS))

    def open_consultations(self) -> int:
        """Leads whose consultation status is "new" (tests not counted)."""
        return int(self.r.zcard(CONSULT_OPEN))

    # -- leads -----------------------------------------------------------------------------------

    def lead(self, lead_id: str) -> Lead | None:
        if not isinstance(lead_id, str) or not lead_id or len(lead_id) > 300:
            return None
        found = self._fetch([lead_id])
        return found[0] if found else None

    def person(self, channel: str, user_id: str) -> list[Lead]:
        """Every diagnosis of one person, oldest first."""
        ids = [text(x) for x in self.r.zrange(person_key(channel, user_id), 0, -1)]
        return self._fetch(ids)

    def latest(self, people: Sequence[str]) -> dict[str, Lead]:
        """Each person's (``"<ch>:<user id>"``) latest finished diagnosis, else their latest one; a person
        with none is left out. Two round trips, however many people."""
        refs = list(dict.fromkeys(people))
        if not refs:
            return {}
        with self.r.pipeline(transaction=False) as p:
            for ref in refs:
                channel, _, user = ref.partition(":")
                p.zrange(person_key(channel, user), 0, -1)
            found = p.execute()
        by_person: dict[str, list[Lead]] = {}
        for lead in self._fetch(text(x) for ids in found for x in ids):
            by_person.setdefault(person_ref(lead.channel, lead.user_id), []).append(lead)
        return {ref: max([x for x in leads if x.is_finished] or leads, key=lambda x: (x.started, x.id))
                for ref, leads in by_person.items()}

    def sources_of(self, people: Sequence[str]) -> dict[str, str]:
        """Where each person (``"<ch>:<user id>"``) came from: the source of their latest diagnosis (a person
        keeps their first one); those with none are left out. Two round trips, however many people."""
        refs = list(dict.fromkeys(people))
        if not refs:
            return {}
        with self.r.pipeline(transaction=False) as p:
            for ref in refs:
                channel, _, user = ref.partition(":")
                p.zrange(person_key(channel, user), -1, -1)
            latest = p.execute()
        found = {ref: text(ids[0]) for ref, ids in zip(refs, latest, strict=True) if ids}
        with self.r.pipeline(transaction=False) as p:
            for lid in found.values():
                p.hget(lead_key(lid), "src")
            got = p.execute()
        return {ref: text(src) for ref, src in zip(found, got, strict=True) if src}

    def names(self, people: Sequence[str]) -> dict[str, str]:
        """The display names kept of these people (``"<ch>:<user id>"``), those known only."""
        refs = list(dict.fromkeys(people))
        got = self.r.hmget(NAMES, refs) if refs else []
        return {ref: text(name) for ref, name in zip(refs, got, strict=True) if name}

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
        """:meth:`leads` without paging, read in chunks (the CSV export)."""
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
        segs = [segment(ch, source) for ch in chans]
        if tier is not None:
            sets = [tier_key(seg, tier) for seg in segs]
        elif status == "finished":
            sets = [tier_key(seg, t) for seg in segs for t in TIERS]
        else:  # every diagnosis, and the consultations asked for without one (those have no source)
            sets = [started_key(seg) for seg in segs] + ([asked_key(ch) for ch in chans] if source is None else [])
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
        ids = [text(x) for x in self.r.zrangebyscore(ACTIVE, now - self.expiry, "+inf")]
        return [x for x in self._fetch(ids) if x.status(now, self.expiry) == "in_progress"]

    def _fetch(self, ids: Iterable[str]) -> list[Lead]:
        ids = list(ids)
        if not ids:
            return []
        with self.r.pipeline(transaction=False) as p:
            for lid in ids:
                p.hgetall(lead_key(lid))
            p.hmget(NAMES, [_person_of(lid) for lid in ids])
            *hashes, names = p.execute()
        out = []
        for lid, h, name in zip(ids, hashes, names, strict=True):
            lead = Lead.from_hash(lid, _decode(h), text(name))
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
        return int(self.r.script(SET_CONSULT_LUA)(
            keys=[lead_key(lead_id), CONSULT_OPEN, CONSULT_WORKED, history_key(lead_id)],
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
        return bool(self.r.do(apply_step(delta, self.clock() if now is None else now, self.expiry)))

    def notified(self, lead_id: str) -> None:
        self.r.do(notified_step(lead_id))


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


def nudged_step(channel: str, user_id: str, sid: int, begun: float, q: int, at: float) -> Eval:
    """Mark diagnosis ``sid`` (started at ``begun``) nudged back to question ``q`` (1-based) at ``at``
    (:data:`NUDGED_LUA`; idempotent)."""
    lid = lead_id(channel, user_id, sid, begun)
    return Eval(NUDGED_LUA, [lead_key(lid), nudged_key(channel, q), resumed_key(channel, q), recovered_key(channel)],
                [lid, str(q), repr(float(at)), repr(round(begun, 3))])


def notified_step(lead_id: str) -> Eval:
    """Mark the operator told of the lead's consultation request (:data:`NOTIFIED_LUA`)."""
    return Eval(NOTIFIED_LUA, [lead_key(lead_id)], [])


def set_name_step(channel: str, user_id: str, name: str) -> Eval | None:
    """Keep a follower's display name (:data:`SET_NAME_LUA`); None when nothing is left of it once cleaned."""
    clean = clean_name(name)
    return Eval(SET_NAME_LUA, [NAMES, FOLLOW], [person_ref(channel, user_id), clean]) if clean else None


def forget_name_step(channel: str, user_id: str) -> Call:
    return call("hdel", NAMES, person_ref(channel, user_id))


async def set_name_async(client: Any, channel: str, user_id: str, name: str) -> None:
    """:meth:`Analytics.set_name` for the worker's redis.asyncio client (the profile fetch at follow)."""
    step = set_name_step(channel, user_id, name)
    if step is not None:
        await async_runner(client).do(step)


async def forget_name_async(client: Any, channel: str, user_id: str) -> None:
    await async_runner(client).do(forget_name_step(channel, user_id))


class PeerFigures:
    """How other shops answered, for a result's peer line (conversations.results.peer_shares): the finished
    diagnoses and their A answers per question, summed over every channel but the tests', read from the
    tier and answer sets (SMEMBERS of the channels, then one pipeline of ZCARDs: 13 a channel; never a scan)
    and kept ``max_age`` seconds once they are enough to be shown (29 finished: the 30th, finishing, counts
    itself), so a busy hour reads them once a minute, only on steps that show a result; below that they are
    read each time, so the line appears with the 30th finished diagnosis exactly. ``clock``: the core's."""

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
        chans = sorted({text(c) for c in self.r.smembers(CHANNELS)} - TEST_CHANNELS)
        with self.r.pipeline(transaction=False) as p:
            for ch in chans:
                for t in TIERS:
                    p.zcard(tier_key(ch, t))
                for q in range(1, QUESTION_COUNT + 1):
                    p.zcard(answer_key(ch, q, "A"))
            got = [int(c) for c in p.execute()] if chans else []
        per = len(TIERS) + QUESTION_COUNT
        rows = [got[i:i + per] for i in range(0, len(got), per)]
        found = PeerCounts(sum(sum(row[:len(TIERS)]) for row in rows),
                           tuple(sum(row[len(TIERS) + q] for row in rows) for q in range(QUESTION_COUNT)))
        if found.finished >= PEER_MIN - 1:
            self._kept = (now, found)
        return found
