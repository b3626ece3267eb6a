"""The load generator: simulated LINE users sending signed webhooks, as LINE does, to 127.0.0.1.

Each user takes the whole diagnosis: follow, the start button, the ten answers, then "yes" to the
quarterly reminder (13 events, each in its own webhook with its own reply token). All users take it
at once, in one of two ways:

- flat out (``pace=None``): each user sends its next event as soon as its previous webhook is
  answered. A closed loop: the server sets the pace, so this measures its capacity (events/s).
- paced (``pace=s``): each user sends an event every ``s`` seconds (the users' starts spread over the
  first ``s`` seconds), never before its previous webhook was answered. The offered load is the same
  for every server, so response times compare; at capacity they would only mirror throughput.

Bodies are built and signed before the clock starts.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import math
import time
import uuid
from dataclasses import dataclass, field

import aiohttp

DESTINATION = "U" + "d" * 32
ANSWERS = ("AAAAAAAAAA", "AAAAAAAABC", "AAAAAAABCD", "ABCDABCDAB", "DDDDDDDDDD", "BBBBBBBBBB")
EVENTS_PER_USER = 13  # follow, start, 10 answers, opt in


def sign(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def user_id(run: str, n: int) -> str:
    return "U" + hashlib.md5(f"{run}-{n}".encode()).hexdigest()


@dataclass(frozen=True)
class Webhook:
    user: str
    index: int  # the event's place in the user's diagnosis (0-12)
    token: str  # its reply token
    body: bytes
    signature: str


def diagnosis(run: str, n: int, secret: str) -> list[Webhook]:
    uid = user_id(run, n)
    answers = ANSWERS[n % len(ANSWERS)]
    steps: list[dict] = [{"type": "follow", "follow": {"isUnblocked": False}}, _postback("s")]
    steps += [_postback(f"a:1:{q}:{a}") for q, a in enumerate(answers)]
    steps.append(_postback("o:1"))
    hooks = []
    now = int(time.time() * 1000)
    for i, step in enumerate(steps):
        token = uuid.uuid4().hex
        event = {
            **step,
            "mode": "active",
            "timestamp": now,
            "source": {"type": "user", "userId": uid},
            "webhookEventId": "01" + uuid.uuid4().hex[:24].upper(),
            "deliveryContext": {"isRedelivery": False},
            "replyToken": token,
        }
        body = json.dumps({"destination": DESTINATION, "events": [event]}, separators=(",", ":")).encode()
        hooks.append(Webhook(uid, i, token, body, sign(secret, body)))
    return hooks


def _postback(data: str) -> dict:
    return {"type": "postback", "postback": {"data": data}}


@dataclass
class Sent:
    user: str
    index: int
    token: str
    sent: float  # time.time() just before the request was written
    seconds: float  # until the whole response was read
    status: int  # HTTP status, 0 for no answer
    error: str = ""


@dataclass
class LoadResult:
    sent: list[Sent] = field(default_factory=list)
    started: float = 0.0
    seconds: float = 0.0
    timed_out: bool = False


async def _user(
    session: aiohttp.ClientSession, url: str, hooks: list[Webhook], out: list[Sent], start: float | None,
    pace: float | None,
) -> None:
    loop = asyncio.get_running_loop()
    for i, hook in enumerate(hooks):
        if start is not None and pace is not None:
            await asyncio.sleep(max(0.0, start + i * pace - loop.time()))
        headers = {"Content-Type": "application/json; charset=utf-8", "X-Line-Signature": hook.signature}
        t0, p0 = time.time(), time.perf_counter()
        status, error = 0, ""
        try:
            async with session.post(url, data=hook.body, headers=headers) as res:
                await res.read()
                status = res.status
        except (TimeoutError, aiohttp.ClientError) as e:
            error = type(e).__name__
        out.append(Sent(hook.user, hook.index, hook.token, t0, time.perf_counter() - p0, status, error))


async def _run(url: str, users: list[list[Webhook]], deadline: float, pace: float | None) -> LoadResult:
    result = LoadResult()
    # flat out, each user keeps its connection (back to back requests); paced, each event comes on a
    # new connection, as LINE's deliveries of different events do (no race with gunicorn's 2 s keep-alive)
    connector = aiohttp.TCPConnector(limit=len(users) + 10, force_close=pace is not None)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        result.started = time.time()
        p0 = time.perf_counter()
        t0 = asyncio.get_running_loop().time()
        tasks = [
            asyncio.ensure_future(
                _user(session, url, hooks, result.sent, t0 + (n * pace / len(users) if pace else 0), pace)
            )
            for n, hooks in enumerate(users)
        ]
        _done, pending = await asyncio.wait(tasks, timeout=deadline)
        result.seconds = time.perf_counter() - p0
        if pending:
            result.timed_out = True
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
    return result


def run_load(url: str, users: list[list[Webhook]], deadline: float = 300.0, pace: float | None = None) -> LoadResult:
    """Send every user's webhooks (users concurrently, each user's in order); at most ``deadline`` s."""
    return asyncio.run(_run(url, users, deadline, pace))


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    s = sorted(values)
    return s[max(0, min(len(s) - 1, math.ceil(p / 100 * len(s)) - 1))]
