"""The closed loop: N simulated LINE users, each tapping, waiting for the bot's reply, tapping again.

What a person does: send a message (or tap a button), wait until the bot's answer is there, answer
that. Each simulated user sends one signed webhook (as LINE does, with a fresh reply token and
webhook event ID), then waits until the fake LINE API has *received* the bot's reply for it: a reply
with that reply token, or a push to that user (benchmarks/fakes.py streams each one over a websocket
as it arrives, with its arrival time). Then it sends the next. There is no think time, so N users
keep the server as busy as N people answering instantly: the completed round trips per second are
what the server sustains for N conversations.

The user does not wait for the webhook's HTTP answer (a person never sees it; LINE delivers the next
event whether or not the previous webhook has been answered): a bot that replies inside the webhook
(the echo bot) gets the next event while its previous request still waits on the API's answer.
A webhook answered with an error, or no reply within ``wait_timeout``, ends the wait (counted).

Each user's conversation: follow, then diagnoses over and over (the start button, ten answers, "yes"
to the reminder). Answers alternate between diagnoses: typed text ("A") in one, the answer button's
postback (``a:<sid>:<q>:<X>``) in the next, so both inputs are exercised. Every event gets exactly one
reply from crmbot and from the echo bot.

Figures (``ClosedResult``): events/s (round trips completed between the start and the end of the
tapping, per second), the round-trip times (webhook written -> reply arrived at the fake), the
webhook response times, errors.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from benchmarks.load import ANSWERS, DESTINATION, percentile, sign, user_id


@dataclass
class Tap:
    user: str
    token: str
    sent: float  # time.time() just before the webhook was written
    status: int = 0  # the webhook's HTTP status; 0: no answer (see error)
    error: str = ""
    webhook_s: float = float("nan")  # until the webhook's whole answer was read
    replied: float | None = None  # arrival time of the reply at the fake API (its clock: the same machine)
    via: str = ""  # reply | push
    gave_up: str = ""  # why the user stopped waiting without a reply


@dataclass
class ClosedResult:
    users: int
    started: float = 0.0  # time.time() when the users started tapping
    ended: float = 0.0  # time.time() when they stopped starting new taps
    taps: list[Tap] = field(default_factory=list)
    unmatched_pushes: int = 0  # pushes that arrived while their user waited for nothing
    late_replies: int = 0  # replies to a tap its user had stopped waiting for

    def figures(self) -> dict[str, Any]:
        window = max(1e-9, self.ended - self.started)
        done = [t for t in self.taps if t.replied is not None]
        in_window = [t for t in done if self.started <= t.replied <= self.ended]  # type: ignore[operator]
        rtt = [t.replied - t.sent for t in done]  # type: ignore[operator]
        hooks = [t.webhook_s for t in self.taps if t.status == 200]
        return {
            "users": self.users,
            "seconds": window,
            "taps": len(self.taps),
            "round_trips": len(done),
            "events_per_second": len(in_window) / window,
            "round_trip_p50_s": percentile(rtt, 50),
            "round_trip_p99_s": percentile(rtt, 99),
            "round_trip_max_s": max(rtt, default=float("nan")),
            "webhook_p50_s": percentile(hooks, 50),
            "webhook_p99_s": percentile(hooks, 99),
            "webhook_errors": sum(1 for t in self.taps if t.status != 200),
            "gave_up": sum(1 for t in self.taps if t.gave_up),
            "by_push": sum(1 for t in done if t.via == "push"),
            "unmatched_pushes": self.unmatched_pushes,
            "late_replies": self.late_replies,
        }


def _conversation(n: int) -> Iterator[dict[str, Any]]:
    """One user's events, forever: follow, then diagnosis after diagnosis (sid 1, 2, ...)."""
    yield {"type": "follow", "follow": {"isUnblocked": False}}
    sid = 0
    while True:
        sid += 1
        yield _postback("s")
        typed = (n + sid) % 2 == 1
        for q, letter in enumerate(ANSWERS[(n + sid) % len(ANSWERS)]):
            if typed:
                yield {"type": "message", "message": {"type": "text", "id": str(uuid.uuid4().int)[:18],
                                                      "text": letter, "quoteToken": uuid.uuid4().hex}}
            else:
                yield _postback(f"a:{sid}:{q}:{letter}")
        yield _postback("o:1")


def _postback(data: str) -> dict[str, Any]:
    return {"type": "postback", "postback": {"data": data}}


def _webhook(user: str, step: dict[str, Any], secret: str) -> tuple[str, bytes, str]:
    token = uuid.uuid4().hex
    event = {
        **step,
        "mode": "active",
        "timestamp": int(time.time() * 1000),
        "source": {"type": "user", "userId": user},
        "webhookEventId": "01" + uuid.uuid4().hex[:24].upper(),
        "deliveryContext": {"isRedelivery": False},
        "replyToken": token,
    }
    body = json.dumps({"destination": DESTINATION, "events": [event]}, separators=(",", ":")).encode()
    return token, body, sign(secret, body)


