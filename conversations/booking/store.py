"""Consultation bookings in Redis: booked, moved and cancelled atomically, each exactly once.

**One hash slot.** Every booking key is under ``{booking}`` (see :mod:`conversations.keys`): the
availability, every booking (one hash of JSON), the index of bookings by start and of those holding a
place, the reminder schedule, each lead's record and bookings, the request outcomes. So one Lua script
(:data:`BOOK_LUA`) checks a slot's capacity, takes the place, frees the lead's previous one (a change),
moves the lead's status and schedules the reminders, all or nothing, on one server or a Redis Cluster
alike. Keying the capacity by day and the lead's pointer by the user (``{u:line:<id>}``) would have put
a change across two or three slots, each step needing its own repair; at a consultancy's volume (a few
dozen bookings a day, each one small script) one slot is nowhere near a limit. The one write outside
it is a reminder's push, which goes to the user's mailbox (their slot): see *Reminders* below.

**Capacity.** A booking holds a place from its start to its end while it is not cancelled. A slot is
full when the bookings overlapping it (``held``, looked up from ``start - MAX_SLOT_SECONDS``) number
``capacity``; bookings made under an older slot length count wherever they overlap, so capacity is
never exceeded even across a change of ``slot_minutes``. Two owners tapping the last place at once:
Redis runs one script after the other; the first is :class:`Booked`, the second :class:`Full`, with
the next free slots to offer instead. A booking is checked against the availability it was offered
under (its version): if the operator saves another meanwhile, the request is read again and retried.

**Once.** A request carries an id (the LINE webhook event's): its outcome is kept ``request_ttl``
seconds (``{booking}:req:<id>``), so a redelivered or retried request gets the same answer (the same
booking, :attr:`Booked.repeated`), never a second booking. A second tap with another id on the same
slot finds the lead's active booking already there (also ``repeated``). One lead has at most one
active (``booked``) booking: booking another slot moves it (same id, ``seq`` + 1, the old place freed
and its reminders dropped in the same script): :attr:`Booked.moved_from`.

**Statuses.** A booking: ``booked`` -> ``attended`` | ``no_show`` | ``cancelled`` (attended and
no-show may be corrected into each other, once the start has passed; cancelled is final and frees the
place at once). A lead (:class:`Consultation`): ``requested`` (asked, any time, once:
:meth:`Bookings.request_consultation`) -> ``booked`` -> ``attended`` | ``no_show`` | ``cancelled``,
following its latest booking; each lead is counted in exactly one status set per channel, scored by
when it first asked, so :meth:`Bookings.consultation_counts` is a few ZCOUNTs.

**Reminders.** Booking schedules its reminders in the same script (``{booking}:remind``, member
``<id>|<kind>|<seq>``, score the time due: :func:`conversations.booking.availability.reminder_times`); a
move or cancel removes them. :meth:`Bookings.claim_due_reminders` hands each due one out with a lease
(its score becomes the lease's end, so it is due again only if nobody acknowledges it), after checking
in the same script that its booking is still ``booked``, at the same ``seq`` and not yet started (else
the reminder is dropped: a cancelled or changed booking's reminders never fire). The caller then
queues the push with the reminder's deterministic job id and ledger mark (``Outbox.put_once``: the mark
and the job in one script in the user's slot) and acknowledges it (:meth:`Bookings.ack_reminder`)::

    for due in bookings.claim_due_reminders(now, limit=100):
        job = Job.new(Transport.LINE, due.subject.user_id, due.subject.tag_name, [<reminder output>], now,
                      job_id=due.job_id)            # X-Line-Retry-Key = the job id
        outbox.put_once(due.ledger_key, job, ttl=REMINDER_LEDGER_TTL)
        bookings.ack_reminder(due)

A clock dying after the claim: the lease runs out, another pass claims it again and queues it. Dying
after queueing, before the ack: the next claim's ``put_once`` finds the ledger mark and queues nothing;
the ack follows. Two clocks: a claimed reminder is not due until its lease ends. So each reminder is
queued exactly once; the outbox delivers it once. (A cancel landing in the moment between a claim and
its push's commit cannot stop that push: the worker sends what was queued.)

Every operation is a plan (:mod:`conversations.redis_ops`): a generator of steps, run by the sync
:class:`Bookings` here or by an :class:`~conversations.redis_ops.AsyncRunner` (``await
runner.run(book_plan(...))``).
"""

from __future__ import annotations

import json
import re
import secrets
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from conversations import keys
from conversations.booking.availability import (
    MAX_SLOT_SECONDS,
    Availability,
    Slot,
    instant,
    offered,
    refusal,
    reminder_times,
    slot_at,
)
from conversations.errors import Contention, InvalidInput
from conversations.jobs import UNMARK_LUA
from conversations.keys import Subject
from conversations.redis_ops import Batch, Eval, Plan, call, runner, text
from scoring.periods import DEFAULT_TZ, zone

