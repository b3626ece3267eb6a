"""Console sessions kept in Redis (bot/console/sessions.py): a logout, a changed password, the idle and the
absolute lifetime each end a session for good, whoever holds a copy of its cookie. The clock is injected."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from flask.testing import FlaskClient

from bot.console import auth, keys
from bot.console.sessions import PRELOGIN, TOUCH_EVERY
from tests.bot.console.conftest import PASSWORD, TOKEN, Console, console_config, csrf_of, make_console
from tests.conftest import FakeClock
from tests.redis_server import RedisServer

COOKIE = "crmbot_console"
HOUR = 3600.0
DAY = 86400.0


def cookie_of(http: FlaskClient) -> str:
    found = http.get_cookie(COOKIE, path="/console")
    assert found is not None, "no console cookie"
    return found.value


def copy_of(c: Console, value: str) -> FlaskClient:
    """Another browser holding a copy of a cookie (as someone who copied it would)."""
    other = c.client()
    other.set_cookie(COOKIE, value, path="/console")
    return other


def sessions(r: redis.Redis) -> list[bytes]:
    return sorted(r.keys("crmbot:{console}:session:*"))


def console_cookies(res: object) -> list[str]:
    headers = res.headers  # type: ignore[attr-defined]
    return [h for h in headers.getlist("Set-Cookie") if h.startswith(COOKIE + "=")]


def test_a_cookie_copied_before_the_logout_opens_nothing_after_it(logged_in: Console) -> None:
    c = logged_in
    copied = copy_of(c, cookie_of(c.http))
    assert copied.get("/console/leads").status_code == 200
    assert copied.get("/console/export/leads.csv").status_code == 200
    assert c.http.post("/console/logout", data={"csrf_token": c.csrf()}).status_code == 302
    assert sessions(c.r) == []  # the record is gone, not just the browser's cookie
    res = copied.get("/console/leads")
    assert res.status_code == 302 and res.headers["Location"].startswith("/console/login")
    assert copied.get("/console/export/leads.csv").status_code == 401
    assert c.http.get("/console/leads").status_code == 302


def test_a_logout_ends_only_its_own_session(console: Console) -> None:
    console.login()
    other = console.client()
    console.login(other)
    assert len(sessions(console.r)) == 2
    console.http.post("/console/logout", data={"csrf_token": console.csrf()})
    assert console.http.get("/console/teams").status_code == 302
    assert other.get("/console/teams").status_code == 200


def test_the_cookie_is_an_opaque_id_and_redis_keeps_only_its_digest(console: Console) -> None:
    console.http.get("/console/login")
    before = cookie_of(console.http)  # the login form's session (its CSRF token)
    res = console.login()
    after = cookie_of(console.http)
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", after) and after != before  # a new id at the login
    stored = sessions(console.r)
    assert stored == [keys.session(after).encode()]  # the login form's session was dropped
    assert hashlib.sha256(after.encode()).hexdigest().encode() in stored[0] and after.encode() not in stored[0]
    record = console.r.hgetall(stored[0])
    assert PASSWORD.encode() not in b"".join(record.values())
    cookie = console_cookies(res)[0]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/console" in cookie
    # the id known before the login opens nothing
    assert copy_of(console, before).get("/console/teams").status_code == 302


def test_the_cookie_is_set_once_and_never_again_into_a_new_lifetime(console: Console) -> None:
    res = console.login()
    [cookie] = console_cookies(res)
    assert "Max-Age=604800" in cookie  # 7 days from the login, as the record
    value = cookie_of(console.http)
    answers = []
    for _ in range(3):
        console.clock.advance(2 * HOUR)  # past the minute: each use refreshes the record, not the cookie
        answers += [console.http.get("/console/teams"), console.http.get("/console/export/kpi.csv")]
    token = console.csrf()
    answers.append(console.http.post("/console/delivery/requeue", data={"job": "nope", "csrf_token": token}))
    answers.append(console.http.get("/console/delivery"))  # shows (and so removes) the form's notice
    assert [a.status_code for a in answers] == [200] * 6 + [302, 200]
    assert all(console_cookies(a) == [] for a in answers)
    assert cookie_of(console.http) == value
    console.clock.advance(7 * DAY - 6 * HOUR)  # 7 days after the login, used 1 hour ago
    assert console.http.get("/console/teams").status_code == 302


def test_a_session_unused_for_the_idle_lifetime_has_ended(console: Console) -> None:
    console.login()
    key = keys.session(cookie_of(console.http))
    for _ in range(3):
        console.clock.advance(11 * HOUR)  # used within every 12 hours: still open after 33
        assert console.http.get("/console/teams").status_code == 200
    console.clock.advance(12 * HOUR)
    copy = copy_of(console, cookie_of(console.http))
    assert copy.get("/console/teams").status_code == 302
    assert not console.r.exists(key)
    assert console.http.get("/console/teams").status_code == 302


def test_the_last_use_is_written_at_most_once_a_minute(console: Console) -> None:
    console.login()
    key = keys.session(cookie_of(console.http))
    login_at = float(console.r.hget(key, "seen") or 0)
    console.clock.advance(TOUCH_EVERY - 1)
    console.http.get("/console/teams")
    assert float(console.r.hget(key, "seen") or 0) == login_at
    console.clock.advance(1)
    console.http.get("/console/teams")
    assert float(console.r.hget(key, "seen") or 0) == login_at + TOUCH_EVERY
    ttl = console.r.pttl(key)  # Redis forgets it when it would end (12 hours unused) at the latest
    assert 11 * HOUR * 1000 < ttl <= 12 * HOUR * 1000


def test_a_session_ends_at_its_absolute_lifetime_however_busy(r: redis.Redis, redis_url: str, clock: FakeClock,
                                                              tmp_path: Path) -> None:
    c = make_console(console_config(redis_url, tmp_path, console_session_days=1.0, console_idle_hours=12.0), r, clock)
    res = c.login()
    assert "Max-Age=86400" in console_cookies(res)[0]
    for _ in range(23):
        clock.advance(HOUR)
        assert c.http.get("/console/teams").status_code == 200
    assert 0 < r.pttl(keys.session(cookie_of(c.http))) <= HOUR * 1000  # never past the login's day
    clock.advance(HOUR)  # 24 hours after the login, used an hour ago
    assert c.http.get("/console/teams").status_code == 302
    assert sessions(r) == []
    assert c.login().status_code == 302  # a new login, a new day
    assert c.http.get("/console/teams").status_code == 200


def test_the_idle_lifetime_is_configurable(r: redis.Redis, redis_url: str, clock: FakeClock,
                                           tmp_path: Path) -> None:
    c = make_console(console_config(redis_url, tmp_path, console_idle_hours=0.5), r, clock)
    c.login()
    clock.advance(29 * 60)
    assert c.http.get("/console/teams").status_code == 200
    clock.advance(30 * 60)
    assert c.http.get("/console/teams").status_code == 302


def test_a_session_that_never_logged_in_lives_an_hour(console: Console) -> None:
    html = console.http.get("/console/login").get_data(as_text=True)
    [key] = sessions(console.r)
    assert 0 < console.r.pttl(key) <= PRELOGIN * 1000
    console.clock.advance(PRELOGIN)
    res = console.http.post("/console/login", data={"password": PASSWORD, "csrf_token": csrf_of(html)})
    assert res.status_code == 400  # its CSRF token went with it: the page says to reload
    assert sessions(console.r) == []


def test_a_cookie_that_opens_nothing_is_removed_and_a_guessed_one_never_reaches_redis(console: Console) -> None:
    for value in ("x" * 43, "not an id", "a.b.c"):
        http = copy_of(console, value)
        res = http.get("/console/teams")
        assert res.status_code == 302
        [removal] = console_cookies(res)
        assert "Max-Age=0" in removal or "1970" in removal
    assert sessions(console.r) == []


def test_a_request_that_ends_after_the_logout_does_not_bring_the_session_back(logged_in: Console) -> None:
    c = logged_in
    sid = cookie_of(c.http)
    store = auth.access_of(c.app).sessions
    data, _ = store.load(sid) or ({}, 0.0)
    assert data.get(auth.SESSION_FIELD)
    store.end(sid)  # the logout, while another request of the same session was still running
    assert store.update(sid, {**data, "_flashes": [("ok", "saved")]}) is False
    assert sessions(c.r) == []
    assert copy_of(c, sid).get("/console/teams").status_code == 302


def test_the_try_page_keeps_its_test_user_in_the_session(logged_in: Console) -> None:
    c = logged_in
    assert c.http.get("/console/try/").status_code == 200
    user = c.http.get("/console/try/messages?after=0")
    assert user.status_code == 200
    data, _ = auth.access_of(c.app).sessions.load(cookie_of(c.http)) or ({}, 0.0)
    assert re.fullmatch(r"[0-9a-f]{24}", data.get("try_user", "")), data.keys()


# ---- Redis down while logged in ------------------------------------------------------------------------


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


def test_redis_down_while_logged_in_answers_503_never_500(own_redis: RedisServer, clock: FakeClock,
                                                          tmp_path: Path) -> None:
    client = redis.Redis.from_url(own_redis.url)
    c = make_console(console_config(own_redis.url, tmp_path), client, clock)
    assert c.login().status_code == 302
    token = c.csrf()
    own_redis.stop()
    page = c.http.get("/console/leads")
    assert page.status_code == 503 and "データベースに接続できません" in page.get_data(as_text=True)
    assert page.mimetype == "text/html"
    csv = c.http.get("/console/export/leads.csv")
    assert csv.status_code == 503 and csv.get_json() == {"error": "store unavailable"}
    assert c.http.get("/console/try/messages?after=0").status_code == 503
    assert c.http.get("/console/try/").status_code == 503
    logout = c.http.post("/console/logout", data={"csrf_token": token})
    assert logout.status_code == 503 and "Location" not in logout.headers  # not "logged out": it was not
    # the tools' token needs no session, and still says the store is down rather than 500
    res = c.http.get("/console/export/kpi.csv", headers={"Authorization": f"Bearer {TOKEN}"})
    assert res.status_code == 503
    client.close()


def test_redis_down_when_the_session_is_saved_answers_503(own_redis: RedisServer, clock: FakeClock,
                                                          tmp_path: Path) -> None:
    """The session is read before the view and saved after it: a login whose session cannot be stored
    is answered 503, not a redirect into a console that will not know it."""
    client = redis.Redis.from_url(own_redis.url)
    c = make_console(console_config(own_redis.url, tmp_path), client, clock)
    html = c.http.get("/console/login").get_data(as_text=True)
    store = auth.access_of(c.app).sessions
    real_create = store.create

    def create_then_fail(*args: object, **kwargs: object) -> tuple[str, float]:
        own_redis.stop()  # Redis goes away between the password check and the session's write
        return real_create(*args, **kwargs)  # type: ignore[arg-type]

    store.create = create_then_fail  # type: ignore[method-assign]
    res = c.http.post("/console/login", data={"password": PASSWORD, "csrf_token": csrf_of(html)})
    assert res.status_code == 503 and "Location" not in res.headers and console_cookies(res) == []
    assert "データベースに接続できません" in res.get_data(as_text=True)
    client.close()


def test_sessions_and_the_throttle_on_a_redis_cluster(clock: FakeClock, tmp_path: Path) -> None:
    """Every console key is in one hash slot ({console}): the session's transaction and scripts and the
    throttle's two counters work on a Cluster as on one server."""
    from tests.cluster_server import RedisClusterServer

    cluster = RedisClusterServer().start()
    try:
        c = make_console(console_config(cluster.url, tmp_path, redis_cluster=True), None, clock)  # type: ignore[arg-type]
        for ip in ("10.0.0.1", "10.0.0.2"):
            http = c.client()
            http.environ_base["REMOTE_ADDR"] = ip
            html = http.get("/console/login").get_data(as_text=True)
            res = http.post("/console/login", data={"password": "wrong password", "csrf_token": csrf_of(html)})
            assert res.status_code == 401
        assert c.login().status_code == 302
        copied = copy_of(c, cookie_of(c.http))
        clock.advance(2 * TOUCH_EVERY)
        assert copied.get("/console/teams").status_code == 200
        assert c.http.post("/console/logout", data={"csrf_token": c.csrf()}).status_code == 302
        assert copied.get("/console/teams").status_code == 302
        c.svc.redis.close()
    finally:
        cluster.stop(clean=True)
