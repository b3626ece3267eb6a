"""What the diagnosis says: the machine's outputs, a closed union of small frozen dataclasses.

Each channel renders them in its own way (``bot/line/render.py``, ``bot/views.py``, ``bot/webchat.py``,
``bot/slack/blocks.py``, ``crmbot chat`` in ``bot/cli.py``); each renderer is a ``match`` over
:data:`Output` ending in ``assert_never``, so a new kind added here fails the type check (mypy) until
every channel renders it.

Jobs keep them as JSON in Redis (:mod:`conversations.jobs`): ``to_json`` gives the dict a job stores and
:func:`from_json` reads it back. The dicts are the shape jobs have always stored (``{"type": "question",
"sid": 1, "q": 0}``), so a job committed before outputs were typed still reads and delivers.

    Greeting        a new friend's welcome (and the privacy note, with the policy's ``privacy_url``)
    Offer           "take the diagnosis?" with its start button
    Notice          one line of the script (``key``), e.g. "that button is from an earlier question"
                    (``stale``, with the open question's ``number``)
    Question        question ``q`` (0-based) of diagnosis ``sid``, with its answer buttons
    Resume          "continue diagnosis ``sid`` at question ``q``, or start over?"
    ConfirmRestart  "start over?" yes / no, mid-diagnosis (``q`` questions answered so far)
    Result          a result: ``answers`` (ten letters); ``prev``: the result before it, compared with it;
                    ``again``: the last result shown once more on request; ``peers``: (question, % of shops
                    answering A) for the point to fix and the plan (conversations.results.peer_shares)
    Advice          question ``q``'s advice for an answer ``choice`` (B-D): a result's row tapped
    DoneHelp        what can be done after a result (take it again)
    Heard           a message typed after a result: a person will read it and reply (``sid``: the
                    diagnosis it follows; offers 相談する). The hook for telling the operator: a
                    committed Heard is where a forward of the message to the operator belongs
    OptinOffer      "remind me to retake it next quarter?" yes / no
    FollowOffer     "a few short tips on your point to fix over two weeks?" yes / no (diagnosis ``sid``)
    FollowStep      one of those tips (question ``q``, step ``step``), pushed by the clock (bot/followups.py)
    ConsultAck      a consultation about diagnosis ``sid`` was requested (``again``: not the first time;
                    ``url``: a booking page to offer)
    Definition      a term's definition (``term``, typed 「LTVとは」), or every term question ``q`` uses (its
                    「用語」 button)
    Erasure         deleting the person's data: ``ask`` (confirm with a button), ``kept``, ``done``
    Slots           free consultation slots to pick from (``slots``: (start, end) epoch seconds, read in ``tz``),
                    ``more``: a page of later ones starts after this epoch second (0 none); ``moving``: the
                    booking a pick moves; ``note``: why they are shown ("" asked; "full", "not_offered": the
                    slot picked could not be booked; "none": no slot is free)
    BookingNote     a booking told to its owner (``stage``: booked, changed, same, cancelled, cancelled_op
                    (by the consultancy, with its ``message``), gone (no longer active), remind_day,
                    remind_soon), with its time (epoch seconds, read in ``tz``) and meeting format
    Qualify         after a result, optional qualification question ``q`` (0-based; the script's ``[qualify]``)
                    with its choices and a skip; ``q`` = the number of questions: the thanks after the last
    Reminder        the quarterly invitation: the last result's point to fix, or an A tier's next theme (a
                    LINE multicast, queued by the clock)

The Slack KPI messages (``slack_post``, ``slack_ephemeral``, ``slack_chart``, ``slack_file``,
``slack_home``) are rendered when they are committed and travel as plain dicts (:data:`Payload`), as
before; they are not machine outputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeAlias

from conversations.errors import InvalidInput


@dataclass(frozen=True)
class Greeting:
    kind: ClassVar[str] = "greeting"
    privacy_url: str = ""  # the consultancy's privacy policy ("" none yet: the note says so)

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": self.kind}
        if self.privacy_url:
            d["privacy_url"] = self.privacy_url
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Greeting:
        return cls(str(d.get("privacy_url") or ""))


@dataclass(frozen=True)
class Offer:
    kind: ClassVar[str] = "offer"

    def to_json(self) -> dict[str, Any]:
        return {"type": self.kind}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Offer:
        return cls()


@dataclass(frozen=True)
class Notice:
    kind: ClassVar[str] = "notice"
    key: str  # a text key of the script
    number: int | None = None  # the open question's number (1-based), for the texts that name it

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": self.kind, "key": self.key}
        if self.number is not None:
            d["number"] = self.number
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Notice:
        number = d.get("number")
        return cls(_str(d, "key"), None if number is None else int(number))


@dataclass(frozen=True)
class Question:
    kind: ClassVar[str] = "question"
    sid: int
    q: int

    def to_json(self) -> dict[str, Any]:
        return {"type": self.kind, "sid": self.sid, "q": self.q}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Question:
        return cls(_int(d, "sid"), _int(d, "q"))


@dataclass(frozen=True)
class Resume:
    kind: ClassVar[str] = "resume"
    sid: int
    q: int

    def to_json(self) -> dict[str, Any]:
        return {"type": self.kind, "sid": self.sid, "q": self.q}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Resume:
        return cls(_int(d, "sid"), _int(d, "q"))


@dataclass(frozen=True)
class ConfirmRestart:
    kind: ClassVar[str] = "confirm_restart"
    sid: int
    q: int

    def to_json(self) -> dict[str, Any]:
        return {"type": self.kind, "sid": self.sid, "q": self.q}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ConfirmRestart:
        return cls(_int(d, "sid"), _int(d, "q"))


@dataclass(frozen=True)
class Result:
    kind: ClassVar[str] = "result"
    sid: int
    answers: str
    prev: str = ""  # the result before it ("" none): the card compares the two
    again: bool = False  # the last result shown once more on request (not a diagnosis finishing)
    peers: tuple[tuple[int, int], ...] = ()  # (0-based question, % of shops answering A); () none shown

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": self.kind, "sid": self.sid, "answers": self.answers}
        if self.prev:
            d["prev"] = self.prev
        if self.again:
            d["again"] = True
        if self.peers:
            d["peers"] = [[q, share] for q, share in self.peers]
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Result:
        peers = tuple((int(q), int(share)) for q, share in d.get("peers") or ())
        return cls(int(d.get("sid", 0)), _str(d, "answers"), str(d.get("prev") or ""), bool(d.get("again")), peers)


@dataclass(frozen=True)
class Advice:
    kind: ClassVar[str] = "advice"
    q: int
    choice: str

    def to_json(self) -> dict[str, Any]:
        return {"type": self.kind, "q": self.q, "choice": self.choice}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Advice:
        return cls(_int(d, "q"), _str(d, "choice"))


@dataclass(frozen=True)
class DoneHelp:
    kind: ClassVar[str] = "done_help"

    def to_json(self) -> dict[str, Any]:
        return {"type": self.kind}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> DoneHelp:
        return cls()


@dataclass(frozen=True)
class Heard:
    kind: ClassVar[str] = "heard"
    sid: int

    def to_json(self) -> dict[str, Any]:
        return {"type": self.kind, "sid": self.sid}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Heard:
        return cls(_int(d, "sid"))


@dataclass(frozen=True)
class OptinOffer:
    kind: ClassVar[str] = "optin_offer"

    def to_json(self) -> dict[str, Any]:
        return {"type": self.kind}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> OptinOffer:
        return cls()


@dataclass(frozen=True)
class FollowOffer:
    """Follow-ups on diagnosis ``sid``'s point to fix (a few short tips over two weeks)? yes / no"""

    kind: ClassVar[str] = "follow_offer"
    sid: int

    def to_json(self) -> dict[str, Any]:
        return {"type": self.kind, "sid": self.sid}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> FollowOffer:
        return cls(_int(d, "sid"))


