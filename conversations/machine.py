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
    confirm  the user asked to start over mid-diagnosis and was asked to confirm (the place is kept)
    done     the last diagnosis finished; its answers are in ``last``
Dispatch-only state:
    expired  an unfinished diagnosis older than ``Settings.expiry`` (the record is then reset)
Overlay:
    handoff  a consultation request is open (``Conv.handoff_until`` is ahead of now): a person replies
             in the channel's own chat, so the overlay's routes (free text, stickers) come first and
             say nothing; every other input goes to the state's own route as usual.

Outputs are small frozen dataclasses (:mod:`conversations.outputs`, a closed union with a JSON round trip)
that each channel renders in its own way: Greeting, Offer, Notice (a text key, with the open question's
number for ``stale``), Question, Resume, ConfirmRestart, Result (``prev``: compared with the result before;
``again``: the last result shown once more on request), Advice, DoneHelp, Heard (text typed after a result:
a person will reply; further text is then left to them, as in the handoff overlay), OptinOffer (the quarterly reminder,
after a result), ConsultAck (a consultation was requested, at any time; the analytics mark the lead
the first time; ``again`` when this diagnosis already had one; ``url``: the booking page), Slots and
BookingNote (the booking flow's answers, done by the core before the step: ``Input.reply``)), Qualify (after a
result, the script's optional qualification questions, one at a time: a choice or a skip records it in
``Conv.qual`` and asks the next; any other input simply leaves them; asked only while some are unanswered),
FollowOffer (the follow-ups on the result's point to fix, bot/followups.py: ``Conv.fu``).

After a result the offers come one a reply, so that each reply is short (and within LINE's five messages):
the result, then the qualification questions one at a time; with the last one's thanks (or with the result
when none is left to ask) the follow-ups' offer while they do not run (:func:`offers`), else the quarterly
reminder's; the follow-ups' answer brings the quarterly reminder's offer (while not opted in).

Where the person came from: typed 「診断 NAME」 (a ``crmbot line links`` link) is a START with a source; the
record keeps the first one (``Conv.src``), and every lead of the person carries it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from conversations import inputs
from conversations.errors import ConfigError, InvalidInput
from conversations.inputs import Input
from conversations.outputs import (
    Advice,
    ConfirmRestart,
    ConsultAck,
    Definition,
    DoneHelp,
    Erasure,
    FollowOffer,
    Greeting,
    Heard,
    Notice,
    Offer,
    OptinOffer,
    Output,
    Qualify,
    Question,
    Result,
    Resume,
)
from scoring import QUESTION_COUNT, next_point

IDLE, ASKING, RESUME, CONFIRM, DONE, EXPIRED = "idle", "asking", "resume", "confirm", "done", "expired"
HANDOFF = "handoff"
NO_DIAGNOSIS = -1  # Conv.consulted: a consultation was requested with no diagnosis taken
STORED_STATES = (IDLE, ASKING, RESUME, CONFIRM, DONE)
STATES = (*STORED_STATES, EXPIRED)
OVERLAYS = (HANDOFF,)  # routes that come first while their condition holds, for the kinds they list
IN_PROGRESS = (ASKING, RESUME, CONFIRM)


@dataclass(frozen=True)
class Settings:
    expiry: float = 7 * 86400  # an unfinished diagnosis expires after this many seconds
    resume_after: float = 3600  # text after this long a pause asks "continue or start over?"
    double_tap: float = 10.0  # a repeat of the answer just given, within this window, is ignored
    handoff: float = 24 * 3600  # after a consultation request, free text is left to a person this long
    consult_url: str = ""  # a booking page offered with the consultation's confirmation ("" none)
    privacy_url: str = ""  # the consultancy's privacy policy, named with the privacy note ("" none yet)
    qualify: tuple[int, ...] = ()  # the script's qualification questions: each one's number of choices


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
    handoff_until: float = 0.0  # a consultation request is open: free text is left to a person until then
    consulted: int = 0  # the diagnosis (sid) of the latest consultation request (0: none; NO_DIAGNOSIS: asked
    # with no diagnosis taken)
    prev: str = ""  # answers of the finished diagnosis before ``last`` (a retake is compared with it)
    qual: str = ""  # the qualification questions answered so far: a digit each, its choice (1-based; 0 skipped)
    src: str = ""  # the first source the person came with (「診断 NAME」; "" none)
    quiet: bool = False  # said 停止 (opt-out): no push they did not ask for (a drop-off nudge) until they opt in
    var: str = ""  # the content experiments' variants of diagnosis ``sid``: "exp:variant" pairs joined by ","
    # (conversations/segments.py); assigned when it starts, kept for the whole diagnosis
    ver: str = ""  # the content version diagnosis ``sid`` runs ("" the file deployed with the code)
    fu: float = 0.0  # follow-ups on the point to fix of diagnosis ``sid`` run from this time (0: none; a retake
    # starts them over from its own point; bot/followups.py)

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
        if self.handoff_until:
            d["h"] = round(self.handoff_until, 3)
        if self.consulted:
            d["k"] = self.consulted
        if self.prev:
            d["p"] = self.prev
        if self.qual:
            d["qa"] = self.qual
        if self.src:
            d["src"] = self.src
        if self.quiet:
            d["qt"] = 1
        if self.var:
            d["var"] = self.var
        if self.ver:
            d["ver"] = self.ver
        if self.fu:
            d["fu"] = round(self.fu, 3)
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
            handoff_until=d.get("h", 0.0),
            consulted=d.get("k", 0),
            prev=d.get("p", ""),
            qual=d.get("qa", ""),
            src=d.get("src", ""),
            quiet=bool(d.get("qt", 0)),
            var=d.get("var", ""),
            ver=d.get("ver", ""),
            fu=d.get("fu", 0.0),
        )

    @property
    def in_progress(self) -> bool:
        return self.state in IN_PROGRESS


