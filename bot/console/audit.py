"""The console's audit log: every change an operator makes (a lead's status, assignee or note, a requeue,
the availability, content, a deletion), with who and when.

The contract every changing view calls: :func:`record`. Issue 18's operator accounts give it a store
(a Redis stream), an audit page and an export; until then it only logs the change (who, what, which
record; never the person's data).
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def record(client: Any, *, who: str, action: str, target: str, detail: str = "", now: float) -> None:
    """Write one change: ``who`` (the operator's name), ``action`` (a short verb such as ``lead.status``,
    ``booking.cancel``, ``availability.set``), ``target`` (an opaque record id: never a LINE user ID in
    clear), ``detail`` (the new value in a few words; no message texts). ``client``: a sync Redis client."""
    log.info("audit: %s %s %s", who, action, target[:24])
