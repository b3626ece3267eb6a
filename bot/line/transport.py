"""Delivers jobs to LINE from the worker (asyncio, line-bot-sdk's async client on aiohttp).

One reply policy. The transport keeps its own state in the job (``job.state``, a
:class:`~conversations.transports.LineState`): ``reply_token`` (from the webhook), ``via`` ("reply"
until it must push), ``reply_unknown`` (a reply was sent whose outcome we do not know: it timed out,
or a worker died sending it). A job is rendered with the script it was committed with (bot.scripts).

- While the reply token may still be valid (``reply_window`` seconds after *our server received the
  webhook*, never counted from the event's own timestamp: a sender's clock ahead of ours must not
  make us believe a token expired, or was used), an attempt replies. LINE accepts a token once:
  - 200: delivered.
  - refused as an invalid token: if an earlier reply's outcome is unknown, that reply used it:
    delivered. Otherwise the token was never usable (expired, a redelivered event): the switch to
    push is checkpointed first, then the message is pushed.
  - timeout, network error, 5xx: the outcome is unknown; retried (by reply again, see above).
  - 429: nothing was sent; retried after Retry-After.
  A reply request is never abandoned while its token may be valid: its read timeout runs to the end of
  the window (at least the API timeout), so a slow LINE answers the one request we sent.
- After the window, or once switched, every attempt pushes with the job id as X-Line-Retry-Key:
  LINE accepts a key once and answers 409 to a repeat, which counts as delivered.
- **A reply whose outcome is still unknown when the window closes** (a worker died mid-reply and the
  recovery comes after the window; LINE answered only after the window): nothing can tell whether the
  user got it. The policy (``CRMBOT_REPLY_UNKNOWN``) decides, once per job, checkpointed before acting:
  ``push`` (the default) pushes it once more, led by the script's ``resent_note`` ("in case our last
  message did not reach you"); ``park`` parks it as "reply outcome unknown" for the operator. Each
  case is recorded in ``keys.reply_unknown(outcome)`` (job id -> when, idempotent) for the console's
  delivery page.

The profile (the operator's leads show LINE display names): a follow's reply job carries
``fetch_profile`` in its state. With a profile sink (``CRMBOT_FETCH_PROFILE``, on by default), once
the reply is delivered the transport checkpoints ``sent`` (a retry never sends it again), fetches
``GET /v2/bot/profile/{userId}`` and hands the display name to the sink. A profile LINE does not give
(404: not a friend any more) is not retried; a 429/5xx/timeout is, up to ``PROFILE_TRIES`` attempts,
then the job is done without it (the reply went out; a name is not worth parking it).

Multicasts (``linebatch`` jobs, the quarterly reminders) go to the batch's users whose ledger mark
names the batch, with the job id as retry key. Pushes and multicasts are paced by limits shared in
Redis (LINE's per-channel limits: 2,000/s for push, 200/s for multicast); replies are not paced.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from linebot.__about__ import __version__ as SDK_VERSION
from linebot.v3.messaging import (
    ApiException,
    AsyncApiClient,
    AsyncMessagingApi,
    Configuration,
    MarkMessagesAsReadByTokenRequest,
    TextMessage,
)

from bot.handoff import OPERATOR_TEXT, record_read
from bot.insight import record_sent
from bot.line.answers import call
from bot.line.render import render
from bot.logs import uid
from bot.ratelimit import Limit, retry_after
from bot.scripts import Scripts
from bot.worker import DEFER, DELIVERED, FAILED, RETRY, Attempt, Outcome
from conversations import keys
from conversations.errors import InvalidInput
from conversations.keys import Subject
from conversations.outputs import outputs_of
from conversations.redis_ops import text
from conversations.transports import Transport

log = logging.getLogger(__name__)
REPLY_WINDOW = 50.0  # seconds after our server received the webhook that a reply token is tried
UNKNOWN_KEPT = 90 * 86400  # seconds a reply-unknown case is counted on the delivery page
CONNECT_TIMEOUT, READ_TIMEOUT = 3.0, 10.0
MAX_WAIT_IN_ATTEMPT = 1.0  # a longer pacing wait is left to a later attempt (deferred, not failed): a
# job waiting for its slot holds a worker slot meanwhile, and must not starve the others
MULTICAST_MAX_WAIT = 2.0  # a multicast may wait longer: a pass wakes its ~200 batches together, and at
# LINE's 200/s the last slots are ~1 s away; deferred, they would come back only with a later sweep
PROFILE_TRIES = 3  # attempts at a follower's profile after a 429/5xx/timeout, then it is done without
RENDERED_KEPT = 512  # distinct rendered message lists kept as JSON text (Rendered)
REPLY, PUSH, MULTICAST = "/v2/bot/message/reply", "/v2/bot/message/push", "/v2/bot/message/multicast"
# Keeps a follower's display name: (the worker's redis.asyncio client, LINE user ID, display name).
ProfileSink = Callable[[Any, str, str], Awaitable[None]]


class LineApi:
    """LINE's Messaging API from the worker's event loop, made on first use inside it.

    The sends of every delivery (reply, push, multicast) post a ready JSON body with aiohttp to the same
    base URL the SDK uses (``LINE_API_HOST``), with the SDK's headers; an answer outside 2xx raises the
    SDK's :class:`ApiException` (status, body, headers), so one error handling serves both. The rarer
    calls (a follower's profile, markAsRead) go through the SDK's async client (:attr:`api`)."""

    def __init__(self, host: str, access_token: str, *, connections: int = 100,
                 read_timeout: float = READ_TIMEOUT) -> None:
        self.host = host
        self.access_token = access_token
        self.connections = connections
        self.read_timeout = read_timeout
        self._client: AsyncApiClient | None = None
        self._api: AsyncMessagingApi | None = None
        self._session: aiohttp.ClientSession | None = None
        self._headers = {"Authorization": f"Bearer {access_token}", "Content-Type": "application/json",
                         "User-Agent": f"line-bot-sdk-python/{SDK_VERSION}"}

    @property
    def api(self) -> AsyncMessagingApi:
        if self._api is None:
            cfg = Configuration(host=self.host, access_token=self.access_token)
            cfg.retries = 0  # retries are the worker's (with backoff and retry keys)
            cfg.connection_pool_maxsize = self.connections
            self._client = AsyncApiClient(cfg)
            self._api = AsyncMessagingApi(self._client)
        return self._api

    def to_json(self, model: Any) -> Any:
        """An SDK model as the SDK itself would send it (its own serialisation)."""
        return self.api.api_client.sanitize_for_serialization(model)

    def timeout(self, at_least: float = 0.0) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(connect=CONNECT_TIMEOUT, sock_read=max(self.read_timeout, at_least))

    async def post(self, path: str, body: bytes, *, timeout: aiohttp.ClientTimeout, retry_key: str = "") -> None:
        """POST a ready JSON body to ``path``; ApiException when LINE answers outside 2xx."""
        if self._session is None:
            # trust_env (the environment's proxy settings) costs a thread hop per request in aiohttp: only
            # when a proxy is configured (the SDK's own client always trusts it)
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=self.connections),
                                                  trust_env=_proxy_configured())
        headers = self._headers if not retry_key else {**self._headers, "X-Line-Retry-Key": retry_key}
        async with self._session.post(self.host + path, data=body, headers=headers, timeout=timeout) as res:
            data = await res.read()
            if not 200 <= res.status <= 299:
                error = ApiException(status=res.status, reason=res.reason)
                error.body, error.headers = data, dict(res.headers)
                raise error

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = self._api = None
        if self._session is not None:
            await self._session.close()
            self._session = None


class Rendered:
    """Rendered messages as JSON text, by (script version, outputs): most replies are the same few
    questions, so a job's messages are rendered and serialised once, not once per job (bounded, LRU)."""

    def __init__(self, size: int = RENDERED_KEPT) -> None:
        self.size = size
        self._kept: OrderedDict[Any, tuple[int, str]] = OrderedDict()

    def get(self, key: Any, make: Callable[[], tuple[int, str]]) -> tuple[int, str]:
        """(how many messages, their JSON array) for ``key``, made by ``make`` unless kept."""
        try:
            found = self._kept.get(key)
        except TypeError:  # an output with a list in it: not hashable, rendered every time
            return make()
        if found is not None:
            self._kept.move_to_end(key)
            return found
        made = self._kept[key] = make()
        if len(self._kept) > self.size:
            self._kept.popitem(last=False)
        return made


def _proxy_configured() -> bool:
    return any(k.lower() in ("http_proxy", "https_proxy", "all_proxy") for k in os.environ)


def body(fields: dict[str, Any], messages: str) -> bytes:
    """A request's JSON body: ``fields`` then the messages' JSON text (already serialised), then the
    SDK's default ``notificationDisabled`` (false), as the SDK's own request models send it."""
    head = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))[:-1]
    return f'{head},"messages":{messages},"notificationDisabled":false}}'.encode()