@dataclass(frozen=True)
class Step:
    """A transition's outcome: the record to store (None deletes it) and what to send."""

    conv: Conv | None
    outputs: tuple[Output, ...] = ()
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
            if r.state not in STATES and r.state not in OVERLAYS:
                raise ConfigError(f"state machine: unknown state {r.state!r} in route {r.handler.__name__}")
            if unknown := set(r.targets) - set(STORED_STATES):
                raise ConfigError(f"state machine: {r.handler.__name__} targets unknown states {sorted(unknown)}")
            for k in r.kinds:
                if k not in inputs.KINDS:
                    raise ConfigError(f"state machine: unknown input kind {k!r} in {r.handler.__name__}")
                if (r.state, k) in table:
                    raise ConfigError(f"state machine: duplicate route for ({r.state}, {k})")
                table[(r.state, k)] = r
        missing = [(s, k) for s in STATES for k in inputs.KINDS if (s, k) not in table]
        if missing:
            raise ConfigError(f"state machine: no route for {missing[:5]}")
        self._table = table

    def dispatch_state(self, conv: Conv, now: float) -> str:
        if conv.in_progress and now - conv.updated > self.settings.expiry:
            return EXPIRED
        return conv.state

    def in_progress(self, conv: Conv, now: float) -> bool:
        """A diagnosis is under way for this record now (one that has expired is not)."""
        return self.dispatch_state(conv, now) in IN_PROGRESS

    def overlay(self, conv: Conv, now: float) -> str | None:
        """The overlay in force for this record now, if any."""
        return HANDOFF if conv.handoff_until > now else None

    def step(self, conv: Conv, inp: Input, now: float) -> Step:
        over = self.overlay(conv, now)
        route = self._table.get((over, inp.kind)) if over else None
        if route is None:
            route = self._table[(self.dispatch_state(conv, now), inp.kind)]
        out = route.handler(conv, inp, Ctx(now, self.settings))
        if out.state not in route.targets:
            raise AssertionError(f"{route.handler.__name__} led to {out.state!r}, not in {sorted(route.targets)}")
        if inp.source and out.conv is not None and not out.conv.src:  # the first source is kept
            out = replace(out, conv=replace(out.conv, src=inp.source), changed=True)
        if out.conv is not None and out.changed:
            # A record stored before ``begun`` existed takes its last change as the start of its diagnosis.
            begun = out.conv.begun or (conv.updated if out.conv.sid == conv.sid else 0.0)
            handoff_until = out.conv.handoff_until if out.conv.handoff_until > now else 0.0  # over: forgotten
            out = replace(out, conv=replace(out.conv, updated=now, n=conv.n + 1, begun=begun,
                                            handoff_until=handoff_until))
        return out


