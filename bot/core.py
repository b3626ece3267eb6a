"""The bot core: one inbound event -> one atomic state change -> outputs queued for delivery.

Channel adapters turn their webhooks into :class:`InboundEvent` and call :meth:`Bot.handle`.
The core never imports Flask, LINE or Slack.

On a transport whose account crmbot shares with another tool (``owned_only``: LINE, in the README's
"Coexistence with another LINE tool"), the step of an event crmbot does not own is committed as usual and
says nothing: the rule is :func:`conversations.ownership.owns`, decided here on the record the step has
already read.

**Handoff** (bot/handoff.py): while a person has an owner's consultation in hand (``Conv.handoff_until``
ahead, the machine's HANDOFF overlay: the bot says nothing to free text), what the owner writes
(:class:`Said`) is relayed into the lead's thread in the operator's Slack channel, and a person's reply
there (input ``operator_reply``) is pushed to the owner: the core asks the injected :class:`Relay` for
the job and commits it with the step, so each is queued exactly once per event; the same commit appends
the message to the person's handoff log (conversations.handoff_log), the console's view of the conversation.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from typing import Protocol

from bot import metrics
from bot.booking_flow import BookingFlow, as_request, plain_book
from bot.logs import uid
from bot.outbox import Outbox
from bot.privacy import Eraser
from conversations import handoff_log, inputs, keys, ownership
from conversations.analytics import TEST_CHANNELS, PeerFigures, delta_of
from conversations.content_versions import ContentVersions, step_label
from conversations.errors import Contention, StoreUnavailable
from conversations.experiments import Assigner
from conversations.inputs import Input
from conversations.jobs import Figures, Job, Once
from conversations.keys import Subject
from conversations.machine import HANDOFF, IDLE, Conv, Machine, Step, build
from conversations.outputs import Output, Result
from conversations.ownership import Origin
from conversations.results import peer_shares
from conversations.store import CONFLICT, DUPLICATE, OK, Persistence
from conversations.transports import Transport

log = logging.getLogger(__name__)
MAX_CAS_ATTEMPTS = 20


@dataclass(frozen=True)
class Said:
    """What a message said, as it came (the input keeps only what the machine needs): relayed to the
    operator's thread during a handoff, or an operator's words pushed to the owner."""

    kind: str  # LINE's message type: "text", "sticker", "image", "video", "audio", "file", "location"
    text: str = ""  # the text as is (a file's name, a location's title; "" none)
    read_token: str = ""  # LINE's markAsReadToken of the message ("" none)
    by: str = ""  # an operator's reply: the Slack user who wrote it
    ref: str = ""  # an operator's reply: "<channel>:<ts>" of their message (the receipt's target)
    ws: str = ""  # an operator's reply: their Slack workspace ("" one workspace)


@dataclass(frozen=True)
class InboundEvent:
    subject: Subject
    event_id: str  # the channel's unique event ID (LINE webhookEventId): the dedupe key
    input: Input
    reply_token: str | None = None
    timestamp: float | None = None  # when the channel says it happened (seconds)
    redelivery: bool = False
    origin: Origin | None = None  # what kind of event it came from (LINE: for the ownership rule)
    said: Said | None = None  # the message as it came (a handoff relays it), None for a tap or an event
    # the content version a diagnosis it begins runs ("d:<id>": the try page's draft; "" the one in use)
    content: str = ""


class Relay(Protocol):
    """The handoff's jobs (bot.handoff.Relay): the owner's message as a post in their lead's thread, and a
    person's reply as a push to the owner. None: nothing to queue."""

    def owner_post(self, ev: InboundEvent, seq: int, now: float, previous: Job | None) -> Job | None: ...

    def operator_push(self, ev: InboundEvent, now: float) -> Job | None: ...


@dataclass(frozen=True)
class Handled:
    status: str  # "ok" or "dup"
    state: str
    outputs: tuple[Output, ...] = ()  # what is said (nothing when the event is not crmbot's)
    rode: bool = False  # the ``once`` job given to handle() was sent with the commit (queued, or already)


