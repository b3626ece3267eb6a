"""Delivers outbox entries to LINE: the reply API first (free), the push API when it cannot.

Policy, per entry (the entry's id is its X-Line-Retry-Key):
- First attempt, in the process that committed it: reply with the event's reply token.
  200 -> delivered. 400 (token expired/used) -> the outbox records "via push", then pushes at once.
  429, 5xx, network -> retry later by push.
- Recovery of an entry whose first attempt may or may not have reached LINE (the process died):
  within ``reply_window`` of the event, reply again with the same token; if LINE refuses the token
  it was already used by that lost attempt, so the message counts as delivered. After the window
  the token has expired and tells nothing, so the message goes by push (a lost reply would strand
  the user; a rare duplicate question is harmless, the state machine ignores stale taps).
- Every later attempt is a push with the same X-Line-Retry-Key: LINE accepts a key once and
  answers 409 to a repeat, which counts as delivered, so a retry is never a duplicate.
- Redelivered webhook events skip the reply (their token is not usable).

Pacing (client side, per process, bot.ratelimit): LINE limits each endpoint per channel and answers
429 past it. Multicasts (the quarterly reminders) wait for a token of ``LINE_RATE_PER_SECOND``
(default 200, LINE's limit for multicast); pushes of ``LINE_PUSH_RATE_PER_SECOND`` (default 2000,
LINE's limit for the other endpoints). Replies answer the user's own message and are not paced. A
paced request refused with 429 holds the bucket for its Retry-After (1 s when LINE gives none) and is
sent once more after it, with the same X-Line-Retry-Key, in the same call; a Retry-After longer than
``bot.ratelimit.MAX_HOLD`` is left to the outbox's backoff.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from linebot.v3.messaging import (
    ApiClient,
    ApiException,
    Configuration,
    MessagingApi,
    MulticastRequest,
    PushMessageRequest,
    ReplyMessageRequest,
)

from bot.line.render import render
from bot.outbox import DELIVERED, FAILED, RETRY, SWITCH, Outcome
from bot.ratelimit import MAX_HOLD, Clock, Sleep, TokenBucket, rate_from_env
from conversations import keys
from conversations.content import Script
from conversations.keys import Subject

log = logging.getLogger(__name__)
T = TypeVar("T")
TIMEOUT = (3.0, 10.0)  # connect, read (seconds)
MULTICAST_RATE = 200.0  # LINE_RATE_PER_SECOND: LINE's limit for "send multicast message"
PUSH_RATE = 2000.0  # LINE_PUSH_RATE_PER_SECOND: LINE's limit for the other endpoints
BURST_SECONDS = 0.05  # a bucket holds this many seconds' worth of requests (at least one)


class _FromEnv:
    """Default of the transports' limit arguments: build the bucket from the environment."""


FROM_ENV = _FromEnv()


def bucket_from_env(
    name: str,
    default: float,
    env: Mapping[str, str] | None = None,
    *,
    clock: Clock = time.monotonic,
    sleep: Sleep = time.sleep,
) -> TokenBucket | None:
    """A bucket of ``name``'s rate (a twentieth of a second's worth of burst), or None for "0"."""
    rate = rate_from_env(name, default, env)
    if rate is None:
        return None
    return TokenBucket(rate, max(1.0, rate * BURST_SECONDS), clock=clock, sleep=sleep)


def _refused(bucket: TokenBucket | None, e: ApiException) -> bool:
    """A 429 with a short Retry-After (1 s when LINE gives none) holds the bucket. Returns whether it did."""
    seconds = _retry_after(e) or 1.0
    if bucket is None or e.status != 429 or seconds > MAX_HOLD:
        return False
    bucket.hold(seconds)
    return True


def _paced(bucket: TokenBucket | None, call: Callable[[], T]) -> T:
    """``call()`` when the bucket allows. Refused with a short Retry-After (a 429 sends nothing, and the
    request keeps its X-Line-Retry-Key), it waits that out and calls once more."""
    for attempt in (1, 2):
        if bucket is not None:
            bucket.acquire()
        try:
            return call()
        except ApiException as e:
            if attempt == 2 or not _refused(bucket, e):
                raise
    raise AssertionError("unreachable")


def _retry_after(e: ApiException) -> float | None:
    headers = {k.lower(): v for k, v in (e.headers or {}).items()}
    try:
        return float(headers.get("retry-after", ""))
    except ValueError:
        return None


def _is_invalid_reply_token(e: ApiException) -> bool:
    body = e.body.decode("utf-8", "replace") if isinstance(e.body, bytes) else str(e.body or "")
    return e.status == 400 and "reply token" in body.lower()


