"""Slack teams and their quarterly KPI figures in Redis (keys from conversations.keys).

A team is one registered Slack channel. All of one team's keys share one Cluster hash slot, so a
report submission (replace the figures, index the quarter, append the audit record) is one Lua
script. Figures are kept for as long as the team exists.

A submission made from a Slack modal carries the modal's view ID and hash: the script applies it
only if the mark of that pair is not set, and sets it (SET NX, with a TTL) as its last write, so the
same signed submission delivered twice (a retry, or a replay within Slack's five-minute window) is
applied once, and a script that failed part-way never leaves a mark that would refuse the retry.

A report and its post to the team's channel are committed together: the same script writes the
post as a job (:class:`conversations.jobs.Job`) into the team's mailbox, beside the queue hints a
delivery worker wakes on, so a report is never stored without its post, nor posted unstored.

Every department (全員参加): a team may name an *owner* per area. An owner's submission covers their
areas only and is merged into the quarter's figures (its areas' old figures replaced, the others
kept); each area records who reported it (``_a:<area>``). The quarter's hash carries a version
(``_v``) that every submission raises: a submission is prepared (the merged figures scored, the post
rendered) against the version it read and applied only if it is still that version, else it is
prepared again (:attr:`Submitted.stale`). So the submission that completes the quarter is known
exactly, under races too, and the team's result post is committed once, marked ``_posted``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.typing import EncodableT, FieldT

from conversations import jobs, keys
from conversations.jobs import Job
from conversations.keys import TeamRef, ViewRef
from conversations.redis_ops import runner
from conversations.transports import Transport
from scoring.periods import DEFAULT_FY_START, DEFAULT_TZ, FY_STARTS, Quarter

AUDIT_KEEP = 1000
VIEW_MARK_TTL = 86400  # a modal's submission is remembered a day (Slack refuses replays after 5 minutes)
MAX_ACTIONS = 12  # improvement actions one quarter's result may hold
POST_LEASE = jobs.LEASE  # seconds a committed post waits for a worker before recovery looks at it

# Store a quarter's figures (the whole report, or the areas one owner covers) and record the change.
# KEYS[1] the quarter's figures (hash)        crmbot:{t:<ws>:<ch>}:kpi:<quarter>
# KEYS[2] the team's reported quarters (zset) crmbot:{t:<ws>:<ch>}:quarters
# KEYS[3] the team's audit log (list)         crmbot:{t:<ws>:<ch>}:audit
# KEYS[4] the team's mailbox (hash)           crmbot:{t:<ws>:<ch>}:out
# KEYS[5] (optional) the modal's mark         crmbot:{t:<ws>:<ch>}:view:<view id>:<view hash>
# ARGV[1] the new figures, JSON object indicator -> number as string
# ARGV[2] who (Slack user ID), ARGV[3] when (epoch seconds), ARGV[4] quarter ("2026-Q4"),
# ARGV[5] the quarter's rank (zset score: Quarter.rank), ARGV[6] how many audit records to keep,
# ARGV[7] the targets in force, JSON (kept with the figures: a past quarter's score never changes)
# ARGV[8] the mark's TTL in seconds (with KEYS[5])
# ARGV[9] the job's ID ("": none), ARGV[10] the job, JSON
# ARGV[11] the areas this submission reports, JSON list (each marked _a:<area> = "<who>|<when>")
# ARGV[12] "1": only those areas' figures are replaced (ARGV[13] lists their indicator keys), the
#          others kept; "0": the whole quarter is replaced
# ARGV[13] the indicator keys replaced, JSON list (with ARGV[12] = "1")
# ARGV[14] the version the submission was prepared against ("": not checked)
# ARGV[15] "1": the job is the team's result post (the quarter is marked _posted with its ID)
# Returns {1, the figures it replaced as JSON ("{}" when none)}; {0} when the quarter's version is no
# longer ARGV[14] (nothing changed: prepare it again); nil, changing nothing, when the modal's mark
# was already set (a replay).
SUBMIT_LUA = """
if KEYS[5] and redis.call('EXISTS', KEYS[5]) == 1 then return false end
local version = tonumber(redis.call('HGET', KEYS[1], '_v') or '0')
if ARGV[14] ~= '' and version ~= tonumber(ARGV[14]) then return {0} end
local old = {}
local flat = redis.call('HGETALL', KEYS[1])
for i = 1, #flat, 2 do
  if string.sub(flat[i], 1, 1) ~= '_' then old[flat[i]] = flat[i + 1] end
