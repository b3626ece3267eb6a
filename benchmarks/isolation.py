"""Section 5: console reads never slow a webhook.

crmbot runs from the Procfile's lines (web:, worker:, and console: where the Procfile has one) on a
redis-server of its own, seeded with finished and in-progress diagnoses (benchmarks/seed.py) so that a
funnel read has work to do. Then the same paced open loop (benchmarks/load.py: every user sends an
event every ``pace`` s, 50 ms API delay) runs twice, side by side in one run:

- **idle**: nothing else reaches the bot;
- **with readers**: 20 clients each read ``GET /console/api/funnel`` (Bearer token) over and over, no
  pause, for as long as the webhooks are sent.

The figure is the webhook's response time (request written -> whole answer read), p50 and p99, in the
two runs; the target: p99 with the readers within 1.5x of idle. The readers' own rate and p50 are shown
beside it (what they got is not a target). CPU seconds of the web and console processes are read from
/proc, so a reader's cost shows where it lands.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import time
from typing import Any

import aiohttp

from benchmarks import procs, seed
from benchmarks.load import EVENTS_PER_USER, diagnosis, percentile, run_load
from benchmarks.report import INFO, Row, ms, num, ratio, target_row
from benchmarks.webhook import Server, drain

READERS = 20
TARGET = 1.5


class Readers:
    """``n`` clients reading ``url`` back to back, in a process of their own (so that their work never
    delays the load generator's reading of a webhook's answer), until :meth:`stop`."""

    def __init__(self, url: str, token: str, n: int) -> None:
        self.url, self.token, self.n = url, token, n
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Readers:
        self.proc = subprocess.Popen([sys.executable, "-m", "benchmarks.isolation", self.url, str(self.n)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=procs.ROOT,
                                     env=procs.venv_env(BENCH_CONSOLE_TOKEN=self.token))
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != b"reading":  # the readers are reading before the webhooks start
            raise RuntimeError("the funnel readers did not start")
        return self

    def stop(self) -> dict[str, Any]:
        assert self.proc is not None
        out, _ = self.proc.communicate(b"stop\n", timeout=120)
        return dict(json.loads(out))


async def _read(url: str, token: str, n: int) -> dict[str, Any]:
    times: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    stop = asyncio.Event()

    async def one(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        headers = {"Authorization": f"Bearer {token}"}
        while not stop.is_set():
            p0 = time.perf_counter()
            try:
                async with session.get(url, headers=headers) as res:
                    await res.read()
                    statuses[res.status] = statuses.get(res.status, 0) + 1
                    if res.status == 200:
                        times.append(time.perf_counter() - p0)
                    else:
                        errors += 1
            except (TimeoutError, aiohttp.ClientError):
                errors += 1

    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=1.0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        started = time.monotonic()
        tasks = [asyncio.ensure_future(one(session)) for _ in range(n)]
        print("reading", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # until told to stop
        stop.set()
        await asyncio.gather(*tasks)
        seconds = max(1e-9, time.monotonic() - started)
    return {"readers": n, "reads": len(times), "reads_per_second": len(times) / seconds,
            "read_p50_s": percentile(times, 50), "read_p99_s": percentile(times, 99),
            "read_errors": errors, "read_statuses": statuses}


def _cpu(server: Server, redis_pid: int) -> dict[str, float]:
    return {role: procs.tree_cpu_seconds(pid) for role, pid in server.roles.items()} | {
        "redis": procs.cpu_seconds(redis_pid)}


REDIS_STATS = ("total_commands_processed", "total_net_input_bytes", "total_net_output_bytes")


def _redis_stats(client: Any) -> dict[str, int]:
    stats = client.info("stats")
    return {k: int(stats[k]) for k in REDIS_STATS}


def _phase(server: Server, secret: str, fakes: procs.Fakes, opts: Any, label: str) -> dict[str, Any]:
    """One paced open loop (every user sends an event every ``iso_pace`` s); its webhook times, and the
    replies drained after it (so that the next phase starts on empty queues)."""
    hooks = [diagnosis(f"iso-{label}-{secrets.token_hex(4)}", n, secret) for n in range(opts.iso_users)]
    load = run_load(server.url, hooks, deadline=300.0 + opts.iso_pace * EVENTS_PER_USER, pace=opts.iso_pace)
    ok = [x for x in load.sent if x.status == 200]
    drain(fakes, server.redis, 0, delay=opts.delay, timeout=opts.drain_timeout)
    return {"times": [x.seconds for x in load.sent], "ok": len(ok), "errors": len(load.sent) - len(ok)}


def _measure(server: Server, secret: str, fakes: procs.Fakes, opts: Any, console_url: str, token: str,
             redis_pid: int) -> dict[str, Any]:
    """Idle and with readers, alternating ``iso_rounds`` times (the machine's other work, which varies
    over minutes, falls on both alike); each kind's webhook times pooled."""
    fakes.configure(delay=opts.delay, line_limits={}, slack_channel_limit=None, slack_workspace_limit=None)
    pooled: dict[str, dict[str, Any]] = {k: {"times": [], "ok": 0, "errors": 0, "cpu_s_by_role": {}, "reads": []}
                                          for k in ("idle", "readers")}
    for r in range(opts.iso_rounds):
        for label in ("idle", "readers"):
            print(f"  round {r + 1}/{opts.iso_rounds}, {label}: {opts.iso_users} users, an event every "
                  f"{opts.iso_pace:g} s each, API delay {opts.delay * 1000:.0f} ms", flush=True)
            rd = Readers(f"{console_url}/console/api/funnel", token, READERS).start() if label == "readers" else None
            cpu0, stats0 = _cpu(server, redis_pid), _redis_stats(server.redis)
            got = _phase(server, secret, fakes, opts, label)
            cpu1, stats1 = _cpu(server, redis_pid), _redis_stats(server.redis)
            into = pooled[label]
            for k in REDIS_STATS:
                into[k] = into.get(k, 0) + stats1[k] - stats0[k]
            if rd is not None:
                into["reads"].append(rd.stop())
            into["times"] += got["times"]
            into["ok"] += got["ok"]
            into["errors"] += got["errors"]
            for role in cpu0:
                into["cpu_s_by_role"][role] = into["cpu_s_by_role"].get(role, 0.0) + cpu1[role] - cpu0[role]
            print(f"    webhook p50 {ms(percentile(got['times'], 50))}, p99 {ms(percentile(got['times'], 99))}",
                  flush=True)
    for fig in pooled.values():
        times = fig.pop("times")
        fig.update(events=len(times), webhook_p50_s=percentile(times, 50), webhook_p99_s=percentile(times, 99),
                   webhook_max_s=max(times, default=float("nan")))
    reads = pooled["readers"].pop("reads")
    pooled["readers"].update(
        reads=sum(x["reads"] for x in reads), read_errors=sum(x["read_errors"] for x in reads),
        reads_per_second=sum(x["reads_per_second"] for x in reads) / max(1, len(reads)),
        read_p50_s=max((x["read_p50_s"] for x in reads), default=float("nan")),
        read_p99_s=max((x["read_p99_s"] for x in reads), default=float("nan")))
    return pooled


