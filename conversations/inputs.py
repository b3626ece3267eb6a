"""What a user did, in channel-neutral form, and how raw text and button data become it.

Button (postback) data is compact and versioned by the diagnosis number ``sid`` and the question
index, so a tap on a button from an earlier question or an earlier diagnosis is recognised as stale:

    s               start a diagnosis
    r               start over? (asks to confirm while a diagnosis is under way)
    r:<sid>         yes, start diagnosis sid over from question 1
    c:<sid>         continue a paused diagnosis
    a:<sid>:<q>:<X> answer X (A-D) to question q (0-based) of diagnosis sid
    b:<sid>:<q>     go back from question q
    o:1 / o:0       opt in to / out of the quarterly reminder to retake the diagnosis
    t:<sid>:1 / :0  yes / no to the follow-ups (tips) on diagnosis sid's point to fix (bot/followups.py)
    k:<sid>         ask for a consultation (the button on the result of diagnosis sid)
    v:<q>:<X>       show the advice for question q (0-based) at answer level X (B-D): a row of a result
    m:1 / m:0       the quarterly reminder's question "has last time's point to fix moved?": yes / not yet
                    (no diagnosis number: one multicast carries the same buttons to many people)
    g:<q>           list the terms question q (0-based) uses, with their definitions (its 「用語」 button)
    e / e:1 / e:0   delete my data? / yes, delete it / no, keep it
    bk[:<t>[:<id>]] show the free consultation slots (after epoch second t: the next page; moving booking id)
    bp:<t>[:<id>]   book the slot starting at epoch second t (or move booking id there)
    bx:<id>         cancel booking id
    f:<i>:<n>       qualification question i (0-based) answered with its choice n (1-based); n = 0: skipped

Typed 「診断 NAME」 (a start keyword, a space, a source name: the text of a ``crmbot line links`` link) starts
the diagnosis like 診断 and names where the person came from (``Input.source``: lower-case letters, digits,
"-" and "_", at most :data:`SOURCE_MAX` characters; any other name is "" and the diagnosis starts anyway).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from conversations.outputs import Output
from scoring import CHOICES, QUESTION_COUNT

FOLLOW = "follow"
UNFOLLOW = "unfollow"
START = "start"
RESTART = "restart"
CONTINUE = "continue"
ANSWER = "answer"
BACK = "back"
TEXT = "text"  # typed text we do not understand
OTHER = "other"  # a sticker, image, location...
OPT_IN = "opt_in"  # wants a reminder to retake the diagnosis next quarter
OPT_OUT = "opt_out"  # no (more) reminders: the button, or a stop word
CONSULT = "consult"  # asks for a consultation: the button on a result, or a consult word
RESTART_YES = "restart_yes"  # confirmed: start the diagnosis under way over
RESULT = "result"  # show the last result again (a result word, or the rich menu)
ADVICE = "advice"  # show one question's advice for an answer level (a row of a result)
MOVED_YES = "moved_yes"  # the reminder asked whether last time's point to fix moved: yes
MOVED_NO = "moved_no"  # ... not yet
FOLLOW_IN = "follow_in"  # yes to the follow-ups on the point to fix (a few tips over two weeks)
FOLLOW_NO = "follow_no"  # no thanks to them

DEFINE = "define"  # a term's definition (typed: 「LTVとは」), or the terms of question q (its 「用語」 button)
ERASE = "erase"  # delete my data? (typed: 「データを削除」): asks to confirm
ERASE_YES = "erase_yes"  # yes: every key of this person is removed
ERASE_NO = "erase_no"  # no: nothing is removed
QUALIFY = "qualify"  # a qualification question (after a result) answered or skipped: its ``q``, ``choice`` a digit
BOOK = "book"  # show the free consultation slots (a page of them; or to move booking ``ref``)
BOOK_PICK = "book_pick"  # book the slot starting at ``at`` (or move booking ``ref`` there)
BOOK_CANCEL = "book_cancel"  # cancel booking ``ref``
BOOKING_KINDS = (BOOK, BOOK_PICK, BOOK_CANCEL)
# Never typed nor tapped by the owner (no text or button data parses to them): the operator's acts from Slack.
OPERATOR_REPLY = "operator_reply"  # a person answered in the lead's Slack thread (bot/handoff.py)
HANDOFF_END = "handoff_end"  # the operator pressed 「対応終了」 in the lead's thread

KINDS = (FOLLOW, UNFOLLOW, START, RESTART, CONTINUE, ANSWER, BACK, TEXT, OTHER, OPT_IN, OPT_OUT, CONSULT,
         RESTART_YES, RESULT, ADVICE, DEFINE, ERASE, ERASE_YES, ERASE_NO, MOVED_YES, MOVED_NO, QUALIFY,
         *BOOKING_KINDS, FOLLOW_IN, FOLLOW_NO, OPERATOR_REPLY, HANDOFF_END)
QUALIFY_MAX = 3  # qualification questions a script may ask
QUALIFY_CHOICES_MAX = 5  # choices of one qualification question
SOURCE_MAX = 20  # characters of a source name
_SOURCE = re.compile(rf"[a-z0-9_-]{{1,{SOURCE_MAX}}}")


class TermLookup(Protocol):
    """The script's glossary (conversations.content.Glossary): the term a typed question asks about."""

    def lookup(self, typed: str) -> str | None: ...


