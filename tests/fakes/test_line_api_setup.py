"""Tests of the LINE fake's channel set-up endpoints: bot info, webhook, rich menus and their images."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image

from tests.fakes.line_api import (
    BOT_INFO,
    DEFAULT_RICHMENU,
    RICHMENU,
    RICHMENU_LIST,
    WEBHOOK_ENDPOINT,
    WEBHOOK_TEST,
    FakeLineApi,
    default_richmenu_path,
    richmenu_content_path,
    richmenu_path,
)
from tests.fakes.test_line_api import TOKEN, call, require_spec

MENU = {
    "size": {"width": 2500, "height": 843}, "selected": False, "name": "test", "chatBarText": "menu",
    "areas": [{"bounds": {"x": 0, "y": 0, "width": 2500, "height": 843},
               "action": {"type": "message", "label": "go", "text": "start"}}],
}


@pytest.fixture
def fake() -> Iterator[FakeLineApi]:
    with FakeLineApi(access_token=TOKEN) as api:
        yield api


def png(size: tuple[int, int] = (2500, 843), fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 10, 10)).save(buf, format=fmt)
    return buf.getvalue()


def upload(fake: FakeLineApi, menu_id: str, body: bytes, content_type: str = "image/png",
           host: str | None = None) -> tuple[int, Any]:
    import urllib.error
    import urllib.request

    request = urllib.request.Request((host or fake.data_url) + richmenu_content_path(menu_id), data=body,
                                     method="POST",
                                     headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def create(fake: FakeLineApi, menu: dict[str, Any] = MENU) -> str:
    status, body, _ = call(fake, "POST", RICHMENU, menu)
    assert status == 200, body
    return str(body["richMenuId"])


def test_bot_info_and_the_token(fake: FakeLineApi) -> None:
    status, body, _ = call(fake, "GET", BOT_INFO)
    assert status == 200 and body["displayName"] and body["basicId"].startswith("@")
    assert call(fake, "GET", BOT_INFO, token="wrong")[0] == 401
    fake.assert_contract_ok()


def test_webhook_endpoint_and_test(fake: FakeLineApi) -> None:
    assert call(fake, "GET", WEBHOOK_ENDPOINT)[0] == 404  # never set
    assert call(fake, "POST", WEBHOOK_TEST, {})[0] == 400  # nothing to test
    assert call(fake, "PUT", WEBHOOK_ENDPOINT, {"endpoint": "https://bot.example.com/line/webhook"})[0] == 200
    assert call(fake, "GET", WEBHOOK_ENDPOINT)[1] == {"endpoint": "https://bot.example.com/line/webhook",
                                                       "active": True}
    status, body, _ = call(fake, "POST", WEBHOOK_TEST, {})
    assert (status, body["success"], body["statusCode"]) == (200, True, 200)
    fake.webhook_probe = lambda url: (500, "Internal Server Error")
    body = call(fake, "POST", WEBHOOK_TEST, {"endpoint": "https://other.example.com/x"})[1]
    assert (body["success"], body["statusCode"], body["reason"]) == (False, 500, "Internal Server Error")
    assert call(fake, "PUT", WEBHOOK_ENDPOINT, {"endpoint": "http://insecure.example.com/"})[0] == 400
    fake.assert_contract_ok()


def test_rich_menu_lifecycle(fake: FakeLineApi) -> None:
    menu_id = create(fake)
    assert call(fake, "GET", RICHMENU_LIST)[1]["richmenus"] == [{"richMenuId": menu_id, **MENU}]
    assert call(fake, "GET", DEFAULT_RICHMENU)[0] == 404
    assert call(fake, "POST", default_richmenu_path(menu_id))[0] == 400  # no image yet
    assert upload(fake, menu_id, png())[0] == 200
    assert upload(fake, menu_id, png())[0] == 400  # an image cannot be replaced
    assert call(fake, "POST", default_richmenu_path(menu_id))[0] == 200
    assert call(fake, "GET", DEFAULT_RICHMENU)[1] == {"richMenuId": menu_id}
    assert call(fake, "DELETE", richmenu_path(menu_id))[0] == 200
    assert fake.default_richmenu is None and fake.richmenus == {} and fake.richmenu_images == {}
    assert call(fake, "DELETE", richmenu_path(menu_id))[0] == 404
    fake.assert_contract_ok()


def test_the_image_is_downloaded_from_the_data_host(fake: FakeLineApi) -> None:
    import urllib.request

    menu_id = create(fake)
    image = png()
    upload(fake, menu_id, image)
    request = urllib.request.Request(fake.data_url + richmenu_content_path(menu_id),
                                     headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert resp.headers["Content-Type"] == "image/png" and resp.read() == image
    fake.assert_contract_ok()


@pytest.mark.parametrize(
    ("body", "content_type", "problem"),
    [
        (png((1200, 405)), "image/png", "does not match"),
        (png(fmt="JPEG"), "image/png", "Content-Type says"),
        (b"not an image", "image/png", "not an image"),
        (png(), "image/gif", "image/png or image/jpeg"),
    ],
)
def test_bad_images_are_refused(fake: FakeLineApi, body: bytes, content_type: str, problem: str) -> None:
    menu_id = create(fake)
    status, answer = upload(fake, menu_id, body, content_type)
    assert status == 400 and problem in answer.decode()
    assert menu_id not in fake.richmenu_images


def test_a_blob_sent_to_the_api_host_is_a_contract_error(fake: FakeLineApi) -> None:
    menu_id = create(fake)
    upload(fake, menu_id, png(), host=fake.base_url)
    with pytest.raises(AssertionError, match="only on the data host"):
        fake.assert_contract_ok()


def test_an_api_call_sent_to_the_data_host_is_a_contract_error(fake: FakeLineApi) -> None:
    import urllib.request

    request = urllib.request.Request(fake.data_url + BOT_INFO, headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=10):
        pass
    with pytest.raises(AssertionError, match="only on the API host"):
        fake.assert_contract_ok()


def test_a_bad_menu_is_refused(fake: FakeLineApi) -> None:
    assert call(fake, "POST", RICHMENU, {**MENU, "size": {"width": 2500, "height": 2500}})[0] == 400
    outside = {**MENU, "areas": [{**MENU["areas"][0], "bounds": {"x": 100, "y": 0, "width": 2500, "height": 843}}]}
    assert call(fake, "POST", RICHMENU, outside)[0] == 400
    assert fake.richmenus == {}


def test_the_spec_checks_rich_menu_requests(fake: FakeLineApi) -> None:
    require_spec()
    call(fake, "POST", RICHMENU, {**MENU, "chatBarText": "x" * 15})  # LINE allows 14
    with pytest.raises(AssertionError, match="chatBarText"):
        fake.assert_contract_ok()
