"""Every text that reaches Slack from outside is escaped (bot/mrkdwn.py), on every path that posts.

Hostile text goes in where people type it: a team set up as ``<!channel> <!here> <@U0ABC> <#C1>
<https://evil.example/login|公式サポート> &*`_~``, improvement actions saying the same with ``*太字*`` and
friends, a time zone typed as ``<!channel>``, and (through LINE) a display name of the same kind asking
for a consultation. Then a season runs: the report modal, the result post, the actions, the kickoff
and the nudge, ``/kpi history`` with its chart, ``/kpi export``, ``/kpi targets``, App Home. Every call the
fake Slack API recorded is read as Slack reads it: outside ``plain_text`` objects (and a file's title,
which Slack shows as it is) no ``<!``, no ``<http``, no ``<@`` or ``<#`` but our own user and channel IDs,
every mrkdwn object verbatim; and the escaped text is where the name or the action is shown.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from bot.app import build_reminders, build_services, create_app
from bot.slack import blocks as slack_blocks
from conversations.analytics import Analytics
from conversations.keys import TeamRef
from tests.bot.line.conftest import LineEnv, line_config, start_worker
from tests.bot.line.helpers import TOKEN as LINE_TOKEN
from tests.bot.line.test_webhook import take
from tests.bot.slack.conftest import (
    ALICE,
    BASE,
    BOB,
    CH,
    FEB_2026,
    P_Q1_2026,
    P_Q4_2025,
    Q1_2026,
    Q4_2025,
    START,
    TOKEN,
    WS,
    SlackEnv,
    area_names,
    context_of,
    sections_of,
    txt,
)
from tests.bot.test_charts import PNG_MAGIC
from tests.conftest import FakeClock
from tests.fakes.line_api import FakeLineApi
from tests.fakes.slack_api import FakeSlackApi, Recorded, dm_channel_id

NAME = "<!channel> <!here> <@U0ABC> <#C1> <https://evil.example/login|公式サポート> &*`_~"
NAME_SHOWN = ("&lt;!channel&gt; &lt;!here&gt; &lt;@U0ABC&gt; &lt;#C1&gt; "
              "&lt;https://evil.example/login|公式サポート&gt; &amp;∗ˋˍ∼")
ACTION = "<!channel> <@U0ABC> <https://evil.example/login|公式サポート> & *太字* _斜体_ ~取消~ `コード`"
ACTION_SHOWN = ("&lt;!channel&gt; &lt;@U0ABC&gt; &lt;https://evil.example/login|公式サポート&gt; &amp; "
                "∗太字∗ ˍ斜体ˍ ∼取消∼ ˋコードˋ")
DISPLAY_NAME = "<!channel> <https://evil.example/login|公式サポート> *至急* <@U0ABC> & _様_"
DISPLAY_NAME_SHOWN = "&lt;!channel&gt; &lt;https://evil.example/login|公式サポート&gt; ∗至急∗ &lt;@U0ABC&gt; &amp; ˍ様ˍ"
HOSTILE = ("<!channel>", "<!here>", "<@U0ABC>", "<#C1>", "<https://evil.example")
OUR_USERS = {ALICE, BOB}
OUR_CHANNELS = {CH}
KICKOFF = START + 3600  # 2026-04-01 10:00 in Tokyo: the kickoff asking for January-March
DAY = 86400
Q4_FIGURES = {**BASE, "active_members": "70", "repeat_sales_growth": "12", "f2_rate": "30"}


# ---- reading the recorded calls as Slack reads them ------------------------------------------------


def read_by_slack(node: Any, where: str = "") -> Iterator[tuple[str, str]]:
    """Every string of a call that Slack may read as mrkdwn, with where it is: all but the text of
    ``plain_text`` objects (headers, buttons, labels, modal titles: shown as they are) and a shared
    file's ``title`` (also shown as it is). JSON carried in a string (the uploaded ``files``, a
    button's value) is read too."""
    if isinstance(node, dict):
        if node.get("type") == "plain_text":
            return
        for key, value in node.items():
            if key == "title" and isinstance(value, str):
                continue  # a file's title (files.completeUploadExternal): plain
            yield from read_by_slack(value, f"{where}.{key}")
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from read_by_slack(item, f"{where}[{i}]")
    elif isinstance(node, str):
        if node[:1] in "[{":
            try:
                decoded = json.loads(node)
            except ValueError:
                decoded = None
            if isinstance(decoded, (dict, list)):
                yield from read_by_slack(decoded, where)
                return
        yield where, node