end
local posted = redis.call('HGET', KEYS[1], '_posted')
if ARGV[12] == '1' then
  local replaced = {}
  for _, k in ipairs(cjson.decode(ARGV[13])) do
    if old[k] then replaced[k] = old[k] end
    redis.call('HDEL', KEYS[1], k)
  end
  old = replaced
else
  redis.call('DEL', KEYS[1])
  if posted then redis.call('HSET', KEYS[1], '_posted', posted) end
end
local new = cjson.decode(ARGV[1])
for k, v in pairs(new) do redis.call('HSET', KEYS[1], k, v) end
redis.call('HSET', KEYS[1], '_by', ARGV[2], '_at', ARGV[3], '_targets', ARGV[7], '_v', version + 1)
local areas = cjson.decode(ARGV[11])
for _, a in ipairs(areas) do redis.call('HSET', KEYS[1], '_a:' .. a, ARGV[2] .. '|' .. ARGV[3]) end
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[4])
local rec = {kind = 'report', quarter = ARGV[4], by = ARGV[2], at = tonumber(ARGV[3]), old = old, new = new}
if ARGV[12] == '1' then rec.areas = areas end
redis.call('LPUSH', KEYS[3], cjson.encode(rec))
redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[6]) - 1)
if ARGV[9] ~= '' then
  redis.call('HSET', KEYS[4], ARGV[9], ARGV[10])
  if ARGV[15] == '1' then redis.call('HSET', KEYS[1], '_posted', ARGV[9]) end
end
if KEYS[5] then redis.call('SET', KEYS[5], '1', 'NX', 'EX', tonumber(ARGV[8])) end
if next(old) == nil then return {1, '{}'} end
return {1, cjson.encode(old)}
"""

# Post a quarter's result although some areas are missing (the last nudge), once.
# KEYS[1] the quarter's figures (hash), KEYS[2] the audit log, KEYS[3] the team's mailbox
# ARGV[1] the version the post was rendered from, ARGV[2] the job's ID, ARGV[3] the job, JSON,
# ARGV[4] when, ARGV[5] the quarter, ARGV[6] how many audit records to keep
# Returns 1 when committed; 0 when the figures changed since they were read (render it again);
# -1 when the quarter's result was posted already (nothing written).
CLOSE_LUA = """
if redis.call('HEXISTS', KEYS[1], '_posted') == 1 then return -1 end
if tonumber(redis.call('HGET', KEYS[1], '_v') or '0') ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
redis.call('HSET', KEYS[1], '_posted', ARGV[2])
local rec = {kind = 'closed', quarter = ARGV[5], at = tonumber(ARGV[4])}
redis.call('LPUSH', KEYS[2], cjson.encode(rec))
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[6]) - 1)
return 1
"""

# Replace a settings hash of the team (its targets, its area owners) and record the change.
# KEYS[1] the hash, KEYS[2] audit (list), KEYS[3] the team's mailbox, KEYS[4] (optional) the modal's
# mark (as SUBMIT_LUA)
# ARGV[1] the new content, JSON object (field -> string), ARGV[2] who, ARGV[3] when, ARGV[4] audit size,
# ARGV[5] the mark's TTL (with KEYS[4]), ARGV[6] the audit record's kind ("targets", "owners"),
# ARGV[7] a job's ID ("": none), ARGV[8] the job, JSON
# Returns 'ok'; nil, changing nothing, when the modal's mark was already set.
REPLACE_LUA = """
if KEYS[4] and redis.call('EXISTS', KEYS[4]) == 1 then return false end
local old = {}
local flat = redis.call('HGETALL', KEYS[1])
for i = 1, #flat, 2 do old[flat[i]] = flat[i + 1] end
local new = cjson.decode(ARGV[1])
redis.call('DEL', KEYS[1])
for k, v in pairs(new) do redis.call('HSET', KEYS[1], k, v) end
local rec = {kind = ARGV[6], by = ARGV[2], at = tonumber(ARGV[3]), old = old, new = new}
redis.call('LPUSH', KEYS[2], cjson.encode(rec))
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[4]) - 1)
if ARGV[7] ~= '' then redis.call('HSET', KEYS[3], ARGV[7], ARGV[8]) end
if KEYS[4] then redis.call('SET', KEYS[4], '1', 'NX', 'EX', tonumber(ARGV[5])) end
return 'ok'
"""

# Record improvement actions decided on a quarter's result, with their post to the channel.
# KEYS[1] the quarter's actions (hash: action id -> JSON), KEYS[2] audit (list), KEYS[3] the team's
# mailbox, KEYS[4] (optional) the modal's mark
# ARGV[1] the actions, JSON list of {id, ...} (each stored with n: its place in the quarter's order),
# ARGV[2] who, ARGV[3] when, ARGV[4] audit size,
# ARGV[5] the mark's TTL, ARGV[6] how many actions a quarter may hold, ARGV[7] the job's ID ("": none),
# ARGV[8] the job, JSON, ARGV[9] the quarter
# Returns 1 when recorded; 0 when the quarter would hold more than ARGV[6] (nothing written); nil,
# changing nothing, when the modal's mark was already set.
ACTIONS_LUA = """
if KEYS[4] and redis.call('EXISTS', KEYS[4]) == 1 then return false end
local actions = cjson.decode(ARGV[1])
if redis.call('HLEN', KEYS[1]) + #actions > tonumber(ARGV[6]) then return 0 end
local n = redis.call('HLEN', KEYS[1])
for i, a in ipairs(actions) do
  a.n = n + i
  redis.call('HSET', KEYS[1], a.id, cjson.encode(a))
