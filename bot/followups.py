"""Follow-ups on the owner's own point to fix: up to three short tips over about two weeks, in LINE.

**Opt-in.** A result with a point to fix offers them (``FollowOffer``, its own yes / no, separate from the
quarterly retake's offer, which follows the answer); a yes stores when they start on the record
(``Conv.fu``). A retake finished while they run starts them over from its own point; 停止 (opt-out) and
unfollow turn them off; a consultation booked stops them.

**Schedule.** When ``Conv.fu`` changes, the core adds the steps of the point's question (the content file's
``[[questions.followups]]``: a day, a tip, an optional link under ``CRMBOT_RESOURCES_URL``) to one sorted set,
:data:`conversations.keys.FOLLOWUPS` (member ``<transport>:<user>|<sid>|<q>|<step>``, score the time due),
*before* the commit (:meth:`Followups.schedule`, as the quarterly reminder's index): the set is a superset of
what is wanted, and the user's record is the truth.

**Sending** (the clock's pass: ``crmbot clock``, ``crmbot remind --now T``; :meth:`FollowupSender.run`), only
between 9:00 and 20:00 Japan time (a step due at night waits for 9:00), after the reminders the owner asked
for and before the drop-off nudges. As the nudges (bot/nudges.py, whose claim / ack / defer scripts it
shares): each due step is claimed with a lease, checked against the user's record (:func:`why_not`), the
push budget asked (bot/push_budget.py, kind ``followup``: over this month's budget or LINE's quota it is
*held*: due again when the next month opens, sent then if still wanted, else dropped with the reason),
queued with its deterministic job id (a UUID: ``X-Line-Retry-Key``) and its ledger mark in the user's slot
(``Outbox.put_once``), then acknowledged. A clock dying after the claim: the lease runs out and a later pass
claims it again, the budget counts it once (by job id) and the ledger keeps it from a second push. Each push
names its step as its LINE aggregation unit (``fu_q3_1``: ``LineState(unit=...)``).

**Booked.** The booking-news hook (:meth:`Followups.on_booking_news`, composed in ``bot.app.make_booking_news``)
notes when the owner booked a consultation, in their slot: follow-ups started before then stop.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.booking_news import BOOKED, BookingNews
from bot.logs import uid
from bot.nudges import in_hours
from bot.outbox import Outbox
from bot.push_budget import ALLOWED, HELD_BUDGET, PushBudget, month_of, next_month_opens
from conversations import keys
from conversations.content import Script
from conversations.errors import InvalidInput
from conversations.jobs import Job
from conversations.keys import Subject
from conversations.machine import Conv
from conversations.nudges import ACK_LUA, CLAIM_LUA, DEFER_LUA
from conversations.outputs import FollowStep
from conversations.redis_ops import runner, text
from conversations.transports import LineState, Transport
from scoring import next_point

log = logging.getLogger(__name__)
DAY = 86400
LEASE = 60.0  # seconds a claimed step stays handed out before it is due again
LEDGER_TTL = 60 * DAY  # a step's ledger mark outlives any retry of its claim
BATCH = 100  # steps claimed at once (a pass claims until none is due)
KIND = "followup"  # its kind in the push budget
_NAMESPACE = uuid.UUID("5b0e8f0a-3c1d-4f7e-9a2b-7d4c6e1f2a3b")


def member(subject: Subject, sid: int, q: int, step: int) -> str:
    return f"{subject.transport}:{subject.user_id}|{sid}|{q}|{step}"


def parse_member(raw: str) -> tuple[Subject, int, int, int] | None:
    try:
        ref, sid, q, step = raw.split("|")
        transport, user_id = ref.split(":", 1)
        return Subject(Transport.parse(transport), user_id), int(sid), int(q), int(step)
    except (ValueError, InvalidInput):
        return None


def job_id(subject: Subject, sid: int, step: int) -> str:
    """The push's job id and X-Line-Retry-Key (LINE takes only a UUID): the same for every claim of a step."""
    return str(uuid.uuid5(_NAMESPACE, f"fu-{subject.transport}:{subject.user_id}-{sid}-{step}"))


