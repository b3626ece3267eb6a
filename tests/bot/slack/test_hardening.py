"""Hardening of the Slack endpoint and the KPI modals, end to end (signed requests, real Redis, fake Slack):
malformed signing headers, replayed modal submissions, teams of another workspace, and a report that
is stored (with its channel post) before the modal closes."""

from __future__ import annotations

import json
import logging
import socket
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import redis

from bot.config import Config
from bot.redis_conn import connect
from bot.slack import blocks as slack_blocks
from bot.slack.texts import t
from conversations import jobs, keys
from conversations.keys import TeamRef, ViewRef
from conversations.teams import TeamStore
from scoring.periods import Quarter
from tests.bot.slack.conftest import (
    ALICE,
    BASE,
    BASE_STORED,
    BOB,
    CH,
    P_Q1_2026,
    Q1_2026,
    SECRET,
    TEAM_NAME,
    WS,
    SlackEnv,
    context_of,
    form_values,
    txt,
)
from tests.fakes.slack_signing import (
    block_actions_payload,
    event_body,
    interaction_body,
    sign,
    slash_command_body,
    view_submission_payload,
)

REF = TeamRef(WS, CH)


def api_calls(env: SlackEnv) -> list[str]:
    return [c.method for c in env.fake.calls() if c.method != "auth.test"]


# ---- 1. signing headers that cannot be Slack's: 400/401, never a 500, nothing changes ------------------

BODIES = {
    "command": lambda: slash_command_body("/kpi", "setup 本店", ALICE, CH),
    "event": lambda: event_body({"type": "message", "channel": "D0ALICE", "user": ALICE, "text": "診断",
                                 "ts": "1767225600.000300", "event_ts": "1767225600.000300", "channel_type": "im"}),
}
BAD_SIGNATURES = {
    "non-ascii": "ü",
    "non-latin-1": "v0=€",
    "empty": "",
    "10kB": "v0=" + "a" * 10_000,
    "upper-case-hex": "v0=" + "A" * 64,
    "other-version": "v1=" + "0" * 64,
    "no-prefix": "0" * 64,
}
FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
BAD_TIMESTAMPS: dict[str, Callable[[int], str]] = {  # from the current time
    "letters": lambda now: "abc",
    "non-ascii": lambda now: "ü",
    "empty": lambda now: "",
    "too-large-for-a-float": lambda now: "9" * 400,
    "over-int-digit-limit": lambda now: "9" * 5000,
    "10kB": lambda now: "1" * 10_000,
    "negative": lambda now: "-1",
    "leading-space": lambda now: f" {now}",
    "full-width-digits": lambda now: str(now).translate(FULL_WIDTH),  # int() would read these
    "decimal": lambda now: f"{now}.5",
    "exponent": lambda now: "1.7e9",
}


def post_raw(env: SlackEnv, body: bytes, timestamp: str, signature: str | None) -> int:
    headers = {"Content-Type": "application/json" if body.startswith(b"{") else "application/x-www-form-urlencoded",
               "X-Slack-Request-Timestamp": timestamp}
    if signature is not None:
        headers["X-Slack-Signature"] = signature
    res = env.http.post("/slack/events", data=body, headers=headers)
    env.settle()
    return res.status_code


def assert_nothing_happened(env: SlackEnv) -> None:
    assert env.r.keys("*") == []  # not even an event's retry mark
    assert api_calls(env) == []


@pytest.mark.parametrize("kind", sorted(BODIES))
@pytest.mark.parametrize("signature", BAD_SIGNATURES.values(), ids=BAD_SIGNATURES.keys())
def test_a_malformed_signature_is_refused(slack_env: SlackEnv, kind: str, signature: str) -> None:
    status = post_raw(slack_env, BODIES[kind](), str(int(time.time())), signature)
    assert status in (400, 401)
    assert_nothing_happened(slack_env)


@pytest.mark.parametrize("kind", sorted(BODIES))
@pytest.mark.parametrize("timestamp", BAD_TIMESTAMPS.values(), ids=BAD_TIMESTAMPS.keys())
def test_a_malformed_timestamp_is_refused_even_when_signed_with_it(slack_env: SlackEnv, kind: str,
                                                                   timestamp: Callable[[int], str]) -> None:
    ts = timestamp(int(time.time()))
    body = BODIES[kind]()
    status = post_raw(slack_env, body, ts, sign(SECRET, body, ts))  # type: ignore[arg-type]  # HMAC over the odd text
    assert status in (400, 401)
    assert_nothing_happened(slack_env)


