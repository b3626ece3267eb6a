"""Real-browser tests: the app as a real ``crmbot serve`` process, driven by headless Chromium.

Chromium and its driver come from Debian (packages ``chromium`` and ``chromium-driver``;
``./scripts/test`` installs them when it runs as root). Selenium gets both paths explicitly, so its
Selenium Manager never runs and nothing is downloaded. Where either is missing, every test here
skips and says why.

The server talks to the suite's own Redis (a database of its own, so the in-process worker of
``crmbot serve`` never sees another test's jobs) and to the fake LINE API. Everything started here
is tracked (tests/isolation.py) and stopped at the end of the module; the browser's profile and temp
files live in a tracked temp dir that is removed.

``SCREENSHOTS_DIR=docs ./scripts/test tests/browser`` also writes the README's screenshots there.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.bot.line.helpers import SECRET, TOKEN
from tests.fakes.line_api import FakeLineApi
from tests.isolation import mkdtemp, track_process
from tests.redis_server import free_port

BIN = Path(sys.executable).parent
DB = 9  # the suite's Redis, a database no other test uses
CONSOLE_PASSWORD = "browser-test-password"
WAIT = 30.0  # seconds a step may take on a busy machine before the test fails


def chromium_paths() -> tuple[str, str] | str:
    """(chromium, chromedriver), or why the browser tests cannot run here."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        missing = " and ".join(x for x, found in (("chromium", browser), ("chromium-driver", driver)) if not found)
        return (f"headless Chromium not available: Debian's {missing} package is not installed "
                "(./scripts/test installs it with apt-get when run as root)")
    return browser, driver


@pytest.fixture(scope="session")
def chromium() -> tuple[str, str]:
    found = chromium_paths()
    if isinstance(found, str):
        pytest.skip(found)
    return found


@dataclass
class Server:
    base: str
    proc: subprocess.Popen[bytes]
    redis: redis.Redis
    fake_line: FakeLineApi

    def url(self, path: str) -> str:
        return self.base + path


@dataclass(frozen=True)
class Answer:
    status_code: int
    body: bytes

    def get_data(self, as_text: bool = False) -> Any:
        return self.body.decode(errors="replace") if as_text else self.body


class Http:
    """What tests.bot.line.helpers.LineUser needs of a client, over real HTTP to the server."""

    def __init__(self, base: str) -> None:
        self.base = base

    def post(self, path: str, data: bytes, headers: dict[str, str]) -> Answer:
        req = urllib.request.Request(self.base + path, data=data, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=WAIT) as res:
                return Answer(res.status, res.read())
        except urllib.error.HTTPError as e:
            return Answer(e.code, e.read())


def eventually(condition: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    """Poll ``condition()`` until it is truthy, within a deadline."""
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)  # polling the server's worker, bounded by the deadline
    return found


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{url} never answered (exit code {proc.poll()})") from None
            time.sleep(0.05)  # polling a starting server, bounded by the deadline


@pytest.fixture(scope="module")
def server_env() -> dict[str, str]:
    """More environment for the module's ``crmbot serve`` (a module overrides it, e.g. ``CRMBOT_LOCALE``)."""
    return {}