def plain_texts(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if node.get("type") == "plain_text" and isinstance(node.get("text"), str):
            yield node["text"]
        for value in node.values():
            yield from plain_texts(value)
    elif isinstance(node, list):
        for item in node:
            yield from plain_texts(item)


def mrkdwn_objects(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if node.get("type") == "mrkdwn":
            yield node
        for value in node.values():
            yield from mrkdwn_objects(value)
    elif isinstance(node, list):
        for item in node:
            yield from mrkdwn_objects(item)


def assert_nothing_injected(calls: list[Recorded]) -> int:
    """No mention, link or ping from outside text in any call; returns the strings read."""
    read = 0
    for call in calls:
        for where, text in read_by_slack(call.args):
            read += 1
            here = f"{call.method}{where}: {text!r}"
            for token in HOSTILE:
                assert token not in text, here
            assert "<!" not in text and "<http" not in text, here  # we send neither: any is injected
            for kind, ident in re.findall(r"<([@#])([^>|]*)", text):
                assert ident in (OUR_USERS if kind == "@" else OUR_CHANNELS), here
        for obj in mrkdwn_objects(call.args):
            assert obj.get("verbatim") is True, (call.method, obj)
    return read


def calls_with(fake: FakeSlackApi, shown: str) -> list[str]:
    """The methods of the calls where ``shown`` is read by Slack (as mrkdwn)."""
    return [c.method for c in fake.calls() if any(shown in text for _, text in read_by_slack(c.args))]


# ---- a season with a hostile team name and hostile actions --------------------------------------------


def add_actions(env: SlackEnv, what: str) -> None:
    """The 「改善アクションを登録」 button under the latest result, its modal submitted with ``what``."""
    post = env.team_posts(CH)[-1]
    button = post["blocks"][-1]["elements"][0]
    assert button["action_id"] == slack_blocks.ACTIONS_ACTION
    env.click(ALICE, post, slack_blocks.ACTIONS_ACTION, button["value"])
    view = env.fake.opened_views()[-1]
    values: dict[str, dict[str, Any]] = {"area": {"a": "efficiency"}}
    for n in range(1, 4):
        first = n == 1
        values[f"what:{n}"] = {f"what:{n}": what if first else None}
        values[f"owner:{n}"] = {f"owner:{n}": BOB if first else None}
        values[f"due:{n}"] = {f"due:{n}": "2026-03-31" if first else None}
    env.submit(view, values)


@pytest.fixture
def season(slack_env: SlackEnv) -> SlackEnv:
    env = slack_env
    env.clock.t = FEB_2026
    env.setup_team(NAME)
    env.report(Q4_FIGURES, quarter=Q4_2025)  # the report modal, the result post and its radar
    add_actions(env, ACTION)
    reminders = build_reminders(env.svc)
    for when in (KICKOFF, KICKOFF + 7 * DAY):  # the kickoff (last quarter's actions), the first nudge
        env.clock.t = when
        assert reminders.run(when).queued, when
        env.deliver()
    env.report(BASE, quarter=Q1_2026)  # the result post follows the actions up
    env.command("history")  # an ephemeral, and the trend's chart and table in a DM
    env.command("export")  # the CSV in a DM
    env.command("targets")  # the targets modal
    env.event({"type": "app_home_opened", "user": ALICE, "channel": dm_channel_id(ALICE), "tab": "home",
               "event_ts": "1767225600.000100"})
    env.setup_team(NAME)  # set up again: "updated"
    env.command("setup tz=<!channel>")  # a time zone it cannot read, said back
    return env


def test_a_hostile_team_name_is_kept_as_typed_and_shown_escaped(season: SlackEnv) -> None:
    team = season.teams.get(TeamRef(WS, CH))
    assert team is not None and team.name == NAME
    announcement = season.channel_messages(CH)[0]
    assert announcement["text"] == txt("setup_announce", user=ALICE, name=NAME_SHOWN)
    assert sections_of(announcement) == [announcement["text"]]
    assert season.ephemerals(CH, ALICE)[0] == txt("setup_done", name=NAME_SHOWN, tz="Asia/Tokyo", fy="4")
    assert txt("setup_updated", name=NAME_SHOWN, tz="Asia/Tokyo", fy="4") in season.ephemerals(CH, ALICE)
    assert season.ephemerals(CH, ALICE)[-1] == txt("bad_tz", tz="&lt;!channel&gt;")


def test_the_result_post_shows_the_name_escaped_and_the_header_as_typed(season: SlackEnv) -> None:
    q4, q1 = season.team_posts(CH)
    for post, period in ((q4, P_Q4_2025), (q1, P_Q1_2026)):
        title = txt("result_title", period=period, team=NAME_SHOWN)
        assert post["text"].startswith(title + ": ")  # the message's text is mrkdwn
        assert post["blocks"][0]["text"] == {"type": "plain_text", "text": txt(
            "result_title", period=period, team=NAME)[:150], "emoji": True}  # a header shows it as it is
    names = area_names(season)
    follow = next(s for s in sections_of(q1) if s.startswith(txt("follow_title")))
    assert follow.split("\n")[1] == txt("follow_line", area=names["efficiency"], what=ACTION_SHOWN, owner=BOB,
                                        due="2026-03-31", moved=txt("moved_same"))
    assert txt("submitted_by", user=ALICE) in context_of(q1)  # our own mention still works


def test_actions_are_shown_escaped_in_their_post_the_kickoff_and_the_history(season: SlackEnv) -> None:
    names = area_names(season)
    line = txt("action_line", what=ACTION_SHOWN, owner=BOB, due="2026-03-31")
    text = txt("actions_post", user=ALICE, period=P_Q4_2025, area=names["efficiency"], lines=line)
    [posted] = [m for m in season.channel_messages(CH) if m["text"] == text]
    assert sections_of(posted) == [text]
    [kickoff] = [m for m in season.channel_messages(CH) if m["text"] == txt("remind_kickoff", period=P_Q1_2026)]
    assert sections_of(kickoff)[-1] == txt("kickoff_actions", lines=txt(
        "kickoff_action_line", area=names["efficiency"], what=ACTION_SHOWN, owner=BOB, due="2026-03-31"))
    assert [m for m in season.channel_messages(CH) if m["text"] == txt("remind_nudge", period=P_Q1_2026)]
    history = [m for m in season.fake.ephemerals(CH) if m["user"] == ALICE and "blocks" in m][-1]
    assert history["text"] == txt("history_title", team=NAME_SHOWN)
    listed = next(s for s in sections_of(history) if s.startswith(txt("history_actions")))
    assert listed.split("\n")[1] == txt("history_action_line", period="2025年10〜12月", area=names["efficiency"],
                                        what=ACTION_SHOWN, owner=BOB, due="2026-03-31", moved=txt("moved_same"))


def test_modals_app_home_and_files_show_the_name_escaped(season: SlackEnv) -> None:
    views = season.fake.opened_views()
    reports = [v for v in views if v["callback_id"] == slack_blocks.REPORT_CALLBACK]
    [targets] = [v for v in views if v["callback_id"] == slack_blocks.TARGETS_CALLBACK]
    assert len(reports) == 2 and all(sections_of(v)[0] == txt("report_intro", team=NAME_SHOWN) for v in reports)
    assert sections_of(targets)[0] == txt("targets_intro", team=NAME_SHOWN)
    home = season.fake.home_view(ALICE)
    assert home is not None
    assert any(s.startswith(f"*{NAME_SHOWN}*  <#{CH}>\n") for s in sections_of(home))
    [trend] = [m for m in season.dms(ALICE) if "files" not in m]  # Slack's chart and table, in a DM
    assert trend["text"].startswith(txt("trend_text", team=NAME_SHOWN, series=""))  # a message's text is mrkdwn
    assert sections_of(trend) == [txt("history_chart_comment", team=NAME_SHOWN)]
    [csv] = season.fake.files(ALICE)
    assert csv["comment"] == txt("export_comment", team=NAME_SHOWN)
    assert csv["title"] == f"{NAME} KPI"  # a file's title is shown as it is


def test_no_call_of_the_season_carries_a_mention_or_link_from_outside(season: SlackEnv) -> None:
    calls = season.fake.calls()
    methods = {c.method for c in calls}
    assert {"chat.postMessage", "chat.postEphemeral", "views.open", "views.publish",
            "files.completeUploadExternal"} <= methods
    assert assert_nothing_injected(calls) > 50
    # the escaped name reached every kind of call that shows it, and the action every post that lists it
    assert set(calls_with(season.fake, NAME_SHOWN)) == {"chat.postMessage", "chat.postEphemeral", "views.open",
                                                        "views.publish", "files.completeUploadExternal"}
    assert calls_with(season.fake, ACTION_SHOWN).count("chat.postMessage") == 3  # its post, the kickoff, the result
    assert "chat.postEphemeral" in calls_with(season.fake, ACTION_SHOWN)  # /kpi history
    # the name as typed only where Slack shows text as it is: headers, and a file's title
    headers = [t for c in calls for t in plain_texts(c.args) if NAME in t]
    assert len(headers) == 2 and all(t.startswith("CRM KPI") for t in headers)


def test_the_checks_catch_an_unescaped_name() -> None:
    """Guard for the checks above: an unescaped name, a link or a stranger's mention in a post fails them."""
    for text in (NAME, "見て <https://evil.example|ここ>", "<@U0ABC> さん", "<!subteam^S1>"):
        bad = Recorded("chat.postMessage", {}, {"text": "ok", "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": text, "verbatim": True}}]}, 200, {})
        with pytest.raises(AssertionError):
            assert_nothing_injected([bad])
    not_verbatim = Recorded("chat.postMessage", {}, {"text": "ok", "blocks": [
        {"type": "section", "text": {"type": "mrkdwn", "text": "ok"}}]}, 200, {})
    with pytest.raises(AssertionError):
        assert_nothing_injected([not_verbatim])
    def shared(comment: str) -> Recorded:
        return Recorded("files.completeUploadExternal", {}, {"files": json.dumps([{"id": "F1", "title": NAME}]),
                                                             "initial_comment": comment}, 200, {})

    with pytest.raises(AssertionError):
        assert_nothing_injected([shared(NAME)])  # a file's comment is mrkdwn
    assert_nothing_injected([shared(NAME_SHOWN)])  # its title is shown as it is
    header = Recorded("chat.postMessage", {}, {"text": NAME_SHOWN, "blocks": [
        {"type": "header", "text": {"type": "plain_text", "text": NAME}}]}, 200, {})
    assert_nothing_injected([header])  # so is a plain_text object


