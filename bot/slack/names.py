"""The worker's side of the console's Slack names (:mod:`conversations.slack_names`): take the names the
console asked for and look each up in Slack, a person with ``users.info`` (their display name, else their
real name), a channel with ``conversations.info``, with the workspace's token (the transport's), and
keep it with a TTL. Run by the worker as a chore every few seconds (bot/app.py wires it); the web tier
never calls Slack for a name.
"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError

from bot.slack.tokens import TokenBusy
from bot.slack.transport import SlackTransport
from conversations.keys import SLACK_NAMES_WANTED
from conversations.redis_ops import async_runner
from conversations.slack_names import is_channel, keep, take_wanted

log = logging.getLogger(__name__)
BATCH = 20  # names looked up per run (Slack's users.info and conversations.info allow far more a minute)


class SlackNameFetcher:
    def __init__(self, transport: SlackTransport) -> None:
        self.transport = transport

    async def __call__(self, redis: Any) -> int:
        """Look up the names wanted; a lookup that could not be made now (a token being refreshed,
        rate limited, Slack unreachable) is put back for the next run. Returns the names kept."""
        wanted = await take_wanted(redis, BATCH)
        kept = 0
        for i, (workspace, slack_id) in enumerate(wanted):
            try:
                name = await self._lookup(redis, workspace, slack_id)
            except _Later:
                later = [f"{w}:{s}" for w, s in wanted[i:]]
                await async_runner(redis).sadd(SLACK_NAMES_WANTED, *later)
                break
            await keep(redis, workspace, slack_id, name)
            kept += 1
        return kept

    async def _lookup(self, redis: Any, workspace: str, slack_id: str) -> str | None:
        try:
            token = await self.transport.tokens.token(redis, workspace)
        except TokenBusy:
            raise _Later from None
        if token is None:  # not installed (any more): nothing to ask
            return None
        client = self.transport.client_for(workspace, token)
        try:
            if is_channel(slack_id):
                channel = (await client.conversations_info(channel=slack_id))["channel"]
                return str(channel.get("name") or "") or None
            user = (await client.users_info(user=slack_id))["user"]
            profile = user.get("profile") or {}
            return str(profile.get("display_name") or profile.get("real_name") or user.get("real_name")
                       or user.get("name") or "") or None
        except SlackApiError as e:
            if e.response.status_code == 429 or e.response.status_code >= 500:
                raise _Later from None
            log.info("slack names: %s refused: %s", "conversations.info" if is_channel(slack_id) else "users.info",
                     str(e.response.get("error", ""))[:40])
            return None
        except (TimeoutError, aiohttp.ClientError):
            raise _Later from None


class _Later(Exception):
    """The lookup could not be made now; the name stays wanted."""
