"""Drop-off recovery: a LINE diagnosis left mid-way gets one push that resumes at the question where the
owner stopped (one friendly line, text ``nudge``, then that question with its buttons).

Run by every reminder pass (``crmbot clock``, ``crmbot remind --now T``: :meth:`bot.reminders.Reminders.run`),
only between :data:`FIRST_HOUR` and :data:`LAST_HOUR` Japan time: a nudge due at night waits for the morning.
For every diagnosis the schedule hands out (conversations/nudges.py: claimed with a lease), the owner's record
is read again: nothing is sent if the diagnosis moved on (answered since, finished, restarted, gone with an
unfollow), expired (:attr:`conversations.machine.Settings.expiry`), the owner said 停止 (``Conv.quiet``), or a
person is talking with them (an open handoff). Otherwise the push budget is asked (bot/push_budget.py): held,
the nudge is due again when the next month opens (and dropped with a reason then if no longer relevant);
allowed, the push is queued with its ledger mark in the user's slot and a job id made from the diagnosis
(a UUID: the worker sends it as ``X-Line-Retry-Key``) by ``Outbox.put_once``, marked on the lead for the
funnel (``nudged``; idempotent), then the claim is acknowledged. Exactly once as the booking reminders:
a clock dying after its claim leaves it to a later pass when the lease ends; after the queueing, the ledger
makes the second ``put_once`` a no-op. LINE statistics count it under ``nudge_q<n>``.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from bot.logs import uid
from bot.outbox import Outbox
from bot.push_budget import ALLOWED, HELD_BUDGET, PushBudget, month_of, next_month_opens
from conversations import keys
from conversations.analytics import nudged_step
from conversations.jobs import Job
from conversations.machine import Conv
from conversations.nudges import DueNudge, NudgeSchedule
from conversations.outputs import Notice, Question
from conversations.redis_ops import runner
from conversations.transports import LineState, Transport
from scoring.periods import DEFAULT_TZ, zone

log = logging.getLogger(__name__)
FIRST_HOUR, LAST_HOUR = 9, 20  # nudges go from 9:00 to before 20:00, Japan time
BATCH = 100
LEDGER_TTL = 60 * 86400  # outlives any retry of a claim, and a diagnosis (it expires within days)
KIND = "nudge"  # its kind in the push budget
_NAMESPACE = uuid.UUID("3f0c8a52-6a8e-4f57-9b1e-2f6d1c5a9e70")


def job_id(member: str) -> str:
    """The nudge's job id and X-Line-Retry-Key (LINE takes only a UUID): the same for every claim of it."""
    return str(uuid.uuid5(_NAMESPACE, f"nudge-{member}"))


def in_hours(now: float, tz: str = DEFAULT_TZ) -> bool:
    return FIRST_HOUR <= datetime.fromtimestamp(now, zone(tz)).hour < LAST_HOUR


class Nudges:
    """The drop-off nudges of one pass. ``after``: seconds a diagnosis waits (CRMBOT_NUDGE_AFTER_HOURS);
    ``expiry``: when an unfinished diagnosis expires (machine Settings.expiry); ``quota``: LINE's quota
    reader (bot.line.quota), or None."""

    def __init__(self, client: Any, outbox: Outbox, budget: PushBudget, *, after: float, expiry: float,
                 quota: Callable[[], Any] | None = None, schedule: NudgeSchedule | None = None) -> None:
        self.r = runner(client)
        self.outbox = outbox
        self.budget = budget
        self.after = after
        self.expiry = expiry
        self.quota = quota
        self.schedule = schedule or NudgeSchedule(client)

    def run(self, now: float, *, dry_run: bool = False) -> tuple[list[str], list[tuple[str, str]]]:
        """Queue the nudges due at ``now``: (lines queued, (what, why) skipped) for the pass's summary."""
        if self.after <= 0 or not in_hours(now):
            return [], []
        if dry_run:
            return [f"line nudge {uid(m.split('|')[0].split(':', 1)[-1])} (dry run: would queue)"
                    for m in self.schedule.due(now)], []
        queued: list[str] = []
        skipped: list[tuple[str, str]] = []
        left: float | None = None  # LINE's quota left, read once a pass when something is to go
        while True:
            claimed = self.schedule.claim(now, BATCH)
            for due in claimed:
                conv = Conv.from_json(self.r.get(keys.conv(due.subject)))
                label = f"line nudge {uid(due.subject.user_id)} Q{conv.q + 1}"
                why = self._why_not(due, conv, now)
                if why:
                    if due.held:
                        self.budget.dropped(KIND, now, why)
                    skipped.append((label, why))
                    self.schedule.ack(due)
                    continue
                if left is None:
                    left = self._quota_left()
                verdict = self.budget.reserve(job_id(due.member), KIND, now, quota_left=left)
                if verdict != ALLOWED:
                    self.schedule.defer(due, next_month_opens(now), month_of(now))
                    skipped.append((label, "held: " + ("over this month's push budget" if verdict == HELD_BUDGET
                                                       else "LINE's message quota is used up")))
                    continue
                left -= 1
                if self._queue(due, conv, now):
                    queued.append(label)
                self.schedule.ack(due)
            if len(claimed) < BATCH:
                return queued, skipped

    def _why_not(self, due: DueNudge, conv: Conv, now: float) -> str:
        """Why the diagnosis is no longer to be nudged ("" it is)."""
        begun = conv.begun or conv.updated
        if due.subject.transport != Transport.LINE:
            return "not a LINE user"
        if not conv.in_progress or conv.sid != due.sid or round(begun * 1000) != round(due.begun * 1000):
            return "the diagnosis moved on (finished, started over, or unfollowed)"
        if conv.quiet:
            return "the owner said 停止"
        if now - conv.updated > self.expiry:
            return "the diagnosis has expired"
        if now - conv.updated < self.after:
            return "answered since"
        if conv.handoff_until > now:
            return "a person is talking with them"
        return ""

    def _quota_left(self) -> float:
        if self.quota is None:
            return math.inf
        try:
            return float(self.quota().left)
        except Exception as e:  # LINE not answering: the month's budget alone decides
            log.warning("nudges: LINE's quota unknown (%s)", type(e).__name__)
            return math.inf

    def _queue(self, due: DueNudge, conv: Conv, now: float) -> bool:
        """The push with its ledger mark (once), then the lead's funnel mark (idempotent)."""
        s = due.subject
        job = Job.new(Transport.LINE, s.user_id, s.tag_name, [Notice("nudge", conv.q + 1), Question(conv.sid, conv.q)],
                      now, job_id=job_id(due.member), state=LineState(via="push", unit=f"nudge_q{conv.q + 1}"),
                      var=conv.var,  # the question in its experiment variant's wording, as the diagnosis saw it
                      content=self.outbox.content_of(conv.ver))  # and in the diagnosis' own content version
        queued = self.outbox.put_once(due.ledger_key, job, ttl=LEDGER_TTL)
        self.r.do(nudged_step(str(s.transport), s.user_id, due.sid, due.begun, conv.q + 1, now))
        return queued
