"""The client-side token bucket (bot.ratelimit) and its use in the transports, on an injected clock.

Nothing here sleeps: the bucket's sleep is a fake that records the wait and moves the clock.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from bot.ratelimit import KeyedBuckets, TokenBucket, burst_from_env, rate_from_env
from conversations.errors import ConfigError


class Time:
    """An injected clock whose sleep advances it (and records each wait)."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds


def bucket(rate: float, burst: float = 1.0) -> tuple[TokenBucket, Time]:
    t = Time()
    return TokenBucket(rate, burst, clock=t, sleep=t.sleep), t


def test_a_full_bucket_lets_its_burst_through_without_waiting() -> None:
    b, t = bucket(rate=2, burst=3)
    assert [b.acquire() for _ in range(3)] == [0, 0, 0]
    assert t.slept == []


def test_past_the_burst_requests_are_spaced_at_the_rate() -> None:
    b, t = bucket(rate=4, burst=2)
    for _ in range(6):
        b.acquire()
    assert t.slept == pytest.approx([0.25] * 4)
    assert t.t == pytest.approx(1001.0)


def test_tokens_come_back_with_time_up_to_the_burst() -> None:
    b, t = bucket(rate=10, burst=5)
    for _ in range(5):
        b.acquire()
    t.t += 0.3
    assert b.available == pytest.approx(3)
    t.t += 60
    assert b.available == pytest.approx(5)  # never more than the burst


def test_reservations_queue_up_in_order() -> None:
    b, _ = bucket(rate=2, burst=1)
    assert b.reserve() == 0
    # three callers at the same instant: each waits for the ones before it
    assert [b.reserve() for _ in range(3)] == pytest.approx([0.5, 1.0, 1.5])


def test_try_acquire_never_waits_nor_goes_into_debt() -> None:
    b, t = bucket(rate=1, burst=2)
    assert b.try_acquire() and b.try_acquire()
    assert not b.try_acquire()
    assert b.available == pytest.approx(0)
    t.t += 1
    assert b.try_acquire()
    assert t.slept == []


def test_hold_keeps_every_token_back_until_retry_after() -> None:
    b, t = bucket(rate=100, burst=10)
    b.hold(2.0)
    assert b.acquire() == pytest.approx(2.0)
    assert b.acquire() == pytest.approx(0.01)  # then at the rate again
    b.hold(0)  # no-op
    b.hold(-1)
    t.t += 100
    assert b.acquire() == 0


def test_hold_never_shortens_a_longer_debt() -> None:
    b, _ = bucket(rate=1, burst=1)
    for _ in range(5):
        b.reserve()  # four seconds of debt
    b.hold(1.0)
    assert b.reserve() == pytest.approx(5.0)


def test_a_clock_going_backwards_adds_no_tokens() -> None:
    b, t = bucket(rate=1, burst=1)
    b.acquire()
    t.t -= 10
    assert not b.try_acquire()


def test_threads_together_never_exceed_the_rate() -> None:
    t = Time()
    lock = threading.Lock()

    def sleep(seconds: float) -> None:  # record only: threads wake in any order
        with lock:
            t.slept.append(seconds)

    b = TokenBucket(50, 5, clock=t, sleep=sleep)
    threads = [threading.Thread(target=lambda: [b.acquire() for _ in range(20)]) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    # 160 requests at one instant: 5 pass at once, the rest are spread 1/50 s apart, each slot once
    assert len(t.slept) == 155
    assert sorted(t.slept) == pytest.approx([(i + 1) / 50 for i in range(155)])


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (1, 0.5)])
def test_bad_arguments_are_refused(rate: float, burst: float) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate, burst)


def test_keyed_buckets_are_independent_and_idle_ones_are_dropped() -> None:
    t = Time()
    k = KeyedBuckets(1, 1, clock=t, sleep=t.sleep, max_keys=2)
    assert k.acquire("C1") == 0 and k.acquire("C2") == 0
    assert k.acquire("C1") == pytest.approx(1.0)  # C1 again: a second later
    assert len(k) == 2
    t.t += 10  # both idle again
    k.acquire("C3")
    assert len(k) == 1  # C1 and C2 were full, so they went
    k.hold("C3", 5)
    assert k.acquire("C3") == pytest.approx(5.0)


def test_rates_and_bursts_from_the_environment() -> None:
    assert rate_from_env("X_RATE", 200, {}) == 200
    assert rate_from_env("X_RATE", 200, {"X_RATE": " 12.5 "}) == 12.5
    assert rate_from_env("X_RATE", 200, {"X_RATE": "0"}) is None
    assert rate_from_env("X_RATE", 200, {"X_RATE": "off"}) is None
    assert burst_from_env("X_BURST", 20, {}) == 20
    assert burst_from_env("X_BURST", 20, {"X_BURST": "3"}) == 3
    for bad in ("fast", "-1", "inf", "nan"):
        with pytest.raises(ConfigError, match="X_RATE"):
            rate_from_env("X_RATE", 200, {"X_RATE": bad})
    for bad in ("0.5", "many", "inf"):
        with pytest.raises(ConfigError, match="X_BURST"):
            burst_from_env("X_BURST", 20, {"X_BURST": bad})


# ---- in the transports --------------------------------------------------------------------------


class Refused(Exception):
    pass


