"""A local fake of the LINE Messaging API for tests and benchmarks.

Point the bot at ``fake.base_url`` (``LINE_API_HOST`` / linebot.v3 ``Configuration(host=...)``) and, for
the data host's endpoints (a rich menu's image), at ``fake.data_url`` (``LINE_API_DATA_HOST``): the same
server under another host name, so a request sent to the wrong host is a contract error, as it would be
a 404 on LINE. The fake records every request, can be told to fail, and checks every request against
the SDK's models, LINE's documented limits and (when present) LINE's official OpenAPI spec.

Besides messages it keeps a channel's set-up, as ``crmbot line setup`` changes it: the bot's info, the
webhook endpoint (and LINE's webhook test, answered by ``webhook_probe``), rich menus with their images
and the default rich menu.
"""

from __future__ import annotations

import copy
import io
import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from linebot.v3.messaging import Message, MulticastRequest, PushMessageRequest, ReplyMessageRequest

from tests.fakes.http_fake import Answer, Failure, FakeHttpApi
from tests.fakes.openapi import insight_spec_path, messaging_spec_path, require_specs, validate_api_request

REPLY = "/v2/bot/message/reply"
PUSH = "/v2/bot/message/push"
MULTICAST = "/v2/bot/message/multicast"
MARK_AS_READ = "/v2/bot/chat/markAsRead"  # by the markAsReadToken of a message event
STALL_MAX = 30.0  # seconds a stalled request is held at most
QUOTA = "/v2/bot/message/quota"
CONSUMPTION = "/v2/bot/message/quota/consumption"
BOT_INFO = "/v2/bot/info"
WEBHOOK_ENDPOINT = "/v2/bot/channel/webhook/endpoint"
WEBHOOK_TEST = "/v2/bot/channel/webhook/test"
RICHMENU = "/v2/bot/richmenu"
RICHMENU_LIST = "/v2/bot/richmenu/list"
DEFAULT_RICHMENU = "/v2/bot/user/all/richmenu"
AGGREGATION_LIST = "/v2/bot/message/aggregation/list"  # the aggregation units used this month
INSIGHT_UNIT = "/v2/bot/insight/message/event/aggregation"  # one unit's statistics over a period (insight.yml)
MAX_INSIGHT_DAYS = 31  # from .. to: "up to 30 days later"


def richmenu_path(menu_id: str) -> str:
    return f"{RICHMENU}/{menu_id}"


def richmenu_content_path(menu_id: str) -> str:
    """On the data host (api-data.line.me)."""
    return f"{RICHMENU}/{menu_id}/content"


def default_richmenu_path(menu_id: str) -> str:
    return f"{DEFAULT_RICHMENU}/{menu_id}"


_RICHMENU_RE = re.compile(r"^/v2/bot/richmenu/(richmenu-[0-9a-zA-Z]+)$")
_CONTENT_RE = re.compile(r"^/v2/bot/richmenu/([^/]+)/content$")
_DEFAULT_RE = re.compile(r"^/v2/bot/user/all/richmenu/([^/]+)$")
_DATA_HOST_RE = re.compile(r"^/v2/bot/(richmenu/[^/]+|message/[^/]+)/content(/.*)?$")  # the blob endpoints
PROFILE = "/v2/bot/profile/"  # + user ID


def profile_path(user_id: str) -> str:
    return PROFILE + user_id

AUTH_FAILED = "Authentication failed. Confirm that the access token in the authorization header is valid."
_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_SDK_MODELS: dict[str, Any] = {REPLY: ReplyMessageRequest, PUSH: PushMessageRequest, MULTICAST: MulticastRequest}

