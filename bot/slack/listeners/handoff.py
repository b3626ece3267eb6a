"""The operator's side of a lead's thread (bot/handoff.py): a person's reply in the thread, and 「対応終了」.

Only a person's plain message in a thread of the operator's channel is a reply: a bot's own message
(``bot_id``), any message with a subtype (``bot_message``, ``message_changed``, ``message_deleted``,
``thread_broadcast`` ...) and the thread's parent are not. The core decides the rest (the channel and
workspace, internal notes, which lead, once per message).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt import Ack, App

from bot.slack.brief import END_ACTION
from bot.slack.deps import Deps
from bot.slack.payload import obj, strings
from conversations.errors import InvalidInput, StoreUnavailable

log = logging.getLogger(__name__)
_LINK = re.compile(r"<([^<>|]+)(?:\|([^<>]*))?>")  # Slack's <url|label>, <mailto:..|..>, <@U..>, <#C..|name>, <!here>


def _unlinked(m: re.Match[str]) -> str:
    target, label = m.group(1), m.group(2)
    if target.startswith(("http://", "https://")):
        return f"{label} ({target})" if label and label != target else target
    if target.startswith("mailto:"):
        return label or target.removeprefix("mailto:")
    if target.startswith(("@", "#")):
        return "@" + label if target.startswith("@") and label else (label or "")
    return label or ""  # <!here>, <!channel>, a date: its fallback text


def plain(words: str) -> str:
    """A Slack message's text as the owner should read it on LINE: links as their address (after their
    label), mentions and channel links by name when Slack gave one, special mentions left out, Slack's
    escapes (&amp; &lt; &gt;) undone."""
    out = _LINK.sub(_unlinked, words)
    return out.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&").strip()


def in_a_thread(event: dict[str, Any]) -> bool:
    """The listener's matcher: a message in a thread of a channel (DMs are the diagnosis')."""
    thread = event.get("thread_ts")
    return (isinstance(thread, str) and bool(thread) and event.get("channel_type") in ("channel", "group")
            and thread != event.get("ts"))


def thread_reply(event: dict[str, Any], body: dict[str, Any], deps: Deps) -> None:
    if deps.handoff is None or event.get("subtype") or event.get("bot_id") or event.get("app_id"):
        return
    words = event.get("text")
    ids = strings({"w": body.get("team_id"), "c": event.get("channel"), "t": event.get("thread_ts"),
                   "s": event.get("ts"), "u": event.get("user")}, "w", "c", "t", "s", "u")
    if ids is None or not isinstance(words, str):
        log.warning("slack: a thread message without a team, channel, ts, user or text ignored")
        return
    try:
        done = deps.handoff.reply(team=ids[0], channel=ids[1], thread_ts=ids[2], ts=ids[3], user=ids[4],
                                  words=plain(words))
    except StoreUnavailable as e:
        log.error("slack: store unavailable (%s); the reply is not sent", e)  # (a PING refused the event first:
        return  # bot/slack/unavailable.py answers 503 and Slack retries it; this is a failure mid-way)
    except InvalidInput as e:
        log.warning("slack: a thread reply refused: %s", e)
        return
    log.info("slack: a reply in the operator's thread: %s", done)


def end_button(ack: Ack, body: dict[str, Any], action: dict[str, Any], deps: Deps) -> None:
    ack()
    if deps.handoff is None:
        return
    ids = strings({"w": obj(body.get("team")).get("id"), "c": obj(body.get("channel")).get("id"),
                   "u": obj(body.get("user")).get("id"), "v": action.get("value"), "a": action.get("action_ts")},
                  "w", "c", "u", "v", "a")
    if ids is None:
        log.warning("slack: 「対応終了」 without a team, channel, user, lead or time ignored")
        return
    try:
        done = deps.handoff.end(team=ids[0], channel=ids[1], person_ref=ids[3], by=ids[2], action_id=ids[4])
    except StoreUnavailable as e:
        log.error("slack: store unavailable (%s); the handoff is not ended", e)
        return
    except InvalidInput as e:
        log.warning("slack: 「対応終了」 refused: %s", e)
        return
    log.info("slack: 「対応終了」: %s", done)


def register(app: App) -> None:
    app.event("message", matchers=[in_a_thread])(thread_reply)  # before the diagnosis' message listener
    app.action(END_ACTION)(end_button)
