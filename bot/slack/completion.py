"""Completing a Workflow Builder step run, from the worker: ``functions.completeSuccess`` / ``completeError``.

The web tier decides how a run of the step ends (:mod:`bot.slack.listeners.workflow`) and commits that as
a job of one ``slack_step`` output, queued once per run (a ledger mark in the team's hash slot); the
worker sends it here, through the one delivery path, like every other Slack call but opening a modal.

The output carries the run's ``function_execution_id``, either the outputs (an object) or the reason
of the error (plain text), and the run's own token: the ``bot_access_token`` Slack sends with the step's
event and with each interaction of its modal (a workflow token, valid while the run is running, at most
15 minutes after it was issued). It is sent with that token first. A token Slack refuses (expired: the
worker was away for long) is followed by the workspace's bot token (:mod:`bot.slack.tokens`:
``SLACK_BOT_TOKEN``, or the OAuth installation's), which the method accepts too ("no scope required").

Exactly once: Slack has no idempotency key here, but it answers ``execution_not_in_running_state`` for a
run that is no longer running. So an attempt whose outcome is unknown (a timeout, a 5xx) is simply
retried: the retry either completes the run or learns that it is complete, and counts as delivered.
"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.ratelimit import retry_after
from bot.slack.tokens import TokenBusy, TokenSource
from bot.worker import DELIVERED, FAILED, RETRY, Attempt, Outcome

log = logging.getLogger(__name__)

STEP_OUTPUT = "slack_step"  # a job output: {type, execution, token, outputs | error}
MAX_ERROR_CHARS = 1000  # a reason longer than this is cut (it is one short sentence or two)
# The run is over: completed (by an earlier attempt whose answer was lost), failed, or ended by Slack.
DONE = "execution_not_in_running_state"
# A token Slack refused: the next one is tried (the run's token expires; the workspace's may have changed).
REFUSED = {"invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive", "not_allowed_token_type"}
# Nothing a retry could change: the operator's (parked).
PERMANENT = {"function_execution_not_found", "parameter_validation_failed", "invalid_arguments", "missing_scope"}


def completion(execution_id: str, token: str | None, *, outputs: dict[str, Any] | None = None,
               error: str | None = None) -> dict[str, Any]:
    """The output that completes the run ``execution_id``: with ``outputs`` (success) or ``error``."""
    if (outputs is None) == (error is None):
        raise ValueError("a step completes with outputs or with an error, one of them")
    out: dict[str, Any] = {"type": STEP_OUTPUT, "execution": execution_id, "token": token or ""}
    if outputs is not None:
        out["outputs"] = dict(outputs)
    else:
        out["error"] = str(error)[:MAX_ERROR_CHARS]
    return out


async def _send(client: AsyncWebClient, out: dict[str, Any]) -> None:
    if "error" in out:
        await client.functions_completeError(function_execution_id=str(out["execution"]), error=str(out["error"]))
    else:
        await client.functions_completeSuccess(function_execution_id=str(out["execution"]),
                                               outputs=dict(out.get("outputs") or {}))


async def deliver(attempt: Attempt, workspace: str, out: dict[str, Any], tokens: TokenSource, base_url: str,
                  timeout: float) -> Outcome:
    """One attempt at completing the run: with the run's token, then (refused) the workspace's."""
    kind = "error" if "error" in out else "success"
    candidates = [str(out["token"])] if out.get("token") else []
    for tried in range(2):
        if tried == len(candidates):  # the run's token refused (or none): the workspace's bot token
            try:
                token = await tokens.token(attempt.redis, workspace)
            except TokenBusy:
                return Outcome(RETRY, "slack: the workspace's token is being refreshed", 1.0)
            if token is None or token in candidates:
                break
            candidates.append(token)
        client = AsyncWebClient(token=candidates[tried], base_url=base_url, timeout=timeout)  # type: ignore[arg-type]
        try:
            await _send(client, out)
            return Outcome(DELIVERED, f"step completed ({kind})")
        except SlackApiError as e:
            status = e.response.status_code
            error = str(e.response.get("error", ""))
            if error == DONE:
                return Outcome(DELIVERED, "step run no longer running (completed before)")
            if error in REFUSED:
                continue
            if status == 429 or error == "ratelimited":
                headers = e.response.headers or {}
                return Outcome(RETRY, "slack: ratelimited", retry_after(headers.get("Retry-After")
                                                                        or headers.get("retry-after")))
            if error in PERMANENT:
                return Outcome(FAILED, f"slack: {error}")
            return Outcome(RETRY, f"slack: {error or status}")
        except (TimeoutError, aiohttp.ClientError) as e:  # unknown outcome: the retry finds out (DONE)
            return Outcome(RETRY, f"slack: {type(e).__name__}")
    return Outcome(FAILED, f"slack: no token completes the step run in workspace {workspace[:32]} "
                           "(the run's expired; the app uninstalled?)")
