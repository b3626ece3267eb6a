"""Reminders through the real Redis and the fake Slack and LINE APIs, with injected time."""

from __future__ import annotations

import threading

import pytest

from bot.reminders import kickoff_at
from bot.slack.texts import t
from conversations import keys
from conversations.keys import TeamRef
from scoring.periods import Quarter
from tests.bot.reminders.conftest import World, at
from tests.fakes.line_api import MULTICAST, QUOTA

Q1 = Quarter(2026, 1)  # the quarter April's reminders ask for
Q2 = Quarter(2026, 2)
KICKOFF = at("2026-04-01T10:00:00")
DAY = 86400


def test_a_team_gets_the_kickoff_at_its_due_time_and_not_before(world: World) -> None:
    world.team("C1", "本店")
    world.clock.t = KICKOFF - 60
    assert world.reminders.run(world.clock()).queued == []
    world.clock.t = KICKOFF
    summary = world.reminders.run(world.clock())
    assert summary.queued == ["slack T1/C1 kickoff for 2026-Q1"]
    [msg] = world.slack.messages("C1")
    # the quarter that has just ended, named in the team's business year (April by default)
    assert msg["text"] == t("ja", "remind_kickoff", period="2025年度 第4四半期（2026年1〜3月）")
    button = msg["blocks"][1]["elements"][0]
    assert button["action_id"] == "kpi_open" and '"quarter": "2026-Q1"' in button["value"]


def test_each_reminder_goes_out_once_however_often_the_pass_runs(world: World) -> None:
    world.team("C1")
    for minutes in range(0, 120, 10):
        world.clock.t = KICKOFF + minutes * 60
        world.reminders.run(world.clock())
    assert len(world.slack.messages("C1")) == 1


def test_nudges_only_to_teams_that_have_not_reported(world: World) -> None:
    reported, silent = world.team("C1"), world.team("C2")
    world.clock.t = KICKOFF
    world.reminders.run(world.clock())
    world.teams.submit(reported, Q1, {"complete_records": 96}, "U1", KICKOFF + DAY)
    for day in (7, 14):
        world.clock.t = KICKOFF + day * DAY
        summary = world.reminders.run(world.clock())
        assert (f"slack T1/C1 nudge{day} for 2026-Q1", "already reported") in summary.skipped
    assert len(world.slack.messages("C1")) == 1
    nudges = world.slack.messages("C2")[1:]
    assert [m["text"] for m in nudges] == [t("ja", "remind_nudge", period="2025年度 第4四半期（2026年1〜3月）")] * 2
    del silent


def test_a_report_of_the_running_quarter_does_not_stop_the_nudges(world: World) -> None:
    """A figure stored for April-June (as the bot asked before reports were for ended quarters) is not
    a report of January-March."""
    ref = world.team("C1")
    world.teams.submit(ref, Q2, {"complete_records": 96}, "U1", KICKOFF - DAY)
    world.clock.t = KICKOFF + 7 * DAY
    assert world.reminders.run(world.clock()).queued == ["slack T1/C1 nudge7 for 2026-Q1"]


def test_time_zone_of_the_team_sets_the_hour(world: World) -> None:
    world.team("CLDN", tz="Europe/London")
    world.clock.t = KICKOFF  # 10:00 in Tokyo is 02:00 in London
    assert world.reminders.run(world.clock()).queued == []
    world.clock.t = kickoff_at(Q2, "Europe/London")
    assert world.reminders.run(world.clock()).queued == ["slack T1/CLDN kickoff for 2026-Q1"]


def test_paused_team_gets_nothing(world: World) -> None:
    ref = world.team("C1")
    world.teams.set_reminders(ref, False)
    world.clock.t = KICKOFF
    summary = world.reminders.run(world.clock())
    assert summary.skipped == [("slack T1/C1 kickoff for 2026-Q1", "reminders paused by the team")]
    assert world.slack.messages("C1") == []


def test_missed_reminder_is_sent_within_the_grace_window_and_never_after(world: World) -> None:
    world.team("C1")
    world.team("C2")
    world.clock.t = KICKOFF + 2 * DAY  # the clock was down for two days
    assert [x.split()[1] for x in world.reminders.run(world.clock()).queued] == ["T1/C1", "T1/C2"]
    world.r.delete(keys.reminder_sent(keys.Subject("slack", "T1.C2"), "2026-Q2", "kickoff"))
    world.slack.reset()
    world.clock.t = KICKOFF + 3 * DAY + 1  # past the grace window: never
    assert world.reminders.run(world.clock()).queued == []
    assert world.slack.messages("C2") == []


