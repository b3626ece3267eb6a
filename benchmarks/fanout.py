"""Section 4: the quarterly reminder fan-out against rate-limited fake APIs.

200 Slack teams (one workspace) and 100,000 LINE users who finished the diagnosis and opted in (the
memory section's users when it ran first, else seeded the same way). The fakes enforce limits as
token buckets and answer 429 with Retry-After past them:
  Slack chat.postMessage: 1 message/s per channel (burst 1) and a workspace-wide rate (``--slack-rate``,
  default 2/s; the bot's SLACK_RATE_PER_SECOND is set to the same, as an operator sets it to the
  workspace's limit) with bursts of 10;
  LINE multicast: 200 requests/s (burst 20; ``--line-rate``, ``--line-burst``).
Each API answer also takes the API delay (default 50 ms).

One reminder pass at the quarter's kickoff (2026-04-01 10:00 JST), as ``crmbot clock`` runs it
(``build_reminders(build_services(config)).run(now)``: it only queues), with a worker beside it as the
Procfile's ``worker:`` line runs in production (``build_worker``: asyncio, limits shared in Redis; it
sends the queued posts and multicasts and retries what was refused). The clock both use is the pass's
instant moving in real time.

Figures: the LINE part of the pass, its multicasts (from the first accepted to the last) against their
own minimum: what LINE's multicast limit allows for ceil(users / 500) requests, the fewest that can
carry them (max(0, requests - burst) / rate); beside it, the time the pass took to read the opted-in
users and queue the first multicast. The whole pass against the larger of Slack's and
LINE's minimums (max(0, accepted requests - burst) / rate each); whether every team and every user got
exactly one reminder; the share of requests answered 429.
"""

from __future__ import annotations

import math
import secrets
import sys
import time
from typing import Any

from benchmarks import procs, seed
from benchmarks.memory import FINISHED_AT, REMINDER_NOW
from benchmarks.report import Row, num, ratio, target_row, verdict

SLACK_CHANNEL = (1.0, 1.0)  # Slack: about 1 message per second per channel
SLACK_WORKSPACE_BURST = 10.0
MULTICAST = "/v2/bot/message/multicast"


def _start_worker(env: dict[str, str], *, offset: float) -> procs.Started:
    """The Procfile's ``worker:`` line (``crmbot worker``) on the pass's clock (benchmarks/shifted.py)."""
    line = procs.procfile().get("worker", "")
    if line.split() != ["crmbot", "worker"]:
        raise RuntimeError(f"the Procfile's worker: line is {line!r}, not 'crmbot worker'")
    args = [sys.executable, "-m", "benchmarks.shifted", repr(offset), "worker"]
    proc = procs.spawn("worker-fanout", args, env)
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)  # as procs.start_line: it must still run after its start-up
    if proc.poll() is not None:
        raise RuntimeError(f"{args!r} exited with {proc.returncode}; see {procs.LOGS}")
    return procs.Started("worker", line, " ".join(args), proc)


