"""`crmbot serve` makes a console password once and prints a one-time login link; `crmbot web` without
CRMBOT_CONSOLE_PASSWORD answers 503 on the console and says why once in the log. Real processes."""

from __future__ import annotations

import http.cookiejar
import os
import queue
import re
import signal
import stat
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from bot.console.auth import PASSWORD_FILE
from tests.isolation import track_process
from tests.redis_server import free_port, stop_embedded

BIN = Path(sys.executable).parent
LINK = re.compile(r"Console: (http://127\.0\.0\.1:\d+/console/login\?token=[\w-]+)")


class Output:
    """The process's output, read line by line on a thread (so the test can wait with a deadline)."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        assert proc.stdout is not None
        stream = proc.stdout

        def pump() -> None:
            for raw in stream:
                self.lines.put(raw.decode(errors="replace"))

        self.thread = threading.Thread(target=pump, daemon=True)
        self.thread.start()

    def wait_for(self, pattern: re.Pattern[str], timeout: float = 30.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            for line in self.seen:
                if found := pattern.search(line):
                    return found
            left = deadline - time.monotonic()
            assert left > 0, "not printed:\n" + "".join(self.seen)
            with suppress(queue.Empty):
                self.seen.append(self.lines.get(timeout=left))

    def rest(self) -> str:
        self.thread.join(timeout=20)
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return "".join(self.seen)


@contextmanager
def crmbot(command: str, data_dir: Path, port: int) -> Iterator[Output]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_URL", "LINE_", "CRMBOT_"))}
    env |= {"CRMBOT_DATA_DIR": str(data_dir), "PORT": str(port)}
    proc = subprocess.Popen([BIN / "crmbot", command], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    track_process(proc, f"crmbot {command}", group=True)
    out = Output(proc)
    try:
        yield out
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=20)
        out.rest()
        stop_embedded(data_dir)


def _open(opener: urllib.request.OpenerDirector, url: str) -> tuple[int, str]:
    try:
        with opener.open(url, timeout=10) as res:
            return res.status, res.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _wait_up(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            assert time.monotonic() < deadline, f"{url} never answered"
            time.sleep(0.05)  # polling a starting server, bounded by the deadline


def test_serve_prints_a_one_time_link_and_keeps_its_password(tmp_path: Path) -> None:
    port = free_port()
    with crmbot("serve", tmp_path, port) as out:
        link = out.wait_for(LINK).group(1)
        browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        status, html = _open(browser, link)
        assert status == 200 and 'id="nav-overview"' in html  # logged in, on the overview
        status, html = _open(browser, f"http://127.0.0.1:{port}/console/teams")
        assert status == 200
        stranger = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        status, _ = _open(stranger, link)
        assert status == 401  # once only
    password_file = tmp_path / PASSWORD_FILE
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    password = password_file.read_text().strip()
    assert str(password_file) in out.rest() and password not in out.rest()
    with crmbot("serve", tmp_path, free_port()) as again:
        again.wait_for(LINK)
    assert password_file.read_text().strip() == password  # made once, kept


def test_web_without_a_password_answers_503_and_says_why_once(tmp_path: Path) -> None:
    port = free_port()
    with crmbot("web", tmp_path, port) as out:
        _wait_up(f"http://127.0.0.1:{port}/healthz")
        opener = urllib.request.build_opener()
        for path in ("/console/", "/console/login", "/console/teams"):
            status, body = _open(opener, f"http://127.0.0.1:{port}{path}")
            assert status == 503 and "CRMBOT_CONSOLE_PASSWORD" in body, path
    log = out.rest()
    assert log.count("console disabled: CRMBOT_CONSOLE_PASSWORD not set") == 1, log
    assert "Console: http" not in log
    assert not (tmp_path / PASSWORD_FILE).exists()
