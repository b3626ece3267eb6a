"""Issue 11's "done when", end to end: a simulated year (2027) of the quarterly KPI method with two
workspaces installed by OAuth, one team in each: W1's team has area owners (ALICE and BOB each report
their areas), W2's has none (CAROL reports everything).

Each round's kickoff asks for the quarter that has ended (January's on Monday the 4th: 1 January 2027
is a Friday and 元日); the owners' team gets one nudge naming the owner still missing; each team's result
is posted once, with its coverage and its radar chart; the improvement actions recorded from one
quarter's result are listed in the next kickoff and followed in the next result; every call to Slack
for a workspace carries that workspace's own token. Real Redis, the fake Slack API, the worker
delivering, the clock injected.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from bot.app import build_reminders
from bot.reminders import kickoff_at
from bot.slack import blocks as slack_blocks
from bot.slack.texts import months_label, period_label
from conversations.keys import TeamRef
from conversations.teams import Action
from scoring.kpi import KpiResult
from scoring.periods import Quarter
from tests.bot.reminders.conftest import at
from tests.bot.slack import test_oauth
from tests.bot.slack.conftest import ALICE, BASE, BOB, context_of, fields_of, form_values, in_view, sections_of, txt
from tests.bot.slack.test_actions import rows
from tests.bot.slack.test_oauth import CH1, CH2, W1, W2, OAuthEnv
from tests.bot.slack.test_owners import ALICE_FIGURES, BOB_FIGURES, OWNERS
from tests.fakes.slack_signing import block_actions_payload, interaction_body, view_submission_payload

DAY = 86400
TZ = "Asia/Tokyo"
FY_START = 4  # the default business year, April to March
CAROL = "U0CAROL"
oauth_env = test_oauth.oauth_env  # its fixture: two workspaces installed by OAuth, the worker delivering
ROUNDS = [Quarter(2027, q) for q in (1, 2, 3, 4)]  # each round asks for the quarter before it


@dataclass
class Team:
    workspace: str
    channel: str
    name: str
    token: str = ""
    owners: bool = False
    results: list[KpiResult] = field(default_factory=list)  # the scores expected, one per quarter
    actions: list[Action] = field(default_factory=list)  # recorded from the last result

    @property
    def ref(self) -> TeamRef:
        return TeamRef(self.workspace, self.channel)


# ---- what people do, in their own workspace --------------------------------------------------------


def submit(env: OAuthEnv, team: Team, view: dict[str, Any], values: dict[str, dict[str, Any]], user: str) -> None:
    res = env.ok(interaction_body(view_submission_payload(user, view, values, team_id=team.workspace)))
    assert res.get_data() == b"", res.get_data(as_text=True)  # the modal closed: nothing refused


def opened(env: OAuthEnv, team: Team, text: str, user: str) -> dict[str, Any]:
    before = len(env.fake.opened_views())
    env.kpi(team.workspace, team.channel, text, user=user)
    views = env.fake.opened_views()
    assert len(views) == before + 1, env.fake.summary()
    return views[-1]


def report(env: OAuthEnv, team: Team, user: str, figures: dict[str, str], asked: Quarter) -> None:
    view = opened(env, team, "", user)
    submit(env, team, view, in_view(view, form_values(env.catalog, figures, str(asked))), user)


def add_action(env: OAuthEnv, team: Team, post: dict[str, Any], weakest: str, owner: str, due: str) -> Action:
    button = post["blocks"][-1]["elements"][0]
    assert button["action_id"] == slack_blocks.ACTIONS_ACTION and button["text"]["text"] == "改善アクションを登録"
    env.ok(interaction_body(block_actions_payload(owner, slack_blocks.ACTIONS_ACTION, button["value"], message=post,
                                                  team_id=team.workspace)))
    view = env.fake.opened_views()[-1]
    assert view["callback_id"] == slack_blocks.ACTIONS_CALLBACK
    area = next(b for b in view["blocks"] if b.get("block_id") == "area")
    assert area["element"]["initial_option"]["value"] == weakest  # the weakest area, preselected
    what = f"{team.name}: {env.catalog.name(weakest, 'ja')}を見直す"
    submit(env, team, view, rows(weakest, (what, owner, due)), owner)
    return Action("", weakest, what, owner, due, owner, 0.0)


# ---- the clock ---------------------------------------------------------------------------------------


def reminder_pass(env: OAuthEnv, now: float, teams: list[Team]) -> dict[str, list[dict[str, Any]]]:
    """The clock's pass at ``now``, then the worker delivering: the messages it brought to each team."""
    before = {t.channel: len(env.fake.messages(t.channel)) for t in teams}
    env.clock.t = now
    build_reminders(env.svc).run(now)
    env.deliver()
    return {t.channel: env.fake.messages(t.channel)[before[t.channel]:] for t in teams}


