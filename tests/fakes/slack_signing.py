"""Build and sign requests to a Slack app endpoint exactly as Slack sends them.

Bodies are ``bytes`` ready to POST; :func:`signed_headers` adds Slack's v0 request signature
(https://docs.slack.dev/authentication/verifying-requests-from-slack/). For example::

    body = slash_command_body("/crm", "help", "U1", "C1")
    client.post("/slack/events", data=body, headers=signed_headers(SECRET, body, int(time.time())))
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import secrets
import time
from typing import Any
from urllib.parse import urlencode

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"

TEAM_ID = "T1"
TEAM_DOMAIN = "test"
APP_ID = "A1"
BOT_USER_ID = "UBOT"
BOT_ID = "BBOT"
CHANNEL_NAME = "crm-team"
VERIFICATION_TOKEN = "verification-token"  # the deprecated token Slack still sends in every payload
EPOCH = 1_767_225_600  # 2026-01-01T00:00:00Z, as tests.conftest.FakeClock

_SINGLE_SELECTS = {"static_select", "external_select", "radio_buttons", "overflow"}
_MULTI_SELECTS = {"multi_static_select", "multi_external_select", "checkboxes"}
_SELECTED = {
    "datepicker": "selected_date",
    "timepicker": "selected_time",
    "datetimepicker": "selected_date_time",
    "users_select": "selected_user",
    "multi_users_select": "selected_users",
    "conversations_select": "selected_conversation",
    "multi_conversations_select": "selected_conversations",
    "channels_select": "selected_channel",
    "multi_channels_select": "selected_channels",
}


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """Slack's ``X-Slack-Signature`` for ``body`` sent at ``timestamp`` (Unix seconds)."""
    base = f"v0:{timestamp}:".encode() + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def signed_headers(
    secret: str,
    body: bytes,
    timestamp: int | None = None,
    content_type: str | None = None,
    retry_num: int | None = None,
    retry_reason: str | None = None,
) -> dict[str, str]:
    """Headers Slack sends with ``body``. ``timestamp`` defaults to now; ``content_type`` is guessed from the body
    (JSON for event bodies, form-encoded for slash commands and interactions)."""
    ts = int(time.time()) if timestamp is None else int(timestamp)
    if content_type is None:
        content_type = JSON if body.lstrip().startswith(b"{") else FORM
    headers = {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": sign(secret, body, ts),
    }
    if retry_num is not None:
        headers["X-Slack-Retry-Num"] = str(retry_num)
    if retry_reason is not None:
        headers["X-Slack-Retry-Reason"] = retry_reason
    return headers


def new_trigger_id() -> str:
    return f"trig-{secrets.token_hex(8)}"


def default_response_url(team_id: str = TEAM_ID) -> str:
    return f"https://hooks.slack.com/commands/{team_id}/{secrets.randbelow(10**12)}/{secrets.token_hex(12)}"


def _user(user_id: str, team_id: str) -> dict[str, str]:
    name = f"user-{user_id.lower()}"
    return {"id": user_id, "username": name, "name": name, "team_id": team_id}


def _channel_name(channel_id: str) -> str:
    return "directmessage" if channel_id.startswith("D") else CHANNEL_NAME


def slash_command_body(
    command: str,
    text: str,
    user_id: str,
    channel_id: str,
    team_id: str = TEAM_ID,
    trigger_id: str | None = None,
    response_url: str | None = None,
) -> bytes:
    """A form-encoded slash command invocation, fields in the order Slack sends them."""
    fields = {
        "token": VERIFICATION_TOKEN,
        "team_id": team_id,
        "team_domain": TEAM_DOMAIN,
        "channel_id": channel_id,
        "channel_name": _channel_name(channel_id),
        "user_id": user_id,
        "user_name": f"user-{user_id.lower()}",
        "command": command,
        "text": text,
        "api_app_id": APP_ID,
        "is_enterprise_install": "false",
        "response_url": response_url or default_response_url(team_id),
        "trigger_id": trigger_id or new_trigger_id(),
    }
    return urlencode(fields).encode()


def interaction_body(payload: dict[str, Any]) -> bytes:
    """An interactivity request: form-encoded ``payload=<json>``."""
    return urlencode({"payload": json.dumps(payload, ensure_ascii=False)}).encode()


