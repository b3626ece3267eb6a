"""``crmbot line setup`` against the fake LINE API: token, webhook and its test, one default rich menu.

Every request is checked by the fake against LINE's OpenAPI spec and its host (the image goes to the
data host), and the ``fake_line`` fixture fails the test on any contract error.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from PIL import Image

from bot.cli import main
from bot.line import setup as line_setup
from conversations.content import RichMenu, load_script, script_path
from conversations.errors import ConfigError
from tests.bot.line.conftest import LineEnv
from tests.bot.line.helpers import DESTINATION, TOKEN, sign
from tests.fakes.line_api import (
    BOT_INFO,
    RICHMENU,
    WEBHOOK_ENDPOINT,
    WEBHOOK_TEST,
    FakeLineApi,
    Recorded,
    default_richmenu_path,
    richmenu_content_path,
)

URL = "https://crmbot.example.com"
ENDPOINT = URL + "/line/webhook"
FOREIGN_ID = "richmenu-" + "f" * 32


@pytest.fixture
def line(fake_line: FakeLineApi, monkeypatch: pytest.MonkeyPatch) -> FakeLineApi:
    monkeypatch.setenv("LINE_CHANNEL_ACCESS_TOKEN", TOKEN)
    monkeypatch.setenv("LINE_API_HOST", fake_line.base_url)
    monkeypatch.setenv("LINE_API_DATA_HOST", fake_line.data_url)
    return fake_line


class Run:
    def __init__(self, code: int, out: str, err: str, requests: list[Recorded]) -> None:
        self.code, self.out, self.err, self.requests = code, out, err, requests

    @property
    def writes(self) -> list[tuple[str, str]]:
        """Requests that change the channel (LINE's webhook test is a check: it changes nothing)."""
        return [(r.method, r.path) for r in self.requests if r.method != "GET" and r.path != WEBHOOK_TEST]


def run(fake: FakeLineApi, capsys: pytest.CaptureFixture[str], *args: str) -> Run:
    before = len(fake.recorded())
    capsys.readouterr()
    code = main(["line", "setup", *args])
    captured = capsys.readouterr()
    return Run(code, captured.out, captured.err, fake.recorded()[before:])


def ours(fake: FakeLineApi) -> list[dict]:
    return [m for m in fake.richmenus.values() if line_setup.OUR_NAME.fullmatch(m["name"])]


def assert_one_default_menu(fake: FakeLineApi, menu: RichMenu) -> dict:
    [only] = ours(fake)
    assert fake.default_richmenu == only["richMenuId"]
    kind, image = fake.richmenu_images[only["richMenuId"]]
    assert kind == "image/png"
    with Image.open(io.BytesIO(image)) as img:
        assert (img.format, img.size) == ("PNG", (2500, 843))
    assert only["size"] == {"width": 2500, "height": 843}
    assert only["chatBarText"] == menu.chat_bar
    actions = [a["action"] for a in only["areas"]]
    assert actions == [{"type": "message", "label": a.label, "text": a.text} for a in menu.areas]
    return only


def add_foreign_menu(fake: FakeLineApi, name: str = "spring sale", menu_id: str = FOREIGN_ID) -> None:
    fake.richmenus[menu_id] = {
        "richMenuId": menu_id, "size": {"width": 2500, "height": 843}, "selected": False, "name": name,
        "chatBarText": "sale", "areas": [{"bounds": {"x": 0, "y": 0, "width": 2500, "height": 843},
                                          "action": {"type": "uri", "uri": "https://shop.example.com/sale"}}],
    }
    fake.richmenu_images[menu_id] = ("image/jpeg", b"their image")


# -- first run, second run ----------------------------------------------------------------------------


def test_first_run_readies_the_channel(line: FakeLineApi, capsys) -> None:
    r = run(line, capsys, "--url", URL)
    assert r.code == 0, r.err
    assert "CRM診断 (@123abcde)" in r.out  # the bot's name and basic ID
    assert line.webhook_endpoint == ENDPOINT
    [test] = [q for q in r.requests if q.path == WEBHOOK_TEST]
    assert test.json == {"endpoint": ENDPOINT} and test.status == 200
    assert "webhook test: success: status 200, reason 'OK'" in r.out
    only = assert_one_default_menu(line, load_script("ja").richmenu)
    assert [a["action"]["label"] for a in only["areas"]] == ["診断する", "結果を見る", "相談する"]
    menu_id = only["richMenuId"]
    # created, its image uploaded, then made the default: LINE refuses a default without an image
    assert r.writes == [("PUT", WEBHOOK_ENDPOINT), ("POST", RICHMENU), ("POST", richmenu_content_path(menu_id)),
                        ("POST", default_richmenu_path(menu_id))]
    assert r.requests[0].path == BOT_INFO


def test_second_run_only_reads_and_still_one_menu(line: FakeLineApi, capsys) -> None:
    first = run(line, capsys, "--url", URL)
    menu_id = line.default_richmenu
    second = run(line, capsys, "--url", URL)
    assert (first.code, second.code) == (0, 0)
    assert second.writes == []
    assert {r.method for r in second.requests} == {"GET", "POST"}  # the POST: the webhook test, a check
    assert [r.path for r in second.requests if r.method == "POST"] == [WEBHOOK_TEST]
    assert "already set" in second.out and "already the default" in second.out
    assert "everything was already set up" in second.out
    assert line.default_richmenu == menu_id
    assert_one_default_menu(line, load_script("ja").richmenu)
    third = run(line, capsys)  # without --url: the webhook is left as it is, not even read
    assert third.writes == [] and {r.method for r in third.requests} == {"GET"}
    assert all(r.path not in (WEBHOOK_ENDPOINT, WEBHOOK_TEST) for r in third.requests)


def edited_content(tmp_path: Path, old: str, new: str, locale: str = "ja") -> str:
    text = script_path(locale).read_text(encoding="utf-8")
    assert old in text
    (tmp_path / f"diagnosis.{locale}.toml").write_text(text.replace(old, new, 1), encoding="utf-8")
    return str(tmp_path)


def test_a_changed_label_replaces_the_menu(line: FakeLineApi, capsys, monkeypatch, tmp_path: Path) -> None:
    run(line, capsys)
    [old] = ours(line)
    content_dir = edited_content(tmp_path, 'label = "結果を見る"', 'label = "前回の結果"')
    monkeypatch.setenv("CRMBOT_CONTENT_DIR", content_dir)
    r = run(line, capsys)
    assert r.code == 0, r.err
    new = assert_one_default_menu(line, load_script("ja", content_dir).richmenu)
    assert new["name"] != old["name"] and new["areas"][1]["action"]["label"] == "前回の結果"
    new_id, old_id = new["richMenuId"], old["richMenuId"]
    # the new one is the default before the old one goes: users never see the chat without a menu
    assert r.writes == [("POST", RICHMENU), ("POST", richmenu_content_path(new_id)),
                        ("POST", default_richmenu_path(new_id)), ("DELETE", f"{RICHMENU}/{old_id}")]
    assert run(line, capsys).writes == []  # and that is stable too


def test_a_changed_chat_bar_or_word_is_a_new_menu_too(line: FakeLineApi, capsys, monkeypatch, tmp_path) -> None:
    run(line, capsys)
    [before] = ours(line)
    monkeypatch.setenv("CRMBOT_CONTENT_DIR", edited_content(tmp_path, 'text = "診断する"', 'text = "診断"'))
    r = run(line, capsys)
    [after] = ours(line)
    assert after["name"] != before["name"] and after["areas"][0]["action"]["text"] == "診断"
    assert ("DELETE", f"{RICHMENU}/{before['richMenuId']}") in r.writes


def test_english_labels(line: FakeLineApi, capsys, monkeypatch) -> None:
    monkeypatch.setenv("CRMBOT_LOCALE", "en")
    assert run(line, capsys).code == 0
    only = assert_one_default_menu(line, load_script("en").richmenu)
    assert [a["action"]["text"] for a in only["areas"]] == ["start", "result", "consult"]


# -- never touching what is not ours ---------------------------------------------------------------


def test_menus_that_are_not_ours_are_left_alone(line: FakeLineApi, capsys) -> None:
    add_foreign_menu(line)
    add_foreign_menu(line, name="crmbot", menu_id="richmenu-" + "e" * 32)  # our prefix, but not our pattern
    add_foreign_menu(line, name="crmbot 1234567890ab extra", menu_id="richmenu-" + "d" * 32)
    line.default_richmenu = FOREIGN_ID
    r = run(line, capsys)
    assert r.code == 0, r.err
    only = assert_one_default_menu(line, load_script("ja").richmenu)
    assert len(line.richmenus) == 4
    assert line.richmenu_images[FOREIGN_ID] == ("image/jpeg", b"their image")
    foreign = {FOREIGN_ID, "richmenu-" + "e" * 32, "richmenu-" + "d" * 32}
    assert not [q for q in r.requests if any(f in q.path for f in foreign)]
    assert "was: spring sale" in r.out and "left alone: 3 rich menu(s) not made by crmbot" in r.out
    assert line.default_richmenu == only["richMenuId"]


def test_several_old_menus_of_ours_are_all_cleared(line: FakeLineApi, capsys, monkeypatch, tmp_path) -> None:
    for i, label in enumerate(("前回の結果", "けっか")):
        (tmp_path / str(i)).mkdir()
        monkeypatch.setenv("CRMBOT_CONTENT_DIR", edited_content(tmp_path / str(i), 'label = "結果を見る"',
                                                                 f'label = "{label}"'))
        run(line, capsys)
    # a menu left behind by an interrupted older run: ours by name, never made the default
    line.richmenus["richmenu-" + "a" * 32] = {**ours(line)[0], "richMenuId": "richmenu-" + "a" * 32,
                                               "name": "crmbot 000000000000"}
    assert len(ours(line)) == 2
    monkeypatch.delenv("CRMBOT_CONTENT_DIR")
    add_foreign_menu(line)
    r = run(line, capsys)
    assert r.code == 0
    assert_one_default_menu(line, load_script("ja").richmenu)
    assert FOREIGN_ID in line.richmenus
    assert len([w for w in r.writes if w[0] == "DELETE"]) == 2


# -- interrupted runs are finished by the next one ---------------------------------------------------


def test_a_menu_created_but_never_given_its_image_is_finished(line: FakeLineApi, capsys) -> None:
    run(line, capsys)
    [menu] = ours(line)
    menu_id = menu["richMenuId"]
    del line.richmenu_images[menu_id]  # as if the first run died right after creating the menu
    line.default_richmenu = None
    r = run(line, capsys)
    assert r.code == 0, r.err
    assert r.writes == [("POST", richmenu_content_path(menu_id)), ("POST", default_richmenu_path(menu_id))]
    assert assert_one_default_menu(line, load_script("ja").richmenu)["richMenuId"] == menu_id


def test_a_menu_with_its_image_but_not_the_default_is_made_the_default(line: FakeLineApi, capsys) -> None:
    run(line, capsys)
    menu_id = line.default_richmenu
    line.default_richmenu = None  # e.g. someone cancelled the default in the console
    r = run(line, capsys)
    assert r.writes == [("POST", default_richmenu_path(menu_id))]  # its image is there: not uploaded again
    assert ("GET", richmenu_content_path(menu_id)) in [(q.method, q.path) for q in r.requests]
    assert line.default_richmenu == menu_id


# -- dry run ---------------------------------------------------------------------------------------


def test_dry_run_sends_only_reads(line: FakeLineApi, capsys) -> None:
    r = run(line, capsys, "--url", URL, "--dry-run")
    assert r.code == 0, r.err
    assert {q.method for q in r.requests} == {"GET"}
    assert line.webhook_endpoint is None and line.richmenus == {} and line.default_richmenu is None
    assert f"would set the webhook to {ENDPOINT} (was: not set)" in r.out
    assert "would create rich menu crmbot " in r.out and "would upload its image (2500x843 PNG" in r.out
    assert "would make crmbot " in r.out and "nothing was changed" in r.out


def test_dry_run_after_a_change_names_what_it_would_replace(line, capsys, monkeypatch, tmp_path) -> None:
    run(line, capsys, "--url", URL)
    [old] = ours(line)
    state = (dict(line.richmenus), line.default_richmenu, line.webhook_endpoint)
    monkeypatch.setenv("CRMBOT_CONTENT_DIR", edited_content(tmp_path, 'label = "相談する"', 'label = "ご相談"'))
    r = run(line, capsys, "--url", URL + "/", "--dry-run")
    assert {q.method for q in r.requests} == {"GET"}
    assert (dict(line.richmenus), line.default_richmenu, line.webhook_endpoint) == state
    assert f"would delete our older rich menu {old['name']}" in r.out
    assert "webhook: " + ENDPOINT + " (already set)" in r.out


# -- errors ----------------------------------------------------------------------------------------


def test_a_refused_token_stops_with_a_clear_message(line: FakeLineApi, capsys, monkeypatch) -> None:
    monkeypatch.setenv("LINE_CHANNEL_ACCESS_TOKEN", "not-the-token")
    r = run(line, capsys, "--url", URL)
    assert r.code != 0
    assert "LINE refused the access token (401" in r.err and "LINE_CHANNEL_ACCESS_TOKEN" in r.err
    assert "not-the-token" not in r.err + r.out
    assert [(q.method, q.path) for q in r.requests] == [("GET", BOT_INFO)]
    assert line.richmenus == {} and line.webhook_endpoint is None


def test_no_token_sends_nothing(line: FakeLineApi, capsys, monkeypatch) -> None:
    monkeypatch.delenv("LINE_CHANNEL_ACCESS_TOKEN")
    r = run(line, capsys)
    assert r.code == 2 and "LINE_CHANNEL_ACCESS_TOKEN is not set" in r.err
    assert r.requests == []


@pytest.mark.parametrize("url", ["http://crmbot.example.com", "crmbot.example.com", "https://", "https://a b"])
def test_a_bad_url_sends_nothing(line: FakeLineApi, capsys, url: str) -> None:
    r = run(line, capsys, "--url", url)
    assert r.code == 2 and "--url" in r.err and "https://" in r.err
    assert r.requests == []


def test_the_url_may_already_name_the_webhook_path(line: FakeLineApi, capsys) -> None:
    run(line, capsys, "--url", ENDPOINT)
    assert line.webhook_endpoint == ENDPOINT


def test_an_api_error_names_the_step(line: FakeLineApi, capsys) -> None:
    line.fail(RICHMENU, 500, body={"message": "internal error"})
    r = run(line, capsys)
    assert r.code == 1
    assert "creating the rich menu: LINE answered 500: internal error" in r.err
    assert line.richmenus == {}
    assert run(line, capsys).code == 0  # the next run completes it
    assert_one_default_menu(line, load_script("ja").richmenu)


def test_a_failed_webhook_test_is_reported_and_the_rest_still_done(line: FakeLineApi, capsys) -> None:
    line.webhook_probe = lambda url: (503, "Service Unavailable")
    r = run(line, capsys, "--url", URL)
    assert r.code == 1
    assert "webhook test: FAILED: status 503, reason 'Service Unavailable'" in r.out
    assert "1 problem(s) need you" in r.out
    assert_one_default_menu(line, load_script("ja").richmenu)


def test_webhooks_switched_off_in_the_console_are_reported(line: FakeLineApi, capsys) -> None:
    line.webhook_active = False
    r = run(line, capsys, "--url", URL)
    assert r.code == 1 and "Use webhook" in r.out


def test_the_webhook_test_reaches_our_server_and_is_answered(line_env: LineEnv, monkeypatch, capsys) -> None:
    """LINE's test posts an empty, signed webhook: our /line/webhook must answer it 200."""
    fake = line_env.fake
    monkeypatch.setenv("LINE_CHANNEL_ACCESS_TOKEN", TOKEN)
    monkeypatch.setenv("LINE_API_HOST", fake.base_url)
    monkeypatch.setenv("LINE_API_DATA_HOST", fake.data_url)
    seen: list[str] = []

    def probe(url: str, secret_ok: bool = True) -> tuple[int, str]:
        seen.append(url)
        body = json.dumps({"destination": DESTINATION, "events": []}).encode()
        signature = sign(body) if secret_ok else sign(body, "another-channel's-secret")
        resp = line_env.http.post(urlsplit(url).path, data=body,
                                  headers={"Content-Type": "application/json", "X-Line-Signature": signature})
        return resp.status_code, "OK" if resp.status_code == 200 else "Bad Request"

    fake.webhook_probe = probe
    r = run(fake, capsys, "--url", URL)
    assert r.code == 0 and seen == [ENDPOINT]
    assert "webhook test: success: status 200" in r.out
    fake.webhook_probe = lambda url: probe(url, secret_ok=False)  # the server runs another channel's secret
    r = run(fake, capsys, "--url", URL)
    assert r.code == 1 and "FAILED: status 400" in r.out and "LINE_CHANNEL_SECRET" in r.out


def test_tapping_the_start_area_starts_the_diagnosis(line_env: LineEnv) -> None:
    """A message action sends its text as the user's own message: the bot must understand it."""
    start = load_script("ja").richmenu.areas[0]
    user = line_env.user()
    assert user.post(user.text_event(start.text)).status_code == 200
    line_env.settle()
    texts = [m.get("text", "") for m in line_env.fake.delivered(user.user_id)]
    assert any("Q1/10" in t for t in texts), texts


# -- the image ---------------------------------------------------------------------------------------


def dark_pixels(image: Image.Image, box: line_setup.Box) -> int:
    crop = image.convert("L").crop((box.x, box.y, box.right, box.bottom))
    return sum(crop.histogram()[:100])


@pytest.mark.parametrize("locale", ["ja", "en"])
def test_the_image_is_the_size_and_format_line_requires(locale: str) -> None:
    plan = line_setup.plan_menu(load_script(locale).richmenu)
    assert plan.png[:8] == b"\x89PNG\r\n\x1a\n" and len(plan.png) < 1024 * 1024
    with Image.open(io.BytesIO(plan.png)) as img:
        assert img.size == (2500, 843)
    boxes = line_setup.area_boxes(3)
    assert sum(b.width for b in boxes) == 2500 and boxes[-1].right == 2500
    assert [a.bounds.to_dict() for a in plan.request.areas] == [
        {"x": b.x, "y": 0, "width": b.width, "height": 843} for b in boxes]


@pytest.mark.parametrize("locale", ["ja", "en"])
def test_every_label_is_drawn_in_its_area(locale: str) -> None:
    menu = load_script(locale).richmenu
    image = line_setup.draw_image(menu)
    boxes = line_setup.area_boxes(3)
    for box in boxes:
        assert dark_pixels(image, line_setup.label_box(box)) > 3000  # text strokes, not a blank card
    blank = line_setup.draw_image(RichMenu(menu.chat_bar, tuple(
        type(a)(a.kind, "\u3000", a.text) for a in menu.areas)))  # an ideographic space: nothing to see
    assert all(dark_pixels(blank, line_setup.label_box(b)) == 0 for b in boxes)


def test_japanese_glyphs_are_real_glyphs_not_missing_glyph_boxes() -> None:
    font = line_setup._font(100)
    for area in load_script("ja").richmenu.areas:
        assert line_setup._missing_glyphs(font, area.label) == []
    assert line_setup._missing_glyphs(font, "診断\U0001f600") == ["\U0001f600"]  # the check does bite


def test_a_label_the_font_cannot_draw_is_refused() -> None:
    menu = load_script("ja").richmenu
    bad = RichMenu(menu.chat_bar, (type(menu.areas[0])("start", "診断\U0001f600", "診断"), *menu.areas[1:]))
    with pytest.raises(ConfigError, match="no glyph"):
        line_setup.draw_image(bad)


def test_the_same_labels_give_the_same_name_and_different_labels_another() -> None:
    menu = load_script("ja").richmenu
    a, b = line_setup.plan_menu(menu), line_setup.plan_menu(menu)
    assert a.name == b.name and line_setup.OUR_NAME.fullmatch(a.name)
    changed = RichMenu(menu.chat_bar, (menu.areas[0], type(menu.areas[1])("result", "前回の結果", "結果"),
                                       menu.areas[2]))
    assert line_setup.plan_menu(changed).name != a.name
    assert line_setup.plan_menu(RichMenu("メニューを開く", menu.areas)).name != a.name


def test_the_font_ships_with_a_python_package() -> None:
    path = line_setup.font_path()
    assert path.name == "ipaexg.ttf" and path.stat().st_size > 1_000_000


def test_the_data_host_is_configurable() -> None:
    from bot.config import Config

    assert Config.from_env({}).line_api_data_host == "https://api-data.line.me"
    assert Config.from_env({"LINE_API_DATA_HOST": "http://127.0.0.1:9/"}).line_api_data_host == "http://127.0.0.1:9"
    with pytest.raises(ConfigError, match="LINE_API_DATA_HOST"):
        Config.from_env({"LINE_API_DATA_HOST": "api-data.line.me"})
