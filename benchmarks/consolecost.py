"""Section 7: what the console costs Redis, at 10 and at 10,000 leads (issue 16, item 4).

One overview view (its charts drawn in the page) and one funnel API read, each counted in Redis commands
with MONITOR (the commands clients send; those a Lua script runs are left out), on a redis-server of its
own seeded with 10 leads and then 10,000 (written as the worker applies figures records). The target: the
same count at both sizes, and at most 30 for the overview. The console runs in this process (Flask's test
client, logged in with the shared password), so nothing but the console talks to this Redis meanwhile.

tests/bot/console/test_console_cost.py asserts the same with :func:`counting` and :func:`seed` from here.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import redis

from benchmarks import procs
from benchmarks.report import Row, target_row
from conversations import analytics
from conversations.analytics import apply_call, japan_date

LIMIT = 30  # commands of one overview view, its charts included (issue 16)
SIZES = (10, 10_000)


@contextmanager
def counting(r: redis.Redis) -> Iterator[list[str]]:
    """The commands clients sent while inside (MONITOR's lines, those run by a script left out). MONITOR is on
    once it shows a marker we sent: what came before that marker is not counted."""
    lines: list[str] = []
    seen: list[str] = []
    changed = threading.Condition()

    def watch() -> None:
        with r.monitor() as m:
            with changed:
                lines.append("")  # the monitor is connected
                changed.notify_all()
            while True:
                cmd = m.next_command()
                if cmd.get("client_type") == "lua" or "lua" in str(cmd.get("client_address", "")):
                    continue
                with changed:
                    lines.append(cmd["command"])
                    changed.notify_all()
                if cmd["command"] == "ECHO crmbot-count-end":
                    return

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    probe = redis.Redis(connection_pool=r.connection_pool)
    with changed:
        if not changed.wait_for(lambda: lines, 10):
            raise RuntimeError("MONITOR did not connect")
    for n in range(100):
        marker = f"crmbot-count-start-{n}"
        probe.echo(marker)
        with changed:
            if changed.wait_for(lambda marker=marker: f"ECHO {marker}" in lines, 1):
                break
    else:
        raise RuntimeError("MONITOR never showed our marker")
    try:
        yield seen
    finally:
        probe.echo("crmbot-count-end")
        t.join(10)
        if t.is_alive():
            raise RuntimeError("MONITOR never showed the end marker")
        start = lines.index(f"ECHO {marker}") + 1
        seen += lines[start:lines.index("ECHO crmbot-count-end")]


def seed(r: redis.Redis, count: int, now: float) -> None:
    """``count`` leads over the last 30 days, written as figures records are applied (pipelined scripts): a
    third in progress, a fifth from a source, a seventh asking for a consultation, all of content version v1."""
    script = r.register_script(analytics.APPLY_LUA)
    with r.pipeline(transaction=False) as p:
        for i in range(count):
            begun = now - (i % 30) * 86400 - 7200 - i % 1000  # never in the hour the expiry falls in
            user = f"U{i:032x}"
            lid = analytics.lead_id("line", user, 1, begun)
            finished = i % 3 != 0
            lead: dict[str, Any] = {"id": lid, "channel": "line", "user": user, "sid": 1, "n": 12, "begun": begun,
                                    "updated": begun + 300, "remind": 0, "open": int(not finished),
                                    "reached": 10 if finished else 4, "answers": "ABCDABCDAB" if finished else "ABC",
                                    "source": "ads" if i % 5 == 0 else "", "ver": "v1"}
            if finished:
                lead |= {"finished": begun + 300, "tier": "B"}
            if i % 7 == 0:
                lead["consult"] = 1
            keys, args = apply_call({"at": begun + 300, "lead": lead, "follow": 1, "person": f"line:{user}"},
                                    now, 7 * 86400)
            script(keys=keys, args=args, client=p)
            if i % 500 == 499:
                p.execute()
        p.execute()


def costs(views: dict[str, Callable[[], Any]], r: redis.Redis) -> dict[str, int]:
    """Each view's Redis commands (once before, uncounted: what a first view sets up once is not its cost)."""
    out = {}
    for name, view in views.items():
        view()
        with counting(r) as seen:
            view()
        out[name] = len(seen)
    return out


def _views(http: Any, now: float, token: str) -> dict[str, Callable[[], Any]]:
    day = japan_date(now)
    span = f"from={(day - timedelta(days=29)).isoformat()}&to={day.isoformat()}"

    def get(path: str, **kw: Any) -> Callable[[], Any]:
        def go() -> Any:
            res = http.get(path, **kw)
            if res.status_code != 200:
                raise RuntimeError(f"{path}: {res.status_code}")
            return res
        return go

    return {"overview": get(f"/console/?{span}"),
            "funnel_api": get(f"/console/api/funnel?{span}&version=v1", headers={"Authorization": f"Bearer {token}"})}


def measure(url: str, data_dir: Path) -> dict[str, Any]:
    import re

    from bot.app import build_services, create_app
    from bot.config import Config

    password, token = "bench console password", "bench-console-token-0123456789"
    # the figures' cache off: each view's cost is a first read's (bot/console/figures_cache.py)
    config = Config(redis_url=url, console_password=password, console_token=token, secret_key="b" * 40,
                    data_dir=data_dir, console_figures_seconds=0)
    svc = build_services(config)
    http = create_app(services=svc).test_client()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', http.get("/console/login").get_data(as_text=True))
    if csrf is None or http.post("/console/login", data={"password": password,
                                                          "csrf_token": csrf.group(1)}).status_code != 302:
        raise RuntimeError("could not log in to the console")
    r = redis.Redis.from_url(url)
    now = time.time()
    out: dict[str, Any] = {}
    for size in SIZES:
        seed(r, size, now)  # the first ones again (counted once), then the rest
        out[str(size)] = costs(_views(http, now, token), r)
    r.close()
    return out


def run(opts: Any) -> tuple[list[Row], dict[str, Any]]:
    server = procs.RedisServer("console-cost").start()
    try:
        with tempfile.TemporaryDirectory(prefix="crmbot-bench-console-") as tmp:
            data = measure(server.url, Path(tmp))
    finally:
        server.stop()
    few, many = data[str(SIZES[0])], data[str(SIZES[-1])]
    flat = few == many and few["overview"] <= LIMIT
    rows = [target_row("console-commands-flat",
                       f"overview {few['overview']} / {many['overview']}, funnel API {few['funnel_api']} / "
                       f"{many['funnel_api']}", f"{SIZES[0]:,} vs {SIZES[-1]:,} leads", "", flat)]
    return rows, {"commands": data, "limit": LIMIT}
