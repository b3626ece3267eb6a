"""A small reverse proxy on loopback, standing in for the TLS proxy in front of ``crmbot web``.

It listens on 127.0.0.1 (plain HTTP: the TLS it stands for ends here) and passes each request to the
upstream port with what a real proxy adds (nginx's ``proxy_add_x_forwarded_for`` and
``X-Forwarded-Proto $scheme``): the client's address appended to ``X-Forwarded-For`` (so a value the
client sent itself stays in front, as in real life) and ``X-Forwarded-Proto: https``. The ``Host``
header passes unchanged. It connects upstream from 127.0.0.1, so that is the address the app's server
sees as its peer. Clients can bind 127.0.0.2, 127.0.0.3 ... (all loopback on Linux) to be different
clients.
"""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
              "transfer-encoding", "upgrade", "content-length"}


class ReverseProxy:
    def __init__(self, upstream_port: int, *, proto: str = "https") -> None:
        self.upstream_port = upstream_port
        self.proto = proto
        self.seen_forwarded_for: list[str] = []  # what it sent upstream, for the test's own checks
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # one request per connection: simple, and what it stands for

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP
                           and k.lower() not in ("x-forwarded-for", "x-forwarded-proto")}
                earlier = self.headers.get("X-Forwarded-For")
                forwarded = f"{earlier}, {self.client_address[0]}" if earlier else self.client_address[0]
                headers["X-Forwarded-For"] = forwarded
                headers["X-Forwarded-Proto"] = proxy.proto
                if body is not None:
                    headers["Content-Length"] = str(len(body))
                proxy.seen_forwarded_for.append(forwarded)
                upstream = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=30,
                                                      source_address=("127.0.0.1", 0))
                try:
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    res = upstream.getresponse()
                    data = res.read()
                    self.send_response_only(res.status, res.reason)
                    for name, value in res.getheaders():
                        if name.lower() not in HOP_BY_HOP:
                            self.send_header(name, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(data)
                finally:
                    upstream.close()

            do_GET = do_POST = do_HEAD = _forward

            def log_message(self, format: str, *args: object) -> None:
                pass  # quiet: the test reads the answers

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="reverse-proxy", daemon=True)

    def __enter__(self) -> ReverseProxy:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
