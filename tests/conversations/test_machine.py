"""Tests for conversations.machine: the routing table check, every transition, the record format."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from conversations import inputs, outputs
from conversations.errors import ConfigError
from conversations.inputs import Input
from conversations.machine import (
    ASKING,
    CONFIRM,
    DONE,
    EXPIRED,
    HANDOFF,
    IDLE,
    NO_DIAGNOSIS,
    QUESTION_COUNT,
    RESUME,
    ROUTES,
    STATES,
    Conv,
    Machine,
    Route,
    Settings,
    Step,
    build,
    greet,
)
from conversations.outputs import BookingNote, ConsultAck, Heard, Output, Result, Slots

pytestmark = pytest.mark.fast  # unit tests: no Redis, no process, no server (tests/conftest.py)

T0 = 1_767_225_600.0
M = build()
SET = Settings()
GAP = 20.0  # default time between two inputs: past the double-tap window, well inside resume_after
assert SET.double_tap < GAP < SET.resume_after


def typed(d: dict[str, Any]) -> Output:
    """The output a job stores as this dict (conversations.outputs: the shape jobs have always stored)."""
    return outputs.from_json(d)


def q_out(sid: int, q: int) -> Output:
    return typed({"type": "question", "sid": sid, "q": q})


def notice(key: str, **params: Any) -> Output:
    return typed({"type": "notice", "key": key, **params})


def resume_out(sid: int, q: int) -> Output:
    return typed({"type": "resume", "sid": sid, "q": q})


OFFER = typed({"type": "offer"})
GREETING = typed({"type": "greeting"})
DONE_HELP = typed({"type": "done_help"})
OPTIN_OFFER = typed({"type": "optin_offer"})


def follow_offer(sid: int) -> object:
    return typed({"type": "follow_offer", "sid": sid})


class Chat:
    """One user talking to the machine; time is explicit and checks hold on every step."""

    def __init__(self, conv: Conv | None = None, *, machine: Machine = M, now: float = T0) -> None:
        self.machine = machine
        self.conv = conv or Conv()
        self.now = now

    def send(self, inp: Input, dt: float = GAP) -> Step:
        self.now += dt
        prev = self.conv
        step = self.machine.step(prev, inp, self.now)
        if step.conv is not None and step.changed:
            assert step.conv.n == prev.n + 1
            assert step.conv.updated == self.now
        if not step.changed:
            assert step.conv is prev
        # outputs are JSON-safe, and read back as they were
        assert [outputs.from_json(json.loads(json.dumps(o.to_json()))) for o in step.outputs] == list(step.outputs)
        self.conv = step.conv if step.conv is not None else Conv()
        return step

    def tap(self, choice: str, dt: float = GAP, **kw: Any) -> Step:
        """Tap an answer button; by default the one of the current question of the current diagnosis."""
        kw.setdefault("q", self.conv.q)
        kw.setdefault("sid", self.conv.sid)
        return self.send(Input(inputs.ANSWER, choice=choice, **kw), dt)

    def type(self, choice: str, dt: float = GAP) -> Step:
        return self.send(Input(inputs.ANSWER, choice=choice), dt)

    def do(self, kind: str, dt: float = GAP, **kw: Any) -> Step:
        return self.send(Input(kind, **kw), dt)


def asking_at(q: int, answers: str = "") -> Chat:
    """A chat in diagnosis 1 with q questions answered."""
    chat = Chat()
    chat.do(inputs.START)
    for letter in (answers or "ABCDABCDAB")[:q]:
        chat.tap(letter)
    assert (chat.conv.state, chat.conv.q) == (ASKING, q)
    return chat


def finished(answers: str = "AABBCCDDAB") -> Chat:
    chat = asking_at(9, answers)
    step = chat.tap(answers[9])
    assert step.state == DONE
    return chat


# --- the table check ----------------------------------------------------------------------------


def test_the_real_table_is_complete() -> None:
    m = build()
    for s in STATES:
        for k in inputs.KINDS:
            assert (s, k) in m._table


def test_duplicate_route_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"duplicate route for \(idle, follow\)"):
        Machine((*ROUTES, Route(IDLE, (inputs.FOLLOW,), greet, frozenset({IDLE}))))


def test_unknown_state_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown state 'paused'"):
        Machine((*ROUTES, Route("paused", (inputs.TEXT,), greet, frozenset({IDLE}))))


@pytest.mark.parametrize("target", ["paused", EXPIRED])
def test_unknown_target_is_refused(target: str) -> None:
    routes = [replace(r, targets=frozenset({IDLE, target})) if r.handler is greet else r for r in ROUTES]
    with pytest.raises(ConfigError, match="targets unknown states"):
        Machine(routes)


def test_unknown_input_kind_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown input kind 'wave'"):
        Machine((*ROUTES, Route(IDLE, ("wave",), greet, frozenset({IDLE}))))


def test_missing_route_is_refused() -> None:
    routes = [r for r in ROUTES if not (r.state == DONE and inputs.FOLLOW in r.kinds)]
    with pytest.raises(ConfigError, match=r"no route for \[\('done', 'follow'\)\]"):
        Machine(routes)


def test_empty_table_is_refused() -> None:
    with pytest.raises(ConfigError, match="no route"):
        Machine(())


def test_handler_leading_outside_its_targets_fails_at_step_time() -> None:
    def rogue(conv: Conv, inp: Input, ctx: Any) -> Step:
        return Step(replace(conv, state=ASKING, sid=conv.sid + 1))

    routes = [r for r in ROUTES if not (r.state == IDLE and inputs.FOLLOW in r.kinds)]
    m = Machine([*routes, Route(IDLE, (inputs.FOLLOW,), rogue, frozenset({IDLE}))])  # the build passes
    assert m.step(Conv(), Input(inputs.TEXT), T0).outputs == (OFFER,)  # other routes work
    with pytest.raises(AssertionError, match="rogue led to 'asking'"):
        m.step(Conv(), Input(inputs.FOLLOW), T0)


def test_deleting_handler_must_declare_idle() -> None:
    def drop(conv: Conv, inp: Input, ctx: Any) -> Step:
        return Step(None)

    routes = [r for r in ROUTES if not (r.state == DONE and inputs.FOLLOW in r.kinds)]
    m = Machine([*routes, Route(DONE, (inputs.FOLLOW,), drop, frozenset({DONE}))])
    with pytest.raises(AssertionError):
        m.step(finished().conv, Input(inputs.FOLLOW), T0 + 10**6)


# --- starting -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [inputs.START, inputs.RESTART])
def test_start_from_idle(kind: str) -> None:
    step = M.step(Conv(), Input(kind), T0)
    assert step.changed
    assert step.conv == Conv(state=ASKING, sid=1, q=0, answers="", updated=T0, n=1, begun=T0)
    assert step.outputs == (q_out(1, 0),)


@pytest.mark.parametrize(
    ("kind", "outputs"),
    [
        (inputs.FOLLOW, (GREETING,)),
        (inputs.TEXT, (OFFER,)),
        (inputs.ANSWER, (OFFER,)),
        (inputs.BACK, (OFFER,)),
        (inputs.CONTINUE, (OFFER,)),
        (inputs.OTHER, (notice("non_text"), OFFER)),
    ],
)
def test_idle_inputs_do_not_change_the_record(kind: str, outputs: tuple[dict[str, Any], ...]) -> None:
    conv = Conv(sid=4, updated=T0, n=7)
    step = M.step(conv, Input(kind, choice="A" if kind == inputs.ANSWER else None, q=0, sid=4), T0 + 1)
    assert not step.changed
    assert step.conv is conv
    assert step.outputs == outputs


def test_start_numbers_diagnoses_from_the_last_one() -> None:
    step = M.step(Conv(sid=4, n=7), Input(inputs.START), T0)
    assert (step.conv.sid, step.conv.n) == (5, 8)


# --- answering ----------------------------------------------------------------------------------


def test_answer_advances_and_records() -> None:
    chat = asking_at(0)
    step = chat.tap("C")
    assert step.outputs == (q_out(1, 1),)
    assert (chat.conv.state, chat.conv.q, chat.conv.answers) == (ASKING, 1, "C")
    chat.tap("A")
    assert (chat.conv.q, chat.conv.answers) == (2, "CA")


def test_ten_answers_finish_with_the_result() -> None:
    answers = "ABCDDCBAAB"
    chat = asking_at(0)
    for i, letter in enumerate(answers):
        step = chat.tap(letter)
        if i < QUESTION_COUNT - 1:
            assert step.outputs == (q_out(1, i + 1),)
            assert chat.conv.answers == answers[: i + 1]
    assert step.outputs == (typed({"type": "result", "sid": 1, "answers": answers}), follow_offer(1))
    assert chat.conv.state == DONE
    assert chat.conv.last == answers
    assert chat.conv.finished == chat.now
    assert (chat.conv.q, chat.conv.answers) == (0, "")
    assert json.loads(chat.conv.to_json())["last"] == answers


def test_typed_answers_apply_to_the_current_question() -> None:
    chat = asking_at(3, "DDD")
    step = chat.type("B")
    assert step.outputs == (q_out(1, 4),)
    assert (chat.conv.q, chat.conv.answers) == (4, "DDDB")


def test_typed_answer_finishes_too() -> None:
    chat = asking_at(9)
    step = chat.type("A")
    assert step.outputs == (typed({"type": "result", "sid": 1, "answers": "ABCDABCDAA"}), follow_offer(1))


def test_a_new_diagnosis_keeps_the_last_result_until_it_finishes() -> None:
    chat = finished("AAAAAAAAAA")
    step = chat.do(inputs.START)
    assert step.outputs == (q_out(2, 0),)
    assert (chat.conv.state, chat.conv.sid, chat.conv.last) == (ASKING, 2, "AAAAAAAAAA")
    for letter in "DDDDDDDDDD":
        step = chat.tap(letter)
    assert step.outputs == (typed({"type": "result", "sid": 2, "answers": "DDDDDDDDDD", "prev": "AAAAAAAAAA"}),
                            follow_offer(2))
    assert (chat.conv.last, chat.conv.prev) == ("DDDDDDDDDD", "AAAAAAAAAA")


# --- back and restart ---------------------------------------------------------------------------


def test_back_goes_to_the_previous_question() -> None:
    chat = asking_at(3, "ABC")
    step = chat.do(inputs.BACK, q=3, sid=1)
    assert step.outputs == (q_out(1, 2),)
    assert (chat.conv.q, chat.conv.answers) == (2, "AB")
    chat.tap("D")
    assert (chat.conv.q, chat.conv.answers) == (3, "ABD")


def test_typed_back_applies_to_the_current_question() -> None:
    chat = asking_at(2, "AB")
    chat.do(inputs.BACK)
    chat.do(inputs.BACK)
    assert (chat.conv.q, chat.conv.answers) == (0, "")


def test_back_at_the_first_question_stays() -> None:
    chat = asking_at(0)
    before = chat.conv
    step = chat.do(inputs.BACK, q=0, sid=1)
    assert step.outputs == (q_out(1, 0),)
    assert chat.conv is before


def test_stale_back_button_does_not_move() -> None:
    chat = asking_at(4)
    before = chat.conv
    step = chat.do(inputs.BACK, q=2, sid=1)
    assert step.outputs == (notice("stale", number=5), q_out(1, 4))
    assert chat.conv is before


def test_restart_mid_way_asks_first_and_keeps_the_place() -> None:
    chat = asking_at(6)
    before = (chat.conv.sid, chat.conv.q, chat.conv.answers)
    step = chat.do(inputs.RESTART)
    assert step.outputs == (typed({"type": "confirm_restart", "sid": 1, "q": 6}),)
    assert chat.conv.state == CONFIRM and (chat.conv.sid, chat.conv.q, chat.conv.answers) == before
    step = chat.do(inputs.RESTART_YES, sid=1)
    assert step.outputs == (notice("restarted"), q_out(2, 0))
    assert (chat.conv.state, chat.conv.sid, chat.conv.q, chat.conv.answers) == (ASKING, 2, 0, "")


def test_no_to_start_over_returns_to_the_open_question() -> None:
    chat = asking_at(6)
    before = (chat.conv.sid, chat.conv.q, chat.conv.answers)
    chat.do(inputs.RESTART)
    step = chat.do(inputs.CONTINUE, sid=1)
    assert step.outputs == (q_out(1, 6),)
    assert chat.conv.state == ASKING and (chat.conv.sid, chat.conv.q, chat.conv.answers) == before


def test_answering_while_asked_to_start_over_carries_on() -> None:
    chat = asking_at(6)
    chat.do(inputs.RESTART)
    step = chat.tap("B")
    assert step.outputs == (q_out(1, 7),)
    assert chat.conv.state == ASKING and chat.conv.answers.endswith("B") and chat.conv.q == 7


def test_text_while_asked_to_start_over_asks_again() -> None:
    chat = asking_at(3)
    chat.do(inputs.RESTART)
    before = chat.conv
    for kind in (inputs.TEXT, inputs.RESTART):
        step = chat.do(kind)
        assert step.outputs == (typed({"type": "confirm_restart", "sid": 1, "q": 3}),)
        assert chat.conv is before


def test_yes_from_an_earlier_diagnosis_does_not_start_over() -> None:
    chat = asking_at(3)
    before = chat.conv
    step = chat.do(inputs.RESTART_YES, sid=0)
    assert step.outputs == (notice("stale", number=4), q_out(1, 3))
    assert chat.conv is before


def test_stop_mid_diagnosis_ends_the_reminder_and_shows_the_question_again() -> None:
    chat = asking_at(3)
    chat.conv = replace(chat.conv, remind=True)
    step = chat.do(inputs.OPT_OUT)  # its own words mid-diagnosis: notices off, the diagnosis kept
    assert step.outputs == (notice("stopped_midway"), q_out(1, 3))
    assert not chat.conv.remind and (chat.conv.state, chat.conv.q, chat.conv.answers) == (ASKING, 3, "ABC")
    step = chat.do(inputs.OPT_OUT)  # already off: still shows where the user is
    assert step.outputs == (notice("stopped_midway"), q_out(1, 3))
    chat.do(inputs.START)  # at the resume prompt, the prompt again
    assert chat.do(inputs.OPT_OUT).outputs == (notice("stopped_midway"), resume_out(1, 3))


def test_stop_at_rest_says_no_reminders() -> None:
    chat = finished()
    chat.conv = replace(chat.conv, remind=True)
    assert chat.do(inputs.OPT_OUT).outputs == (notice("optin_off"),)
    assert not chat.conv.remind


def test_result_word_shows_the_last_result_again_in_any_state() -> None:
    chat = finished("AABBCCDDAB")
    before = chat.conv
    step = chat.do(inputs.RESULT)
    assert step.outputs == (typed({"type": "result", "sid": 1, "answers": "AABBCCDDAB", "again": True}),)
    assert chat.conv is before
    chat.do(inputs.START)
    chat.tap("A")
    step = chat.do(inputs.RESULT)  # mid-diagnosis: the result, then the open question
    assert step.outputs == (typed({"type": "result", "sid": 2, "answers": "AABBCCDDAB", "again": True}), q_out(2, 1))


def test_result_word_without_a_result_says_so_and_offers_to_start() -> None:
    chat = Chat()
    step = chat.do(inputs.RESULT)
    assert step.outputs == (notice("no_result"), typed({"type": "offer"}))
    chat.do(inputs.START)
    step = chat.do(inputs.RESULT)  # mid-diagnosis: the result comes with the tenth answer; the question again
    assert step.outputs == (notice("no_result_midway"), q_out(1, 0))


def test_advice_tap_answers_with_that_questions_advice_and_keeps_the_place() -> None:
    chat = finished()
    before = chat.conv
    step = chat.send(Input(inputs.ADVICE, q=2, choice="B"))
    assert step.outputs == (typed({"type": "advice", "q": 2, "choice": "B"}),)
    assert chat.conv is before
    chat.do(inputs.START)
    step = chat.send(Input(inputs.ADVICE, q=4, choice="D"))
    assert step.outputs == (typed({"type": "advice", "q": 4, "choice": "D"}), q_out(2, 0))


def test_continue_while_asking_reasks() -> None:
    chat = asking_at(2)
    before = chat.conv
    step = chat.do(inputs.CONTINUE, sid=1)
    assert step.outputs == (q_out(1, 2),)
    assert chat.conv is before


# --- resume -------------------------------------------------------------------------------------


def test_start_typed_mid_way_asks_to_resume() -> None:
    chat = asking_at(4, "ABCD")
    step = chat.do(inputs.START)
    assert step.outputs == (resume_out(1, 4),)
    assert (chat.conv.state, chat.conv.sid, chat.conv.q, chat.conv.answers) == (RESUME, 1, 4, "ABCD")


def in_resume(q: int = 4, answers: str = "ABCD") -> Chat:
    chat = asking_at(q, answers)
    chat.do(inputs.START)
    assert chat.conv.state == RESUME
    return chat


def test_resume_continue_reasks_the_open_question() -> None:
    chat = in_resume()
    step = chat.do(inputs.CONTINUE, sid=1)
    assert step.outputs == (q_out(1, 4),)
    assert (chat.conv.state, chat.conv.q, chat.conv.answers) == (ASKING, 4, "ABCD")


@pytest.mark.parametrize("kind", [inputs.RESTART, inputs.START])
def test_resume_restart_starts_over(kind: str) -> None:
    chat = in_resume()
    step = chat.do(kind)
    assert step.outputs == (notice("restarted"), q_out(2, 0))
    assert (chat.conv.state, chat.conv.sid, chat.conv.answers) == (ASKING, 2, "")


def test_answering_the_current_question_from_the_resume_prompt_is_accepted() -> None:
    chat = in_resume()
    step = chat.tap("B")
    assert step.outputs == (q_out(1, 5),)
    assert (chat.conv.state, chat.conv.q, chat.conv.answers) == (ASKING, 5, "ABCDB")


def test_typed_answer_from_the_resume_prompt_is_accepted() -> None:
    chat = in_resume()
    chat.type("C")
    assert (chat.conv.state, chat.conv.answers) == (ASKING, "ABCDC")


def test_last_answer_from_the_resume_prompt_finishes() -> None:
    chat = in_resume(9, "ABCDABCDA")
    step = chat.tap("D")
    assert step.outputs == (typed({"type": "result", "sid": 1, "answers": "ABCDABCDAD"}), follow_offer(1))
    assert chat.conv.state == DONE


def test_back_from_the_resume_prompt() -> None:
    chat = in_resume()
    step = chat.do(inputs.BACK, q=4, sid=1)
    assert step.outputs == (q_out(1, 3),)
    assert (chat.conv.state, chat.conv.q, chat.conv.answers) == (ASKING, 3, "ABC")


@pytest.mark.parametrize(
    "inp",
    [
        Input(inputs.TEXT),
        Input(inputs.OTHER),
        Input(inputs.ANSWER, choice="A", q=2, sid=1),
        Input(inputs.ANSWER, choice="A", q=4, sid=0),
        Input(inputs.BACK, q=3, sid=1),
    ],
)
def test_anything_else_at_the_resume_prompt_asks_again(inp: Input) -> None:
    chat = in_resume()
    before = chat.conv
    step = chat.send(inp)
    assert step.outputs == (resume_out(1, 4),)
    assert chat.conv is before


def test_follow_at_the_resume_prompt_greets_and_asks_again() -> None:
    chat = in_resume()
    step = chat.do(inputs.FOLLOW)
    assert step.outputs == (GREETING, resume_out(1, 4))
    assert chat.conv.state == RESUME


# --- stale buttons and double taps --------------------------------------------------------------


@pytest.mark.parametrize(
    ("q", "sid"),
    [(2, 1), (4, 1), (9, 1), (3, 0), (3, 2), (0, 0)],
    ids=["prev-q", "next-q", "far-q", "old-sid", "new-sid", "old"],
)
def test_stale_answer_button_never_moves(q: int, sid: int) -> None:
    chat = asking_at(3, "ABC")
    before = chat.conv
    step = chat.tap("D", q=q, sid=sid)
    assert step.outputs == (notice("stale", number=4), q_out(1, 3))
    assert chat.conv is before


def test_button_of_an_earlier_diagnosis_is_stale() -> None:
    chat = asking_at(2)
    chat.do(inputs.RESTART)
    chat.do(inputs.RESTART_YES, sid=1)
    chat.tap("A")
    assert (chat.conv.sid, chat.conv.q) == (2, 1)
    before = chat.conv
    step = chat.tap("B", q=1, sid=1)  # question 2 of diagnosis 1
    assert step.outputs == (notice("stale", number=2), q_out(2, 1))
    assert chat.conv is before


def test_double_tap_is_ignored() -> None:
    chat = asking_at(3, "ABC")
    chat.tap("D")
    before = chat.conv
    step = chat.tap("D", dt=1, q=3, sid=1)
    assert step.outputs == ()
    assert not step.changed
    assert chat.conv is before


def test_double_tap_at_the_window_edge_is_still_ignored() -> None:
    chat = asking_at(3, "ABC")
    chat.tap("D")
    assert chat.tap("D", dt=SET.double_tap, q=3, sid=1).outputs == ()


def test_repeat_after_the_double_tap_window_is_stale() -> None:
    chat = asking_at(3, "ABC")
    chat.tap("D")
    step = chat.tap("D", dt=SET.double_tap + 0.5, q=3, sid=1)
    assert step.outputs == (notice("stale", number=5), q_out(1, 4))


def test_other_choice_within_the_window_is_stale_not_a_double_tap() -> None:
    chat = asking_at(3, "ABC")
    chat.tap("D")
    step = chat.tap("A", dt=1, q=3, sid=1)
    assert step.outputs == (notice("stale", number=5), q_out(1, 4))
    assert chat.conv.answers == "ABCD"


def test_double_tap_on_the_last_answer_is_ignored() -> None:
    chat = finished("AABBCCDDAB")
    before = chat.conv
    assert chat.tap("B", dt=1, q=9, sid=1).outputs == ()
    assert chat.conv is before
    assert chat.tap("B", dt=SET.double_tap + 1, q=9, sid=1).outputs == (DONE_HELP,)


def test_custom_double_tap_window() -> None:
    chat = Chat(machine=build(Settings(double_tap=60)))
    chat.do(inputs.START)
    chat.tap("A")
    assert chat.tap("A", dt=59, q=0, sid=1).outputs == ()


# --- text, pauses and expiry --------------------------------------------------------------------


def test_text_during_a_question_hints() -> None:
    chat = asking_at(2)
    before = chat.conv
    step = chat.do(inputs.TEXT)
    assert step.outputs == (notice("hint"), q_out(1, 2))
    assert chat.conv is before


def test_non_text_during_a_question() -> None:
    chat = asking_at(2)
    assert chat.do(inputs.OTHER).outputs == (notice("non_text"), q_out(1, 2))


def test_text_at_resume_after_still_hints() -> None:
    chat = asking_at(2)
    assert chat.do(inputs.TEXT, dt=SET.resume_after).outputs == (notice("hint"), q_out(1, 2))


@pytest.mark.parametrize("kind", [inputs.TEXT, inputs.OTHER])
def test_text_after_a_long_pause_asks_to_resume(kind: str) -> None:
    chat = asking_at(2, "AB")
    step = chat.do(kind, dt=SET.resume_after + 1)
    assert step.outputs == (resume_out(1, 2),)
    assert (chat.conv.state, chat.conv.q, chat.conv.answers) == (RESUME, 2, "AB")


def test_pause_is_counted_from_the_last_change_not_the_last_hint() -> None:
    chat = asking_at(2)
    chat.do(inputs.TEXT, dt=SET.resume_after / 2)
    assert chat.do(inputs.TEXT, dt=SET.resume_after / 2 + 1).outputs == (resume_out(1, 2),)


def test_answer_after_a_long_pause_is_still_accepted() -> None:
    chat = asking_at(2, "AB")
    step = chat.tap("C", dt=SET.resume_after * 5)
    assert step.outputs == (q_out(1, 3),)


@pytest.mark.parametrize(
    "inp",
    [Input(inputs.TEXT), Input(inputs.OTHER), Input(inputs.CONTINUE, sid=1), Input(inputs.BACK),
     Input(inputs.ANSWER, choice="A")],
    ids=["text", "other", "continue", "back", "typed-answer"],
)
def test_expiry_resets_to_idle(inp: Input) -> None:
    chat = asking_at(5)
    step = chat.send(inp, dt=SET.expiry + 1)
    assert step.outputs == (notice("expired"), OFFER)
    assert chat.conv.state == IDLE
    assert (chat.conv.sid, chat.conv.answers, chat.conv.last) == (1, "", "")
    assert "q" not in json.loads(chat.conv.to_json())


def test_expiry_of_a_resume_prompt() -> None:
    chat = in_resume()
    assert chat.do(inputs.CONTINUE, dt=SET.expiry + 1).outputs == (notice("expired"), OFFER)
    assert chat.conv.state == IDLE


def test_not_expired_at_the_limit() -> None:
    chat = asking_at(5)
    assert M.dispatch_state(chat.conv, chat.now + SET.expiry) == ASKING
    assert M.dispatch_state(chat.conv, chat.now + SET.expiry + 0.001) == EXPIRED


def test_expiry_keeps_the_finished_result() -> None:
    chat = finished("AAAABBBBCC")
    chat.do(inputs.START)
    chat.tap("A")
    step = chat.do(inputs.TEXT, dt=SET.expiry + 1)
    assert step.outputs == (notice("expired"), OFFER)
    assert (chat.conv.state, chat.conv.last, chat.conv.sid) == (DONE, "AAAABBBBCC", 2)


def test_answer_buttons_after_expiry_do_not_move_anything() -> None:
    chat = asking_at(5, "ABCDA")
    step = chat.tap("B", dt=SET.expiry + 1)
    assert step.outputs == (notice("expired"), OFFER)
    assert (chat.conv.state, chat.conv.answers) == (IDLE, "")
    reset = chat.conv
    step = chat.tap("B", q=5, sid=1)
    assert step.outputs == (OFFER,)
    assert chat.conv is reset


def test_start_after_expiry_begins_a_new_diagnosis() -> None:
    chat = asking_at(5)
    step = chat.do(inputs.START, dt=SET.expiry + 1)
    assert step.outputs[-1] == q_out(2, 0)
    assert (chat.conv.state, chat.conv.sid, chat.conv.answers) == (ASKING, 2, "")


def test_follow_after_expiry_greets() -> None:
    chat = asking_at(5)
    step = chat.do(inputs.FOLLOW, dt=SET.expiry + 1)
    assert step.outputs == (GREETING,)
    assert chat.conv.state == IDLE


def test_done_never_expires() -> None:
    chat = finished()
    before = chat.conv
    assert chat.do(inputs.OTHER, dt=SET.expiry * 10).outputs == (DONE_HELP,)
    assert chat.conv is before


def test_custom_expiry() -> None:
    chat = Chat(machine=build(Settings(expiry=100, resume_after=50)))
    chat.do(inputs.START)
    assert chat.do(inputs.TEXT, dt=101).outputs == (notice("expired"), OFFER)


# --- follow / unfollow / done -------------------------------------------------------------------


def test_follow_in_idle_greets() -> None:
    step = M.step(Conv(), Input(inputs.FOLLOW), T0)
    assert step.outputs == (GREETING,)
    assert not step.changed


def test_follow_in_done_greets() -> None:
    chat = finished()
    before = chat.conv
    assert chat.do(inputs.FOLLOW).outputs == (GREETING,)
    assert chat.conv is before


def test_follow_mid_way_greets_and_asks_to_resume() -> None:
    chat = asking_at(3)
    step = chat.do(inputs.FOLLOW)
    assert step.outputs == (GREETING, resume_out(1, 3))
    assert chat.conv.state == RESUME


@pytest.mark.parametrize("kind", [inputs.OTHER, inputs.BACK, inputs.CONTINUE])
def test_done_helps(kind: str) -> None:
    chat = finished()
    before = chat.conv
    assert chat.do(kind).outputs == (DONE_HELP,)
    assert chat.conv is before


def test_unfollow_in_progress_deletes_the_record() -> None:
    chat = asking_at(3)
    step = M.step(chat.conv, Input(inputs.UNFOLLOW), chat.now + 1)
    assert step.conv is None
    assert step.state == IDLE
    assert step.outputs == ()


def test_unfollow_at_the_resume_prompt_deletes_the_record() -> None:
    chat = in_resume()
    assert M.step(chat.conv, Input(inputs.UNFOLLOW), chat.now + 1).conv is None


def test_unfollow_in_idle_deletes_the_record() -> None:
    assert M.step(Conv(sid=3, n=4), Input(inputs.UNFOLLOW), T0).conv is None


def test_unfollow_in_progress_keeps_a_finished_result() -> None:
    chat = finished("ABABABABAB")
    chat.do(inputs.START)
    chat.tap("C")
    step = chat.do(inputs.UNFOLLOW)
    assert step.conv is not None
    assert (step.conv.state, step.conv.last, step.conv.answers, step.conv.sid) == (DONE, "ABABABABAB", "", 2)
    assert step.outputs == ()


def test_unfollow_in_done_keeps_the_result() -> None:
    chat = finished("ABABABABAB")
    step = chat.do(inputs.UNFOLLOW)
    assert (step.state, step.conv.last) == (DONE, "ABABABABAB")


def test_unfollow_after_expiry() -> None:
    chat = asking_at(3)
    assert M.step(chat.conv, Input(inputs.UNFOLLOW), chat.now + SET.expiry + 1).conv is None


# --- the record ---------------------------------------------------------------------------------


def test_conv_json_format() -> None:
    conv = Conv(state=ASKING, sid=2, q=3, answers="ABC", updated=T0 + 0.12345, last="A" * 10, finished=T0, n=9)
    assert json.loads(conv.to_json()) == {
        "s": "asking",
        "sid": 2,
        "t": round(T0 + 0.12345, 3),
        "n": 9,
        "q": 3,
        "a": "ABC",
        "last": "A" * 10,
        "ft": T0,
    }
    assert " " not in conv.to_json()


@pytest.mark.parametrize("raw", [None, "", b""])
def test_absent_record_is_idle(raw: Any) -> None:
    assert Conv.from_json(raw) == Conv()


def test_from_bytes() -> None:
    conv = Conv(state=RESUME, sid=1, q=4, answers="ABCD", updated=T0, n=3, begun=T0 - 60)
    assert Conv.from_json(conv.to_json().encode()) == conv


def test_a_diagnosis_records_when_it_began_and_keeps_it_to_the_end() -> None:
    chat = Chat()
    chat.do(inputs.START)
    began = chat.conv.begun
    assert began == round(chat.now, 3) and json.loads(chat.conv.to_json())["b"] == began
    for letter in "ABCDABCDAB":
        chat.type(letter, dt=5)
    assert chat.conv.state == DONE and chat.conv.begun == began
    chat.send(Input(inputs.START), dt=100)
    assert chat.conv.begun == round(chat.now, 3) > began


def test_a_record_stored_before_begun_existed_takes_its_last_change_once() -> None:
    """Stored without "b": its next change fixes ``begun`` at the record's last change, for good."""
    old = Conv.from_json('{"s":"asking","sid":3,"t":1767225600.5,"n":4,"q":2,"a":"AB"}')
    assert old.begun == 0.0
    step = M.step(old, Input(inputs.ANSWER, choice="C", q=2, sid=3), T0 + 100)
    assert step.conv.begun == 1767225600.5
    again = M.step(step.conv, Input(inputs.ANSWER, choice="C", q=3, sid=3), T0 + 200)
    assert again.conv.begun == 1767225600.5


