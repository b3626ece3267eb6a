"""News of a consultation, handed to whoever must hear of it: one small contract between the parts that
change a consultation (the LINE booking flow, the console) and the parts that tell people (the owner's
LINE chat, the operator's Slack thread).

A part that changes something builds a :class:`BookingNews` and calls the app's hook (a :class:`Fanout`
of :data:`BookingHook` callables, composed in :mod:`bot.app`). A hook must be quick and must not raise
for its own delivery problems: it queues a job (the worker delivers it, with retries) and returns. Each
hook deduplicates what it queues (``Outbox.put_once`` with a ledger mark), because the same news may be
handed over again (a redelivered webhook, a retried console request).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from conversations.booking import Booking
from conversations.keys import Subject

log = logging.getLogger(__name__)

REQUESTED, BOOKED, CHANGED, CANCELLED, ATTENDED, NO_SHOW = (
    "requested", "booked", "changed", "cancelled", "attended", "no_show")
KINDS = (REQUESTED, BOOKED, CHANGED, CANCELLED, ATTENDED, NO_SHOW)


@dataclass(frozen=True)
class BookingNews:
    kind: str  # KINDS
    lead: Subject  # whose consultation
    booking: Booking | None  # the booking as it is now (None for a request without one)
    by: str  # "owner" (the lead's own act) or the operator's name
    news_id: str  # unique per change, stable across retries (e.g. the inbound event id): hooks dedupe by it
    message: str = ""  # the operator's words to the owner (a cancellation from the console), "" none

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown booking news kind {self.kind!r}")


BookingHook = Callable[[BookingNews], None]


def nobody(news: BookingNews) -> None:
    """The hook when nobody is configured to hear."""


class Fanout:
    """Calls each hook in turn; one hook's failure is logged and does not keep the others from hearing."""

    def __init__(self, hooks: Iterable[BookingHook] = ()) -> None:
        self.hooks = list(hooks)

    def __call__(self, news: BookingNews) -> None:
        for hook in self.hooks:
            try:
                hook(news)
            except Exception:  # one listener's trouble must not hide the news from the rest
                log.exception("booking news %s: a hook failed", news.kind)