def test_dry_run_sends_nothing_and_changes_nothing(world: World) -> None:
    world.team("C1")
    world.line_user("U" + "1" * 32)
    before = {k: world.r.dump(k) for k in world.r.keys("*")}
    world.clock.t = KICKOFF
    summary = world.reminders.run(world.clock(), dry_run=True)
    assert summary.queued == ["slack T1/C1 kickoff for 2026-Q1 (dry run: would queue)",
                            "line multicast 2026-Q2 point Q10 (1 users) (dry run: would queue)"]
    assert {k: world.r.dump(k) for k in world.r.keys("*")} == before
    assert world.slack.calls("chat.postMessage") == [] and world.line.recorded(MULTICAST) == []


def test_two_clocks_racing_send_each_reminder_once(world: World) -> None:
    for i in range(5):
        world.team(f"C{i}")
    for i in range(40):
        world.line_user(f"U{i:032d}")
    clocks = [world.reminders] + [world.another_clock()[1] for _ in range(3)]
    world.clock.t = KICKOFF
    barrier = threading.Barrier(len(clocks))

    def run(rem) -> None:
        barrier.wait()
        rem.run(KICKOFF)

    threads = [threading.Thread(target=run, args=(c,)) for c in clocks]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    for i in range(5):
        assert len(world.slack.messages(f"C{i}")) == 1
    recipients = world.multicast_recipients()
    assert sorted(recipients) == sorted(f"U{i:032d}" for i in range(40))


def test_slack_429_is_honoured_then_sent_once(world: World) -> None:
    world.team("C1")
    world.slack.fail("chat.postMessage", status=429, headers={"Retry-After": "30"})
    world.clock.t = KICKOFF
    summary = world.reminders.run(world.clock())
    assert summary.queued == ["slack T1/C1 kickoff for 2026-Q1"]
    assert [c.status for c in world.slack.calls("chat.postMessage")] == [429]
    world.clock.advance(29)
    assert world.deliver() == 0
    world.clock.advance(2)
    assert world.deliver() == 1
    assert len(world.slack.messages("C1")) == 1
    assert world.reminders.run(world.clock()).queued == []  # not queued again


def test_one_archived_channel_does_not_stop_the_others(world: World) -> None:
    world.team("C1")
    world.team("C2")
    world.slack.archive("C1")
    world.clock.t = KICKOFF
    summary = world.reminders.run(world.clock())
    assert summary.queued == ["slack T1/C1 kickoff for 2026-Q1", "slack T1/C2 kickoff for 2026-Q1"]
    [parked] = world.svc.outbox.parked()
    assert parked.reason == "slack: is_archived"
    assert len(world.slack.messages("C2")) == 1
    world.clock.advance(DAY)
    world.deliver()
    world.reminders.run(world.clock())
    assert len(world.slack.calls("chat.postMessage")) == 2  # the archived one is not retried


