"""People and channels as Slack names them, cached in Redis for the console (which never calls Slack).

The console reads the names it shows (:meth:`SlackNames.get`) and asks for the ones it lacks: each miss
is added to a set of wanted names (``crmbot:{slacknames}:wanted``). The worker takes a few wanted
names at a time (:func:`take_wanted`), looks each up in Slack (``users.info`` / ``conversations.info``,
bot/slack/names.py) and keeps it with a TTL (:func:`keep`), so a renamed channel or person is seen within a
day. A name Slack would not give is kept as "" for an hour (no lookup storm), and shown as unknown.

Keys, all in the hash slot ``{slacknames}``:

    crmbot:{slacknames}:n:<workspace>:<id>   the name (string, TTL NAME_TTL; "" for a failed lookup, TTL MISS_TTL)
    crmbot:{slacknames}:wanted               "<workspace>:<id>" the console asked for (set)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from conversations.keys import SLACK_NAMES_WANTED, slack_name
from conversations.redis_ops import async_runner, runner, text

NAME_TTL = 86400  # seconds a fetched name is kept: a rename shows within a day
MISS_TTL = 3600  # seconds a failed lookup is remembered before it is tried again
MAX_NAME = 80


def _valid(part: str) -> bool:
    return bool(part) and len(part) <= 32 and part.isalnum()


def is_channel(slack_id: str) -> bool:
    """A conversation (C..., G...: conversations.info), not a person (U..., W...: users.info)."""
    return slack_id.startswith(("C", "G"))


class SlackNames:
    """The console's side (sync)."""

    def __init__(self, client: Any) -> None:
        self.r = runner(client)

    def get(self, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """The names known of these ``(workspace, id)`` pairs (a name never fetched is asked for, once:
        the worker fetches it); a pair without a name yet is left out."""
        wanted = [p for p in dict.fromkeys(pairs) if _valid(p[0]) and _valid(p[1])]
        if not wanted:
            return {}
        got = self.r.mget([slack_name(w, i) for w, i in wanted])
        missing = [f"{w}:{i}" for (w, i), v in zip(wanted, got, strict=True) if v is None]
        if missing:
            self.r.sadd(SLACK_NAMES_WANTED, *missing)
        return {pair: text(v) for pair, v in zip(wanted, got, strict=True) if v}


async def take_wanted(client: Any, count: int = 50) -> list[tuple[str, str]]:
    """Up to ``count`` names the console asked for, taken out of the set (the worker's side)."""
    got = await async_runner(client).spop(SLACK_NAMES_WANTED, count)
    out = []
    for raw in got or []:
        workspace, _, slack_id = text(raw).partition(":")
        if _valid(workspace) and _valid(slack_id):
            out.append((workspace, slack_id))
    return out


async def keep(client: Any, workspace: str, slack_id: str, name: str | None) -> None:
    """Keep a fetched name (None: Slack would not say; remembered as unknown for a while)."""
    clean = " ".join((name or "").split())[:MAX_NAME]
    await async_runner(client).set(slack_name(workspace, slack_id), clean, ex=NAME_TTL if clean else MISS_TTL)
