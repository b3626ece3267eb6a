"""Section 1: webhook load against the Procfile's web: and worker: lines, with the echo bot as the baseline.

One server at a time, the same machine, the same fake LINE API (benchmarks/fakes.py):
  crmbot, started from the Procfile's lines (benchmarks/procs.py; bound to 127.0.0.1):
    closed loop (benchmarks/closedloop.py) at the API delay (50 ms) with N = 8, 32, 128 users;
    open loop, paced (benchmarks/load.py): every user sends an event every 2 s, the webhook's
      response times at a fixed offered load;
    closed loop at the slow API delay (500 ms), N = 32: how long a user waits for the reply;
    closed loop with the API slower than the SDK's read timeout (12 s > 10 s), N = 8: duplicates;
  the echo bot (benchmarks/echo.py served as crmbot web serves ours, procs.ECHO_LINE): the same closed loops at 50 ms
    (its ceiling is its best over N), the same paced run, the same closed loop at 500 ms.
After every run, a bounded wait until every reply has reached the fake API, the bot's queues are empty
and no request has reached the API for a while, so late duplicates are counted too. CPU seconds of
each role's process tree (web, worker; the echo bot) are read from /proc before and after each run.
"""

from __future__ import annotations

import secrets
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import redis

from benchmarks import procs
from benchmarks.closedloop import run_closed
from benchmarks.load import EVENTS_PER_USER, diagnosis, percentile, run_load
from benchmarks.report import INFO, Row, ms, num, ratio, target_row, verdict

# The CPU seconds per 1,000 events of main before issue 16's work, measured as this section measures them
# (closed loop, N = 32, API 50 ms; user + system time of each process tree; two runs, their mean), on the
# shared 2-CPU machine: the "before" beside each run's "after".
BEFORE_CPU: dict[str, Any] = {"measured": "2026-12-07", "commit": "014f66a (main)", "users": 32,
                              "web": 1.64, "worker": 3.95}


def _quiet_since(history: list[tuple[float, int]], now: float) -> float:
    """Seconds since the fake's request count last changed."""
    since = now
    for t, n in reversed(history):
        if n != history[-1][1]:
            break
        since = t
    return now - since


def drain(fakes: procs.Fakes, client: redis.Redis | None, expected: int, *, delay: float, timeout: float,
          quiet: float | None = None) -> tuple[bool, float]:
    """Wait (at most ``timeout`` s) until ``expected`` replies have reached the fake, the bot's queues are
    empty and no request has reached the fake for ``quiet`` s (so late duplicates are counted too)."""
    p0 = time.monotonic()
    history: list[tuple[float, int]] = []
    quiet = max(3.0, 4 * delay) if quiet is None else quiet
    while True:
        rec = fakes.records()
        delivered = sum(r[1] for r in rec["replies"].values()) + sum(rec["pushes"].values())
        now = time.monotonic()
        history.append((now, sum(rec["status"].values())))
        pending = procs.pending_jobs(client) if client is not None else 0
        if delivered >= expected and pending == 0 and _quiet_since(history, now) >= quiet:
            return True, now - p0
        if now - p0 > timeout:
            return False, now - p0
        time.sleep(0.25)


def exactly_once(answered: list[tuple[str, str]], records: dict[str, Any]) -> dict[str, int]:
    """Replies per user (by the reply tokens of its answered webhooks, or by push) against its webhooks
    answered 200. ``answered``: (user, reply token) of each."""
    replies, pushes = records["replies"], records["pushes"]
    expected: dict[str, int] = defaultdict(int)
    got: dict[str, int] = defaultdict(int)
    for user, token in answered:
        expected[user] += 1
        if token in replies:
            got[user] += replies[token][1]
    for user, n in pushes.items():
        got[user] += n
    return {
        "replies_expected": sum(expected.values()),
        "replies_by_reply_token": sum(r[1] for r in replies.values()),
        "replies_by_push": sum(pushes.values()),
        "reply_token_refused": sum(r[2] for r in replies.values()),
        "replies_missing": sum(max(0, n - got.get(u, 0)) for u, n in expected.items()),
        "replies_duplicated": sum(max(0, n - expected.get(u, 0)) for u, n in got.items()),
    }


