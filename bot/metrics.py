"""Metrics in Prometheus's text format: one registry per process, the few calls the code makes, and how
each process serves them (README, "Observe").

**Per process.** Each process counts what it does itself in its own registry (:data:`REGISTRY`), as
Prometheus expects, and Prometheus scrapes every process: the web app on its own port (``/metrics``,
:mod:`bot.health`), a worker and the clock on ``CRMBOT_METRICS_PORT`` (:class:`MetricsServer`). A count
costs a lock and an addition in memory, never a Redis round trip: a webhook's cost stays two round trips.

**Facts of the whole system** (jobs due and parked in the outbox, the clock's last successful pass) are
not any one process's: :class:`SystemCollector` reads them from Redis when the web app is scraped, in one
pipelined round trip (24 cheap commands over the queue shards and one GET; a Cluster splits it per
node), so any web process reports them and none keeps a copy that could go stale.

**The calls** (a small interface, so ``prometheus_client`` stays in this module):
:func:`webhook` (through :func:`timed_webhooks`, a WSGI wrapper: no adapter calls it), :func:`delivery`
(the worker's outcome of a job), :func:`api_response` (every answer of LINE's or Slack's API, its HTTP
status; ``timeout`` or ``error`` when none came), :func:`committed` (the core after a step's commit: a
diagnosis started, finished, a consultation requested; a redelivered webhook is a duplicate and never
reaches it), :func:`reminder_pass` (the clock). Labels take a few fixed values each (channels, HTTP
status codes, tiers, outcomes): never a user, a team or a text.

**Access**: :func:`authorized` checks ``Authorization: Bearer <CRMBOT_METRICS_TOKEN>`` in constant time;
without a token every scrape is answered (firewall the port, or block ``/metrics`` at the proxy).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
    make_wsgi_app,
)
from prometheus_client.core import GaugeMetricFamily, Metric

from conversations import jobs
from conversations.errors import StoreUnavailable
from conversations.keys import CLOCK_LAST_PASS
from conversations.machine import Conv
from conversations.outputs import ConsultAck, Output, Result
from conversations.redis_ops import Runner, text
from scoring import tier_for

log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry(auto_describe=True)  # this process's figures (a registry of our own: no library's)
ProcessCollector(registry=REGISTRY)  # process_cpu_seconds_total, process_resident_memory_bytes, ...
PlatformCollector(registry=REGISTRY)  # python_info

WEBHOOK_REQUESTS = Counter("crmbot_webhook_requests", "Webhook requests answered, by channel and HTTP status",
                           ["channel", "status"], registry=REGISTRY)
WEBHOOK_SECONDS = Histogram("crmbot_webhook_seconds", "Time to answer a webhook (verify, commit, respond)",
                            ["channel"], registry=REGISTRY)
DELIVERIES = Counter("crmbot_deliveries", "Delivery attempts by outcome (delivered, retry, parked), by channel",
                     ["channel", "outcome"], registry=REGISTRY)
API_RESPONSES = Counter("crmbot_api_responses", "Answers of the LINE and Slack APIs, by HTTP status (timeout or "
                        "error: none came)", ["api", "status"], registry=REGISTRY)
DIAGNOSES_STARTED = Counter("crmbot_diagnoses_started", "Diagnoses begun (the try-it page's tests left out)",
                            registry=REGISTRY)
DIAGNOSES_FINISHED = Counter("crmbot_diagnoses_finished", "Diagnoses finished, by tier (the try-it page's left "
                             "out)", ["tier"], registry=REGISTRY)
CONSULTATIONS = Counter("crmbot_consultations_requested", "Consultations requested (the first request about a "
                        "diagnosis; the try-it page's left out)", registry=REGISTRY)
REMINDER_PASSES = Counter("crmbot_reminder_passes", "The clock's passes by outcome (done, busy: another clock had "
                          "the lock, stopped, lost, failed)", ["outcome"], registry=REGISTRY)

# Which requests are webhooks (path -> channel); the rest (pages, /healthz ...) are not counted.
WEBHOOK_PATHS = {"/line/webhook": "line", "/slack/events": "slack", "/console/try/send": "web"}
TEST_TRANSPORTS = frozenset({"web", "cli"})  # their users are tests (as conversations.analytics counts them)
DELIVERY_OUTCOMES = {"delivered": "delivered", "retry": "retry", "failed": "parked"}  # bot.worker's -> ours

WsgiApp = Callable[..., Any]


# ---- the calls --------------------------------------------------------------------------------------


def webhook(channel: str, status: int | str, seconds: float) -> None:
    WEBHOOK_REQUESTS.labels(channel, str(status)).inc()
    WEBHOOK_SECONDS.labels(channel).observe(seconds)


def delivery(channel: str, outcome: str) -> None:
    """A job's attempt recorded by the worker: bot.worker's outcome (delivered, retry, failed = parked)."""
    named = DELIVERY_OUTCOMES.get(outcome)
    if named is not None:
        DELIVERIES.labels(channel, named).inc()


def api_response(api: str, status: int | str) -> None:
    """One answer of ``api`` (line, slack): its HTTP status, or ``timeout`` / ``error`` when none came."""
    API_RESPONSES.labels(api, str(status)).inc()


def committed(transport: str, before: Conv, after: Conv | None, outputs: Sequence[Output]) -> None:
    """What one committed step did that is counted: a diagnosis begun, finished (its tier), a consultation
    requested. Called once per applied event (a duplicate is never committed); tests' transports skipped."""
    if transport in TEST_TRANSPORTS:
        return
    started, tiers, consults = step_counts(before, after, outputs)
    if started:
        DIAGNOSES_STARTED.inc()
    for tier in tiers:
        DIAGNOSES_FINISHED.labels(tier).inc()
    if consults:
        CONSULTATIONS.inc(consults)


