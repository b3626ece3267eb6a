"""Error reports to Sentry, when ``SENTRY_DSN`` is set (off by default; ``sentry_sdk`` is imported only then).

What goes: every ERROR log record (a traceback with it when there is one) and every uncaught exception,
with the INFO and WARNING records before it as breadcrumbs. What never goes, whatever the SDK would add:

* no request (body, headers, cookies, query): no web framework integration is on, and ``request`` is
  dropped from an event anyway; ``max_request_body_size="never"``;
* no person: ``send_default_pii=False``, ``user`` dropped, a LINE user ID anywhere in a text replaced by
  its short hash (as in the logs, :func:`bot.logs.uid`);
* no message text: a record's ``extra`` dropped, no local variables in frames
  (``include_local_variables=False``), every message, exception value and breadcrumb passed through the
  log cleaner (:func:`bot.logs.clean`: a ``body: ...`` tail cut), a breadcrumb's ``data`` dropped (an HTTP
  breadcrumb's URL may name a user);
* only the integrations named here (logging, uncaught exceptions, threads, de-duplication, flushing at
  exit): none that reads Redis commands (keys name users) or HTTP requests is enabled on its own.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from bot.logs import clean, uid

log = logging.getLogger(__name__)
LINE_USER_ID = re.compile(r"\bU[0-9a-f]{32}\b")
DROPPED = ("request", "user", "extra", "modules")


def scrubbed(text: Any) -> str:
    """A text fit for a report: cleaned as a log message, LINE user IDs hashed."""
    return LINE_USER_ID.sub(lambda m: uid(m.group()), clean(str(text)))


def before_send(event: dict[str, Any], hint: Any = None) -> dict[str, Any]:
    """What an event keeps (see the module's doc); applied to every event before it leaves."""
    for name in DROPPED:
        event.pop(name, None)
    entry = event.get("logentry")
    if isinstance(entry, dict):
        formatted = entry.get("formatted") or _formatted(entry)
        event["logentry"] = {"message": scrubbed(formatted)}
    if "message" in event:
        event["message"] = scrubbed(event["message"])
    for exc in (event.get("exception") or {}).get("values") or []:
        if exc.get("value") is not None:
            exc["value"] = scrubbed(exc["value"])
        for frame in (exc.get("stacktrace") or {}).get("frames") or []:
            frame.pop("vars", None)
    crumbs = event.get("breadcrumbs")
    values = crumbs.get("values") if isinstance(crumbs, dict) else crumbs
    for crumb in values or []:
        before_breadcrumb(crumb)
    return event


def before_breadcrumb(crumb: dict[str, Any], hint: Any = None) -> dict[str, Any]:
    crumb.pop("data", None)
    if crumb.get("message") is not None:
        crumb["message"] = scrubbed(crumb["message"])
    return crumb


def _formatted(entry: dict[str, Any]) -> str:
    message, params = str(entry.get("message") or ""), entry.get("params")
    if not params:
        return message
    try:
        return message % tuple(params)
    except (TypeError, ValueError):
        return message


def init(dsn: str) -> None:
    """Start reporting to ``dsn`` for the process's lifetime (the SDK flushes at exit; it reads
    ``SENTRY_ENVIRONMENT`` and ``SENTRY_RELEASE`` itself)."""
    import sentry_sdk
    from sentry_sdk.integrations.atexit import AtexitIntegration
    from sentry_sdk.integrations.dedupe import DedupeIntegration
    from sentry_sdk.integrations.excepthook import ExcepthookIntegration
    from sentry_sdk.integrations.logging import LoggingIntegration
    from sentry_sdk.integrations.threading import ThreadingIntegration

    sentry_sdk.init(
        dsn=dsn,
        send_default_pii=False,
        include_local_variables=False,
        max_request_body_size="never",
        default_integrations=False,
        auto_enabling_integrations=False,
        integrations=[LoggingIntegration(level=logging.INFO, event_level=logging.ERROR), ExcepthookIntegration(),
                      ThreadingIntegration(), DedupeIntegration(), AtexitIntegration()],
        before_send=before_send,  # type: ignore[arg-type]
        before_breadcrumb=before_breadcrumb,
    )
    log.info("error reports: Sentry (scrubbed of request bodies, message texts and user IDs)")
