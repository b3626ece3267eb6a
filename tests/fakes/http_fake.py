"""What the local fake APIs share: a JSON HTTP server on 127.0.0.1 in a daemon thread, its
lifecycle, polling with a deadline, and the list of contract errors seen in requests."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self


@dataclass
class Failure:
    """An answer the fake was told to give instead of serving the request."""

    status: int
    remaining: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    after_serving: bool = False  # serve the request (deliver), then answer with the failure anyway


@dataclass
class Answer:
    status: int
    body: Any  # JSON-encoded, or sent as is if bytes (give its "content-type" in headers)
    headers: dict[str, str] = field(default_factory=dict)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeHttpApi

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # the client gave up on its request (a timeout): nothing to answer
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # silence stderr logging
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        fake = self.server.fake
        with fake._lock:
            fake.in_flight += 1
            fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
        try:
            answer = fake.handle_request(self.command, self.path, headers, body)
        finally:
            with fake._lock:
                fake.in_flight -= 1
        extra = {k: v for k, v in answer.headers.items() if k.lower() != "content-type"}
        if isinstance(answer.body, bytes | bytearray):  # a binary answer (an image): its own content type
            payload = bytes(answer.body)
            content_type = next((v for k, v in answer.headers.items() if k.lower() == "content-type"),
                                "application/octet-stream")
        else:
            payload = json.dumps(answer.body).encode()
            content_type = self.server.fake.content_type
        self.send_response(answer.status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = _handle


class FakeHttpApi:
    """Base of the fakes: subclasses implement ``handle_request`` and ``summary``."""

    name = "fake API"
    content_type = "application/json"

    def __init__(self) -> None:
        self.delay: float = 0.0
        self.in_flight = 0  # requests being handled now
        self.max_in_flight = 0  # the most handled at once (reset it to measure a stretch)
        self.contract_errors: list[str] = []
        self._lock = threading.RLock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- to implement ----------------------------------------------------------------------------
    def handle_request(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Answer:
        raise NotImplementedError

    def summary(self) -> str:
        raise NotImplementedError

    def _warm_up(self) -> None:
        """Slow one-off preparation before serving (e.g. building a spec validator)."""

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> Self:
        if self._server is not None:
            return self
        self._warm_up()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name=self.name, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def root_url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"{self.name} is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- inspection ------------------------------------------------------------------------------
    def wait_for(self, predicate: Callable[[Any], bool], timeout: float = 10.0, interval: float = 0.01) -> None:
        """Poll ``predicate(self)`` until it holds, or fail with a summary at the deadline."""
        deadline = time.monotonic() + timeout
        while not predicate(self):
            if time.monotonic() >= deadline:
                raise AssertionError(f"condition not met within {timeout}s: {predicate!r}\n{self.summary()}")
            time.sleep(interval)

    def assert_contract_ok(self) -> None:
        with self._lock:
            errors = list(self.contract_errors)
        if errors:
            listing = "\n".join(f"  {e}" for e in errors)
            raise AssertionError(f"{len(errors)} {self.name} contract error(s):\n{listing}")