@pytest.mark.parametrize("missing", ["timestamp", "signature", "both"])
def test_a_missing_signing_header_is_refused(slack_env: SlackEnv, missing: str) -> None:
    body = BODIES["command"]()
    ts = str(int(time.time()))
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": ts,
               "X-Slack-Signature": sign(SECRET, body, int(ts))}
    for name in {"timestamp": ["X-Slack-Request-Timestamp"], "signature": ["X-Slack-Signature"],
                 "both": ["X-Slack-Request-Timestamp", "X-Slack-Signature"]}[missing]:
        del headers[name]
    assert slack_env.http.post("/slack/events", data=body, headers=headers).status_code == 401
    slack_env.settle()
    assert_nothing_happened(slack_env)


def test_the_control_well_formed_headers_are_served(slack_env: SlackEnv) -> None:
    body = BODIES["command"]()
    ts = str(int(time.time()))
    assert post_raw(slack_env, body, ts, sign(SECRET, body, int(ts))) == 200
    assert slack_env.r.keys("*") != []  # the team was registered


def test_a_refused_request_body_is_not_logged(slack_env: SlackEnv, caplog: pytest.LogCaptureFixture) -> None:
    """Bolt logs a refused request's body at INFO; our logs never carry request bodies."""
    caplog.set_level(logging.DEBUG)
    body = slash_command_body("/kpi", "setup zzsecretteamname", ALICE, CH)
    ts = int(time.time())
    assert post_raw(slack_env, body, str(ts), sign("not-the-secret", body, ts)) == 401
    assert caplog.records  # the refusal itself is logged ...
    assert "zzsecretteamname" not in caplog.text  # ... without the body
    assert_nothing_happened(slack_env)


# ---- 2. a replayed view_submission is applied once ------------------------------------------------------


@pytest.fixture
def team_env(slack_env: SlackEnv) -> SlackEnv:
    slack_env.setup_team()
    return slack_env


def kpi_posts(env: SlackEnv) -> list[dict]:
    """The result posts committed for the team, oldest first."""
    return env.team_posts(CH)


def signed_twice(env: SlackEnv, body: bytes) -> tuple[bytes, bytes]:
    """The exact same signed request delivered twice (same bytes, same timestamp and signature)."""
    ts = int(time.time())
    first, second = env.post(body, timestamp=ts), env.post(body, timestamp=ts)
    env.settle()
    assert (first.status_code, second.status_code) == (200, 200)
    return first.get_data(), second.get_data()


def report_body(env: SlackEnv, view: dict, figures: dict, user: str = ALICE) -> bytes:
    return interaction_body(view_submission_payload(user, view, form_values(env.catalog, figures)))


def test_a_replayed_report_submission_is_applied_once(team_env: SlackEnv) -> None:
    view = team_env.open_report()
    first, second = signed_twice(team_env, report_body(team_env, view, BASE))
    assert (first, second) == (b"", b"")  # both close the modal
    assert dict(team_env.teams.report(REF, Q1_2026).values) == BASE_STORED
    assert len(team_env.teams.audit(REF)) == 1
    assert len(kpi_posts(team_env)) == 1
    mark = keys.team_view_submitted(REF, ViewRef(view["id"], view["hash"]))
    assert 0 < team_env.r.ttl(mark) <= 86400


def test_a_replay_after_a_newer_report_does_not_bring_the_old_figures_back(team_env: SlackEnv) -> None:
    old_view = team_env.open_report()
    old = report_body(team_env, old_view, BASE)
    ts = int(time.time())
    assert team_env.post(old, timestamp=ts).status_code == 200
    team_env.settle()
    newer = {**BASE, "complete_records": "96"}
    team_env.clock.advance(60)
    team_env.report(newer, user=BOB)  # a new modal: applied
    assert team_env.post(old, timestamp=ts).status_code == 200  # an attacker replays the first one
    team_env.settle()
    report = team_env.teams.report(REF, Q1_2026)
    assert (dict(report.values), report.by) == ({k: float(v) for k, v in newer.items()}, BOB)
    assert [a["by"] for a in team_env.teams.audit(REF)] == [BOB, ALICE]
    assert len(kpi_posts(team_env)) == 2


def test_the_same_figures_through_a_new_modal_are_applied_again(team_env: SlackEnv) -> None:
    team_env.report(BASE)
    team_env.clock.advance(60)
    team_env.report(BASE)
    assert len(team_env.teams.audit(REF)) == 2
    first, second = kpi_posts(team_env)
    assert txt("submitted_by", user=ALICE) in str(first["blocks"])
    assert txt("replaced_by", user=ALICE, period=P_Q1_2026) in str(second["blocks"])


