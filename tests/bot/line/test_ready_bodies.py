"""The worker posts ready JSON bodies (bot/line/transport.py): each is what the SDK's own request model
would have sent, and a job's messages are rendered once per content version and outputs.

Sending them to the fake LINE API (validated against LINE's spec) is covered by the delivery tests;
here the bodies are compared with the SDK's serialisation of the same request, field for field."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import replace

from linebot.v3.messaging import MulticastRequest, PushMessageRequest, ReplyMessageRequest

from bot.line.render import render
from bot.line.transport import LineApi, Rendered, _rendered, body
from conversations.content import load_script
from conversations.outputs import Question, job_output, outputs_of, to_json


def _question(q: int) -> Question:
    return Question(q=q, sid=1)


def _with_api(check: object) -> None:
    async def run() -> None:
        api = LineApi("http://127.0.0.1:9", "token")
        try:
            check(api)  # type: ignore[operator]
        finally:
            await api.close()

    asyncio.run(run())


def test_reply_push_and_multicast_bodies_are_the_sdk_s_own() -> None:
    script = load_script()
    outputs = [_question(0)]

    def check(api: LineApi) -> None:
        count, messages = _rendered(api, Rendered(), script, outputs)
        models = render(script, outputs_of(outputs))
        assert count == len(models) == 1
        sent = json.loads(body({"replyToken": "tok"}, messages))
        assert sent == api.to_json(ReplyMessageRequest(replyToken="tok", messages=models))
        sent = json.loads(body({"to": "U1"}, messages))
        assert sent == api.to_json(PushMessageRequest(to="U1", messages=models))
        sent = json.loads(body({"to": ["U1", "U2"]}, messages))
        assert sent == api.to_json(MulticastRequest(to=["U1", "U2"], messages=models))

    _with_api(check)


class Counting(Rendered):
    """Counts how often a job's messages were actually rendered (not taken from those kept)."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.made = 0

    def get(self, key: object, make: Callable[[], tuple[int, str]]) -> tuple[int, str]:
        def counted() -> tuple[int, str]:
            self.made += 1
            return make()

        return super().get(key, counted)


def test_messages_are_rendered_once_per_version_and_outputs() -> None:
    script = load_script()
    other = replace(script, version=script.version + "-edited")
    kept = Counting(size=2)

    def check(api: LineApi) -> None:
        def rendered(s: object, q: int) -> str:
            return _rendered(api, kept, s, [_question(q)])[1]

        first = rendered(script, 0)
        assert rendered(script, 0) == first and kept.made == 1  # kept: not rendered again
        assert rendered(script, 1) != first and kept.made == 2  # another question: its own text
        rendered(other, 0)  # another version of the script: rendered again; the oldest kept entry goes
        assert kept.made == 3
        rendered(script, 0)
        assert kept.made == 4  # it was the oldest (bounded), so rendered once more
        assert json.loads(first) == api.to_json(render(script, [_question(0)]))

    _with_api(check)


def test_outputs_are_hashable_so_that_replies_can_be_kept() -> None:
    # The cache keys on the outputs themselves: a typed output must hash (frozen, no list inside).
    out = job_output(to_json(_question(2)))
    assert hash(out) == hash(_question(2))
