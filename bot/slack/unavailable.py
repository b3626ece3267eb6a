"""Redis down: every Slack command, button and modal submission is told so, at once.

A listener acks first and works after (Bolt's thread pool), so while Redis does not answer a slash
command would be acknowledged with an empty 200 and then fail unseen; and the worker, which sends every
message, cannot be reached (its jobs live in Redis). So the request is answered before any listener
runs, in a form Slack shows without a call from us where there is one:

- a slash command: an ephemeral message in the HTTP response itself;
- a modal submission: the modal stays open with the message under its first input (``errors``), or,
  a modal without inputs, a small modal pushed on top saying so (``push``);
- a button in a message: the message as an ephemeral through the action's ``response_url`` (the only
  way to answer a button; it needs no token, so it works with OAuth too, where the workspace's token
  is in Redis), with a short timeout; the request itself gets its empty 200.

:class:`AnswerWhileStoreDown` checks Redis (one PING) for those requests; :class:`bot.slack.oauth.RefuseUninstalled`
(many workspaces) answers the same way when the installation cannot be read. Events get 503 as before
(:class:`bot.slack.listeners.middleware.OncePerEvent`): Slack retries them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import BoltRequest, BoltResponse
from slack_bolt.middleware import Middleware
from slack_sdk.webhook import WebhookClient

from bot.slack import blocks as slack_blocks
from bot.slack.payload import obj
from bot.slack.texts import t
from conversations.errors import StoreUnavailable
from conversations.redis_ops import runner

log = logging.getLogger(__name__)

RESPONSE_URL_TIMEOUT = 2  # seconds: Slack waits 3 s for the request's own answer
NO_STORE_ACTIONS = (slack_blocks.CONSULT_URL_ACTION,)  # buttons whose click needs nothing from Redis (a link)


def needs_answer(body: Any) -> bool:
    """A request a person is waiting on: a slash command, a modal submission, a button (not a link)."""
    if not isinstance(body, dict):
        return False
    if isinstance(body.get("command"), str):
        return True
    kind = body.get("type")
    if kind == "view_submission":
        return True
    if kind == "block_actions":
        actions = body.get("actions") or []
        return not all(isinstance(a, dict) and a.get("action_id") in NO_STORE_ACTIONS for a in actions)
    return False


def _first_input(view: dict[str, Any]) -> str | None:
    for block in view.get("blocks") or []:
        if isinstance(block, dict) and block.get("type") == "input" and isinstance(block.get("block_id"), str):
            return str(block["block_id"])
    return None


def notice_modal(locale: str) -> dict[str, Any]:
    return {"type": "modal", "title": {"type": "plain_text", "text": t(locale, "unavailable_title")},
            "close": {"type": "plain_text", "text": t(locale, "close")},
            "blocks": [{"type": "section", "text": {"type": "plain_text", "text": t(locale, "unavailable")}}]}


def answer(body: Any, locale: str, why: str = "store unavailable") -> BoltResponse:
    """Tell the person behind ``body`` that the bot is unavailable for now (see the module's doc); ``why``
    goes to the log (the store's error, or a token being refreshed)."""
    text = t(locale, "unavailable")
    kind = body.get("type") if isinstance(body, dict) else None
    if isinstance(body, dict) and isinstance(body.get("command"), str):
        log.error("slack: %s answered \"temporarily unavailable\": %s",
                  str(body["command"])[:20], why)
        return BoltResponse(status=200, body={"response_type": "ephemeral", "text": text})
    if kind == "view_submission":
        log.error("slack: a modal submission answered \"temporarily unavailable\": %s", why)
        block = _first_input(obj(body.get("view")))
        if block is not None:
            return BoltResponse(status=200, body={"response_action": "errors", "errors": {block: text}})
        return BoltResponse(status=200, body={"response_action": "push", "view": notice_modal(locale)})
    if kind == "block_actions":
        url = body.get("response_url")
        if isinstance(url, str) and url:
            log.error("slack: a button answered \"temporarily unavailable\": %s", why)
            _respond(url, text)
        else:
            log.error("slack: a button (no response_url) could not be answered: %s", why)
        return BoltResponse(status=200, body="")
    return BoltResponse(status=503, body="store unavailable")


def _respond(url: str, text: str) -> None:
    try:
        WebhookClient(url, timeout=RESPONSE_URL_TIMEOUT).send(text=text, response_type="ephemeral",
                                                              replace_original=False)
    except Exception as e:  # Slack unreachable too: nothing more to do, the click stays unanswered
        log.warning("slack: the \"temporarily unavailable\" answer could not be sent (%s)", type(e).__name__)


class AnswerWhileStoreDown(Middleware):
    """Before any listener: a command, a button or a modal submission while Redis does not answer gets
    :func:`answer` (one PING per such request; events pass on)."""

    def __init__(self, redis_client: Any, locale: str) -> None:
        self.redis = runner(redis_client)
        self.locale = locale

    def process(self, *, req: BoltRequest, resp: BoltResponse, next: Callable[[], BoltResponse]) -> Any:
        if not needs_answer(req.body):
            return next()
        try:
            self.redis.ping()
        except StoreUnavailable as e:
            return answer(req.body, self.locale, f"store unavailable ({e})")
        return next()