def test_a_corrected_submission_of_the_same_modal_is_applied(team_env: SlackEnv) -> None:
    """Refused input leaves the modal open with the same view ID and hash: the corrected submission
    of that modal is its first applied one."""
    view = team_env.open_report()
    res = team_env.submit(view, form_values(team_env.catalog, {**BASE, "complete_records": "abc"}))
    assert res.get_json()["response_action"] == "errors"
    res = team_env.submit(view, form_values(team_env.catalog, BASE))
    assert res.get_data() == b""
    assert dict(team_env.teams.report(REF, Q1_2026).values) == BASE_STORED
    assert len(kpi_posts(team_env)) == 1


def test_a_replayed_targets_submission_is_applied_once(team_env: SlackEnv) -> None:
    team_env.command("targets")
    view = team_env.fake.opened_views()[-1]
    body = interaction_body(view_submission_payload(
        ALICE, view, form_values(team_env.catalog, {"complete_records": "98"}, quarter=None)))
    assert signed_twice(team_env, body) == (b"", b"")
    assert team_env.teams.targets(REF) == {"complete_records": 98.0}
    assert len(team_env.teams.audit(REF)) == 1
    assert team_env.ephemerals(CH, ALICE).count(txt("targets_saved")) == 1


@pytest.mark.parametrize("field", ["id", "hash"])
@pytest.mark.parametrize("value", [None, "", "V 1", "x" * 65, "V:{t}"], ids=["absent", "empty", "space", "long", "tag"])
def test_a_submission_without_a_usable_view_id_or_hash_is_refused(team_env: SlackEnv, field: str,
                                                                     value: str | None) -> None:
    view = team_env.open_report()
    payload = view_submission_payload(ALICE, view, form_values(team_env.catalog, BASE))
    if value is None:
        del payload["view"][field]
    else:
        payload["view"][field] = value
    res = team_env.post(interaction_body(payload))
    team_env.settle()
    assert res.status_code == 200
    assert res.get_json() == {"response_action": "errors", "errors": {"quarter": txt("not_a_team")}}
    assert team_env.teams.quarters(REF) == [] and team_env.teams.audit(REF) == []
    assert kpi_posts(team_env) == []


# ---- 3. a payload acts only on teams of the workspace it comes from ------------------------------------

OTHER_WS = "T2"


def from_workspace(payload: dict, workspace: str | None, user_team: str | None = None) -> dict:
    """``payload`` as sent from ``workspace`` (None: Slack leaves ``team`` out, as for org-wide apps)."""
    payload["team"] = None if workspace is None else {"id": workspace, "domain": "other"}
    payload["user"]["team_id"] = user_team or workspace
    return payload


@pytest.mark.parametrize(("workspace", "user_team"), [(OTHER_WS, None), (None, OTHER_WS), (OTHER_WS, WS)],
                         ids=["team", "user-team-only", "team-wins"])
def test_a_report_from_another_workspace_is_refused(team_env: SlackEnv, workspace: str | None,
                                                    user_team: str | None) -> None:
    view = team_env.open_report()  # names T1's team in its private_metadata
    payload = from_workspace(view_submission_payload(ALICE, view, form_values(team_env.catalog, BASE)),
                             workspace, user_team)
    res = team_env.post(interaction_body(payload))
    team_env.settle()
    assert res.get_json() == {"response_action": "errors", "errors": {"quarter": txt("not_a_team")}}
    assert team_env.teams.quarters(REF) == [] and team_env.teams.audit(REF) == []
    assert kpi_posts(team_env) == []
    assert not any(k.startswith(f"crmbot:{REF.tag}:view:") for k in map(bytes.decode, team_env.r.keys("*")))


def test_a_report_from_the_teams_own_workspace_without_a_team_field_is_applied(team_env: SlackEnv) -> None:
    """The control of the test above: the user's team_id alone is enough when Slack leaves team out."""
    view = team_env.open_report()
    payload = from_workspace(view_submission_payload(ALICE, view, form_values(team_env.catalog, BASE)), None, WS)
    res = team_env.post(interaction_body(payload))
    team_env.settle()
    assert res.get_data() == b""
    assert dict(team_env.teams.report(REF, Q1_2026).values) == BASE_STORED