end
local rec = {kind = 'actions', quarter = ARGV[9], by = ARGV[2], at = tonumber(ARGV[3]), new = actions}
redis.call('LPUSH', KEYS[2], cjson.encode(rec))
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[4]) - 1)
if ARGV[7] ~= '' then redis.call('HSET', KEYS[3], ARGV[7], ARGV[8]) end
if KEYS[4] then redis.call('SET', KEYS[4], '1', 'NX', 'EX', tonumber(ARGV[5])) end
return 1
"""


@dataclass(frozen=True)
class Team:
    ref: TeamRef
    name: str
    tz: str
    created_by: str
    created_at: float
    reminders: bool = True
    fy_start: int = DEFAULT_FY_START  # the business year's first month (1-12)


@dataclass(frozen=True)
class Submitted:
    applied: bool  # False: this modal's submission was applied before (a replay), or stale; nothing changed
    replaced: dict[str, float]  # the figures it replaced ({} when the quarter was new, or not applied)
    job: Job | None = None  # the job committed with the report (None: no job, or not applied)
    stale: bool = False  # the quarter changed since the submission was prepared: prepare it again


@dataclass(frozen=True)
class Report:
    quarter: str
    values: Mapping[str, float]
    by: str
    at: float
    targets: Mapping[str, float] | None = None  # the team's targets when it was reported
    areas: Mapping[str, tuple[str, float]] = field(default_factory=dict)  # area -> (who, when) it was reported
    version: int = 0  # raised by every submission (see SUBMIT_LUA)
    posted: str = ""  # the ID of the team's result post of this quarter ("": not posted yet)

    def has(self, area: str, indicator_keys: Sequence[str]) -> bool:
        """Whether an area is in: reported as an area (a submission covering it), or, for a report
        stored before areas were recorded, any of its figures is there."""
        return area in self.areas or any(k in self.values for k in indicator_keys)


@dataclass(frozen=True)
class Action:
    """An improvement action decided on a quarter's result: for one area, what, who and by when."""

    id: str
    area: str
    what: str
    owner: str  # Slack user ID
    due: str  # ISO date, YYYY-MM-DD
    by: str  # who recorded it
    at: float
    n: int = field(default=0, compare=False)  # its place among the quarter's actions (set when recorded)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "area": self.area, "what": self.what, "owner": self.owner, "due": self.due,
                "by": self.by, "at": self.at}


def _s(v: bytes | str | None) -> str:
    return v.decode() if isinstance(v, bytes) else (v or "")


