"""The operator's conversation with an owner, in the lead's thread of the operator's Slack channel.

**The thread.** A lead's consultation brief (bot/operator.py) opens its thread: when the worker has posted
it, the Slack transport records its ``ts`` in the person's own hash slot (``keys.operator_thread``: channel,
ts) and in the channel's index (``keys.operator_threads``: ts -> the person), see :func:`record_thread`.
Every later post about the person is a Slack job in *the person's own mailbox* (role ``thread`` in its
:class:`~conversations.transports.SlackState`) whose ``thread_ts`` is looked up when it is sent: until the
brief is posted it waits (retried; after the outbox's attempts it is parked, and a requeue sends it once the
brief is there), and it goes out only after every earlier thread post of the person (by the time it was
committed, then LINE's time of the event), so the thread reads in order.

**Handoff.** While a consultation request is open (``Conv.handoff_until`` ahead: for
``CRMBOT_HANDOFF_HOURS`` from the request, or from a person's latest reply in the thread, so it ends
after that long without an answer from the operator's side; or at 「対応終了」), the machine leaves the
owner's free text and stickers to a person (the bot says nothing but its buttons' answers), and the
core (bot/core.py) commits, with the step, a post of what the owner sent into the thread
(:meth:`Relay.owner_post`: text as is, anything else as a short note), keeping the
message's LINE ``markAsReadToken`` (recorded once the post is in the thread).

**The console's view**: the same commit appends what the owner sent, and a person's reply (below), to the
person's handoff log (conversations.handoff_log), which the console's lead page shows.

**A person's reply** in the thread (:meth:`Handoff.reply`, called by the Slack listener) is an input of the
owner's conversation (``operator_reply``, its event id the Slack message's ts: Slack's redelivery applies
once): its step opens the handoff again and commits a LINE push of the words (:meth:`Relay.operator_push`,
job id derived from the message, so ``X-Line-Retry-Key`` is stable) that marks the owner's messages read
(``POST /v2/bot/chat/markAsRead``) once pushed; riding on the same commit, a *receipt* in the thread (a
✓ reaction on the reply once the push is done, or a line saying it could not be sent). An **internal note**
(:func:`is_note`: a message starting with ``//`` or ``(メモ)``) is never sent; nor is a bot's message,
an edit, or any message with a subtype (the listener's filter).

**「対応終了」** (the brief's button, :meth:`Handoff.end`): input ``handoff_end`` ends the handoff (the next
free text gets the bot's own answer), and a line in the thread says who ended it.

**Booking news** (:class:`BookingThread`, a :data:`bot.booking_news.BookingHook`): one line per news id in
the thread (``Outbox.put_once`` with a ledger mark in the person's slot).
"""

from __future__ import annotations

import logging
import time
import unicodedata
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from bot.booking_news import REQUESTED, BookingNews
from bot.core import Bot, InboundEvent, Said
from bot.logs import uid
from bot.outbox import Outbox
from conversations import inputs, jobs, keys
from conversations.errors import InvalidInput
from conversations.inputs import Input
from conversations.jobs import Job, Once
from conversations.keys import Subject
from conversations.ownership import handed_over
from conversations.redis_ops import async_runner, text
from conversations.transports import LineState, SlackState, Transport

log = logging.getLogger(__name__)
OPERATOR_TEXT = "operator_text"  # a LINE job's output: {"type", "text", "read"}: a person's words, then markAsRead
RECEIPT = "slack_receipt"  # a Slack job's output: {"type", "ts", "push", "failed"}: ✓ on a reply once pushed
THREAD, BRIEF, RECEIPT_ROLE = "thread", "brief", "receipt"
NEWS_TTL = 180 * 86400  # seconds a booking news' ledger mark is kept
RECEIPT_TTL = 7 * 86400
THREAD_TTL = 400 * 86400  # seconds a person's thread is remembered after its brief
NOTE_PREFIXES = ("//", "(メモ)", "[メモ]", "(memo)", "(note)")  # NFKC and lower case: （メモ） is (メモ)
MAX_LINE_TEXT = 5000  # LINE's limit for a text message
_RETRY_KEYS = uuid.UUID("6f1d3c2e-5a7b-4c1d-9e8f-0a1b2c3d4e5f")  # namespace of operator replies' job ids


class ThreadRender(Protocol):
    """The words and Block Kit of the thread's posts (Slack's: bot.slack.thread.ThreadRenderer), each a
    ``slack_post`` payload."""

    def owner(self, said: Said) -> dict[str, Any]: ...

    def news(self, news: BookingNews) -> dict[str, Any]: ...

    def ended(self, by: str) -> dict[str, Any]: ...

    def not_sent(self) -> str: ...