STATUSES = ("booked", "attended", "no_show", "cancelled")  # a booking's
MARKS = ("attended", "no_show", "cancelled")  # what mark() may set
CONSULT_STATUSES = ("requested", "booked", "attended", "no_show", "cancelled")  # a lead's
REQUEST_TTL = 3 * 86400  # seconds a request's outcome is kept (LINE redelivers within this)
LEASE = 60.0  # seconds a claimed reminder stays handed out before it is due again
REMINDER_LEDGER_TTL = 60 * 86400  # a reminder's ledger mark outlives any retry of its claim
ALTERNATIVES = 5  # free slots offered with Full / NotOffered
READ_CHUNK = 500
_ID = re.compile(r"[0-9a-f]{16}")

# ---- Lua ------------------------------------------------------------------------------------------------

# Shared by the scripts below (prepended to each).
# lead_status: set a lead's consultation status: its record (``lead``: st, at; rq, the first time it
# asked, set once), and its membership of its channel's five status sets KEYS[base .. base + 4]
# (requested, booked, attended, no_show, cancelled), scored by rq.
# unschedule: remove a booking's scheduled reminders (its ``rem``: "<kind>:<due>,...") from ``schedule``.
# schedule: add the reminders given as ARGV pairs (kind, due) from ARGV[from] on, at the booking's seq.
_PRELUDE = """
local STATUS = {requested = 0, booked = 1, attended = 2, no_show = 3, cancelled = 4}
local function lead_status(lead, ref, status, now, base)
  local rq = redis.call('HGET', lead, 'rq')
  if not rq then
    rq = now
    redis.call('HSET', lead, 'rq', now)
  end
  for i = 0, 4 do redis.call('ZREM', KEYS[base + i], ref) end
  redis.call('ZADD', KEYS[base + STATUS[status]], rq, ref)
  redis.call('HSET', lead, 'st', status, 'at', now)
end
local function unschedule(b, schedule)
  for kind in string.gmatch(b.rem or '', '([^:,]+):[^,]*') do
    redis.call('ZREM', schedule, b.id .. '|' .. kind .. '|' .. tostring(b.seq))
  end
  b.rem = ''
end
local function schedule(b, key, from)
  local rem = {}
  for i = from, #ARGV, 2 do
    redis.call('ZADD', key, ARGV[i + 1], b.id .. '|' .. ARGV[i] .. '|' .. tostring(b.seq))
    rem[#rem + 1] = ARGV[i] .. ':' .. ARGV[i + 1]
  end
  b.rem = table.concat(rem, ',')
end
"""

# Book a slot for a lead, or move the lead's active booking there.
# KEYS[1] availability (hash: json, v)        KEYS[2] bookings (hash: id -> JSON)
# KEYS[3] starts (zset: id -> start)          KEYS[4] held (zset: id -> start; not cancelled)
# KEYS[5] the reminder schedule (zset)        KEYS[6] the lead's record (hash)
# KEYS[7] the lead's bookings (zset)          KEYS[8] the request's outcome (string)
# KEYS[9..13] the lead's channel's consult sets: requested, booked, attended, no_show, cancelled
# ARGV[1] the availability version the slot was offered under   ARGV[2] the lead ("<transport>:<user id>")
# ARGV[3] a fresh booking id   ARGV[4] start   ARGV[5] end (epoch seconds)   ARGV[6] capacity
# ARGV[7] now   ARGV[8] the request outcome's TTL (s)   ARGV[9] the meeting format
# ARGV[10] the longest booking (s): how far before the start an overlapping booking may begin
# ARGV[11] the request id   ARGV[12] the booking to move ("" the lead's active one, if any)
# ARGV[13] why the slot is not offered now ("" it is)   ARGV[14..] the reminders: kind, due, kind, due ...
# Returns {'seen', outcome} (the request was answered before: a booking id, or "full");
# {'stale'} (the availability changed, or the fresh id is taken: read again and retry);
# {'inactive', JSON or ""} (ARGV[12] is not the lead's active booking); {'same', JSON} (the lead's active
# booking is at this start already); {'refused', reason}; {'full'}; {'booked', JSON}; {'moved', JSON, the
# previous start}.
BOOK_LUA = _PRELUDE + """
local seen = redis.call('GET', KEYS[8])
if seen then return {'seen', seen} end
if redis.call('HGET', KEYS[1], 'v') ~= ARGV[1] then return {'stale'} end
local now, start, stop = tonumber(ARGV[7]), tonumber(ARGV[4]), tonumber(ARGV[5])
local cur = nil
local cur_id = redis.call('HGET', KEYS[6], 'cur')
if cur_id then
  local raw = redis.call('HGET', KEYS[2], cur_id)
  if raw then cur = cjson.decode(raw) end
  if not cur or cur.status ~= 'booked' then
    cur = nil
    redis.call('HDEL', KEYS[6], 'cur')
  end
end
if ARGV[12] ~= '' and (not cur or cur.id ~= ARGV[12]) then
  return {'inactive', redis.call('HGET', KEYS[2], ARGV[12]) or ''}
end
if cur and tonumber(cur.start) == start then
  redis.call('SET', KEYS[8], cur.id, 'EX', ARGV[8])
  return {'same', cjson.encode(cur)}
end
if ARGV[13] ~= '' then return {'refused', ARGV[13]} end
local taken = 0
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[4], start - tonumber(ARGV[10]), '(' .. ARGV[5])) do
  if not cur or id ~= cur.id then
    local raw = redis.call('HGET', KEYS[2], id)
    if raw and tonumber(cjson.decode(raw)['end']) > start then taken = taken + 1 end
  end
end
if taken >= tonumber(ARGV[6]) then
  redis.call('SET', KEYS[8], 'full', 'EX', ARGV[8])
  return {'full'}
end
if not cur and redis.call('HEXISTS', KEYS[2], ARGV[3]) == 1 then return {'stale'} end
local b, outcome, previous = cur, 'booked', ''
if b then
  unschedule(b, KEYS[5])
  previous = tostring(b.start)
  b.start, b['end'], b.seq, b.updated, b.format = start, stop, b.seq + 1, now, ARGV[9]
  outcome = 'moved'
else
  b = {id = ARGV[3], lead = ARGV[2], start = start, ['end'] = stop, status = 'booked', seq = 0, created = now,
       updated = now, format = ARGV[9], by = '', rem = '', req = ARGV[11]}
  redis.call('ZADD', KEYS[7], now, b.id)
  redis.call('HSET', KEYS[6], 'cur', b.id)
end
schedule(b, KEYS[5], 14)
redis.call('HSET', KEYS[2], b.id, cjson.encode(b))
redis.call('ZADD', KEYS[3], start, b.id)
redis.call('ZADD', KEYS[4], start, b.id)
lead_status(KEYS[6], ARGV[2], 'booked', ARGV[7], 9)
redis.call('SET', KEYS[8], b.id, 'EX', ARGV[8])
return {outcome, cjson.encode(b), previous}
"""

