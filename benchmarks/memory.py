"""Section 3: memory and start-up.

- Redis bytes per user: ``used_memory`` before and after committing 100,000 finished diagnoses (opted
  in to the reminder), then 10,000 in progress, each time after the dedupe window has run out (the
  marks are deleted, as their TTL would), on a redis-server of its own. See benchmarks/seed.py.
- Permanent memory per finished user, every key family: 5,000 finished users (their record, and the
  operator's figures and lead as the worker applies them: a follower with a display name, a fifth from
  a source) on a redis-server of its own; ``MEMORY USAGE`` of every key summed by family
  (:func:`figures_memory`), the dedupe marks reported apart (they expire).
- The resident memory (VmRSS) of the largest process of the web role after the webhook load (section
  1's runs; a gunicorn worker today), next to the echo bot's largest after the same load.
- ``crmbot chat``'s start-up: from spawning the command until it prints the first question ("Q1/10";
  it is given the start button's "1" on stdin), the median of five; and which packages it imports
  (``-X importtime``): it must not import the SDKs it does not use (linebot, slack_sdk, slack_bolt,
  flask, aiohttp). Baseline: the interpreter alone, and what importing those SDKs costs.
"""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import procs, seed
from benchmarks.report import Row, ms, num, ratio, target_row, verdict

FORBIDDEN = ("linebot", "slack_sdk", "slack_bolt", "flask", "werkzeug", "aiohttp")
REMINDER_NOW = 1775005200.0  # 2026-04-01T10:00:00+09:00: the fan-out's instant
FINISHED_AT = REMINDER_NOW - 90 * seed.DAY


def used_memory(client: Any) -> int:
    time.sleep(0.2)
    return int(client.info("memory")["used_memory"])


def _spawn_time(args: list[str], env: dict[str, str], until: bytes | None = None, stdin: bytes = b"") -> float:
    p0 = time.perf_counter()
    proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env=env, cwd=procs.ROOT)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(stdin)
    proc.stdin.close()
    took = None
    if until is not None:
        for line in proc.stdout:
            if until in line:
                took = time.perf_counter() - p0
                break
    proc.stdout.read()
    proc.wait(timeout=60)
    if until is not None and took is None:
        raise RuntimeError(f"{args!r} never printed {until!r}")
    return took if took is not None else time.perf_counter() - p0


def chat_startup(redis_url: str, runs: int = 5) -> dict[str, Any]:
    crmbot = str(Path(sys.executable).parent / "crmbot")
    env = procs.venv_env(REDIS_URL=redis_url)
    chat = [_spawn_time([crmbot, "chat", "--user", f"bench{i}"], env, b"Q1/10", b"1\n") for i in range(runs)]
    bare = [_spawn_time([sys.executable, "-c", "pass"], env) for _ in range(runs)]
    sdk_code = "import flask, linebot.v3.messaging, slack_sdk, slack_bolt"
    sdks = [_spawn_time([sys.executable, "-c", sdk_code], env) for _ in range(runs)]
    imp = subprocess.run([sys.executable, "-X", "importtime", crmbot, "chat", "--user", "bench-imports"],
                         input=b"1\n", capture_output=True, env=env, cwd=procs.ROOT, timeout=60)
    modules: dict[str, int] = {}
    for line in imp.stderr.decode(errors="replace").splitlines():
        if line.startswith("import time:") and "|" in line:
            _, cumulative, name = (x.strip() for x in line[len("import time:"):].split("|"))
            if cumulative.isdigit() and not name.startswith(" "):
                top = name.strip().split(".")[0]
                modules[top] = max(modules.get(top, 0), int(cumulative))
    ours = ("bot", "conversations", "scoring", "site", "encodings", "__editable___crmbot_0_1_0_finder")
    heavy = sorted(((k, v) for k, v in modules.items() if k not in ours), key=lambda kv: -kv[1])[:6]
    return {
        "chat_to_first_question_s": statistics.median(chat),
        "chat_runs_s": chat,
        "python_bare_s": statistics.median(bare),
        "python_with_sdks_s": statistics.median(sdks),
        "sdk_import_cost_s": statistics.median(sdks) - statistics.median(bare),
        "forbidden_imported": sorted(m for m in modules if m in FORBIDDEN),
        "heaviest_imports_ms": {k: v / 1000 for k, v in heavy},
        "modules_imported": len(modules),
    }