def test_a_name_typed_in_slack_arrives_escaped_and_is_kept_as_typed(slack_env: SlackEnv) -> None:
    """Slack sends a command's typed & < > as &amp; &lt; &gt;: undone once, escaped once when shown."""
    slack_env.command("setup R&amp;D &lt;本店&gt; *至急*")
    team = slack_env.teams.get(TeamRef(WS, CH))
    assert team is not None and team.name == "R&D <本店> *至急*"
    [announcement] = slack_env.channel_messages(CH)
    assert announcement["text"] == txt("setup_announce", user=ALICE, name="R&amp;D &lt;本店&gt; ∗至急∗")


def test_a_name_with_dollar_signs_still_gets_its_chart_drawn_as_typed(slack_env: SlackEnv) -> None:
    """Charts draw the team name in their title: as written (matplotlib's mathtext would refuse
    ``$\\frac$`` and never draw the chart; it would set ``$1 $2`` in italics)."""
    name = "本店 $\\frac$ $1 $2"
    slack_env.setup_team(name)
    slack_env.report(BASE, quarter=Q1_2026)
    [chart] = slack_env.fake.files(CH)
    assert chart["data"].startswith(PNG_MAGIC)
    assert chart["title"] == txt("chart_radar_title", team=name, period=P_Q1_2026)