def test_a_report_naming_a_team_of_another_workspace_is_refused_even_if_registered(slack_env: SlackEnv) -> None:
    """T2 has a team in a channel of the same ID; a T2 user's modal forged to name T1's team is refused."""
    slack_env.setup_team()  # T1:CH
    slack_env.ok(slash_command_body("/kpi", "setup よその店", BOB, CH, team_id=OTHER_WS))
    other = TeamRef(OTHER_WS, CH)
    assert slack_env.teams.get(other) is not None
    view = slack_env.open_report()
    payload = from_workspace(view_submission_payload(BOB, view, form_values(slack_env.catalog, BASE)), OTHER_WS)
    assert json.loads(payload["view"]["private_metadata"]) == {"team": REF.id}
    res = slack_env.post(interaction_body(payload))
    slack_env.settle()
    assert res.get_json()["response_action"] == "errors"
    assert slack_env.teams.quarters(REF) == [] and slack_env.teams.quarters(other) == []


def test_targets_from_another_workspace_are_refused(team_env: SlackEnv) -> None:
    team_env.command("targets")
    view = team_env.fake.opened_views()[-1]
    payload = from_workspace(view_submission_payload(
        ALICE, view, form_values(team_env.catalog, {"complete_records": "98"}, quarter=None)), OTHER_WS)
    res = team_env.post(interaction_body(payload))
    team_env.settle()
    first_input = f"ind:{team_env.catalog.indicators[0].key}"
    assert res.get_json() == {"response_action": "errors", "errors": {first_input: txt("not_a_team")}}
    assert team_env.teams.targets(REF) == {} and team_env.teams.audit(REF) == []
    assert txt("targets_saved") not in team_env.ephemerals(CH)


@pytest.mark.parametrize(("workspace", "opens"), [(WS, 1), (OTHER_WS, 0)], ids=["own", "other"])
def test_the_report_button_opens_only_a_team_of_its_own_workspace(team_env: SlackEnv, workspace: str,
                                                                  opens: int) -> None:
    team = team_env.teams.get(REF)
    button = slack_blocks.report_button("ja", team, Quarter(2025, 4))
    message = {"channel": CH, "ts": "1767225600.000900", "text": "reminder", "blocks": [button]}
    value = button["elements"][0]["value"]
    assert json.loads(value)["team"] == REF.id
    before = sorted(team_env.r.keys("*"))
    res = team_env.post(interaction_body(block_actions_payload(BOB, slack_blocks.OPEN_REPORT_ACTION, value,
                                                               message=message,
                                                               team_id=workspace)))
    team_env.settle()
    assert (res.status_code, res.get_data()) == (200, b"")  # ignored: a plain ack
    assert len(team_env.fake.opened_views()) == opens
    assert sorted(team_env.r.keys("*")) == before


# ---- 4. a report is stored, with its post, before the modal closes --------------------------------------

TAG = REF.tag[1:-1]  # "t:T1:C0CRM1": the team's mailbox owner


def test_the_report_and_its_post_are_committed_before_the_modal_closes(team_env: SlackEnv) -> None:
    team_env.clock.advance(3600)
    view = team_env.open_report()
    team_env.fake.reset()
    with team_env.worker_paused():
        res = team_env.post(report_body(team_env, view, BASE))
        # The answer has come back; Bolt's listener may still be running, but the store came first:
        assert (res.status_code, res.get_data()) == (200, b"")
        assert dict(TeamStore(team_env.r).report(REF, Q1_2026).values) == BASE_STORED
        [job] = team_env.team_jobs(CH)
        team_env.settle()
        now = team_env.clock()
        assert (job.transport, job.to, job.tag, job.received, job.attempts) == ("slack", f"{WS}.{CH}", TAG, now, 0)
        # the hints the worker wakes on: its recovery time (the lease) and the ready list
        shard = jobs.shard_of(TAG)
        assert team_env.r.zscore(jobs.due(shard), job.ref) == now + 30
        # exactly one hint: the commit's script goes by EVAL, so no NOSCRIPT re-send ever doubles it
        assert team_env.r.lrange(jobs.ready(shard), 0, -1) == [job.ref.encode()]
        # the web tier sends nothing itself
        assert team_env.pending() == 1 and team_env.fake.calls("chat.postMessage") == []
    team_env.settle()  # the worker delivers it
    [post] = team_env.team_posts(CH)
    assert post["text"] == f"CRM KPI {P_Q1_2026}｜{TEAM_NAME}: {txt('overall')} 7.1/10"
    assert context_of(post) == [txt("submitted_by", user=ALICE), txt("coverage", reported=8, total=16),
                                txt("no_previous")]
    assert team_env.pending() == 0 and len(team_env.fake.calls("chat.postMessage")) == 1


