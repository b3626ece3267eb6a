"""``crmbot web`` (the Procfile's web: line) as a real process: slow clients cannot starve it, it logs
in the product's one format, and SIGTERM stops it cleanly.

Slow clients are real sockets that send a request a byte at a time (headers, or a body after full
headers with a Content-Length) from a background thread, for as long as the test runs. Meanwhile
GET /healthz and a signed LINE webhook must each be answered within a client timeout of 1 s (the
issue's "answer within 1 s": a failure condition, not a measurement). The same probe against a
server whose only thread a slow client holds times out: the test would catch the old failure mode.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any

import pytest
import redis
from werkzeug.serving import make_server

from bot.web import WebServer, console_path
from tests.bot.line.helpers import SECRET, TOKEN, sign
from tests.fakes.line_api import FakeLineApi
from tests.isolation import track_process
from tests.redis_server import free_port

BIN = os.path.dirname(sys.executable)
PROBE_TIMEOUT = 1.0  # the issue's bound: each probe request is answered within 1 s
RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.:-]+: .*$")

HEADER_TRICKLE = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
BODY_TRICKLE = (b"POST /line/webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"X-Line-Signature: c2xvdw==\r\nContent-Length: 100000\r\n\r\n{\"events\": [")


@pytest.fixture(scope="module")
def fake_line() -> Iterator[FakeLineApi]:
    with FakeLineApi(access_token=TOKEN) as fake:
        yield fake


# ---- a crmbot web process -----------------------------------------------------------------------------


@dataclass
class WebProcess:
    proc: subprocess.Popen[bytes]
    port: int
    output: IO[bytes]

    def stop(self) -> tuple[int, str]:
        """SIGTERM (as a Procfile runner stops it), then its exit code and everything it logged."""
        if self.proc.poll() is None:
            self.proc.terminate()
        code = self.proc.wait(timeout=30)
        self.output.seek(0)
        return code, self.output.read().decode("utf-8", "replace")


def _wait_healthy(port: int, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            try:
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    return
            finally:
                conn.close()
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"crmbot web never became healthy (exit code {proc.poll()})")
        time.sleep(0.05)  # polling a starting server, bounded by the deadline


@contextmanager
def crmbot_web(redis_url: str, fake: FakeLineApi, *args: str) -> Iterator[WebProcess]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LINE_", "SLACK_", "REDIS_", "PORT"))}
    env |= {"REDIS_URL": redis_url, "LINE_CHANNEL_SECRET": SECRET, "LINE_CHANNEL_ACCESS_TOKEN": TOKEN,
            "LINE_API_HOST": fake.base_url, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    with tempfile.TemporaryFile() as output, tempfile.TemporaryFile() as worker_output:
        # the web tier only commits: a worker (the Procfile's worker:) delivers the replies
        worker = subprocess.Popen([os.path.join(BIN, "crmbot"), "worker"], env=env, stdout=worker_output,
                                  stderr=subprocess.STDOUT, start_new_session=True)
        track_process(worker, "crmbot worker", group=True)
        proc = subprocess.Popen([os.path.join(BIN, "crmbot"), "web", "--host", "127.0.0.1", "--port", str(port),
                                 *args], env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
        track_process(proc, "crmbot web", group=True)
        try:
            _wait_healthy(port, proc)
            yield WebProcess(proc, port, output)
        finally:
            for p in (proc, worker):
                if p.poll() is None:
                    p.kill()
                p.wait(timeout=30)


# ---- slow clients ------------------------------------------------------------------------------------


class Trickle:
    """``count`` connections that each sent ``head`` and then send one byte every ``interval`` seconds,
    from one background thread, until closed (or ``limit`` seconds pass)."""

    def __init__(self, port: int, head: bytes, count: int, interval: float = 0.5, limit: float = 60.0) -> None:
        self.interval, self.limit = interval, limit
        self.socks: list[socket.socket] = []
        self.rounds = 0
        self.errors: list[OSError] = []
        self._stop = threading.Event()
        self._cond = threading.Condition()
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            self.socks.append(sock)
            sock.sendall(head)
        self._thread = threading.Thread(target=self._run, name="trickle", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        deadline = time.monotonic() + self.limit
        while not self._stop.is_set() and time.monotonic() < deadline:
            for sock in self.socks:
                try:
                    sock.send(b"a")
                except OSError as e:
                    self.errors.append(e)
            with self._cond:
                self.rounds += 1
                self._cond.notify_all()
            self._stop.wait(self.interval)  # the trickle's pace

    def wait_rounds(self, n: int, timeout: float = 15.0) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: self.rounds >= n, timeout), f"only {self.rounds} trickle rounds"

    def unanswered_and_open(self) -> bool:
        """Every connection is still open and has had no answer (the server holds it, waiting)."""
        for sock in self.socks:
            sock.setblocking(False)
            try:
                sock.recv(1)  # b"": closed by the server; data: answered
                return False
            except BlockingIOError:
                continue
            finally:
                sock.setblocking(True)
        return not self.errors

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        for sock in self.socks:
            sock.close()


@contextmanager
def slow_clients(port: int, headers: int = 20, bodies: int = 20) -> Iterator[list[Trickle]]:
    groups: list[Trickle] = []
    try:
        groups.append(Trickle(port, HEADER_TRICKLE, headers))
        groups.append(Trickle(port, BODY_TRICKLE, bodies))
        for group in groups:
            group.wait_rounds(2)  # every connection has sent bytes beyond its head, twice
        yield groups
    finally:
        for group in groups:
            group.close()


# ---- the probe ---------------------------------------------------------------------------------------


def _request(port: int, method: str, path: str, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=PROBE_TIMEOUT)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        res = conn.getresponse()
        res.read()
        return res.status
    finally:
        conn.close()


def follow_webhook(fake: FakeLineApi, user: str) -> tuple[bytes, dict[str, str]]:
    ev = {"type": "follow", "mode": "active", "timestamp": int(time.time() * 1000),
          "source": {"type": "user", "userId": user}, "webhookEventId": "01" + uuid.uuid4().hex[:24].upper(),
          "deliveryContext": {"isRedelivery": False}, "replyToken": fake.issue_reply_token(user),
          "follow": {"isUnblocked": False}}
    body = json.dumps({"destination": "U" + "d" * 32, "events": [ev]}).encode()
    return body, {"X-Line-Signature": sign(body), "Content-Type": "application/json"}


def probe(port: int, fake: FakeLineApi) -> str:
    """GET /healthz and a signed LINE follow webhook, each answered 200 within the client timeout."""
    assert _request(port, "GET", "/healthz") == 200
    user = "U" + uuid.uuid4().hex
    body, headers = follow_webhook(fake, user)
    assert _request(port, "POST", "/line/webhook", body, headers) == 200
    return user


# ---- the tests ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("threads", [16, 4])
def test_slow_clients_do_not_starve_healthz_or_the_webhook(
    r: redis.Redis, redis_url: str, fake_line: FakeLineApi, threads: int
) -> None:
    fake_line.reset()
    with crmbot_web(redis_url, fake_line, "--threads", str(threads)) as web:
        _request(web.port, "GET", "/healthz")  # one request before the clock matters (first-request set-up)
        with slow_clients(web.port) as groups:
            users = [probe(web.port, fake_line) for _ in range(3)]
            for group in groups:
                group.wait_rounds(group.rounds + 1)  # still trickling after the probes...
                assert group.unanswered_and_open()  # ...and held open by the server, unanswered
        for user in users:
            fake_line.wait_delivered(user, 1)  # the webhooks were really handled
        code, output = web.stop()
    assert code == 0, output
    fake_line.assert_contract_ok()
    assert f"listening on http://127.0.0.1:{web.port} ({threads} threads, and 4 for the console)" in output


def test_the_probe_catches_a_server_whose_threads_slow_clients_hold(fake_line: FakeLineApi) -> None:
    """The old failure mode: a server that gives a thread to a connection before its request is in.
    With its only thread held by a slow client, the same probe times out."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    server = make_server("127.0.0.1", 0, app, threaded=False)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        with slow_clients(server.server_port, headers=2, bodies=2), pytest.raises(TimeoutError):
            probe(server.server_port, fake_line)
    finally:
        server.shutdown()  # the slow clients are closed by now, so its one thread is free again
        server.server_close()
        thread.join(timeout=10)
    assert not thread.is_alive()