@dataclass
class Server:
    """A server under test: its webhook URL, its processes by role (each a process tree), its Redis."""

    name: str
    url: str
    roles: dict[str, int]
    redis: redis.Redis | None = None

    def cpu(self) -> dict[str, Any]:
        """CPU seconds of each role's process tree, and of each process of the web role's tree."""
        root = self.roles.get("web") or self.roles.get("echo")
        return {role: procs.tree_cpu_seconds(pid) for role, pid in self.roles.items()} | {
            "_web_processes": {pid: procs.cpu_seconds(pid) for pid in procs.tree(root)} if root else {}}

    def rss(self) -> list[int]:
        """VmRSS of each process of the web role (the echo bot's), largest last."""
        root = self.roles.get("web") or self.roles.get("echo")
        found = []
        for pid in procs.tree(root) if root else []:
            try:
                found.append(procs.rss_bytes(pid))
            except OSError:
                continue
        return sorted(found)


def _cpu_figures(before: dict[str, Any], after: dict[str, Any], events: int) -> dict[str, Any]:
    used = {role: after[role] - before[role] for role in before if not role.startswith("_")}
    split = sorted(round(after["_web_processes"].get(pid, t) - t, 2) for pid, t in before["_web_processes"].items())
    return {"cpu_s": used, "cpu_s_per_1000_events": {r: v * 1000 / events if events else float("nan")
                                                     for r, v in used.items()},
            "web_cpu_s_by_process": split}


def paced(server: Server, secret: str, fakes: procs.Fakes, *, delay: float, users: int, pace: float,
          drain_timeout: float) -> dict[str, Any]:
    """The open loop: every user sends an event every ``pace`` s (its diagnosis, 13 events)."""
    name = f"{server.name}-paced-{delay * 1000:.0f}ms"
    fakes.configure(delay=delay, line_limits={}, slack_channel_limit=None, slack_workspace_limit=None)
    hooks = [diagnosis(f"{name}-{secrets.token_hex(4)}", n, secret) for n in range(users)]
    print(f"  {name}: open loop, {users} users x {EVENTS_PER_USER} events, one every {pace:g} s each, "
          f"API delay {delay * 1000:.0f} ms", flush=True)
    cpu0 = server.cpu()
    load = run_load(server.url, hooks, deadline=300.0 + pace * EVENTS_PER_USER, pace=pace)
    ok = [x for x in load.sent if x.status == 200]
    drained, waited = drain(fakes, server.redis, len(ok), delay=delay, timeout=drain_timeout)
    cpu1 = server.cpu()
    rec = fakes.records()
    replies = rec["replies"]
    latency = [replies[x.token][0] - x.sent for x in ok if x.token in replies and replies[x.token][1]]
    times = [x.seconds for x in load.sent]
    print(f"    {len(ok)} answered, webhook p99 {ms(percentile(times, 99))}, drained in {waited:.0f} s", flush=True)
    return {
        "name": name, "loop": "open", "api_delay_s": delay, "users": users, "pace_s": pace,
        "offered_events_per_second": users / pace,
        "events_sent": len(load.sent), "events_ok": len(ok),
        "errors": len(load.sent) - len(ok) + (users * EVENTS_PER_USER - len(load.sent)),
        "load_seconds": load.seconds,
        "webhook_p50_s": percentile(times, 50), "webhook_p99_s": percentile(times, 99),
        "webhook_max_s": max(times, default=float("nan")),
        "reply_p50_s": percentile(latency, 50), "reply_p99_s": percentile(latency, 99),
        **exactly_once([(x.user, x.token) for x in ok], rec),
        "drained": drained, "drain_wait_s": waited, **_cpu_figures(cpu0, cpu1, len(ok)),
        "api_status": rec.get("status", {}),
    } | ({"still_queued": procs.pending_jobs(server.redis)} if server.redis is not None else {})