def _elements(block: dict[str, Any]) -> list[dict[str, Any]]:
    found = [block[k] for k in ("element", "accessory") if isinstance(block.get(k), dict)]
    found += [e for e in block.get("elements") or [] if isinstance(e, dict)]
    return found


def find_element(
    blocks: list[Any] | None, action_id: str, block_id: str | None = None
) -> tuple[str | None, dict[str, Any] | None]:
    """``(block_id, element)`` of the interactive element ``action_id`` in ``blocks`` (``(None, None)`` if absent)."""
    for block in blocks or []:
        if not isinstance(block, dict) or (block_id is not None and block.get("block_id") != block_id):
            continue
        for element in _elements(block):
            if element.get("action_id") == action_id:
                return block.get("block_id"), element
    return None, None


def _options(element: dict[str, Any]) -> list[dict[str, Any]]:
    options = list(element.get("options") or [])
    for group in element.get("option_groups") or []:
        options += group.get("options") or []
    return options


def _option(element: dict[str, Any], value: Any) -> dict[str, Any]:
    for option in _options(element):
        if option.get("value") == value:
            return copy.deepcopy(option)
    return {"text": {"type": "plain_text", "text": str(value)}, "value": str(value)}


def _state_value(kind: str, element: dict[str, Any], value: Any) -> dict[str, Any]:
    state: dict[str, Any] = {"type": kind}
    if kind in _SINGLE_SELECTS:
        state["selected_option"] = None if value is None else _option(element, value)
    elif kind in _MULTI_SELECTS:
        values = value if isinstance(value, list | tuple) else [] if value is None else [value]
        state["selected_options"] = [_option(element, v) for v in values]
    elif kind in _SELECTED:
        state[_SELECTED[kind]] = value
    else:
        state["value"] = value
    return state