# Set a booking's status: attended, no_show (from booked, or correcting each other once started) or
# cancelled (from booked: frees the place, drops the reminders, seq + 1).
# KEYS[1] bookings   KEYS[2] held   KEYS[3] the reminder schedule   KEYS[4] the lead's record
# KEYS[5] the lead's bookings   KEYS[6..10] the lead's channel's consult sets (as BOOK_LUA's 9..13)
# ARGV[1] booking id   ARGV[2] the new status   ARGV[3] by whom   ARGV[4] now
# Returns {'missing'}; {'same', JSON} (it has that status already); {'refused', JSON} (not from its
# status); {'early', JSON} (attended / no-show before its start); {'done', JSON}.
MARK_LUA = _PRELUDE + """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return {'missing'} end
local b = cjson.decode(raw)
local to, was = ARGV[2], b.status
if was == to then return {'same', raw} end
if not (was == 'booked' or (to ~= 'cancelled' and was ~= 'cancelled')) then return {'refused', raw} end
if to ~= 'cancelled' and tonumber(ARGV[4]) < tonumber(b.start) then return {'early', raw} end
unschedule(b, KEYS[3])
if to == 'cancelled' then
  redis.call('ZREM', KEYS[2], b.id)
  b.seq = b.seq + 1
end
b.status, b.updated, b.by = to, tonumber(ARGV[4]), ARGV[3]
redis.call('HSET', KEYS[1], b.id, cjson.encode(b))
if redis.call('HGET', KEYS[4], 'cur') == b.id then redis.call('HDEL', KEYS[4], 'cur') end
if redis.call('ZREVRANGE', KEYS[5], 0, 0)[1] == b.id then lead_status(KEYS[4], b.lead, to, ARGV[4], 6) end
return {'done', cjson.encode(b)}
"""

# A lead asks for a consultation: recorded once (a lead that asked or booked before keeps its status).
# KEYS[1] the lead's record   KEYS[2..6] the lead's channel's consult sets (as BOOK_LUA's 9..13)
# ARGV[1] the lead   ARGV[2] now
# Returns {"1" recorded now, or "0", then the record's fields and values}.
REQUEST_LUA = _PRELUDE + """
local new = '0'
if not redis.call('HGET', KEYS[1], 'st') then
  lead_status(KEYS[1], ARGV[1], 'requested', ARGV[2], 2)
  new = '1'
end
local out = {new}
for _, v in ipairs(redis.call('HGETALL', KEYS[1])) do out[#out + 1] = v end
return out
"""