@dataclass(frozen=True)
class FollowStep:
    """One follow-up pushed by the clock: step ``step`` (0-based) of question ``q``'s tips (bot/followups.py)."""

    kind: ClassVar[str] = "follow_step"
    q: int
    step: int
    url: str = ""  # its page under CRMBOT_RESOURCES_URL ("" none)

    @property
    def unit(self) -> str:
        """Its LINE aggregation unit (letters, digits, _; at most 30): fu_q<number>_<step number>."""
        return f"fu_q{self.q + 1}_{self.step + 1}"

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": self.kind, "q": self.q, "step": self.step}
        if self.url:
            d["url"] = self.url
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> FollowStep:
        return cls(_int(d, "q"), _int(d, "step"), str(d.get("url") or ""))


@dataclass(frozen=True)
class ConsultAck:
    kind: ClassVar[str] = "consult_ack"
    sid: int
    again: bool = False  # this diagnosis already had a request: "we have it already"
    url: str = ""  # a booking page to offer ("" none)

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": self.kind, "sid": self.sid}
        if self.again:
            d["again"] = True
        if self.url:
            d["url"] = self.url
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ConsultAck:
        return cls(int(d.get("sid", 0)), bool(d.get("again")), str(d.get("url") or ""))


@dataclass(frozen=True)
class Qualify:
    kind: ClassVar[str] = "qualify"
    q: int  # the qualification question (0-based); the script's number of them: the thanks after the last

    def to_json(self) -> dict[str, Any]:
        return {"type": self.kind, "q": self.q}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Qualify:
        return cls(_int(d, "q"))