def test_json_round_trip_along_a_whole_conversation() -> None:
    chat = Chat()
    raws = []
    for inp in [Input(inputs.START), Input(inputs.ANSWER, choice="A"), Input(inputs.START), Input(inputs.CONTINUE)]:
        chat.send(inp, dt=0.3337)
        raws.append(chat.conv.to_json())
    for letter in "BCDABCDAB":
        chat.type(letter, dt=0.1)
        raws.append(chat.conv.to_json())
    assert chat.conv.state == DONE
    chat.do(inputs.START)
    raws.append(chat.conv.to_json())
    assert len(set(raws)) == len(raws)  # every change gives a new value (n)
    for x in raws:
        assert Conv.from_json(x).to_json() == x


convs = st.builds(
    Conv,
    state=st.sampled_from([IDLE, ASKING, RESUME, DONE]),
    sid=st.integers(0, 10**9),
    q=st.integers(0, 9),
    answers=st.text("ABCD", max_size=9),
    updated=st.one_of(st.floats(0, 4e9), st.integers(0, 4 * 10**9)),
    last=st.one_of(st.just(""), st.text("ABCD", min_size=10, max_size=10)),
    finished=st.floats(0, 4e9),
    n=st.integers(0, 2**53),
    begun=st.one_of(st.just(0.0), st.floats(0, 4e9)),
)


