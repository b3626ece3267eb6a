"""The web tier sends nothing to Slack but modals: every message goes out from the worker."""

from __future__ import annotations

from tests.bot.slack.conftest import ALICE, BASE, BOB, CH, SlackEnv, txt
from tests.fakes.slack_api import dm_channel_id
from tests.fakes.slack_signing import slash_command_body

MODALS = {"views.open", "views.update"}  # Slack accepts these only within 3 s of the click


def test_without_the_worker_only_modals_reach_slack(slack_env: SlackEnv) -> None:
    with slack_env.worker_paused():
        slack_env.setup_team()
        slack_env.command("help")
        slack_env.report(BASE)
        slack_env.command("history", user=BOB)
        slack_env.event({"type": "app_home_opened", "user": BOB, "channel": dm_channel_id(BOB), "tab": "home",
                         "event_ts": "1767225600.000100"}, event_id="Ev0WEBTIER")
        slack_env.ok(slash_command_body("/diagnosis", "", ALICE, CH))
        called = {c.method for c in slack_env.fake.calls()} - {"auth.test"}
        assert called <= MODALS and "views.open" in called
        queued = slack_env.pending()
        assert queued >= 6  # announcement, setup ephemeral, help, result post, history, home, first question
    slack_env.settle()  # the worker delivers all of it
    assert slack_env.pending() == 0
    methods = [c.method for c in slack_env.fake.calls()]
    assert {"chat.postMessage", "chat.postEphemeral", "views.publish", "conversations.open"} <= set(methods)
    announcement = txt("setup_announce", user=ALICE, name=slack_env.teams.all_teams()[0].name)
    assert announcement in [m["text"] for m in slack_env.channel_messages(CH)]
    assert len(slack_env.team_posts(CH)) == 1
    assert [m["text"][:5] for m in slack_env.dms(ALICE)] == ["Q1/10"]
    assert txt("help") in slack_env.ephemerals(CH, ALICE)


def test_setup_names_the_team_after_the_channel_without_asking_slack(slack_env: SlackEnv) -> None:
    body = slash_command_body("/kpi", "setup", ALICE, CH)
    slack_env.ok(body)
    [team] = slack_env.teams.all_teams()
    assert team.name and team.name != CH  # the channel_name the command carried
    assert "conversations.info" not in {c.method for c in slack_env.fake.calls()}


