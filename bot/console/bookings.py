"""Consultation bookings in the console: the JSON API and the iCalendar feed at a secret URL.

Blueprint ``console_bookings`` (``Authorization: Bearer <CRMBOT_CONSOLE_TOKEN>`` or a logged-in session,
as ``/console/api/funnel``; a write through a session also needs its CSRF token in ``X-CSRFToken``)::

    GET  /console/api/availability          the availability as stored (the JSON contract of
                                            conversations.booking.availability); 404 while none is set
    PUT  /console/api/availability          validate, then store: 200 with the stored JSON; 400
                                            {"error": "<field>: <problem>", "field": "<field>"} changing nothing;
                                            403 for an operator who may only view
    GET  /console/api/bookings?from=YYYY-MM-DD&to=YYYY-MM-DD[&status=booked|attended|no_show|cancelled]
                                            [{"id", "lead", "start", "end", "status", "tier", "a_count", "created"}]
                                            by start; dates local to the availability (Japan by default, both
                                            included; from defaults to today, to to 30 days later, at most 366)
    GET  /console/api/calendar              {"url": the feed's secret URL} (the token made on first use)
    POST /console/api/calendar/rotate       a new token: {"url"}; the old URL answers 404 from then on (403
                                            for a viewer)

Both writes go to the audit log (:func:`bot.console.audit.record`).

``lead`` is ``"<channel>:<user id>"``, the key the console names a person by inside (its pages' URLs use an
opaque id instead: bot/console/refs.py; the feed links each booking to the person's page that way).
Times are ISO 8601 with the offset; ``tier`` and ``a_count`` are the lead's latest finished
diagnosis' (null without one).

Blueprint ``console_calendar``, no session (calendars cannot log in): ``GET /console/calendar/<token>.ics``
answers the feed (:mod:`bot.calendar_feed`: bookings from 180 days ago to 400 days ahead) when the token
is the stored one (compared in constant time), else 404, as for any unknown page.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, abort, current_app, jsonify, request, url_for
from flask_wtf.csrf import CSRFError

from bot.calendar_feed import FeedWords, LeadCard, feed
from bot.console import audit, auth, fmt, keys, refs
from bot.console import leads as leads_mod
from bot.console.texts import feed_texts
from conversations.analytics import Lead
from conversations.booking import STATUSES, Availability, AvailabilityError, Booking, Bookings
from conversations.errors import StoreUnavailable
from conversations.redis_ops import runner, text
from scoring.periods import DEFAULT_TZ

DEFAULT_DAYS = 30
MAX_DAYS = 366
FEED_PAST = timedelta(days=180)
FEED_AHEAD = timedelta(days=400)
TOKEN_BYTES = 24


def svc() -> Any:
    return current_app.extensions["crmbot"]


def store() -> Bookings:
    return Bookings(svc().redis, clock=svc().clock)


# ---- the feed's token ------------------------------------------------------------------------------------


def calendar_token(client: Any) -> str | None:
    """The feed's token, or None while none was made."""
    found = runner(client).get(keys.CALENDAR_TOKEN)
    return text(found) if found else None


def ensure_calendar_token(client: Any) -> str:
    """The feed's token, made now if there is none (two processes at once agree on one: SET NX)."""
    r = runner(client)
    r.set(keys.CALENDAR_TOKEN, secrets.token_urlsafe(TOKEN_BYTES), nx=True)
    return text(r.get(keys.CALENDAR_TOKEN))


