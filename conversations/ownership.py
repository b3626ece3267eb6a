"""Which events crmbot answers when it shares a LINE Official Account with another LINE tool.

A LINE account has one webhook URL. When crmbot shares the account with another tool (Lステップ, エルメ,
LOYCUS ...: see the README's "Coexistence with another LINE tool"), every event reaches both, and each
event's reply token can be used once, by one of them. crmbot then answers only the events it *owns* and
leaves every other event, and its reply token, to the other tool. It still records what it needs from an
event it does not own (a follow counts as a follower, an unfollow stops the reminders): the step is
committed as usual, only its outputs are not sent.

**The rule** (:func:`owns`, the one place it is decided; pure, unit-tested in
tests/conversations/test_ownership.py):

1. a **postback** is crmbot's when its data is one of crmbot's own formats (:mod:`conversations.inputs`:
   ``s``, ``a:<sid>:<q>:<X>`` ...); any other data is the other tool's button, even mid-diagnosis;
2. a **text message** is crmbot's when it is one of the script's keywords that mean something with no
   diagnosis under way: start (診断), start over (最初から), result (結果), consult (相談する), book (予約),
   stop (停止), delete my data (データを削除), or a question about a term of its glossary (LTVとは). Back
   and continue (戻る, 続き) only mean something mid-diagnosis, and are common words of other tools'
   menus: at rest they are not crmbot's;
3. **any message** (text, sticker, image ...) from a user whose diagnosis is **in progress** (asking,
   resume, confirm; an expired one is not) is crmbot's: the user is answering its questions;
4. a user **handed off** to a person (a consultation request is open, ``Conv.handoff_until`` ahead: the
   operator talks with them from Slack, bot/handoff.py) is crmbot's for every message: it relays them to
   the operator's thread (:func:`handed_over`).

Not crmbot's: follow and unfollow (the other tool greets), free text and stickers with no diagnosis under
way, the other tool's postbacks. Slack, the try-it page and the terminal are crmbot's alone: the rule is
applied only to the transports the bot is told share their account (``Bot(owned_only=...)``).
"""

from __future__ import annotations

from enum import StrEnum

from conversations import inputs
from conversations.inputs import Input
from conversations.machine import Conv


class Origin(StrEnum):
    """What kind of event an input came from (the input's kind alone cannot tell a foreign postback,
    which parses as free text, from typed free text)."""

    EVENT = "event"  # follow, unfollow: not a message
    POSTBACK = "postback"  # a button's data
    TEXT = "text"  # a typed text message
    MESSAGE = "message"  # any other message: a sticker, an image, a location ...


# Typed keywords that are crmbot's with no diagnosis under way (rule 2).
KEYWORDS_AT_REST = frozenset({inputs.START, inputs.RESTART, inputs.RESULT, inputs.CONSULT, inputs.BOOK,
                              inputs.OPT_OUT, inputs.ERASE, inputs.DEFINE})


def owns(origin: Origin, inp: Input, *, in_progress: bool, handed_over: bool = False) -> bool:
    """Whether crmbot answers this event (see the module's doc for the rule). ``in_progress``: the
    user's diagnosis is under way (``Machine.in_progress`` on the record already read for the step)."""
    if origin is Origin.POSTBACK:
        return inp.kind != inputs.TEXT  # data of another format parses as TEXT (inputs.from_button)
    if origin is Origin.EVENT:
        return False
    if in_progress or handed_over:
        return True
    return origin is Origin.TEXT and inp.kind in KEYWORDS_AT_REST


def handed_over(conv: Conv, now: float) -> bool:
    """Rule 4: whether this user is handed off to a person now (their messages go to the operator's Slack
    thread), decided from the record the step has already read (no round trip of its own)."""
    return conv.handoff_until > now