FIGURES_USERS = 5000


def _family(key: str) -> str:
    """A key's family for the memory table: its hash tag and the ids in it generalised."""
    rest = re.sub(r"^crmbot:\{u:[^}]*\}", "{user}", key)
    rest = re.sub(r"^crmbot:\{stats:\d+\}", "{stats:k}", rest)
    rest = re.sub(r"^crmbot:\{q:?\d*\}", "{queue}", rest)
    for part in ("lead", "person", "d", "p"):
        rest = re.sub(rf"(:{part}):[^:]+(:[^:]+)*$",
                      lambda m: m.group(1) + (":<id>" + (":notes" if key.endswith(":notes") else "")), rest)
    return re.sub(r"(:seen):.*$", r"\1", rest)


def figures_memory(client: Any, count: int = FIGURES_USERS) -> dict[str, Any]:
    """Seed ``count`` finished users (record, figures, lead) and sum ``MEMORY USAGE`` by key family."""
    from conversations import analytics

    seed.seed(client, "fig", count, finished=True, at=FINISHED_AT)
    script = client.register_script(analytics.APPLY_LUA)
    answers = seed.ANSWERS
    with client.pipeline(transaction=False) as p:
        for n in range(count):
            user = seed.line_user("fig", n)
            begun = FINISHED_AT + (n % 86400) * 0.001
            a = answers[n % len(answers)]
            lead = {"id": analytics.lead_id("line", user, 1, begun), "channel": "line", "user": user, "sid": 1,
                    "n": 13, "begun": begun, "updated": begun + 40, "remind": 1, "open": 0, "reached": 10,
                    "answers": a, "finished": begun + 40, "tier": analytics.tier_for(a.count("A")),
                    **({"source": "ads"} if n % 5 == 0 else {})}
            keys, args = analytics.apply_call({"at": begun + 40, "lead": lead, "follow": 1, "person": f"line:{user}"},
                                              REMINDER_NOW, 7 * 86400)
            script(keys=keys, args=args, client=p)
            step = analytics.set_name_step("line", user, f"ショップ{n}")
            assert step is not None
            p.eval(step.lua, len(step.keys), *step.keys, *step.args)
            if n % 500 == 499:
                p.execute()
        p.execute()
    families: dict[str, list[int]] = {}
    for raw in client.scan_iter(count=5000):
        key = raw.decode()
        families.setdefault(_family(key), [0, 0])
        families[_family(key)][0] += 1
        families[_family(key)][1] += int(client.memory_usage(key, samples=0) or 0)
    dedupe = {k: v for k, v in families.items() if k.endswith(":seen")}
    kept = {k: v for k, v in families.items() if k not in dedupe}
    return {
        "users": count,
        "families": {k: {"keys": v[0], "bytes": v[1], "per_user": v[1] / count} for k, v in sorted(kept.items())},
        "dedupe_families": {k: {"keys": v[0], "bytes": v[1], "per_user": v[1] / count} for k, v in dedupe.items()},
        "bytes_per_finished_user": sum(v[1] for v in kept.values()) / count,
        "dedupe_bytes_per_user": sum(v[1] for v in dedupe.values()) / count,
    }


def figures_rows(data: dict[str, Any]) -> list[Row]:
    rows = [target_row("memory-per-finished-user", num(data["bytes_per_finished_user"]),
                       f"dedupe marks apart: {num(data['dedupe_bytes_per_user'])} B", "",
                       data["bytes_per_finished_user"] <= 1024,
                       figure=f"permanent bytes per finished user, every family ({data['users']:,}, MEMORY USAGE)")]
    for name, f in data["families"].items():
        rows.append(Row("3", f"  {name} ({f['keys']:,} keys)", num(f["per_user"]), "", "", "(per user)", "info"))
    return rows


