"""A client's webhook endpoint on loopback (a threaded HTTP server): records each request, can be told to
answer 500 to the next few, and checks a request's Standard Webhooks signature with the algorithm written
out by hand (not the library the bot signs with)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A client's webhook endpoint: records each request; answers 500 to the next ``failing`` ones."""

    url: str = ""
    got: list[Received] = field(default_factory=list)
    failing: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, received: Received) -> int:
        with self.lock:
            self.got.append(received)
            if self.failing > 0:
                self.failing -= 1
                return 500
            return 204


@contextmanager
def webhook_receiver() -> Iterator[Receiver]:
    rec = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status = rec.answer(Received({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rec.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield rec
    server.shutdown()
    server.server_close()
    thread.join(10)


def verify(secret: str, got: Received) -> None:
    """The Standard Webhooks check, by hand: HMAC-SHA256 of "<id>.<timestamp>.<body>" under the base64 key
    after "whsec_", base64 after "v1,"; one of the space-separated signatures must match."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{got.headers['webhook-id']}.{got.headers['webhook-timestamp']}.".encode() + got.body
    expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert any(hmac.compare_digest(expected, s) for s in got.headers["webhook-signature"].split(" ")), got.headers
    assert got.headers["content-type"] == "application/json"