@given(convs)
def test_json_round_trip_is_byte_stable(conv: Conv) -> None:
    x = conv.to_json()
    back = Conv.from_json(x)
    assert back.to_json() == x
    assert back.state == conv.state and back.sid == conv.sid and back.n == conv.n
    if conv.in_progress:
        assert (back.q, back.answers) == (conv.q, conv.answers)


def test_n_increases_on_every_changed_step() -> None:
    chat = Chat()
    ns = [chat.conv.n]
    for inp in [
        Input(inputs.START),
        Input(inputs.ANSWER, choice="A"),
        Input(inputs.BACK),
        Input(inputs.TEXT),  # unchanged
        Input(inputs.START),  # -> resume
        Input(inputs.CONTINUE),
        Input(inputs.RESTART),
    ]:
        step = chat.send(inp)
        if step.changed:
            assert chat.conv.n == ns[-1] + 1
        else:
            assert chat.conv.n == ns[-1]
        ns.append(chat.conv.n)
    assert ns == [0, 1, 2, 3, 3, 4, 5, 6]


# --- property: the machine against a tiny model -------------------------------------------------


@dataclass
class Model:
    """What the diagnosis should be: at rest, asking, at the resume prompt or asked to confirm a start
    over; the answers so far, the last result and the one before it."""

    state: str = "rest"
    sid: int = 0
    answers: str = ""
    last: str = ""
    prev: str = ""

    def fresh(self) -> None:
        self.state, self.sid, self.answers = "asking", self.sid + 1, ""

    def current(self, q: int | None, sid: int | None) -> bool:
        return (sid is None or sid == self.sid) and (q is None or q == len(self.answers))

    def apply(self, inp: Input) -> str | None:
        """Apply an input; return the result answers when the diagnosis finishes."""
        busy = self.state in ("asking", "resume", "confirm")
        k = inp.kind
        if k == inputs.RESTART and self.state == "asking":
            self.state = "confirm"  # start over? nothing is lost yet
        elif (
            (k == inputs.RESTART_YES and busy and inp.sid == self.sid)
            or (k == inputs.RESTART and self.state != "confirm")
            or (k == inputs.START and self.state in ("rest", "resume"))
        ):
            self.fresh()
        elif k == inputs.START or (k == inputs.FOLLOW and busy):
            self.state = "resume"
        elif k == inputs.CONTINUE and self.state in ("resume", "confirm"):
            self.state = "asking"
        elif k == inputs.BACK and self.state == "confirm" and self.current(inp.q, inp.sid):
            self.state, self.answers = "asking", self.answers[:-1]  # carries on: asked again, or one back
        elif k == inputs.BACK and busy and self.current(inp.q, inp.sid) and self.answers:
            self.state, self.answers = "asking", self.answers[:-1]
        elif k == inputs.ANSWER and busy and self.current(inp.q, inp.sid):
            assert inp.choice is not None
            self.state, self.answers = "asking", self.answers + inp.choice
            if len(self.answers) == QUESTION_COUNT:
                self.state, self.prev, self.last, self.answers = "rest", self.last, self.answers, ""
                return self.last
        return None


