"""The web tier's Redis round trips per answered question over a signed LINE webhook (the bench's section 2
target is at most 2 per answer): each answer costs its record's read and its commit, and the answer that
shows the result, while the peer line's figures are read afresh (below 30 finished diagnoses), one more:
every shard's figures in one pipelined round trip. Counted as the sync client's writes to Redis (one
command, or one pipeline written in one go, each waiting for its answer); the worker (async, drained
between taps) is not counted."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from redis.connection import AbstractConnection

from tests.bot.line.conftest import LineEnv
from tests.bot.line.helpers import last_quick_reply_data
from tests.bot.line.test_webhook import answer_button


@contextmanager
def writes(monkeypatch: Any) -> Iterator[list[int]]:
    """Counts every write of a sync Redis connection in this process while the block runs."""
    count = [0]
    real = AbstractConnection.send_packed_command

    def counted(self: AbstractConnection, command: Any, check_health: bool = True) -> None:
        count[0] += 1
        real(self, command, check_health)

    with monkeypatch.context() as patch:
        patch.setattr(AbstractConnection, "send_packed_command", counted)
        yield count


def test_an_answer_is_two_round_trips_and_the_result_one_more(line_env: LineEnv, monkeypatch: Any) -> None:
    env = line_env
    user = env.user()
    user.follow()
    env.settle()
    user.tap(last_quick_reply_data(env.fake.delivered(user.user_id))[0])  # the start button (warms the pool)
    env.settle()
    per_answer = []
    for letter in "ABCDABCDAB":
        data = answer_button(env, user, letter)
        with writes(monkeypatch) as count:
            user.tap(data)
        per_answer.append(count[0])
        env.settle()
    assert per_answer == [2] * 9 + [3], "read + commit; the result also reads the peers' figures, in one go"