@dataclass(frozen=True)
class Reminder:
    """The quarterly invitation. ``point`` (0-based question, or None): the last result's point to fix,
    named and asked about (has it moved?); an A-tier result is offered its next theme instead. One
    multicast carries it to everyone of one group, so it holds nothing that differs within the group.
    A reminder committed before ``point`` existed holds only the tier and says the tier."""

    kind: ClassVar[str] = "reminder"
    tier: str  # the tier of the last result (A/B/C); "" for a point's group (B and C together)
    point: int | None = None

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": self.kind, "tier": self.tier}
        if self.point is not None:
            d["point"] = self.point
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Reminder:
        return cls(_str(d, "tier"), _int(d, "point") if "point" in d else None)


@dataclass(frozen=True)
class Definition:
    kind: ClassVar[str] = "definition"
    term: str = ""  # the term asked about ("" : the terms of question ``q``)
    q: int | None = None  # a question's 「用語」 button: every term it uses

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": self.kind}
        if self.term:
            d["term"] = self.term
        if self.q is not None:
            d["q"] = self.q
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Definition:
        q = d.get("q")
        return cls(str(d.get("term") or ""), None if q is None else int(q))


SLOT_NOTES = ("", "full", "not_offered", "none")


@dataclass(frozen=True)
class Slots:
    kind: ClassVar[str] = "slots"
    slots: tuple[tuple[int, int], ...]  # (start, end), epoch seconds
    tz: str  # the availability's time zone: dates and times are shown in it
    fmt: str = ""  # the meeting format
    more: int = 0  # a later page starts after this epoch second (0: none)
    moving: str = ""  # the booking a pick moves ("" a new booking)
    note: str = ""  # SLOT_NOTES

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": self.kind, "slots": [list(s) for s in self.slots], "tz": self.tz}
        for key in ("fmt", "more", "moving", "note"):
            if value := getattr(self, key):
                d[key] = value
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Slots:
        raw = d["slots"]
        if not isinstance(raw, list):
            raise ValueError("slots")
        slots = tuple((int(a), int(b)) for a, b in raw)
        note = str(d.get("note") or "")
        if note not in SLOT_NOTES:
            raise ValueError("note")
        return cls(slots, _str(d, "tz"), str(d.get("fmt") or ""), int(d.get("more") or 0),
                   str(d.get("moving") or ""), note)


BOOKING_STAGES = ("booked", "changed", "same", "cancelled", "cancelled_op", "gone", "remind_day", "remind_soon")