@dataclass(frozen=True)
class Input:
    kind: str
    choice: str | None = None
    q: int | None = None  # None: "the current question" (typed answers)
    sid: int | None = None  # None: "the current diagnosis"
    term: str | None = None  # DEFINE: the term asked about (None: question q's terms)
    at: int | None = None  # BOOK: show slots after this epoch second; BOOK_PICK: the slot's start
    ref: str = ""  # BOOK / BOOK_PICK: the booking being moved; BOOK_CANCEL: the booking ("" none)
    # What the core's side effect before the step answered (the booking flow, bot/booking_flow.py): the
    # machine places it among the step's outputs; empty when nothing was done (e.g. no availability).
    reply: tuple[Output, ...] = ()
    source: str = ""  # START typed as 「診断 NAME」: where the person came from ("" none or not a valid name)


def normalise(text: str) -> str:
    """NFKC (full-width to half-width), trimmed, lower-case."""
    return unicodedata.normalize("NFKC", text).strip().lower()


def typed_choice(text: str) -> str | None:
    """'a', 'Ａ', 'ａ', 'A: ...', 'b.' -> the letter; anything else -> None."""
    t = normalise(text)
    if not t or t[0].upper() not in CHOICES:
        return None
    if len(t) == 1 or not t[1].isalnum():
        return t[0].upper()
    return None


def from_text(text: str, keywords: Mapping[str, Sequence[str]], glossary: TermLookup | None = None) -> Input:
    """Typed text -> Input, using the script's keyword lists (start/back/restart/continue/consult/result/stop/
    erase/book: 「予約」 opens the free slots as the 「予約する」 button does) and its glossary (「LTVとは」: a
    term's definition; an unknown term is TEXT as any other text)."""
    t = normalise(text)
    for kind in (START, RESTART, BACK, CONTINUE, CONSULT, RESULT, ERASE, BOOK):
        if t in {normalise(w) for w in keywords.get(kind, ())}:
            return Input(kind)
    head, _, tail = t.partition(" ")
    if tail and " " not in tail.strip() and head in {normalise(w) for w in keywords.get(START, ())}:
        return Input(START, source=source_name(tail))  # 「診断 NAME」: a link's text (crmbot line links)
    if t in {normalise(w) for w in keywords.get("stop", ())}:
        return Input(OPT_OUT)
    letter = typed_choice(text)
    if letter:
        return Input(ANSWER, choice=letter)
    if glossary is not None and (term := glossary.lookup(text)):
        return Input(DEFINE, term=term)
    return Input(TEXT)


def source_name(text: str) -> str:
    """A source name as kept (lower-case; letters, digits, "-", "_"; at most SOURCE_MAX), else ""."""
    name = normalise(text) if isinstance(text, str) else ""
    return name if _SOURCE.fullmatch(name) else ""


