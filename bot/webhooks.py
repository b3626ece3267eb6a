"""Signed webhooks to the client's own systems (HubSpot, kintone, Salesforce, Zapier ...).

**Endpoints** are set in the console (``/console/webhooks``, ``/console/api/webhooks``): an https URL (or
http to this machine only), the events it wants, whether it gets the owner's LINE display name, and a
secret made here (``whsec_<base64 of 32 random bytes>``), shown once when it is made. They live in one
Redis hash (:data:`conversations.keys.WEBHOOK_ENDPOINTS`).

**Events** (:data:`EVENTS`): ``diagnosis.completed`` (the worker's figures sink, when a finished diagnosis
is first applied), ``consultation.requested``, ``booking.created`` and ``booking.cancelled`` (the app's
booking-news hook, :class:`BookingWebhooks`) and ``lead.updated`` (the console's status and assignee
changes). Each is queued as one job per endpoint that wants it (transport ``webhook``, the job's id is
the ``webhook-id``), at most once: a ledger mark per endpoint and event, written by the same script as
the job (``Outbox.put_once``). The body is built when the event is queued, so every retry sends the same
bytes under the same ``webhook-id``.

**Signing** follows the Standard Webhooks specification, with its reference library
(``standardwebhooks``): ``webhook-id``, ``webhook-timestamp`` (the attempt's time: receivers refuse old
ones) and ``webhook-signature`` = ``v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">``.

**Delivery** is the worker's (:class:`WebhookTransport`): a 2xx is delivered; anything else (another
status, a timeout, a refused connection; redirects are not followed) is tried again after 5 s, 5 min,
30 min, 2 h, 5 h, then every 10 h, until the event is 3 days old: then it is parked, and the console's
delivery page puts it back in line. Each answer (status, or the error's kind) is kept, the last
:data:`KEEP_RESPONSES` per endpoint, for the console. An event for an endpoint deleted meanwhile is
dropped.

**Privacy**: a payload names the person and the diagnosis by opaque ids (HMAC-SHA256 under the endpoint's
own secret: stable for one endpoint, unlinkable across endpoints, never a LINE user ID), and carries the
owner's display name only when the endpoint opted in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from standardwebhooks import Webhook

from bot.booking_news import BOOKED, CANCELLED, REQUESTED, BookingNews
from bot.http_session import LazySession
from bot.ratelimit import retry_after
from bot.worker import DELIVERED, FAILED, RETRY, Attempt, Outcome
from conversations import analytics, keys
from conversations.errors import InvalidInput
from conversations.jobs import Job
from conversations.redis_ops import runner, text
from conversations.transports import Transport, WebhookState

log = logging.getLogger(__name__)

DIAGNOSIS_COMPLETED = "diagnosis.completed"
CONSULTATION_REQUESTED = "consultation.requested"
BOOKING_CREATED = "booking.created"
BOOKING_CANCELLED = "booking.cancelled"
LEAD_UPDATED = "lead.updated"
EVENTS = (DIAGNOSIS_COMPLETED, CONSULTATION_REQUESTED, BOOKING_CREATED, BOOKING_CANCELLED, LEAD_UPDATED)
NEWS_EVENTS = {REQUESTED: CONSULTATION_REQUESTED, BOOKED: BOOKING_CREATED, CANCELLED: BOOKING_CANCELLED}

GIVE_UP_AFTER = 3 * 86400  # an event still not accepted this long after it was queued is parked
SCHEDULE = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0)  # seconds before the 1st, 2nd ... retry; then the last
MAX_ATTEMPTS = 100  # the worker's limit for these jobs (the 3 days end them long before)
LEDGER_TTL = 30 * 86400  # how long an event's "queued" mark keeps it from being queued again
KEEP_RESPONSES = 20
MAX_ENDPOINTS = 20
MAX_URL = 500
CONNECT_TIMEOUT = 5.0
USER_AGENT = "crmbot-webhooks/1"
LOOPBACK_HOSTS = ("localhost",)


@dataclass(frozen=True)
class Endpoint:
    id: str  # 16 hex digits
    url: str
    events: tuple[str, ...]
    secret: str  # "whsec_<base64>": never shown again after creation, never logged
    with_name: bool = False  # payloads carry the owner's LINE display name
    created: float = 0.0
    by: str = ""

    def to_json(self) -> str:
        return json.dumps({"url": self.url, "events": list(self.events), "secret": self.secret,
                           "with_name": self.with_name, "created": self.created, "by": self.by})

    @classmethod
    def from_json(cls, endpoint_id: str, raw: str | bytes) -> Endpoint:
        d = json.loads(raw)
        return cls(endpoint_id, str(d["url"]), tuple(str(e) for e in d.get("events") or ()), str(d["secret"]),
                   bool(d.get("with_name")), float(d.get("created") or 0.0), str(d.get("by") or ""))

    def public(self) -> dict[str, Any]:
        """What the console and the API show of it (never the secret)."""
        return {"id": self.id, "url": self.url, "events": list(self.events), "with_name": self.with_name,
                "created": self.created, "by": self.by}

    def opaque(self, value: str) -> str:
        """An id for ``value`` (a person or a diagnosis) that this endpoint alone can link: HMAC under its secret."""
        return hmac.new(self.secret.encode(), value.encode(), hashlib.sha256).hexdigest()[:24]


def check_url(url: str) -> str:
    """The URL as stored, or InvalidInput: https, or http to this machine only (a receiver for tests or a
    relay on the same host); no credentials in it."""
    url = url.strip()
    if not url or len(url) > MAX_URL:
        raise InvalidInput("url")
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.username or parts.password:
        raise InvalidInput("url")
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise InvalidInput("url_http")
    return url


def _loopback(host: str) -> bool:
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


@dataclass(frozen=True)
class Response:
    at: float
    event: str
    webhook_id: str
    status: int  # 0: no HTTP answer
    detail: str  # "HTTP 500", "timeout" ...

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class Endpoints:
    """The endpoints and their last answers (sync: the console, the app's hooks)."""

    def __init__(self, client: Any, clock: Callable[[], float] = time.time) -> None:
        self.r = runner(client)
        self.clock = clock

    def all(self) -> list[Endpoint]:
        found = []
        for k, v in self.r.hgetall(keys.WEBHOOK_ENDPOINTS).items():
            try:
                found.append(Endpoint.from_json(text(k), v))
            except (ValueError, KeyError, TypeError):
                log.warning("webhooks: endpoint %s is unreadable; skipped", text(k)[:16])
        return sorted(found, key=lambda e: (e.created, e.id))

    def get(self, endpoint_id: str) -> Endpoint | None:
        raw = self.r.hget(keys.WEBHOOK_ENDPOINTS, endpoint_id) if endpoint_id.isalnum() else None
        return Endpoint.from_json(endpoint_id, raw) if raw is not None else None

    def create(self, url: str, events: Iterable[str], *, with_name: bool = False, by: str = "") -> Endpoint:
        """A new endpoint with a new secret (returned once: the caller shows it); InvalidInput when the URL
        or events are not valid, or there are too many endpoints already."""
        wanted = tuple(e for e in EVENTS if e in set(events))
        if not wanted:
            raise InvalidInput("events")
        if self.r.hlen(keys.WEBHOOK_ENDPOINTS) >= MAX_ENDPOINTS:
            raise InvalidInput("too_many")
        ep = Endpoint(secrets.token_hex(8), check_url(url), wanted, new_secret(), with_name, self.clock(), by[:60])
        self.r.hset(keys.WEBHOOK_ENDPOINTS, ep.id, ep.to_json())
        return ep

    def delete(self, endpoint_id: str) -> bool:
        if not endpoint_id.isalnum():
            return False
        with self.r.pipeline(transaction=False) as p:
            p.hdel(keys.WEBHOOK_ENDPOINTS, endpoint_id)
            p.delete(keys.webhook_responses(endpoint_id))
            return bool(p.execute()[0])

    def responses(self, endpoint_id: str, limit: int = KEEP_RESPONSES) -> list[Response]:
        raw = self.r.lrange(keys.webhook_responses(endpoint_id), 0, limit - 1)
        out = []
        for item in raw:
            try:
                d = json.loads(item)
                out.append(Response(float(d["at"]), str(d["event"]), str(d["id"]), int(d["status"]), str(d["detail"])))
            except (ValueError, KeyError, TypeError):
                continue
        return out


# ---- queuing events -----------------------------------------------------------------------------------


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class Webhooks:
    """Queues one event for every endpoint that wants it, each at most once (``put_once``)."""

    outbox: Any  # bot.outbox.Outbox
    clock: Callable[[], float] = time.time
    endpoints: Endpoints = field(init=False)

    def __post_init__(self) -> None:
        self.endpoints = Endpoints(self.outbox.r, self.clock)

    def emit(self, event: str, key: str, data: Callable[[Endpoint], Mapping[str, Any]]) -> int:
        """Queue ``event`` (named ``key``: the same key is never queued twice for one endpoint) for each
        endpoint that wants it, its ``data`` made per endpoint (their opaque ids differ). Returns how many
        were queued now."""
        if event not in EVENTS:
            raise ValueError(event)
        now = self.clock()
        queued = 0
        for ep in self.endpoints.all():
            if event not in ep.events:
                continue
            digest = hashlib.sha256(f"{ep.id}\n{event}\n{key}".encode()).hexdigest()[:32]
            body = json.dumps({"type": event, "timestamp": _iso(now), "data": dict(data(ep))},
                              ensure_ascii=False, separators=(",", ":"))
            job = Job.new(Transport.WEBHOOK, ep.id, keys.webhook_tag(ep.id), [], now,
                          state=WebhookState(event, body), job_id=f"msg_{digest}")
            queued += self.outbox.put_once(keys.webhook_queued(ep.id, digest), job, ttl=LEDGER_TTL)
        if queued:
            log.info("webhooks: %s queued for %d endpoint(s)", event, queued)
        return queued

    def name_for(self, ep: Endpoint, person: str) -> dict[str, str]:
        if not ep.with_name:
            return {}
        return {"display_name": analytics.name_of(self.outbox.r, person)}

    def diagnosis_completed(self, lead: analytics.Lead) -> int:
        """A diagnosis finished (called by the worker's figures sink; queued once per lead)."""
        if lead.test or not lead.is_finished:
            return 0
        person = analytics.person_ref(lead.channel, lead.user_id)

        def data(ep: Endpoint) -> dict[str, Any]:
            point = lead.point
            return {"contact_id": ep.opaque(person), "diagnosis_id": ep.opaque(lead.id), "channel": lead.channel,
                    "finished_at": _iso(lead.finished), "tier": lead.tier, "a_count": lead.a_count,
                    "answers": lead.answers, "point_to_fix": None if point is None else point + 1,
                    **self.name_for(ep, person)}

        return self.emit(DIAGNOSIS_COMPLETED, lead.id, data)

    def lead_updated(self, lead: analytics.Lead, *, change: str, value: str, by: str, change_id: str) -> int:
        """The console changed a lead's consultation status or assignee (``change``: "status" | "assignee")."""
        person = analytics.person_ref(lead.channel, lead.user_id)

        def data(ep: Endpoint) -> dict[str, Any]:
            return {"contact_id": ep.opaque(person), "diagnosis_id": ep.opaque(lead.id), "channel": lead.channel,
                    "change": change, "value": value, "by": by, "tier": lead.tier, **self.name_for(ep, person)}

        return self.emit(LEAD_UPDATED, change_id, data)


class BookingWebhooks:
    """The booking-news hook (bot/booking_news.py) that tells the endpoints of a consultation requested, a
    booking made and one cancelled (the other kinds are not events here); deduped by the news' id."""

    def __init__(self, webhooks: Webhooks) -> None:
        self.webhooks = webhooks

    def __call__(self, news: BookingNews) -> None:
        event = NEWS_EVENTS.get(news.kind)
        if event is None:
            return
        person = analytics.person_ref(news.lead.transport, news.lead.user_id)
        booking = news.booking

        def data(ep: Endpoint) -> dict[str, Any]:
            d: dict[str, Any] = {"contact_id": ep.opaque(person), "channel": str(news.lead.transport),
                                 "by": "owner" if news.by == "owner" else "consultancy"}
            if booking is not None:
                d["booking"] = {"id": booking.id, "start": booking.start.isoformat().replace("+00:00", "Z"),
                                "end": booking.end.isoformat().replace("+00:00", "Z"), "status": booking.status,
                                "format": booking.format}
            return {**d, **self.webhooks.name_for(ep, person)}

        self.webhooks.emit(event, f"{news.kind}:{news.news_id}", data)


# ---- delivery (the worker) ----------------------------------------------------------------------------


def next_wait(failures: int) -> float:
    """Seconds before the next try after ``failures`` failed ones."""
    return SCHEDULE[min(max(failures, 1), len(SCHEDULE)) - 1]


class WebhookTransport:
    """POSTs each event, signed, to its endpoint (bot.worker.Sender)."""

    transport = Transport.WEBHOOK
    max_attempts = MAX_ATTEMPTS

    def __init__(self, *, timeout: float = 15.0) -> None:
        self.session = LazySession(connect=CONNECT_TIMEOUT, sock_read=timeout)  # made in the worker's loop

    async def deliver(self, attempt: Attempt) -> Outcome:
        job = attempt.job
        state = job.webhook
        raw = await attempt.redis.hget(keys.WEBHOOK_ENDPOINTS, job.to)
        if raw is None:
            return Outcome(DELIVERED, "webhook: endpoint deleted; dropped")
        ep = Endpoint.from_json(job.to, raw)
        now = attempt.clock()
        body = state.body.encode("utf-8")
        stamp = datetime.fromtimestamp(int(now), UTC)
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, "webhook-id": job.id,
                   "webhook-timestamp": str(int(now)),
                   "webhook-signature": Webhook(ep.secret).sign(job.id, stamp, body)}
        status, wait, detail = 0, None, ""
        try:
            async with self.session().post(ep.url, data=body, headers=headers, allow_redirects=False) as res:
                await res.read()
                status, wait, detail = res.status, retry_after(res.headers.get("Retry-After")), f"HTTP {res.status}"
        except (TimeoutError, aiohttp.ClientError) as e:
            detail = type(e).__name__
        await self._keep(attempt, ep.id, Response(now, state.event, job.id, status, detail))
        if 200 <= status < 300:
            return Outcome(DELIVERED, f"webhook: {detail}")
        if now - job.received >= GIVE_UP_AFTER:
            return Outcome(FAILED, f"webhook: {detail}; gave up after 3 days")
        return Outcome(RETRY, f"webhook: {detail}", max(wait or 0.0, next_wait(job.attempts + 1)))

    async def _keep(self, attempt: Attempt, endpoint_id: str, res: Response) -> None:
        item = json.dumps({"at": res.at, "event": res.event, "id": res.webhook_id, "status": res.status,
                           "detail": res.detail[:80]})
        key = keys.webhook_responses(endpoint_id)
        async with attempt.redis.pipeline(transaction=False) as p:
            p.lpush(key, item)
            p.ltrim(key, 0, KEEP_RESPONSES - 1)
            await p.execute()

    async def close(self) -> None:
        await self.session.close()
