"""A local fake of another LINE tool's webhook endpoint (Lステップ, エルメ ...), for crmbot's forwards.

It accepts a webhook only as LINE would send it: ``POST`` with ``Content-Type: application/json;
charset=utf-8`` and an ``X-Line-Signature`` that verifies against the channel secret (checked here on its
own, not with crmbot's code); anything else is a contract error (and answered 400, as such a tool would).
It records every arrival and every body it accepted (200), can be told to fail (a status, a number of
times, a Retry-After) and to stall (hold requests until released), on 127.0.0.1.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
from dataclasses import dataclass

from tests.fakes.http_fake import Answer, Failure, FakeHttpApi

PATH = "/line/webhook"
CONTENT_TYPE = "application/json; charset=utf-8"
STALL_MAX = 30.0  # seconds a stalled request is held at most


@dataclass(frozen=True)
class Received:
    body: bytes
    headers: dict[str, str]
    status: int  # what the receiver answered


class LineWebhookReceiver(FakeHttpApi):
    name = "LINE webhook receiver"

    def __init__(self, channel_secret: str) -> None:
        super().__init__()
        self.channel_secret = channel_secret
        self._clear()

    def _clear(self) -> None:
        for gate in getattr(self, "_gates", []):
            gate.set()
        self._gates: list[threading.Event] = []
        self._failures: list[Failure] = []
        self._arrivals: list[Received] = []
        self.contract_errors.clear()

    def reset(self) -> None:
        with self._lock:
            self._clear()

    @property
    def url(self) -> str:
        return self.root_url + PATH

    # -- test controls ---------------------------------------------------------------------------
    def fail(self, status: int, times: int = 1, headers: dict[str, str] | None = None) -> None:
        """Answer the next ``times`` valid webhooks with ``status`` (nothing accepted)."""
        with self._lock:
            self._failures.append(Failure(status, times, {"message": "fake failure"}, headers or {}))

    def stall(self) -> threading.Event:
        """Hold every request until the returned event is set (at most STALL_MAX seconds, or until reset)."""
        gate = threading.Event()
        with self._lock:
            self._gates.append(gate)
        return gate

    # -- inspection ------------------------------------------------------------------------------
    def arrivals(self) -> list[Received]:
        with self._lock:
            return list(self._arrivals)

    def accepted(self) -> list[bytes]:
        """The bodies answered 200, in the order they arrived."""
        with self._lock:
            return [a.body for a in self._arrivals if a.status == 200]

    def summary(self) -> str:
        with self._lock:
            lines = [f"arrivals ({len(self._arrivals)}):",
                     *(f"  {len(a.body)} bytes -> {a.status}" for a in self._arrivals)]
            lines += ["contract errors:", *(f"  {e}" for e in self.contract_errors)] if self.contract_errors else []
        return "\n".join(lines)

    # -- request handling (server threads) ---------------------------------------------------------
    def _problems(self, method: str, path: str, headers: dict[str, str], body: bytes) -> list[str]:
        problems = []
        if method != "POST" or path != PATH:
            problems.append(f"{method} {path}: the webhook is POST {PATH}")
        if headers.get("content-type") != CONTENT_TYPE:
            problems.append(f"Content-Type {headers.get('content-type')!r}, not {CONTENT_TYPE!r}")
        expected = base64.b64encode(hmac.new(self.channel_secret.encode(), body, hashlib.sha256).digest())
        if not hmac.compare_digest(expected, headers.get("x-line-signature", "").encode()):
            problems.append("X-Line-Signature does not verify against the channel secret")
        return problems

    def handle_request(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Answer:
        with self._lock:
            gates = list(self._gates)
        for gate in gates:
            gate.wait(STALL_MAX)
        problems = self._problems(method, target.partition("?")[0], headers, body)
        with self._lock:
            if problems:
                self.contract_errors.extend(problems)
                answer = Answer(400, {"message": "; ".join(problems)})
            elif self._failures:
                failure = self._failures[0]
                failure.remaining -= 1
                if failure.remaining <= 0:
                    self._failures.pop(0)
                answer = Answer(failure.status, failure.body, dict(failure.headers))
            else:
                answer = Answer(200, {})
            self._arrivals.append(Received(body, dict(headers), answer.status))
        return answer