# Hand out due reminders, each with a lease; drop those whose booking is gone, no longer booked, moved
# since (another seq) or already started.
# KEYS[1] the reminder schedule   KEYS[2] bookings
# ARGV[1] now   ARGV[2] how many at most   ARGV[3] the lease's end
# Returns member, booking JSON, member, booking JSON ... of the reminders claimed (due again at ARGV[3]).
CLAIM_LUA = """
local out = {}
local now = tonumber(ARGV[1])
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))) do
  local id, seq = string.match(m, '^([^|]+)|[^|]+|(%d+)$')
  local raw = id and redis.call('HGET', KEYS[2], id)
  local b = raw and cjson.decode(raw)
  if b and b.status == 'booked' and tostring(b.seq) == seq and tonumber(b.start) > now then
    redis.call('ZADD', KEYS[1], ARGV[3], m)
    out[#out + 1] = m
    out[#out + 1] = raw
  else
    redis.call('ZREM', KEYS[1], m)
  end
end
return out
"""

# Erase a lead (the person's own 「データを削除」, or the operator's): its active booking cancelled first, so
# its place frees at once and its reminders never fire, then every booking of the lead deleted with its
# index entries and request outcome, its consultation record and its entry in the channel's status sets.
# KEYS[1] bookings   KEYS[2] starts   KEYS[3] held   KEYS[4] the reminder schedule   KEYS[5] the lead's record
# KEYS[6] the lead's bookings   KEYS[7..11] the lead's channel's consult sets (as BOOK_LUA's 9..13)
# KEYS[12 .. 11+n] the request outcome key of each booking, in the order of ARGV's ids (a booking made
# without one: any key of the slot that is not an outcome, e.g. KEYS[5]; only an outcome naming it is deleted)
# ARGV[1] the lead ("<transport>:<user id>")   ARGV[2] n   ARGV[3 .. 2+n] the lead's booking ids, as read
# Returns -1 when the lead's bookings changed since they were read (read again), else
# {bookings deleted, active bookings cancelled, 1 if a consultation record was deleted else 0}.
ERASE_LUA = _PRELUDE + """
local n = tonumber(ARGV[2])
if redis.call('ZCARD', KEYS[6]) ~= n then return -1 end
local cancelled = 0
for i = 1, n do
  local id = ARGV[2 + i]
  if not redis.call('ZSCORE', KEYS[6], id) then return -1 end
  local raw = redis.call('HGET', KEYS[1], id)
  if raw then
    local b = cjson.decode(raw)
    if b.status == 'booked' then cancelled = cancelled + 1 end
    unschedule(b, KEYS[4])
    if redis.call('GET', KEYS[11 + i]) == id then redis.call('DEL', KEYS[11 + i]) end
  end
  redis.call('ZREM', KEYS[3], id)
  redis.call('ZREM', KEYS[2], id)
  redis.call('HDEL', KEYS[1], id)
end
local record = redis.call('DEL', KEYS[5])
redis.call('DEL', KEYS[6])
for k = 7, 11 do redis.call('ZREM', KEYS[k], ARGV[1]) end
return {n, cancelled, record}
"""

# ---- types ----------------------------------------------------------------------------------------------


def _at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


@dataclass(frozen=True)
class Booking:
    id: str  # 16 hex digits; the iCalendar UID is "<id>@crmbot"
    lead: str  # "<transport>:<user id>" (keys.lead_ref)
    start: datetime  # aware, UTC
    end: datetime
    status: str  # STATUSES
    seq: int  # 0, then + 1 at each move and at the cancel (iCalendar SEQUENCE)
    created: float  # epoch seconds
    updated: float
    format: str  # the meeting format when booked (or last moved)
    by: str = ""  # who set its status last ("" the lead's own booking)
    reminders: tuple[tuple[str, datetime], ...] = ()  # (kind, due) still scheduled

    @property
    def subject(self) -> Subject:
        return keys.lead_subject(self.lead)

    @property
    def active(self) -> bool:
        """Booked and not yet attended, missed or cancelled: the lead's one active booking."""
        return self.status == "booked"

    @classmethod
    def from_json(cls, raw: str | bytes) -> Booking:
        try:
            d = json.loads(raw)
            reminders = []
            for part in str(d.get("rem") or "").split(","):
                if part:
                    kind, _, due = part.partition(":")
                    reminders.append((kind, _at(float(due))))
            return cls(str(d["id"]), str(d["lead"]), _at(float(d["start"])), _at(float(d["end"])), str(d["status"]),
                       int(d["seq"]), float(d["created"]), float(d["updated"]), str(d.get("format") or ""),
                       str(d.get("by") or ""), tuple(reminders))
        except (KeyError, TypeError, ValueError) as e:
            raise InvalidInput(f"not a booking record: {type(e).__name__}") from None


@dataclass(frozen=True)
class FreeSlot:
    slot: Slot
    free: int  # places left (0: full)

    @property
    def start(self) -> datetime:
        return self.slot.start

    @property
    def end(self) -> datetime:
        return self.slot.end


@dataclass(frozen=True)
class Booked:
    booking: Booking
    repeated: bool = False  # the request was answered before (redelivery, double tap): nothing changed now
    moved_from: datetime | None = None  # the lead's active booking was moved here from this start


@dataclass(frozen=True)
class Full:
    start: datetime  # the slot asked for: its places were taken
    alternatives: tuple[FreeSlot, ...]  # the next free slots to offer instead


