"""The qualification questions after a result, through signed LINE webhooks, the worker and the fake LINE
and Slack APIs (each checked against its contract): asked one at a time after the result card, answered or
skipped with the bubble's buttons, kept on the lead, and shown in the operator's brief (Block Kit)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis

from tests.bot.line.helpers import LineUser
from tests.bot.line.test_operator import SLACK_TOKEN, Ops, field_texts, operator_env, section_texts
from tests.bot.line.test_webhook import take
from tests.conftest import FakeClock
from tests.fakes.line_api import FakeLineApi
from tests.fakes.slack_api import FakeSlackApi

ANSWERS = "AABAAADAAC"


@pytest.fixture(scope="module")
def fake_slack_server() -> Iterator[FakeSlackApi]:
    with FakeSlackApi(bot_token=SLACK_TOKEN) as fake:
        yield fake


@pytest.fixture
def ops(r: redis.Redis, redis_url: str, fake_line: FakeLineApi, fake_slack_server: FakeSlackApi,
        clock: FakeClock) -> Iterator[Ops]:
    fake_slack_server.reset()
    made, close = operator_env(r, redis_url, fake_line, fake_slack_server, clock)
    yield made
    close()
    fake_slack_server.assert_contract_ok()  # every post valid Block Kit


def bubble_buttons(message: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, postback data) of a Flex bubble's buttons."""
    assert message["type"] == "flex"
    return [(c["action"]["label"], c["action"]["data"]) for c in message["contents"]["body"]["contents"]
            if c["type"] == "button"]


def shop_section(post: dict[str, Any]) -> str:
    [found] = [t for t in section_texts(post) if t.startswith("*お店について*")]
    return found


def bubble_text(message: dict[str, Any]) -> str:
    return str(message["contents"]["body"]["contents"][0]["text"])


def test_asked_after_the_result_answered_skipped_and_briefed(ops: Ops) -> None:
    env, script = ops.env, ops.env.svc.script
    asked = script.qualify.questions
    user: LineUser = env.user()
    env.fake.set_profile(user.user_id, "山田 花子")
    result, first = take(env, user, ANSWERS)[-2:]  # the offers come with the last one's thanks
    assert result["type"] == "flex" and "footer" in result["contents"]
    assert bubble_text(first) == asked[0].text
    assert bubble_buttons(first) == [*((c, f"f:0:{n}") for n, c in enumerate(asked[0].choices, start=1)),
                                     (script.qualify.skip_button, "f:0:0")]

    user.tap("f:0:2")  # 食品・飲料
    env.settle()
    second = env.fake.delivered(user.user_id)[-1]
    assert bubble_text(second) == asked[1].text
    user.tap("f:1:0")  # skipped
    env.settle()
    user.tap("f:2:1")  # Shopify
    env.settle()
    thanks, offer = env.fake.delivered(user.user_id)[-2:]
    assert thanks["text"] == script.qualify.thanks and offer["template"]["text"] == script.text("follow_offer")
    count = len(env.fake.delivered(user.user_id))
    user.tap("f:2:1")  # a double tap: nothing more is said
    env.settle()
    assert len(env.fake.delivered(user.user_id)) == count
    assert ops.lead_of(user).qual == "201"

    consult = result["contents"]["footer"]["contents"][0]["action"]["data"]
    user.tap(consult)
    env.settle()
    [post] = ops.posts()
    assert shop_section(post) == "*お店について*\n商材：食品・飲料\n月商：（答えない）\nカート：Shopify"
    assert len(field_texts(post)) == 4  # no source: no source field


def test_other_input_leaves_the_questions_and_the_brief_says_only_what_was_answered(ops: Ops) -> None:
    env = ops.env
    user = env.user()
    env.fake.set_profile(user.user_id, "佐藤")
    result = take(env, user, ANSWERS)[-2]  # the result, then the first question
    user.tap("f:0:1")
    env.settle()
    user.say("結果")  # not an answer: the result again, the questions are left
    env.settle()
    assert env.fake.delivered(user.user_id)[-1]["type"] == "flex"
    assert "footer" in env.fake.delivered(user.user_id)[-1]["contents"]  # the result card, not a question
    user.tap(result["contents"]["footer"]["contents"][0]["action"]["data"])
    env.settle()
    [post] = ops.posts()
    assert shop_section(post) == "*お店について*\n商材：アパレル・雑貨"


def test_a_source_is_in_the_brief(ops: Ops) -> None:
    env = ops.env
    user = env.user()
    user.follow()
    env.settle()
    user.say("診断 ads")
    env.settle()
    for _ in range(10):
        user.say("A")
        env.settle()
    user.say("相談する")
    env.settle()
    [post] = ops.posts()
    assert field_texts(post)[-1] == "*流入元*\nads"