def _start(lines: dict[str, str], env: dict[str, str], console_port: int, port: int
           ) -> tuple[list[procs.Started], dict[str, int], str]:
    web = procs.start_line("web", "web-isolation", env, url=f"http://127.0.0.1:{port}/healthz", lines=lines)
    started = [web]
    roles = {"web": web.pid}
    console_url = f"http://127.0.0.1:{port}"
    try:
        if "console" in lines:  # the console in a process of its own, on its own port
            console = procs.start_line("console", "console-isolation", dict(env, CONSOLE_PORT=str(console_port)),
                                       url=f"http://127.0.0.1:{console_port}/healthz", lines=lines)
            started.append(console)
            roles["console"] = console.pid
            console_url = f"http://127.0.0.1:{console_port}"
        if "worker" in lines:
            worker = procs.start_line("worker", "worker-isolation", env, lines=lines)
            started.append(worker)
            roles["worker"] = worker.pid
    except BaseException:
        for s in started:
            s.stop()
        raise
    return started, roles, console_url


def run(opts: Any, fakes: procs.Fakes) -> tuple[list[Row], dict[str, Any]]:
    secret, token = "bench-" + secrets.token_hex(8), "bench-console-" + secrets.token_hex(12)
    lines = procs.procfile()
    data: dict[str, Any] = {"procfile": lines, "readers": READERS}
    server = procs.RedisServer("isolation").start()
    client = server.client()
    started: list[procs.Started] = []
    try:
        now = time.time()
        seed.seed(client, "iso-done", opts.iso_finished, finished=True, at=now - 3 * seed.DAY)
        seed.seed(client, "iso-open", opts.iso_in_progress, finished=False, at=now - 3600)
        port, console_port = procs.free_port(), procs.free_port()
        env = procs.venv_env(PORT=str(port), REDIS_URL=server.url, LINE_CHANNEL_SECRET=secret,
                             LINE_CHANNEL_ACCESS_TOKEN=fakes.line_token, LINE_API_HOST=fakes.base_url,
                             CRMBOT_CONSOLE_TOKEN=token)
        started, roles, console_url = _start(lines, env, console_port, port)
        data["processes"] = {s.kind: s.describe() for s in started}
        redis_pid = server.proc.pid if server.proc is not None else 0
        ours = Server("crmbot", f"http://127.0.0.1:{port}/line/webhook", roles, client)
        _phase(ours, secret, fakes, opts, "warmup")
        data["runs"] = _measure(ours, secret, fakes, opts, console_url, token, redis_pid)
    finally:
        for s in reversed(started):
            s.stop()
        server.stop()
    rows = _rows(opts, data["runs"], "console" in lines)
    data["rows"] = [r.as_dict() for r in rows]
    return rows, data


