"""The CRM diagnosis in Slack: /diagnosis starts it in a DM, answered by buttons or typed replies."""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt import Ack, App

from bot.core import InboundEvent
from bot.slack import blocks
from bot.slack.deps import Deps
from bot.slack.listeners.common import subject_of
from bot.slack.payload import obj, strings
from bot.slack.texts import t
from conversations import inputs
from conversations.errors import InvalidInput, StoreUnavailable

log = logging.getLogger(__name__)


def handle(deps: Deps, workspace: str, user: str, event_id: str, inp: inputs.Input) -> None:
    try:
        deps.bot.handle(InboundEvent(subject_of(workspace, user), event_id, inp, timestamp=deps.clock()))
    except StoreUnavailable as e:
        log.error("slack: store unavailable (%s)", e)
    except InvalidInput as e:
        log.warning("slack: refused input: %s", e)


def diagnosis_command(ack: Ack, command: dict[str, Any], deps: Deps) -> None:
    ack(text=t(deps.locale, "dm_only"))
    ids = strings(command, "team_id", "user_id", "trigger_id")
    if ids is None:
        log.warning("slack: /diagnosis without a team, user or trigger ignored")
        return
    handle(deps, ids[0], ids[1], "cmd:" + ids[2], inputs.Input(inputs.START))


def diagnosis_button(ack: Ack, body: dict[str, Any], action: dict[str, Any], deps: Deps) -> None:
    ack()
    user = obj(body.get("user"))
    workspace = user.get("team_id") or obj(body.get("team")).get("id")
    action_ts = action.get("action_ts") or body.get("trigger_id")
    ids = strings({"w": workspace, "u": user.get("id"), "a": action_ts}, "w", "u", "a")
    if ids is None:
        log.warning("slack: a diagnosis button without a team, user or action time ignored")
        return
    handle(deps, ids[0], ids[1], f"act:{ids[2]}", inputs.from_button(action.get("value") or ""))


def direct_message(event: dict[str, Any], body: dict[str, Any], deps: Deps) -> None:
    if event.get("channel_type") != "im" or event.get("subtype") or event.get("bot_id"):
        return
    text = event.get("text") or ""
    ids = strings({"w": body.get("team_id"), "u": event.get("user"), "e": body.get("event_id")}, "w", "u", "e")
    if ids is None or not isinstance(text, str):
        log.warning("slack: a direct message without a team, user, event ID or text ignored")
        return
    handle(deps, ids[0], ids[1], "ev:" + ids[2], inputs.from_text(text, deps.script.keywords, deps.script.glossary))


def booking_link(ack: Ack) -> None:
    ack()  # the browser opens the booking page; Slack still tells us of the click


def register(app: App) -> None:
    app.command("/diagnosis")(diagnosis_command)
    app.action(blocks.CONSULT_URL_ACTION)(booking_link)
    app.action(re.compile(rf"^{blocks.DIAGNOSIS_ACTION}:\d+$"))(diagnosis_button)
    app.event("message")(direct_message)
