"""Consultation booking, the foundation: the operator's availability and its slots (pure), and the
bookings in Redis (atomic, exactly once). The LINE conversation, the Slack thread and the clock's pass
build on this API; none of them is wired here.

    availability.py  :class:`Availability` (the JSON contract of ``/console/api/availability``,
                     validated field by field), :func:`offered` slots at a time, :func:`refusal`,
                     :func:`reminder_times`
    store.py         :class:`Bookings`: book / change / cancel / mark, a lead's consultation record,
                     the reads (a lead's bookings, a date range, free places), the reminder schedule
                     (claim with a lease, acknowledge); every operation also as a plan for the async runner

The API, for the code that wires it (``now`` is always the injected clock's)::

    store = Bookings(redis_client, clock=clock)
    store.availability() -> Availability | None          store.set_availability(av_or_json) -> Availability
    store.free_slots(first=None, last=None) -> [FreeSlot(slot, free)]   # offered now, full ones with free == 0
    store.next_free(limit=5, after=None) -> [FreeSlot]                 # paging: after = the last one shown
    store.request_consultation(lead) -> Consultation                    # 相談する: any time, recorded once
    store.book(lead, start, request_id) -> Booked | Full | NotOffered | Inactive
    store.change(booking_id, start, request_id, lead=None) -> the same   # or book() again: one active per lead
    store.cancel(booking_id, by, lead=None) -> Booking | None           # frees the place at once; lead: owner check
    store.mark(booking_id, "attended" | "no_show" | "cancelled", by) -> Booking | None
    store.booking(id), store.bookings_of(lead), store.between(start, end) -> [Booking]
    store.consultation(lead) -> Consultation | None;  store.consultation_counts(from, to, channels)
    store.claim_due_reminders(now, limit) -> [DueReminder]; store.ack_reminder(due)   # see store.py
    store.erase(lead) -> Erased                       # the person's data erased: every trace of the lead gone

``lead`` is a :class:`conversations.keys.Subject` (``Subject(Transport.LINE, user_id)``); a booking names it
as ``"line:<user id>"`` (:func:`conversations.keys.lead_ref`). ``request_id`` is the inbound event's id
(LINE's ``webhookEventId``): a redelivery answers the same, never books twice. :class:`Full` and
:class:`NotOffered` carry ``alternatives``, the next free slots to show instead.
"""

from __future__ import annotations

from conversations.booking.availability import (
    DAYS,
    NOT_A_SLOT,
    TOO_FAR,
    TOO_SOON,
    Availability,
    AvailabilityError,
    Hours,
    Slot,
    day_slots,
    offered,
    refusal,
    reminder_times,
)
from conversations.booking.store import (
    CONSULT_STATUSES,
    MARKS,
    REMINDER_LEDGER_TTL,
    STATUSES,
    Booked,
    Booking,
    Bookings,
    BookResult,
    Consultation,
    DueReminder,
    Erased,
    FreeSlot,
    Full,
    Inactive,
    NotOffered,
)

__all__ = [
    "CONSULT_STATUSES", "DAYS", "MARKS", "NOT_A_SLOT", "REMINDER_LEDGER_TTL", "STATUSES", "TOO_FAR", "TOO_SOON",
    "Availability", "AvailabilityError", "BookResult", "Booked", "Booking", "Bookings", "Consultation", "DueReminder",
    "Erased", "FreeSlot", "Full", "Hours", "Inactive", "NotOffered", "Slot", "day_slots", "offered", "refusal",
    "reminder_times",
]