def test_line_reminder_names_each_users_point_and_goes_by_multicast_per_point(world: World) -> None:
    """One multicast per message: users whose last point to fix is the same question share one (B and C
    results alike); A-tier results (ten A's, or nine) are offered the next theme instead."""
    script = world.svc.script
    a = [world.line_user(f"UA{i:031d}", answers).user_id for i, answers in enumerate(["AAAAAAAAAA", "AAAAAAAAAB"])]
    q3 = [world.line_user("UB" + "0" * 31, "AADAAAAABA").user_id,  # B評価, its weakest answer Q3 (D)
          world.line_user("UC" + "0" * 31, "BBDCCCCCCC").user_id]  # C評価, also Q3
    q1 = [world.line_user("UD" + "0" * 31, "DDDDDDDDDD").user_id]
    world.line_user("U" + "9" * 32, remind=False)
    world.clock.t = KICKOFF
    summary = world.reminders.run(world.clock())
    assert summary.queued == [
        "line multicast 2026-Q2 tier A (2 users)",
        "line multicast 2026-Q2 point Q1 (1 users)",
        "line multicast 2026-Q2 point Q3 (2 users)",
    ]
    calls = world.line.recorded(MULTICAST)
    assert len({rec.headers["x-line-retry-key"] for rec in calls}) == 3
    by_text = {rec.json["messages"][0]["text"]: sorted(rec.json["to"]) for rec in calls}
    theme = script.text("reminder_next", label="A評価", theme=script.tiers["A"].next_theme)
    assert by_text == {
        theme: sorted(a),
        script.text("reminder_point", number=1, topic=script.questions[0].topic): q1,
        script.text("reminder_point", number=3, topic=script.questions[2].topic): sorted(q3),
    }
    assert "Q3 2回目購入の率と期間" in next(t for t in by_text if by_text[t] == sorted(q3))
    buttons = {rec.json["messages"][0]["text"]: [(i["action"]["label"], i["action"]["data"])
                                                 for i in rec.json["messages"][0]["quickReply"]["items"]]
               for rec in calls}
    assert buttons[theme] == [("相談する", "k:0")]  # the next theme, not the same quiz
    point_buttons = [("はい", "m:1"), ("まだ", "m:0"), ("相談する", "k:0"), (script.text("retake_button"), "s")]
    assert [b for t, b in buttons.items() if t != theme] == [point_buttons, point_buttons]
    world.clock.advance(DAY)
    world.reminders.run(world.clock())
    assert len(world.line.recorded(MULTICAST)) == 3  # each user once


def test_a_reminder_committed_before_it_named_the_point_still_says_the_tier() -> None:
    from bot.views import buttons_for, plain_text
    from conversations.content import load_script
    from conversations.outputs import Reminder, from_json

    script = load_script("ja")
    old = from_json({"type": "reminder", "tier": "B"})
    assert old == Reminder("B") and plain_text(script, old) == script.text("reminder", label="B評価")
    assert [b.data for b in buttons_for(script, old)] == ["s"]
    assert from_json(Reminder("", 4).to_json()) == Reminder("", 4)


def test_multicast_batches_hold_at_most_500_users(world: World) -> None:
    for i in range(1001):
        world.line_user(f"U{i:032d}")
    world.clock.t = KICKOFF
    world.reminders.run(world.clock())
    sizes = sorted(len(rec.json["to"]) for rec in world.line.recorded(MULTICAST))
    assert sizes == [1, 500, 500]
    assert len(set(world.multicast_recipients())) == 1001


def test_the_multicasts_of_one_pass_go_out_concurrently(world: World) -> None:
    """Queued by the pass, sent by the worker side by side (up to LINE's rate), not one after another."""
    for i in range(1500):
        world.line_user(f"U{i:032d}")
    world.line.delay = 0.2  # each multicast takes a while at LINE
    world.line.max_in_flight = 0
    try:
        world.clock.t = KICKOFF
        world.reminders.run(world.clock())
    finally:
        world.line.delay = 0.0
    assert len(world.line.recorded(MULTICAST)) == 3
    assert world.line.max_in_flight == 3
    assert len(set(world.multicast_recipients())) == 1500


def test_what_would_exceed_the_monthly_quota_is_not_sent(world: World) -> None:
    for i in range(5):
        world.line_user(f"U{i:032d}")
    world.line.quota = 3
    world.clock.t = KICKOFF
    summary = world.reminders.run(world.clock())
    assert len(world.line.recorded(QUOTA)) == 1
    assert summary.queued == ["line multicast 2026-Q2 point Q10 (3 users)"]
    assert [why for _, why in summary.skipped] == ["monthly message quota would be exceeded"] * 2
    assert len(world.multicast_recipients()) == 3
    world.line.quota = 100  # the quota is raised: the rest go out on the next pass, still within grace
    world.clock.advance(3600)
    world.reminders.run(world.clock())
    assert len(world.multicast_recipients()) == 5 and len(set(world.multicast_recipients())) == 5


@pytest.mark.parametrize("status", [500, 429])
def test_line_failures_are_retried_with_backoff_and_never_doubled(world: World, status: int) -> None:
    users = [world.line_user(f"U{i:032d}").user_id for i in range(3)]
    headers = {"Retry-After": "60"} if status == 429 else None
    world.line.fail(MULTICAST, status, headers=headers)
    world.clock.t = KICKOFF
    summary = world.reminders.run(world.clock())
    assert summary.queued == ["line multicast 2026-Q2 point Q10 (3 users)"]
    assert [rec.status for rec in world.line.recorded(MULTICAST)] == [status]
    world.clock.advance(61)
    assert world.deliver() == 1
    keys_used = [rec.headers["x-line-retry-key"] for rec in world.line.recorded(MULTICAST)]
    assert len(keys_used) == 2 and len(set(keys_used)) == 1
    assert sorted(world.multicast_recipients()) == sorted(users)