def closed(server: Server, secret: str, fakes: procs.Fakes, *, delay: float, users: int, seconds: float,
           drain_timeout: float, wait_timeout: float = 30.0, quiet: float | None = None, label: str = ""
           ) -> dict[str, Any]:
    """The closed loop (benchmarks/closedloop.py): N users, each tapping again once its reply arrived."""
    name = f"{server.name}-closed-{users}-{delay * 1000:.0f}ms{label}"
    fakes.configure(delay=delay, line_limits={}, slack_channel_limit=None, slack_workspace_limit=None)
    print(f"  {name}: closed loop, {users} users for {seconds:g} s, API delay {delay * 1000:.0f} ms", flush=True)
    cpu0 = server.cpu()
    result = run_closed(server.url, fakes.stream_url, secret, users=users, seconds=seconds,
                        run_id=f"{name}-{secrets.token_hex(4)}", wait_timeout=wait_timeout)
    ok = [t for t in result.taps if t.status == 200]
    drained, waited = drain(fakes, server.redis, len(ok), delay=delay, timeout=drain_timeout, quiet=quiet)
    cpu1 = server.cpu()
    rec = fakes.records()
    fig = result.figures()
    fig.update(name=name, loop="closed", api_delay_s=delay, events_ok=len(ok),
               errors=fig["webhook_errors"], drained=drained, drain_wait_s=waited,
               observed_after_last_tap_s=waited, **exactly_once([(t.user, t.token) for t in ok], rec),
               still_queued=procs.pending_jobs(server.redis) if server.redis is not None else 0,
               **_cpu_figures(cpu0, cpu1, len(ok)), api_status=rec.get("status", {}))
    print(f"    {fig['events_per_second']:.0f} events/s, {len(ok)} answered, reply p99 "
          f"{ms(fig['round_trip_p99_s'])}, drained in {waited:.0f} s", flush=True)
    return fig


def _start_crmbot(port: int, env: dict[str, str], lines: dict[str, str]) -> tuple[procs.Started, procs.Started | None]:
    web = procs.start_line("web", "web-crmbot", env, url=f"http://127.0.0.1:{port}/healthz", lines=lines)
    worker = procs.start_line("worker", "worker-crmbot", env, lines=lines) if "worker" in lines else None
    return web, worker


def run(opts: Any, fakes: procs.Fakes) -> tuple[list[Row], dict[str, Any]]:
    secret = "bench-" + secrets.token_hex(8)
    lines = procs.procfile()
    data: dict[str, Any] = {"procfile": lines}
    runs: dict[str, dict[str, Any]] = {}
    server = procs.RedisServer("webhook").start()
    client = server.client()
    ns = opts.closed_users
    try:
        # ---- crmbot: the Procfile's web: and worker: lines ----------------------------------------------------
        port = procs.free_port()
        env = procs.venv_env(PORT=str(port), REDIS_URL=server.url, LINE_CHANNEL_SECRET=secret,
                             LINE_CHANNEL_ACCESS_TOKEN=fakes.line_token, LINE_API_HOST=fakes.base_url)
        web, worker = _start_crmbot(port, env, lines)
        data["crmbot_processes"] = {"web": web.describe(), "worker": worker.describe() if worker else None}
        roles = {"web": web.pid} | ({"worker": worker.pid} if worker else {})
        ours = Server("crmbot", f"http://127.0.0.1:{port}/line/webhook", roles, client)
        try:
            closed(ours, secret, fakes, delay=0, users=8, seconds=2, drain_timeout=30, label="-warmup")
            for n in ns:
                runs[f"crmbot-closed0-{n}"] = closed(ours, secret, fakes, delay=0, users=n,
                                                     seconds=opts.closed_seconds, drain_timeout=opts.drain_timeout)
            for n in ns:
                r = closed(ours, secret, fakes, delay=opts.delay, users=n, seconds=opts.closed_seconds,
                           drain_timeout=opts.drain_timeout)
                runs[f"crmbot-closed-{n}"] = r
            runs["crmbot-paced"] = paced(ours, secret, fakes, delay=opts.delay, users=opts.users, pace=opts.pace,
                                         drain_timeout=opts.drain_timeout)
            runs["crmbot-closed-slow"] = closed(ours, secret, fakes, delay=opts.slow_delay, users=opts.reply_users,
                                                seconds=opts.closed_seconds, drain_timeout=opts.drain_timeout)
            # the API slower than the SDK's read timeout, last: what it leaves behind cannot spill into
            # another run. Duplicates are counted after a fixed window (retries may go on for minutes).
            runs["crmbot-closed-timeout"] = closed(
                ours, secret, fakes, delay=opts.timeout_delay, users=opts.timeout_users,
                seconds=opts.timeout_seconds, drain_timeout=opts.timeout_window, wait_timeout=opts.timeout_window,
                quiet=min(opts.timeout_window, max(3.0, 2 * opts.timeout_delay)))
            data["crmbot_worker_rss_bytes"] = ours.rss()
        finally:
            web.stop()
            if worker is not None:
                worker.stop()
        # ---- the echo bot ---------------------------------------------------------------------------------------
        port = procs.free_port()
        env = procs.venv_env(PORT=str(port), LINE_CHANNEL_SECRET=secret,
                             LINE_CHANNEL_ACCESS_TOKEN=fakes.line_token, LINE_API_HOST=fakes.base_url)
        echo = procs.start_echo("web-echo", env, f"http://127.0.0.1:{port}/", threads=opts.echo_threads)
        data["echo_process"] = echo.describe()
        theirs = Server("echo", f"http://127.0.0.1:{port}/callback", {"echo": echo.pid})
        try:
            closed(theirs, secret, fakes, delay=0, users=8, seconds=2, drain_timeout=30, label="-warmup")
            for n in ns:
                runs[f"echo-closed0-{n}"] = closed(theirs, secret, fakes, delay=0, users=n,
                                                   seconds=opts.closed_seconds, drain_timeout=opts.drain_timeout)
            for n in ns:
                runs[f"echo-closed-{n}"] = closed(theirs, secret, fakes, delay=opts.delay, users=n,
                                                  seconds=opts.closed_seconds, drain_timeout=opts.drain_timeout)
            runs["echo-paced"] = paced(theirs, secret, fakes, delay=opts.delay, users=opts.users, pace=opts.pace,
                                       drain_timeout=opts.drain_timeout)
            runs["echo-closed-slow"] = closed(theirs, secret, fakes, delay=opts.slow_delay, users=opts.reply_users,
                                              seconds=opts.closed_seconds, drain_timeout=opts.drain_timeout)
            data["echo_worker_rss_bytes"] = theirs.rss()
        finally:
            echo.stop()
    finally:
        server.stop()
    data["runs"] = runs
    rows = _rows(opts, runs)
    data["rows"] = [r.as_dict() for r in rows]
    return rows, data