def why_not(conv: Conv, booked: float, sid: int, q: int) -> str:
    """Why a step of diagnosis ``sid``'s point ``q`` is no longer wanted ("" it is): still opted in on that
    diagnosis (no retake since), its point still ``q``, no consultation booked since they started."""
    if not conv.fu:
        return "the owner stopped them (停止, no, or unfollowed)"
    if conv.sid != sid or not conv.last or next_point(conv.last) != q:
        return "a retake started since"
    if booked >= conv.fu:
        return "a consultation was booked"
    return ""


class PassQuota:
    """LINE's quota left (bot/line/quota.py), read at most once a pass and shared by the pushes that may be
    held: the follow-ups go first and take theirs (:meth:`take`), so the nudges' read leaves them out."""

    def __init__(self, reader: Callable[[], Any]) -> None:
        self.reader = reader
        self._left: float | None = None

    def begin(self) -> None:
        """A new pass: read afresh when asked."""
        self._left = None

    def left(self) -> float:
        if self._left is None:
            try:
                self._left = float(self.reader().left)
            except Exception as e:  # LINE not answering: the month's budget alone decides
                log.warning("push quota: LINE's quota unknown (%s)", type(e).__name__)
                self._left = math.inf
        return self._left

    def take(self, n: int = 1) -> None:
        self._left = self.left() - n

    def __call__(self) -> Any:
        """What a quota reader answers (``.left``), for bot/nudges.py."""
        return _Left(self.left())


@dataclass(frozen=True)
class _Left:
    left: float


class Followups:
    """The follow-ups' content and schedule (the core, before a commit) and the booking-news hook."""

    def __init__(self, client: Any, script: Script, *, resources_url: str = "",
                 clock: Callable[[], float] = time.time) -> None:
        self.r = runner(client)
        self.script = script
        self.resources_url = resources_url.rstrip("/")
        self.clock = clock

    def schedule(self, subject: Subject, conv: Conv) -> list[tuple[str, float]]:
        """(member, due) of the steps of ``conv``'s point to fix, from when its follow-ups started (LINE only)."""
        if subject.transport != Transport.LINE or not conv.fu or not conv.last:
            return []
        q = next_point(conv.last)
        if q is None:
            return []
        steps = self.script.questions[q].followups
        return [(member(subject, conv.sid, q, i), conv.fu + f.day * DAY) for i, f in enumerate(steps)]

    def step(self, q: int, i: int) -> FollowStep | None:
        """Step ``i`` of question ``q``'s follow-ups with its link (None: the content has no such step)."""
        steps = self.script.questions[q].followups if 0 <= q < len(self.script.questions) else ()
        if not 0 <= i < len(steps):
            return None
        link = steps[i].link
        return FollowStep(q, i, f"{self.resources_url}/{link}" if link and self.resources_url else "")

    def sender(self, outbox: Outbox, budget: PushBudget, quota: PassQuota | None = None) -> FollowupSender:
        return FollowupSender(self, outbox, budget, quota)

    def on_booking_news(self, news: BookingNews) -> None:
        """A consultation booked: follow-ups started before now stop (the time kept in the owner's slot)."""
        if news.kind != BOOKED or news.lead.transport != Transport.LINE:
            return
        self.r.set(keys.followup_booked(news.lead), repr(round(self.clock(), 3)), ex=LEDGER_TTL)


@dataclass(frozen=True)
class _Due:
    raw: str
    lease: float
    held: str  # the month a budget held it in ("" never held)


