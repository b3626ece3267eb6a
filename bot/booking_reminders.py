"""The clock's booking reminders: each reminder due is pushed to its owner's LINE chat exactly once.

For every reminder :meth:`conversations.booking.Bookings.claim_due_reminders` hands out (claimed with a
lease; a cancelled or moved booking's reminders are dropped there and never come out), one LINE push is
queued with the reminder's own job id (a UUID: the worker sends it as ``X-Line-Retry-Key``) and ledger
mark in the user's slot (``Outbox.put_once``: the mark and the job in one script), then the claim is
acknowledged. A clock dying after the claim: the lease runs out and a later pass claims it again; after
the queueing: the ledger makes the second ``put_once`` a no-op. Two clocks: a claimed reminder is not
due again until its lease ends. Run by every reminder pass (``crmbot clock``, ``crmbot remind --now T``:
:meth:`bot.reminders.Reminders.run`).
"""

from __future__ import annotations

import logging

from bot.booking_flow import note
from bot.logs import uid
from bot.outbox import Outbox
from bot.push_budget import PushBudget
from conversations import keys
from conversations.booking import REMINDER_LEDGER_TTL, Bookings
from conversations.jobs import Job
from conversations.redis_ops import text
from conversations.transports import Transport

log = logging.getLogger(__name__)
BATCH = 100  # reminders claimed at once (a pass claims until none is due)


def send_due(bookings: Bookings, outbox: Outbox, now: float, *, dry_run: bool = False,
             budget: PushBudget | None = None) -> list[str]:
    """Queue the pushes of the booking reminders due at ``now``; returns a line per reminder queued (for the
    pass's summary). ``dry_run``: only says what is due (nothing claimed, nothing queued)."""
    if dry_run:
        due = bookings.r.zrangebyscore(keys.BOOKING_REMIND, "-inf", repr(float(now)))
        return [f"line booking reminder {text(m).split('|')[1]} {text(m).split('|')[0]} (dry run: would queue)"
                for m in due if text(m).count("|") == 2]
    av = bookings.availability()
    done: list[str] = []
    while True:
        claimed = bookings.claim_due_reminders(now, limit=BATCH)
        for due in claimed:
            lead = due.subject
            if lead.transport != Transport.LINE:
                bookings.ack_reminder(due)  # only LINE owners book in the chat
                continue
            said = note("remind_day" if due.kind == "day" else "remind_soon", due.booking, av)
            job = Job.new(Transport.LINE, lead.user_id, lead.tag_name, [said], now, job_id=due.job_id)
            if budget is not None:
                budget.reserve(job.id, "booking_reminder", now, must=True)  # once by its job id
            queued = outbox.put_once(due.ledger_key, job, ttl=REMINDER_LEDGER_TTL)
            bookings.ack_reminder(due)
            if queued:
                done.append(f"line booking reminder {due.kind} {due.booking.id} to {uid(lead.user_id)}")
        if len(claimed) < BATCH:
            return done