@dataclass(frozen=True)
class BookingNote:
    kind: ClassVar[str] = "booking"
    stage: str  # BOOKING_STAGES
    booking: str = ""  # its id ("" unknown: gone)
    start: int = 0  # epoch seconds (0 unknown)
    end: int = 0
    tz: str = ""
    fmt: str = ""  # the meeting format
    message: str = ""  # the consultancy's words with a cancellation ("" none)

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": self.kind, "stage": self.stage}
        for key in ("booking", "start", "end", "tz", "fmt", "message"):
            if value := getattr(self, key):
                d[key] = value
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> BookingNote:
        stage = _str(d, "stage")
        if stage not in BOOKING_STAGES:
            raise ValueError("stage")
        return cls(stage, str(d.get("booking") or ""), int(d.get("start") or 0), int(d.get("end") or 0),
                   str(d.get("tz") or ""), str(d.get("fmt") or ""), str(d.get("message") or ""))


ERASE_STAGES = ("ask", "kept", "done")


@dataclass(frozen=True)
class Erasure:
    kind: ClassVar[str] = "erasure"
    stage: str  # "ask": delete everything? (yes / no); "kept": nothing deleted; "done": everything deleted

    def to_json(self) -> dict[str, Any]:
        return {"type": self.kind, "stage": self.stage}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Erasure:
        stage = _str(d, "stage")
        if stage not in ERASE_STAGES:
            raise ValueError("stage")
        return cls(stage)


Output: TypeAlias = (Greeting | Offer | Notice | Question | Resume | ConfirmRestart | Result | Advice | DoneHelp
                     | OptinOffer | ConsultAck | Reminder | Definition | Erasure | Heard | Slots | BookingNote
                     | Qualify | FollowOffer | FollowStep)
KINDS: dict[str, type[Output]] = {c.kind: c for c in (Greeting, Offer, Notice, Question, Resume, ConfirmRestart,
                                                      Result, Advice, DoneHelp, OptinOffer, ConsultAck, Reminder,
                                                      Definition, Erasure, Heard, Slots, BookingNote, Qualify,
                                                      FollowOffer, FollowStep)}

# A Slack KPI message, rendered when it was committed (slack_post, slack_ephemeral, slack_chart, slack_file,
# slack_home: see bot/slack/transport.py): a plain dict with its "type", as jobs have always stored it.
Payload: TypeAlias = dict[str, Any]
SLACK_KINDS = frozenset({"slack_post", "slack_ephemeral", "slack_chart", "slack_file", "slack_home"})
# What a job carries: the machine's outputs, or Slack KPI payloads.
JobOutput: TypeAlias = Output | Payload


def from_json(d: Mapping[str, Any]) -> Output:
    """An output from its JSON dict; InvalidInput when it is not one."""
    if not isinstance(d, Mapping):
        raise InvalidInput("an output is not an object")
    cls = KINDS.get(str(d.get("type")))
    if cls is None:
        raise InvalidInput(f"unknown output type {str(d.get('type'))[:40]!r}")
    try:
        return cls.from_json(d)
    except (KeyError, TypeError, ValueError) as e:
        raise InvalidInput(f"a {cls.kind} output without a valid {e}") from None


def job_output(value: Output | Mapping[str, Any]) -> JobOutput:
    """What a job keeps of one output: a machine output (typed, from its dict if need be), or a
    Slack KPI payload (a dict, as it is). A dict of any other type is kept as it is too: a transport
    that does not know it fails the job for the operator (see :func:`outputs_of`)."""
    if isinstance(value, Mapping):
        if str(value.get("type")) in KINDS:
            return from_json(value)
        return dict(value)
    return value


def to_json(value: JobOutput) -> dict[str, Any]:
    return value if isinstance(value, dict) else value.to_json()


def outputs_of(values: list[JobOutput]) -> list[Output]:
    """The machine outputs of a job for a channel that renders nothing else (LINE, the try page);
    InvalidInput when it holds anything else (a payload this channel cannot send)."""
    found: list[Output] = []
    for v in values:
        if isinstance(v, dict):
            raise InvalidInput(f"not a diagnosis output: {str(v.get('type'))[:40]!r}")
        found.append(v)
    return found


def _int(d: Mapping[str, Any], key: str) -> int:
    value = d[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(key)
    return value


def _str(d: Mapping[str, Any], key: str) -> str:
    value = d[key]
    if not isinstance(value, str):
        raise ValueError(key)
    return value
