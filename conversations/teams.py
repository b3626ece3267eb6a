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
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis
from redis.typing import EncodableT, FieldT

from conversations import jobs, keys
from conversations.jobs import Job
from conversations.keys import TeamRef, ViewRef
from conversations.redis_ops import translated, write_then_script
from scoring.periods import DEFAULT_FY_START, DEFAULT_TZ, FY_STARTS, Quarter

AUDIT_KEEP = 1000
VIEW_MARK_TTL = 86400  # a modal's submission is remembered a day (Slack refuses replays after 5 minutes)
POST_LEASE = 30.0  # seconds a worker has to deliver a committed post before recovery looks at it

# Replace one quarter's figures and record the change.
# KEYS[1] the quarter's figures (hash)        crmbot:{t:<ws>:<ch>}:kpi:<quarter>
# KEYS[2] the team's reported quarters (zset) crmbot:{t:<ws>:<ch>}:quarters
# KEYS[3] the team's audit log (list)         crmbot:{t:<ws>:<ch>}:audit
# KEYS[4] the team's mailbox (hash)           crmbot:{t:<ws>:<ch>}:out
# KEYS[5] (optional) the modal's mark         crmbot:{t:<ws>:<ch>}:view:<view id>:<view hash>
# ARGV[1] the new figures, JSON object indicator -> number as string
# ARGV[2] who (Slack user ID), ARGV[3] when (epoch seconds), ARGV[4] quarter ("2026-Q4"),
# ARGV[5] the quarter's ordinal (zset score), ARGV[6] how many audit records to keep,
# ARGV[7] the targets in force, JSON (kept with the figures: a past quarter's score never changes)
# ARGV[8] the mark's TTL in seconds (with KEYS[5])
# ARGV[9] the post's job ID ("": no post), ARGV[10] the job, JSON
# Returns the previous figures as JSON ("{}" when the quarter is new); nil, changing nothing, when
# the modal's mark was already set (a replay).
SUBMIT_LUA = """
if KEYS[5] and redis.call('EXISTS', KEYS[5]) == 1 then return false end
local old = {}
local flat = redis.call('HGETALL', KEYS[1])
for i = 1, #flat, 2 do
  if string.sub(flat[i], 1, 1) ~= '_' then old[flat[i]] = flat[i + 1] end
end
local new = cjson.decode(ARGV[1])
redis.call('DEL', KEYS[1])
for k, v in pairs(new) do redis.call('HSET', KEYS[1], k, v) end
redis.call('HSET', KEYS[1], '_by', ARGV[2], '_at', ARGV[3], '_targets', ARGV[7])
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[4])
local rec = {kind = 'report', quarter = ARGV[4], by = ARGV[2], at = tonumber(ARGV[3]), old = old, new = new}
redis.call('LPUSH', KEYS[3], cjson.encode(rec))
redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[6]) - 1)
if ARGV[9] ~= '' then redis.call('HSET', KEYS[4], ARGV[9], ARGV[10]) end
if KEYS[5] then redis.call('SET', KEYS[5], '1', 'NX', 'EX', tonumber(ARGV[8])) end
if next(old) == nil then return '{}' end
return cjson.encode(old)
"""

# Replace the team's targets and record the change.
# KEYS[1] targets (hash), KEYS[2] audit (list), KEYS[3] (optional) the modal's mark (as SUBMIT_LUA)
# ARGV[1] new targets JSON (indicator -> number as string), ARGV[2] who, ARGV[3] when, ARGV[4] audit size,
# ARGV[5] the mark's TTL (with KEYS[3])
# Returns 'ok'; nil, changing nothing, when the modal's mark was already set.
TARGETS_LUA = """
if KEYS[3] and redis.call('EXISTS', KEYS[3]) == 1 then return false end
local old = {}
local flat = redis.call('HGETALL', KEYS[1])
for i = 1, #flat, 2 do old[flat[i]] = flat[i + 1] end
local new = cjson.decode(ARGV[1])
redis.call('DEL', KEYS[1])
for k, v in pairs(new) do redis.call('HSET', KEYS[1], k, v) end
local rec = {kind = 'targets', by = ARGV[2], at = tonumber(ARGV[3]), old = old, new = new}
redis.call('LPUSH', KEYS[2], cjson.encode(rec))
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[4]) - 1)
if KEYS[3] then redis.call('SET', KEYS[3], '1', 'NX', 'EX', tonumber(ARGV[5])) end
return 'ok'
"""


@dataclass(frozen=True)
class Team:
    ref: TeamRef
    name: str
    tz: str
    created_by: str
    created_at: float
    reminders: bool = True
    fy_start: int = DEFAULT_FY_START  # the business year's first month (1, 4, 7 or 10)


@dataclass(frozen=True)
class Submitted:
    applied: bool  # False: this modal's submission was applied before (a replay); nothing changed
    replaced: dict[str, float]  # the figures it replaced ({} when the quarter was new, or not applied)
    job: Job | None = None  # the post committed with the report (None: no post, or not applied)


@dataclass(frozen=True)
class Report:
    quarter: str
    values: Mapping[str, float]
    by: str
    at: float
    targets: Mapping[str, float] | None = None  # the team's targets when it was reported


def _s(v: bytes | str | None) -> str:
    return v.decode() if isinstance(v, bytes) else (v or "")


def _num(v: float) -> str:
    return repr(float(v)).removesuffix(".0") if float(v).is_integer() else repr(float(v))


