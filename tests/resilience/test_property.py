"""The real Bot, RedisStore and Redis against a small model of the diagnosis, step by random step.

A hypothesis state machine drives ``bot.core.Bot`` (the RedisStore on the suite's real Redis, the
machine from ``conversations.machine.build()``, a recording outbox, an injected clock) for two
subjects at once, with every kind of input a user can produce: start, answers (buttons carrying
the diagnosis number and question, or typed letters), back, restart, continue, stale buttons,
free text, stickers, follow/unfollow, the reminder opt-in, consultation requests (and the handoff
that silences free text after them), pauses, expiry, redelivered events and concurrent deliveries.
The model is written from the documented behaviour (README, the machine's docstring), not from the
handlers, and is checked after every step against what Redis holds:

- the stored record (state, diagnosis number, question, answers, finished result, reminder flag,
  change counter, handoff window, consulted diagnosis) equals the model; in-progress records carry
  a TTL, kept results do not;
- every call returns exactly the outputs the model predicts; a "result" carries exactly 10 answers;
- a redelivered event is a no-op answering "dup", with no outputs and nothing queued;
- of concurrent taps on the current question exactly one advances; the others see the new state;
- the user's mailbox holds exactly the jobs queued since the last unfollow, each with the outputs
  of its event, and each has its recovery mark (a job can never be stranded); an unfollow commits no
  job, drops the earlier ones (never sent), and commits its figures (follow 0) as a record of their
  own; every figures record has its recovery mark too.
"""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import redis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from bot.core import Bot, Handled, InboundEvent
from conversations import inputs, jobs, keys, outputs
from conversations.content import load_script
from conversations.inputs import Input
from conversations.jobs import Figures, Job
from conversations.keys import Subject
from conversations.machine import NO_DIAGNOSIS, Conv, Settings, build
from conversations.outputs import Output, Result
from conversations.store import RedisStore
from scoring import next_point
from tests.conftest import FakeClock

CHANNEL = "web"  # a transport no other test here uses (the try-it page's: its users are tests)
QUESTIONS = 10
# Short windows so that pauses, expiry and double taps all happen within a few steps.
SETTINGS = Settings(expiry=1000.0, resume_after=300.0, double_tap=10.0, handoff=500.0)
KEYWORDS = load_script("ja").keywords
SUBJECTS = 2

IDLE, ASKING, RESUME, CONFIRM, DONE = "idle", "asking", "resume", "confirm", "done"
GREETING = {"type": "greeting"}
OFFER = {"type": "offer"}
DONE_HELP = {"type": "done_help"}
OPTIN_OFFER = {"type": "optin_offer"}

# ---- the model ----------------------------------------------------------------------------------


def notice(key: str, **params: Any) -> dict[str, Any]:
    return {"type": "notice", "key": key, **params}


def question(sid: int, q: int) -> dict[str, Any]:
    return {"type": "question", "sid": sid, "q": q}


def resume_prompt(sid: int, q: int) -> dict[str, Any]:
    return {"type": "resume", "sid": sid, "q": q}


def confirm_prompt(sid: int, q: int) -> dict[str, Any]:
    return {"type": "confirm_restart", "sid": sid, "q": q}


def place(m: Model) -> list[dict[str, Any]]:
    """What shows the user where they are in a diagnosis under way (nothing at rest)."""
    return {ASKING: [question(m.sid, m.q)], RESUME: [resume_prompt(m.sid, m.q)],
            CONFIRM: [confirm_prompt(m.sid, m.q)]}.get(m.state, [])


def result(m: Model, answers: str, prev: str, again: bool = False) -> dict[str, Any]:
    return {"type": "result", "sid": m.sid, "answers": answers, **({"prev": prev} if prev else {}),
            **({"again": True} if again else {})}


@dataclass(frozen=True)
class Model:
    """What one user's record should be. ``stored`` False: no record in Redis at all."""

    state: str = IDLE
    sid: int = 0
    q: int = 0
    answers: str = ""
    last: str = ""
    remind: bool = False
    updated: float = 0.0
    n: int = 0
    stored: bool = False
    handoff_until: float = 0.0  # a consultation request is open: free text gets no answer until then
    consulted: int = 0  # the diagnosis of the latest consultation request
    prev: str = ""  # the finished result before ``last`` (a retake's result is compared with it)
    quiet: bool = False  # said 停止: no push they did not ask for (a drop-off nudge) until they opt in

    def in_handoff(self, now: float) -> bool:
        return self.handoff_until > now

    @property
    def in_progress(self) -> bool:
        return self.state in (ASKING, RESUME, CONFIRM)

    def expired(self, now: float) -> bool:
        return self.in_progress and now - self.updated > SETTINGS.expiry