MAX_MESSAGES = 5
MAX_MULTICAST_RECIPIENTS = 500
MAX_QUICK_REPLY_ITEMS = 13
MAX_ACTION_LABEL = 20  # quick reply and template actions (LINE counts grapheme clusters; we count code points)
MAX_POSTBACK_DATA = 300
MAX_TEXT = 5000  # LINE counts UTF-16 code units
MAX_FLEX_ALT_TEXT = 1500
MAX_TEMPLATE_ALT_TEXT = 400
MAX_RICHMENU_IMAGE = 1024 * 1024
MAX_RICHMENU_AREAS = 20
MAX_RICHMENUS = 1000


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    json: Any
    status: int
    query: str = ""  # the query string, as sent


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _actions(node: Any) -> list[dict[str, Any]]:
    """All action objects (``action``/``defaultAction``/``actions``) anywhere inside ``node``."""
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("action", "defaultAction") and isinstance(value, dict):
                found.append(value)
            elif key == "actions" and isinstance(value, list):
                found.extend(a for a in value if isinstance(a, dict))
            found.extend(_actions(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_actions(item))
    return found


def check_limits(body: Any) -> list[str]:
    """LINE limits for reply/push/multicast bodies that the OpenAPI spec does not (fully) enforce."""
    if not isinstance(body, dict):
        return []
    errors: list[str] = []
    messages = body.get("messages")
    if isinstance(messages, list) and not 1 <= len(messages) <= MAX_MESSAGES:
        errors.append(f"messages: {len(messages)} messages (must be 1..{MAX_MESSAGES})")
    to = body.get("to")
    if isinstance(to, list) and len(to) > MAX_MULTICAST_RECIPIENTS:
        errors.append(f"to: {len(to)} recipients (max {MAX_MULTICAST_RECIPIENTS})")
    for i, msg in enumerate(messages if isinstance(messages, list) else []):
        if not isinstance(msg, dict):
            continue
        where, kind = f"messages[{i}]", msg.get("type")
        labelled: list[dict[str, Any]] = []
        items = (msg.get("quickReply") or {}).get("items") or []
        if len(items) > MAX_QUICK_REPLY_ITEMS:
            errors.append(f"{where}.quickReply: {len(items)} items (max {MAX_QUICK_REPLY_ITEMS})")
        labelled += [it["action"] for it in items if isinstance(it, dict) and isinstance(it.get("action"), dict)]
        if kind in ("text", "textV2") and isinstance(msg.get("text"), str) and _utf16_len(msg["text"]) > MAX_TEXT:
            errors.append(f"{where}.text: {_utf16_len(msg['text'])} chars (max {MAX_TEXT})")
        alt_max = {"flex": MAX_FLEX_ALT_TEXT, "template": MAX_TEMPLATE_ALT_TEXT}.get(kind or "")
        alt = msg.get("altText")
        if alt_max and isinstance(alt, str) and _utf16_len(alt) > alt_max:
            errors.append(f"{where}.altText: {_utf16_len(alt)} chars (max {alt_max})")
        if kind == "template":
            labelled += _actions(msg.get("template"))
        for action in labelled:
            label = action.get("label")
            if isinstance(label, str) and len(label) > MAX_ACTION_LABEL:
                errors.append(f"{where}: action label {label!r} is {len(label)} chars (max {MAX_ACTION_LABEL})")
        for action in _actions(msg):
            data = action.get("data")
            if isinstance(data, str) and len(data) > MAX_POSTBACK_DATA:
                errors.append(f"{where}: {action.get('type')} data is {len(data)} chars (max {MAX_POSTBACK_DATA})")
    return errors


class FakeLineApi(FakeHttpApi):
    name = "LINE API"

    def __init__(self, access_token: str = "test-access-token", spec_path: Path | None = None) -> None:
        super().__init__()
        self.access_token = access_token
        if spec_path is None:
            require_specs("messaging-api.yml")  # fails under CI, skips elsewhere, when the spec is missing
            require_specs("insight.yml")  # the statistics (GET /v2/bot/insight/...)
        self.spec_path = spec_path if spec_path is not None else messaging_spec_path()
        self.insight_spec_path = insight_spec_path() if spec_path is None else None
        self.quota: int | None = 200
        self._message_ids = iter(range(500_000_000_000_000_000, 10**19))
        self._clear()

    def _clear_setup(self) -> None:
        self.bot_info: dict[str, Any] = {
            "userId": "U" + "b" * 32, "basicId": "@123abcde", "displayName": "CRM診断",
            "chatMode": "bot", "markAsReadMode": "auto",
        }
        self.webhook_endpoint: str | None = None
        self.webhook_active = True  # "Use webhook" in the console (no API changes it)
        # LINE's webhook test: URL -> (HTTP status our server answered, reason); None: 200 "OK".
        self.webhook_probe: Callable[[str], tuple[int, str]] | None = None
        self.richmenus: dict[str, dict[str, Any]] = {}  # id -> the menu as LINE lists it
        self.richmenu_images: dict[str, tuple[str, bytes]] = {}  # id -> (content type, bytes)
        self.default_richmenu: str | None = None

    def _clear(self) -> None:
        for gate in getattr(self, "_stalls", {}).values():
            gate.set()  # a request still held is let go
        self._stalls: dict[str, threading.Event] = {}
        self._arrived: list[str] = []  # the path of every request, as it arrives (a stalled one too)
        self._records: list[Recorded] = []
        self._failures: dict[str, list[Failure]] = {}
        self._reply_tokens: dict[str, str] = {}
        self._deliveries: dict[str, list[dict[str, Any]]] = {}
        self._retry_keys: dict[str, tuple[str, list[dict[str, str]]]] = {}
        self._usage = 0
        self.marked_read: list[str] = []  # markAsReadTokens, as POSTed to /v2/bot/chat/markAsRead
        self._clear_setup()
        self._profiles: dict[str, dict[str, str]] = {}
        self.units_used: list[str] = []  # aggregation units named by pushes, or set by a test (in order)
        # (unit, "YYYYMMDD") -> (uniqueImpression, uniqueClick), None withheld; a day not set: 0 and 0
        self._unit_figures: dict[tuple[str, str], tuple[int | None, int | None]] = {}
        self.contract_errors.clear()

    def _warm_up(self) -> None:
        if self.spec_path is not None:  # build the (slow, cached) spec up front, not on the first request
            validate_api_request(self.spec_path, "GET", QUOTA, {"authorization": "Bearer warm-up"})
        if self.insight_spec_path is not None:
            validate_api_request(self.insight_spec_path, "GET", INSIGHT_UNIT, {"authorization": "Bearer warm-up"})

    @property
    def base_url(self) -> str:
        return self.root_url

    @property
    def data_url(self) -> str:
        """The data host (``LINE_API_DATA_HOST``): the same server, named ``localhost`` instead of 127.0.0.1."""
        return self.root_url.replace("127.0.0.1", "localhost", 1)

    # -- test controls ---------------------------------------------------------------------------
    def issue_reply_token(self, user_id: str) -> str:
        token = secrets.token_hex(16)
        with self._lock:
            self._reply_tokens[token] = user_id
        return token

    def expire_reply_token(self, token: str) -> None:
        with self._lock:
            self._reply_tokens.pop(token, None)

    def fail(
        self,
        path: str,
        status: int,
        times: int = 1,
        body: Any = None,
        headers: dict[str, str] | None = None,
        *,
        after_serving: bool = False,
    ) -> None:
        """Answer the next ``times`` requests to ``path`` with ``status``: nothing is delivered, or with
        ``after_serving`` the request is served first (the message lands, the answer is lost)."""
        failure = Failure(status, times, body if body is not None else {"message": "fake failure"}, headers or {},
                          after_serving)
        with self._lock:
            self._failures.setdefault(path, []).append(failure)

    def stall(self, path: str) -> threading.Event:
        """Hold every request to ``path`` (a LINE API that stopped answering) until the returned event is
        set (at most STALL_MAX seconds, or until reset)."""
        gate = threading.Event()
        with self._lock:
            self._stalls[path] = gate
        return gate

    def arrivals(self, path: str) -> int:
        """Requests to ``path`` received so far, answered or still held."""
        with self._lock:
            return self._arrived.count(path)

    def set_profile(self, user_id: str, display_name: str, **extra: str) -> None:
        """The profile LINE returns for a user (others: 404, as for someone who is not a friend)."""
        with self._lock:
            self._profiles[user_id] = {"displayName": display_name, "userId": user_id, **extra}

    def set_unit_figures(self, unit: str, day: str, opened: int | None, clicked: int | None) -> None:
        """What LINE's statistics per unit say for ``unit`` on ``day`` (YYYYMMDD, Japan time): people who opened
        it and who opened a link (None: withheld, as LINE does for small counts). The unit is listed as used."""
        with self._lock:
            self._unit_figures[(unit, day)] = (opened, clicked)
            if unit not in self.units_used:
                self.units_used.append(unit)

    def reset(self) -> None:
        with self._lock:
            self._clear()

    # -- inspection ------------------------------------------------------------------------------
    def recorded(self, path: str | None = None) -> list[Recorded]:
        with self._lock:
            return [copy.deepcopy(r) for r in self._records if path is None or r.path == path]

    def delivered(self, user_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._deliveries.get(user_id, []))

    def delivered_all(self) -> dict[str, list[dict[str, Any]]]:
        with self._lock:
            return copy.deepcopy(self._deliveries)

    def summary(self) -> str:
        with self._lock:
            lines = [f"requests ({len(self._records)}):"]
            lines += [f"  {r.method} {r.path} -> {r.status}" for r in self._records[-30:]]
            lines.append("delivered: " + (", ".join(f"{u}: {len(m)}" for u, m in self._deliveries.items()) or "none"))
            lines += ["contract errors:", *(f"  {e}" for e in self.contract_errors)] if self.contract_errors else []
        return "\n".join(lines)

    def wait_delivered(self, user_id: str, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Wait until at least ``count`` messages were delivered to ``user_id``; return them."""
        try:
            self.wait_for(lambda fake: len(fake.delivered(user_id)) >= count, timeout)
        except AssertionError as exc:
            raise AssertionError(f"expected {count} message(s) delivered to {user_id}\n{exc}") from None
        return self.delivered(user_id)

    # -- request handling (called from server threads) ------------------------------------------
    def _check_contract(self, method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> None:
        errors: list[str] = []
        if self._server is not None:
            on_data_host = headers.get("host", "").startswith("localhost:")
            if bool(_DATA_HOST_RE.match(path)) != on_data_host:
                want = "the data host (api-data.line.me)" if not on_data_host else "the API host (api.line.me)"
                errors.append(f"sent to {headers.get('host')!r}: LINE serves this path only on {want}")
        spec = self.insight_spec_path if path.startswith("/v2/bot/insight/") else self.spec_path
        if spec is not None:
            errors += [f"spec: {e}" for e in validate_api_request(spec, method, path, headers, body, query)]
        model = _SDK_MODELS.get(path) if method == "POST" else None
        if model is not None:
            try:
                parsed = json.loads(body)
            except ValueError as exc:
                errors.append(f"body is not valid JSON: {exc}")
                parsed = None
            if parsed is not None:
                try:
                    model.from_json(body.decode())
                except Exception as exc:
                    errors.append(f"sdk {model.__name__}: {' '.join(str(exc).split())}")
                messages = parsed.get("messages") if isinstance(parsed, dict) else None
                for i, msg in enumerate(messages if isinstance(messages, list) else []):
                    try:
                        Message.from_dict(msg)
                    except Exception as exc:
                        errors.append(f"sdk Message messages[{i}]: {type(exc).__name__}: {' '.join(str(exc).split())}")
                errors += [f"limit: {e}" for e in check_limits(parsed)]
        if errors:
            with self._lock:
                self.contract_errors.extend(f"{method} {path}: {e}" for e in errors)

    def handle_request(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Answer:
        path, _, query = target.partition("?")
        self._check_contract(method, path, query, headers, body)
        with self._lock:
            self._arrived.append(path)
            gate = self._stalls.get(path)
        if gate is not None:
            gate.wait(STALL_MAX)
        if self.delay:
            time.sleep(self.delay)
        try:
            data = json.loads(body) if body else None
        except ValueError:
            data = None
        with self._lock:
            answer = self._route(method, path, headers, data, body, query)
            answer.headers.setdefault("x-line-request-id", str(uuid.uuid4()))
            self._records.append(Recorded(method, path, dict(headers), body, data, answer.status, query))
            return answer

    def _route(self, method: str, path: str, headers: dict[str, str], data: Any, body: bytes = b"",
               query: str = "") -> Answer:
        queue = self._failures.get(path)
        if queue:
            failure = queue[0]
            failure.remaining -= 1
            if failure.remaining <= 0:
                queue.pop(0)
            if failure.after_serving:
                self._serve(method, path, headers, data, body, query)
            return Answer(failure.status, copy.deepcopy(failure.body), dict(failure.headers))
        return self._serve(method, path, headers, data, body, query)

    def _serve(self, method: str, path: str, headers: dict[str, str], data: Any, body: bytes = b"",
               query: str = "") -> Answer:
        if headers.get("authorization") != f"Bearer {self.access_token}":
            return Answer(401, {"message": AUTH_FAILED})
        if method == "GET" and path == QUOTA:
            return Answer(200, {"type": "none"} if self.quota is None else {"type": "limited", "value": self.quota})
        if method == "GET" and path == CONSUMPTION:
            return Answer(200, {"totalUsage": self._usage})
        if method == "GET" and path in (AGGREGATION_LIST, INSIGHT_UNIT):
            args = {k: v[-1] for k, v in parse_qs(query).items()}
            return self._unit_list(args) if path == AGGREGATION_LIST else self._unit_stats(args)
        setup = self._serve_setup(method, path, headers, data, body)
        if setup is not None:
            return setup
        if method == "POST" and path == MARK_AS_READ:
            token = data.get("markAsReadToken") if isinstance(data, dict) else None
            if not isinstance(token, str) or not token:
                return Answer(400, {"message": "The request body has 1 error(s)"})
            self.marked_read.append(token)
            return Answer(200, {})
        if method == "GET" and path.startswith(PROFILE):
            profile = self._profiles.get(path[len(PROFILE):])
            return Answer(200, copy.deepcopy(profile)) if profile else Answer(404, {"message": "Not found"})
        if method != "POST" or path not in (REPLY, PUSH, MULTICAST):
            return Answer(404, {"message": "Not found"})
        messages = data.get("messages") if isinstance(data, dict) else None
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            return Answer(400, {"message": "The request body has 1 error(s)"})
        if path == REPLY:
            user_id = self._reply_tokens.pop(str(data.get("replyToken")), None)
            if user_id is None:
                return Answer(400, {"message": "Invalid reply token"})
            return Answer(200, {"sentMessages": self._deliver([user_id], messages)})
        return self._send(path, headers, data, messages)

    # -- channel set-up: bot info, webhook, rich menus (what `crmbot line setup` uses) ------------
    def _serve_setup(self, method: str, path: str, headers: dict[str, str], data: Any, body: bytes) -> Answer | None:
        """The answer for a set-up endpoint, or None if ``path`` is not one."""
        if path == BOT_INFO and method == "GET":
            return Answer(200, copy.deepcopy(self.bot_info))
        if path == WEBHOOK_ENDPOINT:
            return self._webhook_endpoint(method, data)
        if path == WEBHOOK_TEST and method == "POST":
            return self._webhook_test(data)
        if path == RICHMENU and method == "POST":
            return self._create_richmenu(data)
        if path == RICHMENU_LIST and method == "GET":
            return Answer(200, {"richmenus": [copy.deepcopy(m) for m in self.richmenus.values()]})
        if path == DEFAULT_RICHMENU:
            if method == "GET":
                if self.default_richmenu is None:
                    return Answer(404, {"message": "no default richmenu"})
                return Answer(200, {"richMenuId": self.default_richmenu})
            if method == "DELETE":
                self.default_richmenu = None
                return Answer(200, {})
        if m := _DEFAULT_RE.match(path):
            return self._set_default(m.group(1)) if method == "POST" else None
        if m := _CONTENT_RE.match(path):
            return self._richmenu_content(method, m.group(1), headers.get("content-type", ""), body)
        if m := _RICHMENU_RE.match(path):
            menu_id = m.group(1)
            if menu_id not in self.richmenus:
                return Answer(404, {"message": "richmenu not found"})
            if method == "GET":
                return Answer(200, copy.deepcopy(self.richmenus[menu_id]))
            if method == "DELETE":
                del self.richmenus[menu_id]
                self.richmenu_images.pop(menu_id, None)
                if self.default_richmenu == menu_id:
                    self.default_richmenu = None
                return Answer(200, {})
        return None

    def _webhook_endpoint(self, method: str, data: Any) -> Answer | None:
        if method == "GET":
            if self.webhook_endpoint is None:
                return Answer(404, {"message": "Webhook endpoint is not set"})
            return Answer(200, {"endpoint": self.webhook_endpoint, "active": self.webhook_active})
        if method == "PUT":
            endpoint = data.get("endpoint") if isinstance(data, dict) else None
            if not isinstance(endpoint, str) or not endpoint.startswith("https://") or len(endpoint) > 500:
                return Answer(400, {"message": "Invalid webhook endpoint URL"})
            self.webhook_endpoint = endpoint
            return Answer(200, {})
        return None

    def _webhook_test(self, data: Any) -> Answer:
        endpoint = (data or {}).get("endpoint") if isinstance(data, dict) else None
        endpoint = endpoint or self.webhook_endpoint
        if not endpoint:
            return Answer(400, {"message": "Webhook endpoint is not set"})
        status, reason = self.webhook_probe(endpoint) if self.webhook_probe else (200, "OK")
        return Answer(200, {
            "success": status == 200,
            "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "statusCode": status,
            "reason": reason,
            "detail": str(status),
        })

    def _create_richmenu(self, data: Any) -> Answer:
        problem = _richmenu_problem(data)
        if problem:
            return Answer(400, {"message": "The request body has 1 error(s)", "details": [{"message": problem}]})
        if len(self.richmenus) >= MAX_RICHMENUS:
            return Answer(400, {"message": f"Can't create more than {MAX_RICHMENUS} rich menus"})
        menu_id = "richmenu-" + secrets.token_hex(16)
        self.richmenus[menu_id] = {
            "richMenuId": menu_id,
            "size": data["size"],
            "selected": bool(data.get("selected", False)),
            "name": data["name"],
            "chatBarText": data["chatBarText"],
            "areas": data["areas"],
        }
        return Answer(200, {"richMenuId": menu_id})

    def _richmenu_content(self, method: str, menu_id: str, content_type: str, body: bytes) -> Answer | None:
        if menu_id not in self.richmenus:
            return Answer(404, {"message": "richmenu not found"})
        if method == "GET":
            if menu_id not in self.richmenu_images:
                return Answer(404, {"message": "Not found"})
            kind, image = self.richmenu_images[menu_id]
            return Answer(200, image, {"content-type": kind})
        if method != "POST":
            return None
        if menu_id in self.richmenu_images:
            return Answer(400, {"message": "An image has already been uploaded to the richmenu"})
        size = self.richmenus[menu_id]["size"]
        problem = _image_problem(content_type, body, (size["width"], size["height"]))
        if problem:
            return Answer(400, {"message": problem})
        self.richmenu_images[menu_id] = (content_type, body)
        return Answer(200, {})

    def _set_default(self, menu_id: str) -> Answer:
        if menu_id not in self.richmenus:
            return Answer(404, {"message": "richmenu not found"})
        if menu_id not in self.richmenu_images:
            return Answer(400, {"message": "must upload richmenu image before applying it to user"})
        self.default_richmenu = menu_id
        return Answer(200, {})

    def _send(self, path: str, headers: dict[str, str], data: dict[str, Any], messages: list[Any]) -> Answer:
        to = data.get("to")
        recipients = [to] if path == PUSH else to
        if not isinstance(recipients, list) or not recipients or not all(isinstance(u, str) for u in recipients):
            return Answer(400, {"message": "The request body has 1 error(s)"})
        if len(recipients) > MAX_MULTICAST_RECIPIENTS:
            return Answer(
                400,
                {
                    "message": "The request body has 1 error(s)",
                    "details": [{"message": "Size must be between 1 and 500", "property": "to"}],
                },
            )
        key = headers.get("x-line-retry-key")
        if key is not None:
            if not _UUID_RE.match(key):
                return Answer(400, {"message": "The value for the 'X-Line-Retry-Key' header is invalid"})
            if key in self._retry_keys:
                request_id, sent = self._retry_keys[key]
                conflict: dict[str, Any] = {"message": "The retry key is already accepted"}
                if path == PUSH:
                    conflict["sentMessages"] = copy.deepcopy(sent)
                return Answer(409, conflict, {"x-line-accepted-request-id": request_id})
        sent = self._deliver(recipients, messages)
        self._usage += len(messages) * len(recipients)
        for unit in data.get("customAggregationUnits") or []:
            if unit not in self.units_used:
                self.units_used.append(unit)
        request_id = str(uuid.uuid4())
        if key is not None:
            self._retry_keys[key] = (request_id, sent)
        return Answer(200, {"sentMessages": sent} if path == PUSH else {}, {"x-line-request-id": request_id})

    # -- statistics per aggregation unit ---------------------------------------------------------------------
    def _unit_list(self, args: dict[str, str]) -> Answer:
        """The units used, a page of ``limit`` at a time; ``next`` is where the next page starts."""
        limit = int(args.get("limit") or 100)
        start = int(args.get("start") or 0)
        page: dict[str, Any] = {"customAggregationUnits": self.units_used[start:start + limit]}
        if start + limit < len(self.units_used):
            page["next"] = str(start + limit)
        return Answer(200, page)

    def _unit_stats(self, args: dict[str, str]) -> Answer:
        """One unit's figures over ``from``..``to`` (the days' sum; withheld on any day: withheld)."""
        try:
            first = datetime.strptime(args.get("from", ""), "%Y%m%d").date()
            last = datetime.strptime(args.get("to", ""), "%Y%m%d").date()
        except ValueError:
            return Answer(400, {"message": "The request parameter 'from' or 'to' is invalid"})
        if last < first or (last - first).days >= MAX_INSIGHT_DAYS:
            self.contract_errors.append(f"GET {INSIGHT_UNIT}: from {first} to {last}: not within 30 days")
            return Answer(400, {"message": "The period is invalid"})
        days = [(first + timedelta(days=i)).strftime("%Y%m%d") for i in range((last - first).days + 1)]
        figures = [self._unit_figures.get((args.get("customAggregationUnit", ""), d), (0, 0)) for d in days]

        def total(i: int) -> int | None:
            values = [f[i] for f in figures]
            return None if any(v is None for v in values) else sum(v or 0 for v in values)

        opened, clicked = total(0), total(1)
        return Answer(200, {
            "overview": {"uniqueImpression": opened, "uniqueClick": clicked, "uniqueMediaPlayed": None,
                         "uniqueMediaPlayed100Percent": None},
            "messages": [{"seq": 1, "impression": opened, "uniqueImpression": opened}],
            "clicks": [],
        })

    def _deliver(self, recipients: list[str], messages: list[dict[str, Any]]) -> list[dict[str, str]]:
        for user_id in recipients:
            self._deliveries.setdefault(user_id, []).extend(copy.deepcopy(messages))
        return [{"id": str(next(self._message_ids)), "quoteToken": secrets.token_urlsafe(24)} for _ in messages]


# LINE's rules for a rich menu (developers.line.biz, "Rich menu object" and "Upload rich menu image") that
# the OpenAPI spec does not state.
def _richmenu_problem(data: Any) -> str | None:
    if not isinstance(data, dict):
        return "not a JSON object"
    size = data.get("size") or {}
    width, height = size.get("width"), size.get("height")
    if not (isinstance(width, int) and isinstance(height, int) and 800 <= width <= 2500 and height >= 250
            and width / height >= 1.45):
        return f"size {width}x{height}: width 800-2500, height at least 250, width/height at least 1.45"
    for key in ("name", "chatBarText"):
        if not isinstance(data.get(key), str) or not data[key]:
            return f"{key} is required"
    areas = data.get("areas")
    if not isinstance(areas, list) or not 1 <= len(areas) <= MAX_RICHMENU_AREAS:
        return f"areas: 1 to {MAX_RICHMENU_AREAS} required"
    for i, area in enumerate(areas):
        b = (area.get("bounds") or {}) if isinstance(area, dict) else {}
        if not (all(isinstance(b.get(k), int) for k in ("x", "y", "width", "height"))
                and b["x"] + b["width"] <= width and b["y"] + b["height"] <= height):
            return f"areas[{i}].bounds outside the menu"
        action = area.get("action") if isinstance(area, dict) else None
        if not isinstance(action, dict) or not action.get("type"):
            return f"areas[{i}].action is required"
        label = action.get("label")
        if isinstance(label, str) and len(label) > MAX_ACTION_LABEL:
            return f"areas[{i}].action.label longer than {MAX_ACTION_LABEL}"
    return None


def _image_problem(content_type: str, body: bytes, size: tuple[int, int]) -> str | None:
    from PIL import Image

    kind = content_type.split(";")[0].strip().lower()
    if kind not in ("image/png", "image/jpeg"):
        return f"Content-Type {content_type!r}: image/png or image/jpeg required"
    if len(body) > MAX_RICHMENU_IMAGE:
        return f"image is {len(body)} bytes (max {MAX_RICHMENU_IMAGE})"
    try:
        with Image.open(io.BytesIO(body)) as image:
            image.load()
            fmt, actual = image.format, image.size
    except Exception as exc:
        return f"not an image: {type(exc).__name__}"
    if f"image/{(fmt or '').lower()}" != kind:
        return f"the image is {fmt} but Content-Type says {kind}"
    if actual != size:
        return f"image size {actual[0]}x{actual[1]} does not match the rich menu's {size[0]}x{size[1]}"
    return None
