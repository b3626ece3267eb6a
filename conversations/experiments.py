"""Content experiments: which variant each diagnosis is shown, and the exact counts per variant.

The content file's ``[[experiments]]`` (conversations.content: :class:`~conversations.content.Experiment`) give a
text variants. **Assignment** (:func:`assign`): when a diagnosis starts (bot/core.py, on the step that begins it),
it gets one variant per experiment, picked by a hash of the diagnosis' identity ("<transport>:<user>:<sid>") and
the experiment's name, in proportion to the variants' weights: the same diagnosis always gets the same one, and
different people get both. The pairs are kept on the record (``Conv.var``, conversations/segments.py) for the
whole diagnosis; every job of it carries them (``Job.var``) and is rendered with its variants' texts
(:meth:`~conversations.content.Script.varied`), on LINE, Slack and the try page alike. An experiment that has
been **ended** gives every new diagnosis its winner (:data:`keys.EXPERIMENT_WINNERS`, read by every process).

**Counts** (the console's experiment page): per experiment and variant, the diagnoses that started, finished,
asked for a consultation and booked one, as sets of diagnosis identities (so a redelivered webhook, a retried
figures record or a double tap counts once), every key of one experiment under its own hash tag
(``crmbot:{x:<name>}:...``). Fed by the worker's figures sink (bot/analytics_sink.py: :func:`count_steps`, from
the figures record's ``lead``, which carries ``var``) and by the booking news (:func:`booked_steps`). Test
channels (the try page) are not counted. Ending (:func:`end_step`) keeps a snapshot of the counts and drops the
sets, so an ended experiment holds a few numbers only; nothing counts into it afterwards.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from conversations import keys
from conversations.content import Experiment, Script
from conversations.machine import Conv
from conversations.redis_ops import Eval, text
from conversations.segments import format_variants, parse_variants

STARTED, FINISHED, REQUESTED, BOOKED = "started", "finished", "requested", "booked"
STAGES = (STARTED, FINISHED, REQUESTED, BOOKED)


def identity(channel: str, user_id: str, sid: int) -> str:
    """A diagnosis' identity: what it is assigned by and counted as."""
    return f"{channel}:{user_id}:{sid}"


def pick(experiment: Experiment, ident: str) -> str:
    """The variant of ``experiment`` for the diagnosis ``ident``: a hash of both, weighted."""
    digest = hashlib.sha256(f"{experiment.name}\n{ident}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") % sum(v.weight for v in experiment.variants)
    for variant in experiment.variants:
        if point < variant.weight:
            return variant.name
        point -= variant.weight
    raise AssertionError("weights sum to the total")  # pragma: no cover


def assign(experiments: Iterable[Experiment], ident: str, winners: Mapping[str, str]) -> str:
    """``Conv.var`` for a diagnosis starting now: an ended experiment's winner, else its hashed pick."""
    chosen = {}
    for exp in experiments:
        won = winners.get(exp.name, "")
        chosen[exp.name] = won if exp.variant(won) is not None else pick(exp, ident)
    return format_variants(chosen)


def winners(client: Any) -> dict[str, str]:
    """Ended experiments and their winners (a sync runner)."""
    return {text(k): text(v) for k, v in (client.hgetall(keys.EXPERIMENT_WINNERS) or {}).items()}


class Assigner:
    """The core's assignment (bot/core.py): ``var_for(channel, user, sid)`` for a diagnosis that starts."""

    def __init__(self, client: Any, script: Script) -> None:
        self.client = client
        self.experiments = script.experiments

    def var_for(self, channel: str, user_id: str, sid: int, experiments: Sequence[Experiment] | None = None) -> str:
        """``experiments``: those of the content version the diagnosis starts in (None: the deployed file's)."""
        chosen = self.experiments if experiments is None else experiments
        if not chosen:
            return ""
        return assign(chosen, identity(channel, user_id, sid), winners(self.client))


# ---- counting ------------------------------------------------------------------------------------------

