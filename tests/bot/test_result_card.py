"""The result in every channel (LINE's card, Slack's blocks, the try page's card, the terminal): the news
first (the comparison on a retake, the one point to fix), then the 90-day plan, then the summary and the
theme, the answers last."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot import cli, views, webchat
from bot.line import render
from bot.slack import blocks
from conversations.content import Script, load_script
from conversations.outputs import Result

pytestmark = pytest.mark.fast  # unit tests: no Redis, no process, no server (tests/conftest.py)

ANSWERS = "AACADAABAA"  # 7 A: B評価; the point is Q5 (D), then Q3 (C), then Q8 (B)
PREV = "AADADAADAA"


def _flat(node: Any) -> str:
    return json.dumps(node, ensure_ascii=False)


Peers = tuple[tuple[int, int], ...]


def line_card(script: Script, answers: str, prev: str = "", peers: Peers = ()) -> str:
    return _flat(render.message(script, Result(1, answers, prev, peers=peers)).to_dict())


def slack_blocks(script: Script, answers: str, prev: str = "", peers: Peers = ()) -> str:
    return _flat(blocks.diagnosis_result(script, answers, prev, peers)[1])


def web_card(script: Script, answers: str, prev: str = "", peers: Peers = ()) -> str:
    return _flat(webchat.message(script, Result(1, answers, prev, peers=peers))["card"])


def terminal(script: Script, answers: str, prev: str = "", peers: Peers = ()) -> str:
    return cli.terminal_text(script, Result(1, answers, prev, peers=peers))


RENDERERS = [line_card, slack_blocks, web_card, terminal]


def _esc(text: str) -> str:
    """As the text appears inside the rendered JSON (or plain text, where nothing is escaped)."""
    return json.dumps(text, ensure_ascii=False)[1:-1]


def _in_order(shown: str, parts: list[str]) -> None:
    """Each part is shown, after the one before it."""
    at = 0
    for p in parts:
        found = [i for i in (shown.find(p, at), shown.find(_esc(p), at)) if i >= 0]
        assert found, (p, "not after", shown[max(0, at - 200):at])
        at = min(found) + 1


@pytest.mark.parametrize("locale", ["ja", "en"])
@pytest.mark.parametrize("draw", RENDERERS, ids=lambda f: f.__name__)
def test_every_channel_shows_the_news_first_the_plan_and_the_answers_last(draw: Any, locale: str) -> None:
    script = load_script(locale)
    v = views.result_view(script, ANSWERS, PREV)
    assert [p.title.split()[0] for p in v.plan] == ["Q5", "Q3", "Q8"]
    shown = draw(script, ANSWERS, PREV)
    parts = [v.comparison[1], v.point_title, v.point_text, v.plan_heading,
             *(x for p in v.plan for x in (p.when, p.step)), v.summary.split("\n")[0], v.theme.split("\n")[0],
             v.answers_heading]
    _in_order(shown, parts)


@pytest.mark.parametrize("locale", ["ja", "en"])
@pytest.mark.parametrize("draw", RENDERERS, ids=lambda f: f.__name__)
def test_every_channel_says_how_many_shops_answer_a_under_the_point_and_each_step(draw: Any, locale: str) -> None:
    script = load_script(locale)
    peers = ((4, 20), (2, 0), (7, 55))  # Q5, Q3, Q8 (0: fewer than 5%)
    v = views.result_view(script, ANSWERS, PREV, peers)
    assert v.point_peer == script.text("peer_share", share=20)
    assert [p.peer for p in v.plan] == [script.text("peer_share", share=20), script.text("peer_share_few"),
                                        script.text("peer_share", share=55)]
    shown = draw(script, ANSWERS, PREV, peers)
    _in_order(shown, [v.point_text, v.point_peer, v.plan[0].step, v.plan[0].peer, v.plan[1].step, v.plan[1].peer,
                      v.plan[2].step, v.plan[2].peer, v.answers_heading])
    bare = draw(script, ANSWERS, PREV)  # no shares given (fewer than 30 finished): no line
    assert all(_esc(p) not in bare and p not in bare for p in (v.point_peer, v.plan[1].peer, v.plan[2].peer))


@pytest.mark.parametrize("draw", RENDERERS, ids=lambda f: f.__name__)
def test_ten_as_get_what_to_watch_and_no_plan(draw: Any) -> None:
    script = load_script("ja")
    shown = draw(script, "A" * 10)
    assert _esc(script.text("all_a_text")) in shown or script.text("all_a_text") in shown
    assert script.text("plan_heading") not in shown
    assert "（あなたの回答：" not in shown  # no point to fix named


def test_the_alt_text_names_the_point_or_with_ten_as_the_next_theme() -> None:
    script = load_script("ja")
    msg = render.result_message(script, ANSWERS, 1)
    assert msg.alt_text == script.text("result_alt", label="B評価", count=7, total=10, number=5,
                                       topic=script.questions[4].topic)
    all_a = render.result_message(script, "A" * 10, 1)
    assert all_a.alt_text == script.text("result_alt_all_a", label="A評価", count=10, total=10)
    assert "一点" not in all_a.alt_text  # no point to fix is promised


def test_the_try_pages_answers_are_folded_in_a_details_element() -> None:
    from pathlib import Path

    js = (Path(views.__file__).parent / "console" / "static" / "try.js").read_text(encoding="utf-8")
    assert 'el("details", "answers")' in js and 'el("summary", "point-heading", c.answers_heading)' in js


def test_english_says_one_more_a_answer_in_the_singular() -> None:
    en = load_script("en")
    assert views.result_view(en, "AAAAAAAABB").closeness == "1 more A answer to reach Grade A"
    assert views.result_view(en, "AAAAAAABBB").closeness == "2 more A answers to reach Grade A"
    assert views.result_view(load_script("ja"), "AAAAAAAABB").closeness == "A評価まであとAが1つ"


def test_a_retake_says_which_answers_moved_forward_and_which_fell_back() -> None:
    ja = load_script("ja")
    lines = views.result_view(ja, "AACADAABAA", "AADADAAAAB").comparison
    assert ja.text("compare_moved_up", items=f"Q3 {ja.questions[2].topic} D→C、Q10 {ja.questions[9].topic} B→A") \
        in lines
    assert ja.text("compare_moved_down", items=f"Q8 {ja.questions[7].topic} A→B") in lines
    assert " は" not in "".join(lines)  # no stray space before the particle