def step_counts(before: Conv, after: Conv | None, outputs: Sequence[Output]) -> tuple[bool, list[str], int]:
    """(a diagnosis began, the tiers of the diagnoses finished, first consultation requests) in one step.
    A result shown again (``again``) finishes nothing; a consultation asked again is not a new one."""
    started = after is not None and after.sid > before.sid
    tiers = [tier_for(o.answers.count("A")) for o in outputs if isinstance(o, Result) and not o.again]
    consults = sum(1 for o in outputs if isinstance(o, ConsultAck) and not o.again)
    return started, tiers, consults


def reminder_pass(outcome: str) -> None:
    REMINDER_PASSES.labels(outcome).inc()


# ---- webhooks, timed at the WSGI level ---------------------------------------------------------------


def timed_webhooks(app: WsgiApp, clock: Callable[[], float] = time.perf_counter) -> WsgiApp:
    """``app`` with every webhook request (:data:`WEBHOOK_PATHS`) counted by its status and timed until the
    response is returned (its body is a few bytes). An exception out of ``app`` counts as a 500."""

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        channel = WEBHOOK_PATHS.get(environ.get("PATH_INFO", ""))
        if channel is None:
            return app(environ, start_response)
        started = clock()
        status: list[str] = []

        def record(line: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status[:] = [line.split(" ", 1)[0]]
            return start_response(line, headers, exc_info) if exc_info is not None else start_response(line, headers)

        try:
            body = app(environ, record)
        except BaseException:
            webhook(channel, 500, clock() - started)
            raise
        webhook(channel, status[0] if status else 500, clock() - started)
        return body

    return wrapped


# ---- the facts read from Redis (the web app's scrape) -----------------------------------------------


class SystemCollector:
    """The outbox's queue and the clock's last pass, read from Redis at each scrape (one pipelined round
    trip). Redis not answering: ``crmbot_redis_up 0`` and nothing else from here."""

    def __init__(self, client: Runner, clock: Callable[[], float] = time.time) -> None:
        self.r = client
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        now = self.clock()
        try:
            with self.r.pipeline(transaction=False) as p:
                for shard in range(jobs.QUEUE_SHARDS):
                    p.zcard(jobs.due(shard))
                    p.zcount(jobs.due(shard), "-inf", repr(now))
                    p.zcard(jobs.parked(shard))
                p.get(CLOCK_LAST_PASS)
                replies = p.execute()
        except (StoreUnavailable, OSError) as e:
            log.warning("metrics: redis: %s", e)
            yield GaugeMetricFamily("crmbot_redis_up", "Whether Redis answered this scrape", value=0)
            return
        yield GaugeMetricFamily("crmbot_redis_up", "Whether Redis answered this scrape", value=1)
        counts = replies[:-1]
        yield GaugeMetricFamily("crmbot_queue_due", "Jobs and figures records waiting to be delivered or applied "
                                "(every queue shard's due set)", value=sum(int(x) for x in counts[0::3]))
        yield GaugeMetricFamily("crmbot_queue_overdue", "Of those, the ones whose time has come (waiting for a "
                                "worker now)", value=sum(int(x) for x in counts[1::3]))
        yield GaugeMetricFamily("crmbot_queue_parked", "Jobs parked after failing (crmbot outbox lists them)",
                                value=sum(int(x) for x in counts[2::3]))
        last = replies[-1]
        if last is not None:
            try:
                at = float(text(last))
            except ValueError:
                return
            yield GaugeMetricFamily("crmbot_reminder_pass_last_success_timestamp_seconds",
                                    "When the clock last finished a reminder pass (Unix time)", value=at)


class _Together:
    """Several collectors as one (what a scrape of the web app exposes)."""

    def __init__(self, *parts: Any) -> None:
        self.parts = parts

    def collect(self) -> Iterator[Metric]:
        for part in self.parts:
            yield from part.collect()


def exposition(*extra: Any) -> bytes:
    """This process's metrics and ``extra`` collectors' in Prometheus's text format."""
    return generate_latest(_Together(REGISTRY, *extra))


CONTENT_TYPE = CONTENT_TYPE_LATEST


# ---- access -------------------------------------------------------------------------------------------


def authorized(header: str | None, token: str | None) -> bool:
    """Whether a scrape may read the metrics: no token configured, or ``Authorization: Bearer <token>``
    (compared in constant time, as digests: neither the token nor its length leaks)."""
    if token is None:
        return True
    scheme, _, given = (header or "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(hashlib.sha256(given.strip().encode()).digest(),
                               hashlib.sha256(token.encode()).digest())


UNAUTHORIZED = b"unauthorized: Authorization: Bearer <CRMBOT_METRICS_TOKEN> required\n"


def metrics_app(token: str | None, registry: Any = REGISTRY) -> WsgiApp:
    """A WSGI app serving ``registry`` at ``/metrics`` (prometheus_client's), behind :func:`authorized`."""
    inner = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/metrics":
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"not found: the metrics are at /metrics\n"]
        if not authorized(environ.get("HTTP_AUTHORIZATION"), token):
            start_response("401 Unauthorized", [("Content-Type", "text/plain; charset=utf-8"),
                                                 ("WWW-Authenticate", 'Bearer realm="crmbot metrics"')])
            return [UNAUTHORIZED]
        return inner(environ, start_response)

    return app


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # no line per scrape
        pass


class MetricsServer:
    """``CRMBOT_METRICS_PORT``: this process's metrics over HTTP in a daemon thread (the worker's, the
    clock's). :meth:`close` stops it."""

    def __init__(self, host: str, port: int, token: str | None, registry: Any = REGISTRY) -> None:
        self._server = make_server(host, port, metrics_app(token, registry),
                                   server_class=_Server6 if ":" in host else _Server,
                                   handler_class=_QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="metrics", daemon=True)
        self._thread.start()
        log.info("metrics on http://%s:%d/metrics%s", host, self.port,
                 "" if token else " (no CRMBOT_METRICS_TOKEN: open to anyone who reaches the port)")

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve_if_configured(address: tuple[str, int] | None, token: str | None) -> MetricsServer | None:
    """The worker's or the clock's metrics server when ``CRMBOT_METRICS_PORT`` is set, else None."""
    if address is None:
        return None
    host, port = address
    return MetricsServer(host, port, token)