class LineTransport:
    channel = "line"

    def __init__(
        self,
        host: str,
        access_token: str,
        script: Script,
        *,
        reply_window: float = 50.0,
        push_limit: TokenBucket | _FromEnv | None = FROM_ENV,
    ) -> None:
        self.script = script
        self.reply_window = reply_window
        self.push_limit = (
            bucket_from_env("LINE_PUSH_RATE_PER_SECOND", PUSH_RATE) if isinstance(push_limit, _FromEnv) else push_limit
        )
        cfg = Configuration(host=host, access_token=access_token)
        cfg.retries = 0  # retries are the outbox's job (with backoff and retry keys)
        self.client = ApiClient(cfg)
        self.api = MessagingApi(self.client)

    def deliver(self, entry: Mapping[str, Any], *, recovering: bool, now: float) -> Outcome:
        messages = render(self.script, entry["out"])
        token = entry.get("rt") or ""
        if entry.get("via", "reply") == "reply" and token and not entry.get("redelivery"):
            fresh = now - float(entry.get("ts", now)) <= self.reply_window
            if not recovering or fresh:
                try:
                    self.api.reply_message(
                        ReplyMessageRequest(replyToken=token, messages=messages), _request_timeout=TIMEOUT
                    )
                    return Outcome(DELIVERED, "reply")
                except ApiException as e:
                    if _is_invalid_reply_token(e):
                        if recovering:
                            return Outcome(DELIVERED, "reply token already used by an earlier attempt")
                        # expired or unusable: push now, once the outbox has recorded the switch
                        return Outcome(SWITCH, "push")
                    else:
                        return self._failure(e, "reply")
                except Exception as e:  # network: the outcome is unknown; later attempts push with a key
                    return Outcome(RETRY, f"reply: {type(e).__name__}")
        return self._push(entry, messages)

    def _push(self, entry: Mapping[str, Any], messages: list[Any]) -> Outcome:
        try:
            _paced(self.push_limit, lambda: self.api.push_message(
                PushMessageRequest(to=entry["to"], messages=messages),
                x_line_retry_key=entry["id"],
                _request_timeout=TIMEOUT,
            ))
            return Outcome(DELIVERED, "push")
        except ApiException as e:
            if e.status == 409:
                return Outcome(DELIVERED, "push already accepted (retry key)")
            return self._failure(e, "push")
        except Exception as e:
            return Outcome(RETRY, f"push: {type(e).__name__}")

    @staticmethod
    def _failure(e: ApiException, via: str) -> Outcome:
        status = e.status or 0
        if status == 429 or status >= 500:
            return Outcome(RETRY, f"{via}: HTTP {status}", _retry_after(e))
        return Outcome(FAILED, f"{via}: HTTP {status}")


class LineBatchTransport:
    """Quarterly reminders by multicast (at most 500 users a request, one X-Line-Retry-Key each).

    Sends only to the batch's users whose reminder ledger mark names this batch, so a batch
    recovered after a crash never reaches a user another batch has claimed.
    """

    channel = "linebatch"

    def __init__(
        self, api: MessagingApi, script: Script, client: Any, *, limit: TokenBucket | _FromEnv | None = FROM_ENV
    ) -> None:
        self.api = api
        self.script = script
        self.r = client
        self.limit = bucket_from_env("LINE_RATE_PER_SECOND", MULTICAST_RATE) if isinstance(limit, _FromEnv) else limit

    def deliver(self, entry: Mapping[str, Any], *, recovering: bool, now: float) -> Outcome:
        users = list(entry.get("rcpt") or [])
        with self.r.pipeline(transaction=False) as p:
            for u in users:
                p.get(keys.reminder_sent(Subject("line", u), entry["period"]))
            marks = p.execute()
        marks = [m.decode() if isinstance(m, bytes) else m for m in marks]
        mine = [u for u, m in zip(users, marks, strict=True) if m == entry["id"]]
        if not mine:
            return Outcome(DELIVERED, "no recipients left")
        try:
            request = MulticastRequest(to=mine, messages=render(self.script, entry["out"]))
            _paced(self.limit, lambda: self.api.multicast(request, x_line_retry_key=entry["id"],
                                                          _request_timeout=TIMEOUT))
            return Outcome(DELIVERED, f"multicast to {len(mine)}")
        except ApiException as e:
            if e.status == 409:
                return Outcome(DELIVERED, "multicast already accepted (retry key)")
            return LineTransport._failure(e, "multicast")
        except Exception as e:
            return Outcome(RETRY, f"multicast: {type(e).__name__}")
