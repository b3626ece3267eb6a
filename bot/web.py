"""The web server: waitress in front of the WSGI app (``crmbot web``, and the web half of ``crmbot serve``).

Why waitress: its single event loop reads each request's headers and whole body, and writes each
buffered response, without a thread; a worker thread only ever gets a complete request. A client that
trickles its request (by accident or on purpose) costs a socket, not a thread, so slow clients cannot
starve ``/healthz`` or the webhooks. The connections a process holds are capped (``connection_limit``)
and idle ones are closed (``channel_timeout``).

Floods (:class:`ClientLimits`): ``channel_timeout`` only closes a connection that sends *nothing* for
30 s, so a client trickling a header line every few seconds keeps its connection forever, and 1,100
such connections from one client would fill ``connection_limit`` and leave ``/healthz`` and the
webhooks waiting in the listen backlog. Two limits close that door:

- **per client**: at most ``max_per_client`` (64) open connections per client address (per /64 for
  IPv6), and never more than half of ``connection_limit``, so one client alone cannot reach it. A
  client at its cap that opens another connection gets its oldest idle kept-alive connection closed to
  make room; if it has none idle, the new connection is closed at once, before a byte is read.
  Addresses in ``exempt`` (a reverse proxy, where every client shares its address) are not counted.
- **deadlines**: a request's headers must be complete ``header_timeout`` (10 s) after the connection
  was accepted (for its first request) or after the request's first byte (later ones on a kept-alive
  connection), and the whole request, body included, ``request_timeout`` (60 s: 17 KiB/s for the
  1 MiB limit) after that same start; past it the connection is closed. A kept-alive connection idle
  between requests is left to ``channel_timeout`` as before.

waitress has no setting for either, so :class:`_GuardedChannel` (waitress's ``HTTPChannel``, which
tracks its client and its request's start) replaces the listeners' ``channel_class``, and
:meth:`WebServer.run` sweeps the deadlines between two turns of the event loop (waitress's own
``maintenance`` runs at whole seconds only).

Two lanes (:class:`Lanes`): the console's requests (``/console`` and below, and ``/``, which leads
there) are served by threads of their own (``console_threads``, 4) from a queue of their own; the
webhooks, the probes and everything else by the other ``threads`` (16). Twenty people reading the
console's API at once wait for each other, never hold a webhook's thread, and a webhook never waits
behind them in a queue. A request goes to its lane when it has come in whole (waitress hands a worker
thread only complete requests), by its path.

Stopping: :meth:`WebServer.stop` may be called from any thread or from a signal handler (it only sets
a flag and writes one byte to a pipe); :meth:`WebServer.run` then stops accepting, lets the requests
in progress finish (at most ``grace`` seconds), closes every connection and returns. :func:`serve_web`
does this on SIGTERM and SIGINT when it runs in the main thread.
"""

from __future__ import annotations

import gc
import ipaddress
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer, create_server
from waitress.task import ThreadedTaskDispatcher
from waitress.trigger import trigger

from bot.config import Config

if TYPE_CHECKING:
    IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

log = logging.getLogger(__name__)

THREADS = 16
CONSOLE_THREADS = 4  # the console's own lane (see Lanes)
CONNECTION_LIMIT = 1000  # open connections per process; past it, new ones wait in the listen backlog
CHANNEL_TIMEOUT = 30  # seconds: a connection that sends nothing for this long is closed
MAX_HEADER_BYTES = 64 * 1024  # LINE's and Slack's headers are far smaller
MAX_BODY_BYTES = 1024 * 1024  # as the app's own limit (bot.app.MAX_BODY): waitress answers 413 past it
GRACE = 10.0  # seconds for requests in progress to finish after stop()
MAX_CONNECTIONS_PER_CLIENT = Config.max_connections_per_client  # open connections per client address
HEADER_TIMEOUT = Config.header_timeout  # seconds from accept (or a request's first byte) to its headers' end
REQUEST_TIMEOUT = 60.0  # seconds from that same start to the request's last body byte

WsgiApp = Callable[..., Any]


@dataclass(frozen=True)
class ClientLimits:
    """What one client may hold (see the module's docstring)."""

    max_per_client: int = MAX_CONNECTIONS_PER_CLIENT
    header_timeout: float = HEADER_TIMEOUT
    request_timeout: float = REQUEST_TIMEOUT
    exempt: tuple[str, ...] = ()  # addresses or networks (e.g. a reverse proxy's) the cap does not count

    @classmethod
    def from_config(cls, config: Config) -> ClientLimits:
        """The configured limits; a trusted proxy's address (CRMBOT_TRUST_PROXY) is exempt too: behind it
        every client shares its address, and the per-client cap is the proxy's job (README)."""
        exempt = config.connection_cap_exempt
        if config.trusted_proxy not in (None, "*") and config.trusted_proxy not in exempt:
            exempt = (*exempt, str(config.trusted_proxy))
        return cls(max_per_client=config.max_connections_per_client, header_timeout=config.header_timeout,
                   exempt=exempt)