def _changed(m: Model, now: float, **kw: Any) -> Model:
    """A change is stored: it bumps the change counter and the time of the last change; a handoff
    that is over is forgotten."""
    new = replace(m, **kw, updated=now, n=m.n + 1, stored=True)
    return new if new.handoff_until > now else replace(new, handoff_until=0.0)


def _at_rest(m: Model) -> dict[str, Any]:
    return {"state": DONE if m.last else IDLE, "q": 0, "answers": ""}


def _fresh(m: Model) -> dict[str, Any]:
    return {"state": ASKING, "sid": m.sid + 1, "q": 0, "answers": ""}


def _consult(m: Model, now: float) -> tuple[Model, list[dict[str, Any]]]:
    """A consultation request: about the current diagnosis (the latest result, or the one under way), or
    none taken (sid 0: the diagnosis offered as preparation); a double tap says nothing."""
    asked = m.sid or NO_DIAGNOSIS
    again = m.consulted == asked
    if again and now - m.updated <= SETTINGS.double_tap:
        return m, []
    ack: dict[str, Any] = {"type": "consult_ack", "sid": m.sid, **({"again": True} if again else {})}
    prepare = [OFFER] if not m.last and not m.in_progress else []
    return _changed(m, now, handoff_until=now + SETTINGS.handoff, consulted=asked), [ack, *place(m), *prepare]


def _double_tap(m: Model, inp: Input, now: float) -> bool:
    """The answer just given, tapped again within the double-tap window: silently ignored."""
    if inp.kind != inputs.ANSWER or inp.sid != m.sid or inp.q is None or now - m.updated > SETTINGS.double_tap:
        return False
    given = m.answers if m.in_progress else m.last
    return inp.q == len(given) - 1 and given[inp.q] == inp.choice


def expect(m: Model, inp: Input, now: float) -> tuple[Model, list[Output]]:
    """The documented behaviour: (the record after the input, the outputs to send, as the typed outputs
    that jobs store as these dicts)."""
    after, said = _expect(m, inp, now)
    return after, [outputs.from_json(o) for o in said]


