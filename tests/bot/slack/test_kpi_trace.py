"""A KPI report traced from the modal's submission to the channel post: the Slack package is touched
only to parse the modal and to render the post; the method (figures checked, merged, version-checked,
committed with the post) is the KPI core's.

Every Python call made by the listener Bolt runs for the submission (``report_submitted``) is recorded
with the stack that made it (``sys.setprofile``); then the worker delivers the committed post."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import pytest

from bot.slack.listeners.kpi import report_submitted
from conversations.keys import TeamRef
from tests.bot.slack.conftest import ALICE, BASE, BASE_STORED, CH, Q1_2026, WS, SlackEnv, form_values, in_view
from tests.fakes.slack_signing import view_submission_payload

Frame = tuple[str, str]  # (module, qualified function name)

# What the listener may do in the Slack package on its own: be the listener, read the payload, parse the
# modal into the core's input (the quarter chosen, the figures as typed).
PARSE = {
    ("bot.slack.listeners.kpi", "report_submitted"),
    ("bot.slack.listeners.kpi", "store_report"),
    ("bot.slack.listeners.common", "modal_submission"),
    ("bot.slack.listeners.common", "team_of_view"),
    ("bot.slack.listeners.common", "view_ref"),
    ("bot.slack.payload", "obj"),
    ("bot.slack.payload", "json_object"),
    ("bot.slack.payload", "strings"),
    ("bot.slack.payload", "sender_workspace"),
    ("bot.slack.blocks", "chosen_quarter"),
    ("bot.slack.blocks", "typed_figures"),
    ("bot.slack.blocks", "_input_value"),
}
RENDERER = ("bot.slack.results", "KpiRenderer.__call__")  # injected into the core by the app factory


@pytest.fixture
def team_env(slack_env: SlackEnv) -> SlackEnv:
    slack_env.setup_team()
    return slack_env


def _stack(frame: FrameType | None) -> tuple[Frame, ...]:
    """The Python frames from the listener's up to ``frame`` (the test's own frames left out)."""
    frames: list[Frame] = []
    while frame is not None:
        here = (str(frame.f_globals.get("__name__", "")), frame.f_code.co_qualname)
        frames.append(here)
        if here == ("bot.slack.listeners.kpi", "report_submitted"):
            return tuple(reversed(frames))
        frame = frame.f_back
    return ()


@contextmanager
def traced() -> Iterator[list[tuple[Frame, ...]]]:
    calls: list[tuple[Frame, ...]] = []

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        if event == "call" and (stack := _stack(frame)):
            calls.append(stack)

    sys.setprofile(profile)
    try:
        yield calls
    finally:
        sys.setprofile(None)


def _slack(frame: Frame) -> bool:
    return frame[0].startswith("bot.slack")


def _core(frame: Frame) -> bool:
    return frame[0].startswith("bot.kpi")


def test_a_report_touches_slack_only_to_parse_the_modal_and_render_the_post(team_env: SlackEnv) -> None:
    view = team_env.open_report()
    payload = view_submission_payload(ALICE, view, in_view(view, form_values(team_env.catalog, BASE)))
    acks: list[dict[str, Any]] = []
    with traced() as calls:
        report_submitted(lambda **kw: acks.append(kw), payload, payload["view"], team_env.svc.slack.deps)
    assert acks == [{}]  # stored: the modal closes

    slack_calls = [stack for stack in calls if _slack(stack[-1])]
    # a comprehension or a local function counts as the function it is written in
    outside_core = {(stack[-1][0], stack[-1][1].split(".<locals>")[0]) for stack in slack_calls
                    if not any(_core(f) for f in stack)}
    assert outside_core <= PARSE, sorted(outside_core - PARSE)
    inside_core = [stack for stack in slack_calls if any(_core(f) for f in stack)]
    for stack in inside_core:  # called from the core: only through the renderer it was given
        last_core = max(i for i, f in enumerate(stack) if _core(f))
        assert stack[last_core + 1] == RENDERER, stack
    rendered = {stack[-1] for stack in inside_core}
    assert ("bot.slack.blocks", "result_message") in rendered and ("bot.slack.results", "radar_output") in rendered

    # the listener hands the parsed modal to the core, which checks, merges and commits it
    entry = [stack for stack in calls if len(stack) == 3 and _core(stack[-1])]
    assert (("bot.slack.listeners.kpi", "report_submitted"), ("bot.slack.listeners.kpi", "store_report"),
            ("bot.kpi.core", "KpiCore.submit_report")) in entry
    commits = [stack for stack in calls if stack[-1] == ("conversations.teams", "TeamStore.submit")]
    assert commits and all(stack[-2] == ("bot.kpi.core", "KpiCore._submit") for stack in commits)
    assert not any(_slack(f) for stack in commits for f in stack[2:])  # no Slack code between core and commit

    # ... and the post the core committed (rendered at commit) is the one the channel gets
    [job] = team_env.team_jobs(CH)
    assert [o["type"] for o in job.outputs] == ["slack_post", "slack_chart"]
    team_env.settle()
    [post] = team_env.team_posts(CH)
    assert (post["text"], post["blocks"]) == (job.outputs[0]["text"], job.outputs[0]["blocks"])
    assert [f["alt_txt"] for f in team_env.fake.files(CH)] == [job.outputs[1]["alt"]]
    report = team_env.teams.report(TeamRef(WS, CH), Q1_2026)
    assert report is not None and dict(report.values) == BASE_STORED and report.posted