def client_key(host: str, exempt: Iterable[IpNetwork] = ()) -> str | None:
    """The client a connection from ``host`` is counted against: its address, or its /64 for IPv6
    (one host usually holds a whole /64); None for an exempt address (or no IP address at all)."""
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])  # a link-local IPv6 address may carry %zone
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip in net for net in exempt):
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class _Guard:
    """The per-client counts and the request deadlines of one :class:`WebServer` (event-loop thread only)."""

    def __init__(self, limits: ClientLimits, connection_limit: int) -> None:
        self.limits = limits
        self.cap = max(1, min(limits.max_per_client, connection_limit // 2))
        self.exempt = [ipaddress.ip_network(x, strict=False) for x in limits.exempt]
        self.clients: dict[str, dict[_GuardedChannel, None]] = {}  # per client, in the order accepted
        self.capped: set[str] = set()  # clients told about in the log since they last were below the cap
        self.interval = min(1.0, limits.header_timeout / 4)  # how often the deadlines are checked
        self._next_sweep = 0.0

    def admit(self, channel: _GuardedChannel) -> bool:
        """Count a new connection against its client; False if it must be closed (the client is at its cap
        and has no idle connection to give up for it)."""
        key = client_key(str(channel.addr[0]), self.exempt)
        if key is None:
            return True
        mine = self.clients.setdefault(key, {})
        live = [ch for ch in mine if not (ch.will_close or ch.close_when_flushed)]
        if len(live) >= self.cap:
            idle = [ch for ch in live if ch.idle()]
            if not idle:
                if key not in self.capped:
                    self.capped.add(key)
                    log.warning("client %s holds %d connections: its new ones are closed until some of "
                                "these finish", key, len(live))
                return False
            min(idle, key=lambda ch: ch.last_activity).will_close = True  # closed at the loop's next turn
        mine[channel] = None
        channel.client = key
        return True

    def release(self, channel: _GuardedChannel) -> None:
        key, channel.client = channel.client, None
        if key is None or (mine := self.clients.get(key)) is None:
            return  # exempt, or refused (never counted), or released already
        mine.pop(channel, None)
        if len(mine) < self.cap:
            self.capped.discard(key)
        if not mine:
            del self.clients[key]

    def sweep(self, socket_map: dict[int, Any]) -> None:
        """Close the connections whose request is past its deadline (at most every ``interval`` s)."""
        now = time.monotonic()
        if now < self._next_sweep:
            return
        self._next_sweep = now + self.interval
        late = 0
        for ch in list(socket_map.values()):
            began = getattr(ch, "began", None)
            if began is None or ch.will_close or ch.close_when_flushed:
                continue
            if ch.requests:  # an earlier request on it is being served: reading the next one waits for that
                ch.began = now
                continue
            request = ch.request
            headers_in = request is not None and request.headers_finished
            if now - began > (self.limits.request_timeout if headers_in else self.limits.header_timeout):
                ch.will_close = True  # closed at the loop's next turn (writable() is then true)
                late += 1
        if late:
            log.warning("closed %d connections whose request headers took over %g s, or the whole request "
                        "over %g s", late, self.limits.header_timeout, self.limits.request_timeout)


class _GuardedChannel(HTTPChannel):
    """waitress's connection, counted against its client, with its current request's start (``began``:
    accept or first byte, monotonic; None while idle between requests)."""

    def __init__(self, server: Any, sock: Any, addr: Any, adj: Any, map: Any = None) -> None:
        self.began: float | None = time.monotonic()
        self.client: str | None = None
        self.guard: _Guard = server.crmbot_guard
        self._parsers: list[Any] = []  # the requests begun during the current read
        self.parser_class = self._parser  # waitress makes each request's parser with self.parser_class(adj)
        super().__init__(server, sock, addr, adj, map=map)
        if not self.guard.admit(self):
            self.handle_close()  # over the client's cap: closed before a byte is read

    def idle(self) -> bool:
        """Kept alive between two requests: nothing received, served or left to send."""
        return (self.began is None and not self.requests and self.request is None
                and not self.total_outbufs_len)

    def received(self, data: bytes) -> bool:
        before, self._parsers = self.request, []
        result: bool = super().received(data)
        parsers = [before, *self._parsers] if before is not None else self._parsers
        if any(p.completed and not p.empty for p in parsers):  # a request came in whole (blank lines do not count)
            self.began = None if self.request is None else time.monotonic()  # idle, or the next one's first byte
        elif self.began is None:
            self.began = time.monotonic()  # bytes after an idle spell: a request's first byte
        return result

    def _parser(self, adj: Any) -> Any:
        parser = HTTPChannel.parser_class(adj)
        self._parsers.append(parser)
        return parser

    def del_channel(self, map: Any = None) -> None:
        super().del_channel(map)
        self.guard.release(self)


def console_path(path: str) -> bool:
    """Whether a request for ``path`` is the console's (its pages, API, exports; ``/`` leads there)."""
    return path in ("/", "/console") or path.startswith("/console/")


class Lanes:
    """waitress's task dispatcher, twice: the console's requests in one lane (its own threads and queue),
    every other request (webhooks, probes) in the other. waitress hands :meth:`add_task` a connection
    whose first waiting request has come in whole; its path picks the lane."""

    def __init__(self, threads: int, console_threads: int) -> None:
        self.hooks = ThreadedTaskDispatcher()
        self.console = ThreadedTaskDispatcher()
        self.hooks.set_thread_count(threads)
        self.console.set_thread_count(console_threads)

    def lane(self, channel: Any) -> ThreadedTaskDispatcher:
        requests = getattr(channel, "requests", None)
        path = getattr(requests[0], "path", None) if requests else None
        return self.console if isinstance(path, str) and console_path(path) else self.hooks

    def add_task(self, channel: Any) -> None:
        self.lane(channel).add_task(channel)

    def busy(self) -> bool:
        for tasks in (self.hooks, self.console):
            with tasks.lock:
                if tasks.queue or tasks.active_count > 0:
                    return True
        return False

    def shutdown(self, cancel_pending: bool = True, timeout: float = 5) -> bool:
        hooks = self.hooks.shutdown(cancel_pending=cancel_pending, timeout=timeout)
        return self.console.shutdown(cancel_pending=cancel_pending, timeout=timeout) and hooks


class WebServer:
    """One waitress server; :meth:`run` blocks until :meth:`stop`."""

    def __init__(
        self,
        app: WsgiApp,
        host: str = "127.0.0.1",
        port: int = 8000,
        *,
        threads: int = THREADS,
        console_threads: int = CONSOLE_THREADS,
        connection_limit: int = CONNECTION_LIMIT,
        channel_timeout: int = CHANNEL_TIMEOUT,
        max_body: int = MAX_BODY_BYTES,
        grace: float = GRACE,
        limits: ClientLimits | None = None,
        proxy: dict[str, Any] | None = None,
    ) -> None:
        if threads < 1 or console_threads < 1:
            raise ValueError("threads and console_threads must be at least 1")
        self.threads = threads
        self.console_threads = console_threads
        self.grace = grace
        self._proxy = dict(proxy or {})  # waitress' trusted-proxy settings (see bot.cli.proxy_settings)
        self._map: dict[int, Any] = {}
        self._guard = _Guard(limits or ClientLimits(), connection_limit)
        try:
            self._lanes = Lanes(threads, console_threads)
            self._server = self._create(app, host, port, threads, connection_limit, channel_timeout, max_body)
            for listener in self._listeners():  # nothing is accepted before run(): no connection predates this
                listener.crmbot_guard = self._guard
                listener.channel_class = _GuardedChannel
        except BaseException:
            wasyncore.close_all(self._map, ignore_all=True)  # e.g. the port is taken: no pipe or socket left open
            if hasattr(self, "_lanes"):
                self._lanes.shutdown(timeout=2)
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
            _dispatcher=self._lanes,  # (waitress's parameter for its own tests: the one way to hand it a dispatcher)
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
                wasyncore.loop(timeout=self._guard.interval, use_poll=True, map=self._map, count=1)
                self._guard.sweep(self._map)
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
        if self._lanes.busy():
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
        self._lanes.shutdown(timeout=2)
        wasyncore.close_all(self._map, ignore_all=True)


def settle_heap() -> None:
    """Once the app is built, before the first request: collect, then freeze what is left (the imported
    modules, the app, the content, the SDK's models: about 200,000 objects) into the collector's permanent
    generation, so that no later collection walks it. Measured under the closed loop (benchmarks/README.md,
    "The webhook's tail"): a full collection of that heap took 290-450 ms and stopped every request thread
    (the GIL is held throughout), the webhook's p99 tail; after the freeze a collection sees only the
    objects made since. Python frees almost everything a request makes by reference counting, so the
    frozen heap is never garbage."""
    gc.collect()
    gc.freeze()


def serve_web(
    app: WsgiApp,
    host: str,
    port: int,
    *,
    threads: int = THREADS,
    console_threads: int = CONSOLE_THREADS,
    connection_limit: int = CONNECTION_LIMIT,
    channel_timeout: int = CHANNEL_TIMEOUT,
    max_body: int = MAX_BODY_BYTES,
    grace: float = GRACE,
    limits: ClientLimits | None = None,
    ready: Callable[[WebServer], None] | None = None,
    proxy: dict[str, Any] | None = None,
) -> None:
    """Serve ``app`` until stopped: SIGTERM or SIGINT (when called in the main thread), or
    ``server.stop()`` on the :class:`WebServer` handed to ``ready`` once it listens."""
    server = WebServer(app, host, port, threads=threads, console_threads=console_threads,
                       connection_limit=connection_limit,
                       channel_timeout=channel_timeout, max_body=max_body, grace=grace, limits=limits,
                       proxy=proxy)
    settle_heap()
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, lambda _signo, _frame: server.stop())
    try:
        for h, p in server.addresses:
            log.info("listening on http://%s:%d (%d threads, and %d for the console)", h, p, threads,
                     console_threads)
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
