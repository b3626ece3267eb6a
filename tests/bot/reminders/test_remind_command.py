"""`crmbot remind --now ... [--dry-run]`: one pass at an instant, with a printed summary."""

from __future__ import annotations

import io

import pytest

from bot.cli import main, remind_cmd
from tests.bot.reminders.conftest import World


def test_remind_prints_a_summary_and_queues_what_is_due(world: World) -> None:
    world.team("C1")
    world.line_user("U" + "1" * 32)
    out = io.StringIO()
    assert remind_cmd(world.config(), "2026-04-01T10:05:00+09:00", False, out) == 0
    text = out.getvalue()
    assert text.splitlines()[0] == "queued 2, skipped 0"
    # April's kickoff asks the team for January-March; the LINE round is April's
    assert "slack T1/C1 kickoff for 2026-Q1" in text and "line multicast 2026-Q2 point Q10 (1 users)" in text
    assert world.slack.messages("C1") == []  # the command only queues: the worker sends
    world.deliver()
    assert len(world.slack.messages("C1")) == 1
    out = io.StringIO()
    remind_cmd(world.config(), "2026-04-01T11:00:00+09:00", False, out)
    assert out.getvalue().splitlines()[0] == "queued 0, skipped 0"


def test_remind_dry_run_changes_nothing(world: World) -> None:
    world.team("C1")
    keys_before = sorted(world.r.keys("*"))
    out = io.StringIO()
    remind_cmd(world.config(), "2026-04-01T10:05:00+09:00", True, out)
    assert "would queue" in out.getvalue()
    assert sorted(world.r.keys("*")) == keys_before and world.slack.messages("C1") == []


@pytest.mark.parametrize("when", ["yesterday", "2026-04-01T10:00:00"])
def test_remind_refuses_an_unclear_instant(when: str, capsys, monkeypatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    assert main(["remind", "--now", when]) == 2
    assert "--now" in capsys.readouterr().err


def test_one_clock_at_a_time_runs_a_pass(world: World) -> None:
    from bot.cli import CLOCK_LOCK, clock_pass
    from tests.bot.reminders.conftest import at

    world.team("C1")
    world.clock.t = at("2026-04-01T10:00:00")
    world.r.set(CLOCK_LOCK, "another-clock", ex=60)
    assert clock_pass(world.svc, world.reminders.inner, "me", 60) is False  # the other clock's pass is running
    world.deliver()
    assert world.slack.messages("C1") == []
    world.r.delete(CLOCK_LOCK)
    assert clock_pass(world.svc, world.reminders.inner, "me", 60) is True
    world.deliver()
    assert len(world.slack.messages("C1")) == 1
    assert world.r.get(CLOCK_LOCK) is None  # released when the pass ends


def test_the_clock_and_remind_build_no_bolt_app(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """`crmbot clock` and `crmbot remind` need the KPI core and the team store, not Slack's listeners:
    no Bolt app is built, and the kickoff they queue is the one the web-built reminders queue."""
    import slack_bolt

    from bot import clock as clock_module
    from bot.cli import clock_cmd
    from tests.bot.reminders.conftest import at

    def no_bolt(*args: object, **kwargs: object) -> None:
        raise AssertionError("a Bolt app was built")

    monkeypatch.setattr(slack_bolt.App, "__init__", no_bolt)
    served: list[tuple[object, ...]] = []
    monkeypatch.setattr(clock_module, "serve", lambda *args: served.append(args) or 0)
    world.team("C1")
    assert clock_cmd(world.config(), 60.0) == 0
    [(_client, reminders, _clock, interval)] = served
    assert interval == 60.0 and reminders.kpi is not None  # type: ignore[attr-defined]
    assert reminders.run(at("2026-04-01T10:05:00")).queued == ["slack T1/C1 kickoff for 2026-Q1"]  # type: ignore[attr-defined]
    world.team("C2")
    out = io.StringIO()
    assert remind_cmd(world.config(), "2026-04-01T10:05:00+09:00", False, out) == 0
    assert "slack T1/C2 kickoff for 2026-Q1" in out.getvalue() and "C1" not in out.getvalue()
    world.deliver()
    [by_clock], [by_remind] = world.slack.messages("C1"), world.slack.messages("C2")
    assert by_clock["blocks"][-1]["elements"][0]["action_id"] == "kpi_open"  # the report button
    assert by_clock["text"] == by_remind["text"]