def _expect(m: Model, inp: Input, now: float) -> tuple[Model, list[dict[str, Any]]]:
    k = inp.kind
    if k in (inputs.TEXT, inputs.OTHER) and m.in_handoff(now):  # left to a person: nothing said, nothing changed
        return m, []
    if k in (inputs.OPT_IN, inputs.OPT_OUT):  # in any state; the state stays
        on = k == inputs.OPT_IN
        out = [notice("optin_on" if on else "optin_off")]
        if m.expired(now):  # the expired diagnosis is put to rest, not revived
            return _changed(m, now, **_at_rest(m), remind=on, quiet=not on), out
        if not on and m.in_progress:  # a stop word mid-diagnosis: its own words, the place kept
            out = [notice("stopped_midway")]
        shown = [] if on else place(m)  # a stop word mid-diagnosis: where the user is, again
        same = m.remind == on and m.quiet == (not on)  # 停止 is kept (quiet) even with no reminder to stop
        return (m if same else _changed(m, now, remind=on, quiet=not on)), out + shown
    if k == inputs.UNFOLLOW:  # anything unfinished and the reminder go; a finished result is kept
        return (_changed(m, now, **_at_rest(m), remind=False, handoff_until=0.0) if m.last else Model()), []
    if m.expired(now):
        if k in (inputs.START, inputs.RESTART, inputs.RESTART_YES):
            new = _changed(m, now, **_fresh(m))
            return new, [question(new.sid, 0)]
        if k == inputs.FOLLOW:
            return _changed(m, now, **_at_rest(m)), [GREETING]
        if k == inputs.CONSULT:  # taken all the same, the expired diagnosis put to rest
            asked, said = _consult(replace(m, **_at_rest(m)), now)
            return (asked if said else _changed(m, now, **_at_rest(m))), said
        rest = _changed(m, now, **_at_rest(m))
        if k == inputs.RESULT:
            return rest, ([result(m, m.last, m.prev, again=True)] if m.last
                          else [notice("expired"), notice("no_result"), OFFER])
        if k == inputs.ADVICE:
            return rest, [{"type": "advice", "q": inp.q, "choice": inp.choice}]
        return rest, [notice("expired"), OFFER]
    if k == inputs.RESULT:  # the last result again, in any state; the place is kept
        if not m.last:  # mid-diagnosis: the result comes with the tenth answer
            return m, ([notice("no_result_midway"), *place(m)] if m.in_progress else [notice("no_result"), OFFER])
        return m, [result(m, m.last, m.prev, again=True), *place(m)]
    if k == inputs.ADVICE:
        return m, [{"type": "advice", "q": inp.q, "choice": inp.choice}, *place(m)]
    if k == inputs.CONSULT:  # taken at any time, with a diagnosis or none (sid 0)
        return _consult(m, now)
    if m.state in (IDLE, DONE):
        if k in (inputs.START, inputs.RESTART):
            new = _changed(m, now, **_fresh(m))
            return new, [question(new.sid, 0)]
        if k == inputs.FOLLOW:
            return m, [GREETING]
        if k == inputs.RESTART_YES:  # the diagnosis it was about has ended
            return m, [DONE_HELP if m.state == DONE else OFFER]
        if m.state == DONE and k == inputs.TEXT:  # said once that a person replies; then left to them
            return _changed(m, now, handoff_until=now + SETTINGS.handoff), [{"type": "heard", "sid": m.sid}]
        if m.state == DONE:
            return m, ([] if _double_tap(m, inp, now) else [DONE_HELP])
        return m, ([notice("non_text"), OFFER] if k == inputs.OTHER else [OFFER])
    # a diagnosis is under way (asking; resume: "continue or start over?"; confirm: "start over?")
    if k == inputs.RESTART and m.state == ASKING:  # asks first; the answers so far are kept
        return _changed(m, now, state=CONFIRM), [confirm_prompt(m.sid, m.q)]
    if k == inputs.RESTART_YES and inp.sid != m.sid:  # a yes from an earlier diagnosis
        return m, [notice("stale", number=m.q + 1), *place(m)]
    if (k == inputs.RESTART and m.state == RESUME) or k == inputs.RESTART_YES or (
            k == inputs.START and m.state == RESUME):
        new = _changed(m, now, **_fresh(m))
        return new, [notice("restarted"), question(new.sid, 0)]
    if k in (inputs.START, inputs.FOLLOW):
        return _changed(m, now, state=RESUME), [*([GREETING] if k == inputs.FOLLOW else []), resume_prompt(m.sid, m.q)]
    if k == inputs.CONTINUE:
        return (_changed(m, now, state=ASKING) if m.state != ASKING else m), [question(m.sid, m.q)]
    if m.state == CONFIRM and k in (inputs.RESTART, inputs.TEXT, inputs.OTHER):  # asked again: nothing is lost unasked
        return m, [confirm_prompt(m.sid, m.q)]
    if k in (inputs.TEXT, inputs.OTHER):
        if m.state == RESUME:
            return m, [resume_prompt(m.sid, m.q)]
        if now - m.updated > SETTINGS.resume_after:
            return _changed(m, now, state=RESUME), [resume_prompt(m.sid, m.q)]
        return m, [notice("non_text" if k == inputs.OTHER else "hint"), question(m.sid, m.q)]
    assert k in (inputs.ANSWER, inputs.BACK), k
    current = (inp.sid is None or inp.sid == m.sid) and (inp.q is None or inp.q == m.q)
    if not current:  # an old button: never moves the state
        if _double_tap(m, inp, now):
            return m, []
        if m.state == RESUME:
            return m, [resume_prompt(m.sid, m.q)]
        if m.state == CONFIRM:
            return m, [confirm_prompt(m.sid, m.q)]
        return m, [notice("stale", number=m.q + 1), question(m.sid, m.q)]
    if k == inputs.BACK:
        if m.q == 0:  # (while asked to start over: the user carries on)
            return (_changed(m, now, state=ASKING) if m.state == CONFIRM else m), [question(m.sid, 0)]
        return _changed(m, now, state=ASKING, q=m.q - 1, answers=m.answers[:-1]), [question(m.sid, m.q - 1)]
    assert inp.choice is not None
    answers = m.answers + inp.choice
    if len(answers) < QUESTIONS:
        return _changed(m, now, state=ASKING, q=m.q + 1, answers=answers), [question(m.sid, m.q + 1)]
    done = _changed(m, now, state=DONE, q=0, answers="", last=answers, prev=m.last)
    # one offer with the result: the follow-ups' with a point to fix (never opted in here), else the quarterly one
    if next_point(answers) is not None:
        return done, [result(m, answers, m.last), {"type": "follow_offer", "sid": m.sid}]
    return done, [result(m, answers, m.last), *([] if m.remind else [OPTIN_OFFER])]


