"""Section 2: Redis round trips and commands per answered question, in the web process.

The bot runs as the Procfile runs it (its web: and worker: lines, benchmarks/procs.py) on a
redis-server of its own, the fake LINE API answering at once. Each role reaches Redis through its
own port of a counting proxy (benchmarks/redisproxy.py), so the web process's round trips are
counted apart from the worker's: a webhook's cost is what the web tier spends before it can answer,
and the target (at most 2 round trips per answer) is about that. K users follow and start (not
measured; it also warms every connection pool and loads the Lua scripts); then, measured, each
answers its ten questions, one signed webhook at a time. Before each reading every reply has reached
the fake API, the bot's queues are empty and the web process's traffic has stopped.

Figures:
- web round trips per answer: the proxy's turns of the web role (a pipeline written in one go is one
  turn); connection upkeep (HELLO, AUTH, SELECT, CLIENT, PING: a new connection's set-up, a health
  check) is counted apart, as are connections opened while measuring (a warm pool opens none);
- web commands per answer, by name, as sent (an EVALSHA's own commands are inside it);
- the worker's round trips in the same phase (its idle polling included: measured alone beforehand),
  for information;
- the server's own counters over the phase (``INFO commandstats``, including the commands Lua scripts
  call; ``total_reads_processed``), all processes together. The benchmark's own client (its polling
  and these readings) goes through the proxy too, as a third role, and is taken off; the server's
  reads then equal the proxy's turns of all roles, a cross-check.
"""

from __future__ import annotations

import secrets
import time
import urllib.request
from typing import Any

import redis

from benchmarks import procs
from benchmarks.load import Webhook, diagnosis
from benchmarks.redisproxy import CountingProxy, Counts
from benchmarks.report import INFO, Row, num, verdict

ROLES = ("web", "worker")
BENCH = "bench"  # this process's own client


def _server_reading(admin: redis.Redis) -> dict[str, Any]:
    info = admin.info("all")
    calls = {k[len("cmdstat_"):]: v["calls"] for k, v in info.items() if k.startswith("cmdstat_")}
    return {"reads": info["total_reads_processed"], "calls": calls}


def _server_delta(a: dict[str, Any], b: dict[str, Any], bench: Counts) -> dict[str, Any]:
    """The server's counters between two readings, the benchmark's own commands taken off (they are top
    level, none inside a script, so the subtraction is exact). ``reads`` keeps them: it is compared with
    the proxy's turns of every role."""
    ours = {k.lower(): v for k, v in bench.commands.items()}
    calls = {k: v - a["calls"].get(k, 0) - ours.get(k, 0) for k, v in b["calls"].items()}
    return {"reads": b["reads"] - a["reads"],
            "commands": {k: v for k, v in sorted(calls.items(), key=lambda kv: -kv[1]) if v}}


def _post(url: str, hook: Webhook) -> None:
    req = urllib.request.Request(url, data=hook.body, method="POST", headers={
        "Content-Type": "application/json; charset=utf-8", "X-Line-Signature": hook.signature})
    with urllib.request.urlopen(req, timeout=30) as res:
        if res.status != 200:
            raise RuntimeError(f"webhook answered {res.status}")


def _settle(fakes: procs.Fakes, client: redis.Redis, proxy: CountingProxy, tokens: set[str],
            timeout: float = 60) -> None:
    """Until every reply (by these tokens, or a push) reached the fake, the queues are empty and the
    web role has been silent for half a second."""
    deadline = time.monotonic() + timeout
    last, quiet_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        rec = fakes.records()
        got = sum(1 for t in tokens if t in rec["replies"]) + sum(rec["pushes"].values())
        turns = proxy.snapshot()["web"].turns
        if turns != last:
            last, quiet_since = turns, time.monotonic()
        if got >= len(tokens) and procs.pending_jobs(client) == 0 and time.monotonic() - quiet_since >= 0.5:
            return
        time.sleep(0.1)
    raise RuntimeError(f"replies not all delivered within {timeout:.0f}s; see {procs.LOGS}")