def test_crmbot_web_logs_in_the_product_format_and_never_a_body(
    r: redis.Redis, redis_url: str, fake_line: FakeLineApi
) -> None:
    fake_line.reset()
    secret_text = "SECRET-BODY-TEXT\n2026-01-01 00:00:00,000 INFO crmbot: forged"
    body = json.dumps({"events": [], "note": secret_text}).encode()
    with crmbot_web(redis_url, fake_line) as web:
        user = "U" + uuid.uuid4().hex
        good, headers = follow_webhook(fake_line, user)
        assert _request(web.port, "POST", "/line/webhook", good, headers) == 200
        # a signature of raw non-ASCII bytes (the server reads them as Latin-1), then garbage ones
        with socket.create_connection(("127.0.0.1", web.port), timeout=5) as sock:
            sock.sendall(b"POST /line/webhook HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                         b"X-Line-Signature: \xc3\xbc\r\nContent-Length: " + str(len(body)).encode()
                         + b"\r\n\r\n" + body)
            answer = b""
            while chunk := sock.recv(4096):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 400 ")
        for signature in ("%%%", "A" * 10_000, "bm90IGEgc2lnbmF0dXJl="):
            assert _request(web.port, "POST", "/line/webhook", body, {"X-Line-Signature": signature}) == 400
        assert _request(web.port, "POST", "/line/webhook", b"{" + body, {"X-Line-Signature": sign(b"{" + body)}) == 400
        fake_line.wait_delivered(user, 1)
        code, output = web.stop()
    assert code == 0, output
    lines = output.splitlines()
    assert lines and all(RECORD.match(line) for line in lines), output
    assert any(" INFO bot.web: listening on http://127.0.0.1:" in line for line in lines)
    assert any(" INFO bot.web: stopped" in line for line in lines)
    assert sum(" WARNING bot.line.webhook: line webhook: bad or missing signature" in line for line in lines) == 4
    assert any(" WARNING bot.line.webhook: line webhook: malformed body" in line for line in lines)
    assert "SECRET-BODY" not in output and "forged" not in output
    assert SECRET not in output and TOKEN not in output and user not in output


