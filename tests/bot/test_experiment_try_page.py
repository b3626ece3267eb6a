"""Content experiments on the try page (/console/try, the "web" channel): its diagnosis is assigned variants and
shown the variant's wording as LINE would be, and, being a test, is not counted on the experiment page."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from bot.app import build_services, build_worker, create_app
from bot.worker import WorkerThread
from conversations import experiments, keys
from conversations.machine import Conv
from conversations.segments import parse_variants
from tests.bot.console.conftest import console_config
from tests.bot.test_webchat import TryPage
from tests.conftest import FakeClock
from tests.conversations.experiment_content import CTA_B, Q1_SHORT, content_dir


@pytest.fixture
def page(r: redis.Redis, redis_url: str, clock: FakeClock, tmp_path: Path) -> Iterator[TryPage]:
    config = console_config(redis_url, tmp_path, content_dir=content_dir(tmp_path))
    svc = build_services(config, clock=clock)
    worker = WorkerThread(lambda: build_worker(config, svc.script, clock=clock))
    try:
        p = TryPage(create_app(services=svc).test_client(), svc, worker, clock, r)
        p.login()
        yield p
    finally:
        worker.close()


def test_the_try_page_shows_its_variants_and_is_not_counted(page: TryPage) -> None:
    page.open()
    page.settle()
    page.fetch()
    page.tap("診断をはじめる")
    var = parse_variants(Conv.from_json(page.r.get(keys.conv(page.user))).var)
    assert set(var) == {"consult-cta", "q1"}
    question = page.seen[-1]["text"]
    assert (Q1_SHORT["ja"] in question) == (var["q1"] == "short")
    assert (page.svc.script.questions[0].text in question) == (var["q1"] == "plain")
    for _ in range(10):
        page.tap("C:")
    result = next(m for m in reversed(page.seen) if m["kind"] == "result")
    labels = [b["label"] for b in result["buttons"]] + [b["label"] for m in page.seen[-3:] for b in m["buttons"]]
    assert (CTA_B["ja"] if var["consult-cta"] == "b" else "相談する") in labels
    assert (CTA_B["ja"] in labels) == (var["consult-cta"] == "b")
    for exp in page.svc.script.experiments:
        assert all(c == experiments.Counts() for c in experiments.read(page.svc.redis, exp).counts.values())
