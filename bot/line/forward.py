"""LINE webhooks relayed to another LINE tool sharing the account (``CRMBOT_LINE_FORWARD_URL``).

A LINE Official Account has one webhook URL. With crmbot at that URL and another tool (Lステップ, エルメ,
LOYCUS ...) behind it, every webhook body crmbot accepts (signature valid, a webhook body) is relayed to
the other tool's webhook URL **exactly as LINE sent it**: the same bytes, LINE's own ``X-Line-Signature``
(the other tool verifies it with the same channel secret) and ``Content-Type: application/json;
charset=utf-8``.

The web tier never sends it: the forward is a job (transport ``lineforward``, its
:class:`~conversations.transports.ForwardState` holding the body in base64 and the signature), committed
at most once per webhook (:func:`once_for`: a ledger mark named after the webhook's events, so LINE's
redelivery of the same events is not relayed again) in the round trip of the webhook's first commit, and
delivered by the worker like every other job (:class:`ForwardTransport`): retried with the outbox's
backoff on a timeout, a network error, 408, 429 or 5xx (at least the receiver's Retry-After), parked on
any other answer (a 4xx, a redirect) with its status, visible in ``crmbot outbox``. Each webhook has a
hash tag of its own, so the forwards spread over every Redis Cluster slot and queue shard, and go out in
parallel, in no set order (as LINE's own webhooks). An answer lost to a timeout is sent again: the
other tool sees the body twice, as it would a LINE redelivery, and dedupes it by ``webhookEventId``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
from collections.abc import Mapping
from typing import Any

import aiohttp

from bot.http_session import LazySession
from bot.ratelimit import retry_after
from bot.worker import DELIVERED, FAILED, RETRY, Attempt, Outcome
from conversations import keys
from conversations.jobs import Job, Once
from conversations.transports import ForwardState, Transport

log = logging.getLogger(__name__)
CONNECT_TIMEOUT = 3.0
CONTENT_TYPE = "application/json; charset=utf-8"  # as LINE sends its webhooks
USER_AGENT = "crmbot (LINE webhook forward)"
TO = "forward"  # a forward's address in its job (the URL is the worker's setting, never stored)


def digest_of(body: bytes, payload: Mapping[str, Any]) -> str:
    """What names a webhook for its forward: its destination and its events' ``webhookEventId``s (LINE's
    redelivery of the same events carries the same IDs, with ``isRedelivery`` true: not relayed again);
    the body's own bytes when it has no events, or one without an ID."""
    events = payload.get("events")
    events = events if isinstance(events, list) else []
    ids = [i for e in events if isinstance(e, dict) and isinstance(i := e.get("webhookEventId"), str) and i]
    if ids and len(ids) == len(events):
        basis = "events\n" + str(payload.get("destination")) + "\n" + "\n".join(sorted(ids))
        return hashlib.sha256(basis.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return hashlib.sha256(b"body\n" + body).hexdigest()[:32]


def once_for(body: bytes, signature: str, payload: Mapping[str, Any], now: float, ttl: int) -> Once:
    """The forward of one accepted webhook, to be queued at most once (its ledger mark kept ``ttl`` s)."""
    digest = digest_of(body, payload)
    state = ForwardState(base64.b64encode(body).decode("ascii"), signature)
    job = Job.new(Transport.LINEFORWARD, TO, keys.forward_tag(digest), [], now, state=state, job_id=f"fwd-{digest}")
    return Once(keys.forwarded(digest), job, ttl)


class ForwardTransport:
    """POSTs each forward's body, as LINE sent it, to the other tool's webhook URL."""

    transport = Transport.LINEFORWARD

    def __init__(self, url: str, *, timeout: float = 20.0) -> None:
        self.url = url  # never logged: a tool's webhook URL may carry its account's secret
        self.session = LazySession(connect=CONNECT_TIMEOUT, sock_read=timeout)  # made in the worker's loop

    async def deliver(self, attempt: Attempt) -> Outcome:
        state = attempt.job.forward
        try:
            body = base64.b64decode(state.body, validate=True)
        except (binascii.Error, ValueError):
            return Outcome(FAILED, "forward: the stored body is not base64")
        headers = {"Content-Type": CONTENT_TYPE, "X-Line-Signature": state.signature, "User-Agent": USER_AGENT}
        try:
            async with self.session().post(self.url, data=body, headers=headers, allow_redirects=False) as res:
                await res.read()  # the answer's body is not used; read so the connection is reused
                status, wait = res.status, retry_after(res.headers.get("Retry-After"))
        except (TimeoutError, aiohttp.ClientError) as e:  # did it land? unknown: sent again (the tool dedupes)
            return Outcome(RETRY, f"forward: {type(e).__name__}")
        if 200 <= status < 300:
            return Outcome(DELIVERED, f"forward: HTTP {status}")
        if status in (408, 429) or status >= 500:
            return Outcome(RETRY, f"forward: HTTP {status}", wait)
        return Outcome(FAILED, f"forward: HTTP {status}")

    async def close(self) -> None:
        await self.session.close()
