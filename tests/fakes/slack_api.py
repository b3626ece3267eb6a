"""A local fake of the Slack Web API for tests and benchmarks.

Point the bot at ``fake.base_url`` (``SLACK_API_URL`` / slack_sdk ``WebClient(base_url=...)``).
The fake answers ``POST /api/<method>`` (JSON, form-encoded or query-string arguments, as slack_sdk
sends them), records every call, can be told to fail, and checks every ``blocks`` list and ``view``
against slack_sdk's Block Kit models and Slack's documented limits. It also serves ``response_url``s
(:meth:`FakeSlackApi.new_response_url`) so ``respond()`` calls can be captured too.

Many workspaces: ``bot_token`` answers for workspace ``T1``; an app installed by OAuth gets a token of its
own per workspace. :meth:`FakeSlackApi.approve` is what slack.com does when someone approves an install
(the redirect's ``code`` and ``state``), ``oauth.v2.access`` exchanges the code for the workspace's bot
token (with token rotation: an expiring token and a one-time refresh token, exchanged again with
``grant_type=refresh_token``), and every other method checks the ``Authorization: Bearer`` token: it
answers as that token's workspace (``Recorded.team`` says which), ``invalid_auth`` for a token it never
issued or revoked (:meth:`FakeSlackApi.uninstall`), ``token_expired`` for an expired one.
Files are uploaded as ``files_upload_v2`` does it: ``files.getUploadURLExternal`` (a file id and an
upload URL served by this fake), a POST of the raw bytes to that URL, then
``files.completeUploadExternal``, which shares the file in a channel (a message with ``files``, as
Slack shows it in the history) or keeps it private; :meth:`FakeSlackApi.files` lists them with their bytes.

Workflow Builder custom steps: :meth:`FakeSlackApi.start_run` is what Slack does when a workflow reaches an
app's step: a run (``function_execution_id``) with a workflow token of its own (``xwfp-``, accepted like the
bot token until the run ends or :meth:`FakeSlackApi.expire_run_token`) and, for a run started by a person, an
interactivity pointer that ``views.open`` takes once instead of a ``trigger_id`` (a view opened with the run's
token belongs to the run: :meth:`FakeSlackApi.run_of_view`). ``functions.completeSuccess`` and
``functions.completeError`` end a running run once (then ``execution_not_in_running_state``), checking the
execution ID (``function_execution_not_found``), that ``outputs`` is an object and, when the run was started
with the step's declared output parameters, each output's presence and type (``parameter_validation_failed``);
the run's token stops working when it ends, as Slack revokes it.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import itertools
import json
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit

from slack_sdk.models.blocks import Block, RawNumberObject, RawTextObject, RichTextBlock
from slack_sdk.models.views import View

from tests.fakes.http_fake import Answer, Failure, FakeHttpApi

API_PREFIX = "/api/"
RESPONSE_PREFIX = "/response/"
UPLOAD_PREFIX = "/upload/v1/"

BOT_USER_ID = "UBOT"
BOT_ID = "BBOT"
BOT_NAME = "crmbot"
TEAM_ID = "T1"
TEAM_NAME = "Test"
TEAM_URL = "https://test.slack.com/"
APP_ID = "A1"
CHANNEL_NAME = "crm-team"
EPOCH = 1_767_225_600  # 2026-01-01T00:00:00Z, as tests.conftest.FakeClock
# The app's OAuth credentials (Basic Information > App Credentials)
CLIENT_ID = "1111111111.2222222222"
CLIENT_SECRET = "fake-client-secret"
AUTHORIZE_URL = "https://slack.com/oauth/v2/authorize"
ROTATION_EXPIRES_IN = 43200  # a rotating token lives 12 hours

# Arguments that carry JSON; in form-encoded (and query-string) requests they arrive as JSON strings.
JSON_FIELDS = ("blocks", "view", "attachments", "metadata", "outputs")

MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_VIEW_LABEL = 24  # modal title, submit and close
MAX_CALLBACK_ID = 255
MAX_PRIVATE_METADATA = 3000
MAX_ALT_TXT = 1000  # files.getUploadURLExternal: alt_txt_too_large beyond it
MAX_FILE_TITLE = 255
MIMETYPES = {"png": "image/png", "csv": "text/csv", "txt": "text/plain", "jpg": "image/jpeg", "gif": "image/gif"}
MAX_TEXT = 40000
MAX_SECTION_TEXT = 3000
VIEW_TYPES = ("modal", "home", "workflow_step")
# Slack's own charts and tables. slack_sdk (3.48, the newest) has a model of the table block only, so the
# documented limits are checked here as written:
# https://docs.slack.dev/reference/block-kit/blocks/data-visualization-block
CHART_KINDS = ("pie", "bar", "area", "line")
MAX_CHART_TITLE = 50  # the block's title (required)
MAX_AXIS_LABEL = 50  # axis_config's x_label and y_label
MAX_CHART_LABEL = 20  # a category, a data point's label, a series' name, a segment's label
MAX_CHART_SERIES = 6  # bar, area, line: 1 to 6 series; pie: 1 to 6 segments
MAX_CHART_POINTS = 20  # a series: 1 to 20 data points, their labels among the axis' categories
MAX_CHARTS = 2  # charts in one message
# https://docs.slack.dev/reference/block-kit/blocks/table-block
MAX_TABLE_ROWS = 100
MAX_TABLE_CELLS = 20  # cells in a row; column_settings items
MAX_TABLES = 1  # tables in one message (a second one is refused)
COLUMN_ALIGN = ("left", "center", "right")
# https://docs.slack.dev/reference/block-kit/blocks/data-table-block
MAX_DATA_TABLE_ROWS = 101  # the header and 100 rows (at least 2)
MAX_DATA_TABLE_PAGE = 100  # page_size 1..100
MAX_TABLE_CHARS = 10_000  # the cells of a table, and of every table in one message
NATIVE_TYPES = ("data_visualization", "table", "data_table")
NO_SDK_MODEL = ("data_visualization", "data_table")  # checked by the checkers above alone


@dataclass(frozen=True)
class Recorded:
    method: str  # Slack method ("chat.postMessage"), or "response_url"
    headers: dict[str, str]  # lower-case names
    args: dict[str, Any]  # parsed arguments, JSON fields decoded (a form/query ``token`` is left out)
    status: int
    response: Any
    body: bytes = b""
    team: str | None = None  # the workspace whose token answered (None: no valid token, or none needed)


@dataclass
class StepRun:
    """One run of an app's custom step (see :meth:`FakeSlackApi.start_run`)."""

    execution: str  # function_execution_id
    callback_id: str
    team: str
    token: str  # the run's workflow token (the event's bot_access_token)
    pointer: str | None  # the interactivity pointer (None: no person started it)
    user: str  # who started the workflow (the interactor)
    inputs: dict[str, Any]
    declared: dict[str, dict[str, Any]] | None = None  # the step's output parameters, when given
    state: str = "running"  # running | completed | failed
    outputs: dict[str, Any] | None = None
    error: str | None = None


@dataclass
class _BlockFailure(Failure):
    """A failure told to :meth:`FakeSlackApi.fail`: for every call, or only a message holding a block of
    ``block_type``."""

    block_type: str | None = None

    def applies(self, args: dict[str, Any]) -> bool:
        if self.block_type is None:
            return True
        blocks = args.get("blocks")
        return isinstance(blocks, list) and any(isinstance(b, dict) and b.get("type") == self.block_type
                                                for b in blocks)


@dataclass
class _Token:
    team: str
    expires_at: float | None = None  # real time (slack_sdk's rotation decides by real time too)
    revoked: bool = False


@dataclass
class _Install:
    """One workspace's installation of the app, as slack.com keeps it."""

    team: str
    name: str
    installer: str
    scopes: list[str]
    rotation: bool
    expires_in: int
    tokens: list[str] = field(default_factory=list)  # every access token issued, oldest first
    refresh: str | None = None  # the one refresh token that works now (rotation)


def bot_user_of(team: str) -> str:
    """The bot user's ID in a workspace (``UBOT`` in T1, as before many workspaces)."""
    return BOT_USER_ID if team == TEAM_ID else f"UBOT{team}"


