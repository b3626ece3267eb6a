"""Opaque lead ids for the console's URLs: a lead's id holds the person's LINE user ID, which must never
reach a URL (browser history, proxy and server logs, a calendar event).

A lead's URL id is ``<start in ms, hex>-<tag>``: the diagnosis' start time (as in the lead's own id), and
an HMAC-SHA256 of the lead's id under a key derived from the console's secret key (``CRMBOT_SECRET_KEY``,
or the one kept in the data directory), 20 hex digits. Nothing is stored: the page finds the lead by its
start time (one ZRANGEBYSCORE per channel, :func:`conversations.lead_query.started_at`) and keeps the one
whose tag matches (compared in constant time). A person's page is addressed by the URL id of one of their
leads. A new secret key makes new URLs (old ones answer 404); an erased person's leads have gone, so
their URLs answer 404 too.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from flask import current_app

from conversations.analytics import Analytics
from conversations.lead_query import started_at

_REF = re.compile(r"^([0-9a-f]{1,16})-([0-9a-f]{20})$")
_CONTEXT = b"crmbot console: lead ids in URLs"


def _key() -> bytes:
    secret = current_app.secret_key
    if not secret:
        raise RuntimeError("the console's secret key is not set")
    raw = secret.encode() if isinstance(secret, str) else bytes(secret)
    return hmac.new(raw, _CONTEXT, hashlib.sha256).digest()


def _tag(key: bytes, lead_id: str) -> str:
    return hmac.new(key, lead_id.encode(), hashlib.sha256).hexdigest()[:20]


def ref(lead_id: str) -> str:
    """The URL id of a lead (its id: ``<channel>:<user id>:<n>-<start hex>``)."""
    start = lead_id.rsplit("-", 1)[-1]
    return f"{start}-{_tag(_key(), lead_id)}"


def resolve(analytics: Analytics, given: str) -> str | None:
    """The lead id a URL id stands for, or None."""
    found = _REF.match(given or "")
    if not found:
        return None
    key = _key()
    for lead_id in started_at(analytics, int(found.group(1), 16)):
        if hmac.compare_digest(_tag(key, lead_id), found.group(2)):
            return lead_id
    return None
