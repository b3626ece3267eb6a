"""Section 1: webhook load against the Procfile's web: line, with the echo bot as the baseline.

One server at a time, the same machine, the same fake API (benchmarks/fakes.py):
  crmbot (the Procfile's web: line, with its worker: line beside it as in production):
    flat out at the API delay (default 50 ms): its capacity, events/s;
    paced at the API delay and at the slow delay (default 500 ms): response times at a fixed load;
  the echo bot (benchmarks/echo.py, served by the same web server, bot.web, with the same arguments):
    paced at the API delay: the baseline's response times at the same load;
    flat out with no delay: the framework's ceiling; flat out at the API delay, for context.
Every run: N users (default 200) x 13 events; then a bounded wait until every reply has reached the
fake API, the outbox index is empty and no request has reached the API for a while (so late
duplicates are counted too).
"""

from __future__ import annotations

import secrets
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import redis

from benchmarks import procs
from benchmarks.load import EVENTS_PER_USER, LoadResult, diagnosis, percentile, run_load
from benchmarks.report import Row, ms, num, ratio, verdict
from conversations import keys


@dataclass
class Run:
    name: str
    delay: float
    users: int
    load: LoadResult
    records: dict[str, Any]
    drained: bool
    drain_seconds: float
    pace: float | None = None
    worker_cpu: list[float] | None = None  # CPU seconds each web worker used during the run and its drain

    def figures(self) -> dict[str, Any]:
        sent = self.load.sent
        ok = [s for s in sent if s.status == 200]
        errors = len(sent) - len(ok) + (self.users * EVENTS_PER_USER - len(sent))
        times = [s.seconds for s in sent]
        replies = self.records["replies"]
        pushes = self.records["pushes"]
        by_token = {s.token: s for s in ok}
        latency = [replies[t][0] - s.sent for t, s in by_token.items() if t in replies and replies[t][1]]
        expected: dict[str, int] = defaultdict(int)
        for s in ok:
            expected[s.user] += 1
        got: dict[str, int] = defaultdict(int)
        for t, s in by_token.items():
            if t in replies:
                got[s.user] += replies[t][1]
        for user, n in pushes.items():
            got[user] += n
        missing = sum(max(0, n - got.get(u, 0)) for u, n in expected.items())
        duplicates = sum(max(0, n - expected.get(u, 0)) for u, n in got.items())
        last = [replies[t][0] for t in by_token if t in replies and replies[t][1]]
        last += [t for ts in self.records.get("push_times", {}).values() for t in ts]
        return {
            "name": self.name,
            "api_delay_s": self.delay,
            "users": self.users,
            "pace_s": self.pace,
            "offered_events_per_second": self.users / self.pace if self.pace else None,
            "events_sent": len(sent),
            "events_ok": len(ok),
            "errors": errors,
            "load_seconds": self.load.seconds,
            "events_per_second": len(ok) / self.load.seconds if self.load.seconds else 0.0,
            "webhook_p50_s": percentile(times, 50),
            "webhook_p99_s": percentile(times, 99),
            "webhook_max_s": max(times, default=float("nan")),
            "reply_p50_s": percentile(latency, 50),
            "reply_p99_s": percentile(latency, 99),
            "reply_max_s": max(latency, default=float("nan")),
            "replies_expected": sum(expected.values()),
            "replies_by_reply_token": sum(r[1] for r in replies.values()),
            "replies_by_push": sum(pushes.values()),
            "reply_token_refused": sum(r[2] for r in replies.values()),
            "replies_missing": missing,
            "replies_duplicated": duplicates,
            "all_delivered_after_s": (max(last) - self.load.started) if last else float("nan"),
            "drained": self.drained,
            "drain_wait_s": self.drain_seconds,
            "web_worker_cpu_s": self.worker_cpu,
            "api_status": self.records.get("status", {}),
        }


def _quiet_since(history: list[tuple[float, int]], now: float) -> float:
    """Seconds since the fake's request count last changed."""
    since = now
    for t, n in reversed(history):
        if n != history[-1][1]:
            break
        since = t
    return now - since


