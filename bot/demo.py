"""A sample to look around a new installation with (``crmbot demo``), and its removal (``crmbot demo
--remove``, or the button on the console's overview).

The sample is made the way real data is: each demo LINE user steps the real state machine (follow,
start, answers, back, restart, consultation, unfollow) and every step's figures are computed by
:func:`conversations.analytics.delta_of` and applied by the same Lua script the worker applies them
with, so every figure the console shows agrees with every other. Nothing is sent: no message is
queued, no user record is stored (only the operator's figures, names and leads). Two Slack teams get
two quarters of KPIs through the team store, with their reminders off (nobody is posted to).

Every record is marked: the demo users' IDs start with ``Udemo``, their leads carry ``demo=1``, the teams
live in the workspace ``TDEMO``; and everything loaded is listed in the demo's own index (below), so the
removal takes out exactly what the load put in: the figures are then what they were before.

    crmbot:{stats}:demo:leads      every demo lead id (set)
    crmbot:{stats}:demo:people     every demo person, "<ch>:<user id>" (set)
    crmbot:{stats}:demo:channels   "<shard>|<channel>": channels the demo added to a shard's channels set (set)
    crmbot:{stats}:demo:teams      the demo teams' ids (set)
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from conversations import analytics, inputs, keys
from conversations.analytics import STATS, Analytics, delta_of
from conversations.inputs import Input
from conversations.keys import Subject, TeamRef
from conversations.machine import Conv, Machine
from conversations.redis_ops import runner, text
from conversations.slack_names import NAME_TTL
from conversations.teams import TeamStore
from conversations.transports import Transport
from scoring import CHOICES, QUESTION_COUNT
from scoring.periods import last_ended

DEMO_LEADS = f"{STATS}:demo:leads"
DEMO_PEOPLE = f"{STATS}:demo:people"
DEMO_CHANNELS = f"{STATS}:demo:channels"
DEMO_TEAMS = f"{STATS}:demo:teams"
WORKSPACE = "TDEMO"
DAY = 86400.0
SHOPS = ("さくら雑貨店", "みどり青果", "ことり珈琲", "山の手ベーカリー", "うみかぜ鮮魚", "つむぎ手芸",
         "ひかり化粧品", "こもれび書房", "はなまる生花", "ゆずの里", "あおぞら靴店", "まるやま茶舗")
TEAMS = (("C0DEMO1", "本店CRMチーム", "crm-honten", 4), ("C0DEMO2", "EC事業部", "ec-crm", 1))
PEOPLE = (("U0DEMOSATO", "佐藤 花子"), ("U0DEMOTANAKA", "田中 一郎"))


@dataclass
class Loaded:
    leads: int = 0
    people: int = 0
    teams: int = 0
    consultations: int = 0

    def __str__(self) -> str:
        return (f"{self.people} people, {self.leads} diagnoses ({self.consultations} consultations), "
                f"{self.teams} Slack teams")


@dataclass
class _Person:
    """One demo LINE user stepping the real machine; each step's figures applied as the worker would."""

    stats: Analytics
    machine: Machine
    subject: Subject
    now: float
    conv: Conv = field(default_factory=Conv)
    leads: set[str] = field(default_factory=set)
    consulted: int = 0

    def send(self, inp: Input, dt: float = 40.0) -> None:
        self.now += dt
        step = self.machine.step(self.conv, inp, self.now)
        after = step.conv if step.changed else self.conv
        delta = delta_of(self.conv, after, step.outputs, self.subject, self.now, event=inp.kind)
        self.conv = after if after is not None else Conv()
        if delta is None:
            return
        if "lead" in delta:
            self.leads.add(delta["lead"]["id"])
        if self.stats.apply(delta, now=self.now):  # a first consultation: nobody is told of a demo
            self.stats.notified(delta["lead"]["id"])
            self.consulted += 1

    def do(self, kind: str, dt: float = 40.0) -> None:
        self.send(Input(kind, sid=self.conv.sid), dt)

    def answer(self, letters: str) -> None:
        for x in letters:
            self.send(Input(inputs.ANSWER, choice=x, q=self.conv.q, sid=self.conv.sid))


def _answers(rng: random.Random, a_count: int, length: int = QUESTION_COUNT) -> str:
    """Answers with ``a_count`` A's, the rest B to D, the weaker ones nearer the end."""
    rest = sorted(rng.choice(CHOICES[1:]) for _ in range(length - a_count))
    letters = ["A"] * a_count + rest
    rng.shuffle(letters)
    return "".join(letters)


def _script(rng: random.Random, i: int) -> list[tuple[str, str | float]]:
    """What demo person ``i`` does, as (step, argument) pairs."""
    a_count = (10, 9, 8, 7, 7, 6, 5, 4, 3, 8, 6, 2)[i % 12]
    steps: list[tuple[str, str | float]] = [("do", inputs.FOLLOW), ("do", inputs.START)]
    kind = i % 9
    if kind == 5:  # stops at a random question and never comes back
        return [*steps, ("answer", _answers(rng, a_count)[: rng.randint(1, 6)])]
    if kind == 6:  # starts over half way, then finishes
        return [*steps, ("answer", _answers(rng, 5)[:4]), ("do", inputs.RESTART), ("do", inputs.RESTART_YES),
                ("answer", _answers(rng, a_count))]
    if kind == 7:  # stops, then unfollows
        return [*steps, ("answer", _answers(rng, a_count)[:3]), ("do", inputs.UNFOLLOW)]
    steps.append(("answer", _answers(rng, a_count)))
    if kind in (0, 3) or (a_count <= 4 and kind != 8):
        steps.append(("do", inputs.CONSULT))
    if kind == 8:  # a retake weeks later, a little better
        steps += [("wait", 12 * DAY), ("do", inputs.START), ("answer", _answers(rng, min(10, a_count + 2)))]
    return steps