class FollowupSender:
    """The follow-ups of one clock pass (built by :meth:`Followups.sender`; run by bot/reminders.py)."""

    def __init__(self, followups: Followups, outbox: Outbox, budget: PushBudget, quota: PassQuota | None,
                 *, lease: float = LEASE) -> None:
        self.followups = followups
        self.r = followups.r
        self.outbox = outbox
        self.budget = budget
        self.quota = quota
        self.lease = lease
        self._claim = self.r.script(CLAIM_LUA)
        self._ack = self.r.script(ACK_LUA)
        self._defer = self.r.script(DEFER_LUA)

    def run(self, now: float, *, dry_run: bool = False) -> tuple[list[str], list[tuple[str, str]]]:
        """Queue the steps due at ``now`` (none outside the hours: they wait): (lines queued, (what, why) skipped)."""
        if self.quota is not None:
            self.quota.begin()
        if not in_hours(now):
            return [], []
        if dry_run:
            due = self.r.zrangebyscore(keys.FOLLOWUPS, "-inf", repr(float(now)))
            return [f"line follow-up {text(m).split('|', 1)[1]} (dry run: would queue)" for m in due], []
        queued: list[str] = []
        skipped: list[tuple[str, str]] = []
        while True:
            until = round(now + self.lease, 3)
            reply = [text(x) for x in self._claim(keys=[keys.FOLLOWUPS, keys.FOLLOWUPS_HELD],
                                                   args=[repr(float(now)), str(BATCH), repr(until)])]
            claimed = [_Due(m, until, held) for m, held in zip(reply[::2], reply[1::2], strict=True)]
            later = {_series(d.raw): max(_step_of(x.raw) for x in claimed if _series(x.raw) == _series(d.raw))
                     for d in claimed}
            for due in claimed:
                self._one(due, now, later, queued, skipped)
            if len(claimed) < BATCH:
                return queued, skipped

    def _one(self, due: _Due, now: float, later: dict[str, int], queued: list[str],
             skipped: list[tuple[str, str]]) -> None:
        """One claimed step: dropped (no longer wanted), held (the budget), or queued; acknowledged unless held."""
        parsed = parse_member(due.raw)
        if parsed is None:
            self._done(due)
            return
        subject, sid, q, i = parsed
        label = f"line follow-up {uid(subject.user_id)} Q{q + 1} step {i + 1}"
        step = self.followups.step(q, i)
        why, ver = self._why_not(subject, sid, q) if step is not None else ("no such step in the content", "")
        if not why and due.held and later[_series(due.raw)] > i:
            why = "a later step is due: it goes instead"  # a held tip does not arrive with the next one
        if why or step is None:
            if due.held:
                self.budget.dropped(KIND, now, why)
            skipped.append((label, why))
            self._done(due)
            return
        key = job_id(subject, sid, i)
        left = self.quota.left() if self.quota is not None else math.inf
        verdict = self.budget.reserve(key, KIND, now, quota_left=left)
        if verdict != ALLOWED:
            self._defer(keys=[keys.FOLLOWUPS, keys.FOLLOWUPS_HELD],
                        args=[due.raw, repr(due.lease), repr(next_month_opens(now)), month_of(now)])
            skipped.append((label, "held: " + ("over this month's push budget" if verdict == HELD_BUDGET
                                               else "LINE's message quota is used up")))
            return
        if self.quota is not None:
            self.quota.take()
        job = Job.new(Transport.LINE, subject.user_id, subject.tag_name, [step], now, job_id=key,
                      state=LineState(via="push", unit=step.unit),
                      content=self.outbox.content_of(ver))  # in the diagnosis' own content version, as a nudge
        if self.outbox.put_once(keys.followup_sent(subject, sid, i), job, ttl=LEDGER_TTL):
            queued.append(label)
        self._done(due)

    def _why_not(self, subject: Subject, sid: int, q: int) -> tuple[str, str]:
        """Why the step is no longer wanted ("" it is), and the owner's diagnosis' content version label."""
        with self.r.pipeline(transaction=False) as p:
            p.get(keys.conv(subject))
            p.get(keys.followup_booked(subject))
            conv_raw, booked_raw = p.execute()
        conv = Conv.from_json(text(conv_raw) if conv_raw else None)
        return why_not(conv, float(text(booked_raw)) if booked_raw else 0.0, sid, q), conv.ver

    def _done(self, due: _Due) -> None:
        self._ack(keys=[keys.FOLLOWUPS, keys.FOLLOWUPS_HELD], args=[due.raw, repr(due.lease)])


def _series(raw: str) -> str:
    """A step's series: its owner, diagnosis and point (the member without its step)."""
    return raw.rsplit("|", 1)[0]


def _step_of(raw: str) -> int:
    try:
        return int(raw.rsplit("|", 1)[1])
    except (IndexError, ValueError):
        return -1
