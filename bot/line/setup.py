"""``crmbot line setup``: ready a real LINE channel in one command, and leave it as it is when it is right.

1. The token: ``GET /v2/bot/info`` (the bot's name and basic ID); a refused token stops here.
2. With ``--url``: the webhook endpoint becomes ``URL/line/webhook`` unless it already is, then LINE's
   webhook test runs (LINE sends an empty, signed webhook to it) and its outcome is reported.
3. The rich menu: three areas (start the diagnosis / show the result / consult), each a *message*
   action sending a keyword of its kind from the script file, so a tap means exactly what typing the
   word means whatever the bot's button data look like. Its image is drawn here from the script's
   labels with Pillow and the IPAexGothic font that the ``matplotlib-fontja`` package ships.

Idempotent and never piling up menus: our menu is named ``crmbot <hash>``, the hash covering the
request (size, chat bar text, areas with their actions) and the image's pixels. A menu of that name is
reused; otherwise a new one is created, its image uploaded, made the default, and only then are our
older menus (``crmbot`` and 12 hex digits) deleted. Menus with any other name are never touched. An
interrupted run is finished by the next one. ``--dry-run`` sends only GET requests and says what it
would change.

The LINE SDK's synchronous ``MessagingApi`` / ``MessagingApiBlob`` are used (a CLI, not the worker);
the image goes to the data host (``LINE_API_DATA_HOST``, default ``https://api-data.line.me``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, TextIO, TypeVar

from PIL import Image, ImageDraw, ImageFont

from bot.config import Config
from conversations.content import RichMenu
from conversations.errors import ConfigError, CrmbotError

# -- the image ---------------------------------------------------------------------------------------

WIDTH, HEIGHT = 2500, 843  # one of LINE's rich menu sizes (the compact, half-height one)
MAX_IMAGE_BYTES = 1024 * 1024  # LINE refuses a larger image
FONT_PACKAGE = "matplotlib_fontja"  # ships IPAexGothic (IPA Font License), no system font needed
FONT_FILE = "fonts/ipaexg.ttf"

BACKGROUND = (255, 255, 255)
CARD = (246, 247, 249)
TEXT = (26, 32, 44)  # on CARD: contrast above 15:1
ACCENTS = ((0, 114, 178), (0, 158, 115), (213, 94, 0))  # Okabe-Ito blue, green, vermillion: one per area
ICON = (255, 255, 255)
LABEL_MAX_PX, LABEL_MIN_PX = 132, 56  # label font size, shrunk to fit the area's width
PADDING = 48


@dataclass(frozen=True)
class Box:
    x: int
    y: int
    width: int
    height: int

    @property
    def right(self) -> int:
        return self.x + self.width

    @property
    def bottom(self) -> int:
        return self.y + self.height


def area_boxes(count: int = 3) -> tuple[Box, ...]:
    """The tappable areas: equal columns over the whole image (the last takes the odd pixels)."""
    step = WIDTH // count
    return tuple(Box(i * step, 0, (WIDTH - i * step) if i == count - 1 else step, HEIGHT) for i in range(count))


def label_box(area: Box) -> Box:
    """Where an area's label is drawn (below its icon); tests look for the text here."""
    top = area.y + int(area.height * 0.58)
    return Box(area.x + PADDING, top, area.width - 2 * PADDING, area.bottom - PADDING - top)


def font_path() -> Path:
    """The bundled Japanese font, found without importing its package (which would import matplotlib)."""
    spec = importlib.util.find_spec(FONT_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for base in locations:
        path = Path(base) / FONT_FILE
        if path.is_file():
            return path
    raise ConfigError(f"line setup: the Japanese font is missing (install the {FONT_PACKAGE.replace('_', '-')} "
                      "package: pip install -e .)")


@cache
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(font_path()), size)


def _missing_glyphs(font: ImageFont.FreeTypeFont, text: str) -> list[str]:
    """Characters the font would draw as its 'missing glyph' box (tofu) rather than a real glyph."""
    tofu = _glyph(font, "\uffff")  # a non-character: always the missing-glyph box
    return [ch for ch in dict.fromkeys(text) if not ch.isspace() and _glyph(font, ch) == tofu]


def _glyph(font: ImageFont.FreeTypeFont, ch: str) -> tuple[int, int, bytes]:
    left, top, right, bottom = font.getbbox(ch)
    image = Image.new("L", (max(1, int(right - left)), max(1, int(bottom - top))))
    ImageDraw.Draw(image).text((-left, -top), ch, font=font, fill=255)
    return image.width, image.height, image.tobytes()


def _fit(draw: ImageDraw.ImageDraw, text: str, box: Box) -> ImageFont.FreeTypeFont:
    for size in range(LABEL_MAX_PX, LABEL_MIN_PX - 1, -4):
        font = _font(size)
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        if right - left <= box.width and bottom - top <= box.height:
            return font
    raise ConfigError(f"line setup: the rich menu label {text!r} is too long to draw legibly; shorten it")