def _address(ref: TeamRef) -> str:
    """A team channel's address in a Slack job: "<workspace>.<channel>"."""
    return f"{ref.workspace}.{ref.channel}"


def _post_job(ref: TeamRef, tag: str, post: Sequence[Mapping[str, Any]] | None, now: float) -> Job | None:
    """The job of a team's post (Slack payloads rendered already), or None when there is nothing to post."""
    return Job.new(Transport.SLACK, _address(ref), tag, [dict(o) for o in post], now) if post else None


def _num(v: float) -> str:
    return repr(float(v)).removesuffix(".0") if float(v).is_integer() else repr(float(v))


class TeamStore:
    def __init__(self, client: Any) -> None:
        self.r = runner(client)

    # ---- teams -----------------------------------------------------------------------------------

    def register(
        self, ref: TeamRef, name: str, tz: str, by: str, now: float, fy_start: int | None = None
    ) -> tuple[Team, bool]:
        """Create the team, or update its name and time zone. ``fy_start``: the business year's first
        month (None: the team's own, April for a new team). Returns (team, created)."""
        if fy_start is not None and fy_start not in FY_STARTS:
            raise ValueError(f"a business year cannot start in month {fy_start}")

        # Indexes first: a crash in between leaves an index entry without a team, which readers skip.
        with self.r.pipeline(transaction=False) as p:
            p.sadd(keys.workspace_teams(ref.workspace), ref.channel)
            p.sadd(keys.ALL_TEAMS, ref.id)
            p.execute()
        created = bool(self.r.hsetnx(keys.team(ref), "created_at", repr(now)))
        fields: dict[FieldT, EncodableT] = {"name": name, "tz": tz}
        if fy_start is not None:
            fields["fy"] = str(fy_start)
        if created:
            fields |= {"created_by": by, "reminders": "1", "fy": str(fy_start or DEFAULT_FY_START)}
        self.r.hset(keys.team(ref), mapping=fields)
        team = self.get(ref)
        assert team is not None
        return team, created

    def get(self, ref: TeamRef) -> Team | None:
        raw = self.r.hgetall(keys.team(ref))
        if not raw or b"name" not in raw:
            return None
        d = {_s(k): _s(v) for k, v in raw.items()}
        fy = d.get("fy", "")
        # a team registered before business years existed starts its year in April
        fy_start = int(fy) if fy.isdigit() and int(fy) in FY_STARTS else DEFAULT_FY_START
        return Team(ref, d["name"], d.get("tz", DEFAULT_TZ), d.get("created_by", ""),
                    float(d.get("created_at", 0)), d.get("reminders", "1") == "1", fy_start)

    def workspace_teams(self, workspace: str) -> list[Team]:
        channels = sorted(_s(c) for c in self.r.smembers(keys.workspace_teams(workspace)))
        teams = [self.get(TeamRef(workspace, c)) for c in channels]
        return [t for t in teams if t is not None]

    def all_teams(self) -> list[Team]:
        refs = sorted(_s(x) for x in self.r.smembers(keys.ALL_TEAMS))
        teams = [self.get(TeamRef.parse(x)) for x in refs]
        return [t for t in teams if t is not None]

    def set_reminders(self, ref: TeamRef, on: bool) -> None:
        self.r.hset(keys.team(ref), "reminders", "1" if on else "0")

    # ---- targets ---------------------------------------------------------------------------------

    def targets(self, ref: TeamRef) -> dict[str, float]:
        raw = self.r.hgetall(keys.team_targets(ref))
        return {_s(k): float(v) for k, v in raw.items()}

    def set_targets(
        self, ref: TeamRef, targets: Mapping[str, float], by: str, now: float, *, view: ViewRef | None = None
    ) -> bool:
        """Replace the team's targets. ``view``: the modal they come from, applied once. Returns whether
        they were applied (False: that modal's submission was applied before)."""
        payload = {k: _num(v) for k, v in targets.items()}
        return self._replace_hash(ref, keys.team_targets(ref), "targets", payload, by, now, view)

    def _replace_hash(self, ref: TeamRef, key: str, kind: str, content: Mapping[str, str], by: str, now: float,
                      view: ViewRef | None, post: Sequence[Mapping[str, Any]] | None = None,
                      lease: float = POST_LEASE) -> bool:
        tag = ref.tag[1:-1]
        job = _post_job(ref, tag, post, now)
        marks = [keys.team_view_submitted(ref, view)] if view else []
        done = self.r.write_then_script(
            REPLACE_LUA, keys=[key, keys.team_audit(ref), jobs.mailbox(tag), *marks],
            args=[json.dumps(dict(content)), by, repr(now), AUDIT_KEEP, VIEW_MARK_TTL, kind,
                  job.id if job else "", job.to_json() if job else ""],
            before=(lambda p: jobs.intend(p, job, now + lease)) if job else None,
            after=(lambda p: jobs.wake(p, job)) if job else None,
        )
        return done is not None

    # ---- area owners (every department) ---------------------------------------------------------

    def owners(self, ref: TeamRef) -> dict[str, str]:
        """Who reports which area (area key -> Slack user ID); {} when one person reports everything."""
        raw = self.r.hgetall(keys.team_owners(ref))
        return {_s(k): _s(v) for k, v in raw.items()}

    def set_owners(
        self, ref: TeamRef, owners: Mapping[str, str], by: str, now: float, *, view: ViewRef | None = None,
        post: Sequence[Mapping[str, Any]] | None = None, lease: float = POST_LEASE,
    ) -> bool:
        """Replace the area owners (an area left out has none), with an optional channel post committed
        with them. Returns whether they were applied (False: that modal's submission was applied before)."""
        return self._replace_hash(ref, keys.team_owners(ref), "owners", dict(owners), by, now, view, post, lease)

    # ---- reports ---------------------------------------------------------------------------------

    def submit(
        self,
        ref: TeamRef,
        quarter: Quarter,
        values: Mapping[str, float],
        by: str,
        now: float,
        targets: Mapping[str, float] | None = None,
        *,
        view: ViewRef | None = None,
        post: Sequence[Mapping[str, Any]] | None = None,
        lease: float = POST_LEASE,
        areas: Sequence[str] = (),
        replace: Sequence[str] | None = None,
        expect: int | None = None,
        result: bool = True,
    ) -> Submitted:
        """Store a quarter's figures with the targets in force.

        ``areas``: the areas this submission reports (each marked with who and when). ``replace``:
        the indicator keys of those areas, when the submission covers only them (an owner's): their
        old figures are replaced and the others kept; None replaces the whole quarter.
        ``expect``: the quarter's version the submission was prepared against (:attr:`Report.version`);
        if it changed meanwhile nothing is written and the answer is ``stale``.
        ``view``: the modal they were submitted from, applied once. ``post``: outputs committed as a
        job in the same script (``[{"type": "slack_post", ...}, ...]``); ``result``: that job is the
        team's result post (the quarter is marked posted). A worker looks at the job by ``now + lease``
        if nothing woke one first.
        """
        payload = json.dumps({k: _num(v) for k, v in values.items()})
        targets_json = json.dumps({k: _num(v) for k, v in (targets or {}).items()})
        tag = ref.tag[1:-1]
        job = _post_job(ref, tag, post, now)
        marks = [keys.team_view_submitted(ref, view)] if view else []
        answer = self.r.write_then_script(
            SUBMIT_LUA,
            keys=[keys.team_kpi(ref, str(quarter)), keys.team_quarters(ref), keys.team_audit(ref),
                  jobs.mailbox(tag), *marks],
            args=[payload, by, repr(now), str(quarter), quarter.rank, AUDIT_KEEP, targets_json, VIEW_MARK_TTL,
                  job.id if job else "", job.to_json() if job else "", json.dumps(list(areas)),
                  "0" if replace is None else "1", json.dumps(list(replace or ())),
                  "" if expect is None else str(expect), "1" if result else "0"],
            before=(lambda p: jobs.intend(p, job, now + lease)) if job else None,
            after=(lambda p: jobs.wake(p, job)) if job else None,
        )
        if answer is None:
            return Submitted(False, {})
        if int(answer[0]) == 0:
            return Submitted(False, {}, stale=True)  # its recovery mark finds no job: a look, nothing sent
        return Submitted(True, {k: float(v) for k, v in json.loads(_s(answer[1])).items()}, job)

    def close(
        self, ref: TeamRef, quarter: Quarter, version: int, post: Sequence[Mapping[str, Any]], now: float,
        *, lease: float = POST_LEASE,
    ) -> int:
        """Commit the quarter's result post although areas are missing (the last nudge), once: 1 when
        committed, 0 when the figures changed since ``version`` was read (render it again), -1 when
        the quarter's result was posted already."""
        tag = ref.tag[1:-1]
        job = Job.new(Transport.SLACK, _address(ref), tag, [dict(o) for o in post], now)
        done = self.r.write_then_script(
            CLOSE_LUA,
            keys=[keys.team_kpi(ref, str(quarter)), keys.team_audit(ref), jobs.mailbox(tag)],
            args=[version, job.id, job.to_json(), repr(now), str(quarter), AUDIT_KEEP],
            before=lambda p: jobs.intend(p, job, now + lease),
            after=lambda p: jobs.wake(p, job),
        )
        return int(done)

    def report(self, ref: TeamRef, quarter: Quarter | str) -> Report | None:
        raw = self.r.hgetall(keys.team_kpi(ref, str(quarter)))
        if not raw:
            return None
        d = {_s(k): _s(v) for k, v in raw.items()}
        values = {k: float(v) for k, v in d.items() if not k.startswith("_")}
        targets = {k: float(v) for k, v in json.loads(d["_targets"]).items()} if "_targets" in d else None
        areas = {}
        for k, v in d.items():
            if k.startswith("_a:"):
                who, _, when = v.partition("|")
                areas[k[3:]] = (who, float(when or 0))
        return Report(str(quarter), values, d.get("_by", ""), float(d.get("_at", 0)), targets, areas,
                      int(d.get("_v", 0) or 0), d.get("_posted", ""))

    def quarters(self, ref: TeamRef) -> list[Quarter]:
        return [Quarter.parse(_s(q)) for q in self.r.zrange(keys.team_quarters(ref), 0, -1)]

    # ---- improvement actions ---------------------------------------------------------------------

    def add_actions(
        self, ref: TeamRef, quarter: Quarter, actions: Sequence[Action], by: str, now: float, *,
        view: ViewRef | None = None, post: Sequence[Mapping[str, Any]] | None = None, lease: float = POST_LEASE,
    ) -> bool | None:
        """Record actions decided on ``quarter``'s result, with an optional channel post committed with
        them. True when recorded; False when that modal's submission was recorded before (a replay);
        None when the quarter would hold more than MAX_ACTIONS (nothing written)."""
        tag = ref.tag[1:-1]
        job = _post_job(ref, tag, post, now)
        marks = [keys.team_view_submitted(ref, view)] if view else []
        done = self.r.write_then_script(
            ACTIONS_LUA,
            keys=[keys.team_actions(ref, str(quarter)), keys.team_audit(ref), jobs.mailbox(tag), *marks],
            args=[json.dumps([a.to_dict() for a in actions], ensure_ascii=False), by, repr(now), AUDIT_KEEP,
                  VIEW_MARK_TTL, MAX_ACTIONS, job.id if job else "", job.to_json() if job else "", str(quarter)],
            before=(lambda p: jobs.intend(p, job, now + lease)) if job else None,
            after=(lambda p: jobs.wake(p, job)) if job else None,
        )
        if done is None:
            return False
        return True if int(done) == 1 else None

    def actions(self, ref: TeamRef, quarter: Quarter | str) -> list[Action]:
        """The actions decided on a quarter's result, in the order they were recorded."""
        raw = self.r.hvals(keys.team_actions(ref, str(quarter)))
        out = []
        for value in raw:
            d = json.loads(value)
            out.append(Action(str(d["id"]), str(d["area"]), str(d["what"]), str(d["owner"]), str(d["due"]),
                              str(d["by"]), float(d["at"]), int(d.get("n", 0))))
        return sorted(out, key=lambda a: (a.n, a.at, a.id))

    def audit(self, ref: TeamRef, count: int = 20) -> list[dict]:
        return [json.loads(x) for x in self.r.lrange(keys.team_audit(ref), 0, count - 1)]
