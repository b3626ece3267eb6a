"""The bot core: one inbound event -> one atomic state change -> outputs queued for delivery.

Channel adapters turn their webhooks into :class:`InboundEvent` and call :meth:`Bot.handle`.
The core never imports Flask, LINE or Slack.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.logs import uid
from bot.outbox import Outbox
from conversations import inputs as I
from conversations.analytics import STATS_CHANNEL, delta_of
from conversations.errors import Contention
from conversations.inputs import Input
from conversations.jobs import Job
from conversations.keys import Subject
from conversations.machine import Conv, Machine
from conversations.store import CONFLICT, DUPLICATE, OK, Persistence

log = logging.getLogger(__name__)
MAX_CAS_ATTEMPTS = 20


@dataclass(frozen=True)
class InboundEvent:
    subject: Subject
    event_id: str  # the channel's unique event ID (LINE webhookEventId): the dedupe key
    input: Input
    reply_token: str | None = None
    timestamp: float | None = None  # when the channel says it happened (seconds)
    redelivery: bool = False


@dataclass(frozen=True)
class Handled:
    status: str  # "ok" or "dup"
    state: str
    outputs: tuple[dict[str, Any], ...] = ()


class Bot:
    def __init__(
        self,
        store: Persistence,
        machine: Machine,
        outbox: Outbox | None = None,
        *,
        clock: Callable[[], float] = time.time,
        conversation_ttl: int = 7 * 86400,
    ) -> None:
        self.store = store
        self.machine = machine
        self.outbox = outbox
        self.clock = clock
        self.conversation_ttl = conversation_ttl

    def handle(self, ev: InboundEvent) -> Handled:
        """Apply the event exactly once. Raises StoreUnavailable when Redis does not answer, Contention
        when the user's record kept changing under concurrent events (nothing was applied)."""
        job = None
        for _ in range(MAX_CAS_ATTEMPTS):
            snap = self.store.get(ev.subject, ev.event_id)
            if snap.seen:
                log.info("duplicate event %s from %s ignored", ev.event_id[:12], uid(ev.subject.user_id))
                return Handled(DUPLICATE, snap.conv.state)
            now = self.clock()
            step = self.machine.step(snap.conv, ev.input, now)
            conv = step.conv if step.changed else snap.conv
            job = self._job(ev, snap.conv, conv, step.outputs, now, job)
            ttl = 0
            if conv is not None and conv.in_progress and not conv.last:
                ttl = int(self.conversation_ttl + 86400)  # garbage-collect abandoned diagnoses
            result = self.store.update(
                snap,
                conv,
                ev.event_id,
                ttl=ttl,
                job=job,
                look_at=self.outbox.look_at(now) if job is not None and self.outbox is not None else 0.0,
                drop_outbox=ev.input.kind == I.UNFOLLOW,
                remind_index=bool(conv is not None and conv.remind and not snap.conv.remind),
            )
            if result == OK:
                log.info(
                    "%s %s: %s -> %s (%d out)",
                    uid(ev.subject.user_id),
                    ev.input.kind,
                    snap.conv.state,
                    step.state,
                    len(step.outputs),
                )
                return Handled(OK, step.state, step.outputs)
            if result == DUPLICATE:
                return Handled(DUPLICATE, snap.conv.state)
            assert result == CONFLICT
        raise Contention("conversation record kept changing; giving up for now")

    def _job(self, ev: InboundEvent, before: Conv, after: Conv | None, outputs: tuple[dict[str, Any], ...],
             now: float, previous: Job | None) -> Job | None:
        """The job committed with a step: its outputs, and what it changed for the operator's figures
        (``meta["stats"]``, applied by the worker: conversations.analytics). A step with figures to
        count but nothing to say commits a stats-only job (channel "stats")."""
        if self.outbox is None or not self.outbox.handles(ev.subject.channel):
            return None
        stats = delta_of(before, after, outputs, ev.subject, now, event=ev.input.kind)
        if outputs:
            job = self.outbox.job_for(ev, outputs, now, previous)
        elif stats is not None:
            job = Job.new(STATS_CHANNEL, ev.subject.user_id, ev.subject.tag_name, [], now,
                          job_id=previous.id if previous is not None else None)
        else:
            return None
        if stats is not None:
            job.meta["stats"] = stats
        return job
