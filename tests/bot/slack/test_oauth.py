"""Many workspaces: Slack's OAuth install (Bolt's flow) and each workspace answered with its own token.

Real Redis, the fake Slack API (which answers each call as the workspace of its bearer token and
records it in ``Recorded.team``), signed requests, the worker delivering. Installs are driven as a
browser does: /slack/install -> Slack's consent page (the fake's ``approve``) -> /slack/oauth_redirect.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import redis
import yaml
from slack_bolt.error import BoltError
from slack_sdk.oauth.installation_store import Installation

from bot.app import build_reminders, build_services, build_worker, create_app
from bot.config import Config
from bot.slack.oauth import BOT_SCOPES, NOT_INSTALLED, RedisInstallationStore, redact
from bot.slack.texts import t
from bot.worker import WorkerThread
from conversations import jobs, keys
from conversations.errors import ConfigError
from conversations.installations import BotInstall, Installations
from conversations.jobs import Job
from conversations.keys import TeamRef
from tests.bot.slack.conftest import ALICE, BOB, SECRET, START, ErrorLog, SlackEnv, TrackingExecutor
from tests.conftest import FakeClock
from tests.fakes.slack_api import AUTHORIZE_URL, CLIENT_ID, CLIENT_SECRET, FakeSlackApi, bot_user_of, dm_channel_id
from tests.fakes.slack_signing import event_body, slash_command_body

W1, W2, W3 = "T0AAA1", "T0BBB2", "T0CCC3"  # two client companies' workspaces, and one that never installed
CH1, CH2 = "C0ONE1", "C0TWO2"
HTTPS = "https://crmbot.example.com"  # Bolt's state cookie is Secure: the browser talks https
MANIFEST = Path(__file__).resolve().parents[3] / "slack-manifest.yml"
KICKOFF = START + 3600  # 2026-04-01 (a Wednesday) 10:00 in Tokyo: the first business day of 2026-Q2


def oauth_config(redis_url: str, fake: FakeSlackApi, **changes: Any) -> Config:
    return Config(redis_url=redis_url, slack_signing_secret=SECRET, slack_client_id=CLIENT_ID,
                  slack_client_secret=CLIENT_SECRET, slack_api_url=fake.base_url).with_(**changes)


class OAuthEnv(SlackEnv):
    """The Slack test world (conftest.SlackEnv), with many workspaces installed by OAuth."""

    def start_install(self) -> tuple[str, dict[str, str]]:
        """GET /slack/install: (Slack's consent URL it redirects to, its query)."""
        res = self.http.get("/slack/install", base_url=HTTPS)
        assert res.status_code == 302, (res.status_code, res.get_data(as_text=True)[:200])
        location = res.headers["Location"]
        query = {k: v[0] for k, v in parse_qs(urlsplit(location).query, keep_blank_values=True).items()}
        assert f"slack-app-oauth-state={query['state']}" in res.headers["Set-Cookie"]  # the browser's check
        return location, query

    def redirect(self, query: dict[str, str]) -> Any:
        """Slack sends the browser back to /slack/oauth_redirect with the code and the state."""
        return self.http.get("/slack/oauth_redirect?" + urlencode(query), base_url=HTTPS)

    def install(self, team: str, *, rotation: bool = False, expires_in: int = 43200, user: str = "U0ADMIN") -> str:
        """A full install in ``team``; returns the bot token Slack issued for it."""
        location, _ = self.start_install()
        res = self.redirect(self.fake.approve(location, team, user=user, rotation=rotation, expires_in=expires_in))
        assert res.status_code == 200, (res.status_code, res.get_data(as_text=True)[:300])
        tokens = self.fake.tokens_of(team)
        assert tokens and self.installations.bot(team).token == tokens[-1]  # type: ignore[union-attr]
        return tokens[-1]

    @property
    def installations(self) -> Installations:
        return Installations(self.r)

    # ---- what users do, in a given workspace ------------------------------------------------------
    def kpi(self, team: str, channel: str, text: str = "", user: str = ALICE) -> Any:
        return self.ok(slash_command_body("/kpi", text, user, channel, team_id=team))

    def calls_of(self, method: str) -> list[tuple[str | None, str]]:
        """(the workspace that answered, the bearer token) of each call of ``method``, in order."""
        return [(c.team, c.headers.get("authorization", "").removeprefix("Bearer ")) for c in self.fake.calls(method)]

    def posts_to(self, channel: str) -> list[tuple[str | None, str]]:
        return [(c.team, c.headers["authorization"].removeprefix("Bearer "))
                for c in self.fake.calls("chat.postMessage") if c.args.get("channel") == channel]

    def parked(self) -> list[Job]:
        found = []
        for shard in range(jobs.QUEUE_SHARDS):
            for ref in self.r.zrange(jobs.parked(shard), 0, -1):
                tag, job_id = jobs.parse_ref(ref)
                found.append(Job.from_json(self.r.hget(jobs.mailbox(tag), job_id)))  # type: ignore[arg-type]
        return found


@pytest.fixture
def oauth_env(r: redis.Redis, redis_url: str, fake_slack: FakeSlackApi, clock: FakeClock) -> Iterator[OAuthEnv]:
    config = oauth_config(redis_url, fake_slack)
    clock.t = START
    svc = build_services(config, clock=clock)
    worker = WorkerThread(lambda: build_worker(config, svc.script, clock=clock))
    env = OAuthEnv(svc, create_app(services=svc).test_client(), fake_slack, clock, r, worker, TrackingExecutor(),
                   ErrorLog())
    env.instrument()
    bolt_log = logging.getLogger("crmbot.slack.bolt")
    bolt_log.addHandler(env.errors)
    try:
        yield env
        env.settle()
        fake_slack.assert_contract_ok()
        assert not env.errors.records, [rec.getMessage() for rec in env.errors.records]
    finally:
        bolt_log.removeHandler(env.errors)
        env.executor.shutdown(wait=True)
        worker.close()


# ---- the install --------------------------------------------------------------------------------------


def test_install_asks_for_the_manifests_scopes_and_stores_the_workspace(oauth_env: OAuthEnv) -> None:
    location, query = oauth_env.start_install()
    assert location.startswith(AUTHORIZE_URL + "?")
    assert query["client_id"] == CLIENT_ID
    assert query["scope"].split(",") == list(BOT_SCOPES)
    assert oauth_env.r.exists(keys.oauth_state(query["state"]))  # issued, one-time, in Redis
    res = oauth_env.redirect(oauth_env.fake.approve(location, W1, user="U0ADMIN", name="本店"))
    assert res.status_code == 200 and "Thank you" in res.get_data(as_text=True)
    assert not oauth_env.r.exists(keys.oauth_state(query["state"]))  # consumed

    bot = oauth_env.installations.bot(W1)
    assert bot is not None
    assert (bot.token, bot.bot_user_id, bot.bot_id, bot.team_name) == \
        (oauth_env.fake.tokens_of(W1)[0], bot_user_of(W1), "BBOT" + W1, "本店")
    assert bot.scopes == BOT_SCOPES and bot.refresh_token is None and bot.expires_at is None
    assert oauth_env.installations.installer(W1)["user_id"] == "U0ADMIN"  # type: ignore[index]
    # the code was exchanged with the app's credentials; auth.test gave the bot's ID (once, at install)
    (exchange,) = oauth_env.fake.calls("oauth.v2.access")
    assert exchange.args["code"] and exchange.headers["authorization"].startswith("Basic ")
    assert oauth_env.calls_of("auth.test") == [(W1, bot.token)]
    # one workspace's keys, in its hash slot; the state is gone from the outstanding ones, and the
    # client's address (as a hash) keeps the states it was issued this minute
    assert sorted(k.decode() for k in oauth_env.r.keys("*")) == [keys.oauth_client("127.0.0.1"),
                                                                 keys.installation(W1)]


def test_a_state_never_issued_reused_expired_or_from_another_browser_is_refused(oauth_env: OAuthEnv) -> None:
    env = oauth_env
    # never issued (the browser holds a cookie for it, as a forged link would arrange)
    forged = "f" * 43
    location, _ = env.start_install()
    approved = env.fake.approve(location, W1)
    env.http.set_cookie("slack-app-oauth-state", forged, domain="crmbot.example.com")
    res = env.redirect({"code": approved["code"], "state": forged})
    assert res.status_code == 401 and "invalid_state" in res.get_data(as_text=True)

    # used once, refused the second time (the same redirect replayed)
    location, query = env.start_install()
    approved = env.fake.approve(location, W1)
    assert env.redirect(approved).status_code == 200
    env.http.set_cookie("slack-app-oauth-state", query["state"], domain="crmbot.example.com")
    res = env.redirect(approved)
    assert res.status_code == 401 and "invalid_state" in res.get_data(as_text=True)

    # expired: ten minutes and a second after /slack/install (the injected clock)
    location, query = env.start_install()
    env.clock.t += 601
    res = env.redirect(env.fake.approve(location, W2))
    assert res.status_code == 401 and "invalid_state" in res.get_data(as_text=True)

    # another browser (no state cookie): refused before the state is even looked at
    location, query = env.start_install()
    env.http.delete_cookie("slack-app-oauth-state", domain="crmbot.example.com")
    res = env.redirect(env.fake.approve(location, W2))
    assert res.status_code == 400 and "invalid_browser" in res.get_data(as_text=True)
    assert env.r.exists(keys.oauth_state(query["state"]))  # not consumed: it expires on its own

    # only the one good redirect exchanged its code and installed
    assert len(env.fake.calls("oauth.v2.access")) == 1
    assert env.installations.installed(W1) and not env.installations.installed(W2)


def _install_page(env: OAuthEnv, address: str = "127.0.0.1", browser: Any = None, **headers: str) -> Any:
    return (browser or env.http).get("/slack/install", base_url=HTTPS, environ_base={"REMOTE_ADDR": address},
                                     headers=headers)


def _state_keys(env: OAuthEnv) -> list[bytes]:
    return list(env.r.scan_iter(match="crmbot:{oauth}:state:*"))


def test_install_states_are_limited_per_client_address(oauth_env: OAuthEnv) -> None:
    """At most 10 states a minute per client address (a visit each): the 11th visit is answered 429 with
    a short page and Retry-After, and stores nothing; other addresses are not affected; a minute later
    (the injected clock) the address gets states again."""
    env = oauth_env
    for _ in range(10):
        assert _install_page(env).status_code == 302
    assert len(_state_keys(env)) == 10
    res = _install_page(env, X_Forwarded_For="198.51.100.1")  # not believed without CRMBOT_TRUST_PROXY
    page = res.get_data(as_text=True)
    assert res.status_code == 429 and res.headers["Retry-After"] == "60"
    assert "1分ほどしてから、もう一度お試しください" in page and "Please wait a minute and try again" in page
    assert page.index("1分ほど") < page.index("Please wait")  # Japanese first
    assert res.headers["Content-Type"].startswith("text/html") and "Set-Cookie" not in res.headers
    assert len(_state_keys(env)) == 10 and env.r.zcard(keys.OAUTH_STATES) == 10  # nothing stored
    assert _install_page(env, "203.0.113.7").status_code == 302  # another client
    env.clock.t += 30
    res = _install_page(env)
    assert res.status_code == 429 and res.headers["Retry-After"] == "30"
    env.clock.t += 30
    location = _install_page(env).headers["Location"]  # a minute after the first ten: issued again
    # and that state installs as any other
    res = env.redirect(env.fake.approve(location, W1))
    assert res.status_code == 200 and env.installations.installed(W1)
    assert env.r.zcard(keys.OAUTH_STATES) == 11  # 10 + 1 + 1 issued, one consumed


def test_install_states_outstanding_are_capped_and_a_new_one_is_refused(oauth_env: OAuthEnv) -> None:
    """A cap on the states outstanding in all (10,000 in production; 3 here): past it a new visit gets
    503 with a short page and Retry-After until the oldest runs out; the states already issued still
    work (an install in progress is never broken); a consumed or expired state frees its place."""
    env = oauth_env
    store = env.svc.slack.app.oauth_flow.settings.state_store
    assert (store.per_client, store.most) == (10, 10_000)  # the production limits
    store.most = 3
    browser = env.http.application.test_client()  # the first visitor's browser (its own state cookie)
    first = _install_page(env, "192.0.2.1", browser).headers["Location"]
    env.clock.t += 100
    for address in ("192.0.2.2", "192.0.2.3"):
        assert _install_page(env, address).status_code == 302
    res = _install_page(env, "192.0.2.4")
    page = res.get_data(as_text=True)
    assert res.status_code == 503 and res.headers["Retry-After"] == "500"  # the first runs out in 500 s
    assert "混み合っています" in page and "Too many installs are in progress" in page
    assert len(_state_keys(env)) == 3 and env.r.zcard(keys.OAUTH_STATES) == 3
    assert not env.r.exists(keys.oauth_client("192.0.2.4"))  # a refused visit is not counted against it
    # the first install, under way, completes; its place is free again
    approved = env.fake.approve(first, W1)
    assert browser.get("/slack/oauth_redirect?" + urlencode(approved), base_url=HTTPS).status_code == 200
    assert env.installations.installed(W1)
    assert _install_page(env, "192.0.2.4").status_code == 302
    assert _install_page(env, "192.0.2.5").status_code == 503
    env.clock.t += 600  # the three issued at t+100 are 600 s old: still good
    assert _install_page(env, "192.0.2.5").status_code == 503
    env.clock.t += 1  # now they have run out
    assert _install_page(env, "192.0.2.5").status_code == 302
    assert env.r.zcard(keys.OAUTH_STATES) == 1  # the new one; the expired ones left the count


def test_a_code_slack_refuses_installs_nothing_and_is_not_logged(oauth_env: OAuthEnv,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    _, query = oauth_env.start_install()
    res = oauth_env.redirect({"code": "T0AAA1.not-a-code-slack-gave", "state": query["state"]})
    assert res.status_code == 401 and "invalid_code" in res.get_data(as_text=True)
    assert not oauth_env.installations.installed(W1)
    assert "not-a-code-slack-gave" not in caplog.text and query["state"] not in caplog.text
    assert "[redacted]" in caplog.text  # Bolt's warning was kept, without the code


def test_redact_removes_codes_states_and_tokens() -> None:
    assert redact("Failed to fetch oauth.v2.access result with code: 123.456.abc - error: x") == \
        "Failed to fetch oauth.v2.access result with code: [redacted] - error: x"
    assert redact("request: {'code': ['c0de'], 'state': ['st4te']}") == \
        "request: {'code': ['[redacted]'], 'state': ['[redacted]']}"
    assert redact("token xoxb-1-abc and xoxe.xoxb-1-T1-2-ff and xoxe-1-T1-3") == \
        "token xox-[redacted] and xox-[redacted] and xox-[redacted]"
    assert redact("the token rotation of T1") == "the token rotation of T1"


# ---- each workspace answered with its own token -------------------------------------------------------


def test_two_workspaces_each_answered_with_its_own_token(oauth_env: OAuthEnv) -> None:
    env = oauth_env
    t1, t2 = env.install(W1), env.install(W2)
    assert t1 != t2

    # /kpi setup in each: the announcement and the confirmation go out from the worker with that
    # workspace's token
    env.kpi(W1, CH1, "setup 本店チーム")
    env.kpi(W2, CH2, "setup 二号店チーム", user=BOB)
    assert env.teams.get(TeamRef(W1, CH1)) is not None and env.teams.get(TeamRef(W2, CH2)) is not None
    assert env.posts_to(CH1) == [(W1, t1)] and env.posts_to(CH2) == [(W2, t2)]
    assert sorted(env.calls_of("chat.postEphemeral")) == sorted([(W1, t1), (W2, t2)])

    # /kpi opens the report modal from the web tier, with the token of the workspace it came from
    env.kpi(W2, CH2, user=BOB)
    env.kpi(W1, CH1)
    assert env.calls_of("views.open") == [(W2, t2), (W1, t1)]

    # the diagnosis in a DM: conversations.open and the questions, with W2's token
    env.ok(slash_command_body("/diagnosis", "", BOB, CH2, team_id=W2))
    assert env.calls_of("conversations.open") == [(W2, t2)]
    assert env.posts_to(dm_channel_id(BOB)) == [(W2, t2)]

    # no call was made with anything but a workspace's own token, and auth.test only at the installs
    assert all(team is not None for team, _ in env.calls_of("chat.postMessage") + env.calls_of("views.open"))
    assert env.calls_of("auth.test") == [(W1, t1), (W2, t2)]


def test_reminders_go_out_with_each_workspaces_token(oauth_env: OAuthEnv) -> None:
    env = oauth_env
    t1, t2 = env.install(W1), env.install(W2)
    for ref in (TeamRef(W1, CH1), TeamRef(W2, CH2)):
        env.teams.register(ref, f"team {ref.channel}", "Asia/Tokyo", ALICE, env.clock())
    summary = build_reminders(env.svc).run(KICKOFF)
    assert len(summary.queued) == 2, summary.render()
    env.deliver()
    assert env.posts_to(CH1) == [(W1, t1)] and env.posts_to(CH2) == [(W2, t2)]


# ---- token rotation -----------------------------------------------------------------------------------


def test_the_web_tier_refreshes_an_expiring_token_before_opening_a_modal(oauth_env: OAuthEnv) -> None:
    env = oauth_env
    first = env.install(W2, rotation=True, expires_in=3600)  # expires within the 2 hours of the refresh margin
    installed = env.installations.bot(W2)
    assert installed is not None and installed.refresh_token and installed.expires_at
    assert installed.expiring(time.time(), 7200)
    env.teams.register(TeamRef(W2, CH2), "二号店", "Asia/Tokyo", BOB, env.clock())

    env.kpi(W2, CH2, user=BOB)  # opens the report modal
    refreshes = [c for c in env.fake.calls("oauth.v2.access") if c.args.get("grant_type") == "refresh_token"]
    assert [c.args["refresh_token"] for c in refreshes] == [installed.refresh_token]
    now = env.installations.bot(W2)
    assert now is not None and now.token != first and now.token == env.fake.tokens_of(W2)[-1]
    assert now.refresh_token != installed.refresh_token
    assert now.expires_at is not None and now.expires_at - time.time() > 11 * 3600  # 12 hours from now
    assert env.calls_of("views.open") == [(W2, now.token)]
    assert not env.r.exists(keys.installation_rotating(W2))  # the lock was let go

    env.kpi(W2, CH2, user=BOB)  # the next request uses the stored token: no second refresh
    assert len([c for c in env.fake.calls("oauth.v2.access") if c.args.get("grant_type")]) == 1
    assert env.calls_of("views.open")[-1] == (W2, now.token)


def test_the_worker_refreshes_an_expiring_token_before_sending(oauth_env: OAuthEnv) -> None:
    env = oauth_env
    t1 = env.install(W1)
    first = env.install(W2, rotation=True, expires_in=600)
    for ref in (TeamRef(W1, CH1), TeamRef(W2, CH2)):
        env.teams.register(ref, f"team {ref.channel}", "Asia/Tokyo", ALICE, env.clock())
    build_reminders(env.svc).run(KICKOFF)  # the clock only queues: no request came through the web tier
    assert env.fake.calls("oauth.v2.access")[-1].args.get("grant_type") is None  # nothing refreshed yet

    env.deliver()
    (refresh,) = [c for c in env.fake.calls("oauth.v2.access") if c.args.get("grant_type") == "refresh_token"]
    assert refresh.headers["authorization"].startswith("Basic ")
    stored = env.installations.bot(W2)
    assert stored is not None and stored.token not in (first, None) and stored.token == env.fake.tokens_of(W2)[-1]
    assert env.posts_to(CH2) == [(W2, stored.token)]  # sent with the new token
    assert env.posts_to(CH1) == [(W1, t1)]  # the other workspace, untouched


def test_a_refresh_a_slow_process_made_never_replaces_a_newer_token(oauth_env: OAuthEnv) -> None:
    env = oauth_env
    env.install(W2, rotation=True, expires_in=600)
    old = env.installations.bot(W2)
    assert old is not None
    env.kpi(W2, CH2, "help", user=BOB)  # the web tier refreshes it
    newer = env.installations.bot(W2)
    assert newer is not None and newer.token != old.token
    # a process that refreshed from the same (now spent) refresh token comes back late: refused
    assert not env.installations.replace_bot(old, old.refreshed("xoxe.xoxb-late", "xoxe-late", 0))
    assert env.installations.bot(W2) == newer


def test_one_process_refreshes_at_a_time(oauth_env: OAuthEnv) -> None:
    """While another process holds the workspace's refresh, the worker does not refresh too (the
    refresh token works once): an expired token waits a second and goes out with the new one."""
    env = oauth_env
    env.install(W2, rotation=True, expires_in=3600)
    installed = env.installations.bot(W2)
    assert installed is not None
    env.installations.save(W2, dataclasses.replace(installed, expires_at=int(time.time()) - 1))  # 1 h later
    env.teams.register(TeamRef(W2, CH2), "二号店", "Asia/Tokyo", BOB, env.clock())
    build_reminders(env.svc).run(KICKOFF)
    assert env.installations.lock_rotation(W2, "another-process", 15)
    env.deliver()
    (job,) = pending_jobs(env)
    assert job.attempts == 1 and job.error == "slack: the workspace's token is being refreshed"
    assert env.fake.calls("chat.postMessage") == []  # not sent with the token it holds as expired
    assert [c for c in env.fake.calls("oauth.v2.access") if c.args.get("grant_type")] == []

    env.installations.unlock_rotation(W2, "another-process")
    env.clock.t += 2  # the retry's time
    env.deliver()
    stored = env.installations.bot(W2)
    assert stored is not None and env.posts_to(CH2) == [(W2, stored.token)]
    assert len([c for c in env.fake.calls("oauth.v2.access") if c.args.get("grant_type")]) == 1


def test_the_web_tier_answers_as_the_worker_while_another_process_refreshes_an_expired_token(
    oauth_env: OAuthEnv,
) -> None:
    """One rotation for both tiers (bot.slack.tokens.rotate): an expired token whose refresh another process
    holds, with no new token stored within a second, is "busy" in the web tier too: the person is told to
    try again in a moment, and nothing is opened with the expired token."""
    env = oauth_env
    env.install(W2, rotation=True, expires_in=3600)
    installed = env.installations.bot(W2)
    assert installed is not None
    env.installations.save(W2, dataclasses.replace(installed, expires_at=int(time.time()) - 1))
    env.teams.register(TeamRef(W2, CH2), "二号店", "Asia/Tokyo", BOB, env.clock())
    assert env.installations.lock_rotation(W2, "another-process", 15)
    res = env.kpi(W2, CH2, user=BOB)  # would open the report modal
    assert res.get_json() == {"response_type": "ephemeral", "text": t("ja", "unavailable")}
    assert env.calls_of("views.open") == []
    assert [c for c in env.fake.calls("oauth.v2.access") if c.args.get("grant_type")] == []

    env.installations.unlock_rotation(W2, "another-process")
    env.kpi(W2, CH2, user=BOB)  # refreshed now, and the modal opened with the new token
    stored = env.installations.bot(W2)
    assert stored is not None and env.calls_of("views.open") == [(W2, stored.token)] and stored.token != installed.token


def pending_jobs(env: OAuthEnv) -> list[Job]:
    return [Job.from_json(v) for k in env.r.scan_iter(match="crmbot:{*}:out") for v in env.r.hvals(k)]


# ---- uninstalling -------------------------------------------------------------------------------------


def uninstalled(team: str) -> dict[str, Any]:
    return {"type": "app_uninstalled", "event_ts": f"{int(time.time())}.000100"}


def test_an_uninstalled_workspace_is_ignored_its_jobs_parked_and_reminders_paused(oauth_env: OAuthEnv) -> None:
    env = oauth_env
    t1, t2 = env.install(W1), env.install(W2)
    env.kpi(W1, CH1, "setup 本店チーム")
    env.kpi(W2, CH2, "setup 二号店チーム", user=BOB)
    posts_before = len(env.fake.calls("chat.postMessage"))

    with env.worker_paused():  # W2's answer is still queued when the app is removed from W2
        env.ok(slash_command_body("/diagnosis", "", BOB, CH2, team_id=W2))
    env.fake.uninstall(W2)  # Slack revokes W2's tokens and sends app_uninstalled
    env.ok(event_body(uninstalled(W2), team_id=W2))
    assert not env.installations.installed(W2) and not env.r.exists(keys.installation(W2))
    assert env.installations.installed(W1)

    # the queued job is parked, saying why, not retried
    env.deliver()
    (parked,) = env.parked()
    assert parked.to == f"{W2}.{BOB}" and parked.attempts == 1
    assert "not installed in workspace " + W2 in parked.parked
    assert len(env.fake.calls("chat.postMessage")) == posts_before  # nothing sent for W2, with any token

    # W2's requests are answered here and ignored: no modal, no job, nothing stored
    keys_before = sorted(env.r.keys("*"))
    res = env.kpi(W2, CH2, user=BOB)
    assert res.get_data(as_text=True) == NOT_INSTALLED["ja"]
    env.ok(event_body({"type": "app_home_opened", "user": BOB, "channel": "D0X", "tab": "home",
                       "event_ts": "1.000100"}, team_id=W2))
    env.settle()
    assert sorted(env.r.keys("*")) == keys_before
    assert env.fake.calls("views.open") == [] and env.fake.calls("views.publish") == []

    # reminders: W1's team gets its kickoff, W2's is paused while the app is not installed there
    summary = build_reminders(env.svc).run(KICKOFF)
    assert summary.queued == [f"slack {W1}/{CH1} kickoff for 2026-Q1"]
    assert (f"slack {W2}/{CH2} kickoff for 2026-Q1", "the app is not installed in the workspace (uninstalled)") \
        in summary.skipped
    env.deliver()
    assert [team for team, _ in env.posts_to(CH1)] == [W1, W1] and env.posts_to(CH1)[-1] == (W1, t1)

    # W1 is unaffected
    env.kpi(W1, CH1)
    assert env.calls_of("views.open") == [(W1, t1)]

    # installed again within the reminder's grace: the next pass sends W2's kickoff, with the new token
    t2b = env.install(W2)
    assert t2b != t2
    env.clock.t = KICKOFF + 3600
    summary = build_reminders(env.svc).run(env.clock())
    assert summary.queued == [f"slack {W2}/{CH2} kickoff for 2026-Q1"], summary.render()
    env.deliver()
    assert env.posts_to(CH2)[-1] == (W2, t2b)


def test_revoking_the_bot_token_pauses_the_workspace_too(oauth_env: OAuthEnv) -> None:
    env = oauth_env
    env.install(W1)
    env.install(W2)
    revoked = {"type": "tokens_revoked", "tokens": {"oauth": [], "bot": [bot_user_of(W2)]},
               "event_ts": f"{int(time.time())}.000200"}
    env.ok(event_body(revoked, team_id=W2))
    assert not env.installations.installed(W2) and env.installations.installed(W1)
    assert env.kpi(W2, CH2, user=BOB).get_data(as_text=True) == NOT_INSTALLED["ja"]
    assert env.fake.calls("views.open") == []


def test_a_workspace_that_never_installed_is_ignored(oauth_env: OAuthEnv) -> None:
    env = oauth_env
    env.install(W1)
    res = env.kpi(W3, CH1, "setup 他社")
    assert res.get_data(as_text=True) == NOT_INSTALLED["ja"]
    assert env.teams.get(TeamRef(W3, CH1)) is None
    assert sorted(k.decode() for k in env.r.keys("*")) == [keys.oauth_client("127.0.0.1"), keys.installation(W1)]


def test_a_token_slack_refuses_is_looked_up_again(oauth_env: OAuthEnv) -> None:
    """The worker keeps a workspace's token a few seconds: a post refused because the workspace was
    reinstalled meanwhile is retried with the new token, not parked."""
    env = oauth_env
    assert env.worker is not None
    env.worker.worker.senders["slack"].tokens.cache_for = 3600.0  # kept for the whole test
    old = env.install(W2)
    env.teams.register(TeamRef(W2, CH2), "二号店", "Asia/Tokyo", BOB, env.clock())
    env.ok(event_body({"type": "app_home_opened", "user": BOB, "channel": "D0X", "tab": "home",
                       "event_ts": "1.000100"}, team_id=W2))  # the worker reads (and keeps) W2's token
    assert env.calls_of("views.publish") == [(W2, old)]
    env.fake.uninstall(W2)  # removed and installed again: the kept token is refused now
    new = env.install(W2)
    build_reminders(env.svc).run(KICKOFF)
    env.deliver()
    assert env.posts_to(CH2) == [(None, old)]  # refused (answered by no workspace)
    env.clock.t += 60  # the retry's backoff
    env.deliver()
    assert env.posts_to(CH2) == [(None, old), (W2, new)]
    assert env.parked() == []


# ---- settings, manifest ----------------------------------------------------------------------------------


def test_oauth_settings_from_the_environment() -> None:
    base = {"SLACK_SIGNING_SECRET": "s"}
    oauth = Config.from_env(base | {"SLACK_CLIENT_ID": "1.2", "SLACK_CLIENT_SECRET": "s3cr3t-value"})
    assert oauth.slack_oauth and oauth.slack_enabled and oauth.slack_bot_token is None
    assert oauth.slack_client_secret == "s3cr3t-value" and "s3cr3t" not in repr(oauth)  # never shown
    single = Config.from_env(base | {"SLACK_BOT_TOKEN": "xoxb-1"})
    assert single.slack_enabled and not single.slack_oauth
    with pytest.raises(ConfigError, match="not both"):
        Config.from_env(base | {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_CLIENT_ID": "1.2", "SLACK_CLIENT_SECRET": "c"})
    with pytest.raises(ConfigError, match="SLACK_CLIENT_SECRET"):
        Config.from_env(base | {"SLACK_CLIENT_ID": "1.2"})
    with pytest.raises(ConfigError, match="SLACK_REDIRECT_URI"):
        Config.from_env(base | {"SLACK_REDIRECT_URI": "redis://x"})
    assert Config.from_env({"SLACK_CLIENT_ID": "1.2", "SLACK_CLIENT_SECRET": "c"}).slack_missing == \
        ["SLACK_SIGNING_SECRET"]


def test_the_install_pages_answer_404_with_one_workspace(slack_env: SlackEnv) -> None:
    for path in ("/slack/install", "/slack/oauth_redirect?code=x&state=y"):
        assert slack_env.http.get(path).status_code == 404


def test_the_manifest_declares_what_the_install_needs() -> None:
    manifest = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    oauth = manifest["oauth_config"]
    assert tuple(oauth["scopes"]["bot"]) == BOT_SCOPES  # what /slack/install asks for
    assert oauth["redirect_urls"] == ["https://crmbot.example.com/slack/oauth_redirect"]
    settings = manifest["settings"]
    assert {"app_uninstalled", "tokens_revoked"} <= set(settings["event_subscriptions"]["bot_events"])
    assert settings["token_rotation_enabled"] in (True, False)  # false for SLACK_BOT_TOKEN; true with OAuth
    urls = re.findall(r"https://crmbot\.example\.com/\S*", MANIFEST.read_text(encoding="utf-8"))
    assert set(urls) == {"https://crmbot.example.com/slack/events", "https://crmbot.example.com/slack/oauth_redirect"}


def test_the_installation_store_answers_bolts_questions(r: redis.Redis) -> None:
    store = RedisInstallationStore(Installations(r))
    installation = Installation(
        app_id="A1", team_id=W1, team_name="本店", bot_token="xoxe.xoxb-1", bot_id="B1", bot_user_id="UB1",
        bot_scopes="commands,chat:write", bot_refresh_token="xoxe-1", bot_token_expires_in=43200,
        user_id="U0ADMIN", token_type="bot", installed_at=1_700_000_000.0)
    store.save(installation)
    found = store.find_installation(enterprise_id=None, team_id=W1)
    assert found is not None
    assert (found.bot_token, found.bot_refresh_token, found.bot_token_expires_at, found.bot_scopes) == \
        ("xoxe.xoxb-1", "xoxe-1", installation.bot_token_expires_at, ["commands", "chat:write"])
    assert (found.user_id, found.team_name, found.app_id, found.token_type, found.installed_at) == \
        ("U0ADMIN", "本店", "A1", "bot", 1_700_000_000.0)
    assert store.find_installation(enterprise_id=None, team_id=W1, user_id="U0ADMIN") is not None
    assert store.find_installation(enterprise_id=None, team_id=W1, user_id="U0OTHER") is None
    assert store.find_installation(enterprise_id=None, team_id=W2) is None
    bot = store.find_bot(enterprise_id=None, team_id=W1)
    assert bot is not None and (bot.bot_token, bot.bot_user_id, bot.bot_id) == ("xoxe.xoxb-1", "UB1", "B1")
    assert store.find_bot(enterprise_id="E1", team_id=None, is_enterprise_install=True) is None  # org-wide: none
    # a user's token revoked: their record goes, the bot stays; the bot's revoked: not installed any more
    store.delete_installation(enterprise_id=None, team_id=W1, user_id="U0ADMIN")
    assert store.find_installation(enterprise_id=None, team_id=W1, user_id="U0ADMIN") is None
    assert store.find_bot(enterprise_id=None, team_id=W1) is not None
    store.delete_bot(enterprise_id=None, team_id=W1)
    assert store.find_bot(enterprise_id=None, team_id=W1) is None and r.keys("*") == []
    store.save(installation)
    store.delete_all(enterprise_id=None, team_id=W1)
    assert r.keys("*") == []
    with pytest.raises(BoltError):  # an org-wide install is refused (Bolt shows its failure page)
        store.save(Installation(enterprise_id="E1", bot_token="xoxb-e", user_id="U1", is_enterprise_install=True))


def test_a_bot_install_record_round_trips() -> None:
    bot = BotInstall(W1, "xoxe.xoxb-1", "B1", "U1", BOT_SCOPES, "xoxe-1", 123, "A1", None, "本店", 1.5, {"k": 1})
    assert BotInstall.from_json(bot.to_json()) == bot
