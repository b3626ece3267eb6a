"""The figures' storage before issue 16 (all in the one ``{stats}`` slot, sorted sets of diagnosis ids),
frozen here to make old data in tests of the migration (conversations/figures_migration.py): its keys, and
the script that applied a delta then, as it was."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from conversations import inputs
from conversations.errors import InvalidInput
from conversations.keys import PREFIX
from scoring import CHOICES, QUESTION_COUNT, TIERS

STATS = f"{PREFIX}:{{stats}}"
ACTIVE = f"{STATS}:active"
CONSULT_OPEN = f"{STATS}:consult:open"
CONSULT_WORKED = f"{STATS}:consult:worked"
FOLLOWERS = f"{STATS}:followers"
FOLLOW = f"{STATS}:follow"
NAMES = f"{STATS}:names"
CHANNELS = f"{STATS}:channels"
NOTIFY_LEASE = 60.0

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