def button(kind: str, *, sid: int | None = None, q: int | None = None, choice: str | None = None,
           at: int | None = None, ref: str = "") -> str:
    """Postback data for a button (the inverse of from_button)."""
    if kind in BOOKING_KINDS:
        return _booking_button(kind, at, ref)
    if kind == START:
        return "s"
    if kind == RESTART:
        return "r"
    if kind == RESTART_YES:
        return f"r:{sid}"
    if kind == ADVICE:
        return f"v:{q}:{choice}"
    if kind == CONTINUE:
        return f"c:{sid}"
    if kind == ANSWER:
        return f"a:{sid}:{q}:{choice}"
    if kind == BACK:
        return f"b:{sid}:{q}"
    if kind in (OPT_IN, OPT_OUT):
        return "o:1" if kind == OPT_IN else "o:0"
    if kind == CONSULT:
        return f"k:{sid}"
    if kind in (FOLLOW_IN, FOLLOW_NO):
        return f"t:{sid}:{1 if kind == FOLLOW_IN else 0}"
    if kind in (MOVED_YES, MOVED_NO):
        return "m:1" if kind == MOVED_YES else "m:0"
    if kind == DEFINE:
        return f"g:{q}"
    if kind == QUALIFY:
        return f"f:{q}:{choice or 0}"
    if kind in (ERASE, ERASE_YES, ERASE_NO):
        return {ERASE: "e", ERASE_YES: "e:1", ERASE_NO: "e:0"}[kind]
    raise ValueError(f"no button for input kind {kind!r}")


def _booking_button(kind: str, at: int | None, ref: str) -> str:
    if kind == BOOK_CANCEL:
        return f"bx:{ref}"
    head = "bk" if kind == BOOK else "bp"
    if kind == BOOK and not at and not ref:
        return head
    return f"{head}:{at or 0}:{ref}" if ref else f"{head}:{at or 0}"


def _booking_input(parts: list[str]) -> Input | None:
    """bk, bk:<t>, bk:<t>:<id>, bp:<t>, bp:<t>:<id>, bx:<id> (ids: 16 hex digits); None when not one."""
    match parts:
        case ["bk"]:
            return Input(BOOK)
        case ["bx", ref] if _is_ref(ref):
            return Input(BOOK_CANCEL, ref=ref)
        case ["bk" | "bp" as head, at, *rest] if len(rest) <= 1 and all(_is_ref(r) for r in rest):
            when = _nat(at, digits=11)  # epoch seconds
            if head == "bp" and when == 0:
                return None
            return Input(BOOK if head == "bk" else BOOK_PICK, at=when or None, ref=rest[0] if rest else "")
    return None


def _is_ref(ref: str) -> bool:
    return len(ref) == 16 and all(c in "0123456789abcdef" for c in ref)


def from_button(data: str) -> Input:
    """Postback data -> Input. Anything malformed is TEXT (re-asked with a hint), never an error."""
    parts = data.split(":") if isinstance(data, str) and len(data) <= 64 else []
    try:
        if parts and parts[0] in ("bk", "bp", "bx"):
            return _booking_input(parts) or Input(TEXT)
        match parts:
            case ["s"]:
                return Input(START)
            case ["r"]:
                return Input(RESTART)
            case ["o", "1"]:
                return Input(OPT_IN)
            case ["o", "0"]:
                return Input(OPT_OUT)
            case ["t", sid, "1" | "0" as yes]:
                return Input(FOLLOW_IN if yes == "1" else FOLLOW_NO, sid=_nat(sid))
            case ["m", "1"]:
                return Input(MOVED_YES)
            case ["m", "0"]:
                return Input(MOVED_NO)
            case ["e"]:
                return Input(ERASE)
            case ["e", "1"]:
                return Input(ERASE_YES)
            case ["e", "0"]:
                return Input(ERASE_NO)
            case ["g", q] if _nat(q) < QUESTION_COUNT:
                return Input(DEFINE, q=_nat(q))
            case ["f", q, n] if _nat(q) < QUALIFY_MAX and _nat(n) <= QUALIFY_CHOICES_MAX:
                return Input(QUALIFY, q=_nat(q), choice=str(_nat(n)))
            case ["r", sid]:
                return Input(RESTART_YES, sid=_nat(sid))
            case ["v", q, choice] if choice in CHOICES[1:] and _nat(q) < QUESTION_COUNT:
                return Input(ADVICE, choice=choice, q=_nat(q))
            case ["c", sid]:
                return Input(CONTINUE, sid=_nat(sid))
            case ["k", sid]:
                return Input(CONSULT, sid=_nat(sid))
            case ["a", sid, q, choice] if choice in CHOICES:
                return Input(ANSWER, choice=choice, q=_nat(q), sid=_nat(sid))
            case ["b", sid, q]:
                return Input(BACK, q=_nat(q), sid=_nat(sid))
    except ValueError:
        pass
    return Input(TEXT)


def _nat(s: str, digits: int = 9) -> int:
    if not s.isascii() or not s.isdigit() or len(s) > digits:
        raise ValueError(s)
    return int(s)