def _rows(opts: Any, runs: dict[str, Any], apart: bool) -> list[Row]:
    idle, busy = runs["idle"], runs["readers"]
    x = ratio(busy["webhook_p99_s"], idle["webhook_p99_s"])
    load = f"{opts.iso_users / opts.iso_pace:.0f} ev/s offered, API {opts.delay * 1000:.0f} ms"
    where = "the console: process" if apart else "the web process's console lane"
    return [
        target_row("isolation-p99",
                   f"{ms(busy['webhook_p50_s'])} / {ms(busy['webhook_p99_s'])} ({busy['errors']} errors)",
                   f"idle: {ms(idle['webhook_p50_s'])} / {ms(idle['webhook_p99_s'])}", f"p99 {x:.2f}x idle",
                   x <= TARGET and busy["errors"] == 0,
                   f"webhook response p50 / p99 with {READERS} funnel-API readers ({where}), {load}, "
                   f"{opts.iso_rounds} rounds alternating"),
        Row("5", f"funnel API reads meanwhile ({READERS} clients, back to back)",
            f"{num(busy['reads_per_second'], 1)}/s, p50 {ms(busy['read_p50_s'])}, p99 {ms(busy['read_p99_s'])}",
            f"{busy['read_errors']} errors", "", "(none)", INFO),
        Row("5", "per webhook event while idle (every process; capacity model): CPU ms web / worker / Redis, "
            "Redis commands, bytes in / out",
            " / ".join(f"{idle['cpu_s_by_role'].get(r, float('nan')) * 1000 / max(1, idle['ok']):.2f}"
                       for r in ("web", "worker", "redis"))
            + f"; {idle.get('total_commands_processed', 0) / max(1, idle['ok']):.1f} commands, "
            f"{num(idle.get('total_net_input_bytes', 0) / max(1, idle['ok']))} / "
            f"{num(idle.get('total_net_output_bytes', 0) / max(1, idle['ok']))} B",
            f"{idle['ok']} events", "", "(none)", INFO),
        Row("5", "CPU seconds by process, idle / with readers",
            " / ".join(", ".join(f"{r} {v:.1f}" for r, v in f["cpu_s_by_role"].items()) for f in (idle, busy)),
            "", "", "(none)", INFO),
    ]


if __name__ == "__main__":  # the readers' process: python -m benchmarks.isolation URL N (token in the environment)
    # Niced: in production the readers' browsers run on other machines; here they share the two CPUs
    # with the servers, and should take only what the servers leave.
    os.nice(19)
    print(json.dumps(asyncio.run(_read(sys.argv[1], os.environ["BENCH_CONSOLE_TOKEN"], int(sys.argv[2])))))
