"""The diagnosis conversation as a declarative state machine.

Channel-neutral and pure: ``Machine.step(conv, input, now)`` returns the next record and the
outputs to send; it never touches Redis or a network. The routing is the table ``ROUTES`` at the
bottom: one row per (state, input kinds) with its handler and the states it may lead to. The table
is checked when the machine is built: unknown states or targets, duplicate or missing routes are
errors, and at run time a handler may only lead where its row says.

States (stored):
    idle     no diagnosis under way (a finished result may be kept in ``last``)
    asking   question ``q`` (0-based) of diagnosis ``sid`` is open; ``answers`` holds q letters
    resume   the user came back to an unfinished diagnosis and was asked: continue or start over?
    done     the last diagnosis finished; its answers are in ``last``
Dispatch-only state:
    expired  an unfinished diagnosis older than ``Settings.expiry`` (the record is then reset)

Outputs are small dicts (JSON-safe) that each channel renders in its own way:
    {"type": "greeting"} | {"type": "offer"} | {"type": "notice", "key": <text key>}
    {"type": "question", "sid": n, "q": i} | {"type": "resume", "sid": n, "q": i}
    {"type": "result", "sid": n, "answers": "ABCD..."} | {"type": "done_help"}
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from conversations import inputs as I
from conversations.errors import ConfigError
from conversations.inputs import Input
from scoring import QUESTION_COUNT

IDLE, ASKING, RESUME, DONE, EXPIRED = "idle", "asking", "resume", "done", "expired"
STORED_STATES = (IDLE, ASKING, RESUME, DONE)
STATES = (*STORED_STATES, EXPIRED)
IN_PROGRESS = (ASKING, RESUME)


@dataclass(frozen=True)
class Settings:
    expiry: float = 7 * 86400  # an unfinished diagnosis expires after this many seconds
    resume_after: float = 3600  # text after this long a pause asks "continue or start over?"
    double_tap: float = 10.0  # a repeat of the answer just given, within this window, is ignored


@dataclass(frozen=True)
class Conv:
    """One user's conversation record (stored as compact JSON)."""

    state: str = IDLE
    sid: int = 0  # number of the current/last diagnosis
    q: int = 0  # open question (asking/resume)
    answers: str = ""  # answers given in the current diagnosis
    updated: float = 0.0  # last change, seconds since the epoch
    last: str = ""  # answers of the last finished diagnosis
    finished: float = 0.0  # when it finished
    n: int = 0  # change counter: makes every stored value unique (compare-and-set guard)
    remind: bool = False  # opted in to a quarterly reminder to retake the diagnosis
    begun: float = 0.0  # when diagnosis ``sid`` started (0.0: a record stored before this field, see step())

    def to_json(self) -> str:
        d: dict[str, Any] = {"s": self.state, "sid": self.sid, "t": round(self.updated, 3), "n": self.n}
        if self.state in IN_PROGRESS:
            d |= {"q": self.q, "a": self.answers}
        if self.last:
            d |= {"last": self.last, "ft": round(self.finished, 3)}
        if self.remind:
            d["r"] = 1
        if begun := round(self.begun, 3):
            d["b"] = begun
        return json.dumps(d, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes | None) -> Conv:
        if not raw:
            return cls()
        d = json.loads(raw)
        return cls(
            state=d["s"],
            sid=d["sid"],
            q=d.get("q", 0),
            answers=d.get("a", ""),
            updated=d.get("t", 0.0),
            last=d.get("last", ""),
            finished=d.get("ft", 0.0),
            n=d.get("n", 0),
            remind=bool(d.get("r", 0)),
            begun=d.get("b", 0.0),
        )

    @property
    def in_progress(self) -> bool:
        return self.state in IN_PROGRESS


@dataclass(frozen=True)
class Step:
    """A transition's outcome: the record to store (None deletes it) and what to send."""

    conv: Conv | None
    outputs: tuple[dict[str, Any], ...] = ()
    changed: bool = True

    @property
    def state(self) -> str:
        return self.conv.state if self.conv else IDLE