# KEYS[1] the experiment's ended hash, KEYS[2..] the stage sets to add to; ARGV[1] the diagnosis' identity.
# Nothing counts into an ended experiment. Reply: how many sets it was new to.
COUNT_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local added = 0
for i = 2, #KEYS do added = added + redis.call('SADD', KEYS[i], ARGV[1]) end
return added
"""


def _count(name: str, variant: str, stages: Sequence[str], ident: str) -> Eval:
    return Eval(COUNT_LUA, [keys.experiment_ended(name), *(keys.experiment_stage(name, variant, s) for s in stages)],
                [ident])


def count_steps(delta: Mapping[str, Any]) -> list[Eval]:
    """What one figures record adds to the experiments' counts (nothing for a test channel or no variants)."""
    lead = delta.get("lead")
    if delta.get("test") or not isinstance(lead, Mapping) or not lead.get("var") or not lead.get("sid"):
        return []
    stages = [STARTED]
    if lead.get("finished"):
        stages.append(FINISHED)
    if lead.get("consult"):
        stages.append(REQUESTED)
    ident = identity(str(lead["channel"]), str(lead["user"]), int(lead["sid"]))
    return [_count(name, variant, stages, ident) for name, variant in parse_variants(str(lead["var"])).items()]


def booked_steps(channel: str, user_id: str, sid: int, var: str) -> list[Eval]:
    """A consultation booked by someone whose current diagnosis ran these variants."""
    if not var or not sid:
        return []
    ident = identity(channel, user_id, sid)
    return [_count(name, variant, [BOOKED], ident) for name, variant in parse_variants(var).items()]


BOOKED_NEWS = "booked"  # bot.booking_news.BOOKED (this layer does not import the bot's)


class BookedCounter:
    """A booking-news hook (bot/booking_news.py, composed in bot.app): a consultation booked counts as
    ``booked`` for the variants of the person's current diagnosis. Idempotent (a set): news handed over again
    counts once. Redis failing loses this one count (the hook must not raise; the Fanout logs it)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def __call__(self, news: Any) -> None:
        if news.kind != BOOKED_NEWS:
            return
        subject: keys.Subject = news.lead
        conv = Conv.from_json(self.client.get(keys.conv(subject)))
        for counted in booked_steps(str(subject.transport), subject.user_id, conv.sid, conv.var):
            self.client.do(counted)


# ---- reading and ending ------------------------------------------------------------------------------

# KEYS[1] the ended hash, then per variant its four stage sets (STAGES order). Reply: the ended hash's
# fields (flat) when ended, else per variant: started, finished, requested, booked, finished-and-requested.
READ_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then return {'ended', redis.call('HGETALL', KEYS[1])} end
local out = {}
for i = 2, #KEYS, 4 do
  for j = 0, 3 do out[#out + 1] = redis.call('SCARD', KEYS[i + j]) end
  out[#out + 1] = #redis.call('SINTER', KEYS[i + 1], KEYS[i + 2])
end
return {'running', out}
"""

# KEYS as READ_LUA's; ARGV[1] the winner, ARGV[2] when, ARGV[3] who, ARGV[4..] the variants (KEYS' order).
# Ends the experiment once: the counts' snapshot (JSON: variant -> five numbers, as READ_LUA) and the winner
# are kept, the sets dropped. Reply: the winner (an experiment already ended keeps its own).
END_LUA = """
local won = redis.call('HGET', KEYS[1], 'winner')
if won then return won end
local counts = {}
for n = 4, #ARGV do
  local i = 2 + (n - 4) * 4
  local row = {}
  for j = 0, 3 do row[#row + 1] = redis.call('SCARD', KEYS[i + j]) end
  row[#row + 1] = #redis.call('SINTER', KEYS[i + 1], KEYS[i + 2])
  counts[ARGV[n]] = row
  for j = 0, 3 do redis.call('DEL', KEYS[i + j]) end
end
redis.call('HSET', KEYS[1], 'winner', ARGV[1], 'at', ARGV[2], 'by', ARGV[3], 'counts', cjson.encode(counts))
return ARGV[1]
"""


