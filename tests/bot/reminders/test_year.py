"""A simulated year: four quarters, three teams, a hundred LINE users, two clocks and one crash.

Every expected reminder and nudge is received exactly once and no unexpected one is; every Slack
reminder asks for the quarter that has ended. The year is 2027, whose first quarter starts on a
Japanese holiday (元日, a Friday): its round starts on Monday the 4th.
"""

from __future__ import annotations

from collections import Counter

from bot.reminders import kickoff_at
from bot.slack.texts import period_label
from conversations.keys import Subject
from scoring.periods import Quarter
from tests.bot.reminders.conftest import World, at

DAY = 86400
YEAR = 2027
QUARTERS = [Quarter(YEAR, q) for q in (1, 2, 3, 4)]  # the rounds; each asks for the quarter before it
ASKED = {q: q.previous() for q in QUARTERS}
CHANNELS = ("CEARLY", "CLATE", "CSILENT")


def test_a_year_of_reminders_with_two_clocks_and_a_crash(world: World) -> None:
    world.clock.t = at(f"{YEAR - 1}-12-20T00:00:00")
    # three teams: one reports on day 3 of each quarter, one on day 10, one never (and pauses in Q3)
    early, late, silent = world.team("CEARLY"), world.team("CLATE", tz="Europe/London"), world.team("CSILENT")
    # a hundred LINE users: 60 opted in (mixed tiers), 40 not; ten of the 60 send the stop word in Q2
    opted = [f"U{i:032d}" for i in range(60)]
    tiers = ["AAAAAAAAAA", "AAAAAAAABB", "ABABABABAB"]
    for i, u in enumerate(opted):
        world.line_user(u, tiers[i % 3], finished=world.clock() - 60 * DAY)
    for i in range(60, 100):
        world.line_user(f"U{i:032d}", remind=False, finished=world.clock() - 60 * DAY)
    stoppers = set(opted[:10])

    svc_b, clock_b = world.another_clock()
    clocks = [(world.svc, world.reminders), (svc_b, clock_b)]
    crashed = False
    expected_slack: Counter[str] = Counter()
    expected_line: Counter[tuple[str, str]] = Counter()

    for quarter in QUARTERS:
        for ref, tz in ((early, "Asia/Tokyo"), (late, "Europe/London"), (silent, "Asia/Tokyo")):
            start = kickoff_at(quarter, tz)
            kinds = ["kickoff"]
            if ref is late:
                kinds += ["nudge7"]
            if ref is silent:
                kinds = [] if quarter.q == 3 else ["kickoff", "nudge7", "nudge14"]
            for k in kinds:
                expected_slack[f"{ref.channel} {ASKED[quarter]} {k}"] += 1
            del start
        for u in opted:
            if quarter.q >= 3 and u in stoppers:
                continue
            expected_line[(u, str(quarter))] += 1

    step = 6 * 3600
    sent_at: dict[str, list[float]] = {channel: [] for channel in CHANNELS}
    end = at(f"{YEAR + 1}-01-01T00:00:00")
    while world.clock() < end:
        now = world.clock()
        quarter = Quarter(YEAR, (max(1, min(12, _month(now))) - 1) // 3 + 1) if _year(now) == YEAR else None
        if quarter is not None:
            start = kickoff_at(quarter, "Asia/Tokyo")
            asked = ASKED[quarter]
            if now >= start + 3 * DAY and world.teams.report(early, asked) is None:
                world.teams.submit(early, asked, {"complete_records": 97}, "U1", now)
            if now >= kickoff_at(quarter, "Europe/London") + 10 * DAY and world.teams.report(late, asked) is None:
                world.teams.submit(late, asked, {"complete_records": 91}, "U2", now)
            if quarter.q == 2 and now >= start + 30 * DAY and not world.r.exists("test:stopped"):
                for u in stoppers:
                    from bot.core import InboundEvent
                    from conversations import inputs

                    world.svc.bot.handle(InboundEvent(Subject("line", u), f"stop-{u}", inputs.Input(inputs.OPT_OUT)))
                world.r.set("test:stopped", 1)
            if quarter.q == 3 and now >= start - DAY:
                world.teams.set_reminders(silent, False)
            if quarter.q == 4 and now >= start - DAY:
                world.teams.set_reminders(silent, True)
        for i, (svc, rem) in enumerate(clocks):
            if not crashed and quarter == Quarter(YEAR, 2) and now >= kickoff_at(quarter, "Asia/Tokyo") and i == 0:
                # clock A is killed in the middle of its pass, after queueing its first reminder
                real = svc.outbox.put_once

                def killed(*args, real=real, svc=svc, **kw):
                    svc.outbox.put_once = real
                    real(*args, **kw)
                    raise SystemExit("killed")

                svc.outbox.put_once = killed
                try:
                    rem.inner.run(now)
                except SystemExit:
                    crashed = True
                continue
            rem.run(now)
        for channel in CHANNELS:  # when each message arrived (to the step)
            arrived = world.slack.messages(channel)
            sent_at[channel] += [now] * (len(arrived) - len(sent_at[channel]))
        world.clock.advance(step)

    assert crashed
    labels = {period_label("ja", q, 4): q for q in ASKED.values()}  # the teams' business year starts in April
    got_slack: Counter[str] = Counter()
    kickoffs: list[tuple[str, Quarter, float]] = []
    for channel in CHANNELS:
        for msg, sent in zip(world.slack.messages(channel), sent_at[channel], strict=True):
            text = msg["text"]
            [q] = [q for label, q in labels.items() if label in text]
            kind = "kickoff" if "が終わりました" in text else "nudge"
            got_slack[f"{channel} {q} {kind}"] += 1
            if kind == "kickoff":
                kickoffs.append((channel, q, sent))
    want_slack: Counter[str] = Counter()
    for key, n in expected_slack.items():
        channel, q, kind = key.split()
        want_slack[f"{channel} {q} {'kickoff' if kind == 'kickoff' else 'nudge'}"] += n
    assert got_slack == want_slack
    # every kickoff went out on its round's first business day (within the 6-hour steps of the simulation)
    # and asked for the quarter before that round: January's on Monday the 4th, not on 元日
    for channel, asked, sent in kickoffs:
        tz = "Europe/London" if channel == "CLATE" else "Asia/Tokyo"
        due = kickoff_at(asked.next(), tz)
        assert due <= sent < due + 6 * 3600, (channel, asked)
    assert sorted({asked for _, asked, _ in kickoffs}) == [Quarter(YEAR - 1, 4), *QUARTERS[:3]]
    assert min(sent for _, asked, sent in kickoffs if asked == Quarter(YEAR - 1, 4)) >= at(f"{YEAR}-01-04T10:00:00")

    got_line: Counter[tuple[str, str]] = Counter()
    for rec in world.line.recorded("/v2/bot/message/multicast"):
        if rec.status == 200:
            q = _quarter_of_recorded(world, rec)
            for u in rec.json["to"]:
                got_line[(u, q)] += 1
    assert got_line == expected_line
    assert world.svc.outbox.parked() == []


def _month(ts: float) -> int:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    return datetime.fromtimestamp(ts, ZoneInfo("Asia/Tokyo")).month


def _year(ts: float) -> int:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    return datetime.fromtimestamp(ts, ZoneInfo("Asia/Tokyo")).year


def _quarter_of_recorded(world: World, rec) -> str:
    """The period of a multicast: its users' ledger marks name the batch (its retry key)."""
    from conversations import keys

    key = rec.headers["x-line-retry-key"]
    user = Subject("line", rec.json["to"][0])
    for q in QUARTERS:
        if world.r.get(keys.reminder_sent(user, str(q))) == key.encode():
            return str(q)
    raise AssertionError(f"no ledger names batch {key}")