def state_values(blocks: list[Any] | None, values: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Slack's ``state.values`` from ``{block_id: {action_id: value}}``.

    A plain value is expanded by the element's type in ``blocks`` (``plain_text_input`` when not found):
    text inputs get ``value``, selects ``selected_option(s)`` (the matching option), pickers ``selected_*``.
    A dict value is taken as the complete state entry.
    """
    out: dict[str, dict[str, Any]] = {}
    for block_id, actions in values.items():
        out[block_id] = {}
        for action_id, value in actions.items():
            if isinstance(value, dict):
                out[block_id][action_id] = copy.deepcopy(value)
                continue
            element = find_element(blocks, action_id, block_id)[1] or {}
            out[block_id][action_id] = _state_value(element.get("type", "plain_text_input"), element, value)
    return out


def full_view(view: dict[str, Any], view_id: str | None = None, team_id: str = TEAM_ID) -> dict[str, Any]:
    """``view`` as Slack echoes it back in interaction payloads (ids, hash, state and defaults filled in)."""
    view_id = view_id or view.get("id") or "V1"
    full: dict[str, Any] = {
        "id": view_id,
        "team_id": team_id,
        "type": "modal",
        "blocks": [],
        "private_metadata": "",
        "callback_id": "",
        "state": {"values": {}},
        "hash": f"{EPOCH}.{secrets.token_hex(4)}",
        "title": None,
        "clear_on_close": False,
        "notify_on_close": False,
        "close": None,
        "submit": None,
        "previous_view_id": None,
        "root_view_id": view_id,
        "app_id": APP_ID,
        "external_id": "",
        "app_installed_team_id": team_id,
        "bot_id": BOT_ID,
    }
    full.update(copy.deepcopy(view))
    full["id"] = view_id
    return full


def block_actions_payload(
    user_id: str,
    action_id: str,
    value: Any = None,
    block_id: str | None = None,
    channel_id: str | None = None,
    view: dict[str, Any] | None = None,
    trigger_id: str | None = None,
    message: dict[str, Any] | None = None,
    container: dict[str, Any] | None = None,
    *,
    team_id: str = TEAM_ID,
    response_url: str | None = None,
    values: dict[str, dict[str, Any]] | None = None,
    action_type: str | None = None,
) -> dict[str, Any]:
    """A ``block_actions`` payload for a click/selection of ``action_id`` in a message or a view.

    Pass ``view`` (e.g. from ``FakeSlackApi.opened_views()`` / ``home_view()``) for an action in a modal or the
    home tab, or ``message`` (e.g. from ``FakeSlackApi.messages()``, whose ``channel`` is used) and/or
    ``channel_id`` for an action in a message. The element is looked up in the view's/message's blocks to fill
    in ``block_id``, its ``type`` and, for selects, the chosen option; ``values`` are the other inputs' state.
    """
    source = view if view is not None else message
    blocks = (source or {}).get("blocks") or []
    found_block_id, element = find_element(blocks, action_id, block_id)
    element = element or {}
    kind = action_type or element.get("type") or "button"
    action: dict[str, Any] = {
        "action_id": action_id,
        "block_id": block_id or found_block_id or f"blk-{action_id}",
        "type": kind,
        "action_ts": f"{int(time.time())}.{secrets.randbelow(10**6):06d}",
    }
    if kind == "button":
        action["text"] = copy.deepcopy(element.get("text")) or {"type": "plain_text", "text": action_id}
        if value is not None:
            action["value"] = value
        if element.get("style"):
            action["style"] = element["style"]
    else:
        action.update({k: v for k, v in _state_value(kind, element, value).items() if k != "type"})
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": _user(user_id, team_id),
        "api_app_id": APP_ID,
        "token": VERIFICATION_TOKEN,
        "container": None,
        "trigger_id": trigger_id or new_trigger_id(),
        "team": {"id": team_id, "domain": TEAM_DOMAIN},
        "enterprise": None,
        "is_enterprise_install": False,
    }
    if view is not None:
        full = full_view(view, team_id=team_id)
        if values is not None:
            full["state"] = {"values": state_values(full.get("blocks"), values)}
        payload["container"] = {"type": "view", "view_id": full["id"]}
        payload["view"] = full
        payload["state"] = copy.deepcopy(full["state"])
    else:
        channel = channel_id or (message or {}).get("channel")
        if not channel:
            raise ValueError("block_actions_payload needs a view, or a message/channel_id")
        msg = copy.deepcopy(message) if message is not None else {}
        msg.pop("channel", None)
        msg.setdefault("type", "message")
        msg.setdefault("ts", f"{EPOCH}.000100")
        msg.setdefault("user", BOT_USER_ID)
        msg.setdefault("bot_id", BOT_ID)
        msg.setdefault("text", "")
        payload["container"] = {
            "type": "message",
            "message_ts": msg["ts"],
            "channel_id": channel,
            "is_ephemeral": False,
        }
        payload["channel"] = {"id": channel, "name": _channel_name(channel)}
        payload["message"] = msg
        payload["state"] = {"values": state_values(blocks, values or {})}
        payload["response_url"] = response_url or default_response_url(team_id)
    if container is not None:
        payload["container"] = copy.deepcopy(container)
    payload["actions"] = [action]
    return payload


def view_submission_payload(
    user_id: str,
    view: dict[str, Any],
    values: dict[str, dict[str, Any]],
    callback_id: str | None = None,
    private_metadata: str | None = None,
    view_id: str | None = None,
    *,
    team_id: str = TEAM_ID,
    trigger_id: str | None = None,
    scope: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``view_submission`` payload for submitting ``view`` with ``values`` (see :func:`state_values`).

    ``callback_id``, ``private_metadata`` and ``view_id`` default to the view's own (``view_id`` to "V1").
    ``scope``: the fields a view of a custom step's run carries (:func:`function_scope`).
    """
    full = full_view(view, view_id, team_id)
    full["type"] = "modal"
    if callback_id is not None:
        full["callback_id"] = callback_id
    if private_metadata is not None:
        full["private_metadata"] = private_metadata
    full["state"] = {"values": state_values(full.get("blocks"), values)}
    return {
        "type": "view_submission",
        "team": {"id": team_id, "domain": TEAM_DOMAIN},
        "user": _user(user_id, team_id),
        "api_app_id": APP_ID,
        "token": VERIFICATION_TOKEN,
        "trigger_id": trigger_id or new_trigger_id(),
        "view": full,
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
        **copy.deepcopy(scope or {}),
    }


def view_closed_payload(user_id: str, view: dict[str, Any], *, team_id: str = TEAM_ID,
                        scope: dict[str, Any] | None = None) -> dict[str, Any]:
    """A ``view_closed`` payload (sent only for views with ``notify_on_close``); ``scope`` as for a submission."""
    return {
        "type": "view_closed",
        "team": {"id": team_id, "domain": TEAM_DOMAIN},
        "user": _user(user_id, team_id),
        "api_app_id": APP_ID,
        "token": VERIFICATION_TOKEN,
        "view": full_view(view, team_id=team_id),
        "is_cleared": False,
        "is_enterprise_install": False,
        "enterprise": None,
        **copy.deepcopy(scope or {}),
    }


def event_body(event: dict[str, Any], event_id: str | None = None, team_id: str = TEAM_ID) -> bytes:
    """A JSON ``event_callback`` envelope around ``event`` (Events API)."""
    event_ts = event.get("event_ts") or event.get("ts")
    event_time = int(float(event_ts)) if isinstance(event_ts, str) and event_ts else int(time.time())
    envelope = {
        "token": VERIFICATION_TOKEN,
        "team_id": team_id,
        "context_team_id": team_id,
        "context_enterprise_id": None,
        "api_app_id": APP_ID,
        "event": event,
        "type": "event_callback",
        "event_id": event_id or f"Ev{secrets.token_hex(5).upper()}",
        "event_time": event_time,
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": team_id,
                "user_id": BOT_USER_ID,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
        "event_context": f"4-{secrets.token_hex(16)}",
    }
    return json.dumps(envelope, ensure_ascii=False).encode()


def _parameters(declared: dict[str, dict[str, Any]] | None) -> list[dict[str, Any]]:
    """A function's parameters as the event lists them (the manifest declares them as a map by name)."""
    return [{"name": name, **{k: v for k, v in param.items() if k != "name"}}
            for name, param in (declared or {}).items()]


def function_executed_event(
    callback_id: str,
    execution_id: str,
    token: str,
    inputs: dict[str, Any],
    *,
    title: str = "",
    input_parameters: dict[str, dict[str, Any]] | None = None,
    output_parameters: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The ``function_executed`` event of a custom step's run (wrap it with :func:`event_body`): the function
    as declared, the run's inputs (the interactivity object also flattened, as Slack sends it), its
    execution ID and its workflow token (``bot_access_token``)."""
    given = copy.deepcopy(inputs)
    interactivity = given.get("interactivity")
    if isinstance(interactivity, dict):
        given["interactivity.interactor"] = copy.deepcopy(interactivity.get("interactor"))
        given["interactivity.interactor.id"] = (interactivity.get("interactor") or {}).get("id")
        given["interactivity.interactor.secret"] = (interactivity.get("interactor") or {}).get("secret")
        given["interactivity.interactivity_pointer"] = interactivity.get("interactivity_pointer")
    now = time.time()
    return {
        "type": "function_executed",
        "function": {
            "id": "Fn0KPI0001",
            "callback_id": callback_id,
            "title": title or callback_id,
            "description": "",
            "type": "app",
            "input_parameters": _parameters(input_parameters),
            "output_parameters": _parameters(output_parameters),
            "app_id": APP_ID,
            "date_created": EPOCH,
            "date_updated": EPOCH,
            "date_deleted": 0,
        },
        "inputs": given,
        "function_execution_id": execution_id,
        "workflow_execution_id": f"Wx{secrets.token_hex(5).upper()}",
        "event_ts": f"{int(now)}.{secrets.randbelow(10**6):06d}",
        "bot_access_token": token,
    }


def function_scope(callback_id: str, execution_id: str, token: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """The fields Slack adds to an interaction with a view of a custom step's run (a view opened with the
    run's token): its ``function_data``, a fresh workflow token, and the run's interactivity."""
    scope: dict[str, Any] = {
        "bot_access_token": token,
        "function_data": {"execution_id": execution_id, "function": {"callback_id": callback_id},
                          "inputs": copy.deepcopy(inputs)},
    }
    if isinstance(inputs.get("interactivity"), dict):
        scope["interactivity"] = copy.deepcopy(inputs["interactivity"])
    return scope


def url_verification_body(challenge: str) -> bytes:
    """The Events API URL verification handshake."""
    return json.dumps({"token": VERIFICATION_TOKEN, "challenge": challenge, "type": "url_verification"}).encode()
