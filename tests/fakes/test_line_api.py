"""Tests of the LINE Messaging API fake itself."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import uuid4

import pytest
from linebot.v3.messaging import (
    ApiClient,
    ApiException,
    Configuration,
    MessagingApi,
    PostbackAction,
    PushMessageRequest,
    QuickReply,
    QuickReplyItem,
    ReplyMessageRequest,
    TextMessage,
)

from tests.fakes.line_api import CONSUMPTION, MULTICAST, PUSH, QUOTA, REPLY, FakeLineApi, profile_path
from tests.fakes.openapi import (
    SPEC_DIR_ENV,
    messaging_spec_path,
    require_specs,
    validate_webhook_body,
    webhook_spec_path,
)

TOKEN = "test-access-token"
USER = "U" + "1" * 32
OTHER = "U" + "2" * 32
TEXT = {"type": "text", "text": "hello"}


@pytest.fixture
def fake() -> Iterator[FakeLineApi]:
    with FakeLineApi(access_token=TOKEN) as api:
        yield api


def call(
    fake: FakeLineApi, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
    token: str | None = TOKEN,
) -> tuple[int, Any, dict[str, str]]:
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    if token is not None:
        all_headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(fake.base_url + path, data=data, method=method, headers=all_headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, json.loads(resp.read()), {k.lower(): v for k, v in resp.headers.items()}
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read()), {k.lower(): v for k, v in err.headers.items()}


def require_spec() -> None:
    require_specs("messaging-api.yml")


def test_reply_token_is_single_use(fake: FakeLineApi) -> None:
    token = fake.issue_reply_token(USER)
    status, body, _ = call(fake, "POST", REPLY, {"replyToken": token, "messages": [TEXT, TEXT]})
    assert status == 200
    assert [set(m) for m in body["sentMessages"]] == [{"id", "quoteToken"}] * 2
    assert fake.delivered(USER) == [TEXT, TEXT]

    status, body, _ = call(fake, "POST", REPLY, {"replyToken": token, "messages": [TEXT]})
    assert (status, body) == (400, {"message": "Invalid reply token"})
    assert fake.delivered(USER) == [TEXT, TEXT]
    assert [r.status for r in fake.recorded(REPLY)] == [200, 400]
    fake.assert_contract_ok()


def test_unknown_and_expired_reply_tokens_are_rejected(fake: FakeLineApi) -> None:
    status, body, _ = call(fake, "POST", REPLY, {"replyToken": "0" * 32, "messages": [TEXT]})
    assert (status, body) == (400, {"message": "Invalid reply token"})
    token = fake.issue_reply_token(USER)
    fake.expire_reply_token(token)
    status, _, _ = call(fake, "POST", REPLY, {"replyToken": token, "messages": [TEXT]})
    assert status == 400
    assert fake.delivered_all() == {}


def test_push_retry_key_conflict_delivers_once(fake: FakeLineApi) -> None:
    key = str(uuid4())
    push = {"to": USER, "messages": [TEXT]}
    status, body, first_headers = call(fake, "POST", PUSH, push, {"X-Line-Retry-Key": key})
    assert status == 200 and len(body["sentMessages"]) == 1

    status, body, headers = call(fake, "POST", PUSH, push, {"X-Line-Retry-Key": key})
    assert status == 409
    assert body["message"] == "The retry key is already accepted"
    assert headers["x-line-accepted-request-id"] == first_headers["x-line-request-id"]
    assert fake.delivered(USER) == [TEXT]

    status, _, _ = call(fake, "POST", PUSH, push, {"X-Line-Retry-Key": "not-a-uuid"})
    assert status == 400
    assert fake.delivered(USER) == [TEXT]


def test_concurrent_retries_with_one_key_deliver_once(fake: FakeLineApi) -> None:
    key, push = str(uuid4()), {"to": USER, "messages": [TEXT]}
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = sorted(pool.map(lambda _: call(fake, "POST", PUSH, push, {"X-Line-Retry-Key": key})[0], range(8)))
    assert statuses == [200] + [409] * 7
    assert fake.delivered(USER) == [TEXT]


def test_multicast_delivers_to_each_and_limits_recipients(fake: FakeLineApi) -> None:
    key = str(uuid4())
    body = {"to": [USER, OTHER], "messages": [TEXT]}
    assert call(fake, "POST", MULTICAST, body, {"X-Line-Retry-Key": key})[:2] == (200, {})
    assert call(fake, "POST", MULTICAST, body, {"X-Line-Retry-Key": key})[0] == 409
    assert fake.delivered_all() == {USER: [TEXT], OTHER: [TEXT]}

    too_many = {"to": [f"U{i:032x}" for i in range(501)], "messages": [TEXT]}
    assert call(fake, "POST", MULTICAST, too_many)[0] == 400
    assert len(fake.delivered_all()) == 2
    assert any("501 recipients" in e for e in fake.contract_errors)


def test_fail_then_success(fake: FakeLineApi) -> None:
    fake.fail(PUSH, 500)
    fake.fail(PUSH, 429, headers={"Retry-After": "3"}, body={"message": "Too many requests"})
    key = str(uuid4())
    push = {"to": USER, "messages": [TEXT]}

    assert call(fake, "POST", PUSH, push, {"X-Line-Retry-Key": key})[:2] == (500, {"message": "fake failure"})
    status, body, headers = call(fake, "POST", PUSH, push, {"X-Line-Retry-Key": key})
    assert (status, body, headers["retry-after"]) == (429, {"message": "Too many requests"}, "3")
    assert fake.delivered(USER) == []

    assert call(fake, "POST", PUSH, push, {"X-Line-Retry-Key": key})[0] == 200
    assert fake.delivered(USER) == [TEXT]
    assert [r.status for r in fake.recorded(PUSH)] == [500, 429, 200]
    assert fake.recorded(PUSH)[0].json == push


def test_requests_need_the_access_token(fake: FakeLineApi) -> None:
    token = fake.issue_reply_token(USER)
    for auth in (None, "wrong-token"):
        status, body, _ = call(fake, "POST", REPLY, {"replyToken": token, "messages": [TEXT]}, token=auth)
        assert status == 401 and body["message"].startswith("Authentication failed")
    assert fake.delivered(USER) == []
    assert call(fake, "POST", REPLY, {"replyToken": token, "messages": [TEXT]})[0] == 200


def test_quota_endpoints(fake: FakeLineApi) -> None:
    assert call(fake, "GET", QUOTA)[:2] == (200, {"type": "limited", "value": 200})
    call(fake, "POST", PUSH, {"to": USER, "messages": [TEXT, TEXT]})
    call(fake, "POST", MULTICAST, {"to": [USER, OTHER], "messages": [TEXT]})
    call(fake, "POST", REPLY, {"replyToken": fake.issue_reply_token(USER), "messages": [TEXT]})
    assert call(fake, "GET", CONSUMPTION)[:2] == (200, {"totalUsage": 4})
    fake.quota = None
    assert call(fake, "GET", QUOTA)[1] == {"type": "none"}
    fake.assert_contract_ok()


def test_profile_endpoint(fake: FakeLineApi) -> None:
    fake.set_profile(USER, "山田 花子", language="ja")
    assert call(fake, "GET", profile_path(USER))[:2] == (
        200, {"displayName": "山田 花子", "userId": USER, "language": "ja"})
    assert call(fake, "GET", profile_path(OTHER))[:2] == (404, {"message": "Not found"})  # not a friend
    assert call(fake, "GET", profile_path(USER), token="wrong")[0] == 401
    assert [r.status for r in fake.recorded(profile_path(USER))] == [200, 401]
    fake.assert_contract_ok()
    fake.reset()
    assert call(fake, "GET", profile_path(USER))[0] == 404


def test_profile_requests_are_checked_against_the_spec(fake: FakeLineApi) -> None:
    require_spec()
    fake.set_profile(USER, "Hanako")
    call(fake, "POST", profile_path(USER), {})  # no such operation
    assert any(e.startswith(f"POST {profile_path(USER)}: spec:") for e in fake.contract_errors), fake.contract_errors


def test_unknown_path_is_404(fake: FakeLineApi) -> None:
    assert call(fake, "GET", "/v2/bot/nope")[0] == 404


def test_reset_clears_state(fake: FakeLineApi) -> None:
    token = fake.issue_reply_token(USER)
    call(fake, "POST", PUSH, {"to": USER, "messages": [{"type": "text"}]})
    fake.fail(PUSH, 500)
    fake.reset()
    assert (fake.recorded(), fake.delivered_all(), fake.contract_errors) == ([], {}, [])
    assert call(fake, "POST", REPLY, {"replyToken": token, "messages": [TEXT]})[0] == 400
    assert call(fake, "POST", PUSH, {"to": USER, "messages": [TEXT]})[0] == 200


def test_wait_helpers(fake: FakeLineApi) -> None:
    call(fake, "POST", PUSH, {"to": USER, "messages": [TEXT]})
    assert fake.wait_delivered(USER, 1) == [TEXT]
    with pytest.raises(AssertionError, match=r"expected 2 message\(s\) delivered(?s:.*)POST /v2/bot/message/push"):
        fake.wait_delivered(USER, 2, timeout=0.05)


def test_sdk_model_and_limit_violations_are_contract_errors(fake: FakeLineApi) -> None:
    long_label = {"type": "postback", "label": "x" * 25, "data": "d"}
    quick = {"type": "text", "text": "pick", "quickReply": {"items": [{"type": "action", "action": long_label}]}}
    body = {"to": USER, "messages": [{"type": "text"}, quick]}
    assert call(fake, "POST", PUSH, body)[0] == 200  # still answered normally
    errors = "\n".join(fake.contract_errors)
    assert "sdk Message messages[0]" in errors
    assert "action label 'xxxxxxxxxxxxxxxxxxxxxxxxx' is 25 chars (max 20)" in errors
    with pytest.raises(AssertionError, match="contract error"):
        fake.assert_contract_ok()


def test_spec_violation_is_contract_error(fake: FakeLineApi) -> None:
    require_spec()
    call(fake, "POST", REPLY, {"replyToken": fake.issue_reply_token(USER), "messages": [{"type": "text"}]})
    assert any(e.startswith("POST /v2/bot/message/reply: spec:") and "'text' is a required property" in e
               for e in fake.contract_errors), fake.contract_errors
    call(fake, "POST", PUSH, {"to": USER, "messages": [TEXT]}, {"X-Line-Retry-Key": "nope"})
    assert any("spec:" in e and "X-Line-Retry-Key" in e for e in fake.contract_errors), fake.contract_errors


def test_real_sdk_client_requests_satisfy_the_contract(fake: FakeLineApi) -> None:
    config = Configuration(host=fake.base_url, access_token=TOKEN)
    quick = QuickReply(items=[QuickReplyItem(action=PostbackAction(label="Yes", data="answer=yes"))])
    with ApiClient(config) as client:
        api = MessagingApi(client)
        token = fake.issue_reply_token(USER)
        reply = api.reply_message(
            ReplyMessageRequest(reply_token=token, messages=[TextMessage(text="Hi", quick_reply=quick)])
        )
        assert len(reply.sent_messages) == 1
        key = str(uuid4())
        api.push_message(PushMessageRequest(to=USER, messages=[TextMessage(text="Later")]), x_line_retry_key=key)
        with pytest.raises(ApiException) as exc:
            api.push_message(PushMessageRequest(to=USER, messages=[TextMessage(text="Later")]), x_line_retry_key=key)
        assert exc.value.status == 409
        assert api.get_message_quota().value == 200
        assert api.get_message_quota_consumption().total_usage == 1
        fake.set_profile(USER, "Hanako")
        assert api.get_profile(USER).display_name == "Hanako"
    assert [m["text"] for m in fake.delivered(USER)] == ["Hi", "Later"]
    assert fake.recorded(REPLY)[0].json["messages"][0]["quickReply"]["items"][0]["action"]["data"] == "answer=yes"
    fake.assert_contract_ok()


def test_spec_dir_env_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv(SPEC_DIR_ENV, str(tmp_path))
    assert messaging_spec_path() is None and webhook_spec_path() is None
    with pytest.raises(FileNotFoundError):
        validate_webhook_body({"destination": "x", "events": []})


@pytest.mark.parametrize("ci", ["true", "1"])
def test_missing_specs_fail_an_end_to_end_test_under_ci(monkeypatch: pytest.MonkeyPatch, tmp_path: Any,
                                                         ci: str) -> None:
    monkeypatch.setenv(SPEC_DIR_ENV, str(tmp_path))
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception, match=r"messaging-api\.yml not found.*under CI"):
        FakeLineApi(access_token=TOKEN)
    with pytest.raises(pytest.fail.Exception, match=r"webhook\.yml not found"):
        require_specs("webhook.yml")


@pytest.mark.parametrize("ci", [None, "", "false"])
def test_missing_specs_skip_an_end_to_end_test_outside_ci(monkeypatch: pytest.MonkeyPatch, tmp_path: Any,
                                                          ci: str | None) -> None:
    monkeypatch.setenv(SPEC_DIR_ENV, str(tmp_path))
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.skip.Exception, match=re.escape(f"messaging-api.yml not found in {tmp_path}")):
        FakeLineApi(access_token=TOKEN)


def test_validate_webhook_body() -> None:
    require_specs("webhook.yml")
    event = {
        "type": "message", "mode": "active", "timestamp": 1700000000000, "webhookEventId": "01H0000000000000000000000",
        "deliveryContext": {"isRedelivery": False}, "source": {"type": "user", "userId": USER},
        "replyToken": "0" * 32, "message": {"type": "text", "id": "1", "text": "hi", "quoteToken": "q"},
    }
    assert validate_webhook_body({"destination": "U" + "a" * 32, "events": [event]}) == []
    errors = validate_webhook_body({"destination": "bot", "events": [{**event, "message": {"type": "text"}}]})
    assert any("destination" in e for e in errors) and any("'id' is a required property" in e for e in errors)
