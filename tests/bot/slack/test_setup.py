"""`/kpi setup`: a channel becomes a team; bad input stores nothing; unregistered channels get no modal."""

from __future__ import annotations

from conversations import keys
from conversations.keys import TeamRef
from conversations.teams import Team
from tests.bot.slack.conftest import ALICE, BOB, CH, CH2, TEAM_NAME, WS, SlackEnv, txt
from tests.fakes.slack_api import CHANNEL_NAME
from tests.fakes.slack_signing import slash_command_body


def test_setup_registers_the_channel_confirms_and_announces(slack_env: SlackEnv) -> None:
    res = slack_env.command(f"setup {TEAM_NAME}")
    assert res.get_data() == b""  # a bare ack: everything visible comes through the Web API

    ref = TeamRef(WS, CH)
    assert slack_env.teams.get(ref) == Team(ref, TEAM_NAME, "Asia/Tokyo", ALICE, slack_env.clock(), True)
    assert [t.ref for t in slack_env.teams.workspace_teams(WS)] == [ref]
    assert slack_env.ephemerals(CH, ALICE) == [txt("setup_done", name=TEAM_NAME, tz="Asia/Tokyo", fy="4")]

    [announcement] = slack_env.channel_messages(CH)
    expected = txt("setup_announce", user=ALICE, name=TEAM_NAME)
    assert announcement["text"] == expected
    assert f"<@{ALICE}>" in announcement["text"]
    assert announcement["blocks"][0]["text"]["text"] == expected
    assert announcement["metadata"]["event_type"] == "crmbot_delivery"  # found again by a recovery
    assert slack_env.pending() == 0


def test_setup_honours_the_time_zone(slack_env: SlackEnv) -> None:
    slack_env.command(f"setup {TEAM_NAME} tz=Europe/London")
    team = slack_env.teams.get(TeamRef(WS, CH))
    assert team is not None and (team.name, team.tz) == (TEAM_NAME, "Europe/London")
    assert slack_env.ephemerals(CH, ALICE) == [txt("setup_done", name=TEAM_NAME, tz="Europe/London", fy="4")]


def test_setup_with_a_bad_time_zone_is_refused_and_stores_nothing(slack_env: SlackEnv) -> None:
    slack_env.command(f"setup {TEAM_NAME} tz=Mars/Olympus_Mons")
    assert slack_env.ephemerals(CH, ALICE) == [txt("bad_tz", tz="Mars/Olympus_Mons")]
    assert slack_env.r.keys("*") == []
    assert slack_env.channel_messages(CH) == []
    assert slack_env.teams.get(TeamRef(WS, CH)) is None


def test_a_bad_time_zone_leaves_an_existing_team_unchanged(slack_env: SlackEnv) -> None:
    slack_env.setup_team()
    before = slack_env.teams.get(TeamRef(WS, CH))
    slack_env.command("setup 別の名前 tz=Not/AZone")
    assert slack_env.teams.get(TeamRef(WS, CH)) == before
    assert slack_env.ephemerals(CH, ALICE)[-1] == txt("bad_tz", tz="Not/AZone")


def test_setup_again_updates_without_duplicating(slack_env: SlackEnv) -> None:
    slack_env.setup_team()
    created_at = slack_env.clock()
    slack_env.clock.advance(3600)
    slack_env.command("setup 本店CRM 第二チーム tz=Europe/London", user=BOB)

    ref = TeamRef(WS, CH)
    # renamed and moved, but still created by Alice at the first setup
    assert slack_env.teams.get(ref) == Team(ref, "本店CRM 第二チーム", "Europe/London", ALICE, created_at, True)
    assert [t.ref for t in slack_env.teams.workspace_teams(WS)] == [ref]
    assert [t.ref for t in slack_env.teams.all_teams()] == [ref]
    assert slack_env.ephemerals(CH, BOB) == [
        txt("setup_updated", name="本店CRM 第二チーム", tz="Europe/London", fy="4")
    ]
    assert len(slack_env.channel_messages(CH)) == 1  # announced once, at the first setup


def test_setup_without_a_name_takes_the_channel_name(slack_env: SlackEnv) -> None:
    slack_env.command("setup")
    team = slack_env.teams.get(TeamRef(WS, CH))
    assert team is not None and team.name == CHANNEL_NAME
    # and running it again without a name keeps the name it has
    slack_env.command(f"setup {TEAM_NAME}")
    slack_env.command("setup tz=Europe/London")
    team = slack_env.teams.get(TeamRef(WS, CH))
    assert team is not None and (team.name, team.tz) == (TEAM_NAME, "Europe/London")


def test_setup_sets_the_first_month_of_the_business_year(slack_env: SlackEnv) -> None:
    slack_env.command(f"setup {TEAM_NAME} fy=1")
    ref = TeamRef(WS, CH)
    assert slack_env.teams.get(ref) == Team(ref, TEAM_NAME, "Asia/Tokyo", ALICE, slack_env.clock(), True, 1)
    assert slack_env.ephemerals(CH, ALICE) == [txt("setup_done", name=TEAM_NAME, tz="Asia/Tokyo", fy="1")]
    assert "年度の始まり: 1月" in slack_env.ephemerals(CH, ALICE)[0]
    # running setup again without fy= keeps it; fy=４月 (as typed in Japanese) changes it
    slack_env.command("setup tz=Asia/Tokyo")
    assert slack_env.teams.get(ref).fy_start == 1  # type: ignore[union-attr]
    slack_env.command("setup fy=４月")
    assert slack_env.teams.get(ref).fy_start == 4  # type: ignore[union-attr]
    assert slack_env.ephemerals(CH, ALICE)[-1] == txt("setup_updated", name=TEAM_NAME, tz="Asia/Tokyo", fy="4")


