"""/console/experiments through Flask's test client on a real Redis: the counts per variant with their rates, the
test in plain words and the sample still needed; ending refused to a viewer, done by an admin (audited, the winner
kept in Redis for every process), once."""

from __future__ import annotations

from pathlib import Path

import redis

from bot.console import audit
from conversations import experiments, keys
from tests.bot.console.conftest import Console, console_config, csrf_of, make_console
from tests.conftest import FakeClock
from tests.conversations.experiment_content import content_dir


def counted(console: Console, variant: str, n: int, *, finished: int, requested: int) -> None:
    """``n`` LINE diagnoses of the consultation button's ``variant`` (their figures applied as the worker does)."""
    for i in range(n):
        lead = {"channel": "line", "user": f"U{variant}{i:031x}", "sid": 1, "var": f"consult-cta:{variant}"}
        if i < finished:
            lead["finished"] = 1.0
        if i < requested:
            lead["consult"] = 1
        for step in experiments.count_steps({"lead": lead}) * 2:  # twice: a retried record counts once
            console.svc.redis.do(step)


def test_the_page_compares_variants_and_an_admin_ends_the_experiment(
        r: redis.Redis, redis_url: str, clock: FakeClock, tmp_path: Path) -> None:
    console = make_console(console_config(redis_url, tmp_path, content_dir=content_dir(tmp_path)), r, clock)
    console.add_operator("admin@example.jp", "Admin", "admin")
    console.add_operator("viewer@example.jp", "Viewer", "viewer")
    counted(console, "a", 300, finished=200, requested=20)
    counted(console, "b", 300, finished=200, requested=60)
    viewer = console.client()
    assert console.login_as("viewer@example.jp", http=viewer).status_code == 302
    html = viewer.get("/console/experiments").get_data(as_text=True)
    assert "文面のテスト" in html and 'id="nav-experiments"' in html
    assert '<td class="started">300</td><td class="finished">200</td>' in html
    assert '<td class="requested">20</td>' in html and '<td class="requested">60</td>' in html
    assert '<td class="request-rate">10%</td>' in html and '<td class="request-rate">30%</td>' in html
    cta = html.split('data-experiment="q1"')[0]  # the consultation button's experiment (listed first)
    assert "偶然だけでは説明しにくい" in cta  # 10% against 30% of 200 each
    assert "5ポイントの差を見分けるには、各案であと" in cta  # from 10%, about 340 each are needed
    assert "end-experiment" not in html  # a viewer reads only
    refused = viewer.post("/console/experiments/consult-cta/end", data={"csrf_token": csrf_of(html), "winner": "b"})
    assert refused.status_code == 403
    assert not r.hgetall(keys.EXPERIMENT_WINNERS)

    assert console.login_as("admin@example.jp").status_code == 302
    html = console.http.get("/console/experiments?effect=10").get_data(as_text=True)
    assert "10ポイントの差を見分けるのに十分な件数があります" in html  # 10% -> 20%: about 100 each suffice
    assert 'class="end-experiment"' in html
    done = console.http.post("/console/experiments/consult-cta/end", data={"csrf_token": csrf_of(html), "winner": "b"},
                             follow_redirects=True)
    shown = done.get_data(as_text=True)
    assert "これからは全員に案「b」を表示します" in shown
    cta, q1 = shown.split('data-experiment="q1"')
    assert "終了済み" in cta and "end-experiment" not in cta
    assert "end-experiment" in q1  # the other one runs on
    assert '<td class="started">300</td>' in cta  # the snapshot
    assert r.hgetall(keys.EXPERIMENT_WINNERS) == {b"consult-cta": b"b"}
    [entry] = [e for e in audit.every(r, action="experiment.end")]
    assert (entry.who, entry.target, entry.detail) == ("Admin", "experiment:consult-cta", "b")
    again = console.http.post("/console/experiments/consult-cta/end", data={"csrf_token": csrf_of(shown),
                                                                            "winner": "a"}, follow_redirects=True)
    assert "すでに終了しています（案「b」）" in again.get_data(as_text=True)
    assert r.hgetall(keys.EXPERIMENT_WINNERS) == {b"consult-cta": b"b"}
    assert len(list(audit.every(r, action="experiment.end"))) == 1
    bad = console.http.post("/console/experiments/consult-cta/end", data={"csrf_token": csrf_of(shown), "winner": "z"})
    assert bad.status_code == 404


def test_with_no_experiment_the_page_says_how_to_start_one(admin: Console) -> None:
    html = admin.http.get("/console/experiments").get_data(as_text=True)
    assert 'id="experiments-none"' in html and "[[experiments]]" in html
