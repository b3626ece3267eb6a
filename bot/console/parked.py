"""A parked message in words an operator can act on: who it was for (a name, never a raw ID), what it
was (the kinds of its outputs), what the API answered (a short sentence per common HTTP status, LINE or
Slack error) and what to do about it (requeue once the cause is fixed, or discard).

The words are in :mod:`bot.console.texts` (``for_*``, ``kind_*``, ``why_*``, ``do_*``); this module only
picks them. Names come from what is stored: a LINE follower's display name (the leads' names), a team's
name, a Slack person's or channel's name as the worker cached it (:mod:`conversations.slack_names`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.outbox import Parked
from conversations.analytics import Analytics, person_ref
from conversations.keys import TeamRef
from conversations.slack_names import SlackNames
from conversations.teams import TeamStore

# a Slack error code (its Web API's "error") -> the cause's key in the texts
SLACK_CAUSES: Mapping[str, str] = {
    **dict.fromkeys(("channel_not_found", "is_archived", "user_not_found", "account_inactive", "cannot_dm_bot"),
                    "slack_gone"),
    **dict.fromkeys(("not_in_channel", "user_not_in_channel"), "slack_not_in_channel"),
    **dict.fromkeys(("invalid_auth", "not_authed", "token_revoked", "token_expired", "not installed"), "slack_auth"),
    **dict.fromkeys(("missing_scope", "restricted_action"), "slack_scope"),
    **dict.fromkeys(("invalid_blocks", "msg_too_long", "no_text", "invalid_arguments"), "slack_content"),
    "ratelimited": "rate",
}
HTTP_CAUSES: Mapping[int, str] = {400: "http_400", 401: "http_401", 403: "http_403", 404: "http_404",
                                  409: "http_409", 413: "http_400", 429: "rate"}
NETWORK = frozenset({"TimeoutError", "ClientError", "ClientConnectorError", "ServerDisconnectedError",
                     "ClientOSError", "ConnectionError", "ConnectionResetError", "ReadTimeout", "ConnectTimeout"})
_HTTP = re.compile(r"HTTP (\d{3})")
_EXCEPTION = re.compile(r"\b([A-Z][A-Za-z]+(?:Error|Exception))\b")
_SLACK = re.compile(r"slack: ([a-z_]+)")


@dataclass(frozen=True)
class ParkedView:
    parked: Parked
    who: str  # in words: a name, or what kind of recipient it is
    what: str  # the kinds of message, in words
    cause: str  # the key of the cause: the texts' why_<cause> and do_<cause>
    detail: str  # the technical detail in the cause's sentence (an exception's name), else ""

    @property
    def id(self) -> str:
        return self.parked.id


def cause_of(reason: str) -> tuple[str, str]:
    """What the API (or the code) answered, as a cause's key and a detail for its sentence."""
    low = reason.lower()
    if reason == "unreadable record":
        return "unreadable", ""
    if "outcome unknown" in low:
        return "reply_unknown", ""
    if "not installed" in low:
        return "slack_auth", ""
    if m := _HTTP.search(reason):
        status = int(m.group(1))
        if status >= 500:
            return "server", ""
        return HTTP_CAUSES.get(status, "other"), ""
    if (m := _SLACK.search(reason)) and m.group(1) in SLACK_CAUSES:
        return SLACK_CAUSES[m.group(1)], ""
    if m := _EXCEPTION.search(reason):
        name = m.group(1)
        return ("network", "") if name in NETWORK else ("bug", name)
    return "other", ""


def kinds_in_words(kinds: Sequence[str], t: Mapping[str, str]) -> str:
    words = [t.get(f"kind_{k}", t["kind_other"]) for k in kinds] or [t["kind_other"]]
    return t["list_sep"].join(dict.fromkeys(words))


def describe(parked: Sequence[Parked], redis: Any, t: Mapping[str, str]) -> list[ParkedView]:
    """Every parked message in words, newest first."""
    line_people = [person_ref("line", p.to) for p in parked if p.transport == "line" and p.to]
    names = Analytics(redis).names(line_people) if line_people else {}
    slack_pairs = []
    for p in parked:
        if p.transport == "slack" and "." in p.to and not p.tag.startswith("t:"):  # a team's post: by its name
            workspace, _, target = p.to.partition(".")
            slack_pairs.append((workspace, target))
    slack_names = SlackNames(redis).get(slack_pairs)
    teams = TeamStore(redis)
    out = []
    for p in sorted(parked, key=lambda x: -x.parked_at):
        cause, detail = cause_of(p.reason)
        out.append(ParkedView(p, _who(p, names, slack_names, teams, t), kinds_in_words(p.kinds, t), cause, detail))
    return out


def _who(p: Parked, names: Mapping[str, str], slack_names: Mapping[tuple[str, str], str], teams: TeamStore,
         t: Mapping[str, str]) -> str:
    if p.transport == "line":
        name = names.get(person_ref("line", p.to))
        return t["for_line_named"].format(name=name) if name else t["for_line"]
    if p.transport == "linebatch":
        return t["for_linebatch"]
    if p.transport == "lineforward":
        return t["for_lineforward"]
    if p.transport == "webhook":
        return t["for_webhook"]
    if p.transport == "web":
        return t["for_web"]
    if p.transport == "slack":
        workspace, _, target = p.to.partition(".")
        if p.tag.startswith("t:"):
            try:
                team = teams.get(TeamRef.parse(p.tag[2:]))
            except ValueError:
                team = None
            if team is not None:
                return t["for_team"].format(team=team.name)
        name = slack_names.get((workspace, target))
        if name:
            return t["for_slack_channel" if target.startswith(("C", "G")) else "for_slack_person"].format(name=name)
        return t["for_slack"]
    return t["for_unknown"]