def at_day(env: OAuthEnv, start: float, day: int) -> None:
    env.clock.t = start + day * DAY


# ---- what the teams should see -----------------------------------------------------------------------


def figures_of(team: Team, i: int) -> dict[str, dict[str, str]]:
    """Each reporter's figures in the i-th quarter: something moves every quarter (and stops in the last)."""
    if team.owners:
        return {ALICE: dict(ALICE_FIGURES), BOB: {**BOB_FIGURES, "f2_rate": str(15 + 5 * min(i, 2)),
                                                  "entry_time_saved": str(10 + 10 * min(i, 2))}}
    return {CAROL: {**BASE, "active_members": str(60 + 10 * min(i, 2)), "satisfaction_score": f"{3.6 + 0.2 * i:.1f}"}}


def expected_result(env: OAuthEnv, team: Team, i: int) -> KpiResult:
    values = {k: float(v) for figures in figures_of(team, i).values() for k, v in figures.items()}
    return env.catalog.score(values)


def assert_kickoff(env: OAuthEnv, team: Team, messages: list[dict[str, Any]], asked: Quarter) -> None:
    [kick] = messages
    period = period_label("ja", asked, FY_START)
    assert kick["text"] == txt("remind_kickoff", period=period)
    assert f"{asked.first_month}〜{asked.last_month}月" in period  # the ended quarter, by its months
    shown = sections_of(kick)
    if team.owners:  # each owner beside their area
        assert txt("kickoff_owners", lines=slack_blocks.owner_lines(env.catalog, "ja", OWNERS)) in shown
    else:
        assert not any(s.startswith(txt("kickoff_owners", lines="")) for s in shown)
    listed = [s for s in shown if s.startswith(txt("follow_title"))]
    if team.actions:  # last quarter's actions
        lines = "\n".join(txt("kickoff_action_line", area=env.catalog.name(a.area, "ja"), what=a.what,
                              owner=a.owner, due=a.due) for a in team.actions)
        assert listed == [txt("kickoff_actions", lines=lines)]
    else:
        assert listed == []


def radar_alt(env: OAuthEnv, rows_: list[tuple[Quarter, KpiResult]]) -> str:
    series = [txt("chart_series", name=months_label("ja", q), values="、".join(
        f"{env.catalog.name(a, 'ja')} {res.area(a).score:.1f}" for a in env.catalog.area_keys)) for q, res in rows_]
    return txt("chart_radar_alt", series="。".join(series))


def assert_result(env: OAuthEnv, team: Team, i: int, asked: Quarter) -> dict[str, Any]:
    """The quarter's result: posted once, complete, with its coverage, its follow-ups and its radar chart."""
    period = period_label("ja", asked, FY_START)
    posts = [m for m in env.fake.messages(team.channel) if str(m.get("text", "")).startswith("CRM KPI")]
    assert len(posts) == i + 1  # one per quarter so far: none twice
    post = posts[-1]
    result = team.results[i]
    assert post["text"] == f"CRM KPI {period}｜{team.name}: {txt('overall')} {result.overall:.1f}/10"
    for line, area in zip(fields_of(post), result.areas, strict=True):
        assert f" {area.score:.1f}/10" in line and txt("coverage", reported=area.reported, total=area.total) in line
    assert txt("coverage", reported=result.reported, total=result.total) in context_of(post)
    reporters = "、".join(f"<@{u}>" for u in figures_of(team, i))
    assert context_of(post)[0] == (txt("submitted_by_many", users=reporters) if team.owners
                                   else txt("submitted_by", user=CAROL))
    # last quarter's actions followed: did their area move?
    follow = [s for s in sections_of(post) if s.startswith(txt("follow_title"))]
    if team.actions:
        before = team.results[i - 1]
        lines = [txt("follow_line", area=env.catalog.name(a.area, "ja"), what=a.what, owner=a.owner, due=a.due,
                     moved=slack_blocks.moved_text("ja", result.area(a.area).score - before.area(a.area).score))  # type: ignore[operator]
                 for a in team.actions]
        assert follow == [txt("follow_title") + "\n" + "\n".join(lines)]
    else:
        assert follow == []
    # the radar chart: this quarter against the last, the numbers in its alt text
    charts = env.fake.files(team.channel)
    assert len(charts) == i + 1
    shown = [(asked, result)] + ([(asked.previous(), team.results[i - 1])] if i else [])
    assert charts[-1]["alt_txt"] == radar_alt(env, shown)
    assert charts[-1]["data"].startswith(b"\x89PNG")
    return post


