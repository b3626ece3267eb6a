"""Error reports (SENTRY_DSN): the real sentry-sdk sends to a fake Sentry on loopback; what arrives holds the
error, its traceback and the breadcrumbs before it, and no LINE user ID, no message text, no request body,
no ``extra``. Without SENTRY_DSN the SDK is never imported. Each in a process of its own (the SDK's set-up
is process-wide)."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from bot.logs import uid

LINE_USER = "U" + "0123456789abcdef" * 2
SECRET_TEXT = "secret words 秘密の相談内容"

REPORTING = f"""
import logging, sys
import sentry_sdk
from bot.cli import _observe
from bot.config import Config
from bot.logs import setup

setup("INFO")  # as the command does first
_observe(Config(sentry_dsn=sys.argv[1]), "INFO")
log = logging.getLogger("bot.line.webhook")
log.info("answered %s", {LINE_USER!r})
logging.getLogger("slack_bolt.App").warning("Invalid request signature detected (body: text={SECRET_TEXT})")
try:
    raise ValueError("could not send to {LINE_USER}: body: {SECRET_TEXT}")
except ValueError:
    log.exception("line webhook: failed for %s", {LINE_USER!r}, extra={{"text": {SECRET_TEXT!r}}})
assert sentry_sdk.flush(10) is None
"""


class _Ingest(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        encoding = (self.headers.get("Content-Encoding") or "").lower()
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
        elif encoding == "br":
            import brotli  # type: ignore[import-not-found]  # only if the SDK found it installed

            body = brotli.decompress(body)
        self.server.received.append((self.path, body))  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")


@pytest.fixture
def sentry() -> Iterator[tuple[str, list[tuple[str, bytes]]]]:
    """A fake Sentry ingest on loopback: (its DSN, the envelopes received)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ingest)
    server.received = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://publickey@127.0.0.1:{server.server_address[1]}/42", server.received  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def events(envelopes: list[tuple[str, bytes]]) -> list[dict[str, Any]]:
    """The events in Sentry envelopes: a header line, then each item's header line and its payload."""
    found = []
    for _path, body in envelopes:
        lines = body.split(b"\n")
        for i, line in enumerate(lines[1:-1], start=1):
            try:
                header = json.loads(line)
            except ValueError:
                continue
            if isinstance(header, dict) and header.get("type") == "event":
                found.append(json.loads(lines[i + 1]))
    return found


def run(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTRY_")}
    return subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=60)


def test_an_error_reaches_sentry_without_user_ids_texts_or_bodies(sentry: tuple[str, list[Any]]) -> None:
    dsn, received = sentry
    done = run(REPORTING, dsn)
    assert done.returncode == 0, done.stderr
    assert all(path == "/api/42/envelope/" for path, _ in received)
    everything = b"".join(body for _, body in received).decode()
    assert LINE_USER not in everything and "secret words" not in everything and "秘密" not in everything
    (event,) = events(received)
    assert event["level"] == "error" and event["logger"] == "bot.line.webhook"
    assert event["logentry"] == {"message": f"line webhook: failed for {uid(LINE_USER)}"}
    (exc,) = event["exception"]["values"]
    assert exc["type"] == "ValueError" and exc["value"] == f"could not send to {uid(LINE_USER)}: body: [not logged]"
    assert exc["stacktrace"]["frames"] and not any("vars" in f for f in exc["stacktrace"]["frames"])
    crumbs = [c.get("message") for c in event["breadcrumbs"]["values"]]
    assert f"answered {uid(LINE_USER)}" in crumbs
    assert "Invalid request signature detected (body: [not logged]" in crumbs
    assert not {"request", "user", "extra"} & set(event)


def test_without_sentry_dsn_the_sdk_is_not_even_imported() -> None:
    done = run("import sys\nfrom bot.cli import _observe\nfrom bot.config import Config\nimport bot.app, bot.worker, "
               "bot.clock, bot.web\n_observe(Config(), 'INFO')\nprint('sentry_sdk' in sys.modules)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