def _icon(draw: ImageDraw.ImageDraw, kind: str, cx: int, cy: int, r: int) -> None:
    """A simple pictogram in white on the accent disc: a check (start), bars (result), a speech bubble."""
    s = r * 0.5
    width = max(6, r // 9)
    if kind == "start":
        draw.line([(cx - s, cy), (cx - s * 0.25, cy + s * 0.7), (cx + s, cy - s * 0.7)], fill=ICON, width=width * 2,
                  joint="curve")
    elif kind == "result":
        bar = s * 0.42
        for i, h in enumerate((0.6, 1.1, 1.6)):
            x0 = cx - s + i * (bar + s * 0.37)
            draw.rectangle([x0, cy + s * 0.8 - h * s, x0 + bar, cy + s * 0.8], fill=ICON)
    else:
        draw.rounded_rectangle([cx - s, cy - s * 0.75, cx + s, cy + s * 0.45], radius=int(s * 0.3), fill=ICON)
        draw.polygon([(cx - s * 0.45, cy + s * 0.4), (cx - s * 0.7, cy + s * 0.95), (cx + s * 0.05, cy + s * 0.4)],
                     fill=ICON)


def draw_image(menu: RichMenu) -> Image.Image:
    """The menu's picture: one card per area with its pictogram and its label from the script file."""
    image = Image.new("RGB", (WIDTH, HEIGHT), BACKGROUND)
    draw = ImageDraw.Draw(image)
    for i, (area, box) in enumerate(zip(menu.areas, area_boxes(len(menu.areas)), strict=True)):
        inset = 18
        draw.rounded_rectangle([box.x + inset, box.y + inset, box.right - inset, box.bottom - inset], radius=40,
                               fill=CARD)
        r = int(HEIGHT * 0.2)
        cx, cy = box.x + box.width // 2, box.y + int(HEIGHT * 0.33)
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=ACCENTS[i % len(ACCENTS)])
        _icon(draw, area.kind, cx, cy, r)
        lb = label_box(box)
        font = _fit(draw, area.label, lb)
        if missing := _missing_glyphs(font, area.label):
            raise ConfigError(f"line setup: the font has no glyph for {''.join(missing)!r} "
                              f"in the rich menu label {area.label!r}")
        draw.text((lb.x + lb.width // 2, lb.y + lb.height // 2), area.label, font=font, fill=TEXT, anchor="mm")
    return image


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    data = buf.getvalue()
    if len(data) >= MAX_IMAGE_BYTES:
        raise CrmbotError(f"line setup: the rich menu image is {len(data)} bytes; LINE accepts under 1 MB")
    return data


# -- the menu as LINE will hold it -------------------------------------------------------------------

NAME_PREFIX = "crmbot "
OUR_NAME = re.compile(r"^crmbot [0-9a-f]{12}$")  # our menus; any other name is someone else's


@dataclass(frozen=True)
class MenuPlan:
    name: str  # "crmbot " + the hash of everything below
    request: Any  # linebot.v3.messaging.RichMenuRequest
    png: bytes


def plan_menu(menu: RichMenu) -> MenuPlan:
    """The rich menu request and its image, named by a hash of both (request fields and image pixels)."""
    from linebot.v3.messaging import MessageAction, RichMenuArea, RichMenuBounds, RichMenuRequest, RichMenuSize

    image = draw_image(menu)
    areas = [
        RichMenuArea(
            bounds=RichMenuBounds(x=box.x, y=box.y, width=box.width, height=box.height),
            action=MessageAction(label=area.label, text=area.text),
        )
        for area, box in zip(menu.areas, area_boxes(len(menu.areas)), strict=True)
    ]
    fields = {
        "size": {"width": WIDTH, "height": HEIGHT},
        "selected": True,  # the menu opens with the chat: its three choices are the bot's main ways in
        "chatBarText": menu.chat_bar,
        "areas": [a.to_dict() for a in areas],
    }
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True, ensure_ascii=False).encode())
    digest.update(f"{image.mode} {image.size}".encode())
    digest.update(image.tobytes())  # the pixels, not the PNG bytes: a new zlib must not make a "new" menu
    name = NAME_PREFIX + digest.hexdigest()[:12]
    request = RichMenuRequest(
        size=RichMenuSize(width=WIDTH, height=HEIGHT),
        selected=True,
        name=name,
        chat_bar_text=menu.chat_bar,
        areas=areas,
    )
    return MenuPlan(name, request, png_bytes(image))


# -- talking to LINE ---------------------------------------------------------------------------------

T = TypeVar("T")