def load(client: Any, machine: Machine, now: float, *, people: int = 36, expiry: float = 7 * 86400,
         seed: int = 7) -> Loaded:
    """Load the sample (the last four weeks up to ``now``); loading it twice first removes the first one."""
    remove(client)
    r = runner(client)
    stats = Analytics(client, clock=lambda: now, expiry=expiry)
    rng = random.Random(seed)
    before = _channels(r)
    out = Loaded()
    for i in range(people):
        user_id = f"Udemo{i:04d}" + "0" * 23
        in_progress = i >= people - 3  # the last few are still answering
        start = now - (2 * 3600 if in_progress else rng.uniform(2 * DAY, 27 * DAY))
        p = _Person(stats, machine, Subject(Transport.LINE, user_id), start)
        r.sadd(DEMO_PEOPLE, analytics.person_ref("line", user_id))
        steps: list[tuple[str, str | float]] = (
            [("do", inputs.FOLLOW), ("do", inputs.START), ("answer", _answers(rng, 6)[:4])] if in_progress
            else _script(rng, i))
        for what, arg in steps:
            if isinstance(arg, float):  # a wait (a retake weeks later, never past now)
                p.now += arg if p.now + arg < now - DAY else 0
            elif what == "answer":
                p.answer(arg)
            else:
                p.do(arg)
                if arg == inputs.FOLLOW:
                    stats.set_name("line", user_id, f"{SHOPS[i % len(SHOPS)]}（デモ）")
        for lead in p.leads:
            r.sadd(DEMO_LEADS, lead)
            r.hset(analytics.lead_key(lead), "demo", "1")
        out.people += 1
        out.leads += len(p.leads)
        out.consultations += p.consulted
    added = _channels(r) - before
    if added:
        r.sadd(DEMO_CHANNELS, *added)
    out.teams = _load_teams(client, now)
    return out


def _load_teams(client: Any, now: float) -> int:
    from conversations.kpi_catalog import load_catalog

    r = runner(client)
    store = TeamStore(client)
    catalog = load_catalog()
    for n, (channel, name, slack_name, fy) in enumerate(TEAMS):
        ref = TeamRef(WORKSPACE, channel)
        r.sadd(DEMO_TEAMS, ref.id)
        store.register(ref, name, "Asia/Tokyo", PEOPLE[0][0], now - 200 * DAY, fy_start=fy)
        store.set_reminders(ref, False)  # nobody to remind: a demo team posts nothing
        latest = last_ended(now, "Asia/Tokyo", fy)
        for k, quarter in enumerate((latest.previous(), latest)):
            factor = 0.7 + 0.15 * k + 0.05 * n  # the later quarter better
            values = {ind.key: min(ind.maximum, max(ind.minimum, round(ind.target * factor, 1)))
                      for ind in catalog.indicators if not ind.retired}
            store.submit(ref, quarter, values, PEOPLE[k % 2][0], now - (100 - 90 * k) * DAY)
        r.set(keys.slack_name(WORKSPACE, channel), slack_name, ex=NAME_TTL)
    for user, person in PEOPLE:
        r.set(keys.slack_name(WORKSPACE, user), person, ex=NAME_TTL)
    return len(TEAMS)


def _channels(r: Any) -> set[str]:
    """Every "<shard>|<channel>" pair with leads (the channels set of each figures shard)."""
    with r.pipeline(transaction=False) as p:
        for k in range(analytics.SHARDS):
            p.smembers(analytics.channels_key(k))
        got = p.execute()
    return {f"{k}|{text(c)}" for k, chans in enumerate(got) for c in chans}


def remove(client: Any) -> int:
    """Remove everything :func:`load` put in: the demo's leads from every figure (each taken out of the day
    counters it was counted in), its people, names and follows, the channels it added, its teams. Returns
    how many leads went."""
    r = runner(client)
    stats = Analytics(client)
    leads = sorted(text(x) for x in r.smembers(DEMO_LEADS))
    for lead in leads:
        stats.uncount(lead)
    for person in sorted(text(x) for x in r.smembers(DEMO_PEOPLE)):
        ch, _, user = person.partition(":")
        stats.erase(ch, user)
    with r.pipeline(transaction=False) as p:
        for pair in sorted(text(c) for c in r.smembers(DEMO_CHANNELS)):
            k, _, ch = pair.partition("|")
            if k.isdigit():
                p.srem(analytics.channels_key(int(k)), ch)
        p.delete(DEMO_LEADS, DEMO_PEOPLE, DEMO_CHANNELS)
        p.execute()
    _remove_teams(client)
    return len(leads)


def _remove_teams(client: Any) -> None:
    r = runner(client)
    for team_id in sorted(text(x) for x in r.smembers(DEMO_TEAMS)):
        ref = TeamRef.parse(team_id)
        found = [text(k) for k in r.scan_iter(match=f"{keys.PREFIX}:{ref.tag}:*", count=500)]
        if found:
            r.delete(*found)
        r.srem(keys.ALL_TEAMS, ref.id)
        r.srem(keys.workspace_teams(ref.workspace), ref.channel)
        r.delete(keys.slack_name(ref.workspace, ref.channel))
    for user, _ in PEOPLE:
        r.delete(keys.slack_name(WORKSPACE, user))
    r.delete(DEMO_TEAMS)


def is_loaded(client: Any) -> bool:
    return bool(runner(client).exists(DEMO_LEADS, DEMO_TEAMS))