@dataclass(frozen=True)
class NotOffered:
    start: datetime
    reason: str  # availability.TOO_SOON | TOO_FAR | NOT_A_SLOT
    alternatives: tuple[FreeSlot, ...]


@dataclass(frozen=True)
class Inactive:
    """A change of a booking that is not the lead's active one (cancelled, attended, or unknown: None)."""

    booking: Booking | None


BookResult = Booked | Full | NotOffered | Inactive


@dataclass(frozen=True)
class Consultation:
    """A lead's consultation record."""

    lead: str
    status: str  # CONSULT_STATUSES
    requested: float  # when it first asked (or booked)
    updated: float  # when its status was last set
    booking: str  # its active booking's id ("" none)
    new: bool = False  # request_consultation recorded it just now

    @classmethod
    def from_fields(cls, lead: str, fields: Mapping[str, str], new: bool = False) -> Consultation | None:
        if not fields.get("st"):
            return None
        return cls(lead, fields["st"], float(fields.get("rq") or 0), float(fields.get("at") or 0),
                   fields.get("cur", ""), new)


@dataclass(frozen=True)
class DueReminder:
    """A reminder handed out by :meth:`Bookings.claim_due_reminders`: queue its push, then ack it."""

    booking: Booking
    kind: str  # "day" (the day before) | "soon" (hours before)
    seq: int
    due: datetime
    lease: float  # its schedule score while claimed (what ack_reminder checks)
    member: str

    @property
    def subject(self) -> Subject:
        return self.booking.subject

    @property
    def job_id(self) -> str:
        """The push's job id (and X-Line-Retry-Key, which LINE takes only as a UUID): a UUID made from
        ``bkrem-<booking>-<kind>-<seq>``, the same for every claim of this reminder."""
        return reminder_job_id(self.booking.id, self.kind, self.seq)

    @property
    def ledger_key(self) -> str:
        """Its ledger mark in the user's slot, for ``Outbox.put_once``."""
        return keys.booking_reminder_sent(self.subject, self.booking.id, self.kind, self.seq)


_REMINDER_NAMESPACE = uuid.UUID("8d3b7c1e-2a4f-4e6b-b0c9-6f1d2e3a4b5c")


def reminder_job_id(booking_id: str, kind: str, seq: int) -> str:
    return str(uuid.uuid5(_REMINDER_NAMESPACE, f"bkrem-{booking_id}-{kind}-{seq}"))


# ---- plans ----------------------------------------------------------------------------------------------


def _consult_keys(subject: Subject) -> list[str]:
    return [keys.booking_consult(str(subject.transport), s) for s in CONSULT_STATUSES]


def _epoch(moment: datetime) -> int:
    return int(instant(moment).timestamp())


def _fields(reply: Sequence[Any]) -> dict[str, str]:
    items = [text(x) for x in reply]
    return dict(zip(items[::2], items[1::2], strict=True))


def read_availability_plan() -> Plan[Availability | None]:
    raw = yield call("hget", keys.BOOKING_AVAILABILITY, "json")
    return Availability.loads(text(raw)) if raw else None


def write_availability_plan(av: Availability) -> Plan[Availability]:
    yield call("hset", keys.BOOKING_AVAILABILITY, mapping={"json": av.dumps(), "v": av.version})
    return av


def booking_plan(booking_id: str) -> Plan[Booking | None]:
    if not isinstance(booking_id, str) or not _ID.fullmatch(booking_id):
        return None
    raw = yield call("hget", keys.BOOKINGS, booking_id)
    return Booking.from_json(raw) if raw else None


def _bookings_of_ids(ids: Sequence[Any]) -> Plan[list[Booking]]:
    if not ids:
        return []
    raws = yield call("hmget", keys.BOOKINGS, [text(x) for x in ids])
    return [Booking.from_json(raw) for raw in raws if raw]


def lead_bookings_plan(lead: Subject) -> Plan[list[Booking]]:
    """A lead's bookings, oldest first."""
    ids = yield call("zrange", keys.booking_lead_bookings(lead), 0, -1)
    return (yield from _bookings_of_ids(ids))


def bookings_between_plan(start: datetime, end: datetime, limit: int = 5000) -> Plan[list[Booking]]:
    """Bookings (any status) starting from ``start`` (included) to ``end`` (excluded), by start; read
    ``READ_CHUNK`` at a time, at most ``limit``."""
    out: list[Booking] = []
    lo, hi = _epoch(start), f"({_epoch(end)}"
    while len(out) < limit:
        ids = yield call("zrangebyscore", keys.BOOKING_STARTS, lo, hi, start=len(out), num=READ_CHUNK)
        out += yield from _bookings_of_ids(ids)
        if len(ids) < READ_CHUNK:
            break
    return sorted(out[:limit], key=lambda b: (b.start, b.id))


