"""The worker and the clock, as real ``crmbot worker`` and ``crmbot clock`` processes with
CRMBOT_METRICS_PORT and CRMBOT_METRICS_TOKEN: each serves its own metrics in Prometheus's text format on
its port (401 without the token); the worker's count the reply it delivered, the clock's its pass, and
the pass's time, recorded in Redis, is what the web app's /metrics shows. JSON logs from a real command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from bot.app import build_services, create_app
from bot.cli import main
from bot.logs import setup
from conversations import keys
from tests.bot.line.conftest import line_config
from tests.bot.line.helpers import SECRET, TOKEN, LineUser
from tests.bot.scrape import Samples, parse, scrape, value
from tests.fakes.line_api import FakeLineApi
from tests.isolation import track_process
from tests.redis_server import free_port

BIN = Path(sys.executable).parent
METRICS_TOKEN = "metrics-token-for-tests-0123"
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def get(port: int, token: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers=headers)
    try:
        with NO_PROXY.open(req, timeout=5) as res:
            assert res.headers["Content-Type"].startswith("text/plain; version=")
            return res.status, res.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def poll_metrics(port: int, proc: subprocess.Popen[bytes], until: Callable[[Samples], bool],
                 timeout: float = 60.0) -> Samples:
    """The process's metrics once ``until`` holds (polling a starting process, bounded by the deadline)."""
    deadline = time.monotonic() + timeout
    samples: Samples = {}
    while True:
        try:
            status, body = get(port, METRICS_TOKEN)
            samples = parse(body) if status == 200 else {}
        except OSError:
            samples = {}
        if until(samples):
            return samples
        assert proc.poll() is None, f"the process exited ({proc.returncode})"
        assert time.monotonic() < deadline, f"not met within {timeout}s: {sorted(samples)[:20]}"
        time.sleep(0.1)


def test_the_worker_and_the_clock_serve_their_own_metrics_on_their_port(redis_url: str, r: redis.Redis) -> None:
    procs: list[subprocess.Popen[bytes]] = []
    with FakeLineApi(access_token=TOKEN) as fake:
        env = os.environ | {"REDIS_URL": redis_url, "LINE_CHANNEL_SECRET": SECRET, "LINE_CHANNEL_ACCESS_TOKEN": TOKEN,
                            "LINE_API_HOST": fake.base_url, "CRMBOT_METRICS_TOKEN": METRICS_TOKEN}
        ports = {"worker": free_port(), "clock": free_port()}

        def start(kind: str) -> subprocess.Popen[bytes]:
            proc = subprocess.Popen([BIN / "crmbot", kind],
                                    env=env | {"CRMBOT_METRICS_PORT": f"127.0.0.1:{ports[kind]}"},
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
            track_process(proc, f"crmbot {kind}", group=True)
            procs.append(proc)
            return proc

        output = ""
        try:
            worker, clock = start("worker"), start("clock")
            svc = build_services(line_config(redis_url, fake, metrics_token=METRICS_TOKEN))
            http = create_app(services=svc).test_client()
            user = LineUser(http, fake, time.time)
            user.follow()  # committed here; the worker process replies
            fake.wait_delivered(user.user_id, 1, timeout=90)  # the worker process starts first (slow on a busy machine)

            delivered = poll_metrics(ports["worker"], worker, lambda s: value(
                s, "crmbot_deliveries_total", channel="line", outcome="delivered") == 1)
            assert value(delivered, "crmbot_api_responses_total", api="line", status="200") == 1
            assert value(delivered, "crmbot_webhook_requests_total", channel="line", status="200") == 0  # the web's
            assert get(ports["worker"])[0] == 401
            assert get(ports["worker"], "wrong-token-0123456789")[0] == 401

            passed = poll_metrics(ports["clock"], clock,
                                  lambda s: value(s, "crmbot_reminder_passes_total", outcome="done") >= 1)
            assert value(passed, "crmbot_deliveries_total", channel="line", outcome="delivered") == 0  # the worker's
            assert get(ports["clock"])[0] == 401
            recorded = float(r.get(keys.CLOCK_LAST_PASS) or 0)
            assert time.time() - 600 < recorded <= time.time()
            web = scrape(http, METRICS_TOKEN)
            assert value(web, "crmbot_reminder_pass_last_success_timestamp_seconds") == pytest.approx(recorded)
        finally:
            for proc in procs:
                os.killpg(proc.pid, signal.SIGTERM)
            for proc in procs:
                output += proc.communicate(timeout=30)[0].decode()
    assert all(proc.returncode == 0 for proc in procs), output
    assert METRICS_TOKEN not in output and TOKEN not in output and user.user_id not in output
    assert f"metrics on http://127.0.0.1:{ports['worker']}/metrics" in output


def test_json_logs_are_one_object_a_line(redis_url: str, r: redis.Redis, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("CRMBOT_LOG_FORMAT", "json")
    try:
        assert main(["outbox"]) == 0  # builds the services: their start-up warnings are logged
    finally:
        setup("INFO")  # the suite's other tests log as text
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]
    assert any(e["logger"] == "bot.app" and e["level"] == "WARNING" and e["message"].startswith("LINE disabled")
               for e in entries), lines
    assert all(set(e) >= {"time", "level", "logger", "message"} for e in entries)