def measure(name: str, url: str, secret: str, fakes: procs.Fakes, *, delay: float, users: int,
            redis_client: redis.Redis | None, drain_timeout: float, pace: float | None = None,
            workers: list[int] | None = None) -> Run:
    fakes.configure(delay=delay, line_limits={}, slack_channel_limit=None, slack_workspace_limit=None)
    run_id = f"{name}-{secrets.token_hex(4)}"
    hooks = [diagnosis(run_id, n, secret) for n in range(users)]
    how = f"one event every {pace:g} s each" if pace else "flat out"
    print(f"  {name}: {users} users x {EVENTS_PER_USER} events, {how}, API delay {delay * 1000:.0f} ms",
          flush=True)
    cpu0 = {pid: procs.cpu_seconds(pid) for pid in workers or []}
    load = run_load(url, hooks, deadline=300.0 + (pace or 0) * EVENTS_PER_USER, pace=pace)
    expected = sum(1 for s in load.sent if s.status == 200)
    p0 = time.monotonic()
    history: list[tuple[float, int]] = []
    quiet = max(3.0, 4 * delay)
    drained = False
    while True:
        rec = fakes.records()
        delivered = sum(r[1] for r in rec["replies"].values()) + sum(rec["pushes"].values())
        requests = sum(rec["status"].values())
        now = time.monotonic()
        history.append((now, requests))
        due = redis_client.zcard(keys.OUTBOX_DUE) if redis_client is not None else 0
        if delivered >= expected and due == 0 and _quiet_since(history, now) >= quiet:
            drained = True
            break
        if now - p0 > drain_timeout:
            break
        time.sleep(0.25)
    result = Run(name, delay, users, load, fakes.records(), drained, time.monotonic() - p0)
    result.pace = pace
    result.worker_cpu = [round(procs.cpu_seconds(pid) - t, 2) for pid, t in cpu0.items()]
    return result


def _workers(pid: int) -> list[int]:
    """The processes serving requests: a pre-forking server's children, else the server itself."""
    return procs.children(pid) or [pid]


def _workers_rss(pid: int) -> list[int]:
    return sorted(procs.rss_bytes(p) for p in _workers(pid))