def _held_spans(lo: datetime, hi: datetime) -> Plan[list[tuple[datetime, datetime]]]:
    """(start, end) of the bookings holding a place that may overlap [lo, hi)."""
    ids = yield call("zrangebyscore", keys.BOOKING_HELD, _epoch(lo) - MAX_SLOT_SECONDS, f"({_epoch(hi)}")
    held = yield from _bookings_of_ids(ids)
    return [(b.start, b.end) for b in held if b.status != "cancelled"]


def free_slots_plan(av: Availability, now: float | datetime, first: date | None = None,
                    last: date | None = None) -> Plan[list[FreeSlot]]:
    """Every slot offered at ``now`` from local date ``first`` to ``last`` (see availability.offered),
    with its places left: two round trips, whatever the window."""
    slots = offered(av, now, first, last)
    if not slots:
        return []
    spans = yield from _held_spans(slots[0].start, slots[-1].end)
    return [FreeSlot(s, max(0, av.capacity - sum(1 for a, b in spans if a < s.end and b > s.start)))
            for s in slots]


def _alternatives(av: Availability, now: datetime, asked: datetime, count: int) -> Plan[tuple[FreeSlot, ...]]:
    """Free slots to offer instead of ``asked``: the next ones after it, then the earliest before it."""
    slots = yield from free_slots_plan(av, now)
    free = [s for s in slots if s.free > 0 and s.start != asked]
    later = [s for s in free if s.start > asked]
    return tuple((later + [s for s in free if s.start < asked])[:count])


def book_plan(lead: Subject, start: datetime, request_id: str, now: float | datetime, *, expect: str = "",
              request_ttl: int = REQUEST_TTL, alternatives: int = ALTERNATIVES) -> Plan[BookResult]:
    """Book the slot starting at ``start`` for ``lead`` (or move its active booking there; ``expect``:
    only if that active booking is this one). See the module's docstring."""
    request_key = keys.booking_request(request_id)
    at, begins = instant(now), instant(start)
    lead_key = keys.booking_lead(lead)
    for _ in range(5):
        av = yield from read_availability_plan()
        if av is None:
            raise InvalidInput("no availability is set: consultations cannot be booked")
        slot = slot_at(av, begins)
        end = slot.end if slot is not None else begins + timedelta(minutes=av.slot_minutes)
        reminders = [x for kind, due in reminder_times(av, begins, at) for x in (kind, str(_epoch(due)))]
        reply = yield Eval(BOOK_LUA, [
            keys.BOOKING_AVAILABILITY, keys.BOOKINGS, keys.BOOKING_STARTS, keys.BOOKING_HELD, keys.BOOKING_REMIND,
            lead_key, keys.booking_lead_bookings(lead), request_key, *_consult_keys(lead),
        ], [
            av.version, keys.lead_ref(lead), secrets.token_hex(8), str(_epoch(begins)), str(_epoch(end)),
            str(av.capacity), repr(round(at.timestamp(), 3)), str(request_ttl), av.format, str(MAX_SLOT_SECONDS),
            request_id, expect, refusal(av, at, begins) or "", *reminders,
        ])
        outcome = text(reply[0])
        if outcome != "stale":
            return (yield from _book_answer(av, at, begins, lead, [text(x) for x in reply], alternatives))
    raise Contention("the availability kept changing while booking; try again")


def _book_answer(av: Availability, at: datetime, begins: datetime, lead: Subject, reply: list[str],
                 count: int) -> Plan[BookResult]:
    outcome = reply[0]
    if outcome in ("booked", "moved", "same"):
        moved = _at(float(reply[2])) if outcome == "moved" else None
        return Booked(Booking.from_json(reply[1]), repeated=outcome == "same", moved_from=moved)
    if outcome == "inactive":
        return Inactive(Booking.from_json(reply[1]) if reply[1] else None)
    if outcome == "refused":
        return NotOffered(begins.astimezone(av.zone), reply[1], (yield from _alternatives(av, at, begins, count)))
    if outcome == "seen" and reply[1] != "full":
        found = yield from booking_plan(reply[1])
        if found is None or found.lead != keys.lead_ref(lead):
            raise InvalidInput("this booking request id was used for another lead")
        return Booked(found, repeated=True)
    return Full(begins.astimezone(av.zone), (yield from _alternatives(av, at, begins, count)))


def mark_plan(booking_id: str, status: str, by: str, now: float | datetime,
              lead: Subject | None = None) -> Plan[Booking | None]:
    """Set a booking's status (MARKS); None when there is no such booking (or it is not ``lead``'s, when
    given). InvalidInput for a change its status does not allow (a cancelled booking stays cancelled;
    attended / no-show only once started)."""
    if status not in MARKS:
        raise InvalidInput(f"a booking may be marked {', '.join(MARKS)}, not {str(status)[:20]!r}")
    found = yield from booking_plan(booking_id)
    if found is None or (lead is not None and found.lead != keys.lead_ref(lead)):
        return None
    lead = found.subject
    reply = yield Eval(MARK_LUA, [
        keys.BOOKINGS, keys.BOOKING_HELD, keys.BOOKING_REMIND, keys.booking_lead(lead),
        keys.booking_lead_bookings(lead), *_consult_keys(lead),
    ], [booking_id, status, str(by)[:100], repr(round(instant(now).timestamp(), 3))])
    outcome = text(reply[0])
    if outcome == "missing":
        return None
    booking = Booking.from_json(reply[1])
    if outcome == "refused":
        raise InvalidInput(f"a {booking.status} booking cannot be marked {status}")
    if outcome == "early":
        raise InvalidInput(f"a consultation that has not started cannot be marked {status}")
    return booking