class TeamStore:
    def __init__(self, client: redis.Redis) -> None:
        self.r = client
        self._submit = client.register_script(SUBMIT_LUA)
        self._targets = client.register_script(TARGETS_LUA)

    def _call(self, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        with translated():
            return fn(*args, **kwargs)

    # ---- teams -----------------------------------------------------------------------------------

    def register(
        self, ref: TeamRef, name: str, tz: str, by: str, now: float, fy_start: int | None = None
    ) -> tuple[Team, bool]:
        """Create the team, or update its name and time zone. ``fy_start``: the business year's first
        month (None: the team's own, April for a new team). Returns (team, created)."""
        if fy_start is not None and fy_start not in FY_STARTS:
            raise ValueError(f"a business year cannot start in month {fy_start}")

        def run() -> tuple[Team, bool]:
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

        return self._call(run)

    def get(self, ref: TeamRef) -> Team | None:
        raw = self._call(self.r.hgetall, keys.team(ref))
        if not raw or b"name" not in raw:
            return None
        d = {_s(k): _s(v) for k, v in raw.items()}
        fy = d.get("fy", "")
        # a team registered before business years existed starts its year in April
        fy_start = int(fy) if fy.isdigit() and int(fy) in FY_STARTS else DEFAULT_FY_START
        return Team(ref, d["name"], d.get("tz", DEFAULT_TZ), d.get("created_by", ""),
                    float(d.get("created_at", 0)), d.get("reminders", "1") == "1", fy_start)

    def workspace_teams(self, workspace: str) -> list[Team]:
        channels = sorted(_s(c) for c in self._call(self.r.smembers, keys.workspace_teams(workspace)))
        teams = [self.get(TeamRef(workspace, c)) for c in channels]
        return [t for t in teams if t is not None]

    def all_teams(self) -> list[Team]:
        refs = sorted(_s(x) for x in self._call(self.r.smembers, keys.ALL_TEAMS))
        teams = [self.get(TeamRef.parse(x)) for x in refs]
        return [t for t in teams if t is not None]

    def set_reminders(self, ref: TeamRef, on: bool) -> None:
        self._call(self.r.hset, keys.team(ref), "reminders", "1" if on else "0")

    # ---- targets ---------------------------------------------------------------------------------

    def targets(self, ref: TeamRef) -> dict[str, float]:
        raw = self._call(self.r.hgetall, keys.team_targets(ref))
        return {_s(k): float(v) for k, v in raw.items()}

    def set_targets(
        self, ref: TeamRef, targets: Mapping[str, float], by: str, now: float, *, view: ViewRef | None = None
    ) -> bool:
        """Replace the team's targets. ``view``: the modal they come from, applied once. Returns whether
        they were applied (False: that modal's submission was applied before)."""
        payload = json.dumps({k: _num(v) for k, v in targets.items()})
        marks = [keys.team_view_submitted(ref, view)] if view else []
        done = self._call(self._targets, keys=[keys.team_targets(ref), keys.team_audit(ref), *marks],
                          args=[payload, by, repr(now), AUDIT_KEEP, VIEW_MARK_TTL])
        return done is not None

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
    ) -> Submitted:
        """Store a quarter's figures (replacing earlier ones) with the targets in force.

        ``view``: the modal they were submitted from, applied once. ``post``: the outputs to post in
        the team's channel (``[{"type": "slack_post", "text": ..., "blocks": ...}]``), committed as
        a job in the same script; a worker looks at it by ``now + lease`` if nothing woke one first.
        """
        payload = json.dumps({k: _num(v) for k, v in values.items()})
        targets_json = json.dumps({k: _num(v) for k, v in (targets or {}).items()})
        tag = ref.tag[1:-1]
        job = Job.new("slack", f"{ref.workspace}.{ref.channel}", tag, [dict(o) for o in post], now) if post else None
        marks = [keys.team_view_submitted(ref, view)] if view else []
        with translated():
            old = write_then_script(
                self.r,
                self._submit,
                keys=[keys.team_kpi(ref, str(quarter)), keys.team_quarters(ref), keys.team_audit(ref),
                      jobs.mailbox(tag), *marks],
                args=[payload, by, repr(now), str(quarter), quarter.ordinal, AUDIT_KEEP, targets_json, VIEW_MARK_TTL,
                      job.id if job else "", job.to_json() if job else ""],
                before=(lambda p: jobs.intend(p, job, now + lease)) if job else None,
                after=(lambda p: jobs.wake(p, job)) if job else None,
            )
        if old is None:
            return Submitted(False, {})
        return Submitted(True, {k: float(v) for k, v in json.loads(_s(old)).items()}, job)

    def report(self, ref: TeamRef, quarter: Quarter | str) -> Report | None:
        raw = self._call(self.r.hgetall, keys.team_kpi(ref, str(quarter)))
        if not raw:
            return None
        d = {_s(k): _s(v) for k, v in raw.items()}
        values = {k: float(v) for k, v in d.items() if not k.startswith("_")}
        targets = {k: float(v) for k, v in json.loads(d["_targets"]).items()} if "_targets" in d else None
        return Report(str(quarter), values, d.get("_by", ""), float(d.get("_at", 0)), targets)

    def quarters(self, ref: TeamRef) -> list[Quarter]:
        return [Quarter.parse(_s(q)) for q in self._call(self.r.zrange, keys.team_quarters(ref), 0, -1)]

    def audit(self, ref: TeamRef, count: int = 20) -> list[dict]:
        return [json.loads(x) for x in self._call(self.r.lrange, keys.team_audit(ref), 0, count - 1)]