def _is_invalid_reply_token(e: ApiException) -> bool:
    body = e.body.decode("utf-8", "replace") if isinstance(e.body, bytes) else str(e.body or "")
    return e.status == 400 and "reply token" in body.lower()


def _retry_after(e: ApiException) -> float | None:
    headers = {k.lower(): v for k, v in (e.headers or {}).items()}
    return retry_after(headers.get("retry-after"))


def failure(e: ApiException, via: str) -> Outcome:
    status = e.status or 0
    if status == 429 or status >= 500:
        return Outcome(RETRY, f"{via}: HTTP {status}", _retry_after(e))
    return Outcome(FAILED, f"{via}: HTTP {status}")


async def paced(attempt: Attempt, name: str, limit: Limit | None,
                max_wait: float = MAX_WAIT_IN_ATTEMPT) -> Outcome | None:
    """Wait for a slot of a shared limit; an Outcome (retry later) when the wait is too long."""
    taken, wait = await attempt.limiter.reserve(name, limit, attempt.clock(), max_wait)
    if not taken:
        return Outcome(DEFER, f"{name}: paced", wait - max_wait / 2)
    if wait > 0:
        await asyncio.sleep(wait)
    return None


async def refused(attempt: Attempt, e: ApiException, name: str, limit: Limit | None) -> Outcome:
    """A paced send refused with 429 (nothing was sent): the shared limit is held for everyone. With a
    Retry-After it is pacing, as our own limiter's: deferred to then, no failed attempt counted (a
    counted one would back off 2, 4, 8 s: the fan-out's multicasts spread over seconds for a few 429s
    of a bunched burst). Without one (e.g. a quota) it is a failed attempt, retried with backoff."""
    after = _retry_after(e)
    await attempt.limiter.hold(name, limit, attempt.clock(), after or 1.0)
    if after is None:
        return failure(e, name)
    return Outcome(DEFER, f"{name}: HTTP 429, Retry-After {after:g} s", after)