@dataclass
class Report:
    """What the run saw and did, printed as it goes."""

    out: TextIO
    dry_run: bool
    changes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def say(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    def change(self, line: str) -> None:
        self.changes.append(line)
        self.say(("would " if self.dry_run else "") + line)

    def problem(self, line: str) -> None:
        self.problems.append(line)
        self.say("PROBLEM: " + line)


class LineSetup:
    """One run of ``crmbot line setup`` against the channel whose token is in the config."""

    def __init__(self, api: Any, blob: Any, report: Report, timeout: float) -> None:
        self.api = api  # linebot.v3.messaging.MessagingApi (sync)
        self.blob = blob  # linebot.v3.messaging.MessagingApiBlob, on the data host
        self.report = report
        self.timeout = timeout

    @property
    def dry_run(self) -> bool:
        return self.report.dry_run

    def run(self, menu: RichMenu, url: str | None) -> int:
        self.check_token()
        if url is not None:
            self.webhook(webhook_url(url))
        self.richmenu(plan_menu(menu))
        r = self.report
        if r.dry_run:
            r.say(f"dry run: {len(r.changes)} change(s) to make; nothing was changed")
        else:
            r.say(f"done: {len(r.changes)} change(s)" + ("" if r.changes else ", everything was already set up"))
        if r.problems:
            r.say(f"{len(r.problems)} problem(s) need you: " + "; ".join(r.problems))
            return 1
        return 0

    # -- steps ------------------------------------------------------------------------------------
    def check_token(self) -> None:
        info = self._call("checking the token (bot info)", self.api.get_bot_info)
        self.report.say(f"bot: {info.display_name} ({info.basic_id})")

    def webhook(self, endpoint: str) -> None:
        from linebot.v3.messaging import SetWebhookEndpointRequest, TestWebhookEndpointRequest

        current = self._call("reading the webhook", self.api.get_webhook_endpoint, missing=None)
        active = current.active if current is not None else None
        if current is not None and current.endpoint == endpoint:
            self.report.say(f"webhook: {endpoint} (already set)")
        else:
            was = current.endpoint if current is not None and current.endpoint else "not set"
            self.report.change(f"set the webhook to {endpoint} (was: {was})")
            if not self.dry_run:
                self._call("setting the webhook", self.api.set_webhook_endpoint,
                           SetWebhookEndpointRequest(endpoint=endpoint))
                after = self._call("reading the webhook", self.api.get_webhook_endpoint, missing=None)
                active = after.active if after is not None else None
        if self.dry_run:
            self.report.say(f"would run LINE's webhook test on {endpoint} (a check, not a change)")
        else:
            # A check, not a change: LINE sends an empty, signed webhook to the endpoint and tells what it got.
            test = self._call("testing the webhook", self.api.test_webhook_endpoint,
                              TestWebhookEndpointRequest(endpoint=endpoint))
            detail = f", detail {test.detail!r}" if test.detail and test.detail != str(test.status_code) else ""
            self.report.say(f"webhook test: {'success' if test.success else 'FAILED'}: status {test.status_code}, "
                            f"reason {test.reason!r}{detail}")
            if not test.success:
                self.report.problem(f"LINE's webhook test of {endpoint} failed (status {test.status_code}): is the "
                                    "bot running there, with this channel's LINE_CHANNEL_SECRET?")
        if active is False:
            self.report.problem("webhooks are switched off for this channel: turn on 'Use webhook' in the LINE "
                                "Developers console (Messaging API tab); no API can")

    def richmenu(self, plan: MenuPlan) -> None:
        menus = self._call("listing rich menus", self.api.get_rich_menu_list).richmenus
        ours = [m for m in menus if OUR_NAME.fullmatch(m.name or "")]
        default = self._call("reading the default rich menu", self.api.get_default_rich_menu_id, missing=None)
        default_id = default.rich_menu_id if default is not None else None
        same = [m for m in ours if m.name == plan.name]
        target = next((m for m in same if m.rich_menu_id == default_id), same[0] if same else None)
        describe = f"rich menu {plan.name} ({', '.join(a.action.label for a in plan.request.areas)})"
        if target is None:
            self.report.change(f"create {describe}")
            menu_id = "(new)"
            if not self.dry_run:
                menu_id = self._call("creating the rich menu", self.api.create_rich_menu, plan.request).rich_menu_id
                self.report.say(f"  created {menu_id}")
            self._upload(menu_id, plan)
            self._make_default(menu_id, plan, default_id, menus)
        else:
            menu_id = target.rich_menu_id
            if menu_id == default_id:
                self.report.say(f"{describe}: already the default ({menu_id})")
            else:
                self.report.say(f"{describe}: exists ({menu_id}), not the default")
                if not self._has_image(menu_id):
                    self._upload(menu_id, plan)
                self._make_default(menu_id, plan, default_id, menus)
        for old in ours:
            if old.rich_menu_id != menu_id:
                self.report.change(f"delete our older rich menu {old.name} ({old.rich_menu_id})")
                if not self.dry_run:
                    self._call("deleting an old rich menu", self.api.delete_rich_menu, old.rich_menu_id)
        others = len(menus) - len(ours)
        if others:
            self.report.say(f"left alone: {others} rich menu(s) not made by crmbot")

    def _upload(self, menu_id: str, plan: MenuPlan) -> None:
        self.report.change(f"upload its image ({WIDTH}x{HEIGHT} PNG, {len(plan.png) // 1024} KB)")
        if not self.dry_run:
            self._call("uploading the rich menu image", self.blob.set_rich_menu_image, menu_id, plan.png,
                       _headers={"Content-Type": "image/png"})

    def _make_default(self, menu_id: str, plan: MenuPlan, default_id: str | None, menus: Sequence[Any]) -> None:
        was = next((m.name for m in menus if m.rich_menu_id == default_id), None) if default_id else None
        self.report.change(f"make {plan.name} the default rich menu (was: {was or 'none'})")
        if not self.dry_run:
            self._call("setting the default rich menu", self.api.set_default_rich_menu, menu_id)

    def _has_image(self, menu_id: str) -> bool:
        return self._call("checking the rich menu's image", self.blob.get_rich_menu_image, menu_id,
                          missing=None) is not None

    # -- errors -----------------------------------------------------------------------------------
    _MISSING = object()

    def _call(self, step: str, fn: Callable[..., T], *args: Any, missing: Any = _MISSING, **kwargs: Any) -> T:
        """Call the SDK; 404 gives ``missing`` when given; a refused token and other errors stop the run."""
        from linebot.v3.messaging import ApiException
        from urllib3.exceptions import HTTPError as Urllib3Error

        from bot.line.answers import failed

        try:
            return fn(*args, _request_timeout=self.timeout, **kwargs)
        except ApiException as e:
            if e.status == 404 and missing is not self._MISSING:
                return missing
            failed(step, e)  # logged with LINE's x-line-request-id
            message = _line_message(e.body)
            if e.status in (401, 403):
                raise ConfigError(f"line setup: LINE refused the access token ({e.status}{message}) while "
                                  f"{step}: check LINE_CHANNEL_ACCESS_TOKEN (the channel's long-lived token "
                                  "from the LINE Developers console, Messaging API tab)") from None
            raise CrmbotError(f"line setup: {step}: LINE answered {e.status}{message}") from None
        except Urllib3Error as e:
            raise CrmbotError(f"line setup: {step}: LINE could not be reached ({type(e).__name__})") from None


def _line_message(body: Any) -> str:
    """LINE's own error message from an error body, short (never anything we sent)."""
    try:
        text = str(json.loads(body).get("message", ""))
    except (TypeError, ValueError, AttributeError):
        return ""
    return f": {' '.join(text.split())[:200]}" if text else ""


def webhook_url(url: str) -> str:
    """The bot's server URL -> its LINE webhook; LINE calls only HTTPS endpoints."""
    url = url.strip().rstrip("/")
    if not re.fullmatch(r"https://[^\s/?#]+(/[^\s?#]*)?", url):
        raise ConfigError(f"--url: give the server's https:// address, e.g. https://crmbot.example.com "
                          f"(got {url[:60]!r}); LINE sends webhooks only over HTTPS")
    return url if url.endswith("/line/webhook") else url + "/line/webhook"


@contextmanager
def clients(host: str, data_host: str, token: str) -> Iterator[tuple[Any, Any]]:
    """The SDK's synchronous MessagingApi (API host) and MessagingApiBlob (data host)."""
    from linebot.v3.messaging import ApiClient, Configuration, MessagingApi, MessagingApiBlob

    with ApiClient(Configuration(host=host, access_token=token)) as api_client, \
            ApiClient(Configuration(host=data_host, access_token=token)) as blob_client:
        yield MessagingApi(api_client), MessagingApiBlob(blob_client)


def setup_cmd(config: Config, url: str | None, dry_run: bool, out: TextIO, menu: RichMenu) -> int:
    """``crmbot line setup``: exit status 0 when the channel is ready, 1 when something needs the operator."""
    if not config.line_channel_access_token:
        raise ConfigError("line setup: LINE_CHANNEL_ACCESS_TOKEN is not set (the channel's long-lived token from "
                          "the LINE Developers console, Messaging API tab)")
    if url is not None:
        webhook_url(url)  # a bad --url stops before anything is sent
    report = Report(out, dry_run)
    if dry_run:
        report.say("dry run: reading only; nothing will be changed")
    with clients(config.line_api_host, config.line_api_data_host, config.line_channel_access_token) as (api, blob):
        return LineSetup(api, blob, report, config.api_timeout).run(menu, url)