def _keys(exp: Experiment) -> list[str]:
    return [keys.experiment_ended(exp.name),
            *(keys.experiment_stage(exp.name, v.name, s) for v in exp.variants for s in STAGES)]


@dataclass(frozen=True)
class Counts:
    started: int = 0
    finished: int = 0
    requested: int = 0
    booked: int = 0
    finished_requested: int = 0  # finished and asked for a consultation (the test's successes)

    @property
    def request_rate(self) -> float | None:
        """Of those who finished, the share who asked for a consultation."""
        return self.finished_requested / self.finished if self.finished else None


@dataclass(frozen=True)
class State:
    name: str
    counts: dict[str, Counts]  # variant -> its counts
    winner: str = ""  # "" running
    ended_at: float = 0.0
    ended_by: str = ""


def _counts(row: Sequence[Any]) -> Counts:
    return Counts(*(int(n) for n in row[:5]))


def read(client: Any, exp: Experiment) -> State:
    """An experiment's counts (running) or its snapshot (ended); a sync runner."""
    kind, body = client.do(Eval(READ_LUA, _keys(exp), []))
    if text(kind) == "ended":
        h = {text(body[i]): text(body[i + 1]) for i in range(0, len(body), 2)}
        raw = json.loads(h.get("counts") or "{}")
        counts = {v.name: _counts(raw[v.name]) if isinstance(raw, dict) and v.name in raw else Counts()
                  for v in exp.variants}
        return State(exp.name, counts, h.get("winner", ""), float(h.get("at") or 0), h.get("by", ""))
    numbers = [int(n) for n in body]
    return State(exp.name, {v.name: _counts(numbers[i * 5:i * 5 + 5]) for i, v in enumerate(exp.variants)})


def end(client: Any, exp: Experiment, winner: str, *, now: float, by: str) -> str:
    """End ``exp`` with ``winner`` shown to everyone from now on (idempotent: an ended one keeps its winner,
    which is returned). ValueError for a variant it does not have."""
    if exp.variant(winner) is None:
        raise ValueError(f"no variant {winner!r}")
    won = text(client.do(Eval(END_LUA, _keys(exp), [winner, repr(round(now, 3)), by,
                                                   *(v.name for v in exp.variants)])))
    client.hset(keys.EXPERIMENT_WINNERS, exp.name, won)  # every process's assignment reads it
    return won


# ---- the comparison --------------------------------------------------------------------------------------

ALPHA = 0.05
POWER = 0.8


def compare(control: Counts, other: Counts, effect: float) -> tuple[float | None, int | None]:
    """A two-proportion z-test (statsmodels ``proportions_ztest``) of the request rate among those who finished,
    and the finished diagnoses per variant still needed to detect a difference of ``effect`` (a share, e.g. 0.05)
    from the control's rate at 5% significance and 80% power (``NormalIndPower``)."""
    from statsmodels.stats.power import NormalIndPower
    from statsmodels.stats.proportion import proportion_effectsize, proportions_ztest

    p_value: float | None = None
    successes = [control.finished_requested, other.finished_requested]
    totals = [control.finished, other.finished]
    if all(totals) and 0 < sum(successes) < sum(totals):
        _, p = proportions_ztest(successes, totals)
        p_value = float(p) if math.isfinite(float(p)) else None
    base = control.request_rate if control.request_rate is not None else 0.0
    target = base + effect if base + effect <= 1.0 else base - effect
    needed: int | None = None
    if target != base:
        size = abs(float(proportion_effectsize(target, base)))
        per_group = NormalIndPower().solve_power(effect_size=size, alpha=ALPHA, power=POWER, ratio=1.0)
        needed = max(0, math.ceil(float(per_group)) - min(totals))
    return p_value, needed