def rotate_calendar_token(client: Any) -> str:
    """A new token: the feed's old URL stops working at once (calendars subscribed to it must be given
    the new one)."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    runner(client).set(keys.CALENDAR_TOKEN, token)
    return token


def feed_url(token: str) -> str:
    return url_for("console_calendar.feed", token=token, _external=True)


# ---- what the operator sees of each lead -----------------------------------------------------------------


def latest_leads(people: Sequence[str]) -> dict[str, Lead]:
    return leads_mod.analytics(svc()).latest(people)


def cards(bookings: Iterable[Booking]) -> dict[str, LeadCard]:
    """Each booked lead's card for the feed: name, tier, A count, point to fix, the ten answers, its page."""
    people = sorted({b.lead for b in bookings})
    analytics = leads_mod.analytics(svc())
    latest, names = analytics.latest(people), analytics.names(people)
    script = svc().script
    out = {}
    for ref in people:
        lead = latest.get(ref)
        url = (url_for("console.person", ref=refs.ref(lead.id), _external=True) if lead is not None and
               current_app.secret_key else url_for("console.leads", _external=True))  # never the user ID
        card = LeadCard(name=names.get(ref, ""), url=url)
        if lead is not None and lead.is_finished and lead.tier is not None:
            tier = script.tiers.get(lead.tier)
            answers = tuple((f"Q{i + 1} {q.topic}", lead.answers[i]) for i, q in enumerate(script.questions)
                            if i < len(lead.answers))
            card = LeadCard(card.name or lead.name, tier.label if tier else lead.tier, lead.a_count,
                            leads_mod.point(lead, script), answers, card.url)
        out[ref] = card
    return out


def words(locale: str) -> FeedWords:
    t = feed_texts(locale)
    return FeedWords(calendar=t["calendar"], summary=t["summary"], unknown_name=t["unknown_name"], format=t["format"],
                     tier=t["tier"], a_count=t["a_count"], point=t["point"], answers=t["answers"],
                     outcome={"attended": t["attended"], "no_show": t["no_show"]})


# ---- the API -----------------------------------------------------------------------------------------------


def _error(why: str, status: int = 400, **extra: str) -> Response:
    return Response(json.dumps({"error": why, **extra}, ensure_ascii=False) + "\n", status,
                    mimetype="application/json")


def _zone(av: Availability | None) -> ZoneInfo:
    return av.zone if av is not None else ZoneInfo(DEFAULT_TZ)


def _iso(moment: datetime | float, zone: ZoneInfo) -> str:
    if not isinstance(moment, datetime):
        moment = datetime.fromtimestamp(round(moment), zone)
    return moment.astimezone(zone).isoformat(timespec="seconds")


def booking_rows(bookings: Sequence[Booking], zone: ZoneInfo) -> list[dict[str, Any]]:
    latest = latest_leads([b.lead for b in bookings])
    rows = []
    for b in bookings:
        lead = latest.get(b.lead)
        finished = lead is not None and lead.is_finished
        rows.append({"id": b.id, "lead": b.lead, "start": _iso(b.start, zone), "end": _iso(b.end, zone),
                     "status": b.status, "tier": lead.tier if finished and lead else None,
                     "a_count": lead.a_count if finished and lead else None, "created": _iso(b.created, zone)})
    return rows


def get_availability() -> Response:
    av = store().availability()
    if av is None:
        return _error("no availability is set", 404)
    return jsonify(av.to_json())


def _refused() -> Response | None:
    """403 for an operator who may only view (nothing changes)."""
    return None if auth.may_change() else _error("this account may view but not change", 403)


def put_availability() -> Response:
    refused = _refused()
    if refused is not None:
        return refused
    try:
        av = Availability.loads(request.get_data())
    except AvailabilityError as e:
        return _error(str(e), field=e.field)
    stored = store().set_availability(av)
    audit.record(svc().redis, who=auth.operator_name(), action="availability.set", target="availability",
                 detail=stored.version, now=svc().clock())
    return jsonify(stored.to_json())


def _day_window(zone: ZoneInfo) -> tuple[date, date]:
    """The request's from and to (local dates, both included); ValueError when malformed or too long."""
    start, end = fmt.parse_day(request.args.get("from")), fmt.parse_day(request.args.get("to"))
    start = start or datetime.fromtimestamp(svc().clock(), zone).date()
    end = end or start + timedelta(days=DEFAULT_DAYS)
    if end < start or (end - start).days > MAX_DAYS:
        raise ValueError("range")
    return start, end