q_refs = st.one_of(st.sampled_from(["cur", "prev", "next", None]), st.integers(0, 10))
sid_refs = st.one_of(st.sampled_from(["cur", "old", "cur", None]), st.integers(0, 4))
choices = st.sampled_from("ABCD")
button_answers = st.tuples(st.just(inputs.ANSWER), st.just("cur"), st.just("cur"), choices)
typed_answers = st.tuples(st.just(inputs.ANSWER), st.none(), st.none(), choices)
ops = st.one_of(
    st.tuples(st.sampled_from([inputs.START, inputs.RESTART, inputs.CONTINUE, inputs.TEXT, inputs.OTHER, inputs.FOLLOW,
                               inputs.RESULT])),
    st.tuples(st.just(inputs.RESTART_YES), sid_refs),
    st.tuples(st.just(inputs.ADVICE), st.integers(0, 9), st.sampled_from("BCD")),
    st.tuples(st.just(inputs.BACK), q_refs, sid_refs),
    st.tuples(st.just(inputs.ANSWER), q_refs, sid_refs, choices),
    # answers to the current question are weighted up so that diagnoses often finish
    *[button_answers] * 6,
    *[typed_answers] * 3,
)


def resolve(op: tuple[Any, ...], model: Model) -> Input:
    kind = op[0]
    if len(op) == 1:
        return Input(kind, sid=model.sid if kind == inputs.CONTINUE else None)
    if kind == inputs.RESTART_YES:
        return Input(kind, sid={"cur": model.sid, "old": max(model.sid - 1, 0)}.get(op[1], op[1]))
    if kind == inputs.ADVICE:
        return Input(kind, q=op[1], choice=op[2])
    q_ref, sid_ref = op[1], op[2]
    cur_q = len(model.answers)
    q = {"cur": cur_q, "prev": max(cur_q - 1, 0), "next": cur_q + 1}.get(q_ref, q_ref)
    sid = {"cur": model.sid, "old": max(model.sid - 1, 0)}.get(sid_ref, sid_ref)
    return Input(kind, choice=op[3] if kind == inputs.ANSWER else None, q=q, sid=sid)