def test_clock_killed_after_queueing_the_reminder_is_recovered_once(world: World) -> None:
    world.team("C1")
    users = [world.line_user(f"U{i:032d}").user_id for i in range(3)]

    real = world.svc.outbox.put_once

    def killed(*args, **kw):  # the clock dies right after queueing an item
        real(*args, **kw)
        raise SystemExit("clock killed")

    world.svc.outbox.put_once = killed  # type: ignore[method-assign]
    world.clock.t = KICKOFF
    with pytest.raises(SystemExit):
        world.reminders.inner.run(world.clock())
    with pytest.raises(SystemExit):
        world.reminders.inner.run(world.clock())  # restarted and killed again: the next item
    _, clock2 = world.another_clock()
    world.clock.advance(world.svc.config.outbox_lease + 1)
    clock2.run(world.clock())
    assert len(world.slack.messages("C1")) == 1
    assert sorted(world.multicast_recipients()) == sorted(users)


def test_stop_word_or_unfollow_ends_the_reminder(world: World) -> None:
    from bot.core import InboundEvent
    from conversations import inputs

    stopper, leaver, stayer = (world.line_user(f"U{i:032d}") for i in range(3))
    world.svc.bot.handle(InboundEvent(stopper, "e1", inputs.from_text("停止", world.svc.script.keywords)))
    world.svc.bot.handle(InboundEvent(leaver, "e2", inputs.Input(inputs.UNFOLLOW)))
    world.line.reset()
    world.clock.t = KICKOFF
    world.reminders.run(world.clock())
    assert world.multicast_recipients() == [stayer.user_id]
    assert world.r.smembers(keys.REMIND_INDEX) == {f"line:{stayer.user_id}".encode()}


def test_someone_who_just_took_it_is_not_asked_to_retake_yet(world: World) -> None:
    world.line_user("U" + "1" * 32, finished=KICKOFF - 5 * DAY)
    old = world.line_user("U" + "2" * 32, finished=KICKOFF - 80 * DAY)
    world.clock.t = KICKOFF
    summary = world.reminders.run(world.clock())
    assert world.multicast_recipients() == [old.user_id]
    assert [why for _, why in summary.skipped] == ["took it less than 30 days ago"]


# ---- periods and holidays -------------------------------------------------------------------------


def test_the_april_2027_kickoff_asks_for_january_to_march(world: World) -> None:
    april = world.team("CAPR", "本店")  # business year from April (the default)
    calendar = TeamRef("T1", "CCAL")
    world.teams.register(calendar, "暦年の店", "Asia/Tokyo", "UADMIN", world.clock(), fy_start=1)
    world.clock.t = at("2027-04-01T10:00:00")  # a Thursday
    summary = world.reminders.run(world.clock())
    assert summary.queued == ["slack T1/CAPR kickoff for 2027-Q1", "slack T1/CCAL kickoff for 2027-Q1"]
    [msg] = world.slack.messages("CAPR")
    assert msg["text"] == t("ja", "remind_kickoff", period="2026年度 第4四半期（2027年1〜3月）")
    assert '"quarter": "2027-Q1"' in msg["blocks"][1]["elements"][0]["value"]
    [msg] = world.slack.messages("CCAL")
    assert msg["text"] == t("ja", "remind_kickoff", period="2027年度 第1四半期（1〜3月）")
    del april


