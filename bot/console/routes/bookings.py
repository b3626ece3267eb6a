"""``/console/availability`` (the availability editor, the calendar subscription URL and its rotation, the
next free slots) and ``/console/bookings`` (upcoming and past bookings, filtered by dates and status),
with the forms that mark a booking attended / no-show or cancel it (also posted from a lead's page)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask import Blueprint, abort, flash, redirect, request, url_for

from bot.console import audit, auth, fmt
from bot.console import bookings as api
from bot.console import consultations as consult
from bot.console.routes.common import page, svc
from bot.console.texts import texts
from conversations.booking import DAYS, MARKS, STATUSES, Availability, AvailabilityError, Bookings
from scoring.periods import DEFAULT_TZ

UPCOMING_DAYS = 60  # the bookings page's default range ahead
PAST_DAYS = 30  # and back
MAX_DAYS = 366


def register(bp: Blueprint) -> None:
    bp.add_url_rule("/availability", "availability", availability, methods=["GET"])
    bp.add_url_rule("/availability", "save_availability", save_availability, methods=["POST"])
    bp.add_url_rule("/availability/calendar", "rotate_calendar", rotate_calendar, methods=["POST"])
    bp.add_url_rule("/bookings", "bookings", bookings, methods=["GET"])
    bp.add_url_rule("/bookings/<booking_id>/mark", "mark_booking", mark_booking, methods=["POST"])
    bp.add_url_rule("/bookings/<booking_id>/cancel", "cancel_booking", cancel_booking, methods=["POST"])


def store() -> Bookings:
    return Bookings(svc().redis, clock=svc().clock)


def forbidden() -> tuple[str, int]:
    """403 for a viewer (the pages' guard refuses a viewer's POST first; this is the views' own check)."""
    return auth.forbidden()


# ---- the availability editor ---------------------------------------------------------------------------------


def _editor(values: dict[str, str], av: Availability | None, error: dict[str, Any] | None = None) -> str:
    s = store()
    return page("console_availability.html", nav="availability", values=values, saved=av is not None,
                timezone=av.timezone if av else DEFAULT_TZ, zone=consult.zone_of(av), error=error, days=DAYS,
                preview=s.next_free(limit=consult.PREVIEW) if av else [],
                feed=api.feed_url(api.ensure_calendar_token(svc().redis)), can_change=auth.may_change(), C=consult)


def availability() -> Any:
    av = store().availability()
    return _editor(consult.json_to_form(av.to_json() if av else consult.SUGGESTED), av)


def save_availability() -> Any:
    if not auth.may_change():
        return forbidden()
    s = store()
    current = s.availability()
    try:
        av = Availability.from_json(consult.form_to_json(request.form, current.timezone if current else DEFAULT_TZ))
    except AvailabilityError as e:
        error = {"field": e.field, "input": consult.error_input(e.field), "detail": str(e),
                 "range": consult.range_number(e.field)}
        return _editor(consult.submitted(request.form), current, error), 400
    s.set_availability(av)
    audit.record(svc().redis, who=auth.operator_name(), action="availability.set", target="availability",
                 detail=av.version, now=svc().clock())
    flash(texts()["availability_saved"], "ok")
    return redirect(url_for("console.availability"))


def rotate_calendar() -> Any:
    if not auth.may_change():
        return forbidden()
    api.rotate_calendar_token(svc().redis)
    audit.record(svc().redis, who=auth.operator_name(), action="calendar.rotate", target="calendar", now=svc().clock())
    flash(texts()["calendar_rotated"], "ok")
    return redirect(url_for("console.availability") + "#calendar")


# ---- the bookings ------------------------------------------------------------------------------------------


def _filter() -> dict[str, Any]:
    """The page's filter: ``when`` upcoming | past, ``from`` / ``to`` (local dates), ``status``;
    ``error`` when malformed (then nothing is listed)."""
    args = request.args
    when = args.get("when") or "upcoming"
    status = args.get("status") or ""
    zone = consult.zone_of(store().availability())
    today = datetime.fromtimestamp(svc().clock(), zone).date()
    try:
        start, end = fmt.parse_day(args.get("from")), fmt.parse_day(args.get("to"))
        if when not in ("upcoming", "past") or (status and status not in STATUSES):
            raise ValueError("filter")
        if when == "upcoming":
            start = start or today
            end = end or start + timedelta(days=UPCOMING_DAYS)
        else:
            end = end or today
            start = start or end - timedelta(days=PAST_DAYS)
        if end < start or (end - start).days > MAX_DAYS:
            raise ValueError("range")
    except ValueError:
        return {"when": when if when in ("upcoming", "past") else "upcoming", "status": "", "start": None,
                "end": None, "zone": zone, "error": True}
    return {"when": when, "status": status, "start": start, "end": end, "zone": zone, "error": False}


def bookings() -> Any:
    f = _filter()
    found: list[Any] = []
    if not f["error"]:
        now = datetime.fromtimestamp(svc().clock(), f["zone"])
        lo, hi = consult.day_bounds(f["start"], f["end"], f["zone"])
        chosen = [b for b in store().between(lo, hi) if not f["status"] or b.status == f["status"]]
        if f["when"] == "upcoming":
            chosen = [b for b in chosen if b.end > now]
        else:
            chosen = sorted((b for b in chosen if b.end <= now), key=lambda b: (b.start, b.id), reverse=True)
        found = consult.rows(svc(), chosen)
    return page("console_bookings.html", nav="bookings", f=f, rows=found, statuses=STATUSES,
                now=svc().clock(), can_change=auth.may_change(), error=texts()["bad_date"] if f["error"] else "",
                back=request.full_path.rstrip("?"), C=consult)


def _back(booking_id: str) -> Any:
    target = request.form.get("next", "")
    if target.startswith("/console/") and not target.startswith("//") and "\\" not in target:
        return redirect(target + f"#booking-{booking_id}")
    return redirect(url_for("console.bookings"))


def _change(booking_id: str, status: str, message: str = "") -> Any:
    t = texts()
    try:
        done = consult.change(svc(), booking_id, status, message)
    except consult.Refused:
        return forbidden()
    except consult.NotChanged as e:
        flash(t[e.key], "error")
        return _back(booking_id)
    if done is None:
        abort(404)
    flash(t[f"booking_{status}"], "ok")
    return _back(booking_id)


def mark_booking(booking_id: str) -> Any:
    if not auth.may_change():
        return forbidden()
    status = request.form.get("status", "")
    if status not in MARKS or status == "cancelled":
        flash(texts()["booking_not_changed"], "error")
        return _back(booking_id)
    return _change(booking_id, status)


def cancel_booking(booking_id: str) -> Any:
    if not auth.may_change():
        return forbidden()
    try:
        message = consult.message_of(request.form.get("message", ""))
    except consult.NotChanged as e:
        flash(texts()[e.key], "error")
        return _back(booking_id)
    return _change(booking_id, "cancelled", message)