def get_bookings() -> Response:
    s = store()
    zone = _zone(s.availability())
    try:
        start, end = _day_window(zone)
    except ValueError:
        return _error(f"from and to are dates YYYY-MM-DD, from not after to, at most {MAX_DAYS} days apart")
    status = request.args.get("status") or None
    if status is not None and status not in STATUSES:
        return _error(f"status is one of {', '.join(STATUSES)}")
    lo = datetime(start.year, start.month, start.day, tzinfo=zone)
    hi = datetime(end.year, end.month, end.day, tzinfo=zone) + timedelta(days=1)
    found = [b for b in s.between(lo, hi) if status is None or b.status == status]
    return jsonify(booking_rows(found, zone))


def get_calendar() -> Response:
    return jsonify({"url": feed_url(ensure_calendar_token(svc().redis))})


def post_calendar_rotate() -> Response:
    refused = _refused()
    if refused is not None:
        return refused
    url = feed_url(rotate_calendar_token(svc().redis))
    audit.record(svc().redis, who=auth.operator_name(), action="calendar.rotate", target="calendar",
                 now=svc().clock())
    return jsonify({"url": url})


def api_blueprint() -> Blueprint:
    bp = Blueprint("console_bookings", __name__, url_prefix="/console/api")
    auth.guard_tools(bp)
    auth.secure_headers(bp)

    @bp.before_request
    def _csrf_for_session_writes() -> None:
        # a Bearer token is no cookie a browser sends by itself: only a session's write needs the CSRF token
        if request.method not in ("GET", "HEAD", "OPTIONS") and "Authorization" not in request.headers:
            auth.access().csrf.protect()

    @bp.errorhandler(StoreUnavailable)
    def unavailable(_e: StoreUnavailable) -> Response:
        return _error("store unavailable", 503)

    @bp.errorhandler(CSRFError)
    def csrf_failed(_e: CSRFError) -> Response:
        return _error("missing or wrong CSRF token (X-CSRFToken)")

    from bot.console.routes import webhooks

    webhooks.register_api(bp)  # /console/api/webhooks: the same auth and CSRF rules
    bp.add_url_rule("/availability", "get_availability", get_availability, methods=["GET"])
    bp.add_url_rule("/availability", "put_availability", put_availability, methods=["PUT"])
    bp.add_url_rule("/bookings", "bookings", get_bookings, methods=["GET"])
    bp.add_url_rule("/calendar", "calendar", get_calendar, methods=["GET"])
    bp.add_url_rule("/calendar/rotate", "rotate_calendar", post_calendar_rotate, methods=["POST"])
    return bp


# ---- the feed ----------------------------------------------------------------------------------------------


def calendar_feed(token: str) -> Response:
    expected = calendar_token(svc().redis)
    if expected is None or len(token) > 200 or not auth.same_secret(token, expected):
        abort(404)
    now = datetime.fromtimestamp(svc().clock(), UTC)
    found = store().between(now - FEED_PAST, now + FEED_AHEAD)
    body = feed(found, cards(found), words(svc().config.locale))
    return Response(body, mimetype="text/calendar", headers={
        "Content-Disposition": 'inline; filename="crmbot-bookings.ics"',
        "Cache-Control": "private, max-age=300",
        "Referrer-Policy": "no-referrer",
    })


def feed_blueprint() -> Blueprint:
    bp = Blueprint("console_calendar", __name__, url_prefix="/console/calendar")
    auth.secure_headers(bp)

    @bp.errorhandler(StoreUnavailable)
    def unavailable(_e: StoreUnavailable) -> Response:
        return Response("store unavailable\n", 503, mimetype="text/plain")

    bp.add_url_rule("/<token>.ics", "feed", calendar_feed, methods=["GET"])
    return bp