@given(st.booleans(), st.lists(ops, min_size=10, max_size=100))
def test_machine_matches_the_model(start_first: bool, sequence: list[tuple[Any, ...]]) -> None:
    assert (len(sequence) + 1) * GAP < SET.resume_after  # no pause is long enough to matter
    chat, model = Chat(), Model()
    for op in [(inputs.START,)] * start_first + sequence:
        inp = resolve(op, model)
        step = chat.send(inp)
        expected = model.apply(inp)
        conv = chat.conv
        results = [o for o in step.outputs if isinstance(o, Result) and not o.again]
        for o in results:
            assert len(o.answers) == QUESTION_COUNT
            assert o.prev == model.prev
        assert [o.answers for o in results] == ([expected] if expected else [])
        shown = [o for o in step.outputs if isinstance(o, Result) and o.again]
        if inp.kind == inputs.RESULT:  # the last result again, or "none yet"
            assert [o.answers for o in shown] == ([model.last] if model.last else [])
            assert bool(model.last) or {notice("no_result"), notice("no_result_midway")} & set(step.outputs)
        else:
            assert shown == []
        if expected:
            event("a diagnosis finished")
        assert conv.sid == model.sid
        assert (conv.last, conv.prev) == (model.last, model.prev)
        if model.state == "rest":
            assert conv.state == (DONE if model.last else IDLE)
        else:
            assert conv.state == {"asking": ASKING, "resume": RESUME, "confirm": CONFIRM}[model.state]
            assert (conv.q, conv.answers) == (len(model.answers), model.answers)
        assert Conv.from_json(conv.to_json()).to_json() == conv.to_json()