class LineTransport:
    transport = Transport.LINE

    def __init__(self, api: LineApi, scripts: Scripts, *, push_limit: Limit | None = None,
                 reply_window: float = REPLY_WINDOW, on_profile: ProfileSink | None = None,
                 unknown_policy: str = "push") -> None:
        if unknown_policy not in ("push", "park"):
            raise ValueError(f"unknown_policy: {unknown_policy!r}")
        self.line = api
        self.scripts = scripts
        self.push_limit = push_limit
        self.reply_window = reply_window
        self.on_profile = on_profile
        self.unknown_policy = unknown_policy
        self.rendered = Rendered()

    def messages(self, script: Any, outputs: list[Any], var: str = "") -> tuple[int, str]:
        """The job's messages rendered with ``script`` (varied by ``var``), as JSON text (InvalidInput when they
        cannot be)."""
        return _rendered(self.line, self.rendered, script, outputs, var)

    async def deliver(self, attempt: Attempt) -> Outcome:
        job = attempt.job
        state = job.line
        first = job.outputs[0] if job.outputs else None
        if isinstance(first, dict) and first.get("type") == OPERATOR_TEXT:
            return await self._operator(attempt, first)
        if self.on_profile is None or not state.fetch_profile:
            if state.sent:  # a follow that said nothing (another tool greets): only a name to fetch, not wanted
                return Outcome(DELIVERED, "nothing to send (display names are not fetched)")
            return await self._answered(attempt)
        if not state.sent:
            outcome = await self._answered(attempt)
            if outcome.kind != DELIVERED:
                return outcome
            state.sent = True
            await attempt.checkpoint()  # from here on, an attempt only fetches the profile
        return await self._profile(attempt, self.on_profile)

    async def _answered(self, attempt: Attempt) -> Outcome:
        """The job's messages sent; the owner's message it answered during a handoff is then the latest for
        the operator's next reply to mark read (bot/handoff.py), as a message relayed to the thread is."""
        outcome = await self._send(attempt)
        token = attempt.job.line.read
        if outcome.kind == DELIVERED and token:
            await record_read(attempt.redis, keys.lead_ref(Subject(Transport.LINE, attempt.job.to)), token)
        return outcome

    async def _profile(self, attempt: Attempt, sink: ProfileSink) -> Outcome:
        job = attempt.job
        last_try = job.attempts + 1 >= PROFILE_TRIES
        try:
            profile = await call("profile", self.line.api.get_profile(job.to, _request_timeout=self.line.timeout()))
        except ApiException as e:
            status = e.status or 0
            if (status == 429 or status >= 500) and not last_try:
                return failure(e, "profile")
            log.info("line: no profile for %s (HTTP %d); kept without a name", uid(job.to), status)
            return Outcome(DELIVERED, f"{job.line.via}; profile: HTTP {status}")
        except (TimeoutError, aiohttp.ClientError) as e:
            if not last_try:
                return Outcome(RETRY, f"profile: {type(e).__name__}")
            return Outcome(DELIVERED, f"{job.line.via}; profile: {type(e).__name__}")
        await sink(attempt.redis, job.to, profile.display_name)
        return Outcome(DELIVERED, f"{job.line.via}; profile kept")

    async def _send(self, attempt: Attempt) -> Outcome:
        job = attempt.job
        state = job.line
        script = await self.scripts.of(attempt.redis, job.content, job.var)
        try:
            count, messages = self.messages(script, job.outputs, job.var)
        except InvalidInput as e:
            return Outcome(FAILED, f"line: {e}")
        token = state.reply_token
        if state.redelivery and state.via != "push":
            state.via = "push"  # a redelivered event's token is not to be trusted: no reply
        window_end = job.received + self.reply_window
        in_window = attempt.now <= window_end
        replying = bool(token) and state.via == "reply"
        if replying and in_window:
            unknown = attempt.recovering or state.reply_unknown
            try:
                await call("reply", self.line.post(REPLY, body({"replyToken": token}, messages),
                                                   timeout=self.line.timeout(window_end - attempt.now)))
                return Outcome(DELIVERED, "reply")
            except ApiException as e:
                if _is_invalid_reply_token(e):
                    if unknown:
                        return Outcome(DELIVERED, "reply token used by an earlier attempt")
                    state.via = "push"
                    await attempt.checkpoint()
                elif e.status == 429:
                    return failure(e, "reply")
                elif (e.status or 0) >= 500:
                    state.reply_unknown = True
                    return failure(e, "reply")
                else:
                    return failure(e, "reply")
            except (TimeoutError, aiohttp.ClientError) as e:  # did it land? unknown: try the reply again
                state.reply_unknown = True
                return Outcome(RETRY, f"reply: {type(e).__name__}")
        elif replying and (attempt.recovering or state.reply_unknown):
            # The window closed on a reply whose outcome nobody knows: the policy, decided once.
            if self.unknown_policy == "park":
                await _count_unknown(attempt, "parked")
                return Outcome(FAILED, "reply outcome unknown after the reply window (CRMBOT_REPLY_UNKNOWN=park)")
            await _count_unknown(attempt, "pushed")  # before the checkpoint: a crash between counts once (NX)
            state.via, state.resent = "push", True
            await attempt.checkpoint()
        if state.resent and count < 5:
            note = json.dumps(self.line.to_json(TextMessage(text=script.text("resent_note"))), ensure_ascii=False,
                              separators=(",", ":"))
            messages = f"[{note},{messages[1:]}" if count else f"[{note}]"
        return await self._push(attempt, messages)

    async def _push(self, attempt: Attempt, messages: str) -> Outcome:
        """Push ``messages`` (a JSON array) to the job's user, with the job id as retry key."""
        job = attempt.job
        if (later := await paced(attempt, "line:push", self.push_limit)) is not None:
            return later
        try:
            fields: dict[str, Any] = {"to": job.to}
            request = body(fields, messages)
            if job.line.unit:  # LINE's statistics per unit (nudge_q4, fu_q3_1)
                request = request[:-1] + b',"customAggregationUnits":' + json.dumps([job.line.unit]).encode() + b"}"
            await call("push", self.line.post(PUSH, request, retry_key=job.id, timeout=self.line.timeout()))
            await _count_sent(attempt)
            return Outcome(DELIVERED, "push")
        except ApiException as e:
            if e.status == 409:
                await _count_sent(attempt)
                return Outcome(DELIVERED, "push already accepted (retry key)")
            if e.status == 429:
                return await refused(attempt, e, "line:push", self.push_limit)
            return failure(e, "push")
        except (TimeoutError, aiohttp.ClientError) as e:
            return Outcome(RETRY, f"push: {type(e).__name__}")

    async def _operator(self, attempt: Attempt, out: dict[str, Any]) -> Outcome:
        """A person's reply from the operator's Slack thread (bot/handoff.py): pushed (the job id is its
        retry key), then the owner's messages marked as read with their latest markAsReadToken, once: the
        push's success is checkpointed first, and a refused or failed mark is logged, not retried."""
        state = attempt.job.line
        if not state.sent:
            words = str(out.get("text") or "")[:5000]
            if not words:
                return Outcome(FAILED, "line: an operator's reply without text")
            text_json = json.dumps([self.line.to_json(TextMessage(text=words))], ensure_ascii=False)
            outcome = await self._push(attempt, text_json)
            if outcome.kind != DELIVERED:
                return outcome
            state.sent = True
            await attempt.checkpoint()
        token = str(out.get("read") or "")
        if not token:
            return Outcome(DELIVERED, "push; nothing to mark as read")
        try:
            await call("markAsRead", self.line.api.mark_messages_as_read_by_token(
                MarkMessagesAsReadByTokenRequest(markAsReadToken=token), _request_timeout=self.line.timeout()))
        except ApiException as e:
            log.info("line: markAsRead for %s refused (HTTP %s)", uid(attempt.job.to), e.status)
            return Outcome(DELIVERED, f"push; markAsRead: HTTP {e.status}")
        except (TimeoutError, aiohttp.ClientError) as e:
            return Outcome(DELIVERED, f"push; markAsRead: {type(e).__name__}")
        return Outcome(DELIVERED, "push; marked as read")

    async def close(self) -> None:
        await self.line.close()


