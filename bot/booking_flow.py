"""Booking a consultation inside the chat: the side effects of 相談する and of the booking buttons, done
by the core *before* the pure step (as the eraser is: bot/core.py), each idempotent, so a redelivered
event or a double tap does it again and changes nothing.

:meth:`BookingFlow.prepare` takes the input of an event, does what it asks in the booking store
(:class:`conversations.booking.Bookings`) and returns the input with its answer in ``Input.reply``
(:class:`~conversations.outputs.Slots` or :class:`~conversations.outputs.BookingNote`); the machine
places that answer among the step's outputs (conversations/machine.py ``consult`` and ``booking``).

- 相談する (``CONSULT``): the request is recorded once per person (``request_consultation``), the
  app's booking-news hook hears ``requested``; with availability set, the next free slots follow (or
  the booking already made). Without availability nothing is added: the confirmation carries the
  booking page (``CRMBOT_CONSULT_URL``) as before.
- 「予約する」 / 「ほかの日時を見る」 / 「変更する」 (``BOOK``): a page of free slots (after ``Input.at``;
  moving ``Input.ref``). 「予約」 typed (the script's ``keywords.book``) is the 「予約する」 button; where
  no slot can be shown (no availability, a channel that does not book) it is 相談する.
- a slot (``BOOK_PICK``): ``book`` (or ``change`` of ``Input.ref``) with the event's id as the
  request id: a redelivery answers the same booking, a double tap finds it already there; Full and
  NotOffered show the alternatives.
- 「キャンセルする」 (``BOOK_CANCEL``): the place is freed at once.

Each booked / changed / cancelled is handed to the hook (``by="owner"``). Its ``news_id`` is the
booking's id and version (``<id>.<seq>``): unique per change and the same for a redelivery and a double
tap, so the hook is called again whenever an event is handled again (nothing is lost to a crash between
the change and the hook) and each hook's ledger makes the repeat a no-op.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import replace
from datetime import UTC, datetime

from bot.booking_news import BOOKED, CANCELLED, CHANGED, REQUESTED, BookingHook, BookingNews, nobody
from bot.logs import uid
from conversations import inputs, keys
from conversations.booking import Availability, Booked, Booking, Bookings, FreeSlot, Full, Inactive, NotOffered
from conversations.errors import InvalidInput
from conversations.inputs import Input
from conversations.keys import Subject
from conversations.outputs import BookingNote, Output, Slots
from conversations.transports import Transport
from scoring.periods import DEFAULT_TZ

log = logging.getLogger(__name__)
PAGE = 8  # free slots shown at once (CRMBOT_BOOKING_PAGE)
KINDS = frozenset({inputs.CONSULT, *inputs.BOOKING_KINDS})


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def note(stage: str, booking: Booking | None, av: Availability | None, message: str = "") -> BookingNote:
    """A booking as its owner is told of it (times read in the availability's zone)."""
    tz = av.timezone if av is not None else DEFAULT_TZ
    if booking is None:
        return BookingNote(stage, tz=tz, message=message)
    return BookingNote(stage, booking.id, _epoch(booking.start), _epoch(booking.end), tz, booking.format, message)


def plain_book(inp: Input) -> bool:
    """「予約」 typed, or the 「予約する」 button: the first page of free slots, nothing being moved."""
    return inp.kind == inputs.BOOK and not inp.at and not inp.ref


def as_request(inp: Input) -> Input:
    """A plain 「予約」 where no slot can be shown (no availability set, or a channel that does not book: the
    try page, Slack): a consultation request, as 相談する is (the booking page, or a person arranges it)."""
    return replace(inp, kind=inputs.CONSULT)


class BookingFlow:
    """The booking side of an event (see the module's doc). ``channels``: the transports whose people
    book (LINE; the try page and Slack keep the plain request, so a test never takes a real place)."""

    def __init__(self, bookings: Bookings, news: BookingHook = nobody, *, page: int = PAGE,
                 channels: Collection[Transport] = (Transport.LINE,)) -> None:
        self.bookings = bookings
        self.news = news
        self.page = max(1, page)
        self.channels = frozenset(channels)

    def prepare(self, subject: Subject, event_id: str, inp: Input) -> Input:
        """``inp`` with the flow's answer in ``reply`` (unchanged when it is not the flow's)."""
        if plain_book(inp) and (subject.transport not in self.channels or self.bookings.availability() is None):
            inp = as_request(inp)  # 「予約」 where no slot can be shown: the request, as 相談する
        if inp.kind not in KINDS or subject.transport not in self.channels:
            return inp
        if inp.kind == inputs.CONSULT:
            reply = self._consult(subject)
        elif inp.kind == inputs.BOOK:
            reply = self._show(subject, inp)
        elif inp.kind == inputs.BOOK_PICK:
            reply = self._pick(subject, event_id, inp)
        else:
            reply = self._cancel(subject, inp)
        return replace(inp, reply=tuple(reply))

    # ---- the steps --------------------------------------------------------------------------------

    def _consult(self, subject: Subject) -> Sequence[Output]:
        record = self.bookings.request_consultation(subject)
        if record.new:
            log.info("booking: consultation requested by %s", uid(subject.user_id))
        # one news per person's request (letters, digits, '.', '-' only: a hook may key a ledger mark by it)
        self._tell(REQUESTED, subject, None, f"requested-{subject.transport}-{subject.user_id}-{record.requested:.3f}")
        av = self.bookings.availability()
        if av is None:
            return ()
        if record.booking:
            active = self.bookings.booking(record.booking)
            if active is not None and active.active:
                return (note("same", active, av),)
        return (self._slots(av, None),)

    def _show(self, subject: Subject, inp: Input) -> Sequence[Output]:
        av = self.bookings.availability()
        if av is None:
            return (Slots((), DEFAULT_TZ, note="none"),)
        if inp.ref:
            moving = self.bookings.booking(inp.ref)
            if moving is None or moving.lead != keys.lead_ref(subject) or not moving.active:
                return (note("gone", None, av),)
        after = datetime.fromtimestamp(inp.at, UTC) if inp.at else None
        return (self._slots(av, after, moving=inp.ref),)

    def _pick(self, subject: Subject, event_id: str, inp: Input) -> Sequence[Output]:
        assert inp.at is not None  # inputs.from_button gives a pick its start
        start = datetime.fromtimestamp(inp.at, UTC)
        try:
            if inp.ref:
                result = self.bookings.change(inp.ref, start, event_id, lead=subject)
            else:
                result = self.bookings.book(subject, start, event_id)
        except InvalidInput:  # the availability was removed since the slots were shown
            return (Slots((), DEFAULT_TZ, note="none"),)
        av = self.bookings.availability()
        match result:
            case Booked(booking=b, repeated=repeated, moved_from=moved_from):
                self._tell(CHANGED if moved_from is not None or b.seq > 0 else BOOKED, subject, b)
                stage = "same" if repeated else "changed" if moved_from is not None else "booked"
                return (note(stage, b, av),)
            case Full(alternatives=alts):
                return (self._alternatives(av, alts, "full", inp.ref),)
            case NotOffered(alternatives=alts):
                return (self._alternatives(av, alts, "not_offered", inp.ref),)
            case Inactive():
                return (note("gone", None, av),)
        return ()

    def _cancel(self, subject: Subject, inp: Input) -> Sequence[Output]:
        av = self.bookings.availability()
        found = self.bookings.booking(inp.ref)
        if found is None or found.lead != keys.lead_ref(subject):
            return (note("gone", None, av),)
        if found.status != "cancelled":
            try:
                cancelled = self.bookings.cancel(found.id, by="owner", lead=subject)
            except InvalidInput:  # attended or missed meanwhile: nothing to cancel
                return (note("gone", None, av),)
            if cancelled is None:
                return (note("gone", None, av),)
            found = cancelled
        self._tell(CANCELLED, subject, found)  # again after a crash or a double tap: the hooks' ledgers dedupe
        return (note("cancelled", found, av),)

    # ---- helpers ----------------------------------------------------------------------------------

    def _slots(self, av: Availability, after: datetime | None, *, moving: str = "") -> Slots:
        free = self.bookings.next_free(limit=self.page + 1, after=after)
        shown = free[:self.page]
        more = _epoch(shown[-1].start) if len(free) > self.page else 0
        return Slots(tuple((_epoch(s.start), _epoch(s.end)) for s in shown), av.timezone, av.format, more,
                     moving, "" if shown else "none")

    def _alternatives(self, av: Availability | None, alts: Sequence[FreeSlot], why: str, moving: str) -> Slots:
        if av is None or not alts:
            return Slots((), av.timezone if av else DEFAULT_TZ, note="none")
        spans = tuple((_epoch(s.start), _epoch(s.end)) for s in alts)
        return Slots(spans, av.timezone, av.format, max(start for start, _ in spans), moving, why)

    def _tell(self, kind: str, subject: Subject, booking: Booking | None, news_id: str = "") -> None:
        news_id = news_id or (f"{booking.id}.{booking.seq}" if booking is not None else "")
        self.news(BookingNews(kind, subject, booking, "owner", news_id))