def test_start_after_expiry_is_simply_a_new_diagnosis() -> None:
    chat = asking_at(3)
    step = chat.do(inputs.START, dt=SET.expiry + 1)
    assert step.outputs == (q_out(2, 0),)  # no "starting over" notice: the old one had expired
    assert (chat.conv.state, chat.conv.sid, chat.conv.answers) == (ASKING, 2, "")


def test_result_offers_the_reminder_until_the_user_opted_in() -> None:
    chat = finished()
    step = chat.send(Input(inputs.OPT_IN))
    assert chat.conv.remind and step.outputs == (notice("optin_on"),)
    chat.do(inputs.START)
    for letter in "ABCDABCDA":
        chat.tap(letter)
    step = chat.tap("A")
    assert step.outputs == (  # no second offer (the follow-ups' own offer still comes)
        typed({"type": "result", "sid": 2, "answers": "ABCDABCDAA", "prev": "AABBCCDDAB"}), follow_offer(2))
    assert chat.conv.remind  # kept across the retake


def test_stop_word_and_unfollow_end_the_reminder() -> None:
    chat = finished()
    chat.send(Input(inputs.OPT_IN))
    step = chat.send(Input(inputs.OPT_OUT))
    assert not chat.conv.remind and step.outputs == (notice("optin_off"),)
    chat.send(Input(inputs.OPT_IN))
    chat.send(Input(inputs.UNFOLLOW))
    assert chat.conv.state == DONE and not chat.conv.remind and chat.conv.last


