"""A diagnosis keeps the content version it started in for every push too: its drop-off nudge, sent by
``crmbot remind`` (a process of its own) after the version in use changed, speaks the diagnosis' version."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bot.app import build_services, create_app
from conversations import keys
from conversations.content import SCRIPTS_DIR
from conversations.content_versions import Draft
from tests.bot.line.conftest import LineEnv, line_config, start_worker
from tests.bot.line.test_nudges import at, nudges, remind, stop_at_q4
from tests.conftest import FakeClock
from tests.fakes.line_api import FakeLineApi

JA = (SCRIPTS_DIR / "diagnosis.ja.toml").read_text(encoding="utf-8")
NUDGE = 'nudge = "診断の続きはいかがですか。'


@pytest.fixture
def env(r: Any, redis_url: str, fake_line: FakeLineApi) -> Iterator[LineEnv]:
    clock = FakeClock(at("2026-12-07T03:00"))  # a Monday
    config = line_config(redis_url, fake_line)
    svc = build_services(config, clock=clock)
    worker = start_worker(config, svc, clock)
    yield LineEnv(svc, create_app(services=svc).test_client(), fake_line, clock, r, worker)
    worker.close()


def test_a_nudge_speaks_the_version_its_diagnosis_started_in(env: LineEnv, redis_url: str) -> None:
    versions = env.svc.versions
    assert versions is not None and JA.count(NUDGE) == 1
    edited = JA.replace(NUDGE, NUDGE.replace('"', '"（第1版）', 1))
    draft = versions.upload(edited.encode(), by="Admin", now=env.clock())
    assert isinstance(draft, Draft)
    assert versions.publish(draft, by="Admin", now=env.clock()) == ("v1", True)
    in_v1 = env.user()
    stop_at_q4(env, in_v1)  # Monday 03:00, in v1
    assert versions.activate("", by="Admin", now=env.clock())  # back to the deployed file meanwhile
    in_file = env.user()
    stop_at_q4(env, in_file)

    remind(env, redis_url, "2026-12-08T09:00")
    got = {p.json["to"]: p.json["messages"][0]["text"] for p in nudges(env)}
    assert got[in_v1.user_id].startswith("（第1版）診断の続きは")
    assert got[in_file.user_id].startswith("診断の続きは")


def test_a_published_versions_experiments_are_assigned_to_its_new_diagnoses(env: LineEnv) -> None:
    from conversations.keys import Subject
    from conversations.machine import Conv
    from tests.conversations.experiment_content import source

    versions = env.svc.versions
    assert versions is not None and not env.svc.script.experiments  # the deployed file has none
    draft = versions.upload(source("ja").encode(), by="Admin", now=env.clock())
    assert isinstance(draft, Draft) and draft.script.experiments
    versions.publish(draft, by="Admin", now=env.clock())
    user = env.user()
    user.tap("s")
    conv = Conv.from_json(env.r.get(keys.conv(Subject("line", user.user_id))))
    assert conv.ver == "v1"
    assert {pair.split(":")[0] for pair in conv.var.split(",")} == {e.name for e in draft.script.experiments}


def test_a_follow_up_speaks_the_version_its_diagnosis_ran(r: Any, redis_url: str, fake_line: FakeLineApi) -> None:
    from tests.bot.line import test_followups as fu

    clock = FakeClock(fu.at("2026-12-07T10:00"))
    config = line_config(redis_url, fake_line, resources_url=fu.RESOURCES)
    svc = build_services(config, clock=clock)
    worker = start_worker(config, svc, clock)
    try:
        env = LineEnv(svc, create_app(services=svc).test_client(), fake_line, clock, r, worker)
        versions = svc.versions
        tip = svc.script.questions[2].followups[0].tip.split("\n")[0]
        assert versions is not None and JA.count(tip) == 1
        draft = versions.upload(JA.replace(tip, "（第1版）" + tip).encode(), by="Admin", now=clock())
        assert isinstance(draft, Draft) and versions.publish(draft, by="Admin", now=clock()) == ("v1", True)
        in_v1 = env.user()
        fu.take(env, in_v1, fu.Q3_POINT)
        fu.qualified(env, in_v1)
        fu.opt_in(env, in_v1)
        assert versions.activate("", by="Admin", now=clock())  # back to the deployed file before the tip is due
        in_file = env.user()
        fu.take(env, in_file, fu.Q3_POINT)
        fu.qualified(env, in_file)
        fu.opt_in(env, in_file)

        fu.remind(env, redis_url, "2026-12-09T10:30")  # day 2 after the opt-in
        got = {p.json["to"]: p.json["messages"][0]["text"] for p in fu.follow_ups(env)}
        assert "（第1版）" + tip in got[in_v1.user_id]
        assert "（第1版）" not in got[in_file.user_id] and tip in got[in_file.user_id]
    finally:
        worker.close()