def bot_id_of(team: str) -> str:
    return BOT_ID if team == TEAM_ID else f"BBOT{team}"


def _error(code: str, **extra: Any) -> dict[str, Any]:
    return {"ok": False, "error": code, **extra}


def dm_channel_id(user_id: str) -> str:
    """The fake's stable DM channel id for ``user_id`` (what ``conversations.open`` returns)."""
    return "D" + hashlib.sha1(user_id.encode()).hexdigest()[:10].upper()


def _text_of(obj: Any) -> str | None:
    if isinstance(obj, dict) and isinstance(obj.get("text"), str):
        return obj["text"]
    return obj if isinstance(obj, str) else None


def _action_ids(node: Any) -> list[str]:
    """Every ``action_id`` anywhere inside ``node`` (a block)."""
    found: list[str] = []
    if isinstance(node, dict):
        if isinstance(node.get("action_id"), str):
            found.append(node["action_id"])
        for value in node.values():
            found.extend(_action_ids(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_action_ids(item))
    return found


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_string(errors: list[str], where: str, value: Any, limit: int, required: bool = True) -> None:
    if value is None and not required:
        return
    if not isinstance(value, str) or not value:
        errors.append(f"{where}: must be a non-empty string (got {value!r:.40})")
    elif len(value) > limit:
        errors.append(f"{where}: {len(value)} chars (max {limit})")


def _check_fields(errors: list[str], where: str, obj: dict[str, Any], allowed: set[str]) -> None:
    if unknown := sorted(set(obj) - allowed):
        errors.append(f"{where}: unknown field(s) {', '.join(unknown)}")


def _check_list(errors: list[str], where: str, value: Any, low: int, high: int) -> list[Any]:
    """``value`` as a list of ``low``..``high`` items ([] with an error when it is not one)."""
    if not isinstance(value, list):
        errors.append(f"{where}: must be a list (got {type(value).__name__})")
        return []
    if not low <= len(value) <= high:
        errors.append(f"{where}: {len(value)} items (must be {low}..{high})")
    return value


def _check_axis(errors: list[str], where: str, axis: Any) -> list[str]:
    """An Axis Config; its categories (valid ones only)."""
    if not isinstance(axis, dict):
        errors.append(f"{where}: required object")
        return []
    _check_fields(errors, where, axis, {"categories", "x_label", "y_label"})
    for key in ("x_label", "y_label"):
        _check_string(errors, f"{where}.{key}", axis.get(key), MAX_AXIS_LABEL, required=False)
    categories = _check_list(errors, f"{where}.categories", axis.get("categories"), 1, MAX_CHART_POINTS)
    for j, cat in enumerate(categories):
        _check_string(errors, f"{where}.categories[{j}]", cat, MAX_CHART_LABEL)
    if len(set(map(str, categories))) != len(categories):
        errors.append(f"{where}.categories: not unique")
    return [c for c in categories if isinstance(c, str)]


def _check_series(errors: list[str], where: str, series: Any, categories: list[str]) -> None:
    """A bar, area or line chart's series: named uniquely, one number for each category, in order."""
    names = []
    for j, one in enumerate(_check_list(errors, where, series, 1, MAX_CHART_SERIES)):
        here = f"{where}[{j}]"
        if not isinstance(one, dict):
            errors.append(f"{here}: must be an object")
            continue
        _check_fields(errors, here, one, {"name", "data"})
        _check_string(errors, f"{here}.name", one.get("name"), MAX_CHART_LABEL)
        names.append(one.get("name"))
        points = _check_list(errors, f"{here}.data", one.get("data"), 1, MAX_CHART_POINTS)
        labels = []
        for k, point in enumerate(points):
            if not isinstance(point, dict):
                errors.append(f"{here}.data[{k}]: must be an object")
                continue
            _check_fields(errors, f"{here}.data[{k}]", point, {"label", "value"})
            _check_string(errors, f"{here}.data[{k}].label", point.get("label"), MAX_CHART_LABEL)
            if not _is_number(point.get("value")):
                errors.append(f"{here}.data[{k}].value: must be a finite number (got {point.get('value')!r:.20})")
            labels.append(point.get("label"))
        if categories and labels != categories:
            errors.append(f"{here}.data: labels {labels!r:.80} are not the axis' categories in order")
    if len(set(map(str, names))) != len(names):
        errors.append(f"{where}: series names not unique")


def check_chart(raw: dict[str, Any], here: str) -> list[str]:
    """A ``data_visualization`` block against its documented fields and limits."""
    errors: list[str] = []
    _check_fields(errors, here, raw, {"type", "title", "chart", "block_id"})
    _check_string(errors, f"{here}.title", raw.get("title"), MAX_CHART_TITLE)
    chart = raw.get("chart")
    if not isinstance(chart, dict) or chart.get("type") not in CHART_KINDS:
        return [*errors, f"{here}.chart: needs a type, one of {', '.join(CHART_KINDS)} (got {chart!r:.60})"]
    if chart["type"] == "pie":
        _check_fields(errors, f"{here}.chart", chart, {"type", "segments"})
        for j, seg in enumerate(_check_list(errors, f"{here}.chart.segments", chart.get("segments"), 1,
                                            MAX_CHART_SERIES)):
            seg = seg if isinstance(seg, dict) else {}
            _check_string(errors, f"{here}.chart.segments[{j}].label", seg.get("label"), MAX_CHART_LABEL)
            if not (_is_number(seg.get("value")) and seg["value"] > 0):
                errors.append(f"{here}.chart.segments[{j}].value: must be a number above 0")
        return errors
    _check_fields(errors, f"{here}.chart", chart, {"type", "series", "axis_config"})
    categories = _check_axis(errors, f"{here}.chart.axis_config", chart.get("axis_config"))
    _check_series(errors, f"{here}.chart.series", chart.get("series"), categories)
    return errors


def _chars(node: Any) -> int:
    """The characters of the text in a cell (a raw cell's, or every text of a rich_text cell)."""
    if isinstance(node, dict):
        own = len(node["text"]) if isinstance(node.get("text"), str) else 0
        return own + sum(_chars(v) for k, v in node.items() if k != "text")
    if isinstance(node, list):
        return sum(_chars(v) for v in node)
    return 0


def _check_cells(errors: list[str], where: str, rows: list[Any], rich_header: bool = True) -> int:
    """The rows of a table or data table: cells of one width, each checked with slack_sdk's model of its
    type; the characters of their text."""
    chars = 0
    widths = set()
    for j, row in enumerate(rows):
        for k, cell in enumerate(_check_list(errors, f"{where}[{j}]", row, 1, MAX_TABLE_CELLS)):
            here = f"{where}[{j}][{k}]"
            kind = cell.get("type") if isinstance(cell, dict) else None
            model = {"raw_text": RawTextObject, "raw_number": RawNumberObject}.get(str(kind))
            try:
                if kind == "rich_text" and (rich_header or j > 0):
                    RichTextBlock(**{k2: v for k2, v in cell.items() if k2 != "type"}).validate_json()
                elif model is not None:
                    model(**{k2: v for k2, v in cell.items() if k2 != "type"}).validate_json()
                else:
                    errors.append(f"{here}: cell type {kind!r} not allowed here")
            except Exception as exc:
                errors.append(f"{here}: sdk: {_one_line(exc)}")
            chars += _chars(cell)
        widths.add(len(row) if isinstance(row, list) else 0)
    if len(widths) > 1:
        errors.append(f"{where}: rows of different widths {sorted(widths)}")
    return chars


def check_table(raw: dict[str, Any], here: str) -> tuple[list[str], int]:
    """A ``table`` block's documented limits beyond slack_sdk's model (which checks only that it has
    rows); the characters of its cells."""
    errors: list[str] = []
    rows = _check_list(errors, f"{here}.rows", raw.get("rows"), 1, MAX_TABLE_ROWS)
    chars = _check_cells(errors, f"{here}.rows", rows)
    settings = raw.get("column_settings")
    for j, setting in enumerate(_check_list(errors, f"{here}.column_settings", settings, 0, MAX_TABLE_CELLS)
                                if settings is not None else []):
        setting = setting if isinstance(setting, dict) else {}
        _check_fields(errors, f"{here}.column_settings[{j}]", setting, {"align", "is_wrapped"})
        if setting.get("align", "left") not in COLUMN_ALIGN:
            errors.append(f"{here}.column_settings[{j}].align: {setting.get('align')!r}")
        if not isinstance(setting.get("is_wrapped", False), bool):
            errors.append(f"{here}.column_settings[{j}].is_wrapped: must be a boolean")
    if chars > MAX_TABLE_CHARS:
        errors.append(f"{here}: {chars} characters in its cells (max {MAX_TABLE_CHARS})")
    return errors, chars


def check_data_table(raw: dict[str, Any], here: str) -> tuple[list[str], int]:
    """A ``data_table`` block against its documented fields and limits; the characters of its cells."""
    errors: list[str] = []
    _check_fields(errors, here, raw, {"type", "rows", "block_id", "page_size", "caption", "row_header_column_index"})
    _check_string(errors, f"{here}.caption", raw.get("caption"), MAX_TEXT)
    rows = _check_list(errors, f"{here}.rows", raw.get("rows"), 2, MAX_DATA_TABLE_ROWS)
    chars = _check_cells(errors, f"{here}.rows", rows, rich_header=False)
    page = raw.get("page_size", 5)
    if not (isinstance(page, int) and not isinstance(page, bool) and 1 <= page <= MAX_DATA_TABLE_PAGE):
        errors.append(f"{here}.page_size: {page!r} (must be 1..{MAX_DATA_TABLE_PAGE})")
    index = raw.get("row_header_column_index", 0)
    width = len(rows[0]) if rows and isinstance(rows[0], list) else 1
    if not (isinstance(index, int) and not isinstance(index, bool) and 0 <= index < width):
        errors.append(f"{here}.row_header_column_index: {index!r} (a column of the table)")
    if chars > MAX_TABLE_CHARS:
        errors.append(f"{here}: {chars} characters in its cells (max {MAX_TABLE_CHARS})")
    return errors, chars


def _check_native(raw: dict[str, Any], here: str, errors: list[str]) -> int:
    """Slack's charts and tables; the characters of a table's cells (0 for a chart)."""
    if raw.get("type") == "data_visualization":
        errors += check_chart(raw, here)
        return 0
    found, chars = (check_table if raw.get("type") == "table" else check_data_table)(raw, here)
    errors += found
    return chars


def check_blocks(blocks: Any, where: str = "blocks", max_blocks: int = MAX_MESSAGE_BLOCKS) -> list[str]:
    """slack_sdk model validation plus Slack limits for one message's or view's ``blocks``."""
    if not isinstance(blocks, list):
        return [f"{where}: must be a list of blocks (got {type(blocks).__name__})"]
    errors: list[str] = []
    if len(blocks) > max_blocks:
        errors.append(f"{where}: {len(blocks)} blocks (max {max_blocks})")
    block_ids: dict[str, int] = {}
    action_ids: dict[str, int] = {}
    table_chars = 0
    kinds = [b.get("type") for b in blocks if isinstance(b, dict)]
    if kinds.count("data_visualization") > MAX_CHARTS:
        errors.append(f"{where}: {kinds.count('data_visualization')} charts (max {MAX_CHARTS})")
    if kinds.count("table") > MAX_TABLES:
        errors.append(f"{where}: {kinds.count('table')} tables (max {MAX_TABLES})")
    for i, raw in enumerate(blocks):
        here = f"{where}[{i}]"
        if not isinstance(raw, dict):
            errors.append(f"{here}: block must be an object (got {type(raw).__name__})")
            continue
        if raw.get("type") in NATIVE_TYPES:
            table_chars += _check_native(raw, here, errors)
        if raw.get("type") in NO_SDK_MODEL:
            block = None
        else:
            try:
                block = Block.parse(copy.deepcopy(raw))
            except Exception as exc:
                errors.append(f"{here}: sdk cannot parse {raw.get('type')!r} block: {_one_line(exc)}")
                block = None
            else:
                if block is None:
                    errors.append(f"{here}: unknown block type {raw.get('type')!r}")
        if block is not None:
            try:
                block.validate_json()
            except Exception as exc:
                errors.append(f"{here} ({raw.get('type')}): sdk: {_one_line(exc)}")
        if raw.get("type") == "section":
            text = _text_of(raw.get("text"))
            if text is not None and len(text) > MAX_SECTION_TEXT:
                errors.append(f"{here}.text: {len(text)} chars (max {MAX_SECTION_TEXT})")
        block_id = raw.get("block_id")
        if isinstance(block_id, str):
            if block_id in block_ids:
                errors.append(f"{here}: duplicate block_id {block_id!r} (also {where}[{block_ids[block_id]}])")
            block_ids.setdefault(block_id, i)
        for action_id in _action_ids(raw):
            if action_id in action_ids:
                errors.append(f"{here}: duplicate action_id {action_id!r} (also {where}[{action_ids[action_id]}])")
            action_ids.setdefault(action_id, i)
    if table_chars > MAX_TABLE_CHARS:
        errors.append(f"{where}: {table_chars} characters in its tables' cells (max {MAX_TABLE_CHARS})")
    return errors


def check_message(args: dict[str, Any]) -> list[str]:
    """Limits for a chat.* / response_url message: ``text`` and ``blocks``."""
    errors: list[str] = []
    text = args.get("text")
    if text is not None and not isinstance(text, str):
        errors.append(f"text: must be a string (got {type(text).__name__})")
    elif isinstance(text, str) and len(text) > MAX_TEXT:
        errors.append(f"text: {len(text)} chars (max {MAX_TEXT})")
    if "blocks" in args and args["blocks"] is not None:
        errors += check_blocks(args["blocks"], "blocks", MAX_MESSAGE_BLOCKS)
    metadata = args.get("metadata")
    if metadata is not None and not (
        isinstance(metadata, dict)
        and isinstance(metadata.get("event_type"), str)
        and metadata["event_type"]
        and isinstance(metadata.get("event_payload"), dict)
    ):
        errors.append(
            f"metadata: needs a non-empty string event_type and an object event_payload (got {metadata!r:.80})"
        )
    return errors


def check_view(view: Any, where: str = "view") -> list[str]:
    """slack_sdk ``View`` validation plus Slack limits for a modal / home tab view."""
    if not isinstance(view, dict):
        return [f"{where}: must be an object (got {type(view).__name__})"]
    errors: list[str] = []
    kind = view.get("type")
    if kind not in VIEW_TYPES:
        errors.append(f"{where}.type: {kind!r} (must be one of {', '.join(VIEW_TYPES)})")
    try:
        View(**copy.deepcopy(view)).validate_json()
    except Exception as exc:
        errors.append(f"{where}: sdk: {_one_line(exc)}")
    errors += check_blocks(view.get("blocks"), f"{where}.blocks", MAX_VIEW_BLOCKS)
    if kind == "modal":
        if view.get("title") is None:
            errors.append(f"{where}.title: a modal needs a title")
        for key in ("title", "submit", "close"):
            value = view.get(key)
            if value is None:
                continue
            if not isinstance(value, dict) or value.get("type") != "plain_text":
                errors.append(f"{where}.{key}: must be a plain_text object (got {value!r:.60})")
            text = _text_of(value)
            if text is not None and not 1 <= len(text) <= MAX_VIEW_LABEL:
                errors.append(f"{where}.{key}: {len(text)} chars (must be 1..{MAX_VIEW_LABEL})")
        blocks = view.get("blocks")
        has_input = isinstance(blocks, list) and any(isinstance(b, dict) and b.get("type") == "input" for b in blocks)
        if has_input and view.get("submit") is None:
            errors.append(f"{where}.submit: a modal with input blocks needs a submit button")
    callback_id = view.get("callback_id")
    if isinstance(callback_id, str) and len(callback_id) > MAX_CALLBACK_ID:
        errors.append(f"{where}.callback_id: {len(callback_id)} chars (max {MAX_CALLBACK_ID})")
    metadata = view.get("private_metadata")
    if metadata is not None and not isinstance(metadata, str):
        errors.append(f"{where}.private_metadata: must be a string (got {type(metadata).__name__})")
    elif isinstance(metadata, str) and len(metadata) > MAX_PRIVATE_METADATA:
        errors.append(f"{where}.private_metadata: {len(metadata)} chars (max {MAX_PRIVATE_METADATA})")
    return errors


def parse_args(content_type: str, body: bytes, query: str = "") -> tuple[dict[str, Any], str | None, list[str]]:
    """Arguments of one Web API request: ``(args, form_token, problems)``.

    Query-string and form fields are merged with the JSON body; JSON-valued fields that arrive as strings
    are decoded. A ``token`` form/query field (which Slack accepts instead of the header) is split out.
    """
    problems: list[str] = []
    args: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
    kind = content_type.split(";")[0].strip().lower()
    if body:
        if kind == "application/json":
            try:
                data = json.loads(body)
            except ValueError as exc:
                problems.append(f"invalid_json: body is not valid JSON ({exc})")
                data = {}
            if isinstance(data, dict):
                args.update(data)
            else:
                problems.append(f"invalid_json: body must be a JSON object (got {type(data).__name__})")
        elif kind == "application/x-www-form-urlencoded":
            args.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        else:
            problems.append(f"unsupported Content-Type {content_type!r}")
    token = args.pop("token", None) if kind != "application/json" else None
    for key in JSON_FIELDS:
        value = args.get(key)
        if isinstance(value, str) and value.strip():
            try:
                args[key] = json.loads(value)
            except ValueError as exc:
                problems.append(f"{key}: not valid JSON ({exc})")
    return args, token if isinstance(token, str) else None, problems


class FakeSlackApi(FakeHttpApi):
    name = "Slack API"
    content_type = "application/json; charset=utf-8"

    def __init__(self, bot_token: str = "xoxb-test-token", *, client_id: str = CLIENT_ID,
                 client_secret: str = CLIENT_SECRET) -> None:
        super().__init__()
        self.bot_token = bot_token
        self.client_id = client_id
        self.client_secret = client_secret
        self._token_counter = itertools.count(1)
        self.refreshed_expires_in = ROTATION_EXPIRES_IN  # a refreshed token's life (an install's: approve())
        self._ts_counter = itertools.count(100, 100)  # never reset: ts stay unique across reset()
        self._view_counter = itertools.count(1)
        self._dm_users: dict[str, str] = {}  # DM channel id -> user id (stable, never reset)
        self._file_counter = itertools.count(1)  # never reset: file ids stay unique across reset()
        self._methods: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.delete": self._chat_delete,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "views.open": self._views_open,
            "views.push": self._views_push,
            "views.update": self._views_update,
            "views.publish": self._views_publish,
            "conversations.open": self._conversations_open,
            "conversations.info": self._conversations_info,
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
            "reactions.add": self._reactions_add,
            "users.info": self._users_info,
            "files.getUploadURLExternal": self._files_get_upload_url,
            "files.completeUploadExternal": self._files_complete_upload,
            "functions.completeSuccess": self._functions_complete_success,
            "functions.completeError": self._functions_complete_error,
        }
        self._team = TEAM_ID  # the workspace of the request being answered (lock held)
        self._token = ""  # the token of the request being answered (lock held)
        self._run_counter = itertools.count(1)  # never reset: execution ids stay unique across reset()
        self._clear()

    def _clear(self) -> None:
        self._records: list[Recorded] = []
        self._failures: dict[str, list[_BlockFailure]] = {}
        self._messages: dict[str, list[dict[str, Any]]] = {}
        self._ephemerals: dict[str, list[dict[str, Any]]] = {}
        self._views: dict[str, dict[str, Any]] = {}
        self._opened: list[str] = []  # view ids from views.open / views.push, in order
        self._home: dict[str, str] = {}  # user id -> view id
        self._used_triggers: set[str] = set()
        self._archived: set[str] = set()
        self._removed: set[str] = set()
        self._responses: dict[str, list[dict[str, Any]]] = {}
        self._tokens: dict[str, _Token] = {self.bot_token: _Token(TEAM_ID)} if self.bot_token else {}
        self._installs: dict[str, _Install] = {}
        self._codes: dict[str, dict[str, Any]] = {}  # code -> the approved install (used once)
        self._refresh_tokens: dict[str, str] = {}  # refresh token -> workspace (each works once)
        self._files: dict[str, dict[str, Any]] = {}  # file id -> the file (its bytes once uploaded)
        self._upload_keys: dict[str, str] = {}  # upload URL key -> file id
        self._runs: dict[str, StepRun] = {}  # execution id -> the custom step's run
        self._pointers: dict[str, str] = {}  # interactivity pointer -> execution id (used once)
        self._view_runs: dict[str, str] = {}  # view id -> the run whose token opened it
        self.contract_errors.clear()

    @property
    def base_url(self) -> str:
        """The Web API base URL, with the trailing slash slack_sdk expects."""
        return self.root_url + API_PREFIX

    # -- test controls ---------------------------------------------------------------------------
    def fail(
        self,
        method: str,
        error: str | None = None,
        status: int = 200,
        times: int = 1,
        headers: dict[str, str] | None = None,
        *,
        block_type: str | None = None,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` with ``{"ok": false, "error": error}`` and ``status``.

        ``error`` defaults to ``ratelimited`` for 429 (with ``Retry-After: 1`` unless ``headers`` are given)
        and ``internal_error`` otherwise. Nothing is posted or opened by a failed call. ``block_type``: only
        the calls whose ``blocks`` hold a block of that type fail (the others are served), as Slack answers
        ``invalid_blocks`` where a block is not available: ``fail("chat.postMessage", "invalid_blocks",
        block_type="data_visualization", times=99)``.
        """
        if error is None:
            error = "ratelimited" if status == 429 else "internal_error"
        if headers is None:
            headers = {"Retry-After": "1"} if status == 429 else {}
        failure = _BlockFailure(status, times, _error(error), dict(headers), block_type=block_type)
        with self._lock:
            self._failures.setdefault(method, []).append(failure)

    def archive(self, channel_id: str) -> None:
        """Posting to ``channel_id`` now answers ``is_archived``; conversations.info shows it archived."""
        with self._lock:
            self._archived.add(channel_id)

    def remove_bot(self, channel_id: str) -> None:
        """The bot is no longer a member of ``channel_id``: posting there answers ``not_in_channel``."""
        with self._lock:
            self._removed.add(channel_id)

    def approve(self, authorize_url: str, team: str, *, user: str = "U0INSTALLER", name: str | None = None,
                rotation: bool = False, expires_in: int = ROTATION_EXPIRES_IN) -> dict[str, str]:
        """What slack.com does when ``user`` approves the install that ``authorize_url`` asks for in
        workspace ``team``: the query Slack redirects the browser with (``code`` and ``state``).
        ``rotation``: the app has token rotation on (this token expires after ``expires_in`` seconds, the
        refreshed ones after ``refreshed_expires_in``, 12 hours)."""
        parts = urlsplit(authorize_url)
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        if f"{parts.scheme}://{parts.netloc}{parts.path}" != AUTHORIZE_URL:
            raise AssertionError(f"not Slack's authorize URL: {authorize_url[:60]!r}")
        if query.get("client_id") != self.client_id:
            raise AssertionError(f"authorize URL for another app: client_id {query.get('client_id')!r}")
        code = f"{team}.{secrets.token_hex(12)}"
        with self._lock:
            self._codes[code] = {
                "team": team, "name": name or f"Workspace {team}", "user": user, "rotation": rotation,
                "expires_in": expires_in, "scopes": [x for x in query.get("scope", "").split(",") if x],
                "redirect_uri": query.get("redirect_uri"),
            }
        return {"code": code, "state": query.get("state", "")}

    def uninstall(self, team: str) -> None:
        """The app is removed from ``team``: every token and refresh token of it stops working."""
        with self._lock:
            for token in self._tokens.values():
                if token.team == team:
                    token.revoked = True
            self._refresh_tokens = {k: v for k, v in self._refresh_tokens.items() if v != team}
            self._installs.pop(team, None)

    def tokens_of(self, team: str) -> list[str]:
        """The access tokens issued for ``team`` (oldest first) that still work."""
        now = time.time()
        with self._lock:
            return [t for t, v in self._tokens.items()
                    if v.team == team and not v.revoked and (v.expires_at is None or v.expires_at > now)]

    def start_run(self, callback_id: str, inputs: dict[str, Any] | None = None, *, team: str = TEAM_ID,
                  user: str | None = "U0RUNNER", output_parameters: dict[str, dict[str, Any]] | None = None,
                  ) -> StepRun:
        """A workflow reaches the app's step ``callback_id`` in ``team``: a run with its own token, started by
        ``user`` (None: no person, so no interactivity pointer). ``inputs`` as the workflow gives them; the
        run's ``interactivity`` input is added for a person. ``output_parameters``: the step's declared
        outputs (the manifest's), which the completion is checked against."""
        n = next(self._run_counter)
        execution = f"Fx{n:010d}"
        token = f"xwfp-{team}-{n}-{secrets.token_hex(8)}"
        pointer = f"{n}.{secrets.randbelow(10**12)}.{secrets.token_hex(8)}" if user else None
        given = copy.deepcopy(inputs or {})
        if pointer is not None:
            given["interactivity"] = {"interactor": {"id": user, "secret": secrets.token_hex(16)},
                                      "interactivity_pointer": pointer}
        run = StepRun(execution, callback_id, team, token, pointer, user or "", given,
                      copy.deepcopy(output_parameters))
        with self._lock:
            self._runs[execution] = run
            self._tokens[token] = _Token(team)
            if pointer is not None:
                self._pointers[pointer] = execution
        return copy.deepcopy(run)

    def run(self, execution: str) -> StepRun | None:
        """A run as it stands (its state, outputs or error)."""
        with self._lock:
            found = self._runs.get(execution)
            return copy.deepcopy(found) if found else None

    def run_of_view(self, view_id: str) -> str | None:
        """The run a view belongs to (it was opened with the run's token), or None."""
        with self._lock:
            return self._view_runs.get(view_id)

    def expire_run_token(self, execution: str) -> None:
        """The run's workflow token runs out (Slack's last 15 minutes at most): calls with it get token_expired."""
        with self._lock:
            self._tokens[self._runs[execution].token].expires_at = time.time() - 1

    def installed(self, team: str) -> bool:
        with self._lock:
            return team in self._installs

    def new_response_url(self) -> str:
        """A ``response_url`` served by this fake (e.g. for slash_command_body(response_url=...))."""
        key = secrets.token_hex(8)
        with self._lock:
            self._responses[key] = []
        return f"{self.root_url}{RESPONSE_PREFIX}{key}"

    def reset(self) -> None:
        with self._lock:
            self._clear()

    # -- inspection ------------------------------------------------------------------------------
    def calls(self, method: str | None = None) -> list[Recorded]:
        with self._lock:
            return [copy.deepcopy(r) for r in self._records if method is None or r.method == method]

    def messages(self, channel: str) -> list[dict[str, Any]]:
        """Messages posted to ``channel`` (a user id means the DM with that user), in order, as updated."""
        with self._lock:
            return copy.deepcopy(self._messages.get(self._resolve(channel), []))

    def ephemerals(self, channel: str) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._ephemerals.get(self._resolve(channel), []))

    def opened_views(self) -> list[dict[str, Any]]:
        """Views opened with views.open / views.push, in order, each in its latest (updated) state."""
        with self._lock:
            return [copy.deepcopy(self._views[view_id]) for view_id in self._opened]

    def view(self, view_id: str) -> dict[str, Any] | None:
        with self._lock:
            return copy.deepcopy(self._views.get(view_id))

    def home_view(self, user_id: str) -> dict[str, Any] | None:
        with self._lock:
            view_id = self._home.get(user_id)
            return copy.deepcopy(self._views[view_id]) if view_id else None

    def files(self, channel: str | None = None) -> list[dict[str, Any]]:
        """Completed uploads, in order (``data``: their bytes; ``channels``: where they were shared),
        only those shared in ``channel`` if given (a user id means the DM with that user)."""
        with self._lock:
            where = self._resolve(channel) if channel else None
            return [copy.deepcopy(f) for f in self._files.values()
                    if f["completed"] and (where is None or where in f["channels"])]

    def responses(self, response_url: str) -> list[dict[str, Any]]:
        """Payloads posted to a response_url from :meth:`new_response_url`, in order."""
        key = response_url.rsplit("/", 1)[-1]
        with self._lock:
            return copy.deepcopy(self._responses.get(key, []))

    def summary(self) -> str:
        with self._lock:
            lines = [f"calls ({len(self._records)}):"]
            lines += [
                f"  {r.method} -> {r.status} "
                + ("ok" if isinstance(r.response, dict) and r.response.get("ok") else f"{r.response!r:.80}")
                for r in self._records[-30:]
            ]
            lines.append("messages: " + (", ".join(f"{c}: {len(m)}" for c, m in self._messages.items()) or "none"))
            lines.append(f"views: {len(self._views)} ({len(self._opened)} opened, {len(self._home)} home)")
            lines += ["contract errors:", *(f"  {e}" for e in self.contract_errors)] if self.contract_errors else []
        return "\n".join(lines)

    def wait_messages(self, channel: str, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Wait until at least ``count`` messages were posted to ``channel``; return them."""
        try:
            self.wait_for(lambda fake: len(fake.messages(channel)) >= count, timeout)
        except AssertionError as exc:
            raise AssertionError(f"expected {count} message(s) in {channel}\n{exc}") from None
        return self.messages(channel)

    # -- request handling (called from server threads) ------------------------------------------
    def _contract(self, method: str, args: dict[str, Any], problems: list[str]) -> None:
        errors = list(problems)
        if method.startswith("chat.") or method == "response_url":
            errors += check_message(args)
        elif "blocks" in args:
            errors += check_blocks(args["blocks"])
        if "view" in args:
            errors += check_view(args["view"])
        if errors:
            with self._lock:
                self.contract_errors.extend(f"{method}: {e}" for e in errors)

    def handle_request(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Answer:
        return self._handle(target, headers, body)

    def _handle(self, target: str, headers: dict[str, str], body: bytes) -> Answer:
        path, _, query = target.partition("?")
        if path.startswith(UPLOAD_PREFIX):
            with self._lock:
                answer = self._upload(path[len(UPLOAD_PREFIX):], body)
                self._records.append(Recorded("upload", dict(headers), {}, answer.status, answer.body, body))
                return answer
        args, token, problems = parse_args(headers.get("content-type", ""), body, query)
        if path.startswith(RESPONSE_PREFIX):
            method = "response_url"
        elif path.startswith(API_PREFIX):
            method = path[len(API_PREFIX) :]
        else:
            method = path
        self._contract(method, args, problems)
        if self.delay:
            time.sleep(self.delay)
        with self._lock:
            self._team = ""
            if method == "response_url":
                answer = self._respond(path[len(RESPONSE_PREFIX) :], args, problems)
            else:
                answer = self._route(method, headers, args, token, problems)
            answer.headers.setdefault("X-Slack-Req-Id", secrets.token_hex(16))
            self._records.append(Recorded(method, dict(headers), args, answer.status, copy.deepcopy(answer.body), body,
                                          self._team or None))
            return answer

    def _route(
        self, method: str, headers: dict[str, str], args: dict[str, Any], token: str | None, problems: list[str]
    ) -> Answer:
        queue = self._failures.get(method) or []
        failure = next((f for f in queue if f.applies(args)), None)
        if failure is not None:
            failure.remaining -= 1
            if failure.remaining <= 0:
                queue.remove(failure)
            return Answer(failure.status, copy.deepcopy(failure.body), dict(failure.headers))
        if method == "oauth.v2.access":
            return self._oauth_v2_access(headers, args)
        handler = self._methods.get(method)
        if handler is None:
            return Answer(200, _error("unknown_method", req_method=method))
        auth = headers.get("authorization", "")
        if auth.startswith("Bearer "):
            token = auth[len("Bearer ") :].strip()
        if not token:
            return Answer(200, _error("not_authed"))
        known = self._tokens.get(token)
        if known is None or known.revoked:
            return Answer(200, _error("invalid_auth"))
        if known.expires_at is not None and known.expires_at <= time.time():
            return Answer(200, _error("token_expired"))
        self._team = known.team
        self._token = token
        for problem in problems:
            if problem.startswith("invalid_json"):
                return Answer(200, _error("invalid_json"))
            if problem.startswith("blocks:"):
                return Answer(200, _error("invalid_blocks_format"))
            if problem.startswith(("view:", "attachments:", "metadata:")):
                return Answer(200, _error("invalid_arguments"))
        return Answer(200, handler(args))

    def _respond(self, key: str, args: dict[str, Any], problems: list[str]) -> Answer:
        if key not in self._responses:
            return Answer(404, _error("expired_url"))
        if problems:
            return Answer(400, _error("invalid_payload"))
        self._responses[key].append(copy.deepcopy(args))
        return Answer(200, {"ok": True})

    # -- helpers (lock held) -------------------------------------------------------------------
    def _next_ts(self) -> str:
        n = next(self._ts_counter)
        return f"{EPOCH + n // 1_000_000}.{n % 1_000_000:06d}"

    def _resolve(self, channel: str) -> str:
        """Slack lets chat.postMessage take a user id: it posts to the DM with that user."""
        if channel[:1] not in ("U", "W"):
            return channel
        dm = dm_channel_id(channel)
        self._dm_users[dm] = channel
        return dm

    def _channel_error(self, channel: str) -> dict[str, Any] | None:
        if channel in self._archived:
            return _error("is_archived")
        if channel in self._removed:
            return _error("not_in_channel")
        return None

    def _find_message(self, channel: str, ts: str) -> dict[str, Any] | None:
        return next((m for m in self._messages.get(channel, []) if m["ts"] == ts), None)

    def _new_view(self, view: dict[str, Any], view_id: str | None = None, **extra: Any) -> dict[str, Any]:
        view_id = view_id or f"V{next(self._view_counter)}"
        fixed = {"id", "team_id", "state", "hash", "app_id", "bot_id", "root_view_id", "previous_view_id"}
        obj: dict[str, Any] = {
            "id": view_id,
            "team_id": self._team or TEAM_ID,
            "type": view.get("type"),
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
            "app_installed_team_id": self._team or TEAM_ID,
            "bot_id": bot_id_of(self._team or TEAM_ID),
        }
        obj.update({k: copy.deepcopy(v) for k, v in view.items() if k not in fixed})
        obj.update(extra)
        self._views[view_id] = obj
        return obj

    def _external_id_taken(self, view: dict[str, Any], own_id: str | None = None) -> bool:
        external_id = view.get("external_id")
        return bool(external_id) and any(
            v["external_id"] == external_id and v["id"] != own_id for v in self._views.values()
        )

    # -- OAuth (lock held) -----------------------------------------------------------------------
    def _client_credentials(self, headers: dict[str, str], args: dict[str, Any]) -> tuple[str, str]:
        """The app's client ID and secret: HTTP Basic (as slack_sdk sends them), else form fields."""
        auth = headers.get("authorization", "")
        if auth.startswith("Basic "):
            try:
                client_id, _, secret = base64.b64decode(auth[6:].strip()).decode().partition(":")
            except ValueError:
                return "", ""
            return client_id, secret
        return str(args.get("client_id") or ""), str(args.get("client_secret") or "")

    def _issue(self, install: _Install, refreshed: bool = False) -> dict[str, Any]:
        """A new access token for an installation (and, with rotation, its new refresh token)."""
        n = next(self._token_counter)
        if refreshed:
            install.expires_in = self.refreshed_expires_in
        if install.rotation:
            token = f"xoxe.xoxb-1-{install.team}-{n}-{secrets.token_hex(6)}"
            install.refresh = f"xoxe-1-{install.team}-{n}-{secrets.token_hex(6)}"
            self._refresh_tokens[install.refresh] = install.team
            self._tokens[token] = _Token(install.team, time.time() + install.expires_in)
        else:
            token = f"xoxb-{install.team}-{n}-{secrets.token_hex(6)}"
            self._tokens[token] = _Token(install.team)
        install.tokens.append(token)
        answer: dict[str, Any] = {
            "ok": True, "access_token": token, "token_type": "bot", "scope": ",".join(install.scopes),
            "bot_user_id": bot_user_of(install.team), "app_id": APP_ID,
            "team": {"id": install.team, "name": install.name}, "enterprise": None,
            "is_enterprise_install": False, "authed_user": {"id": install.installer},
        }
        if install.rotation:
            answer |= {"refresh_token": install.refresh, "expires_in": install.expires_in}
        return answer

    def _oauth_v2_access(self, headers: dict[str, str], args: dict[str, Any]) -> Answer:
        client_id, secret = self._client_credentials(headers, args)
        if client_id != self.client_id:
            return Answer(200, _error("invalid_client_id"))
        if secret != self.client_secret:
            return Answer(200, _error("bad_client_secret"))
        if args.get("grant_type") == "refresh_token":
            team = self._refresh_tokens.pop(str(args.get("refresh_token") or ""), None)  # works once
            install = self._installs.get(team or "")
            if install is None:
                return Answer(200, _error("invalid_refresh_token"))
            self._team = install.team
            return Answer(200, self._issue(install, refreshed=True))
        grant = self._codes.pop(str(args.get("code") or ""), None)  # a code works once
        if grant is None:
            return Answer(200, _error("invalid_code"))
        if grant["redirect_uri"] is not None and args.get("redirect_uri") != grant["redirect_uri"]:
            return Answer(200, _error("bad_redirect_uri"))
        install = _Install(grant["team"], grant["name"], grant["user"], grant["scopes"], grant["rotation"],
                           grant["expires_in"])
        old = self._installs.get(install.team)
        if old is not None and old.refresh:  # a reinstall replaces the refresh token
            self._refresh_tokens.pop(old.refresh, None)
        self._installs[install.team] = install
        self._team = install.team
        return Answer(200, self._issue(install))

    # -- methods (lock held) ---------------------------------------------------------------------
    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        team = self._team
        install = self._installs.get(team)
        return {
            "ok": True,
            "url": TEAM_URL if team == TEAM_ID else f"https://{team.lower()}.slack.com/",
            "team": install.name if install else TEAM_NAME,
            "user": BOT_NAME,
            "team_id": team,
            "user_id": bot_user_of(team),
            "bot_id": bot_id_of(team),
            "is_enterprise_install": False,
        }

    def _chat_post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        raw_channel = args.get("channel")
        if not isinstance(raw_channel, str) or not raw_channel:
            return _error("channel_not_found")
        channel = self._resolve(raw_channel)
        if (err := self._channel_error(channel)) is not None:
            return err
        if not args.get("text") and not args.get("blocks") and not args.get("attachments"):
            return _error("no_text")
        ts = self._next_ts()
        message: dict[str, Any] = {
            "type": "message",
            "channel": channel,
            "user": bot_user_of(self._team),
            "bot_id": bot_id_of(self._team),
            "app_id": APP_ID,
            "team": self._team,
            "text": args.get("text") or "",
            "ts": ts,
        }
        for key in ("blocks", "attachments", "thread_ts", "metadata"):
            if args.get(key) is not None:
                message[key] = copy.deepcopy(args[key])
        self._messages.setdefault(channel, []).append(message)
        reply = {k: v for k, v in message.items() if k != "channel"}
        return {"ok": True, "channel": channel, "ts": ts, "message": copy.deepcopy(reply)}

    def _chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._resolve(str(args.get("channel") or ""))
        if not channel:
            return _error("channel_not_found")
        if (err := self._channel_error(channel)) is not None:
            return err
        message = self._find_message(channel, str(args.get("ts") or ""))
        if message is None:
            return _error("message_not_found")
        for key in ("text", "blocks", "attachments", "metadata"):
            if key in args:
                message[key] = copy.deepcopy(args[key])
        message["edited"] = {"user": BOT_USER_ID, "ts": self._next_ts()}
        reply = {k: v for k, v in message.items() if k != "channel"}
        return {"ok": True, "channel": channel, "ts": message["ts"], "text": message["text"], "message": reply}

    def _chat_delete(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._resolve(str(args.get("channel") or ""))
        message = self._find_message(channel, str(args.get("ts") or ""))
        if message is None:
            return _error("message_not_found")
        self._messages[channel].remove(message)
        return {"ok": True, "channel": channel, "ts": message["ts"]}

    def _chat_post_ephemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._resolve(str(args.get("channel") or ""))
        if not channel:
            return _error("channel_not_found")
        user = args.get("user")
        if not isinstance(user, str) or not user:
            return _error("user_not_found")
        if (err := self._channel_error(channel)) is not None:
            return err
        if not args.get("text") and not args.get("blocks") and not args.get("attachments"):
            return _error("no_text")
        ts = self._next_ts()
        message: dict[str, Any] = {"type": "message", "channel": channel, "user": user, "ts": ts}
        message["text"] = args.get("text") or ""
        for key in ("blocks", "attachments", "thread_ts"):
            if args.get(key) is not None:
                message[key] = copy.deepcopy(args[key])
        self._ephemerals.setdefault(channel, []).append(message)
        return {"ok": True, "message_ts": ts}

    def _take_trigger(self, args: dict[str, Any]) -> dict[str, Any] | None:
        pointer = args.get("interactivity_pointer")
        if pointer is not None and args.get("trigger_id") is None:
            execution = self._pointers.get(pointer) if isinstance(pointer, str) else None
            run = self._runs.get(execution or "")
            if run is None or run.team != self._team:
                return _error("invalid_arguments", response_metadata={"messages": ["[ERROR] unknown pointer"]})
            if pointer in self._used_triggers:
                return _error("trigger_exchanged")
            self._used_triggers.add(pointer)
            return None
        trigger_id = args.get("trigger_id")
        if not isinstance(trigger_id, str) or not trigger_id:
            return _error("invalid_arguments", response_metadata={"messages": ["[ERROR] missing trigger_id"]})
        if trigger_id in self._used_triggers:
            return _error("trigger_exchanged")
        self._used_triggers.add(trigger_id)
        return None

    def _views_open(self, args: dict[str, Any], pushed: bool = False) -> dict[str, Any]:
        view = args.get("view")
        if not isinstance(view, dict) or view.get("type") not in ("modal", "workflow_step"):
            return _error("invalid_arguments")
        if self._external_id_taken(view):
            return _error("duplicate_external_id")
        if (err := self._take_trigger(args)) is not None:
            return err
        previous = self._views[self._opened[-1]] if pushed and self._opened else None
        extra = {"previous_view_id": previous["id"], "root_view_id": previous["root_view_id"]} if previous else {}
        obj = self._new_view(view, **extra)
        self._opened.append(obj["id"])
        run = next((r for r in self._runs.values() if r.token == self._token), None)
        if run is not None:
            self._view_runs[obj["id"]] = run.execution
        return {"ok": True, "view": copy.deepcopy(obj)}

    def _views_push(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._views_open(args, pushed=True)

    def _views_update(self, args: dict[str, Any]) -> dict[str, Any]:
        view = args.get("view")
        if not isinstance(view, dict):
            return _error("invalid_arguments")
        view_id, external_id = args.get("view_id"), args.get("external_id")
        if view_id:
            current = self._views.get(str(view_id))
        elif external_id:
            current = next((v for v in self._views.values() if v["external_id"] == external_id), None)
        else:
            return _error("invalid_arguments", response_metadata={"messages": ["[ERROR] need view_id or external_id"]})
        if current is None:
            return _error("not_found")
        if args.get("hash") and args["hash"] != current["hash"]:
            return _error("hash_conflict")
        if self._external_id_taken(view, current["id"]):
            return _error("duplicate_external_id")
        keep = {"previous_view_id": current["previous_view_id"], "root_view_id": current["root_view_id"]}
        obj = self._new_view(view, current["id"], **keep)
        return {"ok": True, "view": copy.deepcopy(obj)}

    def _views_publish(self, args: dict[str, Any]) -> dict[str, Any]:
        user_id, view = args.get("user_id"), args.get("view")
        if not isinstance(user_id, str) or not user_id:
            return _error("invalid_arguments", response_metadata={"messages": ["[ERROR] missing user_id"]})
        if not isinstance(view, dict) or view.get("type") != "home":
            return _error("invalid_arguments", response_metadata={"messages": ["[ERROR] view.type must be home"]})
        current_id = self._home.get(user_id)
        if current_id and args.get("hash") and args["hash"] != self._views[current_id]["hash"]:
            return _error("hash_conflict")
        obj = self._new_view(view, current_id)
        self._home[user_id] = obj["id"]
        return {"ok": True, "view": copy.deepcopy(obj)}

    def _conversations_open(self, args: dict[str, Any]) -> dict[str, Any]:
        users = args.get("users")
        if isinstance(users, str):
            users = [u.strip() for u in users.split(",") if u.strip()]
        if args.get("channel") and not users:
            return {"ok": True, "no_op": True, "already_open": True, "channel": {"id": args["channel"]}}
        if not isinstance(users, list) or not users:
            return _error("users_list_not_supplied")
        if len(users) == 1:
            return {"ok": True, "channel": {"id": self._resolve(str(users[0]))}}
        group = "G" + hashlib.sha1(",".join(sorted(map(str, users))).encode()).hexdigest()[:10].upper()
        return {"ok": True, "channel": {"id": group}}

    def _conversations_info(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = args.get("channel")
        if not isinstance(channel, str) or not channel:
            return _error("channel_not_found")
        info: dict[str, Any] = {
            "id": channel,
            "created": EPOCH,
            "is_archived": channel in self._archived,
            "is_member": channel not in self._removed,
        }
        if channel.startswith("D"):
            info |= {"is_im": True, "is_channel": False, "user": self._dm_users.get(channel)}
        else:
            info |= {"name": CHANNEL_NAME, "is_channel": True, "is_im": False, "is_private": channel.startswith("G")}
        return {"ok": True, "channel": info}

    def _conversations_history(self, args: dict[str, Any]) -> dict[str, Any]:
        """Top-level messages (and thread parents), newest first; ``metadata`` only with include_all_metadata."""
        channel = args.get("channel")
        if not isinstance(channel, str) or not channel:
            return _error("channel_not_found")
        if channel in self._removed:
            return _error("not_in_channel")
        try:
            limit = max(1, min(int(args.get("limit") or 100), 999))
            start = int(args.get("cursor") or 0)
        except (TypeError, ValueError):
            return _error("invalid_arguments")
        with_metadata = args.get("include_all_metadata") in (True, 1, "1", "true", "True")
        top = [m for m in self._messages.get(channel, []) if m.get("thread_ts", m["ts"]) == m["ts"]]
        newest_first = sorted(top, key=lambda m: float(m["ts"]), reverse=True)
        page = newest_first[start : start + limit]
        messages = [
            {k: copy.deepcopy(v) for k, v in m.items() if k != "channel" and (with_metadata or k != "metadata")}
            for m in page
        ]
        more = start + limit < len(newest_first)
        return {
            "ok": True,
            "messages": messages,
            "has_more": more,
            "pin_count": 0,
            "response_metadata": {"next_cursor": str(start + limit) if more else ""},
        }

    def _conversations_replies(self, args: dict[str, Any]) -> dict[str, Any]:
        """A thread: its parent, then its replies, oldest first; ``metadata`` only with include_all_metadata."""
        channel, ts = args.get("channel"), args.get("ts")
        if not isinstance(channel, str) or not channel:
            return _error("channel_not_found")
        if channel in self._removed:
            return _error("not_in_channel")
        if self._find_message(channel, str(ts or "")) is None:
            return _error("thread_not_found")
        with_metadata = args.get("include_all_metadata") in (True, 1, "1", "true", "True")
        thread = [m for m in self._messages.get(channel, []) if m["ts"] == ts or m.get("thread_ts") == ts]
        thread.sort(key=lambda m: float(m["ts"]))
        messages = [{k: copy.deepcopy(v) for k, v in m.items() if k != "channel" and (with_metadata or k != "metadata")}
                    for m in thread]
        return {"ok": True, "messages": messages, "has_more": False, "response_metadata": {"next_cursor": ""}}

    def _reactions_add(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, ts, name = args.get("channel"), args.get("timestamp"), args.get("name")
        if not isinstance(channel, str) or not isinstance(ts, str) or not isinstance(name, str) or not name:
            return _error("invalid_arguments")
        message = self._find_message(channel, ts)
        if message is None:
            return _error("message_not_found")
        me = bot_user_of(self._team)
        reactions = message.setdefault("reactions", [])
        found = next((r for r in reactions if r["name"] == name), None)
        if found is not None and me in found["users"]:
            return _error("already_reacted")
        if found is None:
            reactions.append({"name": name, "users": [me], "count": 1})
        else:
            found["users"].append(me)
            found["count"] += 1
        return {"ok": True}

    def post_as_user(self, channel: str, user: str, text: str, thread_ts: str | None = None) -> dict[str, Any]:
        """A person's message in a channel (what Slack stores before it sends the Events API ``message``)."""
        with self._lock:
            message: dict[str, Any] = {"type": "message", "channel": channel, "user": user, "team": TEAM_ID,
                                       "text": text, "ts": self._next_ts()}
            if thread_ts is not None:
                message["thread_ts"] = thread_ts
            self._messages.setdefault(channel, []).append(message)
            return copy.deepcopy(message)

    def _users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        user = args.get("user")
        if not isinstance(user, str) or not user:
            return _error("user_not_found")
        real_name = f"User {user}"
        return {
            "ok": True,
            "user": {
                "id": user,
                "team_id": TEAM_ID,
                "name": f"user-{user.lower()}",
                "real_name": real_name,
                "deleted": False,
                "is_bot": user == BOT_USER_ID,
                "tz": "Asia/Tokyo",
                "tz_label": "Japan Standard Time",
                "tz_offset": 32400,
                "locale": "ja-JP",
                "profile": {"real_name": real_name, "display_name": real_name},
            },
        }

    # -- files (lock held) -------------------------------------------------------------------------
    def _files_get_upload_url(self, args: dict[str, Any]) -> dict[str, Any]:
        filename = args.get("filename")
        try:
            length = int(args.get("length") or 0)
        except (TypeError, ValueError):
            return _error("invalid_arguments")
        if not isinstance(filename, str) or not filename or length <= 0:
            return _error("missing_argument")
        alt_txt = args.get("alt_txt")
        if isinstance(alt_txt, str) and len(alt_txt) > MAX_ALT_TXT:
            return _error("alt_txt_too_large")
        file_id = f"F{next(self._file_counter):08d}"
        key = secrets.token_hex(8)
        ext = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
        self._files[file_id] = {
            "id": file_id, "name": filename, "title": filename,
            "alt_txt": alt_txt if isinstance(alt_txt, str) else None,
            "length": length, "mimetype": MIMETYPES.get(ext, "application/octet-stream"), "filetype": ext,
            "data": None, "completed": False, "channels": [], "comment": "",
        }
        self._upload_keys[key] = file_id
        return {"ok": True, "upload_url": f"{self.root_url}{UPLOAD_PREFIX}{key}", "file_id": file_id}

    def _upload(self, key: str, body: bytes) -> Answer:
        file_id = self._upload_keys.get(key)
        if file_id is None:
            return Answer(404, b"not found", {"Content-Type": "text/plain"})
        entry = self._files[file_id]
        if len(body) != entry["length"]:
            self.contract_errors.append(f"upload: {len(body)} bytes sent, {entry['length']} announced")
        entry["data"] = bytes(body)
        return Answer(200, f"OK - {len(body)}".encode(), {"Content-Type": "text/plain"})

    def _files_complete_upload(self, args: dict[str, Any]) -> dict[str, Any]:
        raw = args.get("files")
        try:
            files = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            return _error("invalid_arguments")
        if not isinstance(files, list) or not files or not all(isinstance(f, dict) for f in files):
            return _error("invalid_arguments")
        entries = []
        for f in files:
            entry = self._files.get(str(f.get("id")))
            if entry is None or entry["data"] is None or entry["completed"]:
                return _error("file_not_found")
            title = f.get("title")
            if isinstance(title, str) and len(title) > MAX_FILE_TITLE:
                self.contract_errors.append(f"files.completeUploadExternal: title of {len(title)} chars")
            entries.append((entry, title))
        targets = [args["channel_id"]] if isinstance(args.get("channel_id"), str) and args["channel_id"] else []
        if isinstance(args.get("channels"), str):
            targets += [c for c in args["channels"].split(",") if c]
        channels = [self._resolve(c) for c in targets]
        for channel in channels:
            if (err := self._channel_error(channel)) is not None:
                return err
        comment = args.get("initial_comment") if isinstance(args.get("initial_comment"), str) else ""
        for entry, title in entries:
            entry["completed"] = True
            entry["title"] = title if isinstance(title, str) and title else entry["name"]
            entry["channels"] = channels
            entry["comment"] = comment
        for channel in channels:
            shown = [{k: entry[k] for k in ("id", "name", "title", "mimetype", "filetype", "alt_txt")}
                     | {"size": entry["length"]} for entry, _ in entries]
            message: dict[str, Any] = {"type": "message", "channel": channel, "user": BOT_USER_ID, "text": comment,
                                       "ts": self._next_ts(), "files": shown, "upload": True}
            self._messages.setdefault(channel, []).append(message)
        return {"ok": True, "files": [{"id": entry["id"], "title": entry["title"]} for entry, _ in entries]}

    # -- custom steps (lock held) ------------------------------------------------------------------
    def _running(self, args: dict[str, Any]) -> StepRun | dict[str, Any]:
        execution = args.get("function_execution_id")
        if not isinstance(execution, str) or not execution:
            return _error("invalid_arguments",
                          response_metadata={"messages": ["[ERROR] missing required field: function_execution_id"]})
        run = self._runs.get(execution)
        if run is None or run.team != self._team:
            return _error("function_execution_not_found")
        if run.state != "running":
            return _error("execution_not_in_running_state")
        return run

    def _end(self, run: StepRun, state: str) -> dict[str, Any]:
        run.state = state
        self._tokens[run.token].revoked = True  # Slack revokes the run's token when the run ends
        return {"ok": True}

    def _functions_complete_success(self, args: dict[str, Any]) -> dict[str, Any]:
        run = self._running(args)
        if isinstance(run, dict):
            return run
        outputs = args.get("outputs")
        if not isinstance(outputs, dict):
            return _error("invalid_arguments", response_metadata={"messages": ["[ERROR] outputs must be an object"]})
        problems = _output_problems(run.declared, outputs) if run.declared is not None else []
        if problems:
            return _error("parameter_validation_failed", response_metadata={"messages": problems})
        run.outputs = copy.deepcopy(outputs)
        return self._end(run, "completed")

    def _functions_complete_error(self, args: dict[str, Any]) -> dict[str, Any]:
        run = self._running(args)
        if isinstance(run, dict):
            return run
        error = args.get("error")
        if not isinstance(error, str) or not error.strip():
            return _error("invalid_arguments",
                          response_metadata={"messages": ["[ERROR] missing required field: error"]})
        run.error = error
        return self._end(run, "failed")


_OUTPUT_TYPES: dict[str, Callable[[Any], bool]] = {
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
}


def _output_problems(declared: dict[str, dict[str, Any]], outputs: dict[str, Any]) -> list[str]:
    """What is wrong with a run's outputs against its declared output parameters (name -> {type, is_required})."""
    problems = [f"[ERROR] unknown output {name!r}" for name in outputs if name not in declared]
    for name, param in declared.items():
        if name not in outputs or outputs[name] is None:
            if param.get("is_required"):
                problems.append(f"[ERROR] missing required output {name!r}")
            continue
        check = _OUTPUT_TYPES.get(str(param.get("type")))
        if check is not None and not check(outputs[name]):
            problems.append(f"[ERROR] output {name!r} is not of type {param.get('type')}")
    return problems