def run(opts: Any, fakes: procs.Fakes) -> tuple[list[Row], dict[str, Any]]:
    secret = "bench-" + secrets.token_hex(8)
    lines = procs.procfile()
    web_line = procs.local_only(lines["web"])
    data: dict[str, Any] = {"procfile_web": lines["web"], "command_run": web_line, "worker": lines.get("worker")}
    server = procs.RedisServer("webhook").start()
    client = server.client()
    try:
        # ---- crmbot: the Procfile's web: and worker: lines --------------------------------------------------
        port = procs.free_port()
        env = procs.venv_env(PORT=str(port), REDIS_URL=server.url, LINE_CHANNEL_SECRET=secret,
                             LINE_CHANNEL_ACCESS_TOKEN=fakes.line_token, LINE_API_HOST=fakes.base_url)
        web = procs.start_procfile_line("web-crmbot", web_line, env)
        worker = procs.start_procfile_line("worker-crmbot", lines["worker"], env) if "worker" in lines else None
        procs.wait_http(f"http://127.0.0.1:{port}/healthz", 60, web)
        url = f"http://127.0.0.1:{port}/line/webhook"
        measure("crmbot-warmup", url, secret, fakes, delay=0, users=10, redis_client=client, drain_timeout=30)
        workers = _workers(web.pid)
        runs = [  # the slow API last: whatever it leaves undelivered cannot spill into another run
            measure("crmbot-paced", url, secret, fakes, delay=opts.delay, users=opts.users, pace=opts.pace,
                    redis_client=client, drain_timeout=opts.drain_timeout, workers=workers),
            measure("crmbot-flat-out", url, secret, fakes, delay=opts.delay, users=opts.users,
                    redis_client=client, drain_timeout=opts.drain_timeout, workers=workers),
            measure("crmbot-paced-slow-api", url, secret, fakes, delay=opts.slow_delay, users=opts.users,
                    pace=opts.pace, redis_client=client, drain_timeout=opts.drain_timeout, workers=workers),
        ]
        ours_rss = _workers_rss(web.pid)
        procs.stop_group(web)
        procs.stop_group(worker)
        # ---- the echo bot: the same web server and arguments ---------------------------------------------
        port = procs.free_port()
        env = procs.venv_env(PORT=str(port), LINE_CHANNEL_SECRET=secret,
                             LINE_CHANNEL_ACCESS_TOKEN=fakes.line_token, LINE_API_HOST=fakes.base_url)
        echo_line = procs.with_app(web_line, "benchmarks.echo")
        data["echo_command"] = echo_line
        echo = procs.start_procfile_line("web-echo", echo_line, env)
        procs.wait_http(f"http://127.0.0.1:{port}/", 60, echo)
        url = f"http://127.0.0.1:{port}/callback"
        measure("echo-warmup", url, secret, fakes, delay=0, users=10, redis_client=None, drain_timeout=30)
        workers = _workers(echo.pid)
        runs += [
            measure("echo-paced", url, secret, fakes, delay=opts.delay, users=opts.users, pace=opts.pace,
                    redis_client=None, drain_timeout=opts.drain_timeout, workers=workers),
            measure("echo-flat-out-no-delay", url, secret, fakes, delay=0, users=opts.users, redis_client=None,
                    drain_timeout=opts.drain_timeout, workers=workers),
            measure("echo-flat-out", url, secret, fakes, delay=opts.delay, users=opts.users, redis_client=None,
                    drain_timeout=opts.drain_timeout, workers=workers),
        ]
        echo_rss = _workers_rss(echo.pid)
        procs.stop_group(echo)
    finally:
        server.stop()

    f = {r.name: r.figures() for r in runs}
    data.update(runs=f, crmbot_worker_rss_bytes=ours_rss, echo_worker_rss_bytes=echo_rss)
    cap, o, s, b = f["crmbot-flat-out"], f["crmbot-paced"], f["crmbot-paced-slow-api"], f["echo-paced"]
    c, cb = f["echo-flat-out-no-delay"], f["echo-flat-out"]
    d, sd = f"{opts.delay * 1000:.0f} ms", f"{opts.slow_delay * 1000:.0f} ms"
    load = f"{opts.users / opts.pace:.0f} ev/s offered"
    rows = []
    eps_ratio = ratio(cap["events_per_second"], c["events_per_second"])
    rows.append(Row("1", f"events/s, flat out, API {d}", num(cap["events_per_second"]),
                    f"echo, no delay (ceiling): {num(c['events_per_second'])}; echo at {d}: "
                    f"{num(cb['events_per_second'])}",
                    f"{eps_ratio:.2f}x ceiling", ">= 0.5x ceiling", verdict(eps_ratio >= 0.5)))
    p99_ratio = ratio(b["webhook_p99_s"], o["webhook_p99_s"])
    rows.append(Row("1", f"webhook response p50 / p99, API {d}, {load}",
                    f"{ms(o['webhook_p50_s'])} / {ms(o['webhook_p99_s'])}",
                    f"echo: {ms(b['webhook_p50_s'])} / {ms(b['webhook_p99_s'])}",
                    f"p99 {p99_ratio:.1f}x lower", "p99 >= 5x lower than echo's", verdict(p99_ratio >= 5)))
    move = ratio(s["webhook_p99_s"], o["webhook_p99_s"])
    rows.append(Row("1", f"webhook p99, API {sd} vs {d}, {load}",
                    f"{ms(s['webhook_p99_s'])} (p50 {ms(s['webhook_p50_s'])})",
                    f"at {d}: {ms(o['webhook_p99_s'])}", f"{(move - 1) * 100:+.0f}%", "moves < 20%",
                    verdict(abs(move - 1) < 0.2)))
    for fig, label in ((o, d), (s, sd)):
        rows.append(Row("1", f"webhook -> reply at the API p50 / p99, API {label}, {load}",
                        f"{ms(fig['reply_p50_s'])} / {ms(fig['reply_p99_s'])}",
                        f"echo at {d}: {ms(b['reply_p50_s'])} / {ms(b['reply_p99_s'])}" if fig is o else "",
                        "", "(none)", "info"))
    split = " / ".join(" + ".join(f"{x:.1f}" for x in (fig["web_worker_cpu_s"] or [])) for fig in (o, s))
    rows.append(Row("1", f"web workers' CPU seconds in the paced runs, API {d} / {sd}", split,
                    "echo: " + " + ".join(f"{x:.1f}" for x in (b["web_worker_cpu_s"] or [])), "",
                    "(none: how the load spread over the web processes)", "info"))
    for fig, label in ((o, f"paced, API {d}"), (cap, f"flat out, API {d}"), (s, f"paced, API {sd}")):
        good = fig["errors"] == 0 and fig["replies_missing"] == 0 and fig["replies_duplicated"] == 0 and fig["drained"]
        rows.append(Row(
            "1", f"errors; replies exactly once, {label}",
            f"{fig['errors']} errors; {fig['replies_expected'] - fig['replies_missing']}/{fig['replies_expected']} "
            f"delivered, {fig['replies_duplicated']} twice ({fig['replies_by_push']} by push)"
            + ("" if fig["drained"] else "; not drained"),
            f"echo: {b['errors'] + c['errors']} errors, {b['replies_missing'] + c['replies_missing']} missing"
            if fig is o else "", "", "0 errors; each reply once", verdict(good)))
    data["rows"] = [r.as_dict() for r in rows]
    return rows, data
