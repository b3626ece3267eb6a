"""Fast fakes of the LINE Messaging API and the Slack Web API for the benchmarks.

One asyncio (aiohttp) process serves both on 127.0.0.1. Unlike the test fakes (tests/fakes/), they do
not validate requests against the specs (that costs 2-3 ms a request under a lock, which would be
the bottleneck here); they keep what the figures need:

- the time each request arrived (before the added delay), by reply token, user and channel;
- a request is decided and recorded when it arrives, before the added delay: a message LINE accepted
  stays delivered even if the client gives up waiting for the answer (a delay above the SDK's 10 s
  read timeout), as with the real API, where a timed-out request may well have been delivered;
- LINE semantics that decide "exactly once": a reply token works once (then 400 "Invalid reply
  token"), an ``X-Line-Retry-Key`` is accepted once (then 409);
- an added delay before every API answer (``delay``, seconds), the API's latency;
- rate limits, as token buckets (``rate`` per second, ``burst``): LINE per endpoint, Slack
  chat.postMessage per channel and workspace-wide. Past a limit the answer is 429 with
  ``Retry-After`` (whole seconds, at least 1) and nothing is delivered.

Control (JSON): ``POST /_bench/config``, ``POST /_bench/reset``, ``GET /_bench/records``; and the
websocket ``/_bench/stream``, which gets one text message per reply or push accepted, as it arrives:
``{"r": reply token, "t": arrival}`` or ``{"p": user ID, "t": arrival}`` (the closed-loop users wait
on it).
Run: ``python -m benchmarks.fakes --port P --line-token T --slack-token S`` (prints ``ready``).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import time
from collections import Counter, defaultdict
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

REPLY = "/v2/bot/message/reply"
PUSH = "/v2/bot/message/push"
MULTICAST = "/v2/bot/message/multicast"


class Bucket:
    """The server side of a rate limit: never waits; says how long until the next token."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = float(rate), float(burst)
        self.tokens, self.stamp = self.burst, time.monotonic()

    def take(self) -> float:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class State:
    def __init__(self, line_token: str, slack_token: str) -> None:
        self.line_auth = f"Bearer {line_token}"
        self.slack_auth = f"Bearer {slack_token}"
        self.delay = 0.0
        self.line_limits: dict[str, tuple[float, float]] = {}  # path -> (rate, burst)
        self.slack_channel_limit: tuple[float, float] | None = None
        self.slack_workspace_limit: tuple[float, float] | None = None
        self.ids = itertools.count(1)
        self.streams: set[web.WebSocketResponse] = set()
        self.reset()

    def reset(self) -> None:
        self.line_buckets: dict[str, Bucket] = {p: Bucket(*v) for p, v in self.line_limits.items()}
        self.channel_buckets: dict[str, Bucket] = {}
        self.workspace_bucket = Bucket(*self.slack_workspace_limit) if self.slack_workspace_limit else None
        self.replies: dict[str, list[Any]] = {}  # token -> [first ok time, ok count, refused count]
        self.pushes: Counter[str] = Counter()  # user -> pushes delivered
        self.push_times: dict[str, list[float]] = defaultdict(list)
        self.multicast: Counter[str] = Counter()  # user -> multicasts received
        self.retry_keys: set[str] = set()
        self.posts: dict[str, list[dict[str, Any]]] = defaultdict(list)  # channel -> posts
        self.status: Counter[str] = Counter()  # "<endpoint> <status>" -> count
        self.timeline: list[tuple[float, str, int]] = []  # (arrival, endpoint, status) of limited endpoints

    def configure(self, cfg: dict[str, Any]) -> None:
        if "delay" in cfg:
            self.delay = float(cfg["delay"])
        if "line_limits" in cfg:
            self.line_limits = {k: (float(v[0]), float(v[1])) for k, v in cfg["line_limits"].items()}
        if "slack_channel_limit" in cfg:
            v = cfg["slack_channel_limit"]
            self.slack_channel_limit = (float(v[0]), float(v[1])) if v else None
        if "slack_workspace_limit" in cfg:
            v = cfg["slack_workspace_limit"]
            self.slack_workspace_limit = (float(v[0]), float(v[1])) if v else None
        self.reset()

    def records(self) -> dict[str, Any]:
        return {
            "replies": self.replies,
            "pushes": dict(self.pushes),
            "push_times": dict(self.push_times),
            "multicast": dict(self.multicast),
            "posts": {ch: [{"t": p["t"], "id": p["id"]} for p in ps] for ch, ps in self.posts.items()},
            "status": dict(self.status),
            "timeline": self.timeline,
        }

    async def notify(self, note: str) -> None:
        for ws in list(self.streams):
            try:
                await ws.send_str(note)
            except (ConnectionError, RuntimeError):
                self.streams.discard(ws)