def test_a_business_year_from_march_is_reminded_on_its_own_quarter_starts(world: World) -> None:
    """2月決算: the year runs from March, so its quarters start in March, June, September and December;
    the kickoff asks for the three months that ended, named by their months; teams with calendar
    quarters keep theirs."""
    march = TeamRef("T1", "CMAR")
    world.teams.register(march, "3月始まりの店", "Asia/Tokyo", "UADMIN", world.clock(), fy_start=3)
    april = world.team("CAPR")
    world.clock.t = at("2026-03-02T10:00:00")  # Monday: the first business day of March
    assert world.reminders.run(world.clock()).queued == ["slack T1/CMAR kickoff for 2025-M12"]
    [msg] = world.slack.messages("CMAR")
    assert msg["text"] == t("ja", "remind_kickoff", period="2025年度 第4四半期（2025年12月〜2026年2月）")
    assert '"quarter": "2025-M12"' in msg["blocks"][1]["elements"][0]["value"]
    world.clock.t = at("2026-04-01T10:00:00")  # the calendar quarter's start: only the April team
    assert world.reminders.run(world.clock()).queued == ["slack T1/CAPR kickoff for 2026-Q1"]
    world.clock.t = at("2026-06-01T10:00:00")  # Monday
    assert world.reminders.run(world.clock()).queued == ["slack T1/CMAR kickoff for 2026-M03"]
    assert world.slack.messages("CMAR")[-1]["text"] == t("ja", "remind_kickoff", period="2026年度 第1四半期（3〜5月）")
    world.teams.submit(march, Quarter.starting(2026, 3), {"complete_records": 96}, "U1", world.clock())
    world.clock.t = at("2026-06-08T10:00:00")
    summary = world.reminders.run(world.clock())
    assert ("slack T1/CMAR nudge7 for 2026-M03", "already reported") in summary.skipped
    assert world.teams.quarters(march) == [Quarter.starting(2026, 3)]
    del april


def test_a_holiday_on_the_first_weekday_moves_the_kickoff_and_the_line_reminder(world: World) -> None:
    """1 January 2027 is a Friday and 元日: Slack's kickoff and LINE's reminder wait for Monday the 4th."""
    world.team("C1")
    user = world.line_user("U" + "1" * 32, finished=at("2026-09-01T12:00:00"))
    for day in ("2027-01-01", "2027-01-02", "2027-01-03"):
        world.clock.t = at(f"{day}T10:00:00")
        assert world.reminders.run(world.clock()).queued == []
    world.clock.t = at("2027-01-04T09:59:00")
    assert world.reminders.run(world.clock()).queued == []
    world.clock.t = at("2027-01-04T10:00:00")
    summary = world.reminders.run(world.clock())
    assert summary.queued == ["slack T1/C1 kickoff for 2026-Q4", "line multicast 2027-Q1 point Q10 (1 users)"]
    [msg] = world.slack.messages("C1")
    assert msg["text"] == t("ja", "remind_kickoff", period="2026年度 第3四半期（10〜12月）")
    assert world.multicast_recipients() == [user.user_id]
    world.clock.t = at("2027-01-11T10:00:00")  # the first nudge: seven days after the kickoff, not the 1st
    assert world.reminders.run(world.clock()).queued == ["slack T1/C1 nudge7 for 2026-Q4"]


def test_english_reminders_name_the_months(world: World) -> None:
    world.team("C1")
    svc, rem = world.another_clock(locale="en")
    world.clock.t = at("2026-07-01T10:00:00")
    rem.run(world.clock())
    [msg] = world.slack.messages("C1")
    assert msg["text"] == t("en", "remind_kickoff", period="FY2026 Q1 (Apr-Jun 2026)")
    assert "*FY2026 Q1 (Apr-Jun 2026)* has ended" in msg["text"]
    del svc


def test_line_texts_say_when_the_reminder_comes(world: World) -> None:
    """The opt-in texts promise the first business day of a quarter, and the next one when the diagnosis
    was taken less than 30 days before: what the pass does."""
    from bot.reminders import RECENT

    script = world.svc.script
    assert "1・4・7・10月の最初の営業日" in script.text("optin_offer")
    assert "はじめの営業日" in script.text("optin_on") and "1・4・7・10月" not in script.text("optin_on")  # once
    assert f"{RECENT // DAY}日たっていないときは、その次の回から" in script.text("optin_on")
    assert "3か月" not in script.text("reminder", label="B評価")  # it may come sooner or later than that
    recent = world.line_user("U" + "1" * 32, finished=at("2026-03-20T12:00:00"))  # 12 days before April's
    world.clock.t = KICKOFF
    world.reminders.run(world.clock())
    assert world.multicast_recipients() == []
    world.clock.t = at("2026-07-01T10:00:00")  # the next first business day
    world.reminders.run(world.clock())
    assert world.multicast_recipients() == [recent.user_id]