class _Waits:
    """Which tap each user waits on; resolved by the fake's stream (reply token, or push to the user)."""

    def __init__(self, result: ClosedResult) -> None:
        self.by_token: dict[str, asyncio.Future[tuple[float, str]]] = {}
        self.by_user: dict[str, asyncio.Future[tuple[float, str]]] = {}
        self.result = result

    def open(self, user: str, token: str) -> asyncio.Future[tuple[float, str]]:
        fut: asyncio.Future[tuple[float, str]] = asyncio.get_running_loop().create_future()
        self.by_token[token] = fut
        self.by_user[user] = fut
        return fut

    def close(self, user: str, token: str) -> None:
        fut = self.by_token.pop(token, None)
        if self.by_user.get(user) is fut:
            del self.by_user[user]

    def arrived(self, note: dict[str, Any]) -> None:
        if "r" in note:
            fut = self.by_token.get(note["r"])
            if fut is None:
                self.result.late_replies += 1
            elif not fut.done():
                fut.set_result((float(note["t"]), "reply"))
        elif "p" in note:
            fut = self.by_user.get(note["p"])
            if fut is None or fut.done():
                self.result.unmatched_pushes += 1
            else:
                fut.set_result((float(note["t"]), "push"))


async def _post(session: aiohttp.ClientSession, url: str, tap: Tap, body: bytes, signature: str) -> None:
    headers = {"Content-Type": "application/json; charset=utf-8", "X-Line-Signature": signature}
    p0 = time.perf_counter()
    try:
        async with session.post(url, data=body, headers=headers) as res:
            await res.read()
            tap.status = res.status
    except (TimeoutError, aiohttp.ClientError) as e:
        tap.error = type(e).__name__
    tap.webhook_s = time.perf_counter() - p0


async def _user(n: int, user: str, session: aiohttp.ClientSession, url: str, secret: str, waits: _Waits,
                result: ClosedResult, posts: list[asyncio.Task[None]], stop_at: float, wait_timeout: float) -> None:
    loop = asyncio.get_running_loop()
    for step in _conversation(n):
        if loop.time() >= stop_at:
            return
        token, body, signature = _webhook(user, step, secret)
        fut = waits.open(user, token)
        tap = Tap(user, token, time.time())
        result.taps.append(tap)
        post = asyncio.ensure_future(_post(session, url, tap, body, signature))
        posts.append(post)
        deadline = loop.time() + wait_timeout
        try:
            pending: set[asyncio.Future[Any]] = {fut, post}
            while True:
                left = deadline - loop.time()
                if left <= 0:
                    tap.gave_up = "no reply in time"
                    break
                await asyncio.wait(pending, timeout=left, return_when=asyncio.FIRST_COMPLETED)
                if fut.done():
                    tap.replied, tap.via = fut.result()
                    break
                if post.done():
                    if tap.status != 200:
                        tap.gave_up = f"webhook {tap.status or tap.error}"
                        break
                    pending = {fut}
        finally:
            waits.close(user, token)


async def _run(url: str, stream_url: str, secret: str, users: int, seconds: float, run_id: str,
               wait_timeout: float) -> ClosedResult:
    result = ClosedResult(users)
    waits = _Waits(result)
    # keep-alive per connection, dropped after 1 s idle: before any server's own keep-alive timeout
    # closes it (gunicorn's is 2 s), so a request never goes out on a connection the server just closed
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=1.0)
    timeout = aiohttp.ClientTimeout(total=60)
    async with (
        aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
        session.ws_connect(stream_url, heartbeat=None, max_msg_size=0) as ws,
    ):

        async def listen() -> None:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    waits.arrived(json.loads(msg.data))

        listener = asyncio.ensure_future(listen())
        posts: list[asyncio.Task[None]] = []
        loop = asyncio.get_running_loop()
        result.started = time.time()
        stop_at = loop.time() + seconds
        tasks = [asyncio.ensure_future(_user(n, user_id(run_id, n), session, url, secret, waits, result, posts,
                                             stop_at, wait_timeout)) for n in range(users)]
        # each user stops starting taps at stop_at; the tap it is in may wait up to wait_timeout more
        await asyncio.wait(tasks, timeout=seconds + wait_timeout + 5)
        result.ended = time.time() if loop.time() < stop_at else result.started + seconds
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if posts:
            await asyncio.wait(posts, timeout=65)
        for p in posts:
            p.cancel()
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
    return result


def run_closed(url: str, stream_url: str, secret: str, *, users: int, seconds: float, run_id: str,
               wait_timeout: float = 30.0) -> ClosedResult:
    """N users in a closed loop for ``seconds`` (then each finishes the tap it is in)."""
    return asyncio.run(_run(url, stream_url, secret, users, seconds, run_id, wait_timeout))