def test_slack_channel_posts_are_paced_per_channel_and_workspace_and_dms_are_not() -> None:
    from slack_sdk.errors import SlackApiError

    from bot.slack.transport import SlackLimits, SlackTransport

    t = Time()
    limits = SlackLimits.from_env({"SLACK_RATE_PER_SECOND": "2", "SLACK_RATE_BURST": "1"}, clock=t, sleep=t.sleep)
    posted: list[tuple[float, str]] = []

    class Client:
        refuse = 0
        retry_after = "3"

        def conversations_open(self, users: str) -> dict[str, Any]:
            return {"channel": {"id": "D" + users}}

        def chat_postMessage(self, channel: str, **_: Any) -> None:
            if self.refuse:
                self.refuse -= 1
                response = type("R", (), {"status_code": 429, "headers": {"Retry-After": self.retry_after},
                                          "get": lambda self, k, d=None: "ratelimited" if k == "error" else d})()
                raise SlackApiError("ratelimited", response)
            posted.append((t.t, channel))

    client = Client()
    transport = SlackTransport(client, None, limits=limits)  # type: ignore[arg-type]
    post = [{"type": "slack_post", "text": "x", "blocks": []}]

    def send(to: str) -> Any:
        return transport.deliver({"id": "m", "to": to, "out": post}, recovering=False, now=t.t)

    for channel in ("C1", "C2", "C3", "C1"):
        assert send(f"T1.{channel}").kind == "delivered"
    # the workspace allows 2/s: one post every half second (a channel may burst up to 5)
    assert [round(ts - 1000, 2) for ts, _ in posted] == [0, 0.5, 1.0, 1.5]
    for _ in range(3):
        send("T1.U42")  # DMs: not paced
    assert [round(ts - 1000, 2) for ts, _ in posted[4:]] == [1.5, 1.5, 1.5]
    client.refuse = 1  # refused with Retry-After 3: held, then posted once more in the same call
    outcome = send("T1.C4")
    assert outcome.kind == "delivered"
    assert posted[-1] == (pytest.approx(1000 + 2.0 + 3.0), "C4")
    send("T1.C5")  # and the posts after it wait out the hold too
    assert posted[-1] == (pytest.approx(1005.5), "C5")
    client.refuse, client.retry_after = 1, "60"  # an outage, not pacing: left to the outbox's backoff
    outcome = send("T1.C6")
    assert (outcome.kind, outcome.retry_after) == ("retry", 60.0)
    send("T1.C7")  # nobody is held: the next post goes at the workspace's pace
    assert posted[-1] == (pytest.approx(1006.5), "C7")
    client.refuse, client.retry_after = 2, "1"  # refused again after the hold: back to the outbox
    assert send("T1.C8").kind == "retry"


def test_line_buckets_come_from_the_environment() -> None:
    from bot.line.transport import bucket_from_env

    b = bucket_from_env("LINE_RATE_PER_SECOND", 200, {})
    assert b is not None and (b.rate, b.burst) == (200, 10)
    assert bucket_from_env("LINE_RATE_PER_SECOND", 200, {"LINE_RATE_PER_SECOND": "0"}) is None
    assert bucket_from_env("LINE_PUSH_RATE_PER_SECOND", 2000, {"LINE_PUSH_RATE_PER_SECOND": "5"}).burst == 1
    with pytest.raises(ConfigError, match="LINE_RATE_PER_SECOND"):
        bucket_from_env("LINE_RATE_PER_SECOND", 200, {"LINE_RATE_PER_SECOND": "lots"})


def _api_error(status: int, retry_after: str | None = None) -> Exception:
    from linebot.v3.messaging import ApiException

    e = ApiException(status=status)
    e.headers = {"Retry-After": retry_after} if retry_after else {}
    return e


def test_line_push_is_paced_and_waits_out_a_short_429_with_the_same_retry_key() -> None:
    from linebot.v3.messaging import TextMessage

    from bot.line.transport import LineTransport

    t = Time()
    pushes: list[tuple[float, str]] = []
    refusals: list[Exception] = []

    class Api:
        def push_message(self, request: Any, x_line_retry_key: str, **_: Any) -> None:
            pushes.append((t.t, x_line_retry_key))
            if refusals:
                raise refusals.pop(0)

    limit = TokenBucket(4, 1, clock=t, sleep=t.sleep)
    transport = LineTransport("http://127.0.0.1:9", "token", None, push_limit=limit)  # type: ignore[arg-type]
    transport.api = Api()  # type: ignore[assignment]
    messages = [TextMessage(text="hello")]

    def push(key: str) -> Any:
        return transport._push({"id": key, "to": "U1"}, messages)

    assert push("k1").kind == "delivered" and push("k2").kind == "delivered"
    assert pushes == [(1000.0, "k1"), (pytest.approx(1000.25), "k2")]  # 4/s
    refusals.append(_api_error(429, "2"))
    assert push("k3").kind == "delivered"  # refused, held 2 s, sent once more with the same key
    assert pushes[-2:] == [(pytest.approx(1000.5), "k3"), (pytest.approx(1002.5), "k3")]
    refusals.append(_api_error(429))  # LINE gives no Retry-After: 1 s
    push("k4")
    assert pushes[-1] == (pytest.approx(1003.75), "k4")
    refusals.append(_api_error(429, "60"))  # an outage: straight back to the outbox, nothing held
    outcome = push("k5")
    assert (outcome.kind, outcome.retry_after) == ("retry", 60.0)
    refusals.append(_api_error(500))
    assert push("k6").kind == "retry"
    assert pushes[-1] == (pytest.approx(1004.25), "k6")
    refusals += [_api_error(429, "1"), _api_error(429, "1")]  # refused twice: back to the outbox
    assert push("k7").kind == "retry"
    refusals.append(_api_error(409))  # a repeat of an accepted key: delivered
    assert push("k8").kind == "delivered"
