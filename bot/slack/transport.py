"""Delivers outbox entries to Slack: a DM to a user (the diagnosis) or a post in a team channel.

Slack has no idempotency key, so each post carries message metadata with the entry's id. A
recovery (the process died after an attempt whose outcome is unknown) first looks for that id in
the conversation's recent history and only posts if it is not there: a retry is never a duplicate.

Pacing (client side, per process, bot.ratelimit): chat.postMessage allows about one message per
second per channel with short bursts, and a workspace-wide limit. Posts to a channel (reminders,
KPI results) wait for a token of the channel (1/s, bursts of 5) and of the workspace
(``SLACK_RATE_PER_SECOND``, default 1, bursts of ``SLACK_RATE_BURST``, default 20). A DM answers
the user's own tap, one post per tap, and is not paced (as a LINE reply is not). A paced post
refused with a short Retry-After (up to ``bot.ratelimit.MAX_HOLD``) holds the buckets for it and is
tried once more after it, in the same call, so the posts after it wait instead of being refused too
and no other process's retry competes for the next slot; a longer one is left to the outbox's backoff.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.outbox import DELIVERED, FAILED, RETRY, Outcome
from bot.ratelimit import MAX_HOLD, Clock, KeyedBuckets, Sleep, burst_from_env, rate_from_env
from bot.slack.blocks import diagnosis_message
from conversations.content import Script

log = logging.getLogger(__name__)
EVENT_TYPE = "crmbot_delivery"
PERMANENT = {"channel_not_found", "not_in_channel", "is_archived", "account_inactive", "user_not_found",
             "cannot_dm_bot", "invalid_auth", "not_authed", "missing_scope", "restricted_action",
             "invalid_blocks", "msg_too_long", "no_text"}


CHANNEL_RATE = 1.0  # chat.postMessage: about one message per second per channel ...
CHANNEL_BURST = 5.0  # ... "short bursts >1 allowed"
WORKSPACE_RATE = 1.0  # SLACK_RATE_PER_SECOND: Slack's documented message posting rate
WORKSPACE_BURST = 20.0  # SLACK_RATE_BURST


@dataclass
class SlackLimits:
    """Client-side pacing of chat.postMessage: per channel and per workspace (None: not limited)."""

    channel: KeyedBuckets | None
    workspace: KeyedBuckets | None

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, clock: Clock = time.monotonic, sleep: Sleep = time.sleep
    ) -> SlackLimits:
        rate = rate_from_env("SLACK_RATE_PER_SECOND", WORKSPACE_RATE, env)
        burst = burst_from_env("SLACK_RATE_BURST", WORKSPACE_BURST, env)
        return cls(
            KeyedBuckets(CHANNEL_RATE, CHANNEL_BURST, clock=clock, sleep=sleep),
            KeyedBuckets(rate, burst, clock=clock, sleep=sleep) if rate is not None else None,
        )

    def before_post(self, workspace: str, channel: str) -> float:
        """Wait for the channel's token, then the workspace's. Returns the seconds waited."""
        waited = self.channel.acquire(channel) if self.channel is not None else 0.0
        if self.workspace is not None:
            waited += self.workspace.acquire(workspace)
        return waited

    def refused(self, workspace: str, channel: str, retry_after: float | None) -> bool:
        """Slack answered 429: nothing more to this channel or workspace before Retry-After.
        Returns False (nothing held) for a Retry-After longer than MAX_HOLD: an outage, not pacing,
        which the outbox's backoff waits out."""
        seconds = retry_after if retry_after and retry_after > 0 else 1.0
        if seconds > MAX_HOLD:
            return False
        if self.channel is not None:
            self.channel.hold(channel, seconds)
        if self.workspace is not None:
            self.workspace.hold(workspace, seconds)
        return True


def split_to(to: str) -> tuple[str, str]:
    """Outbox address "<workspace>.<user or channel>" -> (workspace, id)."""
    workspace, _, target = to.partition(".")
    return workspace, target


class SlackTransport:
    channel = "slack"

    def __init__(self, client: WebClient, script: Script, *, limits: SlackLimits | None = None) -> None:
        self.client = client
        self.script = script
        self.limits = limits if limits is not None else SlackLimits.from_env()

    def _conversation(self, target: str) -> str:
        if target.startswith(("U", "W")):
            return self.client.conversations_open(users=target)["channel"]["id"]
        return target

    def _render(self, outputs: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
        if len(outputs) == 1 and outputs[0]["type"] == "slack_post":
            return outputs[0]["text"], outputs[0]["blocks"]
        return diagnosis_message(self.script, outputs)

    def _already_posted(self, channel: str, entry_id: str) -> bool:
        res = self.client.conversations_history(channel=channel, limit=50, include_all_metadata=True)
        for msg in res.get("messages", []):
            meta = msg.get("metadata") or {}
            if meta.get("event_type") == EVENT_TYPE and (meta.get("event_payload") or {}).get("id") == entry_id:
                return True
        return False

    def _post(self, channel: str, text: str, blocks: list[dict[str, Any]], entry_id: str) -> None:
        self.client.chat_postMessage(
            channel=channel,
            text=text,
            blocks=blocks,
            metadata={"event_type": EVENT_TYPE, "event_payload": {"id": entry_id}},
        )

    def _paced_post(self, workspace: str, channel: str, text: str, blocks: list[dict[str, Any]], entry_id: str) -> None:
        """Post when the channel's and the workspace's buckets allow. Refused with a short Retry-After
        (a 429 posts nothing), the buckets are held for it and the post is tried once more."""
        for attempt in (1, 2):
            self.limits.before_post(workspace, channel)
            try:
                self._post(channel, text, blocks, entry_id)
                return
            except SlackApiError as e:
                limited, retry_after = _ratelimited(e)
                if not limited or not self.limits.refused(workspace, channel, retry_after) or attempt == 2:
                    raise

    def deliver(self, entry: Mapping[str, Any], *, recovering: bool, now: float) -> Outcome:
        workspace, target = split_to(entry["to"])
        dm = target.startswith(("U", "W", "D"))  # a reply to the user's own tap: not paced
        channel = target
        try:
            channel = self._conversation(target)
            if recovering and self._already_posted(channel, entry["id"]):
                return Outcome(DELIVERED, "already posted (found by metadata)")
            text, blocks = self._render(entry["out"])
            if dm:
                self._post(channel, text, blocks, entry["id"])
            else:
                self._paced_post(workspace, channel, text, blocks, entry["id"])
            return Outcome(DELIVERED, "posted")
        except SlackApiError as e:
            status = e.response.status_code
            error = str(e.response.get("error", ""))
            limited, retry_after = _ratelimited(e)
            if limited:
                return Outcome(RETRY, "slack: ratelimited", retry_after)
            if status >= 500:
                return Outcome(RETRY, f"slack: HTTP {status}")
            if error in PERMANENT:
                return Outcome(FAILED, f"slack: {error}")
            return Outcome(RETRY, f"slack: {error or status}")
        except Exception as e:  # network: unknown outcome; the recovery path checks before posting again
            return Outcome(RETRY, f"slack: {type(e).__name__}")


def _ratelimited(e: SlackApiError) -> tuple[bool, float | None]:
    """(refused for the rate, its Retry-After in seconds if given)."""
    if e.response.status_code == 429 or str(e.response.get("error", "")) == "ratelimited":
        headers = e.response.headers or {}
        return True, _seconds(headers.get("Retry-After") or headers.get("retry-after"))
    return False, None


def _seconds(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