def test_a_business_year_can_start_in_any_month(slack_env: SlackEnv) -> None:
    """2月決算: a year from March is accepted; a month that is none is refused and changes nothing."""
    slack_env.command(f"setup {TEAM_NAME} fy=13")
    assert slack_env.ephemerals(CH, ALICE) == [txt("bad_fy")]
    assert slack_env.teams.get(TeamRef(WS, CH)) is None and slack_env.r.keys("*") == []
    slack_env.command(f"setup {TEAM_NAME} fy=3")
    assert slack_env.ephemerals(CH, ALICE)[-1] == txt("setup_done", name=TEAM_NAME, tz="Asia/Tokyo", fy="3")
    assert slack_env.teams.get(TeamRef(WS, CH)).fy_start == 3  # type: ignore[union-attr]
    slack_env.command("setup fy=april")
    assert slack_env.ephemerals(CH, ALICE)[-1] == txt("bad_fy")
    assert slack_env.teams.get(TeamRef(WS, CH)).fy_start == 3  # type: ignore[union-attr]


def test_two_channels_are_two_teams_in_one_workspace(slack_env: SlackEnv) -> None:
    slack_env.setup_team("本店", channel=CH)
    slack_env.setup_team("二号店", channel=CH2, user=BOB)
    teams = slack_env.teams.workspace_teams(WS)
    assert [(t.ref.channel, t.name, t.created_by) for t in teams] == [(CH, "本店", ALICE), (CH2, "二号店", BOB)]
    assert slack_env.r.smembers(keys.ALL_TEAMS) == {f"{WS}:{CH}".encode(), f"{WS}:{CH2}".encode()}
    assert [m["text"] for m in slack_env.channel_messages(CH)] == [txt("setup_announce", user=ALICE, name="本店")]
    assert [m["text"] for m in slack_env.channel_messages(CH2)] == [txt("setup_announce", user=BOB, name="二号店")]


def test_setup_typed_with_a_full_width_space(slack_env: SlackEnv) -> None:
    """Japanese input methods type U+3000 for a space: `/kpi setup　本店CRMチーム` must still register."""
    slack_env.command(f"setup\u3000{TEAM_NAME}")
    team = slack_env.teams.get(TeamRef(WS, CH))
    assert team is not None and team.name == TEAM_NAME
    assert slack_env.ephemerals(CH, ALICE) == [txt("setup_done", name=TEAM_NAME, tz="Asia/Tokyo", fy="4")]


def test_kpi_in_an_unregistered_channel_says_not_a_team_and_opens_nothing(slack_env: SlackEnv) -> None:
    for text in ("", "targets", "history", "reminders off"):
        slack_env.command(text)
    assert slack_env.ephemerals(CH, ALICE) == [txt("not_a_team")] * 4
    assert slack_env.fake.opened_views() == []
    assert slack_env.fake.calls("views.open") == []
    assert slack_env.r.keys("*") == []


def test_help_is_ephemeral(slack_env: SlackEnv) -> None:
    slack_env.command("help")
    slack_env.setup_team()
    slack_env.command("what")
    assert slack_env.ephemerals(CH, ALICE) == [
        txt("help"), txt("setup_done", name=TEAM_NAME, tz="Asia/Tokyo", fy="4"), txt("help")
    ]


def test_reminders_off_and_on(slack_env: SlackEnv) -> None:
    slack_env.setup_team()
    slack_env.command("reminders off")
    assert slack_env.teams.get(TeamRef(WS, CH)).reminders is False  # type: ignore[union-attr]
    slack_env.command("reminders on")
    assert slack_env.teams.get(TeamRef(WS, CH)).reminders is True  # type: ignore[union-attr]
    assert slack_env.ephemerals(CH, ALICE)[-2:] == [txt("reminders_off"), txt("reminders_on")]


def test_announcement_survives_a_failed_confirmation(slack_env: SlackEnv) -> None:
    """The ephemeral confirmation is best effort; the announcement goes through the outbox and is never lost."""
    slack_env.fake.fail("chat.postEphemeral", status=500)
    slack_env.listener_errors_expected = True
    slack_env.command(f"setup {TEAM_NAME}")
    assert slack_env.teams.get(TeamRef(WS, CH)) is not None
    assert [m["text"] for m in slack_env.channel_messages(CH)] == [txt("setup_announce", user=ALICE, name=TEAM_NAME)]


def test_slash_command_body_is_what_the_app_reads(slack_env: SlackEnv) -> None:
    """Guard for the helpers: a command from another workspace is another team."""
    slack_env.ok(slash_command_body("/kpi", f"setup {TEAM_NAME}", ALICE, CH, team_id="T2"))
    assert slack_env.teams.get(TeamRef("T2", CH)) is not None
    assert slack_env.teams.get(TeamRef(WS, CH)) is None
    assert slack_env.teams.workspace_teams(WS) == []


def test_a_team_name_cannot_ping_the_channel(slack_env: SlackEnv) -> None:
    """The name is kept as typed; every post escapes it (tests/bot/slack/test_escaping.py for every path)."""
    slack_env.setup_team("<!channel> 本店*チーム*")
    from conversations.keys import TeamRef

    team = slack_env.teams.get(TeamRef(WS, CH))
    assert team is not None and team.name == "<!channel> 本店*チーム*"
    [announcement] = [m["text"] for m in slack_env.channel_messages(CH)]  # posted, but pings nobody
    assert announcement == txt("setup_announce", user=ALICE, name="&lt;!channel&gt; 本店∗チーム∗")
    assert "<!channel>" not in announcement
