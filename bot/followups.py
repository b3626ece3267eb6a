"""Follow-ups on the owner's own point to fix: up to three short tips over about two weeks, in LINE.

**Opt-in.** With a result (that has a point to fix) the machine offers them (``FollowOffer``, its own yes /
no, beside the quarterly retake's offer); a yes stores when they start on the record (``Conv.fu``). A retake
finished while they run starts them over from its own point; 停止 (opt-out) and unfollow turn them off.

**Schedule.** When ``Conv.fu`` changes, the core adds the steps of the point's question (the content file's
``[[questions.followups]]``: a day, a tip, an optional link under ``CRMBOT_RESOURCES_URL``) to one sorted set,
:data:`conversations.keys.FOLLOWUPS` (member ``<transport>:<user>|<sid>|<q>|<step>``, score the time due),
*before* the commit (:meth:`Followups.schedule`, as the quarterly reminder's index): the set is a superset of
what is wanted, and the user's record is the truth.

**Sending** (the clock's pass: ``crmbot clock``, ``crmbot remind --now T``; :meth:`Followups.send_due`), only
between 9:00 and 20:00 Japan time (a step due at night waits for 9:00). As the booking reminders
(bot/booking_reminders.py): each due step is claimed with a lease (:data:`CLAIM_LUA`), checked against the
user's record (still opted in, the same diagnosis and point, no consultation booked since the opt-in:
:func:`wanted`), queued with its deterministic job id (a UUID: ``X-Line-Retry-Key``) and its ledger mark in
the user's slot (``Outbox.put_once``), then acknowledged (removed if the lease is still ours). A clock dying
after the claim: the lease runs out and a later pass claims it again, the ledger keeps it from a second push;
two clocks: a claimed step is not due again until its lease ends. Each push names its step as its LINE
aggregation unit (``fu_q3_1``: :attr:`conversations.outputs.FollowStep.unit`).

**Booked.** The booking-news hook (:meth:`Followups.on_booking_news`, composed in ``bot.app.make_booking_news``)
notes when the owner booked a consultation, in their slot: follow-ups started before then stop.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from bot.booking_news import BOOKED, BookingNews
from bot.logs import uid
from bot.outbox import Outbox
from conversations import keys
from conversations.content import Script
from conversations.errors import InvalidInput
from conversations.jobs import UNMARK_LUA, Job
from conversations.keys import Subject
from conversations.machine import Conv
from conversations.outputs import FollowStep
from conversations.redis_ops import runner, text
from conversations.transports import Transport
from scoring import next_point
from scoring.periods import DEFAULT_TZ, zone

log = logging.getLogger(__name__)
DAY = 86400
LEASE = 60.0  # seconds a claimed step stays handed out before it is due again
LEDGER_TTL = 60 * DAY  # a step's ledger mark outlives any retry of its claim
BATCH = 100  # steps claimed at once (a pass claims until none is due)
HOURS = (9, 20)  # sent from 9:00 until 20:00 local time
_NAMESPACE = uuid.UUID("5b0e8f0a-3c1d-4f7e-9a2b-7d4c6e1f2a3b")

# Hand out due steps, each with a lease.
# KEYS[1] the schedule   ARGV[1] now   ARGV[2] how many at most   ARGV[3] the lease's end
# Returns the members claimed (due again at ARGV[3] unless acknowledged).
CLAIM_LUA = """
local out = {}
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))) do
  redis.call('ZADD', KEYS[1], ARGV[3], m)
  out[#out + 1] = m
end
return out
"""

# The push budget's check (bot/push_budget.py, another part): may a follow-up go to this owner now? A step
# it holds stays on the schedule (claimed again when its lease ends). None: every step may go.
BudgetCheck = Callable[[Subject, float], bool]


def member(subject: Subject, sid: int, q: int, step: int) -> str:
    return f"{subject.transport}:{subject.user_id}|{sid}|{q}|{step}"


def parse_member(raw: str) -> tuple[Subject, int, int, int] | None:
    try:
        ref, sid, q, step = raw.split("|")
        transport, user_id = ref.split(":", 1)
        return Subject(Transport(transport), user_id), int(sid), int(q), int(step)
    except (ValueError, InvalidInput):
        return None


def job_id(subject: Subject, sid: int, step: int) -> str:
    """The push's job id and X-Line-Retry-Key (LINE takes only a UUID): the same for every claim of a step."""
    return str(uuid.uuid5(_NAMESPACE, f"fu-{subject.transport}:{subject.user_id}-{sid}-{step}"))


def wanted(conv: Conv, booked: float, sid: int, q: int) -> bool:
    """Still wanted at send time: opted in on diagnosis ``sid`` (no retake since), its point is still ``q``,
    and no consultation was booked since they started."""
    return bool(conv.fu) and conv.sid == sid and conv.last != "" and next_point(conv.last) == q and booked < conv.fu


class Followups:
    def __init__(self, client: Any, script: Script, *, resources_url: str = "", tz: str = DEFAULT_TZ,
                 lease: float = LEASE, budget: BudgetCheck | None = None,
                 clock: Callable[[], float] | None = None) -> None:
        self.r = runner(client)
        self.script = script
        self.resources_url = resources_url.rstrip("/")
        self.tz = tz
        self.lease = lease
        self.budget = budget
        self.clock = clock
        self._claim = self.r.script(CLAIM_LUA)
        self._ack = self.r.script(UNMARK_LUA)

    # ---- scheduling (the core, before a commit) -------------------------------------------------------

    def schedule(self, subject: Subject, conv: Conv) -> list[tuple[str, float]]:
        """(member, due) of the steps of ``conv``'s point to fix, from when its follow-ups started (LINE only)."""
        if subject.transport != Transport.LINE or not conv.fu or not conv.last:
            return []
        q = next_point(conv.last)
        if q is None:
            return []
        steps = self.script.questions[q].followups
        return [(member(subject, conv.sid, q, i), conv.fu + f.day * DAY) for i, f in enumerate(steps)]

    # ---- sending (the clock's pass) ----------------------------------------------------------------------

    def in_hours(self, now: float) -> bool:
        return HOURS[0] <= datetime.fromtimestamp(now, zone(self.tz)).hour < HOURS[1]

    def send_due(self, outbox: Outbox, now: float, *, dry_run: bool = False) -> list[str]:
        """Queue the follow-ups due at ``now`` (none outside the hours: they wait); a line per step queued."""
        if not self.in_hours(now):
            return []
        if dry_run:
            due = self.r.zrangebyscore(keys.FOLLOWUPS, "-inf", repr(float(now)))
            return [f"line follow-up {text(m).split('|', 1)[1]} (dry run: would queue)" for m in due]
        done: list[str] = []
        while True:
            lease = now + self.lease
            claimed = [text(m) for m in self._claim(keys=[keys.FOLLOWUPS],
                                                    args=[repr(float(now)), str(BATCH), repr(lease)])]
            for raw in claimed:
                said = self._one(outbox, raw, now)
                if said is not None:
                    self._ack(keys=[keys.FOLLOWUPS], args=[raw, repr(lease)])
                    if said:
                        done.append(said)
            if len(claimed) < BATCH:
                return done

    def _one(self, outbox: Outbox, raw: str, now: float) -> str | None:
        """One claimed step: "" dropped (no longer wanted), a summary line if queued, None held (the budget)."""
        parsed = parse_member(raw)
        if parsed is None:
            return ""
        subject, sid, q, step = parsed
        with self.r.pipeline(transaction=False) as p:
            p.get(keys.conv(subject))
            p.get(keys.followup_booked(subject))
            conv_raw, booked_raw = p.execute()
        conv = Conv.from_json(text(conv_raw) if conv_raw else None)
        booked = float(text(booked_raw)) if booked_raw else 0.0
        steps = self.script.questions[q].followups if 0 <= q < len(self.script.questions) else ()
        if not wanted(conv, booked, sid, q) or step >= len(steps):
            return ""
        # The push budget (bot/push_budget.py) decides here, before anything is queued.
        if self.budget is not None and not self.budget(subject, now):
            return None
        link = steps[step].link
        url = f"{self.resources_url}/{link}" if link and self.resources_url else ""
        job = Job.new(Transport.LINE, subject.user_id, subject.tag_name, [FollowStep(q, step, url)], now,
                      job_id=job_id(subject, sid, step))
        queued = outbox.put_once(keys.followup_sent(subject, sid, step), job, ttl=LEDGER_TTL)
        return f"line follow-up q{q + 1} step {step + 1} to {uid(subject.user_id)}" if queued else ""

    # ---- the booking-news hook ---------------------------------------------------------------------------

    def on_booking_news(self, news: BookingNews) -> None:
        """A consultation booked: follow-ups started before now stop (the time kept in the owner's slot)."""
        if news.kind != BOOKED or news.lead.transport != Transport.LINE:
            return
        now = self.clock() if self.clock is not None else datetime.now().timestamp()
        self.r.set(keys.followup_booked(news.lead), repr(round(now, 3)), ex=LEDGER_TTL)
