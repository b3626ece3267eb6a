"""Every answer of LINE's API, counted (:mod:`bot.metrics`), and every failed one logged with its
``x-line-request-id``: the id LINE's support asks for about a request. Never a body, never a user ID.

The worker's transport (async), the quota reader and ``crmbot line setup`` (sync) all go through here.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
from linebot.v3.messaging import ApiException

from bot import metrics

log = logging.getLogger(__name__)
T = TypeVar("T")
API = "line"
QUIET = (404, 409)  # an answer the caller expects (no such profile; a retry key already accepted): INFO


def request_id(e: ApiException) -> str:
    """LINE's ``x-line-request-id`` of a failed request ("-" when the answer had none)."""
    for name, value in (getattr(e, "headers", None) or {}).items():
        if str(name).lower() == "x-line-request-id":
            return str(value)[:64]
    return "-"


def failed(what: str, e: ApiException) -> None:
    """A refused request: counted by its status, logged with its request id."""
    status = e.status or 0
    metrics.api_response(API, status or "error")
    log.log(logging.INFO if status in QUIET else logging.WARNING, "line: %s: HTTP %d (x-line-request-id %s)",
            what, status, request_id(e))


async def call(what: str, request: Awaitable[T]) -> T:
    """Await one request of the async SDK: its answer counted, a failure logged (then raised as it was)."""
    try:
        result = await request
    except ApiException as e:
        failed(what, e)
        raise
    except TimeoutError:
        metrics.api_response(API, "timeout")
        raise
    except aiohttp.ClientError:
        metrics.api_response(API, "error")
        raise
    metrics.api_response(API, 200)
    return result


def call_sync(what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """One request of the sync SDK (the quota, ``crmbot line setup``): as :func:`call`."""
    from urllib3.exceptions import HTTPError as Urllib3Error
    from urllib3.exceptions import TimeoutError as Urllib3Timeout

    try:
        result = fn(*args, **kwargs)
    except ApiException as e:
        failed(what, e)
        raise
    except Urllib3Timeout:
        metrics.api_response(API, "timeout")
        raise
    except Urllib3Error:
        metrics.api_response(API, "error")
        raise
    metrics.api_response(API, 200)
    return result