def run(opts: Any, fakes: procs.Fakes, seeded: procs.RedisServer | None) -> tuple[list[Row], dict[str, Any]]:
    from bot.app import build_reminders, build_services
    from bot.config import Config
    from bot.slack.transport import WORKSPACE_LIMIT
    from conversations import jobs, keys
    from conversations.keys import TeamRef
    from conversations.teams import TeamStore

    server = seeded or procs.RedisServer("fanout").start()
    client = server.client()
    data: dict[str, Any] = {}
    try:
        if seeded is None:
            print(f"  committing {opts.finished:,} finished diagnoses (opted in) ...", flush=True)
            seed.seed(client, "done", opts.finished, finished=True, at=FINISHED_AT)
        users = {x.decode().split(":", 1)[1] for x in client.sscan_iter(keys.REMIND_INDEX, count=5000)}
        teams = TeamStore(client)
        refs = [TeamRef("T1", f"C{n:08d}") for n in range(opts.teams)]
        for ref in refs:
            teams.register(ref, f"team {ref.channel}", "Asia/Tokyo", "UADMIN", REMINDER_NOW - 60 * seed.DAY)
        slack_rate = opts.slack_rate or WORKSPACE_LIMIT.rate
        data["product_default_slack_rate"] = WORKSPACE_LIMIT.rate
        fakes.configure(delay=opts.delay, line_limits={MULTICAST: [opts.line_rate, opts.line_burst]},
                        slack_channel_limit=list(SLACK_CHANNEL),
                        slack_workspace_limit=[slack_rate, SLACK_WORKSPACE_BURST])
        config = Config(redis_url=server.url, line_channel_secret="bench-" + secrets.token_hex(8),
                        line_channel_access_token=fakes.line_token, line_api_host=fakes.base_url,
                        slack_signing_secret="bench-" + secrets.token_hex(8), slack_bot_token=fakes.slack_token,
                        slack_api_url=fakes.base_url + "/api/", slack_rate=slack_rate,
                        slack_burst=SLACK_WORKSPACE_BURST, line_multicast_rate=opts.line_rate)
        started = time.time()

        def clock() -> float:
            return REMINDER_NOW + (time.time() - started)

        svc = build_services(config, clock=clock)
        reminders = build_reminders(svc)
        # The worker as production runs it: the Procfile's worker: line, a process of its own (the pass
        # runs here, as `crmbot clock` would; sharing one interpreter, its 100,000-record read would
        # starve the worker's event loop of the GIL), on the pass's clock (benchmarks/shifted.py).
        env = procs.venv_env(REDIS_URL=server.url, LINE_CHANNEL_SECRET=config.line_channel_secret or "",
                             LINE_CHANNEL_ACCESS_TOKEN=fakes.line_token, LINE_API_HOST=fakes.base_url,
                             SLACK_SIGNING_SECRET=config.slack_signing_secret or "", SLACK_BOT_TOKEN=fakes.slack_token,
                             SLACK_API_URL=fakes.base_url + "/api/", SLACK_RATE_PER_SECOND=str(slack_rate),
                             SLACK_RATE_BURST=str(SLACK_WORKSPACE_BURST), LINE_RATE_PER_SECOND=str(opts.line_rate))

        def queued() -> int:
            with client.pipeline(transaction=False) as p:
                for shard in range(jobs.QUEUE_SHARDS):
                    p.zcard(jobs.due(shard))
                return sum(p.execute())

        def parked_count() -> int:
            with client.pipeline(transaction=False) as p:
                for shard in range(jobs.QUEUE_SHARDS):
                    p.zcard(jobs.parked(shard))
                return sum(p.execute())

        print(f"  one reminder pass: {len(refs)} Slack teams, {len(users):,} LINE users; Slack "
              f"{slack_rate:g} msg/s workspace-wide, LINE multicast {opts.line_rate:g}/s, API delay "
              f"{opts.delay * 1000:.0f} ms", flush=True)
        worker = _start_worker(env, offset=REMINDER_NOW - started)
        t0 = time.time()
        summary = reminders.run(clock())
        pass_seconds = time.time() - t0
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and queued():
            time.sleep(0.5)  # polling the queue's recovery marks until every job is recorded, bounded
        worker.stop()
        rec = fakes.records()
        leftover = queued()
        parked = parked_count()
    finally:
        server.stop()

    channels = {r.channel for r in refs}
    posts = {ch: len(p) for ch, p in rec["posts"].items()}
    slack_missing = sum(1 for ch in channels if posts.get(ch, 0) == 0)
    slack_twice = sum(n - 1 for ch, n in posts.items() if n > 1)
    slack_stray = sum(n for ch, n in posts.items() if ch not in channels)
    got = rec["multicast"]
    line_missing = sum(1 for u in users if got.get(u, 0) == 0)
    line_twice = sum(n - 1 for n in got.values() if n > 1)
    line_stray = sum(n for u, n in got.items() if u not in users)
    timeline = rec["timeline"]
    accepted = [t for t, _, status in timeline if status == 200]
    refused = sum(1 for _, _, status in timeline if status == 429)
    slack_ok = sum(1 for _, ep, s in timeline if ep == "chat.postMessage" and s == 200)
    line_ok = sum(1 for _, ep, s in timeline if ep == MULTICAST and s == 200)
    slack_min = max(0.0, slack_ok - SLACK_WORKSPACE_BURST) / slack_rate
    line_min = max(0.0, line_ok - opts.line_burst) / opts.line_rate
    minimum = max(slack_min, line_min)
    line_requests_min = math.ceil(len(users) / 500)  # the fewest multicasts that reach every user
    line_own_min = max(0.0, line_requests_min - opts.line_burst) / opts.line_rate
    done = (max(accepted) - t0) if accepted else float("nan")
    # the pass queues Slack's posts first, then reads the opted-in LINE users and queues their
    # multicasts; the worker sends both as they come (Slack's paced by its limits, LINE's by its own)
    multicasts = [t for t, ep, s in timeline if ep == MULTICAST and s == 200]
    slack_times = [t for t, ep, s in timeline if ep == "chat.postMessage" and s == 200]
    slack_part = (max(slack_times) - t0) if slack_times else 0.0
    line_part = (max(multicasts) - min(multicasts)) if multicasts else 0.0
    # before it: from the pass's start until the first multicast (reading 100,000 records, claiming a batch)
    line_lead = (min(multicasts) - t0) if multicasts else 0.0
    data.update(
        teams=len(refs), line_users=len(users), slack_rate=slack_rate, line_rate=opts.line_rate,
        api_delay_s=opts.delay, pass_seconds=pass_seconds, done_seconds=done,
        minimum_seconds=minimum, slack_minimum_seconds=slack_min, line_minimum_seconds=line_min,
        line_fewest_requests=line_requests_min, line_own_minimum_seconds=line_own_min,
        slack_part_seconds=slack_part, line_part_seconds=line_part, line_until_first_multicast_seconds=line_lead,
        requests=len(timeline), refused_429=refused, share_429=refused / len(timeline) if timeline else 0.0,
        slack_posts_accepted=slack_ok, multicasts_accepted=line_ok,
        slack_missing=slack_missing, slack_twice=slack_twice, slack_stray=slack_stray,
        line_missing=line_missing, line_twice=line_twice, line_stray=line_stray,
        outbox_left=leftover, parked=parked,
        summary={"queued": len(summary.queued), "skipped": len(summary.skipped)},
        api_status=rec["status"],
    )
    once = not (slack_missing or slack_twice or slack_stray or line_missing or line_twice or line_stray)
    line_x = ratio(line_part, line_own_min)
    rows = [
        target_row("fanout-spread",
                   f"{num(line_part, 2)} s ({line_ok} multicasts, first to last; the pass queued the first "
                   f"{num(line_lead, 2)} s after it began)",
                   f"LINE's limit allows {line_requests_min} requests (ceil(users/500)) in {num(line_own_min, 2)} s "
                   f"({opts.line_rate:g}/s, burst {opts.line_burst:g})", f"{line_x:.2f}x",
                   line_x <= 1.5 if line_own_min > 0 else None,
                   figure=f"reminder fan-out, LINE part: {len(users):,} users by multicast, sent in"),
        Row("4", f"reminder pass: {len(refs)} teams + {len(users):,} LINE users, done in",
            f"{num(done, 1)} s (Slack part {num(slack_part, 1)} s)",
            f"limits' minimum: {num(minimum, 1)} s (Slack {num(slack_min, 1)} s, LINE {num(line_min, 1)} s)",
            f"{ratio(done, minimum):.2f}x", "(none)", "info"),
        Row("4", "reminders received exactly once",
            f"Slack {len(channels) - slack_missing}/{len(channels)}, LINE {len(users) - line_missing:,}/{len(users):,}"
            f"; {slack_twice + line_twice} twice, {slack_stray + line_stray} stray",
            "", "", "each exactly once", verdict(once)),
        Row("4", "requests answered 429", f"{refused} of {len(timeline)} ({data['share_429'] * 100:.2f}%)",
            f"{slack_ok} posts, {line_ok} multicasts accepted", "", "<= 1%", verdict(data["share_429"] <= 0.01)),
    ]
    return rows, data