def _cpu(fig: dict[str, Any]) -> str:
    per = fig["cpu_s_per_1000_events"]
    return " + ".join(f"{v:.2f}" for v in per.values())


def _once(figs: list[dict[str, Any]]) -> dict[str, int]:
    keys_ = ("replies_expected", "replies_missing", "replies_duplicated", "replies_by_push", "errors",
             "still_queued")
    return {k: sum(int(f.get(k, 0)) for f in figs) for k in keys_} | {"drained": all(f["drained"] for f in figs)}


def _rows(opts: Any, runs: dict[str, dict[str, Any]]) -> list[Row]:
    ns = opts.closed_users
    d, sd, td = (f"{x * 1000:.0f} ms" for x in (opts.delay, opts.slow_delay, opts.timeout_delay))
    ours = {n: runs[f"crmbot-closed-{n}"] for n in ns}
    echo = {n: runs[f"echo-closed-{n}"] for n in ns}
    per_n = " / ".join(str(n) for n in ns)
    rows = [Row("1", f"closed loop events/s, API {d}, N = {per_n} users",
                " / ".join(num(ours[n]["events_per_second"]) for n in ns),
                "echo: " + " / ".join(num(echo[n]["events_per_second"]) for n in ns),
                " / ".join(f"{ratio(ours[n]['events_per_second'], echo[n]['events_per_second']):.2f}x" for n in ns),
                "(none)", INFO)]
    rows.append(_best("events-0ms", {n: runs[f"crmbot-closed0-{n}"] for n in ns},
                      {n: runs[f"echo-closed0-{n}"] for n in ns}, 0.7, "0 ms"))
    rows.append(_best("events-50ms", ours, echo, 1.0, d))
    rows.append(Row("1", f"closed loop webhook -> reply at the API, p99, API {d}, N = {per_n}",
                    " / ".join(ms(ours[n]["round_trip_p99_s"]) for n in ns),
                    "echo: " + " / ".join(ms(echo[n]["round_trip_p99_s"]) for n in ns), "", "(none)", INFO))
    roles = " + ".join(ours[ns[0]]["cpu_s_per_1000_events"].keys())
    rows.append(Row("1", f"CPU seconds per 1,000 events ({roles}), closed loop, API {d}, N = {per_n}",
                    " / ".join(_cpu(ours[n]) for n in ns), "echo: " + " / ".join(_cpu(echo[n]) for n in ns),
                    "", "(none)", INFO))
    o, b = runs["crmbot-paced"], runs["echo-paced"]
    load = f"{opts.users / opts.pace:.0f} ev/s offered"
    p99x = ratio(b["webhook_p99_s"], o["webhook_p99_s"])
    rows.append(target_row("webhook-p99-50ms", f"{ms(o['webhook_p50_s'])} / {ms(o['webhook_p99_s'])}",
                           f"echo: {ms(b['webhook_p50_s'])} / {ms(b['webhook_p99_s'])}", f"p99 {p99x:.1f}x lower",
                           p99x >= 5, f"webhook response p50 / p99, open loop, API {d}, {load}"))
    rows.append(Row("1", f"CPU seconds per 1,000 events ({' + '.join(o['cpu_s_per_1000_events'])}), open loop, "
                    f"API {d}, {load}", _cpu(o), f"echo: {_cpu(b)}", "", "(none)", INFO))
    s, sb = runs["crmbot-closed-slow"], runs["echo-closed-slow"]
    limit = opts.reply_limit
    rows.append(Row("1", f"webhook -> reply at the API p50 / p99, closed loop N={opts.reply_users}, API {sd}",
                    f"{ms(s['round_trip_p50_s'])} / {ms(s['round_trip_p99_s'])} "
                    f"({num(s['events_per_second'])} ev/s)",
                    f"echo: {ms(sb['round_trip_p50_s'])} / {ms(sb['round_trip_p99_s'])} "
                    f"({num(sb['events_per_second'])} ev/s)",
                    f"{ratio(s['round_trip_p99_s'], limit):.2f}x the limit", f"p99 <= {ms(limit)}",
                    verdict(s["round_trip_p99_s"] <= limit), "reply-p99-500ms"))
    groups = (
        (d, [ours[n] for n in ns] + [o], f"closed loop N = {per_n}, open loop", True, "dup-50ms"),
        (sd, [s], f"closed loop N={opts.reply_users}", True, "dup-500ms"),
        (td, [runs["crmbot-closed-timeout"]], f"closed loop N={opts.timeout_users}, observed "
         f"{runs['crmbot-closed-timeout']['observed_after_last_tap_s']:.0f} s after", False, "dup-12s"),
    )
    for label, figs, how, strict, key in groups:
        t = _once(figs)
        good = t["replies_duplicated"] == 0 and (not strict or (t["replies_missing"] == 0 and t["errors"] == 0))
        rows.append(Row(
            "1", f"duplicate replies, API {label} ({how})",
            f"{t['replies_duplicated']} of {num(t['replies_expected'])} ({t['replies_by_push']} by push, "
            f"{t['replies_missing']} missing, {t['errors']} webhook errors"
            + (f", {t['still_queued']} still queued" if t["still_queued"] else "")
            + ("" if t["drained"] or not strict else ", not drained") + ")",
            "echo at 50 ms: " + str(_once([echo[n] for n in ns] + [b])["replies_duplicated"]) if label == d else "",
            "", "0 duplicates" + ("; none missing, no errors" if strict else ""), verdict(good), key))
    rows += _cpu_rows(ours, ns, d)
    return rows