def test_opting_in_mid_diagnosis_keeps_the_question_open() -> None:
    chat = asking_at(4)
    chat.send(Input(inputs.OPT_IN))
    assert (chat.conv.state, chat.conv.q, chat.conv.remind) == (ASKING, 4, True)


def test_opting_in_on_an_expired_diagnosis_does_not_revive_it() -> None:
    chat = asking_at(3)
    step = chat.send(Input(inputs.OPT_IN), dt=SET.expiry + 1)
    assert step.outputs == (notice("optin_on"),)
    assert (chat.conv.state, chat.conv.remind, chat.conv.answers) == (IDLE, True, "")
    step = chat.tap("A", q=3, sid=1)
    assert chat.conv.state == IDLE and step.outputs == (OFFER,)


# --- consultation and handoff -------------------------------------------------------------------

HOUR = 3600.0


def ack(sid: int, **extra: Any) -> Output:
    return typed({"type": "consult_ack", "sid": sid, **extra})


def consulted(answers: str = "AABBCCDDAB", settings: Settings = SET) -> Chat:
    chat = finished(answers)
    chat.machine = Machine(ROUTES, settings)
    step = chat.do(inputs.CONSULT, sid=chat.conv.sid)
    assert step.outputs == (ack(1, **({"url": settings.consult_url} if settings.consult_url else {})),)
    return chat


def test_consult_on_a_result_records_the_request_and_opens_a_handoff() -> None:
    chat = finished()
    before = chat.conv
    step = chat.do(inputs.CONSULT, sid=1)
    assert step.changed and step.outputs == (ack(1),)
    assert chat.conv == replace(before, handoff_until=chat.now + 24 * HOUR, consulted=1, updated=chat.now,
                                n=before.n + 1)
    assert (chat.conv.state, chat.conv.last) == (DONE, "AABBCCDDAB")


def test_the_booking_page_rides_on_the_confirmation() -> None:
    chat = consulted(settings=Settings(consult_url="https://example.com/book"))
    assert chat.conv.consulted == 1


@pytest.mark.parametrize("kind", [inputs.TEXT, inputs.OTHER])
def test_free_text_during_the_handoff_gets_no_answer(kind: str) -> None:
    chat = consulted()
    kept = chat.conv
    for dt in (GAP, HOUR, 20 * HOUR):
        step = chat.do(kind, dt=dt)
        assert step.outputs == () and not step.changed and chat.conv is kept


def test_after_the_handoff_the_bot_answers_again_and_forgets_the_window() -> None:
    chat = consulted()
    opened = chat.now
    assert chat.do(inputs.TEXT, dt=24 * HOUR - GAP - 1).outputs == ()  # one second before the end
    chat.now = opened + 24 * HOUR  # the window is over at its end
    step = chat.do(inputs.OTHER, dt=0)
    assert step.outputs == (DONE_HELP,)
    chat.do(inputs.OPT_IN)  # any change drops the stored window
    assert chat.conv.handoff_until == 0.0 and chat.conv.consulted == 1
    assert "h" not in json.loads(chat.conv.to_json())


def test_diagnosis_words_and_buttons_still_work_during_the_handoff() -> None:
    chat = consulted()
    assert chat.do(inputs.OPT_OUT).outputs == (notice("optin_off"),)
    assert chat.do(inputs.FOLLOW).outputs == (GREETING,)
    step = chat.do(inputs.START)
    assert step.outputs == (q_out(2, 0),)
    assert chat.type("B").outputs == (q_out(2, 1),)  # a typed letter is an answer, not free text
    assert chat.tap("C").outputs == (q_out(2, 2),)
    assert chat.do(inputs.BACK, q=2, sid=2).outputs == (q_out(2, 1),)
    assert chat.do(inputs.TEXT).outputs == ()  # free text stays with the person, mid-diagnosis too
    assert chat.do(inputs.OTHER).outputs == ()
    assert chat.conv.handoff_until > chat.now  # a retake keeps the window


def test_a_double_tap_is_not_confirmed_twice_but_a_later_tap_is() -> None:
    chat = consulted()
    assert chat.do(inputs.CONSULT, dt=SET.double_tap, sid=1).outputs == ()
    step = chat.do(inputs.CONSULT, dt=SET.double_tap + 1, sid=1)
    assert step.outputs == (ack(1, again=True),)
    assert chat.conv.handoff_until == chat.now + 24 * HOUR  # the window starts again


def test_a_request_is_about_the_latest_diagnosis_whatever_button_carried_it() -> None:
    chat = finished("DDDDDDDDDD")
    chat.do(inputs.START)
    for letter in "ABCDABCDA":
        chat.tap(letter)
    chat.tap("A")  # diagnosis 2 finished too
    assert chat.do(inputs.CONSULT, sid=1).outputs == (ack(2),)  # the button on the first result
    assert chat.conv.consulted == 2


@pytest.mark.parametrize("sid", [None, 0, 1, 2, 10**6])
def test_a_typed_or_unknown_request_is_about_the_latest_diagnosis(sid: int | None) -> None:
    chat = finished()
    assert chat.do(inputs.CONSULT, sid=sid).outputs == (ack(1),)


def test_a_request_mid_diagnosis_is_about_the_diagnosis_under_way() -> None:
    chat = asking_at(4)
    step = chat.do(inputs.CONSULT)
    assert step.outputs == (ack(1), q_out(1, 4))  # the open question again, to carry on
    assert (chat.conv.state, chat.conv.q, chat.conv.answers) == (ASKING, 4, "ABCD")
    assert chat.do(inputs.TEXT).outputs == ()  # no hint during the handoff
    assert chat.tap("A").outputs == (q_out(1, 5),)


def test_a_request_at_the_resume_prompt_keeps_the_prompt() -> None:
    chat = asking_at(4)
    chat.do(inputs.START)
    assert chat.conv.state == RESUME
    assert chat.do(inputs.CONSULT).outputs == (ack(1), resume_out(1, 4))
    assert chat.conv.state == RESUME
    assert chat.do(inputs.CONTINUE, sid=1).outputs == (q_out(1, 4),)


def test_a_request_with_no_diagnosis_is_taken_and_the_diagnosis_offered_as_preparation() -> None:
    step = M.step(Conv(), Input(inputs.CONSULT), T0)
    assert step.outputs == (ConsultAck(0), OFFER)  # the diagnosis offered, never required
    assert step.conv is not None and step.conv.state == IDLE and step.conv.sid == 0
    assert step.conv.consulted == NO_DIAGNOSIS and step.conv.handoff_until == T0 + SET.handoff
    assert step.conv.begun == T0  # when the lead without answers began (conversations.analytics)
    again = M.step(step.conv, Input(inputs.CONSULT), T0 + 5)
    assert again.outputs == () and not again.changed  # a double tap
    later = M.step(step.conv, Input(inputs.CONSULT), T0 + 60)
    assert later.outputs == (ConsultAck(0, again=True), OFFER) and later.conv is not None
    assert later.conv.begun == T0  # the same lead
    first = M.step(later.conv, Input(inputs.START), T0 + 120)
    assert first.conv is not None and first.conv.sid == 1 and first.conv.begun == T0 + 120