@pytest.fixture(scope="module")
def server(chromium: tuple[str, str], redis_url: str, server_env: dict[str, str]) -> Iterator[Server]:
    """``crmbot serve`` (web app + worker in one process), as ./scripts/run starts it."""
    url = redis_url.rsplit("/", 1)[0] + f"/{DB}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    port = free_port()
    data_dir = mkdtemp("crmbot-browser-data-")
    with FakeLineApi(access_token=TOKEN) as fake:
        env = os.environ | {
            "REDIS_URL": url,
            "PORT": str(port),
            "CRMBOT_DATA_DIR": data_dir,
            "CRMBOT_CONSOLE_PASSWORD": CONSOLE_PASSWORD,
            "LINE_CHANNEL_SECRET": SECRET,
            "LINE_CHANNEL_ACCESS_TOKEN": TOKEN,
            "LINE_API_HOST": fake.base_url,
        } | server_env
        proc = subprocess.Popen([str(BIN / "crmbot"), "serve"], env=env, cwd=data_dir, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)
        track_process(proc, "crmbot serve (browser tests)", group=True)
        output = ""
        try:
            _wait_http(f"http://127.0.0.1:{port}/healthz", proc)
            yield Server(f"http://127.0.0.1:{port}", proc, client, fake)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            output = proc.communicate(timeout=60)[0].decode(errors="replace")
            client.flushdb()
            client.close()
            shutil.rmtree(data_dir, ignore_errors=True)
    assert proc.returncode == 0, output[-4000:]
    assert CONSOLE_PASSWORD not in output and SECRET not in output and TOKEN not in output


@pytest.fixture(scope="module")
def browser(chromium: tuple[str, str]) -> Iterator[Any]:
    """One headless Chromium for the module (each test starts with no cookies)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = chromium
    home = mkdtemp("crmbot-chromium-")
    tmp = Path(home)  # its TMPDIR too: Chromium's socket there needs a short path (at most 107 bytes)
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--metrics-recording-only", "--hide-scrollbars", "--lang=ja-JP",
                f"--user-data-dir={Path(home) / 'profile'}", "--window-size=420,860"):
        options.add_argument(arg)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SE_")} | {"TMPDIR": str(tmp), "HOME": home}
    service = Service(executable_path=driver_path, env=env, popen_kw={"start_new_session": True})
    driver = webdriver.Chrome(service=service, options=options)
    assert service.process is not None
    track_process(service.process, "chromedriver and its Chromium", group=True)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def page(browser: Any, server: Server) -> Iterator[Any]:
    # The console's cookie is scoped to /console: clear cookies from a page there (a style sheet).
    browser.get(server.url("/console/try/static/try.css"))
    browser.delete_all_cookies()
    assert browser.get_cookies() == []
    browser.execute_cdp_cmd("Network.clearBrowserCache", {})  # charts are cached a minute: each test draws anew
    yield browser


def log_in(browser: Any, server: Server, password: str = CONSOLE_PASSWORD) -> None:
    """Through the console's login form, as a person does."""
    from selenium.webdriver.common.by import By

    browser.get(server.url("/console/login"))
    box = until(browser, lambda b: b.find_elements(By.ID, "password"), "the login form")[0]
    box.send_keys(password)
    browser.find_element(By.ID, "login-submit").click()


@pytest.fixture
def console(page: Any, server: Server) -> Any:
    """The browser, logged in to the console."""
    log_in(page, server)
    until(page, lambda b: b.current_url.rstrip("/").endswith("/console"), "the overview after the login")
    return page


def until(browser: Any, condition: Callable[[Any], Any], what: str, timeout: float = WAIT) -> Any:
    """Poll ``condition(browser)`` until it returns something truthy (WebDriverWait: a deadline, no sleep)."""
    from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(browser, timeout, poll_frequency=0.1,
                             ignored_exceptions=(StaleElementReferenceException,)).until(condition)
    except TimeoutException:
        raise AssertionError(f"timed out waiting for {what} at {browser.current_url}") from None


def screenshot(browser: Any, name: str, tmp_path: Path) -> Path:
    """A PNG of the page, in tmp_path; also in $SCREENSHOTS_DIR when set (the README's pictures)."""
    path = tmp_path / name
    assert browser.save_screenshot(str(path))
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    target = os.environ.get("SCREENSHOTS_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, Path(target) / name)
    return path


def resources(browser: Any) -> list[str]:
    """Every URL the page loaded (scripts, styles, images, fetches)."""
    return json.loads(browser.execute_script(
        "return JSON.stringify(performance.getEntriesByType('resource').map(function (e) { return e.name; }))"))