def is_note(words: str) -> bool:
    """An internal note in the thread: never sent to the owner."""
    return unicodedata.normalize("NFKC", words).strip().lower().startswith(NOTE_PREFIXES)


def push_id(ref: str) -> str:
    """The LINE push job's id for an operator's reply ("<channel>:<ts>"): a UUID (LINE's retry keys are),
    the same for every delivery of the Slack event."""
    return str(uuid.uuid5(_RETRY_KEYS, ref))


def operator_address(workspace: str, channel: str) -> str:
    """The Slack job address of the operator's channel ("<workspace>.<channel>")."""
    return f"{workspace}.{channel}"


class Relay:
    """The core's relay (bot.core.Relay): the jobs a handoff step commits."""

    def __init__(self, render: ThreadRender, channel: str, workspace: str) -> None:
        self.render = render
        self.channel = channel
        self.workspace = workspace

    def thread_job(self, person: Subject, out: dict[str, Any], now: float, *, seq: int = 0, read: str = "",
                   job_id: str | None = None) -> Job:
        """A post into the person's thread, queued in the person's own mailbox."""
        return Job.new(Transport.SLACK, operator_address(self.workspace, self.channel), person.tag_name, [out], now,
                       state=SlackState(person=keys.lead_ref(person), role=THREAD, seq=seq, read=read),
                       job_id=job_id)

    def owner_post(self, ev: InboundEvent, seq: int, now: float, previous: Job | None) -> Job | None:
        if ev.said is None:
            return None
        same = previous is not None and previous.transport == Transport.SLACK
        return self.thread_job(ev.subject, self.render.owner(ev.said), now, seq=seq, read=ev.said.read_token,
                               job_id=previous.id if same and previous is not None else None)

    def operator_push(self, ev: InboundEvent, now: float) -> Job | None:
        said = ev.said
        if said is None or ev.subject.transport != Transport.LINE:
            return None
        out = {"type": OPERATOR_TEXT, "text": said.text[:MAX_LINE_TEXT], "read": said.read_token}
        return Job.new(Transport.LINE, ev.subject.user_id, ev.subject.tag_name, [out], now,
                       state=LineState(via="push"), job_id=push_id(said.ref))


class Handoff:
    """What the operator does in a lead's thread, handed over by the Slack listeners."""

    def __init__(self, bot: Bot, outbox: Outbox, relay: Relay, *, team: str = "",
                 clock: Callable[[], float] = time.time) -> None:
        self.bot = bot
        self.outbox = outbox
        self.relay = relay
        self.team = team  # the operator's workspace ("" one workspace: SLACK_BOT_TOKEN)
        self.clock = clock

    @property
    def channel(self) -> str:
        return self.relay.channel

    def ours(self, team: str, channel: str) -> bool:
        """A message or click in the operator's channel (and, with OAuth, of the operator's workspace)."""
        return channel == self.channel and (not self.team or team == self.team)

    def person_of(self, thread_ts: str) -> Subject | None:
        ref = self.outbox.r.hget(keys.operator_threads(self.channel), thread_ts)
        if ref is None:
            return None
        try:
            return keys.lead_subject(text(ref))
        except InvalidInput:
            return None

    def reply(self, *, team: str, channel: str, thread_ts: str, ts: str, user: str, words: str) -> str:
        """A person's reply in a thread: pushed to the owner once (see the module's doc). Answers what was
        done ("sent", "dup", or why not: "note", "other", "not_a_lead", "empty")."""
        if not self.ours(team, channel):
            return "other"
        if not words.strip():
            return "empty"
        if is_note(words):
            return "note"
        person = self.person_of(thread_ts)
        if person is None or person.transport != Transport.LINE:
            return "not_a_lead"
        token = text(self.outbox.r.hget(keys.operator_thread(person), "read") or b"")
        ref = f"{channel}:{ts}"
        said = Said("text", words, read_token=token, by=user, ref=ref, ws=team)
        now = self.clock()
        event_id = f"op-{ts}"
        receipt = self.relay.thread_job(person, {"type": RECEIPT, "ts": ts, "push": push_id(ref), "event": event_id,
                                                 "failed": self.relay.render.not_sent()}, now)
        receipt.slack.role = RECEIPT_ROLE
        once = Once(keys.operator_receipt(person, ts), receipt, RECEIPT_TTL)
        handled = self.bot.handle(InboundEvent(person, event_id, Input(inputs.OPERATOR_REPLY), timestamp=now,
                                               said=said), once=once)
        log.info("handoff: a reply for %s: %s", uid(person.user_id), handled.status)
        return "sent" if handled.status == "ok" else "dup"

    def end(self, *, team: str, channel: str, person_ref: str, by: str, action_id: str) -> str:
        """「対応終了」: the handoff ends; the thread says who ended it (once per click)."""
        if not self.ours(team, channel):
            return "other"
        try:
            person = keys.lead_subject(person_ref)
        except InvalidInput:
            return "not_a_lead"
        now = self.clock()
        event_id = f"opend-{action_id}"
        if not handed_over(self.bot.store.get(person, event_id).conv, now):
            return "not_open"  # over already (a second click, the hours of silence): nothing to end or say
        note = self.relay.thread_job(person, self.relay.render.ended(by), now)
        once = Once(keys.operator_news(person, f"end-{action_id}"), note, RECEIPT_TTL)
        handled = self.bot.handle(InboundEvent(person, event_id, Input(inputs.HANDOFF_END), timestamp=now), once=once)
        log.info("handoff: ended for %s: %s", uid(person.user_id), handled.status)
        return "ended" if handled.status == "ok" else "dup"