def run(opts: Any, keep: bool = False, webhook: dict[str, Any] | None = None
        ) -> tuple[list[Row], dict[str, Any], procs.RedisServer | None]:
    own = procs.RedisServer("memory-figures").start()
    try:
        print(f"  {FIGURES_USERS:,} finished users with their figures: MEMORY USAGE by key family ...", flush=True)
        figures = figures_memory(own.client())
    finally:
        own.stop()
    server = procs.RedisServer("memory").start()
    client = server.client()
    data: dict[str, Any] = {"finished": opts.finished, "in_progress": opts.in_progress, "figures": figures}
    try:
        base = used_memory(client)
        print(f"  committing {opts.finished:,} finished diagnoses through RedisStore.update ...", flush=True)
        t0 = time.monotonic()
        seed.seed(client, "done", opts.finished, finished=True, at=FINISHED_AT)
        data["seed_seconds_finished"] = time.monotonic() - t0
        data["dedupe_marks_expired_finished"] = seed.expire_dedupe_marks(client)
        after_finished = used_memory(client)
        print(f"  committing {opts.in_progress:,} diagnoses in progress ...", flush=True)
        seed.seed(client, "open", opts.in_progress, finished=False, at=REMINDER_NOW - 3600)
        data["dedupe_marks_expired_in_progress"] = seed.expire_dedupe_marks(client)
        after_progress = used_memory(client)
        sample_done = seed.line_user("done", 0)
        sample_open = seed.line_user("open", 5)
        from conversations import keys
        from conversations.keys import Subject

        data.update(
            used_memory_empty=base,
            used_memory_after_finished=after_finished,
            used_memory_after_in_progress=after_progress,
            bytes_per_finished_user=(after_finished - base) / max(1, opts.finished),
            bytes_per_user_in_progress=(after_progress - after_finished) / max(1, opts.in_progress),
            keys=client.dbsize(),
            sample_record_finished=client.get(keys.conv(Subject("line", sample_done))).decode(),
            sample_record_in_progress=client.get(keys.conv(Subject("line", sample_open))).decode(),
            memory_usage_record_finished=client.memory_usage(keys.conv(Subject("line", sample_done))),
            memory_usage_record_in_progress=client.memory_usage(keys.conv(Subject("line", sample_open))),
            memory_usage_reminder_index=client.memory_usage(keys.REMIND_INDEX, samples=0),
            allocator=client.info("memory").get("mem_allocator"),
        )
        print("  crmbot chat start-up ...", flush=True)
        data["startup"] = chat_startup(server.url)
    finally:
        if not keep:
            server.stop()
    rows = [
        Row("3", f"Redis bytes per finished user ({opts.finished:,}, dedupe marks expired)",
            num(data["bytes_per_finished_user"]), f"record alone: {data['memory_usage_record_finished']} B",
            "", "<= 400 B", verdict(data["bytes_per_finished_user"] <= 400)),
        Row("3", f"Redis bytes per user in progress ({opts.in_progress:,})", num(data["bytes_per_user_in_progress"]),
            f"record alone: {data['memory_usage_record_in_progress']} B", "", "<= 1 KB",
            verdict(data["bytes_per_user_in_progress"] <= 1024)),
    ]
    rows += figures_rows(figures)
    if webhook:
        ours, echo = webhook.get("crmbot_worker_rss_bytes") or [0], webhook.get("echo_worker_rss_bytes") or [0]
        rows.append(Row("3", "RSS of the largest web process after the load", f"{max(ours) / 2**20:.0f} MiB",
                        f"echo bot's: {max(echo) / 2**20:.0f} MiB", f"{ratio(max(ours), max(echo)):.2f}x",
                        "(none)", "info"))
    st = data["startup"]
    heavy = ", ".join(f"{k} {v:.0f} ms" for k, v in list(st["heaviest_imports_ms"].items())[:4])
    rows.append(Row("3", "crmbot chat: start to first question (median of 5)", ms(st["chat_to_first_question_s"]),
                    f"bare python: {ms(st['python_bare_s'])}; the SDKs would add {ms(st['sdk_import_cost_s'])}",
                    "", "no SDK imported", verdict(not st["forbidden_imported"])))
    rows.append(Row("3", "crmbot chat: heaviest other packages it imports", heavy,
                    "SDKs imported: " + (", ".join(st["forbidden_imported"]) or "none"), "", "(none)", "info"))
    return rows, data, (server if keep else None)