def _sent(n: int, state: State) -> list[dict[str, str]]:
    return [{"id": str(next(state.ids)), "quoteToken": "q"} for _ in range(max(1, n))]


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), content_type="application/json", headers=headers)


def _retry_after(wait: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(wait)))}


async def line_api(request: web.Request) -> web.Response:
    state: State = request.app["state"]
    arrived = time.time()
    path = request.path
    body = await request.read()
    delay = state.delay
    notes: list[str] = []
    answer = _line(state, request.method, path, request.headers, body, arrived, notes)  # decided on arrival
    state.status[f"{path} {answer.status}"] += 1
    for note in notes:
        await state.notify(note)
    if delay:
        await asyncio.sleep(delay)
    return answer


def _line(state: State, method: str, path: str, headers: Any, body: bytes, arrived: float,
          notes: list[str]) -> web.Response:
    if headers.get("Authorization") != state.line_auth:
        return _json(401, {"message": "Authentication failed."})
    if method == "GET" and path == "/v2/bot/message/quota":
        return _json(200, {"type": "none"})
    if method == "GET" and path == "/v2/bot/message/quota/consumption":
        return _json(200, {"totalUsage": 0})
    if method != "POST" or path not in (REPLY, PUSH, MULTICAST):
        return _json(404, {"message": "Not found"})
    bucket = state.line_buckets.get(path)
    if bucket is not None:
        wait = bucket.take()
        state.timeline.append((arrived, path, 429 if wait else 200))
        if wait:
            return _json(429, {"message": "The API rate limit has been exceeded. Try again later."},
                         _retry_after(wait))
    data = json.loads(body)
    messages = data.get("messages") or []
    if path == REPLY:
        token = str(data.get("replyToken"))
        rec = state.replies.setdefault(token, [None, 0, 0])
        if rec[1]:
            rec[2] += 1
            return _json(400, {"message": "Invalid reply token"})
        rec[0], rec[1] = arrived, 1
        notes.append(json.dumps({"r": token, "t": arrived}))
        return _json(200, {"sentMessages": _sent(len(messages), state)})
    key = headers.get("X-Line-Retry-Key")
    if key is not None:
        if key in state.retry_keys:
            return _json(409, {"message": "The retry key is already accepted"})
        state.retry_keys.add(key)
    if path == PUSH:
        state.pushes[data["to"]] += 1
        state.push_times[data["to"]].append(arrived)
        notes.append(json.dumps({"p": data["to"], "t": arrived}))
        return _json(200, {"sentMessages": _sent(len(messages), state)})
    recipients = data.get("to") or []
    if len(recipients) > 500:
        return _json(400, {"message": "The request body has 1 error(s)"})
    for user in recipients:
        state.multicast[user] += 1
    return _json(200, {})


