"""The crmbot command: chat in the terminal, the embedded Redis default, the Procfile's web line."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from bot.cli import chat_cmd, main
from bot.config import Config
from tests.bot.line.helpers import SECRET, TOKEN, sign
from tests.fakes.line_api import FakeLineApi
from tests.isolation import track_process
from tests.redis_server import embedded_pids, free_port, stop_embedded

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def run_chat(config: Config, lines: list[str], user: str = "tester") -> str:
    out = io.StringIO()
    assert chat_cmd(config, user, io.StringIO("\n".join(lines) + "\n"), out) == 0
    return out.getvalue()


def test_chat_takes_the_whole_diagnosis(r, redis_url: str) -> None:
    config = Config(redis_url=redis_url)
    out = run_chat(config, ["1", *"AAAAAAABBC"])  # 1) = the start button
    assert "Q10/10" in out
    assert "B評価" in out and "Aの数：7/10" in out
    assert "Q10 " in out  # the C at Q10 is the one point to fix


def test_chat_resumes_where_the_user_left_off(r, redis_url: str) -> None:
    config = Config(redis_url=redis_url)
    run_chat(config, ["診断", "A", "B"], user="returner")
    out = run_chat(config, ["C"], user="returner")
    assert "Q3/10" in out and "Q4/10" in out


def test_chat_in_english(r, redis_url: str) -> None:
    out = run_chat(Config(redis_url=redis_url, locale="en"), ["start", *"DDDDDDDDDD"])
    assert "Grade C" in out and "Q1 " in out


def _wait_http(url: str, proc: subprocess.Popen, timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as res:
                return res.status
        except urllib.error.HTTPError as e:
            return e.code
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{url} never answered (exit code {proc.poll()})") from None
            time.sleep(0.05)  # polling a starting server, bounded by the deadline


def test_chat_subprocess_uses_the_embedded_redis_and_persists(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"} | {"CRMBOT_DATA_DIR": str(tmp_path)}
    try:
        first = subprocess.run([BIN / "crmbot", "chat"], input="診断\nA\n", env=env, capture_output=True, text=True,
                               timeout=60)
        assert first.returncode == 0, first.stderr
        assert "Q2/10" in first.stdout
        assert len(embedded_pids(tmp_path)) == 1  # chat leaves the server for the next process
        stop_embedded(tmp_path)  # a fresh server must find the answers in the append-only file
        assert (tmp_path / "appendonly.aof").stat().st_size > 0
        second = subprocess.run([BIN / "crmbot", "chat"], input="B\n", env=env, capture_output=True, text=True,
                                timeout=60)
        assert "Q3/10" in second.stdout, second.stdout
    finally:
        stop_embedded(tmp_path)


def _procfile(kind: str) -> str:
    line = next(x for x in (ROOT / "Procfile").read_text().splitlines() if x.startswith(f"{kind}:"))
    return line.split(":", 1)[1].strip()


def test_procfile_web_answers_and_only_the_worker_sends(redis_url: str, r, tmp_path: Path) -> None:
    """The Procfile's web: alone answers webhooks and sends nothing; its worker: delivers each reply once."""
    port = free_port()
    procs: list[subprocess.Popen[bytes]] = []
    with FakeLineApi(access_token=TOKEN) as fake:
        env = os.environ | {
            "PORT": str(port),
            "REDIS_URL": redis_url,
            "LINE_CHANNEL_SECRET": SECRET,
            "LINE_CHANNEL_ACCESS_TOKEN": TOKEN,
            "LINE_API_HOST": fake.base_url,
            "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        }

        def start(kind: str) -> subprocess.Popen[bytes]:
            proc = subprocess.Popen(["bash", "-c", "exec " + _procfile(kind)], env=env, cwd=tmp_path,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
            track_process(proc, f"the Procfile's {kind} process", group=True)
            procs.append(proc)
            return proc

        output = ""
        try:
            web = start("web")
            assert _wait_http(f"http://127.0.0.1:{port}/healthz", web) == 200
            users = ["U" + c * 32 for c in "abc"]
            for i, user in enumerate(users):
                ev = {"type": "follow", "mode": "active", "timestamp": int(time.time() * 1000),
                      "source": {"type": "user", "userId": user}, "webhookEventId": f"01PROCFILETEST{i}",
                      "deliveryContext": {"isRedelivery": False}, "replyToken": fake.issue_reply_token(user),
                      "follow": {"isUnblocked": False}}
                body = json.dumps({"destination": "U" + "d" * 32, "events": [ev]}).encode()
                req = urllib.request.Request(f"http://127.0.0.1:{port}/line/webhook", data=body, method="POST",
                                             headers={"X-Line-Signature": sign(body),
                                                      "Content-Type": "application/json"})
                with urllib.request.urlopen(req, timeout=10) as res:
                    assert res.status == 200
            # committed and answered; nothing went to LINE: the jobs wait in their mailboxes
            assert len(list(r.scan_iter(match="crmbot:{u:line:*}:out"))) == 3
            assert fake.recorded() == []
            start("worker")
            for user in users:
                fake.wait_delivered(user, 1, timeout=90.0)  # a worker's start-up (imports) is slow on a loaded machine
            fake.wait_for(lambda f: not list(r.scan_iter(match="crmbot:{u:line:*}:out")))  # all recorded
            assert all(len(fake.delivered(u)) == 1 for u in users)
            # three replies, then each follower's profile (the fake has none: 404, kept without a name)
            assert sorted((x.method, x.status) for x in fake.recorded()) == [("GET", 404)] * 3 + [("POST", 200)] * 3
            fake.assert_contract_ok()
        finally:
            for proc in procs:
                os.killpg(proc.pid, signal.SIGTERM)
            for proc in procs:
                output += proc.communicate(timeout=30)[0].decode()
    assert all(proc.returncode == 0 for proc in procs), output
    assert SECRET not in output and TOKEN not in output and not any(u in output for u in users)


def test_procfile_console_serves_the_console_niced_on_its_own_port(redis_url: str, tmp_path: Path) -> None:
    """The Procfile's console: line listens on $CONSOLE_PORT, answers the probe and the funnel API (Bearer
    token), runs at the lower CPU priority (nice 19), and stops cleanly on SIGTERM."""
    port = free_port()
    token = "console-test-token-0123456789"
    env = os.environ | {"CONSOLE_PORT": str(port), "REDIS_URL": redis_url, "CRMBOT_CONSOLE_TOKEN": token,
                        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PORT", None)
    proc = subprocess.Popen(["bash", "-c", "exec " + _procfile("console")], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    track_process(proc, "the Procfile's console process", group=True)
    try:
        assert _wait_http(f"http://127.0.0.1:{port}/healthz", proc, timeout=60) == 200
        req = urllib.request.Request(f"http://127.0.0.1:{port}/console/api/funnel",
                                     headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=10) as res:
            assert res.status == 200 and "consultations" in json.loads(res.read())
        nice = int(Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[16])
        assert nice == 19
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        output = proc.communicate(timeout=30)[0].decode()
    assert proc.returncode == 0, output
    assert token not in output


def test_bad_content_file_stops_start_up_naming_file_and_field(tmp_path: Path, capsys, monkeypatch) -> None:
    src = (ROOT / "conversations/scripts/diagnosis.ja.toml").read_text(encoding="utf-8")
    (tmp_path / "diagnosis.ja.toml").write_text(src.replace('stale = "', 'stale = "{oops} '), encoding="utf-8")
    monkeypatch.setenv("CRMBOT_CONTENT_DIR", str(tmp_path))
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "diagnosis.ja.toml") in err and "texts.stale" in err and "oops" in err


@pytest.mark.parametrize(
    ("var", "value"),
    [("PORT", "eighty"), ("CRMBOT_LOCALE", "fr"), ("REDIS_URL", "localhost:6379"), ("CRMBOT_CONVERSATION_TTL", "0")],
)
def test_bad_environment_stops_start_up_naming_the_variable(var: str, value: str, capsys, monkeypatch) -> None:
    monkeypatch.setenv(var, value)
    assert main(["chat"]) == 2
    assert var in capsys.readouterr().err


def test_no_secret_is_logged_on_start_up(r, redis_url: str, caplog, monkeypatch) -> None:
    from bot.app import build_services

    monkeypatch.setenv("LINE_CHANNEL_SECRET", "s3cr3t-value")
    build_services(Config.from_env({"REDIS_URL": redis_url, "LINE_CHANNEL_SECRET": "s3cr3t-value"}))
    assert "s3cr3t-value" not in caplog.text
    assert "LINE_CHANNEL_ACCESS_TOKEN" in caplog.text  # says why LINE is off
    assert "s3cr3t" not in repr(Config.from_env({"LINE_CHANNEL_SECRET": "s3cr3t-value"}))


def test_serve_runs_on_the_embedded_redis_with_no_setup(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_URL", "LINE_"))}
    env |= {"CRMBOT_DATA_DIR": str(tmp_path), "PORT": str(port)}
    proc = subprocess.Popen([BIN / "crmbot", "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    track_process(proc, "crmbot serve", group=True)
    try:
        assert _wait_http(f"http://127.0.0.1:{port}/healthz", proc) == 200
        req = urllib.request.Request(f"http://127.0.0.1:{port}/line/webhook", data=b"{}", method="POST")
        try:
            urllib.request.urlopen(req, timeout=5)
            status = 200
        except urllib.error.HTTPError as e:
            status = e.code
        assert status == 503  # no LINE secrets: the endpoint says so, the rest runs
    finally:
        # Ctrl-C: serve returns and its embedded Redis shuts down with it (SIGTERM would leave that
        # daemonized redis-server running: it is outside the process group)
        os.killpg(proc.pid, signal.SIGINT)
        output = proc.communicate(timeout=20)[0].decode()
        stop_embedded(tmp_path)  # serve stops the server it started; this only cleans up after a failure
    assert "LINE_CHANNEL_SECRET" in output  # the log says why, once
    assert output.count("LINE disabled") == 1
