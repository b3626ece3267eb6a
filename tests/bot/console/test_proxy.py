"""Behind a reverse proxy: ``crmbot web`` as a real process (waitress), a real proxy process on loopback in
front of it (tests/fakes/reverse_proxy.py: X-Forwarded-For appended, X-Forwarded-Proto: https).

With CRMBOT_TRUST_PROXY=1 waitress takes the client's address and the scheme from the proxy's headers: the
login cookie is Secure and each client has its own throttle bucket. Without it, or from a client that
skips the proxy, those headers are dropped before the app sees them. Clients are told apart by the
loopback address they connect from (127.0.0.2, 127.0.0.3 ...).
"""

from __future__ import annotations

import http.client
import os
import re
import subprocess
import sys
import tempfile
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis

from bot.cli import proxy_settings
from bot.config import Config
from bot.console import auth
from bot.web import WebServer
from tests.bot.console.conftest import PASSWORD
from tests.bot.test_web import _wait_healthy
from tests.fakes.reverse_proxy import ReverseProxy
from tests.isolation import track_process
from tests.redis_server import free_port

BIN = Path(sys.executable).parent
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@contextmanager
def crmbot_web(redis_url: str, data_dir: Path, **env: str) -> Iterator[int]:
    """``crmbot web`` on a free port with the console's password; yields the port."""
    port = free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "CRMBOT_", "LINE_", "SLACK_", "PORT"))}
    base |= {"REDIS_URL": redis_url, "CRMBOT_DATA_DIR": str(data_dir), "CRMBOT_CONSOLE_PASSWORD": PASSWORD, **env}
    with tempfile.TemporaryFile() as output:
        proc = subprocess.Popen([BIN / "crmbot", "web", "--host", "127.0.0.1", "--port", str(port)], env=base,
                                stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
        track_process(proc, "crmbot web", group=True)
        try:
            _wait_healthy(port, proc)
            yield port
        finally:
            if proc.poll() is None:
                proc.terminate()
            assert proc.wait(timeout=30) == 0
            output.seek(0)
            logged = output.read().decode("utf-8", "replace")
            assert PASSWORD not in logged


@dataclass
class Answer:
    status: int
    cookies: list[str]  # the console cookie's Set-Cookie headers
    body: str


@dataclass
class Browser:
    """A client connecting from ``source`` (a loopback address) to ``port``, keeping the console cookie."""

    port: int
    source: str
    cookie: str | None = None
    answers: list[Answer] = field(default_factory=list)

    def request(self, method: str, path: str, form: dict[str, str] | None = None,
                headers: dict[str, str] | None = None) -> Answer:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10, source_address=(self.source, 0))
        sent = dict(headers or {})
        if self.cookie:
            sent["Cookie"] = f"crmbot_console={self.cookie}"
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            conn.request(method, path, body=body, headers=sent)
            res = conn.getresponse()
            text = res.read().decode("utf-8", "replace")
            cookies = [v for k, v in res.getheaders() if k.lower() == "set-cookie" and v.startswith("crmbot_console=")]
        finally:
            conn.close()
        for c in cookies:
            value = c.split(";", 1)[0].split("=", 1)[1]
            self.cookie = None if "Max-Age=0" in c else value
        answer = Answer(res.status, cookies, text)
        self.answers.append(answer)
        return answer

    def login(self, password: str, headers: dict[str, str] | None = None) -> Answer:
        page = self.request("GET", "/console/login", headers=headers)
        found = _CSRF.search(page.body)
        assert found, f"no login form ({page.status})"
        # an HTTPS form post must name its own origin (Flask-WTF's strict referrer check): the browser
        # sends the page's address, with the Host the proxy passed through
        referer = {"Referer": f"https://127.0.0.1:{self.port}/console/login"}
        return self.request("POST", "/console/login", form={"password": password, "csrf_token": found.group(1)},
                            headers={**referer, **(headers or {})})


def fails(r: redis.Redis, client: str) -> int:
    return int(r.hget(auth.throttle_key(client), "fails") or 0)


def test_behind_a_trusted_proxy_the_cookie_is_secure_and_each_client_has_its_own_bucket(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    with crmbot_web(redis_url, tmp_path, CRMBOT_TRUST_PROXY="1") as app_port, ReverseProxy(app_port) as proxy:
        operator = Browser(proxy.port, "127.0.0.2")
        res = operator.login(PASSWORD)
        assert res.status == 302, res.body
        [cookie] = res.cookies
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/console" in cookie
        assert operator.request("GET", "/console/teams").status == 200

        # one client's failures are its own: the next client is let in at once
        guesser = Browser(proxy.port, "127.0.0.3")
        assert [guesser.login("wrong password").status for _ in range(6)] == [401] * 5 + [429]
        assert guesser.login(PASSWORD).status == 429
        other = Browser(proxy.port, "127.0.0.4")
        assert other.login(PASSWORD).status == 302
        assert fails(r, "127.0.0.3") == 6
        assert not r.exists(auth.throttle_key("127.0.0.1"))  # never the proxy's own address
        assert not r.exists(auth.throttle_key("127.0.0.4"))

        # what a client writes into X-Forwarded-For itself stays in front of the proxy's entry: not believed
        forger = Browser(proxy.port, "127.0.0.5")
        assert forger.login("wrong password", headers={"X-Forwarded-For": "127.0.0.4"}).status == 401
        assert proxy.seen_forwarded_for[-1] == "127.0.0.4, 127.0.0.5"
        assert fails(r, "127.0.0.5") == 1 and not r.exists(auth.throttle_key("127.0.0.4"))

        # a client that skips the proxy is not the trusted peer: its forwarded headers are dropped
        direct = Browser(app_port, "127.0.0.6")
        forged = {"X-Forwarded-For": "10.9.9.9", "X-Forwarded-Proto": "https"}
        assert direct.login("wrong password", headers=forged).status == 401
        assert fails(r, "127.0.0.6") == 1 and not r.exists(auth.throttle_key("10.9.9.9"))
        res = direct.login(PASSWORD, headers=forged)
        assert res.status == 302 and "Secure" not in res.cookies[0]


def test_without_the_trust_setting_the_forwarded_headers_are_ignored(r: redis.Redis, redis_url: str,
                                                                       tmp_path: Path) -> None:
    with crmbot_web(redis_url, tmp_path) as app_port, ReverseProxy(app_port) as proxy:
        res = Browser(proxy.port, "127.0.0.2").login(PASSWORD)
        assert res.status == 302 and "Secure" not in res.cookies[0]  # X-Forwarded-Proto: https was dropped
        assert Browser(proxy.port, "127.0.0.3").login("wrong password").status == 401
        # the client's address from X-Forwarded-For was dropped too: the app saw only the proxy
        assert fails(r, "127.0.0.1") == 1 and not r.exists(auth.throttle_key("127.0.0.3"))


def test_the_trust_setting_becomes_waitress_settings() -> None:
    assert proxy_settings(Config()) is None
    settings = proxy_settings(Config.from_env({"CRMBOT_TRUST_PROXY": "1", "CRMBOT_PROXY_HOPS": "2"}))
    assert settings == {"trusted_proxy": "127.0.0.1", "trusted_proxy_count": 2,
                        "trusted_proxy_headers": {"x-forwarded-for", "x-forwarded-proto"}}
    server = WebServer(lambda environ, start: [], "127.0.0.1", 0, proxy=settings)  # waitress accepts them
    try:
        adj = server._server.adj
        assert (adj.trusted_proxy, adj.trusted_proxy_count, adj.clear_untrusted_proxy_headers) == ("127.0.0.1", 2, True)
    finally:
        server.close()