class Bot:
    def __init__(
        self,
        store: Persistence,
        machine: Machine,
        outbox: Outbox | None = None,
        *,
        clock: Callable[[], float] = time.time,
        conversation_ttl: int = 7 * 86400,
        eraser: Eraser | None = None,
        owned_only: Collection[Transport] = (),
        booking: BookingFlow | None = None,
        peers: PeerFigures | None = None,
        relay: Relay | None = None,
        nudge_after: float = 0.0,
        followups: Callable[[Subject, Conv], list[tuple[str, float]]] | None = None,
        assigner: Assigner | None = None,
        versions: ContentVersions | None = None,
    ) -> None:
        self.store = store
        self.machine = machine
        self.outbox = outbox
        self.clock = clock
        self.conversation_ttl = conversation_ttl
        self.eraser = eraser  # deletes every key of a person who confirmed 「データを削除」 (bot/privacy.py)
        self.owned_only = frozenset(owned_only)  # transports shared with another tool: answer only our events
        self.booking = booking  # 相談する and the booking buttons: done before the step (bot/booking_flow.py)
        self.peers = peers  # how other shops answered, for a result's peer line (None: never said)
        self.relay = relay  # the handoff's relay between the owner and the operator's thread (bot/handoff.py)
        self.nudge_after = nudge_after  # seconds a LINE diagnosis left mid-way waits for its nudge (0: never)
        self.followups = followups  # the follow-ups a record's opt-in schedules (bot/followups.py)
        self.assigner = assigner  # a diagnosis that starts gets its experiments' variants (conversations.experiments)
        # the content versions published from the console (None: the deployed file only); see _versioned
        self.versions = versions
        self._machines: dict[tuple[int, ...], Machine] = {}

    def owns(self, ev: InboundEvent, conv: Conv, now: float) -> bool:
        """Whether the bot answers ``ev`` (always, unless its transport is shared with another tool)."""
        if ev.subject.transport not in self.owned_only or ev.origin is None:
            return True
        return ownership.owns(ev.origin, ev.input, in_progress=self.machine.in_progress(conv, now),
                              handed_over=ownership.handed_over(conv, now))

    def handle(self, ev: InboundEvent, *, once: Once | None = None) -> Handled:
        """Apply the event exactly once. Raises StoreUnavailable when Redis does not answer, Contention
        when the user's record kept changing under concurrent events (nothing was applied). ``once``: a
        job queued at most once that rides on the commit's round trip (a LINE webhook's forward); an event
        already seen when its record is read sends no commit, so it does not ride (``Handled.rode``; one
        found a duplicate by the commit's own script did ride)."""
        job: Job | None = None
        figures: Figures | None = None
        eraser = self.eraser if ev.input.kind == inputs.ERASE_YES else None
        if eraser is not None:
            # Everything of theirs goes first (idempotent: a failure is retried by the redelivery), then the
            # confirmation is committed from an empty record, and its dedupe mark goes once it is committed;
            # the eraser's own mark of the event (outside their slot) makes a redelivery a duplicate.
            if eraser.seen(ev.event_id):
                log.info("duplicate event %s from %s ignored", ev.event_id[:12], uid(ev.subject.user_id))
                return Handled(DUPLICATE, IDLE)
            eraser.erase(ev.subject, by="owner")
        inp = ev.input
        if self.booking is not None:
            # Booked, moved, cancelled or requested first (idempotent by the event's id: a redelivery or a
            # double tap changes nothing more); the answer rides on the input into the pure step.
            inp = self.booking.prepare(ev.subject, ev.event_id, inp)
        elif plain_book(inp):
            inp = as_request(inp)  # no booking here (LINE not configured): 「予約」 asks for a consultation
        for _ in range(MAX_CAS_ATTEMPTS):
            snap = self.store.get(ev.subject, ev.event_id)
            if snap.seen:
                log.info("duplicate event %s from %s ignored", ev.event_id[:12], uid(ev.subject.user_id))
                return Handled(DUPLICATE, snap.conv.state)
            now = self.clock()
            machine = self._machine_for(ev, snap.conv, now)  # with the qualification questions of its version
            step = self._assigned(ev, snap.conv, machine.step(snap.conv, inp, now))
            conv, content_version = self._versioned(ev, snap.conv, step.conv if step.changed else snap.conv, now)
            owned = self.owns(ev, snap.conv, now)
            said = self._with_peers(ev, step.outputs) if owned else ()
            job, figures, relayed = self._queued(ev, snap.conv, conv, said, now, job, figures, owned=owned,
                                                 content=content_version)
            entry = self._logged(ev, now) if relayed else None
            ttl = 0
            if conv is not None and conv.in_progress and not conv.last:
                ttl = int(self.conversation_ttl + 86400)  # garbage-collect abandoned diagnoses
            content = self.outbox.content_for(job) if self.outbox is not None else None
            result = self.store.update(
                snap,
                conv,
                ev.event_id,
                ttl=ttl,
                job=job,
                figures=figures,
                look_at=self.outbox.look_at(now) if self.outbox is not None else 0.0,
                drop_outbox=ev.input.kind == inputs.UNFOLLOW,
                remind_index=bool(conv is not None and conv.remind and not snap.conv.remind),
                content=content,
                once=once,
                log=entry,
                nudge=self._nudge(ev.subject, conv) if step.changed else None,
                follow=self.followups(ev.subject, conv) if (
                    self.followups is not None and conv is not None and conv.fu != snap.conv.fu) else (),
            )
            if content is not None and self.outbox is not None:
                self.outbox.content_stored()  # written before the script, whatever the script answered
            if result == OK:
                if eraser is not None:
                    eraser.remember(ev.event_id)
                    self.store.forget_event(ev.subject, ev.event_id)
                metrics.committed(ev.subject.transport, snap.conv, conv, step.outputs)  # once: a duplicate never is
                log.info(
                    "%s %s: %s -> %s (%d out%s)",
                    uid(ev.subject.user_id),
                    ev.input.kind,
                    snap.conv.state,
                    step.state,
                    len(said),
                    "" if said or not step.outputs else ": not ours, left to the other tool",
                )
                return Handled(OK, step.state, said, rode=once is not None)
            if result == DUPLICATE:
                return Handled(DUPLICATE, snap.conv.state, rode=once is not None)
            assert result == CONFLICT
        raise Contention("conversation record kept changing; giving up for now")

    def _assigned(self, ev: InboundEvent, before: Conv, step: Step) -> Step:
        """A step that starts a diagnosis: its record with the diagnosis' experiment variants (``Conv.var``),
        picked by its identity, or an ended experiment's winner (conversations.experiments), among the
        experiments of the content version it starts in."""
        conv, subject = step.conv, ev.subject
        if self.assigner is None or conv is None or not step.changed or conv.sid == before.sid or not conv.in_progress:
            return step
        experiments = self.versions.script_of(self._start_label(ev)).experiments if self.versions is not None else None
        return replace(step, conv=replace(conv, var=self.assigner.var_for(str(subject.transport), subject.user_id,
                                                                          conv.sid, experiments)))

    def _start_label(self, ev: InboundEvent) -> str:
        """The content version a diagnosis begun by ``ev`` runs: the try page's draft, else the one in use."""
        return ev.content or (self.versions.active()[0] if self.versions is not None else "")

    def _versioned(self, ev: InboundEvent, before: Conv, after: Conv | None, now: float) -> tuple[Conv | None, str]:
        """The record to store, with ``ver`` set when the step began a diagnosis (kept to its end, whatever is
        published meanwhile), and the content version (hash) its outputs are rendered with: the diagnosis'
        own while one is under way or finishing, else the one in use ("" : the outbox's own script)."""
        after, label = step_label(before, after, ongoing=self.machine.in_progress(before, now),
                                  start=self._start_label(ev))
        return after, self.versions.script_of(label).version if self.versions is not None else ""

    def _machine_for(self, ev: InboundEvent, before: Conv, now: float) -> Machine:
        """The machine for a step: the app's, or one with the qualification questions of the version the
        step speaks (a published version may ask other ones)."""
        if self.versions is None:
            return self.machine
        label = before.ver if self.machine.in_progress(before, now) else self._start_label(ev)
        counts = self.versions.script_of(label).qualify.counts
        if counts == self.machine.settings.qualify:
            return self.machine
        if counts not in self._machines:
            self._machines[counts] = build(replace(self.machine.settings, qualify=counts))
        return self._machines[counts]

    def _nudge(self, subject: Subject, conv: Conv | None) -> tuple[str, float] | None:
        """A LINE diagnosis this step leaves in progress: (its member, when due) in the nudge schedule."""
        if (self.nudge_after <= 0 or conv is None or not conv.in_progress or conv.quiet
                or subject.transport != Transport.LINE
                or self.outbox is None or not self.outbox.handles(subject.transport)):
            return None
        return keys.nudge_member(subject, conv.sid, conv.begun or conv.updated), conv.updated + self.nudge_after

    def _with_peers(self, ev: InboundEvent, outputs: tuple[Output, ...]) -> tuple[Output, ...]:
        """The outputs with each result's peer shares (conversations.results.peer_shares), read only when a
        step shows a result. A diagnosis finishing now is not in the figures yet (a worker applies them after
        the commit): it is counted, unless its user is a test. Redis not answering leaves the line out."""
        if self.peers is None or not any(isinstance(out, Result) for out in outputs):
            return outputs
        try:
            counts = self.peers.counts()
        except StoreUnavailable:
            return outputs
        test = ev.subject.transport in TEST_CHANNELS
        return tuple(replace(out, peers=peer_shares(counts, out.answers, own=not out.again and not test))
                     if isinstance(out, Result) else out for out in outputs)

    def _queued(self, ev: InboundEvent, before: Conv, after: Conv | None, outputs: tuple[Output, ...], now: float,
                job: Job | None, figures: Figures | None, *,
                owned: bool = True, content: str = "") -> tuple[Job | None, Figures | None, bool]:
        """What a step commits beside the record: the job that says its outputs (none when it says
        nothing; for an event left to another tool, what the outbox still does for it), and the record of
        what it changed for the operator's figures (conversations.analytics, applied by a worker from its
        own queue entry; none when nothing changed). Their ids survive the compare-and-set retries
        (``job``, ``figures``: the previous try's). Last, whether the job is the handoff's relay."""
        if self.outbox is None or not self.outbox.handles(ev.subject.transport):
            return None, None, False
        if outputs:
            new_job: Job | None = self.outbox.job_for(ev, outputs, now, job, read=self._read(ev, after, now),
                                                      var=after.var if after is not None else "", content=content)
        else:
            new_job = None if owned else self.outbox.silent_job(ev, now, job)
        relayed = False
        if new_job is None and self.relay is not None:
            new_job = self._relayed(ev, before, outputs, now, job)
            relayed = new_job is not None
        delta = delta_of(before, after, outputs, ev.subject, now, event=ev.input.kind)
        new_figures = None
        if delta is not None:
            new_figures = Figures.new(ev.subject.tag_name, delta, record_id=figures.id if figures else None)
        return new_job, new_figures, relayed

    @staticmethod
    def _logged(ev: InboundEvent, now: float) -> handoff_log.Entry | None:
        """The handoff log's entry of a step that relays (conversations.handoff_log): the owner's message
        posted into the lead's thread, or a person's reply pushed to the owner; written by the step's commit."""
        said = ev.said
        if said is None:
            return None
        if ev.input.kind == inputs.OPERATOR_REPLY:
            return handoff_log.operator_entry(said.text, now, by=said.by, ws=said.ws)
        return handoff_log.owner_entry(said.kind, said.text, ev.timestamp if ev.timestamp is not None else now)

    def _read(self, ev: InboundEvent, after: Conv | None, now: float) -> str:
        """The markAsReadToken of an owner's message the bot answers while (or by) handing them off to a
        person (相談する, a keyword, a booking word): the operator's reply marks it read with the messages
        relayed to the thread. "" when there is no handoff or no token."""
        if self.relay is None or ev.said is None or after is None or not ownership.handed_over(after, now):
            return ""
        return ev.said.read_token

    def _relayed(self, ev: InboundEvent, before: Conv, outputs: tuple[Output, ...], now: float,
                 job: Job | None) -> Job | None:
        """The handoff's job for this step, if any: a person's reply pushed to the owner; or the owner's
        message, left to a person (the HANDOFF overlay said nothing), posted into the lead's thread when
        there is one to expect (a consultation was requested)."""
        assert self.relay is not None
        if ev.input.kind == inputs.OPERATOR_REPLY:
            return self.relay.operator_push(ev, now) if ev.said is not None else None
        if ev.said is None or outputs or not before.consulted or self.machine.overlay(before, now) != HANDOFF:
            return None
        seq = int(ev.timestamp * 1000) if ev.timestamp is not None else 0  # LINE's time orders one webhook's events
        return self.relay.owner_post(ev, seq, now, job)
