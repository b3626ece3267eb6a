"""Who gets into the console: password login, sessions, CSRF, the throttle, the tools' token."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest
import redis

from bot.console import auth
from tests.bot.console.conftest import PASSWORD, TOKEN, Console, console_config, csrf_of, make_console
from tests.conftest import FakeClock

PAGES = ["/console/", "/console/teams", "/console/delivery"]
TOOLS = ["/console/export/kpi.csv"]


def test_root_leads_to_the_console(console: Console) -> None:
    res = console.http.get("/")
    assert res.status_code == 302 and res.headers["Location"] == "/console/"


@pytest.mark.parametrize("path", PAGES)
def test_pages_without_a_session_redirect_to_the_login(console: Console, path: str) -> None:
    res = console.http.get(path)
    assert res.status_code == 302
    assert res.headers["Location"].startswith("/console/login?next=")
    assert path in res.headers["Location"].replace("%2F", "/")


@pytest.mark.parametrize("path", TOOLS)
def test_tools_without_credentials_answer_401(console: Console, path: str) -> None:
    res = console.http.get(path)
    assert res.status_code == 401
    assert res.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("path", TOOLS)
def test_tools_with_a_wrong_token_answer_401(console: Console, path: str) -> None:
    for header in (f"Bearer {TOKEN}x", "Bearer ", f"Basic {TOKEN}", TOKEN):
        res = console.http.get(path, headers={"Authorization": header})
        assert res.status_code == 401, header
        assert 'error="invalid_token"' in res.headers["WWW-Authenticate"]


@pytest.mark.parametrize("path", TOOLS)
def test_tools_with_the_token_answer(console: Console, path: str) -> None:
    res = console.http.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
    assert res.status_code == 200


def test_the_token_opens_no_page(console: Console) -> None:
    res = console.http.get("/console/teams", headers={"Authorization": f"Bearer {TOKEN}"})
    assert res.status_code == 302


def test_a_logged_in_session_opens_the_exports_too(logged_in: Console) -> None:
    assert logged_in.http.get("/console/export/kpi.csv").status_code == 200
    # ...but a wrong token sent along is still refused
    res = logged_in.http.get("/console/export/kpi.csv", headers={"Authorization": "Bearer nope"})
    assert res.status_code == 401


def test_wrong_password_is_refused(console: Console) -> None:
    res = console.login(password="wrong password")
    assert res.status_code == 401
    assert "パスワードが違います" in res.get_data(as_text=True)
    assert console.http.get("/console/teams").status_code == 302


def test_login_then_every_page_opens_and_logout_closes_them(console: Console) -> None:
    res = console.login()
    assert res.status_code == 302 and res.headers["Location"] == "/console/"
    for path in PAGES:
        assert console.http.get(path).status_code == 200, path
    token = console.csrf()
    assert console.http.post("/console/logout", data={"csrf_token": token}).status_code == 302
    assert console.http.get("/console/teams").status_code == 302


def test_login_goes_back_to_the_page_asked_for_but_never_off_the_console(console: Console) -> None:
    html = console.http.get("/console/login?next=/console/teams").get_data(as_text=True)
    res = console.http.post("/console/login", data={"password": PASSWORD, "csrf_token": csrf_of(html),
                                                    "next": "/console/teams"})
    assert res.headers["Location"] == "/console/teams"
    other = console.client()
    for evil in ("https://evil.example/", "//evil.example/console", "/line/webhook"):
        html = other.get("/console/login").get_data(as_text=True)
        res = other.post("/console/login", data={"password": PASSWORD, "csrf_token": csrf_of(html), "next": evil})
        assert res.headers["Location"] == "/console/", evil
        other = console.client()


def test_login_without_a_csrf_token_is_400(console: Console) -> None:
    console.http.get("/console/login")
    res = console.http.post("/console/login", data={"password": PASSWORD})
    assert res.status_code == 400
    assert console.http.get("/console/teams").status_code == 302  # not logged in


def test_a_csrf_token_of_another_session_is_400(console: Console) -> None:
    stranger = console.client()
    token = csrf_of(stranger.get("/console/login").get_data(as_text=True))
    console.http.get("/console/login")
    res = console.http.post("/console/login", data={"password": PASSWORD, "csrf_token": token})
    assert res.status_code == 400


def test_a_post_without_a_csrf_token_is_400_when_logged_in(logged_in: Console) -> None:
    assert logged_in.http.post("/console/delivery/requeue", data={"job": "x"}).status_code == 400
    assert logged_in.http.post("/console/logout").status_code == 400
    assert logged_in.http.get("/console/teams").status_code == 200  # still logged in


def test_session_cookie_flags(console: Console) -> None:
    res = console.login()
    cookie = res.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie  # plain HTTP: a Secure cookie would never come back


def test_session_cookie_is_secure_over_https(console: Console) -> None:
    http = console.client()
    html = http.get("/console/login", base_url="https://console.example").get_data(as_text=True)
    res = http.post("/console/login", base_url="https://console.example",
                    data={"password": PASSWORD, "csrf_token": csrf_of(html)},
                    headers={"Referer": "https://console.example/console/login"})
    assert res.status_code == 302
    assert "Secure" in res.headers["Set-Cookie"]


def test_the_app_itself_never_believes_forwarded_headers(r: redis.Redis, redis_url: str, clock: FakeClock,
                                                        tmp_path: Path) -> None:
    """X-Forwarded-* are waitress' business (bot.web, with CRMBOT_TRUST_PROXY): the app applies no ProxyFix
    of its own, so a proxy's headers are never applied twice, nor believed from a client (tests/bot/console/
    test_proxy.py runs the real server behind a real proxy)."""
    c = make_console(console_config(redis_url, tmp_path, trusted_proxy="127.0.0.1"), r, clock)
    html = c.http.get("/console/login").get_data(as_text=True)
    res = c.http.post("/console/login", data={"password": "wrong password", "csrf_token": csrf_of(html)},
                      headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "10.9.9.9"})
    assert res.status_code == 401
    assert r.exists(auth.throttle_key("127.0.0.1")) and not r.exists(auth.throttle_key("10.9.9.9"))
    res = c.login()
    assert res.status_code == 302 and "Secure" not in res.headers["Set-Cookie"]


def test_changing_the_password_ends_every_session(console: Console, r: redis.Redis, redis_url: str,
                                                  clock: FakeClock, tmp_path: Path) -> None:
    console.login()
    cookie = console.http.get_cookie("crmbot_console", path="/console")
    assert cookie is not None
    same = make_console(console_config(redis_url, tmp_path), r, clock)  # a restart, same password
    same.http.set_cookie("crmbot_console", cookie.value, path="/console")
    assert same.http.get("/console/teams").status_code == 200
    changed = make_console(console_config(redis_url, tmp_path, console_password="another password"), r, clock)
    changed.http.set_cookie("crmbot_console", cookie.value, path="/console")
    assert changed.http.get("/console/teams").status_code == 302
    assert r.keys("crmbot:{console}:session:*") == []  # ended for good: deleted, not just refused
    assert same.http.get("/console/teams").status_code == 302  # the old password back opens nothing
    assert console.http.get("/console/teams").status_code == 302


# ---- the throttle ---------------------------------------------------------------------------------


def _try(c: Console, password: str, ip: str = "10.0.0.7") -> tuple[int, str | None]:
    http = c.client()
    http.environ_base["REMOTE_ADDR"] = ip
    html = http.get("/console/login").get_data(as_text=True)
    res = http.post("/console/login", data={"password": password, "csrf_token": csrf_of(html)})
    return res.status_code, res.headers.get("Retry-After")


def test_failed_logins_slow_down_that_client(console: Console) -> None:
    for _ in range(4):  # the first failures are free
        assert _try(console, "guess") == (401, None)
    assert _try(console, "guess") == (401, None)  # the fifth: still answered, nothing to wait yet
    assert _try(console, "guess") == (429, "2")  # the sixth waits 2 s
    # while it waits, even the right password is not checked
    assert _try(console, PASSWORD) == (429, "2")
    console.clock.advance(1)
    assert _try(console, PASSWORD) == (429, "1")
    console.clock.advance(1)
    assert _try(console, "guess") == (429, "4")  # the wait doubles
    console.clock.advance(4)
    assert _try(console, "guess") == (429, "8")
    # another client is not slowed down
    assert _try(console, PASSWORD, ip="10.0.0.8") == (302, None)
    console.clock.advance(8)
    assert _try(console, PASSWORD) == (302, None)
    # a success clears the count
    assert _try(console, "guess") == (401, None)


def test_the_wait_is_capped_and_forgotten_after_a_day(console: Console, r: redis.Redis) -> None:
    throttle = auth.LoginThrottle(r, console.clock, free=0, first=2, longest=900)
    waits = [throttle.failed("1.2.3.4") for _ in range(12)]
    assert waits[:4] == [2, 4, 8, 16]
    assert max(waits) == 900 and waits[-1] == 900
    assert throttle.wait("1.2.3.4") == 900
    console.clock.advance(899.5)
    assert throttle.wait("1.2.3.4") == pytest.approx(0.5)
    ttl = r.ttl(auth.throttle_key("1.2.3.4"))
    assert 86000 < ttl <= 86400


def test_one_client_failing_over_and_over_never_locks_out_another(console: Console) -> None:
    refused = 0
    for _ in range(40):  # every failure counted: the storm waits out each wait it is given
        status, after = _try(console, "guess", ip="10.0.0.66")
        if status == 429:
            refused += 1
            console.clock.advance(int(after or 0))
    assert refused > 30  # it was held back...
    assert _try(console, "guess", ip="10.0.0.66")[0] == 429
    assert _try(console, PASSWORD, ip="10.0.0.66")[0] == 429  # ...and is, right password or not
    assert _try(console, PASSWORD, ip="10.0.0.8") == (302, None)  # the operator, from elsewhere: in at once


def test_a_storm_from_many_addresses_slows_them_all_but_never_the_operator(console: Console, r: redis.Redis) -> None:
    storm = [f"10.1.{i // 250}.{i % 250}" for i in range(60)]
    answers = [_try(console, "guess", ip=ip)[0] for ip in storm]
    # each fresh address is checked once; past the account's free failures it is told to wait at once
    assert answers[:10] == [401] * 10 and set(answers[10:]) == {429}
    # every address of the storm now waits as the account does, the right password or not
    assert {_try(console, PASSWORD, ip=ip)[0] for ip in storm} == {429}
    # an address with no failure of its own logs in with the right password, at once
    assert _try(console, PASSWORD, ip="192.0.2.10") == (302, None)
    # ...and the storm's wait is the account's, capped like a client's
    assert 0 < auth.LoginThrottle(r, console.clock).wait(storm[0]) <= 900
    # the account's counter is named by a digest, never by the account itself
    assert r.exists(auth.account_key(auth.ACCOUNT))
    assert not any(b":console" in k.split(b":account:")[-1] for k in r.keys("crmbot:{console}:account:*"))


def test_the_account_counter_is_per_account(console: Console, r: redis.Redis) -> None:
    """Ready for operators' own accounts (issue 18): a storm against one e-mail holds back only the
    clients that failed, and only for that account."""
    throttle = auth.LoginThrottle(r, console.clock, free=5, account_free=3)
    for i in range(20):
        throttle.failed(f"10.2.0.{i}", "Owner@Example.jp")
    throttle.failed("10.3.0.1", "staff@example.jp")  # a client that mistyped once, on another account
    assert throttle.wait("10.3.0.1", "staff@example.jp") == 0
    assert throttle.wait("10.3.0.1", "owner@example.jp") > 0  # e-mails compare without case
    assert throttle.wait("10.3.0.2", "owner@example.jp") == 0  # never failed: checked at once
    assert not any(b"example" in k for k in r.keys("crmbot:{console}:*"))


def test_ipv6_clients_count_by_their_64_block(console: Console, r: redis.Redis) -> None:
    for ip in ("2001:db8:1:2::5", "2001:db8:1:2:aaaa::6"):
        assert _try(console, "guess", ip=ip)[0] == 401
    assert r.hget(auth.throttle_key("2001:db8:1:2::/64"), "fails") == b"2"
    assert _try(console, "guess", ip="::ffff:192.0.2.7")[0] == 401
    assert r.exists(auth.throttle_key("192.0.2.7"))


# ---- the one-time link of `crmbot serve` ------------------------------------------------------------


def test_a_one_time_link_logs_in_once(console: Console) -> None:
    token = auth.issue_login_token(console.r)
    res = console.http.get(f"/console/login?token={token}")
    assert res.status_code == 302 and res.headers["Location"] == "/console/"
    assert console.http.get("/console/teams").status_code == 200
    other = console.client()
    res = other.get(f"/console/login?token={token}")
    assert res.status_code == 401
    assert "使用済み" in res.get_data(as_text=True)
    assert other.get("/console/teams").status_code == 302
    assert console.r.keys("crmbot:{console}:once:*") == []


def test_the_one_time_link_stores_no_token_in_clear(console: Console) -> None:
    token = auth.issue_login_token(console.r)
    stored = console.r.keys("crmbot:{console}:once:*")
    assert len(stored) == 1 and token.encode() not in stored[0]
    assert 0 < console.r.ttl(stored[0]) <= auth.ONCE_TTL


# ---- without a password ------------------------------------------------------------------------------


def test_without_a_password_pages_answer_503_and_the_log_says_why_once(
    r: redis.Redis, redis_url: str, clock: FakeClock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="bot.console.auth"):
        c = make_console(console_config(redis_url, tmp_path, console_password=None), r, clock)
        for path in [*PAGES, "/console/login"]:
            res = c.http.get(path)
            assert res.status_code == 503, path
            assert "CRMBOT_CONSOLE_PASSWORD" in res.get_data(as_text=True)
        assert c.http.post("/console/login", data={"password": PASSWORD}).status_code == 503
    why = [rec for rec in caplog.records if "CRMBOT_CONSOLE_PASSWORD" in rec.getMessage()]
    assert len(why) == 1
    # the style sheet still loads, for the 503 page
    assert c.http.get("/console/static/console.css").status_code == 200
    # the tools still open with the token
    assert c.http.get("/console/export/kpi.csv", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert c.http.get("/console/export/kpi.csv").status_code == 401
    # no secret key was made: nothing needs one
    assert not (tmp_path / auth.SECRET_FILE).exists()


def test_without_password_nor_token_the_tools_answer_503(r: redis.Redis, redis_url: str, clock: FakeClock,
                                                         tmp_path: Path) -> None:
    c = make_console(console_config(redis_url, tmp_path, console_password=None, console_token=None), r, clock)
    assert c.http.get("/console/export/kpi.csv").status_code == 503


# ---- secrets at rest ---------------------------------------------------------------------------------


def test_the_local_password_is_made_once_and_kept_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    password, path = auth.local_password(data)
    assert len(password) >= 16
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert auth.local_password(data) == (password, path)
    path.chmod(0o644)
    assert auth.local_password(data)[0] == password
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_secret_key_is_generated_once_unless_configured(r: redis.Redis, redis_url: str, clock: FakeClock,
                                                            tmp_path: Path) -> None:
    assert auth.secret_key("configured-secret-key", tmp_path) == "configured-secret-key"
    assert not (tmp_path / auth.SECRET_FILE).exists()
    c1 = make_console(console_config(redis_url, tmp_path, secret_key=None), r, clock)
    key_file = tmp_path / auth.SECRET_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    c1.login()
    cookie = c1.http.get_cookie("crmbot_console", path="/console")
    assert cookie is not None
    c2 = make_console(console_config(redis_url, tmp_path, secret_key=None), r, clock)  # a restart
    assert c2.app.secret_key == c1.app.secret_key
    c2.http.set_cookie("crmbot_console", cookie.value, path="/console")
    assert c2.http.get("/console/teams").status_code == 200


def test_secrets_compare_equal_only_when_equal() -> None:
    assert auth.same_secret("abc", "abc")
    assert not auth.same_secret("abc", "abd")
    assert not auth.same_secret("abc", "abcd")
    assert not auth.same_secret("", "abc")


def test_pages_carry_security_headers_and_are_not_cached(logged_in: Console) -> None:
    for path in ["/console/teams", "/console/login", "/console/export/kpi.csv"]:
        res = logged_in.http.get(path)
        assert res.headers["X-Frame-Options"] == "DENY", path
        assert "frame-ancestors 'none'" in res.headers["Content-Security-Policy"]
        assert res.headers["X-Content-Type-Options"] == "nosniff"
    assert logged_in.http.get("/console/teams").headers["Cache-Control"] == "no-store"


def test_redis_down_answers_503_with_a_page_saying_so(clock: FakeClock, tmp_path: Path) -> None:
    from tests.redis_server import free_port

    down = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    c = make_console(console_config(down, tmp_path), redis.Redis.from_url(down), clock)
    res = c.http.get("/console/login")  # its form's CSRF token needs a session, kept in Redis
    assert res.status_code == 503 and "データベースに接続できません" in res.get_data(as_text=True)
    assert "Set-Cookie" not in res.headers
    c.http.set_cookie("crmbot_console", "a" * 43, path="/console")  # a session made while Redis was up
    for res in (c.http.post("/console/login", data={"password": PASSWORD}), c.http.get("/console/teams")):
        assert res.status_code == 503 and "データベースに接続できません" in res.get_data(as_text=True)
    res = c.http.get("/console/export/kpi.csv", headers={"Authorization": f"Bearer {TOKEN}"})
    assert res.status_code == 503 and res.get_json() == {"error": "store unavailable"}