# ---- the outbox stand-in ------------------------------------------------------------------------


class RecordingOutbox:
    """The Bot's outbox interface (handles / job_for / look_at), remembering every job it built.

    Jobs are written by the real store's Lua commit; no worker runs, so the user's mailbox keeps
    every job queued for it (until an unfollow drops it).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.built: dict[str, Job] = {}
        self.event_of: dict[str, str] = {}  # job id -> the event it was built for

    def handles(self, transport: str) -> bool:
        return transport == CHANNEL

    def job_for(self, ev: InboundEvent, outputs: Any, now: float, previous: Job | None, *,
                read: str = "", var: str = "", content: str = "") -> Job:
        job = Job.new(ev.subject.transport, ev.subject.user_id, ev.subject.tag_name, list(outputs), now,
                      job_id=previous.id if previous is not None else None)
        with self._lock:
            self.built[job.id] = job
            self.event_of[job.id] = ev.event_id
        return job

    def look_at(self, now: float) -> float:
        return now + 30

    def content_for(self, job: Job | None) -> None:
        return None  # no script version to store: the jobs record none

    def content_stored(self) -> None:
        return None


# ---- the state machine --------------------------------------------------------------------------


@dataclass
class User:
    subject: Subject
    model: Model = field(default_factory=Model)
    events: list[InboundEvent] = field(default_factory=list)  # every event delivered (for redelivery)
    queued: list[str] = field(default_factory=list)  # message ids queued since the last unfollow
    queued_ever: list[str] = field(default_factory=list)
    figures_ever: list[str] = field(default_factory=list)  # figures records committed (no worker applies them)


class BotAgainstModel(RuleBasedStateMachine):
    def __init__(self, client: redis.Redis) -> None:
        super().__init__()
        self.r = client
        self.clock = FakeClock()
        self.outbox = RecordingOutbox()
        self.bot = Bot(RedisStore(client), build(SETTINGS), self.outbox, clock=self.clock,
                       conversation_ttl=int(SETTINGS.expiry))
        run = uuid.uuid4().hex[:10]
        self.users = [User(Subject(CHANNEL, f"U{run}x{i}")) for i in range(SUBJECTS)]

    def teardown(self) -> None:
        for u in self.users:
            tag = u.subject.tag
            doomed = list(self.r.scan_iter(match=f"{keys.PREFIX}:{tag}:*", count=500))
            if doomed:
                self.r.delete(*doomed)
            self.r.srem(keys.REMIND_INDEX, f"{CHANNEL}:{u.subject.user_id}")
            shard = jobs.shard_of(u.subject.tag_name)
            for mid in u.queued_ever + u.figures_ever:
                self.r.zrem(jobs.due(shard), jobs.ref(u.subject.tag_name, mid))
            self.r.delete(jobs.ready(shard))

    # ---- delivering ----------------------------------------------------------------------------
    def new_event(self, u: User, inp: Input) -> InboundEvent:
        return InboundEvent(u.subject, "ev-" + uuid.uuid4().hex, inp, timestamp=self.clock())

    def deliver(self, ui: int, inp: Input) -> Handled:
        """One event, alone: the result, the record and the queued message are exactly the model's."""
        u = self.users[ui]
        ev = self.new_event(u, inp)
        now = self.clock()
        want_model, want_out = expect(u.model, inp, now)
        before = self.mailbox(u)
        figures_before = self.figures(u)
        got = self.bot.handle(ev)
        u.events.append(ev)
        assert got.status == "ok", got
        assert list(got.outputs) == want_out, (inp, u.model, got.outputs)
        assert got.state == want_model.state
        if inp.kind == inputs.UNFOLLOW:
            u.queued = []
        self.check_queued(u, ev, got, before)
        self.check_figures(u, ev, figures_before)
        u.model = want_model
        return got

    def mailbox(self, u: User) -> dict[str, Job]:
        return {k.decode(): Job.from_json(v) for k, v in self.r.hgetall(jobs.mailbox(u.subject.tag_name)).items()}

    def figures(self, u: User) -> dict[str, Figures]:
        return {k.decode(): Figures.from_json(v) for k, v in self.r.hgetall(jobs.figures(u.subject.tag_name)).items()}

    def check_queued(self, u: User, ev: InboundEvent, got: Handled, before: dict[str, Job]) -> None:
        """A handled event with outputs queues exactly one job (its outputs); otherwise none (an
        unfollow's figures are not a message)."""
        new = [j for k, j in self.mailbox(u).items() if not k.startswith("x-") and j.id not in before
               and self.outbox.event_of.get(j.id, ev.event_id) == ev.event_id]
        if got.status == "ok" and got.outputs:
            assert len(new) == 1, new
            assert new[0].outputs == list(got.outputs)
        else:
            assert new == [], new
        if new:
            u.queued.append(new[0].id)
            u.queued_ever.append(new[0].id)

    def check_figures(self, u: User, ev: InboundEvent, before: dict[str, Figures]) -> None:
        """A step commits at most one figures record (no worker applies them here, so they stay); an
        unfollow always commits one, saying so (follow 0, the person)."""
        new = [f for k, f in self.figures(u).items() if k not in before]
        assert len(new) <= 1, new
        if ev.input.kind == inputs.UNFOLLOW:
            assert len(new) == 1, new
            assert (new[0].delta["follow"], new[0].delta["person"]) == (0, f"{CHANNEL}:{u.subject.user_id}")
        u.figures_ever += [f.id for f in new]

    def user_index(self) -> st.SearchStrategy[int]:
        return st.integers(0, SUBJECTS - 1)

    def answerable(self) -> list[int]:
        now = self.clock()
        return [i for i, u in enumerate(self.users) if u.model.in_progress and not u.model.expired(now)]

    # ---- what users do ---------------------------------------------------------------------------
    @rule(ui=st.integers(0, SUBJECTS - 1), typed=st.booleans())
    def start(self, ui: int, typed: bool) -> None:
        self.deliver(ui, inputs.from_text("診断", KEYWORDS) if typed else inputs.from_button("s"))

    @rule(ui=st.integers(0, SUBJECTS - 1), typed=st.booleans())
    def restart(self, ui: int, typed: bool) -> None:
        self.deliver(ui, inputs.from_text("最初から", KEYWORDS) if typed else inputs.from_button("r"))

    @rule(ui=st.integers(0, SUBJECTS - 1), data=st.data())
    def restart_yes(self, ui: int, data: st.DataObject) -> None:
        """Yes to "start over?": for this diagnosis, or a forged/earlier number."""
        m = self.users[ui].model
        sid = data.draw(st.one_of(st.just(m.sid), st.integers(0, m.sid + 1)), label="sid")
        self.deliver(ui, inputs.from_button(f"r:{sid}"))

    @rule(ui=st.integers(0, SUBJECTS - 1), how=st.sampled_from(["結果", "result", "結果を見る"]))
    def see_result(self, ui: int, how: str) -> None:
        inp = inputs.from_text(how, KEYWORDS)
        assert inp.kind == inputs.RESULT, inp
        self.deliver(ui, inp)

    @rule(ui=st.integers(0, SUBJECTS - 1), q=st.integers(0, QUESTIONS - 1), letter=st.sampled_from("BCD"))
    def advice_tap(self, ui: int, q: int, letter: str) -> None:
        self.deliver(ui, inputs.from_button(f"v:{q}:{letter}"))

    @rule(ui=st.integers(0, SUBJECTS - 1), typed=st.booleans())
    def go_on(self, ui: int, typed: bool) -> None:
        m = self.users[ui].model
        self.deliver(ui, inputs.from_text("続き", KEYWORDS) if typed else inputs.from_button(f"c:{m.sid}"))

    @rule(ui=st.integers(0, SUBJECTS - 1), letter=st.sampled_from("ABCD"),
          how=st.sampled_from(["button", "button", "plain", "fullwidth", "lower", "with-text"]))
    def answer(self, ui: int, letter: str, how: str) -> None:
        """The current question's button (or, when nothing is open, the last one seen), or a typed letter."""
        m = self.users[ui].model
        q = m.q if m.in_progress else QUESTIONS - 1
        typed = {"plain": letter, "fullwidth": chr(ord(letter) + 0xFEE0), "lower": letter.lower(),
                 "with-text": f"{letter}: そう思う"}
        inp = (inputs.from_button(f"a:{m.sid}:{q}:{letter}") if how == "button"
               else inputs.from_text(typed[how], KEYWORDS))
        assert inp.kind == inputs.ANSWER and inp.choice == letter, (how, inp)
        got = self.deliver(ui, inp)
        for out in got.outputs:
            if isinstance(out, Result):
                assert len(out.answers) == QUESTIONS and set(out.answers) <= set("ABCD"), out

    @precondition(lambda self: self.answerable())
    @rule(data=st.data(), letters=st.text("ABCD", min_size=2, max_size=QUESTIONS))
    def answer_run(self, data: st.DataObject, letters: str) -> None:
        """Several questions answered in a row, by button, so that diagnoses do reach their result."""
        ui = data.draw(st.sampled_from(self.answerable()))
        for letter in letters:
            m = self.users[ui].model
            if not m.in_progress:
                break
            got = self.deliver(ui, inputs.from_button(f"a:{m.sid}:{m.q}:{letter}"))
            self.clock.advance(SETTINGS.double_tap + 1)
            if any(isinstance(out, Result) for out in got.outputs):
                [result] = [out for out in got.outputs if isinstance(out, Result)]
                assert result.answers == m.answers + letter and len(result.answers) == QUESTIONS

    @rule(ui=st.integers(0, SUBJECTS - 1), typed=st.booleans())
    def back(self, ui: int, typed: bool) -> None:
        m = self.users[ui].model
        self.deliver(ui, inputs.from_text("戻る", KEYWORDS) if typed else inputs.from_button(f"b:{m.sid}:{m.q}"))

    @precondition(lambda self: any(u.model.sid > 0 or u.model.q > 0 for u in self.users))
    @rule(data=st.data())
    def stale_button(self, data: st.DataObject) -> None:
        """A button of another question or another diagnosis (older, or one not yet started)."""
        ui = data.draw(st.sampled_from([i for i, u in enumerate(self.users) if u.model.sid > 0 or u.model.q > 0]))
        m = self.users[ui].model
        sid = data.draw(st.integers(0, m.sid + 1), label="sid")
        q = data.draw(st.integers(0, QUESTIONS - 1).filter(lambda q: (sid, q) != (m.sid, m.q)), label="q")
        kind = data.draw(st.sampled_from(["a", "b"]), label="kind")
        raw = f"a:{sid}:{q}:{data.draw(st.sampled_from('ABCD'))}" if kind == "a" else f"b:{sid}:{q}"
        self.deliver(ui, inputs.from_button(raw))

    @rule(ui=st.integers(0, SUBJECTS - 1), text=st.text(max_size=12))
    def say(self, ui: int, text: str) -> None:
        """Anything typed: whatever the parser makes of it, the model knows what it must do."""
        self.deliver(ui, inputs.from_text(text, KEYWORDS))

    @rule(ui=st.integers(0, SUBJECTS - 1), data=st.sampled_from(["", "x", "a:1", "a:1:0:E", "b:x:1", "c", "o:2",
                                                                   "a:-1:0:A", "a:1:0:AB", "s:1", "r:r", "v:10:B",
                                                                   "v:1:A", "r:-1"]))
    def garbage_button(self, ui: int, data: str) -> None:
        self.deliver(ui, inputs.from_button(data))

    @rule(ui=st.integers(0, SUBJECTS - 1))
    def sticker(self, ui: int) -> None:
        self.deliver(ui, Input(inputs.OTHER))

    @rule(ui=st.integers(0, SUBJECTS - 1))
    def follow(self, ui: int) -> None:
        self.deliver(ui, Input(inputs.FOLLOW))

    @rule(ui=st.integers(0, SUBJECTS - 1))
    def unfollow(self, ui: int) -> None:
        self.deliver(ui, Input(inputs.UNFOLLOW))

    @rule(ui=st.integers(0, SUBJECTS - 1), how=st.sampled_from(["o:1", "o:0", "停止"]))
    def reminder(self, ui: int, how: str) -> None:
        self.deliver(ui, inputs.from_text(how, KEYWORDS) if how == "停止" else inputs.from_button(how))

    @rule(ui=st.integers(0, SUBJECTS - 1), data=st.data())
    def consult(self, ui: int, data: st.DataObject) -> None:
        """「相談する」 on a result (this diagnosis', an earlier one's, or a forged number), or typed."""
        m = self.users[ui].model
        how = data.draw(st.sampled_from(["typed", "current", "other"]), label="how")
        if how == "typed":
            inp = inputs.from_text("相談", KEYWORDS)
        else:
            sid = m.sid if how == "current" else data.draw(st.integers(0, m.sid + 2), label="sid")
            inp = inputs.from_button(f"k:{sid}")
        assert inp.kind == inputs.CONSULT, inp
        self.deliver(ui, inp)

    @rule(seconds=st.sampled_from([1, 4, 9, 11, 30, 120, 301, 600]))
    def wait(self, seconds: int) -> None:
        self.clock.advance(seconds)

    @rule()
    def expire(self) -> None:
        self.clock.advance(SETTINGS.expiry + 1)

    # ---- the channel misbehaving -----------------------------------------------------------------
    @precondition(lambda self: any(u.events for u in self.users))
    @rule(data=st.data())
    def redelivery(self, data: st.DataObject) -> None:
        """An event delivered again (same event ID, maybe marked as a redelivery): a no-op."""
        u = data.draw(st.sampled_from([u for u in self.users if u.events]))
        ev = data.draw(st.sampled_from(u.events))
        if data.draw(st.booleans(), label="flagged"):
            ev = replace(ev, redelivery=True)
        before = self.mailbox(u)
        got = self.bot.handle(ev)
        assert got.status == "dup" and got.outputs == (), got
        assert got.state == u.model.state
        assert self.mailbox(u) == before

    @precondition(lambda self: self.answerable())
    @rule(data=st.data())
    def concurrent_taps(self, data: st.DataObject) -> None:
        """2-4 taps on the open question's buttons at once: exactly one advances the diagnosis; the
        others are handled on the new state (stale, or a silent double tap of the same letter)."""
        ui = data.draw(st.sampled_from(self.answerable()))
        u = self.users[ui]
        m = u.model
        letters = data.draw(st.lists(st.sampled_from("ABCD"), min_size=2, max_size=4), label="letters")
        evs = [self.new_event(u, inputs.from_button(f"a:{m.sid}:{m.q}:{x}")) for x in letters]
        now = self.clock()
        before = self.mailbox(u)
        figures_before = self.figures(u)
        results = self.race(evs)
        u.events += evs
        assert [h.status for h in results] == ["ok"] * len(evs), results
        alone = [expect(m, ev.input, now) for ev in evs]
        winners = [i for i, h in enumerate(results) if list(h.outputs) == alone[i][1]]
        assert len(winners) == 1, (m, letters, results)
        won = alone[winners[0]][0]
        for i, h in enumerate(results):
            if i != winners[0]:
                after, out = expect(won, evs[i].input, now)
                assert after == won, "a losing tap must not change anything"
                assert list(h.outputs) == out, (letters, i, h.outputs, out)
        for ev, h in zip(evs, results, strict=True):
            self.check_queued(u, ev, h, before)
        new_figures = [k for k in self.figures(u) if k not in figures_before]
        assert len(new_figures) <= len(evs), new_figures  # at most one record per event
        u.figures_ever += new_figures
        u.model = won

    @rule(data=st.data(), copies=st.integers(2, 4))
    def concurrent_redelivery(self, data: st.DataObject, copies: int) -> None:
        """One event delivered 2-4 times at once (LINE redelivering while the first is in flight):
        applied exactly once; every other copy answers "dup" with no outputs."""
        ui = data.draw(self.user_index())
        u = self.users[ui]
        m = u.model
        inp = data.draw(st.sampled_from([
            inputs.from_button("s"), inputs.from_button(f"a:{m.sid}:{m.q}:B"), inputs.from_text("c", KEYWORDS),
            inputs.from_button(f"b:{m.sid}:{m.q}"), inputs.from_button("r"), Input(inputs.FOLLOW),
            inputs.from_button("o:1"),
        ]))
        ev = self.new_event(u, inp)
        want_model, want_out = expect(m, inp, self.clock())
        before = self.mailbox(u)
        figures_before = self.figures(u)
        results = self.race([ev] * copies)
        u.events.append(ev)
        assert sorted(h.status for h in results) == ["dup"] * (copies - 1) + ["ok"], results
        [first] = [h for h in results if h.status == "ok"]
        assert list(first.outputs) == want_out
        assert all(h.outputs == () for h in results if h.status == "dup")
        self.check_queued(u, ev, first, before)
        self.check_figures(u, ev, figures_before)  # applied once: one record at most
        u.model = want_model

    def race(self, evs: list[InboundEvent]) -> list[Handled]:
        barrier = threading.Barrier(len(evs))

        def go(ev: InboundEvent) -> Handled:
            barrier.wait(timeout=30)
            return self.bot.handle(ev)

        with ThreadPoolExecutor(max_workers=len(evs)) as pool:
            futures = [pool.submit(go, ev) for ev in evs]
            return [f.result(timeout=60) for f in futures]

    # ---- what must hold after every step ---------------------------------------------------------
    @invariant()
    def record_is_the_model(self) -> None:
        for u in self.users:
            key = keys.conv(u.subject)
            raw = self.r.get(key)
            m = u.model
            if not m.stored:
                assert raw is None, (u.subject, raw)
                continue
            assert raw is not None, u.subject
            conv = Conv.from_json(raw)
            got = (conv.state, conv.sid, conv.q, conv.answers, conv.last, conv.prev, conv.remind, conv.n,
                   conv.updated, conv.handoff_until, conv.consulted, conv.quiet)
            assert got == (m.state, m.sid, m.q, m.answers, m.last, m.prev, m.remind, m.n, m.updated,
                           m.handoff_until, m.consulted, m.quiet), (got, m)
            assert (len(conv.answers) == conv.q) if conv.in_progress else (conv.answers == "")
            ttl = self.r.ttl(key)
            if m.in_progress and not m.last:
                assert ttl > 0, "an abandoned first diagnosis must be garbage-collected"
            else:
                assert ttl == -1, "a kept result (or an idle record) must never expire"
            if m.remind:
                assert self.r.sismember(keys.REMIND_INDEX, f"{CHANNEL}:{u.subject.user_id}")

    @invariant()
    def mailbox_is_what_was_queued(self) -> None:
        for u in self.users:
            stored = {k: j for k, j in self.mailbox(u).items() if not k.startswith("x-")}
            assert sorted(stored) == sorted(u.queued)
            assert [k for k in self.mailbox(u) if k.startswith("x-")] == []  # no job of the first shape here
            shard = jobs.shard_of(u.subject.tag_name)
            for job_id, job in stored.items():
                assert job.id == job_id and job.to == u.subject.user_id
                assert self.r.zscore(jobs.due(shard), job.ref) is not None, "a job without its recovery mark"
            for fid, fig in self.figures(u).items():
                assert fig.id == fid and fig.tag == u.subject.tag_name and fid in u.figures_ever
                assert self.r.zscore(jobs.due(shard), fig.ref) is not None, "figures without their recovery mark"

    @invariant()
    def results_carry_ten_answers(self) -> None:
        for job in list(self.outbox.built.values()):
            for out in job.outputs:
                if isinstance(out, Result):
                    assert len(out.answers) == QUESTIONS, out


def test_bot_store_and_redis_follow_the_model(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        run_state_machine_as_test(
            lambda: BotAgainstModel(client),
            settings=settings(max_examples=60, stateful_step_count=40, deadline=None,
                              suppress_health_check=[HealthCheck.too_slow]),
        )
    finally:
        client.close()
