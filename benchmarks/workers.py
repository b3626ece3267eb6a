"""Section 6: the worker's CPU per delivery, with one and with two worker processes.

The Procfile's ``web:`` line and one, then two, ``worker:`` lines on a redis-server of their own, the
fake LINE API at the API delay (50 ms). The closed loop of section 1 (benchmarks/closedloop.py, N users
who each wait for their reply) runs against them; each worker process's own CPU time (user + system,
from ``/proc/<pid>/stat``, its tree) is read before the run and after its drain, and divided by the
webhooks answered 200: *worker CPU seconds per 1,000 events*. Beside it the same figure for main before
this round's worker changes (``BEFORE``, measured by this section on main's code), and the duplicates
and missing replies of each run (two workers share the queue shards: none may be delivered twice).

``--profile-worker`` adds a third run, its one worker under cProfile (``python -m cProfile -o ... crmbot
worker``; it stops on SIGTERM as the Procfile's does, and the profile is written then) and prints the
functions with the most own time and cumulative time (benchmarks/README.md has the summaries).
"""

from __future__ import annotations

import io
import pstats
import secrets
import shutil
import sys
from typing import Any

from benchmarks import procs
from benchmarks.report import INFO, Row, num, ratio, target_row, verdict
from benchmarks.webhook import Server, closed

# main's figure (2026-12-07, this section on main's code 014f66a, 32 users, 12 s, API 50 ms): worker CPU
# seconds per 1,000 events with one worker. The target: at most half of it.
BEFORE = 3.78  # 107 events/s; a first run under heavier other load gave 5.26 (43 events/s)
USERS = 32


def _start_workers(count: int, env: dict[str, str], lines: dict[str, str], profile: str | None
                   ) -> list[procs.Started]:
    started = []
    for k in range(count):
        if profile and k == 0:
            crmbot = shutil.which("crmbot", path=env["PATH"]) or "crmbot"
            args = [sys.executable, "-m", "cProfile", "-o", profile, crmbot, "worker"]
            proc = procs.spawn("worker-profiled", args, env)
            started.append(procs.Started("worker", lines.get("worker"), " ".join(args), proc))
        else:
            started.append(procs.start_line("worker", f"worker-scale-{k + 1}", env, lines=lines))
    return started


def _one(opts: Any, fakes: procs.Fakes, count: int, profile: str | None) -> dict[str, Any]:
    secret = "bench-" + secrets.token_hex(8)
    lines = procs.procfile()
    server = procs.RedisServer(f"workers-{count}").start()
    client = server.client()
    try:
        port = procs.free_port()
        env = procs.venv_env(PORT=str(port), REDIS_URL=server.url, LINE_CHANNEL_SECRET=secret,
                             LINE_CHANNEL_ACCESS_TOKEN=fakes.line_token, LINE_API_HOST=fakes.base_url)
        web = procs.start_line("web", f"web-scale-{count}", env, url=f"http://127.0.0.1:{port}/healthz", lines=lines)
        workers = _start_workers(count, env, lines, profile)
        roles = {"web": web.pid} | {f"worker{k + 1}": w.pid for k, w in enumerate(workers)}
        ours = Server(f"crmbot-{count}w", f"http://127.0.0.1:{port}/line/webhook", roles, client)
        try:
            closed(ours, secret, fakes, delay=0, users=8, seconds=2, drain_timeout=30, label="-warmup")
            fig = closed(ours, secret, fakes, delay=opts.delay, users=USERS, seconds=opts.closed_seconds,
                         drain_timeout=opts.drain_timeout)
        finally:
            web.stop()
            for w in workers:
                w.stop()
    finally:
        server.stop()
    used = fig["cpu_s"]
    per_worker = {r: v for r, v in used.items() if r.startswith("worker")}
    events = fig["events_ok"]
    fig["workers"] = count
    fig["worker_cpu_s_by_process"] = per_worker
    fig["worker_cpu_s_per_1000_events"] = sum(per_worker.values()) * 1000 / events if events else float("nan")
    fig["worker_events_by_process_cpu_share"] = {r: v / sum(per_worker.values()) for r, v in per_worker.items()
                                                 if sum(per_worker.values())}
    return fig


def profile_summary(path: str, top: int = 25) -> str:
    out = io.StringIO()
    stats = pstats.Stats(path, stream=out)
    stats.strip_dirs().sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def run(opts: Any, fakes: procs.Fakes) -> tuple[list[Row], dict[str, Any]]:
    profile = str(procs.RESULTS / "worker.prof") if getattr(opts, "profile_worker", False) else None
    runs = {n: _one(opts, fakes, n, None) for n in (1, 2)}
    data: dict[str, Any] = {"runs": {str(n): r for n, r in runs.items()}, "before_main": BEFORE}
    if profile:  # a run of its own: the profiler's overhead stays out of the figures above
        data["profiled_run"] = _one(opts, fakes, 1, profile)
        summary = profile_summary(profile)
        (procs.RESULTS / "worker-profile.txt").write_text(summary)
        data["profile"] = str(procs.RESULTS / "worker-profile.txt")
        print(summary, flush=True)
    one, two = runs[1]["worker_cpu_s_per_1000_events"], runs[2]["worker_cpu_s_per_1000_events"]
    cut = ratio(one, BEFORE)
    twice = sum(r["replies_duplicated"] for r in runs.values())
    missing = sum(r["replies_missing"] for r in runs.values())
    split = " / ".join(f"{v:.1f}" for v in runs[2]["worker_cpu_s_by_process"].values())
    rows = [
        Row("6", f"worker CPU s per 1,000 events, one worker, closed loop N={USERS}, API {opts.delay * 1000:.0f} ms",
            num(one, 2), f"main before this round: {num(BEFORE, 2)}", f"{cut:.2f}x",
            "<= 0.5x main's", verdict(cut <= 0.5) if BEFORE == BEFORE else INFO),
        target_row("cpu-per-delivery-workers", f"{num(two, 2)} (CPU s by process: {split})",
                   f"one worker: {num(one, 2)}", f"{ratio(two, one):.2f}x", ratio(two, one) <= 1.2,
                   figure="worker CPU s per 1,000 events, two workers (the sum of both processes' own CPU)"),
        Row("6", "closed loop events/s with one / two workers",
            f"{num(runs[1]['events_per_second'])} / {num(runs[2]['events_per_second'])}", "", "", "(none)", INFO),
        Row("6", "replies duplicated / missing, one and two workers", f"{twice} / {missing}",
            f"of {sum(r['replies_expected'] for r in runs.values()):,}", "", "0 / 0",
            verdict(not twice and not missing)),
    ]
    return rows, data