# ---- outputs ----------------------------------------------------------------------------------------


def question(conv: Conv) -> Question:
    return Question(conv.sid, conv.q)


def notice(key: str, number: int | None = None) -> Notice:
    return Notice(key, number)


def result_output(conv: Conv, *, again: bool = False) -> Result:
    """The kept result (``conv.last``), compared with the one before it when there is one."""
    return Result(conv.sid, conv.last, conv.prev, again)


def place(conv: Conv) -> tuple[Output, ...]:
    """What shows the user where they are in a diagnosis under way (nothing when none is)."""
    if conv.state == ASKING:
        return (question(conv),)
    if conv.state == RESUME:
        return (Resume(conv.sid, conv.q),)
    if conv.state == CONFIRM:
        return (ConfirmRestart(conv.sid, conv.q),)
    return ()


def offers(conv: Conv) -> tuple[Output, ...]:
    """What a finished result offers next, one thing a reply: the follow-ups on its point to fix while they
    do not run, else the quarterly reminder while not opted in (it also follows the follow-ups' answer)."""
    if conv.in_progress or not conv.last:
        return ()
    if not conv.fu and next_point(conv.last) is not None:
        return (FollowOffer(conv.sid),)
    return () if conv.remind else (OptinOffer(),)


# ---- handlers ---------------------------------------------------------------------------------------


def _keep(conv: Conv, *outputs: Output) -> Step:
    return Step(conv, tuple(outputs), changed=False)


def _at_rest(conv: Conv) -> Conv:
    """The record with no diagnosis under way: done if a result is kept, else idle."""
    return Conv(state=DONE if conv.last else IDLE, sid=conv.sid, last=conv.last, finished=conv.finished, n=conv.n,
                remind=conv.remind, begun=conv.begun, handoff_until=conv.handoff_until,
                consulted=conv.consulted, prev=conv.prev, qual=conv.qual, src=conv.src, quiet=conv.quiet,
                var=conv.var, ver=conv.ver, fu=conv.fu)


def _begin(conv: Conv, ctx: Ctx) -> Conv:
    """Diagnosis ``sid + 1`` starts now (``begun`` is stored to the millisecond, as read back)."""
    # var: its experiments' variants are assigned by the core on this step (bot/core.py, conversations.experiments)
    return replace(_at_rest(conv), state=ASKING, sid=conv.sid + 1, q=0, answers="", begun=round(ctx.now, 3), var="")


