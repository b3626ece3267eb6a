"""The web server: waitress in front of the WSGI app (``crmbot web``, and the web half of ``crmbot serve``).

Why waitress: its single event loop reads each request's headers and whole body, and writes each
buffered response, without a thread; a worker thread only ever gets a complete request. A client that
trickles its request (by accident or on purpose) costs a socket, not a thread, so slow clients cannot
starve ``/healthz`` or the webhooks. The connections a process holds are capped (``connection_limit``)
and idle ones are closed (``channel_timeout``).

Stopping: :meth:`WebServer.stop` may be called from any thread or from a signal handler (it only sets
a flag and writes one byte to a pipe); :meth:`WebServer.run` then stops accepting, lets the requests
in progress finish (at most ``grace`` seconds), closes every connection and returns. :func:`serve_web`
does this on SIGTERM and SIGINT when it runs in the main thread.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from waitress import wasyncore
from waitress.server import BaseWSGIServer, create_server
from waitress.trigger import trigger

log = logging.getLogger(__name__)

THREADS = 16
CONNECTION_LIMIT = 1000  # open connections per process; past it, new ones wait in the listen backlog
CHANNEL_TIMEOUT = 30  # seconds: a connection that sends nothing for this long is closed
MAX_HEADER_BYTES = 64 * 1024  # LINE's and Slack's headers are far smaller
MAX_BODY_BYTES = 1024 * 1024  # as the app's own limit (bot.app.MAX_BODY): waitress answers 413 past it
GRACE = 10.0  # seconds for requests in progress to finish after stop()

WsgiApp = Callable[..., Any]


class WebServer:
    """One waitress server; :meth:`run` blocks until :meth:`stop`."""

    def __init__(
        self,
        app: WsgiApp,
        host: str = "127.0.0.1",
        port: int = 8000,
        *,
        threads: int = THREADS,
        connection_limit: int = CONNECTION_LIMIT,
        channel_timeout: int = CHANNEL_TIMEOUT,
        max_body: int = MAX_BODY_BYTES,
        grace: float = GRACE,
        proxy: dict[str, Any] | None = None,
    ) -> None:
        if threads < 1:
            raise ValueError("threads must be at least 1")
        self.threads = threads
        self.grace = grace
        self._proxy = dict(proxy or {})  # waitress' trusted-proxy settings (see bot.cli.proxy_settings)
        self._map: dict[int, Any] = {}
        try:
            self._server = self._create(app, host, port, threads, connection_limit, channel_timeout, max_body)
        except BaseException:
            wasyncore.close_all(self._map, ignore_all=True)  # e.g. the port is taken: no pipe or socket left open
            raise
        self._wake = trigger(self._map)  # stop() writes a byte here to wake the loop at once
        self._stopping = threading.Event()
        self._closing = threading.Lock()
        self._closed = False

    def _create(self, app: WsgiApp, host: str, port: int, threads: int, connection_limit: int,
                channel_timeout: int, max_body: int) -> Any:
        return create_server(
            app,
            map=self._map,
            host=host,
            port=port,
            threads=threads,
            connection_limit=connection_limit,
            channel_timeout=channel_timeout,
            cleanup_interval=min(10, channel_timeout),
            max_request_header_size=MAX_HEADER_BYTES,
            max_request_body_size=max_body,
            ident="crmbot",  # the Server: header; no version
            expose_tracebacks=False,
            asyncore_use_poll=True,  # poll(), not select(): no limit of 1024 file descriptors
            clear_untrusted_proxy_headers=True,  # X-Forwarded-* from anyone but a trusted proxy never reach the app
            **self._proxy,
        )

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """The (host, port) pairs listened on (the real port when 0 was asked for)."""
        return [(str(s.effective_host), int(s.effective_port)) for s in self._listeners()]

    def run(self) -> None:
        """Serve until :meth:`stop`; then drain, close everything and return."""
        try:
            while not self._stopping.is_set():
                wasyncore.loop(timeout=1.0, use_poll=True, map=self._map, count=1)
            self._drain()
        finally:
            self._close()

    def stop(self) -> None:
        """Ask :meth:`run` to return. Safe from any thread and from a signal handler; idempotent."""
        self._stopping.set()
        # Never block here (a signal handler may interrupt _close() in this very thread): when the
        # lock is taken, the server is closing anyway.
        if self._closing.acquire(blocking=False):
            try:
                if not self._closed:
                    self._wake.pull_trigger()
            except OSError:
                pass
            finally:
                self._closing.release()

    # -- internals ----------------------------------------------------------------------------
    def _listeners(self) -> list[BaseWSGIServer]:
        return [obj for obj in list(self._map.values()) if isinstance(obj, BaseWSGIServer)]

    def _busy(self) -> bool:
        tasks = self._server.task_dispatcher
        with tasks.lock:
            if tasks.queue or tasks.active_count > 0:
                return True
        return any(getattr(ch, "requests", None) or getattr(ch, "total_outbufs_len", 0)
                   for ch in list(self._map.values()))

    def _drain(self) -> None:
        for listener in self._listeners():
            listener.accepting = False  # no new connections; the socket closes in _close()
        deadline = time.monotonic() + self.grace
        while self._busy() and time.monotonic() < deadline:
            wasyncore.loop(timeout=0.05, use_poll=True, map=self._map, count=1)

    def close(self) -> None:
        """Close at once, without draining (for a server that never ran); idempotent."""
        self._close()

    def _close(self) -> None:
        with self._closing:
            self._closed = True
            self._wake.close()
        self._server.task_dispatcher.shutdown(timeout=2)
        wasyncore.close_all(self._map, ignore_all=True)


def serve_web(
    app: WsgiApp,
    host: str,
    port: int,
    *,
    threads: int = THREADS,
    connection_limit: int = CONNECTION_LIMIT,
    channel_timeout: int = CHANNEL_TIMEOUT,
    max_body: int = MAX_BODY_BYTES,
    grace: float = GRACE,
    ready: Callable[[WebServer], None] | None = None,
    proxy: dict[str, Any] | None = None,
) -> None:
    """Serve ``app`` until stopped: SIGTERM or SIGINT (when called in the main thread), or
    ``server.stop()`` on the :class:`WebServer` handed to ``ready`` once it listens."""
    server = WebServer(app, host, port, threads=threads, connection_limit=connection_limit,
                       channel_timeout=channel_timeout, max_body=max_body, grace=grace, proxy=proxy)
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, lambda _signo, _frame: server.stop())
    try:
        for h, p in server.addresses:
            log.info("listening on http://%s:%d (%d threads)", h, p, threads)
        if ready is not None:
            try:
                ready(server)
            except BaseException:
                server.close()
                raise
        server.run()
        log.info("stopped")
    finally:
        for signo, handler in previous.items():
            signal.signal(signo, handler)