def test_the_post_lease_is_a_parameter(team_env: SlackEnv) -> None:
    team_env.rebuild_slack(post_lease=120)
    with team_env.worker_paused():
        team_env.report(BASE)
        [job] = team_env.team_jobs(CH)
    assert team_env.r.zscore(jobs.due(jobs.shard_of(TAG)), job.ref) == team_env.clock() + 120


def test_a_replay_commits_no_second_post(team_env: SlackEnv) -> None:
    view = team_env.open_report()
    with team_env.worker_paused():
        signed_twice(team_env, report_body(team_env, view, BASE))
        assert len(team_env.team_jobs(CH)) == 1
    team_env.settle()
    assert len(team_env.team_posts(CH)) == 1


def snapshot(env: SlackEnv) -> dict[bytes, bytes]:
    return {k: env.r.dump(k) for k in env.r.keys("*")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def read_only_client(r: redis.Redis, redis_url: str) -> Iterator[redis.Redis]:
    """A client of the same (real) server that may read but not write: every commit is refused (NOPERM)."""
    name = f"reader-{uuid.uuid4().hex[:8]}"
    r.execute_command("ACL", "SETUSER", name, "on", ">reader-pw", "~*", "+@read", "+@connection")
    client = redis.Redis.from_url(redis_url, username=name, password="reader-pw")
    try:
        yield client
    finally:
        client.close()
        r.execute_command("ACL", "DELUSER", name)


def test_with_redis_down_the_report_modal_stays_open_asking_to_try_again(team_env: SlackEnv) -> None:
    view = team_env.open_report()
    team_env.fake.reset()
    before = snapshot(team_env)
    down = connect(Config(redis_url=f"redis://127.0.0.1:{free_port()}"))  # the product's client; nothing listens
    team_env.rebuild_slack(teams=TeamStore(down))
    try:
        res = team_env.post(report_body(team_env, view, BASE))
        team_env.settle()
    finally:
        down.close()
    assert res.status_code == 200
    assert res.get_json() == {"response_action": "errors", "errors": {"quarter": txt("err_store")}}
    assert snapshot(team_env) == before
    assert team_env.fake.calls("chat.postMessage") == []


def test_a_refused_commit_keeps_the_modal_open_and_the_same_modal_applies_once_redis_is_back(
    team_env: SlackEnv, read_only_client: redis.Redis
) -> None:
    store = team_env.teams
    view = team_env.open_report()
    body = report_body(team_env, view, BASE)
    before = snapshot(team_env)
    team_env.rebuild_slack(teams=TeamStore(read_only_client))  # reads work, the commit is refused
    res = team_env.post(body)
    team_env.settle()
    assert res.get_json() == {"response_action": "errors", "errors": {"quarter": txt("err_store")}}
    assert snapshot(team_env) == before  # no figures, no job, no hint, no replay mark

    team_env.rebuild_slack(teams=store)
    res = team_env.post(body)  # the user presses submit again on the modal that stayed open
    team_env.settle()
    assert res.get_data() == b""
    assert dict(store.report(REF, Q1_2026).values) == BASE_STORED
    assert len(team_env.team_posts(CH)) == 1


def test_a_refused_targets_commit_keeps_the_modal_open(team_env: SlackEnv, read_only_client: redis.Redis) -> None:
    team_env.command("targets")
    view = team_env.fake.opened_views()[-1]
    before = snapshot(team_env)
    team_env.rebuild_slack(teams=TeamStore(read_only_client))
    values = form_values(team_env.catalog, {"complete_records": "98"}, quarter=None)
    res = team_env.post(interaction_body(view_submission_payload(ALICE, view, values)))
    team_env.settle()
    first_input = f"ind:{team_env.catalog.indicators[0].key}"
    assert res.get_json() == {"response_action": "errors", "errors": {first_input: txt("err_store")}}
    assert snapshot(team_env) == before
    assert txt("targets_saved") not in team_env.ephemerals(CH)


@pytest.mark.parametrize("locale", ["ja", "en"])
def test_the_store_error_is_worded_in_both_languages(locale: str) -> None:
    text = t(locale, "err_store")
    assert text and len(text) <= 60
    assert text.endswith("。") if locale == "ja" else text.endswith(".")


@pytest.mark.parametrize("urls", [[{}, {}], [{"response_url": "https://hooks.slack.com/x"}] * 3, "x", [1]])
def test_a_payload_with_several_response_urls_is_refused_not_a_500(slack_env: SlackEnv, urls: object) -> None:
    """Found by the fuzzer: Bolt crashes building its context when a payload has several response_urls."""
    res = slack_env.post(interaction_body({"type": "block_actions", "response_urls": urls}))
    assert res.status_code == 400 and res.get_data() == b"malformed body"