def start(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    fresh = _begin(conv, ctx)
    outs: list[Output] = [notice("restarted")] if conv.in_progress else []
    return Step(fresh, (*outs, question(fresh)))


def start_fresh(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    """Start after the unfinished diagnosis expired: no "starting over" notice, it is simply new."""
    fresh = _begin(conv, ctx)
    return Step(fresh, (question(fresh),))


def greet(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    return _keep(conv, Greeting(ctx.settings.privacy_url))


def offer(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    return _keep(conv, Offer())


def non_text_idle(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    return _keep(conv, notice("non_text"), Offer())


def forget(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    """Unfollow: drop anything in progress, the reminder and an open handoff; a finished result is kept."""
    if not conv.last:
        return Step(None)
    return Step(replace(_at_rest(conv), remind=False, handoff_until=0.0, fu=0.0))


def _is_current(conv: Conv, inp: Input) -> bool:
    return (inp.sid is None or inp.sid == conv.sid) and (inp.q is None or inp.q == conv.q)


def _is_double_tap(conv: Conv, inp: Input, ctx: Ctx) -> bool:
    """The same answer to the question just answered, moments ago: a double tap, not a change of mind."""
    if (inp.kind != inputs.ANSWER or inp.sid != conv.sid or inp.q is None
            or ctx.now - conv.updated > ctx.settings.double_tap):
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
    # Follow-ups opted in to start over from this result's point (none with ten A's).
    fu = round(ctx.now, 3) if conv.fu and next_point(answers) is not None else 0.0
    done = replace(_at_rest(conv), state=DONE, last=answers, finished=ctx.now, prev=conv.last, fu=fu)
    outs: tuple[Output, ...] = (result_output(done),)
    if fu:
        outs += (notice("follow_restart"),)  # the follow-ups start over from this result's point
    if len(done.qual) < len(ctx.settings.qualify):
        outs += (Qualify(len(done.qual)),)  # one at a time; the next offer comes with the last one's thanks
    else:
        outs += offers(done)
    return Step(done, outs)


def qualify(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    """A qualification question answered or skipped: recorded, then the next one (or the thanks after the
    last); the place is kept. A button of a question already answered (a double tap) says nothing."""
    asked = ctx.settings.qualify
    q, choice = inp.q, int(inp.choice or 0)
    if q != len(conv.qual) or q >= len(asked) or choice > asked[q]:
        return _keep(conv)
    qual = conv.qual + str(choice)
    nxt = replace(conv, qual=qual)
    after = offers(nxt) if len(qual) == len(asked) else ()  # with the thanks after the last one
    return Step(nxt, (Qualify(len(qual)), *after, *place(conv)))


def qualify_expired(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    went = qualify(_at_rest(conv), inp, ctx)
    return Step(went.conv, went.outputs)  # the expired diagnosis is put to rest either way


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
    if conv.state in (RESUME, CONFIRM):
        return Step(replace(conv, state=ASKING), (question(conv),))
    return _keep(conv, question(conv))


def hint(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    if ctx.now - conv.updated > ctx.settings.resume_after:
        return ask_resume(conv, inp, ctx)
    key = "non_text" if inp.kind == inputs.OTHER else "hint"
    return _keep(conv, notice(key), question(conv))


def ask_resume(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    outs: tuple[Output, ...] = (Greeting(ctx.settings.privacy_url),) if inp.kind == inputs.FOLLOW else ()
    return Step(replace(conv, state=RESUME), (*outs, Resume(conv.sid, conv.q)))


def resume_again(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    if inp.kind == inputs.ANSWER and _is_double_tap(conv, inp, ctx):
        return _keep(conv)
    return _keep(conv, Resume(conv.sid, conv.q))


def answer_or_resume(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    return answer(conv, inp, ctx) if _is_current(conv, inp) else resume_again(conv, inp, ctx)


def back_or_resume(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    return back(conv, inp, ctx) if _is_current(conv, inp) else resume_again(conv, inp, ctx)


def done_help(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    if _is_double_tap(conv, inp, ctx):
        return _keep(conv)
    return _keep(conv, DoneHelp())


def heard(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    """Text typed after a result (a question about fees, a remark): said once that a person will read
    it and reply, with 相談する; then, as after a consultation request, further text is left to that
    person for ``Settings.handoff`` seconds (the handoff overlay) instead of a canned reply each time.
    Telling the operator hangs on the Heard output (see conversations.outputs)."""
    until = ctx.now + ctx.settings.handoff if ctx.settings.handoff > 0 else 0.0
    return Step(replace(conv, handoff_until=until), (Heard(conv.sid),))


def opt_in(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    if conv.remind and not conv.quiet:
        return _keep(conv, notice("optin_on"))
    return Step(replace(conv, remind=True, quiet=False), (notice("optin_on"),))


def opt_out(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    """No (more) reminders. Mid-diagnosis (a stop word typed while a question is open) it says so in
    its own words: notices are off, the diagnosis stays where it is, and the open question (or prompt)
    is shown again to carry on."""
    said = notice("stopped_midway" if conv.in_progress else "optin_off")
    if not conv.remind and conv.quiet and not conv.fu:
        return _keep(conv, said, *place(conv))
    return Step(replace(conv, remind=False, quiet=True, fu=0.0), (said, *place(conv)))


def follow_choice(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    """Yes or no to the follow-ups on the point to fix of the result shown (an older result's button, or
    one with nothing to fix: only what can be done now), answered with the quarterly reminder's offer while
    not opted in (the result's offers come one a reply). A yes while they run changes nothing."""
    if inp.sid != conv.sid or not conv.last or next_point(conv.last) is None or conv.in_progress:
        return _keep(conv, notice("follow_stale"), *place(conv))
    then: tuple[Output, ...] = () if conv.remind else (OptinOffer(),)
    if inp.kind == inputs.FOLLOW_NO:
        return Step(replace(conv, fu=0.0), (notice("follow_off"), *then)) if conv.fu else _keep(
            conv, notice("follow_off"), *then)
    if conv.fu:
        return _keep(conv, notice("follow_on"))
    return Step(replace(conv, fu=round(ctx.now, 3)), (notice("follow_on"), *then))


def opt_expired(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    """Opting in or out while an unfinished diagnosis has expired: the answer is recorded and the
    expired diagnosis is put to rest (not revived by the change)."""
    on = inp.kind == inputs.OPT_IN
    return Step(replace(_at_rest(conv), remind=on, quiet=not on, fu=conv.fu if on else 0.0),
                (notice("optin_on" if on else "optin_off"),))


def follow_expired(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    """A follow-up offer's button while an unfinished diagnosis has expired: it is about an older result."""
    return Step(_at_rest(conv), (notice("follow_stale"),))


def ask_restart(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    """Start over? The answers so far are kept until the user says yes."""
    asked = replace(conv, state=CONFIRM)
    return Step(asked, place(asked))


def confirm_again(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    return _keep(conv, *place(conv))


def restart_yes(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    """Yes, start over: only for the diagnosis under way (an old button is stale)."""
    if inp.sid != conv.sid:
        return _keep(conv, notice("stale", number=conv.q + 1), *place(conv))
    return start(conv, inp, ctx)


def restart_yes_at_rest(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    """A start-over confirmation with no diagnosis under way: the one it was about has ended."""
    return _keep(conv, DoneHelp() if conv.state == DONE else Offer())


def answer_or_confirm(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    """An answer to the open question while asked to confirm: the user carries on (no start over)."""
    if inp.kind == inputs.ANSWER and _is_current(conv, inp):
        return answer(replace(conv, state=ASKING), inp, ctx)
    if inp.kind == inputs.BACK and _is_current(conv, inp):
        carried_on = replace(conv, state=ASKING)
        went = back(carried_on, inp, ctx)
        return went if went.changed else Step(carried_on, went.outputs)
    if _is_double_tap(conv, inp, ctx):
        return _keep(conv)
    return _keep(conv, *place(conv))


def show_result(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    """The last result once more (with its comparison); mid-diagnosis the open question follows."""
    if not conv.last:
        if conv.in_progress:  # the result comes with the tenth answer: carry on from the open question
            return _keep(conv, notice("no_result_midway"), *place(conv))
        return _keep(conv, notice("no_result"), Offer())
    return _keep(conv, result_output(conv, again=True), *place(conv))


def show_result_expired(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    rest = _at_rest(conv)
    if not rest.last:
        return Step(rest, (notice("expired"), notice("no_result"), Offer()))
    return Step(rest, (result_output(rest, again=True),))


def _advice(inp: Input) -> Advice:
    if inp.q is None or inp.choice is None:  # from_button gives both, or no ADVICE input at all
        raise InvalidInput("an advice input without its question and answer")
    return Advice(inp.q, inp.choice)


def advice(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    """A result's row tapped: that question's advice for that answer level; the place is kept."""
    return _keep(conv, _advice(inp), *place(conv))


def advice_expired(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    return Step(_at_rest(conv), (_advice(inp),))


def consult(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    """A consultation request, taken at any time: about the current diagnosis (the latest result, or the
    one under way: the operator's lead; a button from an earlier result asks about the person's latest
    too), or with none taken (``sid`` 0: the diagnosis is then offered as optional preparation, never as
    a gate). The state and the place stay (mid-diagnosis it goes on); free text is left to a person for
    ``Settings.handoff`` seconds. A double tap is not confirmed twice. ``inp.reply``: what the booking
    flow answered (free slots, or the booking already made), shown after the confirmation; without it
    the confirmation carries the booking page (``Settings.consult_url``), if any."""
    sid = conv.sid
    asked = sid or NO_DIAGNOSIS
    again = conv.consulted == asked
    if again and ctx.now - conv.updated <= ctx.settings.double_tap:
        return _keep(conv)
    out = ConsultAck(sid, again, "" if inp.reply else ctx.settings.consult_url)
    until = ctx.now + ctx.settings.handoff if ctx.settings.handoff > 0 else 0.0
    after = replace(conv, handoff_until=until, consulted=asked)
    if not sid:  # when the first request was made is the start of its lead (conversations.analytics)
        after = replace(after, begun=conv.begun or round(ctx.now, 3))
    prepare: tuple[Output, ...] = (Offer(),) if not conv.last and not conv.in_progress else ()
    return Step(after, (out, *inp.reply, *place(conv), *prepare))  # mid-diagnosis: go on


def consult_expired(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    """A request after the unfinished diagnosis expired: taken all the same, the diagnosis put to rest."""
    rest = _at_rest(conv)
    step = consult(rest, inp, ctx)
    return step if step.changed else Step(rest, step.outputs)


def booking(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    """A booking button (slots, a pick, a cancel): the core's booking flow did it before the step and
    answered in ``inp.reply``; the state and the place stay."""
    return _keep(conv, *inp.reply, *place(conv))


def booking_expired(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    return Step(_at_rest(conv), inp.reply)


def _moved_outputs(conv: Conv, inp: Input) -> tuple[Output, ...]:
    """Thanks for the answer; a "not yet" gets the last point's advice again, at the owner's level."""
    yes = inp.kind == inputs.MOVED_YES
    point = next_point(conv.last) if len(conv.last) == QUESTION_COUNT else None
    if yes or point is None:
        return (notice("moved_yes" if yes else "moved_no"),)
    return notice("moved_no"), Advice(point, conv.last[point])


def moved(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    """The quarterly reminder asked whether last time's point to fix has moved: the answer is thanked (and
    recorded on the lead by the analytics, from the input's kind); the state and the place stay."""
    return _keep(conv, *_moved_outputs(conv, inp), *place(conv))


def moved_expired(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    rest = _at_rest(conv)
    return Step(rest, _moved_outputs(rest, inp))


def leave_to_person(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    """Free text while a consultation request is open: a person answers it, the bot says nothing (the core
    relays it to the operator's thread, bot/handoff.py)."""
    return _keep(conv)


def operator_reply(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    """A person answered the owner from the operator's Slack thread (the core pushes their words): the
    handoff goes on, or opens again, for ``Settings.handoff`` from now; the bot itself says nothing. An
    expired diagnosis is ended, as any other input would end it."""
    until = ctx.now + ctx.settings.handoff if ctx.settings.handoff > 0 else 0.0
    base = _at_rest(conv) if conv.in_progress and ctx.now - conv.updated > ctx.settings.expiry else conv
    return Step(replace(base, handoff_until=until))


def end_handoff(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    """The operator ended the conversation (「対応終了」): free text gets the bot's own answers again."""
    base = _at_rest(conv) if conv.in_progress and ctx.now - conv.updated > ctx.settings.expiry else conv
    return Step(replace(base, handoff_until=0.0))


def expired(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    return Step(_at_rest(conv), (notice("expired"), Offer()))


def expired_greet(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    return Step(_at_rest(conv), (Greeting(ctx.settings.privacy_url),))


def _definition(inp: Input) -> Definition:
    if inp.term:
        return Definition(term=inp.term)
    if inp.q is None:  # from_text gives a term, from_button a question: never neither
        raise InvalidInput("a definition input without its term or question")
    return Definition(q=inp.q)


def define(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    """「LTVとは」 or a question's 「用語」 button: the definitions, then the open question (or prompt) again."""
    return _keep(conv, _definition(inp), *place(conv))


def define_expired(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    return Step(_at_rest(conv), (_definition(inp),))


def erase_ask(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    """「データを削除」: confirm first (yes / no buttons); nothing changes until yes."""
    return _keep(conv, Erasure("ask"))


def erase_ask_expired(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    return Step(_at_rest(conv), (Erasure("ask"),))


def erase_no(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    return _keep(conv, Erasure("kept"), *place(conv))


def erase_no_expired(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    return Step(_at_rest(conv), (Erasure("kept"),))


def erase_yes(conv: Conv, inp: Input, ctx: Ctx) -> Step:
    """Yes, delete: the record goes; the core (bot/core.py) removes every other key of the person first."""
    return Step(None, (Erasure("done"),))


# ---- the table --------------------------------------------------------------------------------------

_ALL = frozenset(STORED_STATES)
_STAY = {s: frozenset({s}) for s in STORED_STATES}
ROUTES: tuple[Route, ...] = (
    # idle: nothing under way
    Route(IDLE, (inputs.START, inputs.RESTART), start, frozenset({ASKING})),
    Route(IDLE, (inputs.RESTART_YES,), restart_yes_at_rest, _STAY[IDLE]),
    Route(IDLE, (inputs.FOLLOW,), greet, _STAY[IDLE]),
    Route(IDLE, (inputs.TEXT, inputs.ANSWER, inputs.BACK, inputs.CONTINUE), offer, _STAY[IDLE]),
    Route(IDLE, (inputs.OTHER,), non_text_idle, _STAY[IDLE]),
    Route(IDLE, (inputs.UNFOLLOW,), forget, frozenset({IDLE, DONE})),
    # asking: question q is open
    Route(ASKING, (inputs.ANSWER,), answer, frozenset({ASKING, DONE})),
    Route(ASKING, (inputs.BACK,), back, _STAY[ASKING]),
    Route(ASKING, (inputs.RESTART,), ask_restart, frozenset({CONFIRM})),
    Route(ASKING, (inputs.RESTART_YES,), restart_yes, _STAY[ASKING]),
    Route(ASKING, (inputs.START, inputs.FOLLOW), ask_resume, frozenset({RESUME})),
    Route(ASKING, (inputs.CONTINUE,), reask, _STAY[ASKING]),
    Route(ASKING, (inputs.TEXT, inputs.OTHER), hint, frozenset({ASKING, RESUME})),
    Route(ASKING, (inputs.UNFOLLOW,), forget, frozenset({IDLE, DONE})),
    # resume: asked "continue or start over?"
    Route(RESUME, (inputs.CONTINUE,), reask, _STAY[ASKING]),
    Route(RESUME, (inputs.START, inputs.RESTART), start, _STAY[ASKING]),
    Route(RESUME, (inputs.RESTART_YES,), restart_yes, frozenset({ASKING, RESUME})),
    Route(RESUME, (inputs.ANSWER,), answer_or_resume, frozenset({ASKING, DONE, RESUME})),
    Route(RESUME, (inputs.BACK,), back_or_resume, frozenset({ASKING, RESUME})),
    Route(RESUME, (inputs.TEXT, inputs.OTHER), resume_again, _STAY[RESUME]),
    Route(RESUME, (inputs.FOLLOW,), ask_resume, _STAY[RESUME]),
    Route(RESUME, (inputs.UNFOLLOW,), forget, frozenset({IDLE, DONE})),
    # confirm: asked "start over?" mid-diagnosis; the place is kept until the user says yes
    Route(CONFIRM, (inputs.RESTART_YES,), restart_yes, frozenset({ASKING, CONFIRM})),
    Route(CONFIRM, (inputs.CONTINUE,), reask, _STAY[ASKING]),
    Route(CONFIRM, (inputs.ANSWER, inputs.BACK), answer_or_confirm, frozenset({ASKING, DONE, CONFIRM})),
    Route(CONFIRM, (inputs.RESTART, inputs.TEXT, inputs.OTHER), confirm_again, _STAY[CONFIRM]),
    Route(CONFIRM, (inputs.START, inputs.FOLLOW), ask_resume, frozenset({RESUME})),
    Route(CONFIRM, (inputs.UNFOLLOW,), forget, frozenset({IDLE, DONE})),
    # done: a result is kept
    Route(DONE, (inputs.START, inputs.RESTART), start, _STAY[ASKING]),
    Route(DONE, (inputs.RESTART_YES,), restart_yes_at_rest, _STAY[DONE]),
    Route(DONE, (inputs.FOLLOW,), greet, _STAY[DONE]),
    Route(DONE, (inputs.TEXT,), heard, _STAY[DONE]),
    Route(DONE, (inputs.OTHER, inputs.ANSWER, inputs.BACK, inputs.CONTINUE), done_help, _STAY[DONE]),
    Route(DONE, (inputs.UNFOLLOW,), forget, _STAY[DONE]),
    # expired: an unfinished diagnosis ran out of time
    Route(EXPIRED, (inputs.START, inputs.RESTART, inputs.RESTART_YES), start_fresh, _STAY[ASKING]),
    Route(EXPIRED, (inputs.RESULT,), show_result_expired, frozenset({IDLE, DONE})),
    Route(EXPIRED, (inputs.ADVICE,), advice_expired, frozenset({IDLE, DONE})),
    Route(EXPIRED, (inputs.FOLLOW,), expired_greet, frozenset({IDLE, DONE})),
    Route(EXPIRED, (inputs.UNFOLLOW,), forget, frozenset({IDLE, DONE})),
    Route(EXPIRED, (inputs.TEXT, inputs.OTHER, inputs.ANSWER, inputs.BACK, inputs.CONTINUE), expired,
          frozenset({IDLE, DONE})),
    # the quarterly reminder: yes/no after a result, or a stop word, in any state (the state stays)
    *(Route(s, (inputs.OPT_IN,), opt_in, frozenset({s})) for s in STORED_STATES),
    *(Route(s, (inputs.FOLLOW_IN, inputs.FOLLOW_NO), follow_choice, frozenset({s})) for s in STORED_STATES),
    *(Route(s, (inputs.OPT_OUT,), opt_out, frozenset({s})) for s in STORED_STATES),
    Route(EXPIRED, (inputs.OPT_IN, inputs.OPT_OUT), opt_expired, frozenset({IDLE, DONE})),
    Route(EXPIRED, (inputs.FOLLOW_IN, inputs.FOLLOW_NO), follow_expired, frozenset({IDLE, DONE})),
    # a consultation request, in any state, with or without a diagnosis (the state stays)
    *(Route(s, (inputs.CONSULT,), consult, frozenset({s})) for s in STORED_STATES),
    Route(EXPIRED, (inputs.CONSULT,), consult_expired, frozenset({IDLE, DONE})),
    # booking a consultation slot, moving or cancelling it, in any state (the state and the place stay)
    *(Route(s, inputs.BOOKING_KINDS, booking, frozenset({s})) for s in STORED_STATES),
    Route(EXPIRED, inputs.BOOKING_KINDS, booking_expired, frozenset({IDLE, DONE})),
    # the last result again, and a result row's advice, in any state (the state and the place stay)
    *(Route(s, (inputs.RESULT,), show_result, frozenset({s})) for s in STORED_STATES),
    *(Route(s, (inputs.ADVICE,), advice, frozenset({s})) for s in STORED_STATES),
    # the reminder's "has last time's point moved?" answered, in any state (the state and the place stay)
    *(Route(s, (inputs.MOVED_YES, inputs.MOVED_NO), moved, frozenset({s})) for s in STORED_STATES),
    Route(EXPIRED, (inputs.MOVED_YES, inputs.MOVED_NO), moved_expired, frozenset({IDLE, DONE})),
    # a qualification question answered or skipped, in any state (the state and the place stay)
    *(Route(s, (inputs.QUALIFY,), qualify, frozenset({s})) for s in STORED_STATES),
    Route(EXPIRED, (inputs.QUALIFY,), qualify_expired, frozenset({IDLE, DONE})),
    # a term's definition, and deleting the person's data, in any state (the place is shown again)
    *(Route(s, (inputs.DEFINE,), define, frozenset({s})) for s in STORED_STATES),
    Route(EXPIRED, (inputs.DEFINE,), define_expired, frozenset({IDLE, DONE})),
    *(Route(s, (inputs.ERASE,), erase_ask, frozenset({s})) for s in STORED_STATES),
    *(Route(s, (inputs.ERASE_NO,), erase_no, frozenset({s})) for s in STORED_STATES),
    Route(EXPIRED, (inputs.ERASE,), erase_ask_expired, frozenset({IDLE, DONE})),
    Route(EXPIRED, (inputs.ERASE_NO,), erase_no_expired, frozenset({IDLE, DONE})),
    *(Route(s, (inputs.ERASE_YES,), erase_yes, frozenset({IDLE})) for s in STATES),
    # handoff: while a request is open, free text and stickers are left to a person (in any state)
    Route(HANDOFF, (inputs.TEXT, inputs.OTHER), leave_to_person, _ALL),
    # the operator's acts from the lead's Slack thread, in any state (the state stays; an expired one ends)
    *(Route(s, (inputs.OPERATOR_REPLY,), operator_reply, _ALL) for s in STATES),
    *(Route(s, (inputs.HANDOFF_END,), end_handoff, _ALL) for s in STATES),
)


def build(settings: Settings | None = None) -> Machine:
    return Machine(ROUTES, settings)
