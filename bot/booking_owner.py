"""The owner hears of what the consultancy did to their booking: a cancellation from the console (or any
change not made by the owner in the chat) is pushed to them on LINE, once.

A :data:`bot.booking_news.BookingHook` composed by the app's :class:`~bot.booking_news.Fanout`
(bot/app.py). For news of kind ``cancelled`` whose ``by`` is not ``"owner"`` (the owner's own cancel is
answered in the chat by the booking flow itself), it queues one push to the lead's LINE chat: a
:class:`~conversations.outputs.BookingNote` (``cancelled_op``) with the date, the time, the format and the
operator's ``message`` (if any), and a button to book again. Exactly once per news: the job and a ledger
mark in the user's hash slot (``conversations.keys.booking_owner_told``) are written by one script
(:meth:`bot.outbox.Outbox.put_once`), and the job's id is made from the news id, so a retried console
request (the same ``news_id``) queues nothing more. The worker pushes it with the job id as
``X-Line-Retry-Key``. Sync: the console calls it in its request; a Redis failure raises
:class:`~conversations.errors.StoreUnavailable` to the caller (the hook is quick: one script).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable

from bot.booking_flow import note
from bot.booking_news import CANCELLED, BookingNews
from bot.logs import uid
from bot.outbox import Outbox
from conversations import keys
from conversations.booking import Bookings
from conversations.jobs import Job
from conversations.transports import Transport

log = logging.getLogger(__name__)
TOLD_TTL = 60 * 86400  # seconds a ledger mark is kept (far beyond any retry of the news)
_NAMESPACE = uuid.UUID("5f0c6a52-8f1e-4c57-9a43-2f7d0f3c9b11")  # job ids from news ids (UUIDs: a retry key)


def job_id(news_id: str) -> str:
    """The push's job id, a UUID made from the news id: the same for every retry of the news."""
    return str(uuid.uuid5(_NAMESPACE, f"owner-news:{news_id}"))


class OwnerNews:
    """Pushes a cancellation made by the consultancy to the owner's LINE chat, once per news."""

    def __init__(self, outbox: Outbox, bookings: Bookings, *, clock: Callable[[], float] = time.time) -> None:
        self.outbox = outbox
        self.bookings = bookings
        self.clock = clock

    def __call__(self, news: BookingNews) -> None:
        if news.kind != CANCELLED or news.by == "owner" or news.booking is None:
            return
        lead = news.lead
        if lead.transport != Transport.LINE or not self.outbox.handles(Transport.LINE):
            return
        told = note("cancelled_op", news.booking, self.bookings.availability(), news.message[:500])
        job = Job.new(Transport.LINE, lead.user_id, lead.tag_name, [told], self.clock(), job_id=job_id(news.news_id))
        if self.outbox.put_once(keys.booking_owner_told(lead, news.news_id), job, ttl=TOLD_TTL):
            log.info("booking: cancellation by %s queued for %s", "the operator", uid(lead.user_id))