class BookingThread:
    """A :data:`bot.booking_news.BookingHook`: each booking news as one line in the lead's thread. A request
    (``requested``) is not: the brief that opens the thread is its post."""

    def __init__(self, outbox: Outbox, relay: Relay, *, clock: Callable[[], float] = time.time) -> None:
        self.outbox = outbox
        self.relay = relay
        self.clock = clock

    def __call__(self, news: BookingNews) -> None:
        if news.kind == REQUESTED:
            return
        job = self.relay.thread_job(news.lead, self.relay.render.news(news), self.clock())
        if self.outbox.put_once(keys.operator_news(news.lead, news.news_id), job, ttl=NEWS_TTL):
            log.info("handoff: %s news queued for the thread of %s", news.kind, uid(news.lead.user_id))


# ---- the worker's side (async: the Slack transport records and finds the thread) ----------------------


async def record_thread(redis: Any, person_ref: str, channel: str, ts: str) -> None:
    """The brief of ``person_ref`` is posted at ``ts``: it is their thread from now on."""
    person = keys.lead_subject(person_ref)
    client = async_runner(redis)
    await client.hset(keys.operator_thread(person), mapping={"ch": channel, "ts": ts})
    await client.expire(keys.operator_thread(person), THREAD_TTL)
    await client.hset(keys.operator_threads(channel), ts, person_ref)


async def thread_of(redis: Any, person_ref: str) -> tuple[str, str] | None:
    """(channel, ts) of the person's thread, None while their brief is not posted."""
    raw = await async_runner(redis).hgetall(keys.operator_thread(keys.lead_subject(person_ref)))
    h = {text(k): text(v) for k, v in raw.items()}
    return (h["ch"], h["ts"]) if h.get("ch") and h.get("ts") else None


async def record_read(redis: Any, person_ref: str, token: str) -> None:
    """The owner's latest message in the thread: its markAsReadToken, for the operator's next reply."""
    await async_runner(redis).hset(keys.operator_thread(keys.lead_subject(person_ref)), "read", token)


async def earlier_pending(redis: Any, job: Job) -> bool:
    """Whether a thread post of the same person committed before ``job`` is still to be sent (not parked):
    posts go out in order."""
    client = async_runner(redis)
    raw = await client.hgetall(jobs.mailbox(job.tag))
    leases = {text(k): text(v) for k, v in (await client.hgetall(jobs.leases(job.tag))).items()}
    mine = (job.received, job.slack.seq)
    for field, value in raw.items():
        other_id = text(field)
        if other_id == job.id or leases.get(other_id, "").startswith("inf|"):
            continue
        try:
            other = Job.from_json(value)
        except InvalidInput:
            continue
        if other.transport != Transport.SLACK or other.slack.role != THREAD:
            continue
        if other.slack.person == job.slack.person and (other.received, other.slack.seq) < mine:
            return True
    return False


async def push_state(redis: Any, job: Job, push: str, event_id: str) -> str:
    """An operator reply's LINE push, as the receipt sees it: "pending" (not committed yet, or not sent),
    "parked", or "done" (committed, then gone from the mailbox)."""
    client = async_runner(redis)
    if await client.hget(jobs.mailbox(job.tag), push) is None:
        person = keys.lead_subject(job.slack.person)
        return "done" if await client.exists(keys.seen(person, event_id)) else "pending"
    lease = text(await client.hget(jobs.leases(job.tag), push) or b"")
    return "parked" if lease.startswith("inf|") else "pending"