def request_consultation_plan(lead: Subject, now: float | datetime) -> Plan[Consultation]:
    reply = yield Eval(REQUEST_LUA, [keys.booking_lead(lead), *_consult_keys(lead)],
                       [keys.lead_ref(lead), repr(round(instant(now).timestamp(), 3))])
    found = Consultation.from_fields(keys.lead_ref(lead), _fields(reply[1:]), new=text(reply[0]) == "1")
    assert found is not None  # the script has just made sure of it
    return found


def consultation_plan(lead: Subject) -> Plan[Consultation | None]:
    fields = yield call("hgetall", keys.booking_lead(lead))
    return Consultation.from_fields(keys.lead_ref(lead), {text(k): text(v) for k, v in fields.items()})


@dataclass(frozen=True)
class Erased:
    """What :meth:`Bookings.erase` removed of one lead."""

    bookings: int = 0  # bookings deleted (any status)
    cancelled: int = 0  # of them, active ones: their places freed
    record: bool = False  # a consultation record was deleted


def _request_key_of(raw: str | bytes | None) -> str | None:
    """The outcome key of the request that made a booking (None: unknown, or not a valid id)."""
    try:
        req = json.loads(raw).get("req") if raw else None
        return keys.booking_request(req) if isinstance(req, str) else None
    except (ValueError, AttributeError, InvalidInput):
        return None


def erase_lead_plan(lead: Subject) -> Plan[Erased]:
    """Remove every trace of ``lead`` in the booking store (:data:`ERASE_LUA`); idempotent."""
    for _ in range(10):
        ids = [text(x) for x in (yield call("zrange", keys.booking_lead_bookings(lead), 0, -1))]
        raws = (yield call("hmget", keys.BOOKINGS, ids)) if ids else []
        outcome_keys = [_request_key_of(raw) or keys.booking_lead(lead) for raw in raws]
        reply = yield Eval(ERASE_LUA, [
            keys.BOOKINGS, keys.BOOKING_STARTS, keys.BOOKING_HELD, keys.BOOKING_REMIND, keys.booking_lead(lead),
            keys.booking_lead_bookings(lead), *_consult_keys(lead), *outcome_keys,
        ], [keys.lead_ref(lead), str(len(ids)), *ids])
        if reply != -1:
            return Erased(int(reply[0]), int(reply[1]), bool(int(reply[2])))
    raise Contention("the lead's bookings kept changing while they were erased")


def claim_due_reminders_plan(now: float | datetime, limit: int = 100, lease: float = LEASE) -> Plan[list[DueReminder]]:
    at = round(instant(now).timestamp(), 3)
    until = round(at + lease, 3)
    reply = yield Eval(CLAIM_LUA, [keys.BOOKING_REMIND, keys.BOOKINGS], [repr(at), str(int(limit)), repr(until)])
    out = []
    items = [text(x) for x in reply]
    for member, raw in zip(items[::2], items[1::2], strict=True):
        booking = Booking.from_json(raw)
        _, kind, seq = member.split("|")
        due = next((when for k, when in booking.reminders if k == kind), _at(at))
        out.append(DueReminder(booking, kind, int(seq), due, until, member))
    return out


def ack_reminder_plan(reminder: DueReminder) -> Plan[bool]:
    """The reminder's push is queued: off the schedule (unless another claim took it over since)."""
    removed = yield Eval(UNMARK_LUA, [keys.BOOKING_REMIND], [reminder.member, repr(reminder.lease)])
    return bool(removed)


def consultation_counts_plan(start: date | None, end: date | None, channels: Sequence[str],
                             tz: str = DEFAULT_TZ) -> Plan[dict[str, int]]:
    """Leads of ``channels`` by their consultation status now, among those that first asked from local
    date ``start`` to ``end`` (both included; None: open): ``{"requested": n, "booked": n, ...}``."""
    lo = repr(datetime.combine(start, datetime.min.time(), zone(tz)).timestamp()) if start else "-inf"
    hi = f"({datetime.combine(end + timedelta(days=1), datetime.min.time(), zone(tz)).timestamp()!r}" if end else "+inf"

    def fill(p: Any) -> None:
        for ch in channels:
            for status in CONSULT_STATUSES:
                p.zcount(keys.booking_consult(ch, status), lo, hi)

    counts = iter((yield Batch(fill)) if channels else [])
    out = dict.fromkeys(CONSULT_STATUSES, 0)
    for _ in channels:
        for status in CONSULT_STATUSES:
            out[status] += int(next(counts))
    return out


