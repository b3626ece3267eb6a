"""Tests of the Slack Web API fake and the Slack request-signing helpers."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from slack_bolt import App, BoltRequest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.webhook import WebhookClient

from tests.fakes.slack_api import CLIENT_ID, CLIENT_SECRET, FakeSlackApi, dm_channel_id
from tests.fakes.slack_signing import (
    FORM,
    JSON,
    block_actions_payload,
    event_body,
    interaction_body,
    sign,
    signed_headers,
    slash_command_body,
    view_submission_payload,
)

TOKEN = "xoxb-test-token"
SECRET = "test-signing-secret"
CHANNEL = "C0CRM"
USER = "U1"
SECTION = {"type": "section", "block_id": "intro", "text": {"type": "mrkdwn", "text": "*Hello*"}}
BUTTONS = {
    "type": "actions",
    "block_id": "choices",
    "elements": [
        {"type": "button", "action_id": "yes", "text": {"type": "plain_text", "text": "Yes"}, "value": "y"},
        {"type": "button", "action_id": "no", "text": {"type": "plain_text", "text": "No"}, "value": "n"},
    ],
}
MODAL = {
    "type": "modal",
    "callback_id": "diagnosis",
    "title": {"type": "plain_text", "text": "CRM diagnosis"},
    "submit": {"type": "plain_text", "text": "Send"},
    "close": {"type": "plain_text", "text": "Cancel"},
    "private_metadata": "step=1",
    "blocks": [
        {
            "type": "input",
            "block_id": "sales",
            "label": {"type": "plain_text", "text": "Monthly sales"},
            "element": {"type": "plain_text_input", "action_id": "amount"},
        },
        {
            "type": "input",
            "block_id": "channel",
            "label": {"type": "plain_text", "text": "Main channel"},
            "element": {
                "type": "static_select",
                "action_id": "pick",
                "options": [
                    {"text": {"type": "plain_text", "text": "Own site"}, "value": "site"},
                    {"text": {"type": "plain_text", "text": "Rakuten"}, "value": "rakuten"},
                ],
            },
        },
    ],
}
HOME = {"type": "home", "blocks": [SECTION]}


@pytest.fixture
def fake() -> Iterator[FakeSlackApi]:
    with FakeSlackApi(bot_token=TOKEN) as api:
        yield api


@pytest.fixture
def client(fake: FakeSlackApi) -> WebClient:
    return WebClient(token=TOKEN, base_url=fake.base_url)


def raw_call(fake: FakeSlackApi, method: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    request = urllib.request.Request(fake.base_url + method, data=body, method="POST", headers=headers)
    with urllib.request.urlopen(request, timeout=10) as resp:
        return resp.status, json.loads(resp.read())


class FixedClock:
    def __init__(self, now: float) -> None:
        self.t = now

    def now(self) -> float:
        return self.t


# -- Web API ------------------------------------------------------------------------------------------


def test_auth_test(client: WebClient, fake: FakeSlackApi) -> None:
    resp = client.auth_test()
    assert (resp["user_id"], resp["bot_id"], resp["team_id"], resp["team"]) == ("UBOT", "BBOT", "T1", "Test")
    assert resp["url"].startswith("https://")
    assert [c.method for c in fake.calls()] == ["auth.test"]


def test_post_message_is_recorded_with_blocks(client: WebClient, fake: FakeSlackApi) -> None:
    first = client.chat_postMessage(channel=CHANNEL, text="hello", blocks=[SECTION, BUTTONS])
    second = client.chat_postMessage(channel=CHANNEL, text="again", thread_ts=first["ts"])
    assert first["ok"] and first["channel"] == CHANNEL
    assert first["ts"] == "1767225600.000100"
    assert float(second["ts"]) > float(first["ts"])
    assert first["message"]["blocks"] == [SECTION, BUTTONS]

    messages = fake.messages(CHANNEL)
    assert [(m["text"], m["ts"]) for m in messages] == [("hello", first["ts"]), ("again", second["ts"])]
    assert messages[0]["blocks"] == [SECTION, BUTTONS]
    assert messages[1]["thread_ts"] == first["ts"]

    call = fake.calls("chat.postMessage")[0]
    assert call.args["blocks"] == [SECTION, BUTTONS]
    assert call.headers["authorization"] == f"Bearer {TOKEN}"
    assert call.headers["content-type"].startswith(JSON)
    assert (call.status, call.response["ts"]) == (200, first["ts"])
    fake.assert_contract_ok()


def test_form_encoded_and_query_arguments_are_parsed(client: WebClient, fake: FakeSlackApi) -> None:
    client.api_call("chat.postMessage", params={"channel": CHANNEL, "text": "t", "blocks": json.dumps([SECTION])})
    call = fake.calls("chat.postMessage")[0]
    assert call.headers["content-type"] == FORM
    assert call.args["blocks"] == [SECTION]
    assert fake.messages(CHANNEL)[0]["blocks"] == [SECTION]

    # users.info / conversations.info are sent as query parameters, conversations.open form-encoded
    user = client.users_info(user=USER)["user"]
    assert (user["id"], user["real_name"], user["tz"]) == (USER, f"User {USER}", "Asia/Tokyo")
    info = client.conversations_info(channel=CHANNEL)["channel"]
    assert (info["id"], info["name"], info["is_archived"]) == (CHANNEL, "crm-team", False)
    dm = client.conversations_open(users=[USER])["channel"]["id"]
    assert dm.startswith("D") and dm == client.conversations_open(users=USER)["channel"]["id"] == dm_channel_id(USER)

    # posting to a user id lands in the DM with that user
    posted = client.chat_postMessage(channel=USER, text="dm")
    assert posted["channel"] == dm
    assert [m["text"] for m in fake.messages(dm)] == [m["text"] for m in fake.messages(USER)] == ["dm"]
    fake.assert_contract_ok()


def test_token_is_required(fake: FakeSlackApi) -> None:
    with pytest.raises(SlackApiError) as err:
        WebClient(token="xoxb-wrong", base_url=fake.base_url).chat_postMessage(channel=CHANNEL, text="x")
    assert (err.value.response.status_code, err.value.response["error"]) == (200, "invalid_auth")

    status, body = raw_call(fake, "auth.test", b"", {"Content-Type": FORM})
    assert (status, body) == (200, {"ok": False, "error": "not_authed"})
    status, body = raw_call(fake, "auth.test", f"token={TOKEN}".encode(), {"Content-Type": FORM})
    assert (status, body["ok"]) == (200, True)
    assert fake.messages(CHANNEL) == []


# -- OAuth: many workspaces, each with its own token ---------------------------------------------------

AUTHORIZE = f"https://slack.com/oauth/v2/authorize?state=st-1&client_id={CLIENT_ID}&scope=commands,chat:write&user_scope="


def exchange(fake: FakeSlackApi, **args: Any) -> Any:
    return WebClient(base_url=fake.base_url).oauth_v2_access(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, **args)


def test_oauth_install_gives_each_workspace_its_own_token(fake: FakeSlackApi) -> None:
    redirect = fake.approve(AUTHORIZE, "T2", user="U0ADMIN", name="二号店")
    assert redirect["state"] == "st-1"
    answer = exchange(fake, code=redirect["code"])
    assert (answer["team"], answer["authed_user"], answer["token_type"]) == \
        ({"id": "T2", "name": "二号店"}, {"id": "U0ADMIN"}, "bot")
    assert answer["scope"] == "commands,chat:write" and "refresh_token" not in answer.data  # type: ignore[union-attr]
    token = answer["access_token"]
    assert fake.tokens_of("T2") == [token] and fake.installed("T2")
    with pytest.raises(SlackApiError) as err:
        exchange(fake, code=redirect["code"])  # a code works once
    assert err.value.response["error"] == "invalid_code"
    call = fake.calls("oauth.v2.access")[0]
    assert call.headers["authorization"].startswith("Basic ") and call.team == "T2"

    # each token answers as its own workspace; the default token stays T1's
    two = WebClient(token=token, base_url=fake.base_url)
    assert (two.auth_test()["team_id"], two.auth_test()["user_id"]) == ("T2", "UBOTT2")
    posted = two.chat_postMessage(channel="C0TWO", text="hi")
    assert posted["message"]["team"] == "T2"
    WebClient(token=TOKEN, base_url=fake.base_url).chat_postMessage(channel=CHANNEL, text="hi")
    assert [(c.team, c.headers["authorization"]) for c in fake.calls("chat.postMessage")] == \
        [("T2", f"Bearer {token}"), ("T1", f"Bearer {TOKEN}")]

    fake.uninstall("T2")
    with pytest.raises(SlackApiError) as err:
        two.chat_postMessage(channel="C0TWO", text="again")
    assert err.value.response["error"] == "invalid_auth" and fake.calls("chat.postMessage")[-1].team is None
    assert fake.tokens_of("T2") == [] and not fake.installed("T2")


def test_oauth_refuses_wrong_credentials(fake: FakeSlackApi) -> None:
    code = fake.approve(AUTHORIZE, "T2")["code"]
    client = WebClient(base_url=fake.base_url)
    refused = ((CLIENT_ID, "wrong", "bad_client_secret"), ("9.9", CLIENT_SECRET, "invalid_client_id"))
    for client_id, secret, error in refused:
        with pytest.raises(SlackApiError) as err:
            client.oauth_v2_access(client_id=client_id, client_secret=secret, code=code)
        assert err.value.response["error"] == error
    with pytest.raises(AssertionError):
        fake.approve(AUTHORIZE.replace(CLIENT_ID, "9.9"), "T2")  # another app's install
    assert exchange(fake, code=code)["ok"]  # the code was not used up by the refused calls


def test_token_rotation_refreshes_once_per_refresh_token(fake: FakeSlackApi) -> None:
    first = exchange(fake, code=fake.approve(AUTHORIZE, "T3", rotation=True, expires_in=3600)["code"])
    assert first["access_token"].startswith("xoxe.xoxb-") and first["refresh_token"].startswith("xoxe-1-")
    assert first["expires_in"] == 3600
    second = exchange(fake, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert second["access_token"] != first["access_token"] and second["refresh_token"] != first["refresh_token"]
    with pytest.raises(SlackApiError) as err:  # a refresh token works once
        exchange(fake, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert err.value.response["error"] == "invalid_refresh_token"
    # the old access token works until it expires; both answer as T3
    assert fake.tokens_of("T3") == [first["access_token"], second["access_token"]]
    assert WebClient(token=second["access_token"], base_url=fake.base_url).auth_test()["team_id"] == "T3"

    short = exchange(fake, code=fake.approve(AUTHORIZE, "T4", rotation=True, expires_in=0)["code"])
    with pytest.raises(SlackApiError) as err:
        WebClient(token=short["access_token"], base_url=fake.base_url).auth_test()
    assert err.value.response["error"] == "token_expired"


def test_rate_limit_failure_surfaces_status_and_retry_after(client: WebClient, fake: FakeSlackApi) -> None:
    fake.fail("chat.postMessage", status=429, headers={"Retry-After": "3"})
    with pytest.raises(SlackApiError) as err:
        client.chat_postMessage(channel=CHANNEL, text="x")
    response = err.value.response
    assert response.status_code == 429
    assert response["error"] == "ratelimited"
    assert {k.lower(): v for k, v in response.headers.items()}["retry-after"] == "3"
    assert fake.messages(CHANNEL) == []

    assert client.chat_postMessage(channel=CHANNEL, text="x")["ok"]  # times=1: the next call succeeds
    assert [c.status for c in fake.calls("chat.postMessage")] == [429, 200]


def test_fail_with_error_answers_200_not_ok(client: WebClient, fake: FakeSlackApi) -> None:
    fake.fail("chat.postMessage", error="channel_not_found", times=2)
    for _ in range(2):
        with pytest.raises(SlackApiError) as err:
            client.chat_postMessage(channel=CHANNEL, text="x")
        assert (err.value.response.status_code, err.value.response["error"]) == (200, "channel_not_found")
    assert client.chat_postMessage(channel=CHANNEL, text="x")["ok"]
    assert len(fake.messages(CHANNEL)) == 1


def test_archived_and_removed_channels(client: WebClient, fake: FakeSlackApi) -> None:
    fake.archive(CHANNEL)
    with pytest.raises(SlackApiError) as err:
        client.chat_postMessage(channel=CHANNEL, text="x")
    assert err.value.response["error"] == "is_archived"
    assert client.conversations_info(channel=CHANNEL)["channel"]["is_archived"] is True

    fake.remove_bot("C0OTHER")
    with pytest.raises(SlackApiError) as err:
        client.chat_postEphemeral(channel="C0OTHER", user=USER, text="x")
    assert err.value.response["error"] == "not_in_channel"
    assert client.chat_postMessage(channel="C0ANY", text="unknown channels are fine")["ok"]
    assert fake.messages(CHANNEL) == [] and fake.ephemerals("C0OTHER") == []


def test_update_and_ephemeral(client: WebClient, fake: FakeSlackApi) -> None:
    ts = client.chat_postMessage(channel=CHANNEL, text="before", blocks=[BUTTONS])["ts"]
    updated = client.chat_update(channel=CHANNEL, ts=ts, text="after", blocks=[SECTION])
    assert (updated["ts"], updated["text"]) == (ts, "after")
    [message] = fake.messages(CHANNEL)
    assert (message["text"], message["blocks"], message["ts"]) == ("after", [SECTION], ts)
    with pytest.raises(SlackApiError) as err:
        client.chat_update(channel=CHANNEL, ts="1.000000", text="x")
    assert err.value.response["error"] == "message_not_found"

    eph = client.chat_postEphemeral(channel=CHANNEL, user=USER, text="only you", blocks=[SECTION])
    assert eph["message_ts"]
    assert [(m["user"], m["text"]) for m in fake.ephemerals(CHANNEL)] == [(USER, "only you")]
    assert len(fake.messages(CHANNEL)) == 1
    fake.assert_contract_ok()


def test_views_are_recorded(client: WebClient, fake: FakeSlackApi) -> None:
    opened = client.views_open(trigger_id="trig-1", view=MODAL)["view"]
    assert opened["id"].startswith("V") and opened["hash"]
    assert (opened["callback_id"], opened["private_metadata"], opened["blocks"]) == (
        "diagnosis",
        "step=1",
        MODAL["blocks"],
    )
    with pytest.raises(SlackApiError) as err:
        client.views_open(trigger_id="trig-1", view=MODAL)
    assert err.value.response["error"] == "trigger_exchanged"

    pushed = client.views_push(trigger_id="trig-2", view={**MODAL, "callback_id": "step2"})["view"]
    assert pushed["previous_view_id"] == opened["id"]
    with pytest.raises(SlackApiError) as err:
        client.views_update(view_id=opened["id"], hash="stale", view=MODAL)
    assert err.value.response["error"] == "hash_conflict"
    updated = client.views_update(view_id=opened["id"], hash=opened["hash"], view={**MODAL, "private_metadata": "2"})
    assert updated["view"]["id"] == opened["id"] and updated["view"]["hash"] != opened["hash"]
    assert [(v["id"], v["private_metadata"]) for v in fake.opened_views()] == [
        (opened["id"], "2"),
        (pushed["id"], "step=1"),
    ]

    home = client.views_publish(user_id=USER, view=HOME)["view"]
    assert fake.home_view(USER) == home and home["blocks"] == [SECTION]
    again = client.views_publish(user_id=USER, view={"type": "home", "blocks": [BUTTONS]})["view"]
    assert again["id"] == home["id"] and fake.home_view(USER)["blocks"] == [BUTTONS]  # type: ignore[index]
    assert fake.home_view("U0NOBODY") is None
    assert [c.method for c in fake.calls()].count("views.publish") == 2
    fake.assert_contract_ok()


def _error_of(call: Any) -> str:
    with pytest.raises(SlackApiError) as err:
        call()
    return str(err.value.response["error"])


STEP_OUTPUTS = {"score": {"type": "number", "is_required": True}, "note": {"type": "string", "is_required": False}}


def test_a_custom_step_run_opens_its_view_once_and_completes_once(client: WebClient, fake: FakeSlackApi) -> None:
    run = fake.start_run("report", {"channel": CHANNEL}, user=USER, output_parameters=STEP_OUTPUTS)
    assert run.token.startswith("xwfp-") and run.pointer and run.state == "running"
    assert run.inputs["interactivity"]["interactor"]["id"] == USER
    as_run = WebClient(token=run.token, base_url=fake.base_url)
    opened = as_run.views_open(interactivity_pointer=run.pointer, view=MODAL)["view"]
    assert fake.run_of_view(opened["id"]) == run.execution  # opened with the run's token: the run's view
    assert _error_of(lambda: as_run.views_open(interactivity_pointer=run.pointer, view=MODAL)) == "trigger_exchanged"
    assert _error_of(lambda: client.views_open(interactivity_pointer="1.2.nope", view=MODAL)) == "invalid_arguments"
    assert fake.run_of_view(client.views_open(trigger_id="t-1", view=MODAL)["view"]["id"]) is None

    def done(**outputs: Any) -> Any:
        return lambda: as_run.functions_completeSuccess(function_execution_id=run.execution, outputs=outputs)

    assert _error_of(done(score="7")) == "parameter_validation_failed"  # a number declared
    assert _error_of(done(note="x")) == "parameter_validation_failed"  # the required one missing
    assert _error_of(done(score=7, extra=1)) == "parameter_validation_failed"  # not declared
    assert _error_of(lambda: as_run.api_call("functions.completeSuccess", json={"outputs": {}})) == "invalid_arguments"
    assert _error_of(lambda: as_run.api_call("functions.completeSuccess", params={
        "function_execution_id": run.execution, "outputs": "[1]"})) == "invalid_arguments"  # not an object
    assert _error_of(lambda: as_run.functions_completeSuccess(function_execution_id="Fx404", outputs={})) == (
        "function_execution_not_found")
    assert fake.run(run.execution).state == "running"  # type: ignore[union-attr]

    assert as_run.functions_completeSuccess(function_execution_id=run.execution, outputs={"score": 7.5})["ok"]
    ended = fake.run(run.execution)
    assert ended is not None and (ended.state, ended.outputs) == ("completed", {"score": 7.5})
    assert _error_of(done(score=8)) == "invalid_auth"  # the run's token ended with the run
    assert _error_of(lambda: client.functions_completeError(function_execution_id=run.execution, error="x")) == (
        "execution_not_in_running_state")
    fake.assert_contract_ok()


def test_a_run_fails_with_a_reason_and_its_token_can_expire(client: WebClient, fake: FakeSlackApi) -> None:
    run = fake.start_run("report", user=None)
    assert run.pointer is None and "interactivity" not in run.inputs
    fake.expire_run_token(run.execution)
    as_run = WebClient(token=run.token, base_url=fake.base_url)
    assert _error_of(lambda: as_run.functions_completeError(function_execution_id=run.execution, error="x")) == (
        "token_expired")
    assert _error_of(lambda: client.functions_completeError(function_execution_id=run.execution, error=" ")) == (
        "invalid_arguments")
    assert client.functions_completeError(function_execution_id=run.execution, error="閉じられました")["ok"]
    assert (fake.run(run.execution).state, fake.run(run.execution).error) == ("failed", "閉じられました")  # type: ignore[union-attr]
    other = fake.start_run("report", team="T9")
    assert _error_of(lambda: client.functions_completeError(function_execution_id=other.execution, error="x")) == (
        "function_execution_not_found")  # a run of another workspace


def test_contract_errors_are_collected_but_answered(client: WebClient, fake: FakeSlackApi) -> None:
    long_section = {"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}
    assert client.chat_postMessage(channel=CHANNEL, text="long", blocks=[long_section])["ok"]
    assert any("3001" in e and "chat.postMessage" in e for e in fake.contract_errors), fake.contract_errors

    fake.reset()
    long_title = {**MODAL, "title": {"type": "plain_text", "text": "t" * 30}}
    assert client.views_open(trigger_id="trig-title", view=long_title)["ok"]
    assert any("views.open" in e and "title" in e for e in fake.contract_errors), fake.contract_errors
    with pytest.raises(AssertionError, match="contract error"):
        fake.assert_contract_ok()

    fake.reset()
    twin = {"type": "actions", "elements": [{**BUTTONS["elements"][0], "value": "again"}]}  # reuses action_id "yes"
    blocks = [SECTION, SECTION, BUTTONS, twin, {"type": "no_such_block"}] + [{"type": "divider"}] * 50
    client.chat_postMessage(channel=CHANNEL, text="bad", blocks=blocks)
    errors = "\n".join(fake.contract_errors)
    for expected in ("duplicate block_id 'intro'", "duplicate action_id 'yes'", "no_such_block", "55 blocks"):
        assert expected in errors
    fake.reset()
    client.views_open(trigger_id="trig-pm", view={**MODAL, "private_metadata": "m" * 3001, "submit": None})
    errors = "\n".join(fake.contract_errors)
    assert "private_metadata" in errors and "submit" in errors


def test_valid_message_has_no_contract_errors(client: WebClient, fake: FakeSlackApi) -> None:
    client.chat_postMessage(channel=CHANNEL, text="fine", blocks=[SECTION, {"type": "divider"}, BUTTONS])
    client.views_open(trigger_id="trig-ok", view=MODAL)
    client.views_publish(user_id=USER, view=HOME)
    assert fake.contract_errors == []
    fake.assert_contract_ok()


# -- Slack's own charts and tables: checked against their documented limits ---------------------------


def line_chart(**changes: Any) -> dict[str, Any]:
    cats = ["2025年度 第3四半期", "2025年度 第4四半期"]
    points = [{"label": c, "value": v} for c, v in zip(cats, (7.9, 7.1), strict=True)]
    chart = {"type": "line", "axis_config": {"categories": cats, "x_label": "四半期", "y_label": "点数"},
             "series": [{"name": "総合", "data": points}]}
    return {"type": "data_visualization", "title": "KPIの推移", "chart": chart | changes}


def raw(*texts: str) -> list[dict[str, str]]:
    return [{"type": "raw_text", "text": text} for text in texts]


TABLE = {"type": "table", "column_settings": [{"is_wrapped": True}, {"align": "right"}],
         "rows": [raw("領域", "点数"), raw("データ品質", "8.0")]}
PIE = {"type": "data_visualization", "title": "内訳", "chart": {"type": "pie", "segments": [
    {"label": "A評価", "value": 3}, {"label": "B評価", "value": 5.5}]}}
DATA_TABLE = {"type": "data_table", "caption": "KPI", "page_size": 10,
              "rows": [raw("領域", "点数"), [{"type": "raw_text", "text": "ROI"}, {"type": "raw_number", "value": 5,
                                                                                     "text": "5.0"}]]}


def test_charts_and_tables_within_slacks_limits_pass(client: WebClient, fake: FakeSlackApi) -> None:
    client.chat_postMessage(channel=CHANNEL, text="trend", blocks=[SECTION, line_chart(), PIE, TABLE])
    client.chat_postMessage(channel=CHANNEL, text="data table", blocks=[DATA_TABLE, line_chart(type="bar")])
    fake.assert_contract_ok()


def test_charts_beyond_slacks_limits_are_contract_errors(client: WebClient, fake: FakeSlackApi) -> None:
    cats = [f"c{n}" for n in range(21)]
    too_many = {"categories": cats}
    wrong = [
        ({"title": "t" * 51}, "title: 51 chars"),
        ({"chart": {"type": "radar"}}, "needs a type"),
        ({"chart": line_chart(axis_config=too_many, series=[{"name": "s", "data": [
            {"label": c, "value": 1} for c in cats]}])["chart"]}, "categories: 21 items"),
        ({"chart": line_chart(series=[{"name": f"s{n}", "data": [{"label": "2025年度 第3四半期", "value": 1},
                                                                  {"label": "2025年度 第4四半期", "value": 2}]}
                                      for n in range(7)])["chart"]}, "series: 7 items"),
        ({"chart": line_chart(series=[{"name": "とても長い系列の名前はスラックでは二十文字まで", "data": [
            {"label": "2025年度 第3四半期", "value": 1}, {"label": "2025年度 第4四半期", "value": 2}]}])["chart"]},
         "name: 23 chars"),
        ({"chart": line_chart(series=[{"name": "総合", "data": [{"label": "2025年度 第3四半期", "value": None},
                                                                {"label": "2025年度 第4四半期", "value": 1}]}])[
            "chart"]}, "value: must be a finite number"),
        ({"chart": line_chart(series=[{"name": "総合", "data": [{"label": "2025年度 第4四半期", "value": 1}]}])[
            "chart"]}, "are not the axis' categories"),
        ({"chart": {"type": "pie", "segments": [{"label": "A", "value": 0}]}}, "must be a number above 0"),
    ]
    for change, expected in wrong:
        fake.reset()
        client.chat_postMessage(channel=CHANNEL, text="chart", blocks=[line_chart() | change])
        assert any(expected in e for e in fake.contract_errors), (expected, fake.contract_errors)
    fake.reset()
    client.chat_postMessage(channel=CHANNEL, text="three", blocks=[line_chart(), line_chart(), line_chart()])
    assert any("3 charts (max 2)" in e for e in fake.contract_errors), fake.contract_errors


def test_tables_beyond_slacks_limits_are_contract_errors(client: WebClient, fake: FakeSlackApi) -> None:
    wrong = [
        ({"rows": [raw("a")] * 101}, "rows: 101 items"),
        ({"rows": [raw(*"abcdefghijklmnopqrstu")]}, "21 items"),
        ({"rows": [raw("a", "b"), raw("c")]}, "rows of different widths"),
        ({"rows": [raw("a", "")]}, "at least 1 character"),  # slack_sdk's model of a raw_text cell
        ({"rows": [[{"type": "button", "text": "x"}]]}, "cell type 'button' not allowed"),
        ({"rows": [raw("x" * 5000, "y" * 5001)]}, "10001 characters"),
        ({"column_settings": [{"align": "middle"}]}, "align: 'middle'"),
    ]
    for change, expected in wrong:
        fake.reset()
        client.chat_postMessage(channel=CHANNEL, text="table", blocks=[TABLE | change])
        assert any(expected in e for e in fake.contract_errors), (expected, fake.contract_errors)
    fake.reset()
    client.chat_postMessage(channel=CHANNEL, text="two", blocks=[TABLE, TABLE])
    assert any("2 tables (max 1)" in e for e in fake.contract_errors), fake.contract_errors
    for change, expected in [({"caption": None}, "caption"), ({"rows": [raw("a")]}, "rows: 1 items"),
                             ({"page_size": 101}, "page_size"), ({"row_header_column_index": 2}, "row_header")]:
        fake.reset()
        client.chat_postMessage(channel=CHANNEL, text="data table", blocks=[DATA_TABLE | change])
        assert any(expected in e for e in fake.contract_errors), (expected, fake.contract_errors)


def test_a_block_type_can_be_refused_as_a_workspace_without_it_does(client: WebClient, fake: FakeSlackApi) -> None:
    fake.fail("chat.postMessage", "invalid_blocks", block_type="data_visualization", times=2)
    with pytest.raises(SlackApiError) as refused:
        client.chat_postMessage(channel=CHANNEL, text="chart", blocks=[SECTION, line_chart()])
    assert refused.value.response["error"] == "invalid_blocks"
    assert client.chat_postMessage(channel=CHANNEL, text="plain", blocks=[SECTION, TABLE])["ok"]  # served
    with pytest.raises(SlackApiError):
        client.chat_postMessage(channel=CHANNEL, text="chart again", blocks=[line_chart()])
    assert client.chat_postMessage(channel=CHANNEL, text="twice is all", blocks=[line_chart()])["ok"]
    assert [m["text"] for m in fake.messages(CHANNEL)] == ["plain", "twice is all"]


def test_history_returns_metadata_only_when_asked(client: WebClient, fake: FakeSlackApi) -> None:
    meta = {"event_type": "crmbot_outbox", "event_payload": {"id": "e1"}}
    first = client.chat_postMessage(channel=CHANNEL, text="one", metadata=meta)["ts"]
    client.chat_postMessage(channel=CHANNEL, text="reply", thread_ts=first)
    client.chat_postMessage(channel=CHANNEL, text="two")
    assert fake.messages(CHANNEL)[0]["metadata"] == meta

    page = client.conversations_history(channel=CHANNEL, limit=1, include_all_metadata=True)
    assert [m["text"] for m in page["messages"]] == ["two"] and page["has_more"]
    rest = client.conversations_history(
        channel=CHANNEL, cursor=page["response_metadata"]["next_cursor"], limit=5, include_all_metadata=True
    )
    assert [(m["text"], m.get("metadata")) for m in rest["messages"]] == [("one", meta)] and not rest["has_more"]
    plain = client.conversations_history(channel=CHANNEL)
    assert [m["text"] for m in plain["messages"]] == ["two", "one"]
    assert all("metadata" not in m for m in plain["messages"])
    fake.assert_contract_ok()

    client.chat_postMessage(channel=CHANNEL, text="bad", metadata={"event_payload": {}})
    assert any("metadata" in e for e in fake.contract_errors)


def test_files_upload_v2_shares_a_file_in_a_channel_and_a_dm(client: WebClient, fake: FakeSlackApi) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
    done = client.files_upload_v2(channel=CHANNEL, content=png, filename="radar.png", title="レーダー",
                                  alt_txt="データ品質 8.0", initial_comment="グラフです")
    assert done["file"]["id"].startswith("F") and done["file"]["title"] == "レーダー"
    assert [c.method for c in fake.calls()] == [
        "files.getUploadURLExternal", "upload", "files.completeUploadExternal"]
    assert "authorization" not in fake.calls("upload")[0].headers  # the upload URL itself is the credential
    [shared] = fake.files(CHANNEL)
    assert (shared["name"], shared["title"], shared["alt_txt"], shared["mimetype"], shared["data"]) == (
        "radar.png", "レーダー", "データ品質 8.0", "image/png", png)
    [message] = fake.messages(CHANNEL)
    assert message["text"] == "グラフです" and [f["name"] for f in message["files"]] == ["radar.png"]
    history = client.conversations_history(channel=CHANNEL)["messages"]
    assert history[0]["files"][0]["id"] == shared["id"]

    csv = "\ufeff四半期,総合\r\n2026-Q1,7.1\r\n".encode()
    client.files_upload_v2(channel=dm_channel_id(USER), content=csv, filename="kpi.csv")
    assert [f["data"] for f in fake.files(USER)] == [csv]  # a user id names the DM with that user
    assert [f["name"] for f in fake.files()] == ["radar.png", "kpi.csv"]
    fake.assert_contract_ok()


def test_files_upload_refusals(client: WebClient, fake: FakeSlackApi) -> None:
    with pytest.raises(SlackApiError) as err:
        client.files_upload_v2(channel=CHANNEL, content=b"x", filename="a.png", alt_txt="x" * 1001)
    assert err.value.response["error"] == "alt_txt_too_large"
    with pytest.raises(SlackApiError) as err:
        client.files_completeUploadExternal(files=[{"id": "F99999999"}], channel_id=CHANNEL)
    assert err.value.response["error"] == "file_not_found"
    fake.archive(CHANNEL)
    with pytest.raises(SlackApiError) as err:
        client.files_upload_v2(channel=CHANNEL, content=b"x", filename="a.png")
    assert err.value.response["error"] == "is_archived"
    assert fake.files() == [] and fake.messages(CHANNEL) == []


def test_unknown_method(client: WebClient, fake: FakeSlackApi) -> None:
    with pytest.raises(SlackApiError) as err:
        client.api_call("no.such.method")
    assert err.value.response["error"] == "unknown_method"


def test_response_url_is_captured(fake: FakeSlackApi) -> None:
    url = fake.new_response_url()
    resp = WebhookClient(url).send(text="done", blocks=[SECTION], response_type="ephemeral")
    assert resp.status_code == 200
    assert fake.responses(url) == [{"text": "done", "blocks": [SECTION], "response_type": "ephemeral"}]
    assert fake.calls("response_url")[0].args["text"] == "done"
    fake.assert_contract_ok()


def test_wait_for_and_reset(client: WebClient, fake: FakeSlackApi) -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(client.chat_postMessage, channel=CHANNEL, text=str(i)) for i in range(8)]
        messages = fake.wait_messages(CHANNEL, 8)
        assert all(f.result()["ok"] for f in futures)
    assert sorted(m["text"] for m in messages) == [str(i) for i in range(8)]
    assert len({m["ts"] for m in messages}) == 8
    with pytest.raises(AssertionError, match="expected 9 message"):
        fake.wait_messages(CHANNEL, 9, timeout=0)

    fake.archive(CHANNEL)
    fake.fail("auth.test")
    fake.reset()
    assert fake.calls() == [] and fake.messages(CHANNEL) == []
    assert client.auth_test()["ok"] and client.chat_postMessage(channel=CHANNEL, text="x")["ok"]


# -- request signing ----------------------------------------------------------------------------------


def test_sign_matches_slack_sdk_verifier() -> None:
    body = slash_command_body("/crm", "help", USER, CHANNEL)
    ts = 1_767_225_600
    verifier = SignatureVerifier(SECRET, clock=FixedClock(ts + 10))
    assert verifier.is_valid(body, str(ts), sign(SECRET, body, ts))
    assert sign(SECRET, body, ts) == verifier.generate_signature(timestamp=str(ts), body=body)
    assert not verifier.is_valid(body + b"x", str(ts), sign(SECRET, body, ts))
    assert not verifier.is_valid(body, str(ts), sign("other-secret", body, ts))
    assert not SignatureVerifier(SECRET, clock=FixedClock(ts + 600)).is_valid(body, str(ts), sign(SECRET, body, ts))

    event = event_body({"type": "app_mention", "user": USER, "text": "hi", "channel": CHANNEL, "ts": "1.2"})
    headers = signed_headers(SECRET, event, ts, retry_num=1, retry_reason="http_timeout")
    assert headers["Content-Type"] == JSON
    assert (headers["X-Slack-Retry-Num"], headers["X-Slack-Retry-Reason"]) == ("1", "http_timeout")
    assert verifier.is_valid_request(event, headers)
    assert "X-Slack-Retry-Num" not in signed_headers(SECRET, body, ts, FORM)
    assert verifier.is_valid_request(body, signed_headers(SECRET, body, ts, FORM))


def test_payload_shapes() -> None:
    submission = view_submission_payload(USER, MODAL, {"sales": {"amount": "120"}, "channel": {"pick": "rakuten"}})
    view = submission["view"]
    assert submission["type"] == "view_submission" and submission["user"]["id"] == USER
    assert (view["id"], view["type"], view["callback_id"], view["private_metadata"]) == (
        "V1",
        "modal",
        "diagnosis",
        "step=1",
    )
    assert view["state"]["values"] == {
        "sales": {"amount": {"type": "plain_text_input", "value": "120"}},
        "channel": {"pick": {"type": "static_select", "selected_option": MODAL["blocks"][1]["element"]["options"][1]}},
    }

    message = {"channel": CHANNEL, "ts": "1767225600.000100", "text": "q", "blocks": [BUTTONS]}
    clicked = block_actions_payload(USER, "no", "n", message=message)
    assert clicked["container"] == {
        "type": "message",
        "message_ts": "1767225600.000100",
        "channel_id": CHANNEL,
        "is_ephemeral": False,
    }
    assert clicked["actions"][0] | {"action_ts": ""} == {
        "action_id": "no",
        "block_id": "choices",
        "type": "button",
        "text": {"type": "plain_text", "text": "No"},
        "value": "n",
        "action_ts": "",
    }
    in_view = block_actions_payload(USER, "pick", "site", view={**MODAL, "id": "V9"})
    assert in_view["container"] == {"type": "view", "view_id": "V9"}
    assert in_view["actions"][0]["selected_option"]["value"] == "site"
    with pytest.raises(ValueError):
        block_actions_payload(USER, "yes", "y")


def test_signed_requests_are_accepted_by_bolt(fake: FakeSlackApi) -> None:
    app = App(
        client=WebClient(token=TOKEN, base_url=fake.base_url),
        signing_secret=SECRET,
        process_before_response=True,
    )
    seen: dict[str, Any] = {}

    @app.command("/crm")
    def on_command(ack: Any, command: dict[str, Any]) -> None:
        seen["command"] = command
        ack()

    @app.action("yes")
    def on_action(ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        seen["action"] = (body["channel"]["id"], action["value"])
        ack()

    @app.view("diagnosis")
    def on_view(ack: Any, view: dict[str, Any]) -> None:
        seen["view"] = view["state"]["values"]["sales"]["amount"]["value"]
        ack()

    @app.event("app_mention")
    def on_mention(event: dict[str, Any]) -> None:
        seen["event"] = event["text"]

    def dispatch(body: bytes, **kw: Any) -> int:
        headers = signed_headers(SECRET, body, int(time.time()), **kw)
        return app.dispatch(BoltRequest(body=body.decode(), headers=headers)).status

    assert dispatch(slash_command_body("/crm", "start", USER, CHANNEL)) == 200
    assert (seen["command"]["text"], seen["command"]["user_id"]) == ("start", USER)
    ts = WebClient(token=TOKEN, base_url=fake.base_url).chat_postMessage(channel=CHANNEL, text="q", blocks=[BUTTONS])
    message = fake.messages(CHANNEL)[0]
    assert message["ts"] == ts["ts"]
    assert dispatch(interaction_body(block_actions_payload(USER, "yes", "y", message=message))) == 200
    assert seen["action"] == (CHANNEL, "y")
    body = interaction_body(view_submission_payload(USER, MODAL, {"sales": {"amount": "99"}}))
    assert dispatch(body) == 200
    assert seen["view"] == "99"
    mention = {"type": "app_mention", "user": USER, "text": "<@UBOT> hi", "channel": CHANNEL, "ts": "1767225600.1"}
    assert dispatch(event_body(mention), retry_num=1, retry_reason="http_timeout") == 200
    assert seen["event"] == "<@UBOT> hi"

    tampered = slash_command_body("/crm", "x", USER, CHANNEL)
    headers = signed_headers("wrong-secret", tampered, int(time.time()))
    assert app.dispatch(BoltRequest(body=tampered.decode(), headers=headers)).status == 401
    assert [c.method for c in fake.calls()][:1] == ["auth.test"]
    fake.assert_contract_ok()
