"""Improvement, discussed and followed: actions recorded from a result, shown at the next quarter's
result with whether their area moved, and in `/kpi history`."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.slack import blocks as slack_blocks
from conversations.keys import TeamRef
from conversations.teams import MAX_ACTIONS
from scoring.periods import Quarter
from tests.bot.slack.conftest import (
    ALICE,
    BASE,
    BOB,
    CH,
    FEB_2026,
    P_Q4_2025,
    Q1_2026,
    Q4_2025,
    START,
    WS,
    SlackEnv,
    area_names,
    sections_of,
    txt,
)
from tests.fakes.slack_signing import interaction_body, view_submission_payload

REF = TeamRef(WS, CH)
Q4 = Quarter.parse(Q4_2025)
Q4_FIGURES = {**BASE, "active_members": "70", "repeat_sales_growth": "12", "f2_rate": "30"}  # 6.5, 8, 10, 10, 5


@pytest.fixture
def q4(slack_env: SlackEnv) -> SlackEnv:
    """A team that reported October-December in February; its result is in the channel."""
    slack_env.setup_team()
    slack_env.clock.t = FEB_2026
    slack_env.report(Q4_FIGURES, quarter=Q4_2025)
    return slack_env


def open_actions(env: SlackEnv, user: str = ALICE) -> dict[str, Any]:
    [post] = env.team_posts(CH)
    button = post["blocks"][-1]["elements"][0]
    assert button["action_id"] == slack_blocks.ACTIONS_ACTION and button["text"]["text"] == "改善アクションを登録"
    env.click(user, post, slack_blocks.ACTIONS_ACTION, button["value"])
    view = env.fake.opened_views()[-1]
    assert view["callback_id"] == slack_blocks.ACTIONS_CALLBACK
    return view


def rows(area: str | None, *actions: tuple[str | None, str | None, str | None]) -> dict[str, dict[str, Any]]:
    values: dict[str, dict[str, Any]] = {"area": {"a": area}}
    for n in range(1, 4):
        what, owner, due = actions[n - 1] if n <= len(actions) else (None, None, None)
        values[f"what:{n}"] = {f"what:{n}": what}
        values[f"owner:{n}"] = {f"owner:{n}": owner}
        values[f"due:{n}"] = {f"due:{n}": due}
    return values


def test_actions_are_recorded_from_the_result_and_followed_next_quarter(q4: SlackEnv) -> None:
    view = open_actions(q4)
    area = next(b for b in view["blocks"] if b.get("block_id") == "area")
    assert area["element"]["initial_option"]["value"] == "efficiency"  # the weakest area, preselected
    res = q4.submit(view, rows("efficiency", ("月次レポートを自動化する", BOB, "2026-03-31"),
                               ("入力画面を <見直す>", ALICE, "2026-03-15")))
    assert res.get_data() == b""
    saved = q4.teams.actions(REF, Q4)
    assert [(a.area, a.what, a.owner, a.due, a.by) for a in saved] == [
        ("efficiency", "月次レポートを自動化する", BOB, "2026-03-31", ALICE),
        ("efficiency", "入力画面を <見直す>", ALICE, "2026-03-15", ALICE)]
    names = area_names(q4)
    lines = "\n".join([txt("action_line", what="月次レポートを自動化する", owner=BOB, due="2026-03-31"),
                       txt("action_line", what="入力画面を &lt;見直す&gt;", owner=ALICE, due="2026-03-15")])
    assert q4.channel_messages(CH)[-1]["text"] == txt("actions_post", user=ALICE, period=P_Q4_2025,
                                                       area=names["efficiency"], lines=lines)
    # one more, for engagement, by BOB
    q4.submit(open_actions(q4, BOB), rows("engagement", ("ログイン方法を説明する", BOB, "2026-02-15")), user=BOB)

    # next quarter: January-March reported in April; its result follows each action up
    q4.clock.t = START
    q4.report(BASE, quarter=Q1_2026)
    follow = next(s for s in sections_of(q4.team_posts(CH)[-1]) if s.startswith(txt("follow_title")))
    assert follow.split("\n")[1:] == [
        txt("follow_line", area=names["efficiency"], what="月次レポートを自動化する", owner=BOB, due="2026-03-31",
            moved=txt("moved_same")),
        txt("follow_line", area=names["efficiency"], what="入力画面を &lt;見直す&gt;", owner=ALICE, due="2026-03-15",
            moved=txt("moved_same")),
        txt("follow_line", area=names["engagement"], what="ログイン方法を説明する", owner=BOB, due="2026-02-15",
            moved=txt("moved_up", delta="1.0")),  # engagement 6.5 -> 7.5
    ]

    # /kpi history lists them with the same follow-up
    q4.command("history", user=BOB)
    history = [m for m in q4.fake.ephemerals(CH) if m["user"] == BOB][-1]
    listed = next(b["text"]["text"] for b in history["blocks"] if b["text"]["text"].startswith(txt("history_actions")))
    assert listed.split("\n")[1:] == [
        txt("history_action_line", period="2025年10〜12月", area=names["efficiency"], what="月次レポートを自動化する",
            owner=BOB, due="2026-03-31", moved=txt("moved_same")),
        txt("history_action_line", period="2025年10〜12月", area=names["efficiency"], what="入力画面を &lt;見直す&gt;",
            owner=ALICE, due="2026-03-15", moved=txt("moved_same")),
        txt("history_action_line", period="2025年10〜12月", area=names["engagement"], what="ログイン方法を説明する",
            owner=BOB, due="2026-02-15", moved=txt("moved_up", delta="1.0")),
    ]


def test_an_action_not_yet_followed_is_pending_in_the_history(q4: SlackEnv) -> None:
    q4.submit(open_actions(q4), rows("roi", ("F2のフォローを見直す", BOB, "2026-03-31")))
    q4.command("history")
    history = q4.fake.ephemerals(CH)[-1]
    listed = next(b["text"]["text"] for b in history["blocks"] if b["text"]["text"].startswith(txt("history_actions")))
    assert listed.endswith(txt("moved_pending"))


@pytest.mark.parametrize(("actions", "errors"), [
    ((("", BOB, "2026-03-31"),), {"what:1": txt("err_action_what")}),
    ((("整理する", BOB, "2026-02-14"),), {"due:1": txt("err_due_past")}),  # the day before today (Feb 15)
    ((("整理する", BOB, "2026-03-31"), ("二つ目", None, None)),
     {"owner:2": txt("err_action_owner"), "due:2": txt("err_action_due")}),
])
def test_incomplete_actions_are_refused_in_the_modal(q4: SlackEnv, actions: tuple, errors: dict) -> None:
    res = q4.submit(open_actions(q4), rows("efficiency", *actions))
    assert res.get_json() == {"response_action": "errors", "errors": errors}
    assert q4.teams.actions(REF, Q4) == []


def test_the_same_modal_submitted_twice_is_recorded_once(q4: SlackEnv) -> None:
    view = open_actions(q4)
    body = interaction_body(view_submission_payload(ALICE, view, rows("roi", ("見直す", BOB, "2026-03-31"))))
    q4.ok(body)
    q4.ok(body)
    assert len(q4.teams.actions(REF, Q4)) == 1
    assert sum("改善アクションを登録しました" in m["text"] for m in q4.channel_messages(CH)) == 1


def test_a_quarter_holds_a_bounded_number_of_actions(q4: SlackEnv) -> None:
    for _ in range(MAX_ACTIONS // 3):
        q4.submit(open_actions(q4), rows("roi", *[("見直す", BOB, "2026-03-31")] * 3))
    assert len(q4.teams.actions(REF, Q4)) == MAX_ACTIONS
    res = q4.submit(open_actions(q4), rows("roi", ("もう一つ", BOB, "2026-03-31")))
    assert res.get_json() == {"response_action": "errors",
                              "errors": {"what:1": txt("err_actions_full", max=MAX_ACTIONS)}}


def test_a_button_naming_another_workspace_opens_nothing(q4: SlackEnv) -> None:
    [post] = q4.team_posts(CH)
    before = len(q4.fake.opened_views())
    q4.click(ALICE, post, slack_blocks.ACTIONS_ACTION, json.dumps({"team": f"T9:{CH}", "quarter": Q4_2025}))
    assert len(q4.fake.opened_views()) == before


def test_the_english_screens_are_valid_block_kit(q4: SlackEnv) -> None:
    """The same screens in English (CRMBOT_LOCALE=en), checked against slack_sdk's models and Slack's limits."""
    from conversations.teams import Action
    from tests.fakes.slack_api import check_blocks, check_view

    catalog, team = q4.catalog, q4.teams.get(REF)
    assert team is not None
    owners = {"engagement": ALICE, "roi": BOB}
    assert check_view(slack_blocks.owners_modal(catalog, "en", team, owners)) == []
    assert check_view(slack_blocks.actions_modal(catalog, "en", team, Q4, "roi")) == []
    act = Action("a1", "roi", "Follow up first buyers on day 30", BOB, "2026-03-31", ALICE, FEB_2026)
    result = catalog.score({"active_members": 80.0})
    text, blocks = slack_blocks.result_message(catalog, "en", team, Q4, result, None, ALICE, False,
                                               reporters=[ALICE, BOB],
                                    owners=owners, follow=[(act, 1.5)], closed=True)
    assert check_blocks(blocks) == []
    assert "not reported (owner <@U0BOB>)" in str(blocks) and "▲1.5 up" in str(blocks)
    assert f"Reported by <@{ALICE}>, <@{BOB}>" in str(blocks)
    for kind in ("kickoff", "nudge7"):
        text, blocks = slack_blocks.reminder_message(catalog, "en", team, Q4, kind, owners=owners, missing=["roi"],
                                          actions=[act])
        assert check_blocks(blocks) == [] and text.startswith(("*FY2025 Q3", "The KPIs for *FY2025 Q3"))