# ---- the operator's consultation brief (LINE -> Slack) ---------------------------------------------


@pytest.fixture(scope="module")
def line_fake() -> Iterator[FakeLineApi]:
    with FakeLineApi(access_token=LINE_TOKEN) as fake:
        yield fake


def test_a_hostile_display_name_in_the_operator_s_brief_pings_nobody(
    r: redis.Redis, redis_url: str, line_fake: FakeLineApi, fake_slack: FakeSlackApi, clock: FakeClock,
) -> None:
    """Anyone who adds the bot on LINE chooses a display name; it goes into the consultation brief in
    the operator's channel escaped, in the fields and in the message's text."""
    line_fake.reset()
    ops = "C0OPERATOR"
    config = line_config(redis_url, line_fake, slack_signing_secret="s", slack_bot_token=TOKEN,
                         slack_api_url=fake_slack.base_url, operator_slack_channel=ops)
    svc = build_services(config, clock=clock)
    worker = start_worker(config, svc, clock)
    try:
        env = LineEnv(svc, create_app(services=svc).test_client(), line_fake, clock, r, worker)
        user = env.user()
        line_fake.set_profile(user.user_id, DISPLAY_NAME)
        result = take(env, user, "AABAAADAAC")[-2]  # the card, then the qualification question
        user.tap(result["contents"]["footer"]["contents"][0]["action"]["data"])  # 「相談する」
        env.settle()
        [brief] = fake_slack.messages(ops)
        assert brief["text"] == f"相談のお申し込み：{DISPLAY_NAME_SHOWN}（B評価（Aの数 7/10））"
        fields = next(b["fields"] for b in brief["blocks"] if "fields" in b)
        assert fields[0] == {"type": "mrkdwn", "text": f"*お名前*\n{DISPLAY_NAME_SHOWN}", "verbatim": True}
        calls = fake_slack.calls()
        assert [c.method for c in calls] == ["chat.postMessage"]
        assert assert_nothing_injected(calls) > 5
        [lead] = Analytics(r, clock=clock).person("line", user.user_id)
        assert lead.name == DISPLAY_NAME  # kept as LINE gave it: escaped only where Slack reads it
        line_fake.assert_contract_ok()
        fake_slack.assert_contract_ok()
    finally:
        worker.close()

