"""A result's peer line end to end: signed LINE webhooks, the real core on the suite's Redis, the worker
applying each diagnosis' figures. The line (「この項目でAと答えたショップは20%です。」) appears with the 30th
finished diagnosis and not before; the try page's diagnoses (test users) are never counted; each share is
rounded to 5%. No clock is moved: below the threshold the figures are read afresh for each result."""

from __future__ import annotations

import uuid
from typing import Any

from bot.core import InboundEvent
from conversations import inputs
from conversations.analytics import PeerFigures
from conversations.keys import Subject
from tests.bot.line.conftest import LineEnv
from tests.bot.line.test_webhook import take

PEER = "この項目でAと答えたショップは"


def peer_lines(delivered: list[dict[str, Any]]) -> list[str]:
    """Every peer line in the messages (the result card's texts included), in order."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("text"), str) and PEER in node["text"]:
                found.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(delivered)
    return found


def try_page_diagnosis(env: LineEnv, answers: str) -> None:
    """A try-page user (channel "web": a test) finishes a diagnosis through the same core."""
    who = Subject("web", uuid.uuid4().hex)
    taps = [inputs.button(inputs.START)] + [inputs.button(inputs.ANSWER, sid=1, q=q, choice=x)
                                             for q, x in enumerate(answers)]
    for data in taps:
        handled = env.svc.bot.handle(InboundEvent(who, uuid.uuid4().hex, inputs.from_button(data)))
        assert handled.status == "ok"
    env.settle()


def test_the_peer_line_appears_with_the_thirtieth_finished_diagnosis(line_env: LineEnv) -> None:
    env = line_env
    for _ in range(3):  # test users: if they counted, the 29th shop below would already see the line
        try_page_diagnosis(env, "A" * 10)
    for k in range(29):
        answers = ("A" if k < 6 else "B") + ("A" if k < 3 else "C") + "A" * 8
        user = env.user()
        delivered = take(env, user, answers)
        assert peer_lines(delivered) == [], f"shop {k + 1} of 29 finished: no peer line yet"
    thirtieth = env.user()
    delivered = take(env, thirtieth, "DCBAAAAAAA")  # point: Q1; plan: Q1, Q2, Q3
    # of the 30 finished diagnoses (the 30th, this one, included), Q1: 6 A (20%), Q2: 3 A (10%),
    # Q3: 29 A (96.7%, said 95%): under the point to fix, then under each step of the plan
    assert peer_lines(delivered) == [f"{PEER}20%です。", f"{PEER}20%です。", f"{PEER}10%です。",
                                     f"{PEER}95%です。"]
    env.settle()
    assert PeerFigures(env.r).counts().finished == 30  # the try page's 3 are not among them
    # from 29 finished on, the core keeps the figures a minute (read for the 30th: 29 and itself)
    peers = env.svc.bot.peers
    assert peers is not None and peers.counts().finished == 29
    env.clock.advance(peers.max_age)
    assert peers.counts().finished == 30