def test_the_booking_flow_s_answer_follows_the_confirmation_and_replaces_the_booking_page() -> None:
    slots = Slots(((1796000400, 1796002200),), "Asia/Tokyo", "オンライン")
    m = build(replace(SET, consult_url="https://book.example/x"))
    step = m.step(Conv(), Input(inputs.CONSULT, reply=(slots,)), T0)
    assert step.outputs == (ConsultAck(0), slots, OFFER)
    assert m.step(Conv(), Input(inputs.CONSULT), T0).outputs[0] == ConsultAck(0, url="https://book.example/x")


def test_a_request_mid_diagnosis_shows_the_slots_then_the_open_question() -> None:
    chat = asking_at(4)
    slots = Slots(((1796000400, 1796002200),), "Asia/Tokyo")
    step = chat.send(Input(inputs.CONSULT, reply=(slots,)))
    assert step.outputs == (ack(1), slots, q_out(1, 4))
    assert (chat.conv.state, chat.conv.q, chat.conv.answers) == (ASKING, 4, "ABCD")  # the diagnosis is kept


@pytest.mark.parametrize("kind", inputs.BOOKING_KINDS)
def test_a_booking_button_says_the_flow_s_answer_and_keeps_the_place(kind: str) -> None:
    chat = asking_at(2)
    told = BookingNote("booked", "0123456789abcdef", 1796000400, 1796002200, "Asia/Tokyo", "電話")
    step = chat.send(Input(kind, reply=(told,)))
    assert step.outputs == (told, q_out(1, 2)) and not step.changed
    assert M.step(Conv(), Input(kind, reply=(told,)), T0).outputs == (told,)


def test_a_request_on_an_expired_diagnosis_puts_it_to_rest_and_is_taken() -> None:
    chat = asking_at(3)
    step = chat.do(inputs.CONSULT, dt=SET.expiry + 1)
    assert step.outputs == (ack(1), OFFER)  # no result kept: the diagnosis offered again
    assert chat.conv.state == IDLE and chat.conv.consulted == 1 and chat.conv.handoff_until > 0


def test_no_handoff_when_switched_off() -> None:
    chat = consulted(settings=Settings(handoff=0))
    assert chat.conv.handoff_until == 0.0
    assert chat.do(inputs.TEXT).outputs == (Heard(1),)
    assert chat.do(inputs.TEXT).outputs == (Heard(1),)  # no window: every message is answered


def test_unfollow_ends_the_handoff() -> None:
    chat = consulted()
    chat.do(inputs.UNFOLLOW)
    assert chat.conv.handoff_until == 0.0 and chat.conv.last
    assert chat.do(inputs.FOLLOW).outputs == (GREETING,)
    assert chat.do(inputs.TEXT).outputs == (Heard(1),)


def test_text_after_a_result_is_answered_once_that_a_person_will_reply() -> None:
    chat = finished()
    before = chat.conv
    step = chat.do(inputs.TEXT)
    assert step.outputs == (Heard(1),) and step.changed
    assert chat.conv == replace(before, handoff_until=chat.now + 24 * HOUR, updated=chat.now, n=before.n + 1)
    assert chat.conv.consulted == 0  # not a consultation request: only 相談する makes one
    for dt in (GAP, HOUR, 20 * HOUR):  # the next messages are left to that person
        assert chat.do(inputs.TEXT, dt=dt).outputs == ()
    assert chat.do(inputs.CONSULT, sid=1).outputs == (ack(1),)  # 相談する still records the request


def test_handoff_fields_in_the_record() -> None:
    conv = Conv(state=DONE, sid=3, last="A" * 10, finished=T0, updated=T0, n=4, handoff_until=T0 + 0.12345,
                consulted=3)
    d = json.loads(conv.to_json())
    assert (d["h"], d["k"]) == (round(T0 + 0.12345, 3), 3)
    assert Conv.from_json(conv.to_json()) == replace(conv, handoff_until=round(T0 + 0.12345, 3))
    assert "h" not in json.loads(Conv().to_json()) and "k" not in json.loads(Conv().to_json())


def test_overlay_routes_are_checked_but_need_not_cover_every_kind() -> None:
    assert (HANDOFF, inputs.TEXT) in M._table and (HANDOFF, inputs.START) not in M._table
    with pytest.raises(ConfigError, match="unknown input kind 'wave'"):
        Machine((*ROUTES, Route(HANDOFF, ("wave",), greet, frozenset({IDLE}))))
    with pytest.raises(ConfigError, match=r"duplicate route for \(handoff, text\)"):
        Machine((*ROUTES, Route(HANDOFF, (inputs.TEXT,), greet, frozenset({IDLE}))))


def test_follow_ups_are_their_own_opt_in_and_stop_on_stop_unfollow_or_start_over_on_a_retake() -> None:
    chat = finished()
    step = chat.send(Input(inputs.FOLLOW_IN, sid=1))
    # the answer brings the quarterly reminder's offer (the result's offers come one a reply)
    assert step.outputs == (notice("follow_on"), OPTIN_OFFER) and chat.conv.fu and not chat.conv.remind
    started = chat.conv.fu
    assert chat.send(Input(inputs.FOLLOW_IN, sid=1)).outputs == (notice("follow_on"),) and chat.conv.fu == started
    chat.send(Input(inputs.OPT_OUT))  # 停止
    assert not chat.conv.fu
    chat.send(Input(inputs.FOLLOW_IN, sid=1))
    chat.do(inputs.START)
    assert chat.send(Input(inputs.FOLLOW_IN, sid=1)).outputs[0] == notice("follow_stale")  # an older result's
    for letter in "ABCDABCDAB":
        step = chat.tap(letter)
    assert chat.conv.sid == 2 and chat.conv.fu > started  # starts over from the retake's point: no new offer
    assert step.outputs[1:] == (notice("follow_restart"), OPTIN_OFFER)  # said so; the next offer instead
    chat.send(Input(inputs.UNFOLLOW))
    assert not chat.conv.fu
    chat.send(Input(inputs.FOLLOW_IN, sid=2))
    assert chat.send(Input(inputs.FOLLOW_NO, sid=2)).outputs == (notice("follow_off"), OPTIN_OFFER)
    assert not chat.conv.fu


def test_ten_a_answers_offer_no_follow_ups() -> None:
    chat = asking_at(9, "AAAAAAAAA")
    step = chat.tap("A")
    assert step.outputs[1:] == (OPTIN_OFFER,)  # nothing to fix: the quarterly offer at once
    assert chat.send(Input(inputs.FOLLOW_IN, sid=1)).outputs == (notice("follow_stale"),) and not chat.conv.fu