async def slack_api(request: web.Request) -> web.Response:
    state: State = request.app["state"]
    arrived = time.time()
    method = request.match_info["method"]
    raw = await request.read()
    args: dict[str, Any] = dict(parse_qsl(request.query_string))
    if raw:
        if request.content_type == "application/json":
            args.update(json.loads(raw))
        else:
            args.update(parse_qsl(raw.decode()))
    delay = state.delay
    status, body, headers = _slack(state, method, request.headers, args, arrived)  # decided on arrival
    state.status[f"{method} {status}"] += 1
    if delay:
        await asyncio.sleep(delay)
    return _json(status, body, headers)


def _slack(
    state: State, method: str, headers: Any, args: dict[str, Any], arrived: float
) -> tuple[int, dict[str, Any], dict[str, str] | None]:
    if headers.get("Authorization") != state.slack_auth and args.get("token") != state.slack_auth[7:]:
        return 200, {"ok": False, "error": "invalid_auth"}, None
    if method == "auth.test":
        return 200, {"ok": True, "user_id": "UBOT", "team_id": "T1", "bot_id": "BBOT"}, None
    if method == "conversations.open":
        return 200, {"ok": True, "channel": {"id": "D" + str(args.get("users", "")).split(",")[0]}}, None
    if method == "conversations.history":
        posts = state.posts.get(str(args.get("channel")), [])[-50:]
        return 200, {"ok": True, "messages": [p["message"] for p in reversed(posts)], "has_more": False}, None
    if method != "chat.postMessage":
        return 200, {"ok": False, "error": "unknown_method"}, None
    channel = str(args.get("channel"))
    waits = []
    if state.slack_channel_limit:
        bucket = state.channel_buckets.get(channel)
        if bucket is None:
            bucket = state.channel_buckets[channel] = Bucket(*state.slack_channel_limit)
        waits.append(bucket.take())
    if state.workspace_bucket is not None and not any(waits):
        waits.append(state.workspace_bucket.take())
    wait = max(waits, default=0.0)
    state.timeline.append((arrived, "chat.postMessage", 429 if wait else 200))
    if wait:
        return 429, {"ok": False, "error": "ratelimited"}, _retry_after(wait)
    metadata = args.get("metadata")
    if isinstance(metadata, str):
        metadata = json.loads(metadata)
    ts = f"{int(arrived)}.{next(state.ids):06d}"
    message = {"type": "message", "ts": ts, "text": args.get("text", ""), "metadata": metadata or {}}
    entry_id = ((metadata or {}).get("event_payload") or {}).get("id")
    state.posts[channel].append({"t": arrived, "id": entry_id, "message": message})
    return 200, {"ok": True, "channel": channel, "ts": ts, "message": message}, None


async def control_config(request: web.Request) -> web.Response:
    request.app["state"].configure(await request.json())
    return _json(200, {"ok": True})


async def control_reset(request: web.Request) -> web.Response:
    request.app["state"].reset()
    return _json(200, {"ok": True})


async def control_records(request: web.Request) -> web.Response:
    return _json(200, request.app["state"].records())


async def control_stream(request: web.Request) -> web.WebSocketResponse:
    state: State = request.app["state"]
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    state.streams.add(ws)
    try:
        async for _ in ws:  # nothing is expected from the client; this waits until it goes
            pass
    finally:
        state.streams.discard(ws)
    return ws


def make_app(line_token: str, slack_token: str) -> web.Application:
    app = web.Application(client_max_size=8 * 1024 * 1024)
    app["state"] = State(line_token, slack_token)
    app.router.add_post("/_bench/config", control_config)
    app.router.add_post("/_bench/reset", control_reset)
    app.router.add_get("/_bench/records", control_records)
    app.router.add_get("/_bench/stream", control_stream)
    app.router.add_route("*", "/v2/bot/{tail:.*}", line_api)
    app.router.add_post("/api/{method}", slack_api)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--line-token", required=True)
    parser.add_argument("--slack-token", required=True)
    args = parser.parse_args()

    async def serve() -> None:
        runner = web.AppRunner(make_app(args.line_token, args.slack_token), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", args.port, backlog=2048).start()
        print("ready", flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