async def _count_sent(attempt: Attempt) -> None:
    """A push with an aggregation unit that LINE accepted: counted once per job for the nurture page."""
    if attempt.job.line.unit:
        await record_sent(attempt.redis, attempt.job.line.unit, attempt.job.id, attempt.clock())


async def _count_unknown(attempt: Attempt, outcome: str) -> None:
    """Record a reply-unknown case once per job (a sorted set by job id; older than UNKNOWN_KEPT trimmed)."""
    now = attempt.clock()
    key = keys.reply_unknown(outcome)
    async with attempt.redis.pipeline(transaction=False) as p:
        p.zadd(key, {attempt.job.id: now}, nx=True)
        p.zremrangebyscore(key, "-inf", now - UNKNOWN_KEPT)
        await p.execute()


class LineBatchTransport:
    """Quarterly reminders by multicast (at most 500 users a request, the job id as retry key).

    Sends only to the batch's users whose reminder ledger mark names this batch, so a batch recovered
    after a crash never reaches a user another batch has claimed.
    """

    transport = Transport.LINEBATCH

    def __init__(self, api: LineApi, scripts: Scripts, *, limit: Limit | None = None) -> None:
        self.line = api
        self.scripts = scripts
        self.limit = limit
        self.rendered = Rendered()

    async def deliver(self, attempt: Attempt) -> Outcome:
        job = attempt.job
        users, period = list(job.batch.rcpt), job.batch.period
        marks = await _marks(attempt.redis, [keys.reminder_sent(Subject(Transport.LINE, u), period) for u in users])
        mine = [u for u, m in zip(users, marks, strict=True) if text(m) == job.id]
        if not mine:
            return Outcome(DELIVERED, "no recipients left")
        try:
            script = await self.scripts.of(attempt.redis, job.content, job.var)
            _, messages = _rendered(self.line, self.rendered, script, job.outputs, job.var)
        except InvalidInput as e:
            return Outcome(FAILED, f"multicast: {e}")
        if (later := await paced(attempt, "line:multicast", self.limit, MULTICAST_MAX_WAIT)) is not None:
            return later
        try:
            await call("multicast", self.line.post(MULTICAST, body({"to": mine}, messages), retry_key=job.id,
                                                   timeout=self.line.timeout()))
            return Outcome(DELIVERED, f"multicast to {len(mine)}")
        except ApiException as e:
            if e.status == 409:
                return Outcome(DELIVERED, "multicast already accepted (retry key)")
            if e.status == 429:
                return await refused(attempt, e, "line:multicast", self.limit)
            return failure(e, "multicast")
        except (TimeoutError, aiohttp.ClientError) as e:
            return Outcome(RETRY, f"multicast: {type(e).__name__}")

    async def close(self) -> None:
        await self.line.close()


def _rendered(api: LineApi, kept: Rendered, script: Any, outputs: list[Any], var: str = "") -> tuple[int, str]:
    """A job's outputs rendered with ``script`` (at most five messages), as the SDK serialises them. Kept by
    content version, experiment variants (``var``: a varied script keeps its file's version) and outputs."""

    def make() -> tuple[int, str]:
        messages = render(script, outputs_of(outputs))
        return len(messages), json.dumps(api.to_json(messages), ensure_ascii=False, separators=(",", ":"))

    if not script.version:  # a script without a version (made in a test): nothing to key it by
        return make()
    return kept.get((script.version, var, tuple(outputs)), make)


async def _marks(redis: Any, names: list[str]) -> list[Any]:
    """The values of ``names`` (a batch's ledger marks, each in its user's hash slot): one MGET on one
    server (500 GETs in a pipeline cost the worker 20-30x the CPU: redis-py handles each command in
    Python), one GET a key in a pipeline on a Cluster, where the keys live in different slots."""
    if not names:
        return []
    if not redis.cluster:
        return list(await redis.mget(names))
    async with redis.pipeline(transaction=False) as p:
        for name in names:
            p.get(name)
        return list(await p.execute())