@dataclass(frozen=True)
class Ctx:
    now: float
    settings: Settings


Handler = Callable[[Conv, Input, Ctx], Step]


@dataclass(frozen=True)
class Route:
    state: str
    kinds: tuple[str, ...]
    handler: Handler
    targets: frozenset[str] = field(default_factory=frozenset)


class Machine:
    """A checked routing table: (state, input kind) -> handler."""

    def __init__(self, routes: Iterable[Route], settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        table: dict[tuple[str, str], Route] = {}
        for r in routes:
            if r.state not in STATES:
                raise ConfigError(f"state machine: unknown state {r.state!r} in route {r.handler.__name__}")
            if unknown := set(r.targets) - set(STORED_STATES):
                raise ConfigError(f"state machine: {r.handler.__name__} targets unknown states {sorted(unknown)}")
            for k in r.kinds:
                if k not in I.KINDS:
                    raise ConfigError(f"state machine: unknown input kind {k!r} in {r.handler.__name__}")
                if (r.state, k) in table:
                    raise ConfigError(f"state machine: duplicate route for ({r.state}, {k})")
                table[(r.state, k)] = r
        missing = [(s, k) for s in STATES for k in I.KINDS if (s, k) not in table]
        if missing:
            raise ConfigError(f"state machine: no route for {missing[:5]}")
        self._table = table

    def dispatch_state(self, conv: Conv, now: float) -> str:
        if conv.in_progress and now - conv.updated > self.settings.expiry:
            return EXPIRED
        return conv.state

    def step(self, conv: Conv, inp: Input, now: float) -> Step:
        route = self._table[(self.dispatch_state(conv, now), inp.kind)]
        out = route.handler(conv, inp, Ctx(now, self.settings))
        if out.state not in route.targets:
            raise AssertionError(f"{route.handler.__name__} led to {out.state!r}, not in {sorted(route.targets)}")
        if out.conv is not None and out.changed:
            # A record stored before ``begun`` existed takes its last change as the start of its diagnosis.
            begun = out.conv.begun or (conv.updated if out.conv.sid == conv.sid else 0.0)
            out = replace(out, conv=replace(out.conv, updated=now, n=conv.n + 1, begun=begun))
        return out


# ---- outputs ----------------------------------------------------------------------------------------


def question(conv: Conv) -> dict[str, Any]:
    return {"type": "question", "sid": conv.sid, "q": conv.q}


def notice(key: str, **params: Any) -> dict[str, Any]:
    return {"type": "notice", "key": key, **params}


# ---- handlers ---------------------------------------------------------------------------------------


def _keep(conv: Conv, *outputs: dict[str, Any]) -> Step:
    return Step(conv, tuple(outputs), changed=False)


def _at_rest(conv: Conv) -> Conv:
    """The record with no diagnosis under way: done if a result is kept, else idle."""
    return Conv(state=DONE if conv.last else IDLE, sid=conv.sid, last=conv.last, finished=conv.finished, n=conv.n,
                remind=conv.remind, begun=conv.begun)


def _begin(conv: Conv, ctx: Ctx) -> Conv:
    """Diagnosis ``sid + 1`` starts now (``begun`` is stored to the millisecond, as read back)."""
    return replace(_at_rest(conv), state=ASKING, sid=conv.sid + 1, q=0, answers="", begun=round(ctx.now, 3))


def start(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    fresh = _begin(conv, ctx)
    outs = [notice("restarted")] if conv.in_progress else []
    return Step(fresh, (*outs, question(fresh)))


def start_fresh(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    """Start after the unfinished diagnosis expired: no "starting over" notice, it is simply new."""
    fresh = _begin(conv, ctx)
    return Step(fresh, (question(fresh),))


def greet(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    return _keep(conv, {"type": "greeting"})


def offer(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    return _keep(conv, {"type": "offer"})


def non_text_idle(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    return _keep(conv, notice("non_text"), {"type": "offer"})


def forget(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    """Unfollow: drop anything in progress and the reminder; a finished result is kept."""
    if not conv.last:
        return Step(None)
    return Step(replace(_at_rest(conv), remind=False))


def _is_current(conv: Conv, inp: Input) -> bool:
    return (inp.sid is None or inp.sid == conv.sid) and (inp.q is None or inp.q == conv.q)


def _is_double_tap(conv: Conv, inp: Input, ctx: Ctx) -> bool:
    """The same answer to the question just answered, moments ago: a double tap, not a change of mind."""
    if inp.kind != I.ANSWER or inp.sid != conv.sid or inp.q is None or ctx.now - conv.updated > ctx.settings.double_tap:
        return False
    given = conv.answers if conv.in_progress else conv.last
    return inp.q == len(given) - 1 and given[inp.q] == inp.choice


def answer(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    if not _is_current(conv, inp):
        return stale(conv, inp, ctx)
    answers = conv.answers + (inp.choice or "")
    if len(answers) < QUESTION_COUNT:
        nxt = replace(conv, state=ASKING, q=conv.q + 1, answers=answers)
        return Step(nxt, (question(nxt),))
    done = Conv(state=DONE, sid=conv.sid, last=answers, finished=ctx.now, n=conv.n, remind=conv.remind,
                begun=conv.begun)
    outs: tuple[dict[str, Any], ...] = ({"type": "result", "sid": conv.sid, "answers": answers},)
    if not conv.remind:
        outs += ({"type": "optin_offer"},)
    return Step(done, outs)


def stale(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    if _is_double_tap(conv, inp, ctx):
        return _keep(conv)
    return _keep(conv, notice("stale", number=conv.q + 1), question(conv))


def back(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    if not _is_current(conv, inp):
        return stale(conv, inp, ctx)
    if conv.q == 0:
        return _keep(conv, question(conv))
    prev = replace(conv, state=ASKING, q=conv.q - 1, answers=conv.answers[:-1])
    return Step(prev, (question(prev),))


def reask(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    if conv.state == RESUME:
        return Step(replace(conv, state=ASKING), (question(conv),))
    return _keep(conv, question(conv))


def hint(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    if ctx.now - conv.updated > ctx.settings.resume_after:
        return ask_resume(conv, inp, ctx)
    key = "non_text" if inp.kind == I.OTHER else "hint"
    return _keep(conv, notice(key), question(conv))


def ask_resume(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    outs: tuple[dict[str, Any], ...] = ({"type": "greeting"},) if inp.kind == I.FOLLOW else ()
    return Step(replace(conv, state=RESUME), (*outs, {"type": "resume", "sid": conv.sid, "q": conv.q}))


def resume_again(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    if inp.kind == I.ANSWER and _is_double_tap(conv, inp, ctx):
        return _keep(conv)
    return _keep(conv, {"type": "resume", "sid": conv.sid, "q": conv.q})


def answer_or_resume(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    return answer(conv, inp, ctx) if _is_current(conv, inp) else resume_again(conv, inp, ctx)


def back_or_resume(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    return back(conv, inp, ctx) if _is_current(conv, inp) else resume_again(conv, inp, ctx)


def done_help(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    if _is_double_tap(conv, inp, ctx):
        return _keep(conv)
    return _keep(conv, {"type": "done_help"})


def opt_in(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    if conv.remind:
        return _keep(conv, notice("optin_on"))
    return Step(replace(conv, remind=True), (notice("optin_on"),))


def opt_out(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    if not conv.remind:
        return _keep(conv, notice("optin_off"))
    return Step(replace(conv, remind=False), (notice("optin_off"),))


def opt_expired(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    """Opting in or out while an unfinished diagnosis has expired: the answer is recorded and the
    expired diagnosis is put to rest (not revived by the change)."""
    on = inp.kind == I.OPT_IN
    return Step(replace(_at_rest(conv), remind=on), (notice("optin_on" if on else "optin_off"),))


def expired(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    return Step(_at_rest(conv), (notice("expired"), {"type": "offer"}))


def expired_greet(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    return Step(_at_rest(conv), ({"type": "greeting"},))


# ---- the table --------------------------------------------------------------------------------------

_ALL = frozenset(STORED_STATES)
_STAY = {s: frozenset({s}) for s in STORED_STATES}
ROUTES: tuple[Route, ...] = (
    # idle: nothing under way
    Route(IDLE, (I.START, I.RESTART), start, frozenset({ASKING})),
    Route(IDLE, (I.FOLLOW,), greet, _STAY[IDLE]),
    Route(IDLE, (I.TEXT, I.ANSWER, I.BACK, I.CONTINUE), offer, _STAY[IDLE]),
    Route(IDLE, (I.OTHER,), non_text_idle, _STAY[IDLE]),
    Route(IDLE, (I.UNFOLLOW,), forget, frozenset({IDLE, DONE})),
    # asking: question q is open
    Route(ASKING, (I.ANSWER,), answer, frozenset({ASKING, DONE})),
    Route(ASKING, (I.BACK,), back, _STAY[ASKING]),
    Route(ASKING, (I.RESTART,), start, _STAY[ASKING]),
    Route(ASKING, (I.START, I.FOLLOW), ask_resume, frozenset({RESUME})),
    Route(ASKING, (I.CONTINUE,), reask, _STAY[ASKING]),
    Route(ASKING, (I.TEXT, I.OTHER), hint, frozenset({ASKING, RESUME})),
    Route(ASKING, (I.UNFOLLOW,), forget, frozenset({IDLE, DONE})),
    # resume: asked "continue or start over?"
    Route(RESUME, (I.CONTINUE,), reask, _STAY[ASKING]),
    Route(RESUME, (I.START, I.RESTART), start, _STAY[ASKING]),
    Route(RESUME, (I.ANSWER,), answer_or_resume, frozenset({ASKING, DONE, RESUME})),
    Route(RESUME, (I.BACK,), back_or_resume, frozenset({ASKING, RESUME})),
    Route(RESUME, (I.TEXT, I.OTHER), resume_again, _STAY[RESUME]),
    Route(RESUME, (I.FOLLOW,), ask_resume, _STAY[RESUME]),
    Route(RESUME, (I.UNFOLLOW,), forget, frozenset({IDLE, DONE})),
    # done: a result is kept
    Route(DONE, (I.START, I.RESTART), start, _STAY[ASKING]),
    Route(DONE, (I.FOLLOW,), greet, _STAY[DONE]),
    Route(DONE, (I.TEXT, I.OTHER, I.ANSWER, I.BACK, I.CONTINUE), done_help, _STAY[DONE]),
    Route(DONE, (I.UNFOLLOW,), forget, _STAY[DONE]),
    # expired: an unfinished diagnosis ran out of time
    Route(EXPIRED, (I.START, I.RESTART), start_fresh, _STAY[ASKING]),
    Route(EXPIRED, (I.FOLLOW,), expired_greet, frozenset({IDLE, DONE})),
    Route(EXPIRED, (I.UNFOLLOW,), forget, frozenset({IDLE, DONE})),
    Route(EXPIRED, (I.TEXT, I.OTHER, I.ANSWER, I.BACK, I.CONTINUE), expired, frozenset({IDLE, DONE})),
    # the quarterly reminder: yes/no after a result, or a stop word, in any state (the state stays)
    *(Route(s, (I.OPT_IN,), opt_in, frozenset({s})) for s in STORED_STATES),
    *(Route(s, (I.OPT_OUT,), opt_out, frozenset({s})) for s in STORED_STATES),
    Route(EXPIRED, (I.OPT_IN, I.OPT_OUT), opt_expired, frozenset({IDLE, DONE})),
)


def build(settings: Settings | None = None) -> Machine:
    return Machine(ROUTES, settings)
