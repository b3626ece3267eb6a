"""The bookings as an iCalendar feed (RFC 5545), for Google Calendar and Outlook to subscribe to: pure
(bookings and lead data in, bytes out; no clock, no Redis), written with the ``icalendar`` library
(escaping, line folding at 75 octets, CRLF).

One VEVENT per booking:

* ``UID`` ``<booking id>@crmbot``: stable across regenerations, so a calendar updates the event in
  place rather than adding another;
* ``DTSTART`` / ``DTEND`` in UTC (``...Z``: no VTIMEZONE needed; calendars show local time);
* ``SUMMARY`` the shop's (display) name on one line, in :class:`FeedWords.summary`;
* ``DESCRIPTION`` the meeting format, tier, A count, the point to fix and the answers, one per line;
* ``STATUS`` ``CONFIRMED``, or ``CANCELLED`` once cancelled (attended / no-show stay confirmed, the
  outcome written in the description);
* ``SEQUENCE`` the booking's ``seq`` (+1 at each move and at the cancel), ``DTSTAMP`` and
  ``LAST-MODIFIED`` its last change, ``CREATED`` its booking: the same bookings give the same bytes.

No ``METHOD``: a subscribed feed is a published calendar, not a scheduling message (RFC 5546), and
DTSTAMP then means the event's last revision. ``REFRESH-INTERVAL`` (RFC 7986) and
``X-PUBLISHED-TTL`` ask for a refresh every 15 minutes; Google Calendar refreshes on its own schedule
(hours).

The words come from the caller (:class:`FeedWords`; the console's texts), the lead data too
(:class:`LeadCard`, by lead ref): the feed knows no Redis and no script.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import icalendar

from conversations.booking import Booking

PRODID = "-//crmbot//consultation bookings//JA"
UID_DOMAIN = "crmbot"
REFRESH = "PT15M"


@dataclass(frozen=True)
class LeadCard:
    """What the operator wants to see of a lead in its calendar event."""

    name: str = ""  # the shop's or LINE display name ("" unknown)
    tier: str = ""  # the tier's label ("B評価"), "" no finished diagnosis
    a_count: int | None = None
    point: str = ""  # the one point to fix, as the console words it
    answers: tuple[tuple[str, str], ...] = ()  # (question or qualification, answer), in order
    url: str = ""  # the lead's console page ("" none)


@dataclass(frozen=True)
class FeedWords:
    """The feed's words, each a ``str.format`` pattern where it takes a value."""

    calendar: str  # the calendar's name (X-WR-CALNAME)
    summary: str  # "{name}様 ご相談"
    unknown_name: str  # the name when unknown
    format: str  # "形式: {format}"
    tier: str  # "評価: {tier}"
    a_count: str  # "Aの数: {count}/10"
    point: str  # "改善ポイント: {point}"
    answers: str  # "回答:"
    outcome: Mapping[str, str] = field(default_factory=dict)  # booking status -> a line ("結果: 出席")


def _utc(moment: datetime | float) -> datetime:
    if isinstance(moment, datetime):
        return moment.astimezone(UTC)
    return datetime.fromtimestamp(round(moment), UTC)


def _one_line(value: str) -> str:
    """A name as a summary shows it: on one line (any run of spaces or line breaks becomes one space)."""
    return " ".join(value.split())


def description(booking: Booking, card: LeadCard, words: FeedWords) -> str:
    lines = [words.format.format(format=booking.format)] if booking.format else []
    if booking.status in words.outcome:
        lines.append(words.outcome[booking.status])
    if card.tier:
        lines.append(words.tier.format(tier=card.tier))
    if card.a_count is not None:
        lines.append(words.a_count.format(count=card.a_count))
    if card.point:
        lines.append(words.point.format(point=card.point))
    if card.answers:
        lines.append(words.answers)
        lines += [f"{label}: {answer}" for label, answer in card.answers]
    if card.url:
        lines.append(card.url)
    return "\n".join(lines)


def event(booking: Booking, card: LeadCard, words: FeedWords) -> icalendar.Event:
    e = icalendar.Event()
    e.add("uid", f"{booking.id}@{UID_DOMAIN}")
    e.add("dtstamp", _utc(booking.updated))
    e.add("created", _utc(booking.created))
    e.add("last-modified", _utc(booking.updated))
    e.add("dtstart", _utc(booking.start))
    e.add("dtend", _utc(booking.end))
    e.add("sequence", booking.seq)
    e.add("status", "CANCELLED" if booking.status == "cancelled" else "CONFIRMED")
    e.add("transp", "TRANSPARENT" if booking.status == "cancelled" else "OPAQUE")
    e.add("summary", words.summary.format(name=_one_line(card.name) or words.unknown_name))
    e.add("description", description(booking, card, words))
    if card.url:
        e.add("url", card.url)
    return e


def feed(bookings: Iterable[Booking], cards: Mapping[str, LeadCard], words: FeedWords) -> bytes:
    """The iCalendar file of ``bookings`` (in start order); ``cards`` by lead ref (a lead without one is
    shown with the unknown name)."""
    cal = icalendar.Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("x-wr-calname", words.calendar)
    cal.add("refresh-interval", icalendar.vDuration.from_ical(REFRESH), parameters={"VALUE": "DURATION"})
    cal.add("x-published-ttl", REFRESH)
    for booking in sorted(bookings, key=lambda b: (b.start, b.id)):
        cal.add_component(event(booking, cards.get(booking.lead, LeadCard()), words))
    return bytes(cal.to_ical())
