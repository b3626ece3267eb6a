"""Section 2: Redis round trips and commands per answered question, end to end with the outbox.

The app runs in this process (``build_services`` + ``create_app``, the Flask test client posting signed
webhooks, the outbox's sender threads replying to the fake LINE API) on a redis-server of its own, so
nothing else talks to it. K users follow and start; then, measured, each answers its ten questions
one webhook at a time; the senders are drained (every reply acknowledged) before each reading.

Figures come from the server's own counters, read before and after the measured phase:
- commands: ``INFO commandstats`` (every command, including those a Lua script calls);
- round trips: ``INFO stats`` ``total_reads_processed``, the number of times the server read a
  request from a socket. A pipeline is written in one go and read at once, so each round trip is
  one read; the reading's own INFO adds one, which is taken off.
Cross-check: the client side counts every write of a request to a socket (redis-py's
``send_packed_command``) in the same phase; both must agree. The outbox worker's idle sweep (one
ZRANGEBYSCORE a second per worker process, whatever the traffic) is not part of an answer and does
not run here.
"""

from __future__ import annotations

import secrets
import threading
from typing import Any

import redis

from benchmarks import procs
from benchmarks.load import diagnosis
from benchmarks.report import Row, num, verdict


class CountingConnection(redis.connection.Connection):
    """A redis-py connection that counts the requests it writes (round trips) and the connections made."""

    lock = threading.Lock()
    sends = 0
    connects = 0

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        with CountingConnection.lock:
            CountingConnection.sends += 1
        super().send_packed_command(command, check_health)

    def on_connect_check_health(self, check_health: bool = True) -> None:
        with CountingConnection.lock:
            CountingConnection.connects += 1
        super().on_connect_check_health(check_health)


def _reading(admin: redis.Redis) -> dict[str, Any]:
    info = admin.info("all")
    calls = {k[len("cmdstat_"):]: v["calls"] for k, v in info.items() if k.startswith("cmdstat_")}
    return {"reads": info["total_reads_processed"], "calls": calls,
            "client_sends": CountingConnection.sends, "client_connects": CountingConnection.connects}


def _delta(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    calls = {k: v - a["calls"].get(k, 0) for k, v in b["calls"].items() if k != "info"}
    return {
        "round_trips": b["reads"] - a["reads"] - 1,  # minus the reading's own INFO
        "client_round_trips": b["client_sends"] - a["client_sends"],
        "connections_opened": b["client_connects"] - a["client_connects"],
        "commands": {k: v for k, v in sorted(calls.items(), key=lambda kv: -kv[1]) if v},
    }


def run(opts: Any, fakes: procs.Fakes) -> tuple[list[Row], dict[str, Any]]:
    from bot.app import build_services, create_app
    from bot.config import Config

    fakes.configure(delay=0, line_limits={}, slack_channel_limit=None, slack_workspace_limit=None)
    server = procs.RedisServer("cost").start()
    secret = "bench-" + secrets.token_hex(8)
    try:
        pool = redis.ConnectionPool.from_url(server.url, connection_class=CountingConnection, socket_timeout=5,
                                             socket_connect_timeout=2, health_check_interval=30)
        client = redis.Redis(connection_pool=pool)
        admin = server.client()
        config = Config(redis_url=server.url, line_channel_secret=secret,
                        line_channel_access_token=fakes.line_token, line_api_host=fakes.base_url)
        svc = build_services(config, client=client)
        http = create_app(services=svc).test_client()
        users = [diagnosis(f"cost-{secrets.token_hex(4)}", n, secret) for n in range(opts.cost_users)]

        def send(index: int) -> None:
            for hooks in users:
                h = hooks[index]
                res = http.post("/line/webhook", data=h.body,
                                headers={"Content-Type": "application/json", "X-Line-Signature": h.signature})
                if res.status_code != 200:
                    raise RuntimeError(f"webhook answered {res.status_code}: {res.get_data(as_text=True)[:200]}")
            svc.outbox.drain(timeout=60)

        print(f"  {opts.cost_users} users: follow and start (not measured), then ten answers each (measured)",
              flush=True)
        before_all = _reading(admin)
        send(0)
        send(1)
        # a warm pool, as in a server that has been running: the measured phase opens no connection
        held = [pool.get_connection() for _ in range(12)]
        for c in held:
            pool.release(c)
        before = _reading(admin)
        for q in range(2, 12):
            send(q)
        after = _reading(admin)
        send(12)  # the opt in
        after_all = _reading(admin)
        svc.outbox.close()
        replies = fakes.records()
        delivered = sum(r[1] for r in replies["replies"].values())
    finally:
        server.stop()

    answers = opts.cost_users * 10
    d = _delta(before, after)
    everything = _delta(before_all, after_all)
    events = opts.cost_users * 13
    per = {
        "answers": answers,
        "round_trips_per_answer": d["round_trips"] / answers,
        "client_round_trips_per_answer": d["client_round_trips"] / answers,
        "commands_per_answer": sum(d["commands"].values()) / answers,
        "commands_by_name_per_answer": {k: v / answers for k, v in d["commands"].items()},
        "connections_opened_while_measuring": d["connections_opened"],
        "all_13_events": {"events": events, "round_trips_per_event": everything["round_trips"] / events,
                          "commands_per_event": sum(everything["commands"].values()) / events,
                          "commands": everything["commands"]},
        "replies_delivered": delivered,
        "replies_expected": events,
    }
    names = ", ".join(f"{k} {v / answers:g}" for k, v in list(d["commands"].items())[:8])
    rows = [
        Row("2", "Redis round trips per answered question (server: total_reads_processed)",
            num(per["round_trips_per_answer"], 2),
            f"client-side count: {num(per['client_round_trips_per_answer'], 2)}", "",
            "<= 3", verdict(per["round_trips_per_answer"] <= 3.0 + 1e-9)),
        Row("2", "Redis commands per answered question (INFO commandstats, incl. in Lua)",
            num(per["commands_per_answer"], 2), names, "", "(none)", "info"),
    ]
    return rows, per