def run(opts: Any, fakes: procs.Fakes) -> tuple[list[Row], dict[str, Any]]:
    fakes.configure(delay=0, line_limits={}, slack_channel_limit=None, slack_workspace_limit=None)
    server = procs.RedisServer("cost").start()
    proxy = CountingProxy(server.port, (*ROLES, BENCH)).start()
    secret = "bench-" + secrets.token_hex(8)
    admin = redis.Redis.from_url(proxy.url(BENCH), socket_timeout=30)
    lines = procs.procfile()
    started: list[procs.Started] = []
    try:
        port = procs.free_port()
        base = {"PORT": str(port), "LINE_CHANNEL_SECRET": secret, "LINE_CHANNEL_ACCESS_TOKEN": fakes.line_token,
                "LINE_API_HOST": fakes.base_url}
        web = procs.start_line("web", "web-cost", procs.venv_env(**base, REDIS_URL=proxy.url("web")),
                               url=f"http://127.0.0.1:{port}/healthz", lines=lines)
        started.append(web)
        if "worker" in lines:
            started.append(procs.start_line("worker", "worker-cost",
                                            procs.venv_env(**base, REDIS_URL=proxy.url("worker")), lines=lines))
        url = f"http://127.0.0.1:{port}/line/webhook"
        users = [diagnosis(f"cost-{secrets.token_hex(4)}", n, secret) for n in range(opts.cost_users)]

        def send(index: int) -> None:
            for hooks in users:
                _post(url, hooks[index])
            _settle(fakes, admin, proxy, {hooks[index].token for hooks in users})

        print(f"  {opts.cost_users} users: follow and start (not measured), then ten answers each (measured)",
              flush=True)
        send(0)
        send(1)
        idle0, t_idle = proxy.snapshot(), time.monotonic()
        time.sleep(2.0)
        idle = proxy.snapshot()
        idle_seconds = time.monotonic() - t_idle
        s_before = _server_reading(admin)
        before, t0 = proxy.snapshot(), time.monotonic()
        for q in range(2, 12):
            send(q)
        s_after = _server_reading(admin)
        after, seconds = proxy.snapshot(), time.monotonic() - t0
        send(12)  # the opt in
        ran = {s.kind: s.describe() for s in started}
    finally:
        for s in started:
            s.stop()
        proxy.stop()
        server.stop()

    answers = opts.cost_users * 10
    d = {role: after[role].minus(before[role]) for role in (*ROLES, BENCH)}
    idle_d = {role: idle[role].minus(idle0[role]) for role in ROLES}
    srv = _server_delta(s_before, s_after, d[BENCH])

    def per(c: Counts) -> dict[str, Any]:
        return {"round_trips": c.turns / answers, "upkeep_round_trips": c.setup_turns / answers,
                "connections_opened": c.connections,
                "commands": sum(c.commands.values()) / answers,
                "commands_by_name": {k: v / answers for k, v in c.commands.most_common()}}

    worker_idle_per_s = idle_d["worker"].turns / idle_seconds
    figures: dict[str, Any] = {
        "answers": answers,
        "processes": ran,
        "measured_seconds": seconds,
        "web": per(d["web"]),
        "worker": per(d["worker"]) | {"idle_round_trips_per_second": worker_idle_per_s},
        "server": {"reads": srv["reads"],
                   "proxy_turns_all_roles": sum(c.turns + c.setup_turns for c in d.values()),
                   "benchmark_client_turns": d[BENCH].turns + d[BENCH].setup_turns,
                   "commands_per_answer": sum(srv["commands"].values()) / answers,
                   "commands_by_name_per_answer": {k: v / answers for k, v in srv["commands"].items()}},
    }
    web_f, wk = figures["web"], figures["worker"]
    names = ", ".join(f"{k} {v:g}" for k, v in list(web_f["commands_by_name"].items())[:8])
    upkeep = web_f["upkeep_round_trips"] * answers
    rows = [
        Row("2", "Redis round trips per answered question, web process (counting proxy)",
            num(web_f["round_trips"], 2),
            f"worker: {num(wk['round_trips'], 2)} (idle: {worker_idle_per_s:.1f}/s); server reads "
            f"{figures['server']['reads']:,} = proxy turns {figures['server']['proxy_turns_all_roles']:,}", "", "<= 2",
            verdict(web_f["round_trips"] <= 2.0 + 1e-9)),
        Row("2", "Redis commands per answered question, web process (as sent)", num(web_f["commands"], 2),
            names + (f"; upkeep round trips {upkeep:.0f}, connections opened {web_f['connections_opened']}"
                     if upkeep or web_f["connections_opened"] else ""), "", "(none)", INFO),
        Row("2", "Redis commands per answered question, all processes (INFO commandstats, incl. in Lua)",
            num(figures["server"]["commands_per_answer"], 2),
            ", ".join(f"{k} {v:g}" for k, v in list(figures["server"]["commands_by_name_per_answer"].items())[:9]),
            "", "(none)", INFO),
    ]
    return rows, figures