# ---- the store ------------------------------------------------------------------------------------------


class Bookings:
    """The bookings over a redis-py client (the web tier, the console, the clock); every method runs one
    of the plans above. ``clock``: epoch seconds now (injected in tests)."""

    def __init__(self, client: Any, *, clock: Callable[[], float] = time.time, request_ttl: int = REQUEST_TTL,
                 lease: float = LEASE) -> None:
        self.r = runner(client)
        self.clock = clock
        self.request_ttl = request_ttl
        self.lease = lease

    # -- availability --------------------------------------------------------------------------------

    def availability(self) -> Availability | None:
        return self.r.run(read_availability_plan())

    def set_availability(self, av: Availability | Mapping[str, Any]) -> Availability:
        """Store the availability (a decoded JSON object is validated first: AvailabilityError, nothing
        stored). Bookings already made stay as they are."""
        parsed = av if isinstance(av, Availability) else Availability.from_json(av)
        return self.r.run(write_availability_plan(parsed))

    def free_slots(self, first: date | None = None, last: date | None = None,
                   av: Availability | None = None) -> list[FreeSlot]:
        """Offered slots now with their places left (full ones included, ``free == 0``); [] without
        availability."""
        av = av or self.availability()
        return [] if av is None else self.r.run(free_slots_plan(av, self.clock(), first, last))

    def next_free(self, limit: int = ALTERNATIVES, after: datetime | None = None) -> list[FreeSlot]:
        """The first ``limit`` slots with a free place, starting after ``after`` (None: now)."""
        av = self.availability()
        if av is None:
            return []
        first = after.astimezone(av.zone).date() if after is not None else None
        free = [s for s in self.free_slots(first, None, av) if s.free > 0 and (after is None or s.start > after)]
        return free[:limit]

    # -- booking -------------------------------------------------------------------------------------

    def book(self, lead: Subject, start: datetime, request_id: str) -> BookResult:
        return self.r.run(book_plan(lead, start, request_id, self.clock(), request_ttl=self.request_ttl))

    def change(self, booking_id: str, start: datetime, request_id: str, lead: Subject | None = None) -> BookResult:
        """Move a lead's active booking to the slot at ``start`` (:class:`Inactive` when it is not active,
        or not ``lead``'s when given: a button's booking id is checked against who tapped it)."""
        found = self.booking(booking_id)
        if found is None or (lead is not None and found.lead != keys.lead_ref(lead)):
            return Inactive(None)
        return self.r.run(book_plan(found.subject, start, request_id, self.clock(), expect=booking_id,
                                    request_ttl=self.request_ttl))

    def cancel(self, booking_id: str, by: str, lead: Subject | None = None) -> Booking | None:
        """Cancel a booking (frees its place at once; again: nothing changes); None when there is none, or
        it is not ``lead``'s (when given)."""
        return self.mark(booking_id, "cancelled", by, lead)

    def mark(self, booking_id: str, status: str, by: str, lead: Subject | None = None) -> Booking | None:
        return self.r.run(mark_plan(booking_id, status, by, self.clock(), lead))

    # -- the lead ------------------------------------------------------------------------------------

    def request_consultation(self, lead: Subject) -> Consultation:
        """Record that ``lead`` asked for a consultation (any time, once: a lead that asked or booked
        before keeps its record; ``new`` says whether this call recorded it)."""
        return self.r.run(request_consultation_plan(lead, self.clock()))

    def consultation(self, lead: Subject) -> Consultation | None:
        return self.r.run(consultation_plan(lead))

    def consultation_counts(self, start: date | None = None, end: date | None = None,
                            channels: Sequence[str] = ("line",)) -> dict[str, int]:
        return self.r.run(consultation_counts_plan(start, end, channels))

    def erase(self, lead: Subject) -> Erased:
        """Remove the lead from the booking store (its person's data erased, bot/privacy.py): its active
        booking cancelled (the place freed, no reminder sent), then its bookings, index entries, request
        outcomes, consultation record and status entries deleted (:data:`ERASE_LUA`)."""
        return self.r.run(erase_lead_plan(lead))

    # -- reading -------------------------------------------------------------------------------------

    def booking(self, booking_id: str) -> Booking | None:
        return self.r.run(booking_plan(booking_id))

    def bookings_of(self, lead: Subject) -> list[Booking]:
        return self.r.run(lead_bookings_plan(lead))

    def between(self, start: datetime, end: datetime) -> list[Booking]:
        return self.r.run(bookings_between_plan(start, end))

    # -- reminders -----------------------------------------------------------------------------------

    def claim_due_reminders(self, now: float | datetime | None = None, limit: int = 100) -> list[DueReminder]:
        return self.r.run(claim_due_reminders_plan(self.clock() if now is None else now, limit, self.lease))

    def ack_reminder(self, reminder: DueReminder) -> bool:
        return self.r.run(ack_reminder_plan(reminder))
