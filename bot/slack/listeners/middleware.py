"""Global middleware: hand the dependencies to the listeners, tell a person at once when Redis is down
(:mod:`bot.slack.unavailable`), and handle each event Slack retries once."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from slack_bolt import App, BoltRequest, BoltResponse
from slack_bolt.middleware import Middleware

from bot.slack.deps import Deps
from bot.slack.unavailable import AnswerWhileStoreDown
from conversations import keys
from conversations.errors import StoreUnavailable
from conversations.redis_ops import runner

log = logging.getLogger(__name__)
SEEN_TTL = 86400


class ProvideDeps(Middleware):
    """Puts the dependencies in the request context: Bolt injects them into a listener's ``deps``.
    Their ``client`` is the request's (Bolt's authorization gave it the workspace's token: with OAuth,
    each workspace's own)."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def process(self, *, req: BoltRequest, resp: BoltResponse, next: Callable[[], BoltResponse]) -> Any:
        client = req.context.client
        req.context["deps"] = replace(self.deps, client=client) if client is not None else self.deps
        return next()


class OncePerEvent(Middleware):
    """An event Slack redelivers (X-Slack-Retry-Num, same event_id) is handled once."""

    def __init__(self, redis_client: Any, ttl: int = SEEN_TTL) -> None:
        self.redis = runner(redis_client)
        self.ttl = ttl

    def process(self, *, req: BoltRequest, resp: BoltResponse, next: Callable[[], BoltResponse]) -> Any:
        body = req.body or {}
        event_id = body.get("event_id") if isinstance(body, dict) else None
        if body.get("type") == "event_callback" and isinstance(event_id, str) and event_id:
            try:
                first = self.redis.set(keys.slack_seen(event_id), "1", nx=True, ex=self.ttl)
            except StoreUnavailable:
                return BoltResponse(status=503, body="store unavailable")
            if not first:
                log.info("slack: event %s already handled (retry %s)", event_id[:12],
                         req.headers.get("x-slack-retry-num", ["?"])[0])
                return BoltResponse(status=200, body="")
        return next()


def register(app: App, deps: Deps) -> None:
    app.use(ProvideDeps(deps))
    app.use(AnswerWhileStoreDown(deps.redis, deps.locale))  # Redis down: a command or click is told so at once
    app.use(OncePerEvent(deps.redis))