def _best(key: str, ours: dict[int, dict[str, Any]], echo: dict[int, dict[str, Any]], least: float,
          delay: str) -> Row:
    """Our best events/s over N against the echo bot's best (its ceiling), both at the same API delay."""
    best = max(ours, key=lambda n: ours[n]["events_per_second"])
    ceiling = max(echo, key=lambda n: echo[n]["events_per_second"])
    x = ratio(ours[best]["events_per_second"], echo[ceiling]["events_per_second"])
    per_n = " / ".join(num(ours[n]["events_per_second"]) for n in ours)
    return target_row(key, f"{num(ours[best]['events_per_second'])} (N={best}; N = {', '.join(map(str, ours))}: "
                      f"{per_n})", f"echo's ceiling: {num(echo[ceiling]['events_per_second'])} (N={ceiling})",
                      f"{x:.2f}x ceiling", x >= least, f"closed loop events/s, best over N, API {delay}")


def _cpu_rows(ours: dict[int, dict[str, Any]], ns: list[int], d: str) -> list[Row]:
    """Web and worker CPU seconds per 1,000 events in this run's closed loop at the API delay with the
    number of users nearest BEFORE_CPU's (32), against main's before issue 16 (BEFORE_CPU)."""
    rows = []
    n = min(ns, key=lambda k: abs(k - int(BEFORE_CPU["users"])))
    for role in ("web", "worker"):
        after = ours[n]["cpu_s_per_1000_events"].get(role, float("nan"))
        before = float(BEFORE_CPU[role])
        rows.append(target_row(
            f"cpu-{role}", f"{after:.2f}", f"before: {before:.2f} ({BEFORE_CPU['commit']}, N = "
            f"{BEFORE_CPU['users']}, measured {BEFORE_CPU['measured']})", f"{ratio(after, before):.2f}x before",
            None, f"{role} CPU seconds per 1,000 events, closed loop N = {n}, API {d}"))
    return rows
