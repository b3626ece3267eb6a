"""Consultations on the console's pages: the availability editor's form (to and from the JSON contract of
:mod:`conversations.booking.availability`), the bookings as rows, and the operator's changes (mark
attended / no-show, cancel with a message to the owner).

Every change here: refused for a viewer (:func:`bot.console.auth.may_change`), written to the audit log
(:func:`bot.console.audit.record`, ``who`` the operator) and, for a booking, handed to the app's booking
news hook (``Services.booking_news``: the owner's LINE chat, the operator's Slack thread), with a news
id made of the booking's state after the change, so a retried request hands over the same news (hooks
deduplicate by it) and never a second one.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.booking_news import ATTENDED, CANCELLED, NO_SHOW, BookingNews
from bot.console import audit, auth
from bot.console import leads as leads_mod
from conversations import keys
from conversations.analytics import TEST_CHANNELS, day_start
from conversations.booking import CONSULT_STATUSES, DAYS, Availability, Booking, Bookings
from conversations.errors import CrmbotError, InvalidInput
from conversations.redis_ops import text
from scoring.periods import DEFAULT_TZ

log = logging.getLogger(__name__)

NUMBERS = ("slot_minutes", "capacity", "min_notice_hours", "horizon_days", "reminder_hour")
INPUTS = (*(f"weekly_{d}" for d in DAYS), *NUMBERS, "reminder_hours_before", "closed_dates", "format")
MAX_MESSAGE = 500  # characters of the operator's message to the owner with a cancellation
PREVIEW = 8  # free slots shown under the editor
NEWS_KIND = {"attended": ATTENDED, "no_show": NO_SHOW, "cancelled": CANCELLED}
# a time range as typed: 10:00-12:00, 10:00〜12:00, 10:00 ~ 12:00 (full-width forms folded by NFKC first)
_RANGE_SEP = re.compile(r"\s*[-~〜–—]\s*")
_LIST_SEP = re.compile(r"[,、;\s]+")
_INT = re.compile(r"[+-]?\d{1,9}")

# What an operator starts from before any availability is saved (shown, not stored).
SUGGESTED: dict[str, Any] = {
    "timezone": DEFAULT_TZ, "slot_minutes": 30, "capacity": 1, "min_notice_hours": 12, "horizon_days": 14,
    "weekly": {d: [["10:00", "12:00"], ["13:00", "17:00"]] for d in DAYS[:5]}, "closed_dates": [],
    "reminder_hour": 18, "reminder_hours_before": None, "format": "オンライン（Zoom）",
}


# ---- the availability form -------------------------------------------------------------------------------


def _fold(value: str) -> str:
    return unicodedata.normalize("NFKC", value).strip()


def _number(value: str) -> Any:
    """A whole number as typed, else the text itself (the availability's check names the field)."""
    folded = _fold(value)
    return int(folded) if _INT.fullmatch(folded) else folded


def _ranges(value: str) -> list[list[str]]:
    """``"10:00-12:00, 13:00-17:00"`` as ``[["10:00", "12:00"], ["13:00", "17:00"]]``; a piece that is no
    range stays one item (refused by the check, naming that range)."""
    out = []
    for piece in re.split(r"[,、;\n]+", _fold(value)):
        if piece.strip():
            out.append(_RANGE_SEP.split(piece.strip()))
    return out


def form_to_json(form: Mapping[str, str], timezone: str = DEFAULT_TZ) -> dict[str, Any]:
    """The availability's JSON from the editor's form (validated by :meth:`Availability.from_json`)."""
    data: dict[str, Any] = {"timezone": timezone}
    for name in NUMBERS:
        data[name] = _number(form.get(name, ""))
    before = _fold(form.get("reminder_hours_before", ""))
    data["reminder_hours_before"] = _number(before) if before else None
    data["weekly"] = {d: _ranges(form.get(f"weekly_{d}", "")) for d in DAYS if _fold(form.get(f"weekly_{d}", ""))}
    data["closed_dates"] = [x for x in _LIST_SEP.split(_fold(form.get("closed_dates", ""))) if x]
    data["format"] = form.get("format", "")
    return data


def json_to_form(data: Mapping[str, Any]) -> dict[str, str]:
    """The editor's field values for a stored (or suggested) availability."""
    out = {f"weekly_{d}": ", ".join(f"{a}-{b}" for a, b in data.get("weekly", {}).get(d, [])) for d in DAYS}
    for name in NUMBERS:
        out[name] = str(data.get(name, ""))
    before = data.get("reminder_hours_before")
    out["reminder_hours_before"] = "" if before is None else str(before)
    out["closed_dates"] = "\n".join(data.get("closed_dates", []))
    out["format"] = str(data.get("format", ""))
    return out


def submitted(form: Mapping[str, str]) -> dict[str, str]:
    """The form as the operator typed it (shown again with an error)."""
    return {name: str(form.get(name, ""))[:2000] for name in INPUTS}


def error_input(field: str) -> str:
    """The editor's input that holds an availability error's field (``weekly.mon[1][0]`` -> ``weekly_mon``),
    "" when none does."""
    if field.startswith("weekly.") and field[7:10] in DAYS:
        return f"weekly_{field[7:10]}"
    base = field.split("[", 1)[0]
    return base if base in INPUTS else ""


def range_number(field: str) -> int | None:
    """Which range of its day an error names, counted from 1 (``weekly.mon[1]`` -> 2), or None."""
    found = re.match(r"weekly\.[a-z]{3}\[(\d+)\]", field)
    return int(found.group(1)) + 1 if found else None


# ---- reading -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """A booking as the bookings page and a lead page show it."""

    booking: Booking
    name: str  # the owner's display name ("" unknown)
    lead_id: str  # their latest diagnosis' lead id, for the link ("" none)
    tier: str | None
    a_count: int | None

    @property
    def id(self) -> str:
        return self.booking.id

    @property
    def lead_ref(self) -> str:
        """The lead's id in the console's URLs (bot/console/refs.py: never the LINE user ID)."""
        from bot.console import refs

        return refs.ref(self.lead_id) if self.lead_id else ""


def rows(svc: Any, bookings: Sequence[Booking]) -> list[Row]:
    people = sorted({b.lead for b in bookings})
    analytics = leads_mod.analytics(svc)
    latest, names = analytics.latest(people), analytics.names(people)
    out = []
    for b in bookings:
        lead = latest.get(b.lead)
        finished = lead is not None and lead.is_finished
        out.append(Row(b, names.get(b.lead, "") or (lead.name if lead is not None else ""),
                       lead.id if lead is not None else "", lead.tier if finished and lead else None,
                       lead.a_count if finished and lead else None))
    return out


def zone_of(av: Availability | None) -> ZoneInfo:
    return av.zone if av is not None else ZoneInfo(DEFAULT_TZ)


def day_bounds(first: date, last: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """From local midnight of ``first`` to the midnight after ``last``."""
    lo = datetime(first.year, first.month, first.day, tzinfo=zone)
    return lo, datetime(last.year, last.month, last.day, tzinfo=zone) + timedelta(days=1)


def counts(svc: Any, start: date | None, end: date | None, channel: str | None,
           source: str | None = None) -> dict[str, int]:
    """Leads by consultation status, among those that first asked from ``start`` to ``end`` (Japan-time
    dates, None: open), in ``channel`` or every channel but the try-it page's, and from ``source`` when
    given: the funnel's filters."""
    channels = [channel] if channel else [c for c in leads_mod.CHANNELS if c not in TEST_CHANNELS]
    if source is None:
        return Bookings(svc.redis, clock=svc.clock).consultation_counts(start, end, channels)
    return _counts_from(svc, start, end, channels, source)


def _counts_from(svc: Any, start: date | None, end: date | None, channels: Sequence[str],
                 source: str) -> dict[str, int]:
    """:func:`counts` of the people from ``source`` only: the members of the status sets in the range (the
    people who asked, never a scan of everyone), each kept when their source is ``source``."""
    lo = repr(day_start(start)) if start else "-inf"
    hi = "(" + repr(day_start(end + timedelta(days=1))) if end else "+inf"
    a = leads_mod.analytics(svc)
    wanted = [(ch, status) for ch in channels for status in CONSULT_STATUSES]
    with a.r.pipeline(transaction=False) as p:
        for ch, status in wanted:
            p.zrangebyscore(keys.booking_consult(ch, status), lo, hi)
        found = p.execute()
    people = {(status, text(ref)) for (_, status), refs in zip(wanted, found, strict=True) for ref in refs}
    theirs = a.sources_of([ref for _, ref in people])
    out = dict.fromkeys(CONSULT_STATUSES, 0)
    for status, ref in people:
        if theirs.get(ref) == source:
            out[status] += 1
    return out


# ---- changes -------------------------------------------------------------------------------------------------


class Refused(CrmbotError):
    """A change the operator may not make (a viewer): the view answers 403."""


class NotChanged(InvalidInput):
    """A change the booking's status does not allow, or a bad message: ``key`` names the notice's text."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def message_of(value: str) -> str:
    """The operator's message to the owner: trimmed, one Unicode form; NotChanged when too long."""
    text = unicodedata.normalize("NFC", value or "").strip().replace("\r\n", "\n")
    if len(text) > MAX_MESSAGE:
        raise NotChanged("booking_message_long")
    return text


def change(svc: Any, booking_id: str, status: str, message: str = "") -> Booking | None:
    """Mark a booking (``attended``, ``no_show``) or cancel it (``cancelled``, with ``message`` to the
    owner) as the request's operator; None when there is no such booking. Refused for a viewer,
    NotChanged when its status does not allow it. The audit log gets the change; the app's hook the
    news, once per change (a retry of the operator's own change hands over the same news id)."""
    if not auth.may_change():
        raise Refused(booking_id)
    who = auth.operator_name()
    store = Bookings(svc.redis, clock=svc.clock)
    before = store.booking(booking_id)
    if before is None:
        return None
    try:
        after = store.mark(booking_id, status, by=who)
    except InvalidInput:
        raise NotChanged("booking_not_changed") from None
    if after is None:
        return None
    if after.status != status or after.by != who:
        raise NotChanged("booking_not_changed")  # someone else set it so (the owner cancelled first)
    if before.status != status:
        audit.record(svc.redis, who=who, action=f"booking.{'cancel' if status == 'cancelled' else 'mark'}",
                     target=after.id, detail=status + (" with a message" if message else ""), now=svc.clock())
    tell(svc, after, NEWS_KIND[status], who, message)
    return after


def news_id(booking: Booking, kind: str) -> str:
    """Stable for one change (its seq and its time): a retry hands over the same id, a later correction
    (attended, then no-show, then attended again) another."""
    return f"console:{booking.id}:{booking.seq}:{kind}:{round(booking.updated * 1000)}"


def tell(svc: Any, booking: Booking, kind: str, who: str, message: str = "") -> None:
    news = BookingNews(kind, booking.subject, booking, by=who, news_id=news_id(booking, kind),
                       message=message)
    try:
        svc.booking_news(news)
    except Exception:  # the change is made and recorded; a listener's trouble must not undo the page
        log.exception("booking news %s: the hook failed", kind)


# ---- showing times -----------------------------------------------------------------------------------------


def span(start: datetime, end: datetime, t: Mapping[str, str], zone: ZoneInfo | None = None) -> str:
    """``2026-01-05（月） 10:00–10:30`` in ``zone`` (Japan by default)."""
    zone = zone or ZoneInfo(DEFAULT_TZ)
    a, b = start.astimezone(zone), end.astimezone(zone)
    day = t[f"wd_{DAYS[a.weekday()]}"]
    return f"{a:%Y-%m-%d}{day} {a:%H:%M}–{b:%H:%M}"