def test_a_year_of_the_method_in_two_workspaces(oauth_env: OAuthEnv) -> None:
    env = oauth_env
    owned = Team(W1, CH1, "本店チーム", owners=True)
    single = Team(W2, CH2, "二号店チーム")
    teams = [owned, single]
    owned.token, single.token = env.install(W1), env.install(W2)

    # set up in December 2026: a team in each workspace; W1's areas go to ALICE and BOB
    env.clock.t = at("2026-12-14T10:00:00")
    env.kpi(W1, CH1, f"setup {owned.name}")
    env.kpi(W2, CH2, f"setup {single.name}", user=CAROL)
    view = opened(env, owned, "owners", ALICE)
    assert view["callback_id"] == slack_blocks.OWNERS_CALLBACK
    submit(env, owned, view, {f"owner:{a}": {f"owner:{a}": OWNERS.get(a)} for a in env.catalog.area_keys}, ALICE)
    assert env.teams.owners(owned.ref) == OWNERS and env.teams.owners(single.ref) == {}

    for i, rnd in enumerate(ROUNDS):
        asked = rnd.previous()
        start = kickoff_at(rnd, TZ)
        if rnd.q == 1:  # 元日 is a Friday: nothing on the 1st, the round starts on Monday the 4th
            assert start == at("2027-01-04T10:00:00")
            assert reminder_pass(env, at("2027-01-01T10:00:00"), teams) == {CH1: [], CH2: []}
            assert reminder_pass(env, at("2027-01-02T10:00:00"), teams) == {CH1: [], CH2: []}
        # the kickoff asks each team for the quarter that has ended
        kickoffs = reminder_pass(env, start, teams)
        for team in teams:
            assert_kickoff(env, team, kickoffs[team.channel], asked)
            team.results.append(expected_result(env, team, i))

        # day 2: ALICE reports her areas (nothing posted yet), CAROL reports everything (posted)
        at_day(env, start, 2)
        report(env, owned, ALICE, figures_of(owned, i)[ALICE], asked)
        report(env, single, CAROL, figures_of(single, i)[CAROL], asked)
        assert len(env.fake.files(CH1)) == i and len(env.fake.files(CH2)) == i + 1

        # the first nudge: only the owners' team, naming only BOB, whose areas are still missing
        nudges = reminder_pass(env, start + 7 * DAY, teams)
        [nudge] = nudges[CH1]
        assert nudge["text"] == txt("remind_nudge", period=period_label("ja", asked, FY_START))
        assert f"<@{BOB}>" in str(nudge["blocks"]) and f"<@{ALICE}>" not in str(nudge["blocks"])
        assert nudges[CH2] == []

        # day 8: BOB reports his areas: the team's result goes out, complete
        at_day(env, start, 8)
        report(env, owned, BOB, figures_of(owned, i)[BOB], asked)
        assert reminder_pass(env, start + 14 * DAY, teams) == {CH1: [], CH2: []}  # the last nudge: nobody missing

        for team, owner in ((owned, BOB), (single, CAROL)):
            post = assert_result(env, team, i, asked)
            stored = env.teams.report(team.ref, asked)
            assert stored is not None and stored.posted
            # improvement actions from this result, for the next quarter (not after the year's last)
            team.actions = []
            if i < len(ROUNDS) - 1:
                at_day(env, start, 15)
                due = date.fromtimestamp(kickoff_at(rnd.next(), TZ) - DAY).isoformat()
                weakest = team.results[i].weakest
                assert weakest is not None
                team.actions = [add_action(env, team, post, weakest, owner, due)]
                assert [(a.area, a.what, a.owner, a.due) for a in env.teams.actions(team.ref, asked)] == \
                    [(a.area, a.what, a.owner, a.due) for a in team.actions]

    # every call to Slack for a workspace carried that workspace's own token, and only it
    for team in teams:
        assert set(env.posts_to(team.channel)) == {(team.workspace, team.token)}
        uploads = [(c.team, c.headers["authorization"].removeprefix("Bearer "))
                   for c in env.fake.calls("files.completeUploadExternal") if c.args.get("channel_id") == team.channel]
        assert uploads and set(uploads) == {(team.workspace, team.token)}
    assert {(team, token) for team, token in env.calls_of("views.open")} == {(W1, owned.token), (W2, single.token)}
    for method in ("chat.postMessage", "files.getUploadURLExternal", "files.completeUploadExternal", "views.open"):
        assert {token for _, token in env.calls_of(method)} <= {owned.token, single.token}
    assert env.pending() == 0 and env.parked() == []