def test_web_server_stops_from_another_thread_and_closes_its_sockets() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    server = WebServer(app, "127.0.0.1", 0, threads=2)
    address = server.addresses[0]
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        assert _request(address[1], "GET", "/") == 200
        idle = socket.create_connection(address, timeout=5)  # an open connection does not keep it running
    finally:
        server.stop()
        thread.join(timeout=15)
    assert not thread.is_alive()
    try:
        try:
            got = idle.recv(1)
        except ConnectionResetError:  # closed by the server with a reset rather than a FIN: closed too
            got = b""
        assert got == b""  # closed by the server
    finally:
        idle.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(address, timeout=5).close()
    server.stop()  # stopping again does nothing


@contextmanager
def blocking_server(threads: int, console_threads: int) -> Iterator[tuple[int, threading.Event, list[str]]]:
    """A WebServer whose app holds every request for ``/console...`` or ``/slow`` until the event is set;
    yields its port, the event and the paths the app began serving, in order."""
    release, began = threading.Event(), []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        path = environ["PATH_INFO"]
        began.append(path)
        if path.startswith("/console") or path == "/slow":
            release.wait(30)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    server = WebServer(app, "127.0.0.1", 0, threads=threads, console_threads=console_threads)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield server.addresses[0][1], release, began
    finally:
        release.set()
        server.stop()
        thread.join(timeout=15)
    assert not thread.is_alive()


def _hold(port: int, path: str) -> socket.socket:
    """A request for ``path`` sent whole and left waiting for its answer."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    return sock


def _wait_began(began: list[str], count: int) -> None:
    deadline = time.monotonic() + 10
    while len(began) < count:
        assert time.monotonic() < deadline, f"the app began {began}, not {count} requests"
        time.sleep(0.01)


def test_console_requests_have_their_own_threads_and_never_hold_a_webhooks() -> None:
    """The console lane's only thread held (and more console requests queued behind it): /healthz and a
    webhook path are answered within the probe's timeout by the other lane's thread; the queued console
    requests are served once the first is released."""
    with blocking_server(threads=1, console_threads=1) as (port, release, began):
        held = [_hold(port, "/console/api/funnel")]
        _wait_began(began, 1)
        held += [_hold(port, "/console/"), _hold(port, "/")]  # queued in the console's lane
        assert _request(port, "GET", "/healthz") == 200
        assert _request(port, "POST", "/line/webhook", b"{}") == 200
        assert began == ["/console/api/funnel", "/healthz", "/line/webhook"]  # the queued ones still wait
        release.set()
        for sock in held:
            assert sock.recv(12) == b"HTTP/1.1 200"
            sock.close()
        assert sorted(began[3:]) == ["/", "/console/"]


def test_the_probe_catches_a_lane_whose_only_thread_is_held() -> None:
    """The same probe fails where one lane's thread is held (here a slow non-console request): what
    the test above would see if console requests shared the webhooks' threads."""
    with blocking_server(threads=1, console_threads=1) as (port, _release, began):
        sock = _hold(port, "/slow")
        _wait_began(began, 1)
        with pytest.raises(TimeoutError):
            _request(port, "GET", "/healthz")
        sock.close()


@pytest.mark.parametrize(("path", "console"), [
    ("/", True), ("/console", True), ("/console/", True), ("/console/api/funnel", True),
    ("/consoles", False), ("/healthz", False), ("/line/webhook", False), ("/slack/events", False),
    ("/metrics", False), ("/readyz", False)])
def test_the_console_lane_takes_the_console_paths_alone(path: str, console: bool) -> None:
    assert console_path(path) is console


def test_crmbot_web_on_a_taken_port_says_so(r: redis.Redis, redis_url: str, monkeypatch, capsys) -> None:
    from bot.cli import main

    monkeypatch.setenv("REDIS_URL", redis_url)
    for var in ("LINE_CHANNEL_SECRET", "LINE_CHANNEL_ACCESS_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_BOT_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        try:
            assert main(["web", "--port", str(port)]) == 1
        finally:
            for h in [h for h in root.handlers if h not in handlers]:
                root.removeHandler(h)
            root.setLevel(level)
    assert f"crmbot: web: cannot listen on 127.0.0.1:{port}: Address already in use" in capsys.readouterr().err
