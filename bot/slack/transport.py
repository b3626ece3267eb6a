"""Delivers outbox entries to Slack: a DM to a user (the diagnosis) or a post in a team channel.

Slack has no idempotency key, so each post carries message metadata with the entry's id. A
recovery (the process died after an attempt whose outcome is unknown) first looks for that id in
the conversation's recent history and only posts if it is not there: a retry is never a duplicate.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.outbox import DELIVERED, FAILED, RETRY, Outcome
from bot.slack.blocks import diagnosis_message
from conversations.content import Script

log = logging.getLogger(__name__)
EVENT_TYPE = "crmbot_delivery"
PERMANENT = {"channel_not_found", "not_in_channel", "is_archived", "account_inactive", "user_not_found",
             "cannot_dm_bot", "invalid_auth", "not_authed", "missing_scope", "restricted_action",
             "invalid_blocks", "msg_too_long", "no_text"}


def split_to(to: str) -> tuple[str, str]:
    """Outbox address "<workspace>.<user or channel>" -> (workspace, id)."""
    workspace, _, target = to.partition(".")
    return workspace, target


class SlackTransport:
    channel = "slack"

    def __init__(self, client: WebClient, script: Script) -> None:
        self.client = client
        self.script = script

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

    def deliver(self, entry: Mapping[str, Any], *, recovering: bool, now: float) -> Outcome:
        _, target = split_to(entry["to"])
        try:
            channel = self._conversation(target)
            if recovering and self._already_posted(channel, entry["id"]):
                return Outcome(DELIVERED, "already posted (found by metadata)")
            text, blocks = self._render(entry["out"])
            self.client.chat_postMessage(
                channel=channel,
                text=text,
                blocks=blocks,
                metadata={"event_type": EVENT_TYPE, "event_payload": {"id": entry["id"]}},
            )
            return Outcome(DELIVERED, "posted")
        except SlackApiError as e:
            status = e.response.status_code
            error = str(e.response.get("error", ""))
            if status == 429 or error == "ratelimited":
                retry_after = e.response.headers.get("Retry-After") or e.response.headers.get("retry-after")
                return Outcome(RETRY, "slack: ratelimited", float(retry_after) if retry_after else None)
            if status >= 500:
                return Outcome(RETRY, f"slack: HTTP {status}")
            if error in PERMANENT:
                return Outcome(FAILED, f"slack: {error}")
            return Outcome(RETRY, f"slack: {error or status}")
        except Exception as e:  # network: unknown outcome; the recovery path checks before posting again
            return Outcome(RETRY, f"slack: {type(e).__name__}")
