"""Every Redis key the product uses, built in one place.

Naming: ``crmbot:{<hash tag>}:<name>``. Everything that belongs to one user (or, later, one team)
carries the same hash tag, so all of it lives in one Redis Cluster hash slot and a Lua script may
touch it atomically. Global indexes carry their own tag.

    crmbot:{u:<transport>:<user id>}:conv          the user's conversation record (string, JSON)
    crmbot:{u:<transport>:<user id>}:seen:<event>  dedupe mark of one inbound event (string, TTL)
    crmbot:{u:<transport>:<user id>}:out           the user's mailbox of jobs (see conversations.jobs)
    crmbot:{u:<transport>:<user id>}:lease         the mailbox's leases (see conversations.jobs)
    crmbot:{u:<transport>:<user id>}:figs          the operator's figures of the user's steps, until the worker
                                                   applies them (hash: record id -> JSON; see conversations.jobs)
    crmbot:{u:<transport>:<user id>}:figs:lease    their leases
    crmbot:{reminders}:optin                       users who may have opted in to reminders (set of refs)
    crmbot:{u:<transport>:<user id>}:rem:<period>  the user's reminder for a period: claimed (string)
    crmbot:{u:web:<id>}:inbox                      a try-it (web) user's chat as delivered (list of "<n>:<JSON>")
    crmbot:{u:web:<id>}:inbox:meta                 its counters and the marks of its last appends (hash, bounded)
    crmbot:{clock}:lock                            the reminder clock running a pass: its owner token (string, PX)
    crmbot:{stats}:...                             the operator's figures and leads, all in one hash slot so one
                                                   Lua script applies a step's figures: see conversations.analytics
    crmbot:{op:<slack channel>}:out                the operator channel's mailbox of briefs (see bot.operator)
    crmbot:{op:<slack channel>}:brief:<lead id>    a consultation request's brief queued (string, TTL): once
    crmbot:{fwd:<digest>}:out, :lease              a LINE webhook's forward to the other LINE tool (one job, see
                                                   conversations.jobs; a hash tag per webhook: no hot slot)
    crmbot:{fwd:<digest>}:forwarded                its ledger mark (string, TTL): the webhook is forwarded once
    crmbot:{content}:<version>                     a diagnosis script as a process loaded it (string: JSON with
                                                   its locale and TOML text), under its content version: a job
                                                   is rendered with the script it was committed with
    crmbot:{content}:published, :labels, :seq      the content versions published from the console (hash label
                                                   -> JSON; hash version -> label; the last label's number)
    crmbot:{content}:active                        the published version in use (JSON: label, by, at; absent:
                                                   the deployed file): conversations.content_versions
    crmbot:{content}:draft:<id>                    an uploaded file not yet published (string: JSON, TTL)

    crmbot:{booking}:...                           consultation bookings, every key in one hash slot: see below
    crmbot:{u:<transport>:<user id>}:bkrem:<booking>:<kind>:<seq>
                                                   a booking reminder queued for the user (string, TTL): the
                                                   ledger mark of its push, in the user's slot beside the mailbox
    crmbot:{x:<experiment>}:<variant>:<stage>      a content experiment's diagnoses per variant and stage (set of
                                                   "<channel>:<user>:<sid>"; conversations.experiments)
    crmbot:{x:<experiment>}:ended                  an ended experiment: its winner and its counts' snapshot (hash)
    crmbot:{experiments}:winners                   ended experiments -> the variant everyone is shown (hash)
    crmbot:{u:<transport>:<user id>}:oplog         the owner's conversation with the operator during handoffs
                                                   (list of JSON, capped, TTL: conversations.handoff_log)
    crmbot:{followups}:due                         follow-ups on a point to fix, scheduled (sorted set: member
                                                   "<transport>:<user>|<sid>|<q>|<step>", score the time due)
    crmbot:{followups}:held                        those the push budget held (hash: member -> the month held in)
    crmbot:{u:<transport>:<user id>}:fu:<sid>:<step>
                                                   a follow-up queued for the user (string, TTL): its ledger mark
    crmbot:{u:<transport>:<user id>}:fu:booked     when the user last booked a consultation (string): follow-ups
                                                   started before it stop (bot/followups.py)

``<transport>`` is a :class:`conversations.transports.Transport` (line, slack, web, ...), never a Slack
or LINE channel.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from conversations.errors import InvalidInput
from conversations.transports import Transport

PREFIX = "crmbot"
# Users who may have opted in to the quarterly reminder (set; the user's record is the truth).
REMIND_INDEX = f"{PREFIX}:{{reminders}}:optin"
# Follow-ups on a point to fix that may be due (sorted set, score the time due; the user's record is the truth).
FOLLOWUPS = f"{PREFIX}:{{followups}}:due"
FOLLOWUPS_HELD = f"{PREFIX}:{{followups}}:held"  # the ones the push budget held: member -> the month held in
# Held by the one clock running a pass (see bot.clock): its owner token, with a short renewed expiry.
CLOCK_LOCK = f"{PREFIX}:{{clock}}:lock"
# When the clock last finished a pass (Unix time, a string): one SET per pass, read by the web's /metrics.
CLOCK_LAST_PASS = f"{PREFIX}:{{clock}}:last_pass"

_FORBIDDEN = set("{}:|\r\n\t ")


@dataclass(frozen=True)
class Subject:
    """Who a conversation belongs to: a transport (line, slack, web, cli) and the user's ID there."""

    transport: Transport
    user_id: str

    def __post_init__(self) -> None:
        for name, value in (("transport", self.transport), ("user_id", self.user_id)):
            if not isinstance(value, str) or not value or len(value) > 128 or _FORBIDDEN & set(value):
                raise InvalidInput(f"{name} {str(value)[:20]!r} is not a valid identifier")

    @property
    def tag(self) -> str:
        return f"{{{self.tag_name}}}"

    @property
    def tag_name(self) -> str:
        """The hash tag without its braces (a job's owner, see conversations.jobs)."""
        return f"u:{self.transport}:{self.user_id}"


def conv(subject: Subject) -> str:
    return f"{PREFIX}:{subject.tag}:conv"


def seen(subject: Subject, event_id: str) -> str:
    return f"{PREFIX}:{subject.tag}:seen:{event_id}"


def reminder_sent(subject: Subject, period: str, kind: str = "retake") -> str:
    """Ledger of one reminder (period, kind) to one recipient: set once, so it is sent once."""
    return f"{PREFIX}:{subject.tag}:rem:{period}:{kind}"


def inbox(subject: Subject) -> str:
    """A web chat user's messages as the worker delivered them (the try-it page reads them)."""
    return f"{PREFIX}:{subject.tag}:inbox"


def inbox_meta(subject: Subject) -> str:
    """The inbox's message counter and its delivery marks (one per job or typed message: appended once),
    trimmed with the inbox (bot.webchat)."""
    return f"{PREFIX}:{subject.tag}:inbox:meta"


# ---- Slack teams (one registered channel = one team) --------------------------------------------
#
#    crmbot:{t:<workspace>:<channel>}:team           team settings (hash: name, tz, created_by, ...)
#    crmbot:{t:<workspace>:<channel>}:targets        the team's own targets (hash: indicator -> value)
#    crmbot:{t:<workspace>:<channel>}:owners         who reports which area (hash: area -> Slack user ID)
#    crmbot:{t:<workspace>:<channel>}:kpi:<quarter>  reported figures (hash: indicator -> value, _by, _at,
#                                                    _a:<area> who reported it, _v version, _posted result job)
#    crmbot:{t:<workspace>:<channel>}:actions:<quarter>
#                                                    improvement actions decided on that quarter's result
#                                                    (hash: action id -> JSON)
#    crmbot:{t:<workspace>:<channel>}:quarters       quarters reported (sorted set: quarter -> Quarter.rank)
#    crmbot:{t:<workspace>:<channel>}:audit          who changed what and when (list of JSON, newest first)
#    crmbot:{ws:<workspace>}:teams                   the workspace's teams (set of channel IDs)
#    crmbot:{teams}:all                              every team (set of "<workspace>:<channel>")
#    crmbot:{slack}:seen:<event id>                  Slack event dedupe marks (retries)
#    crmbot:{t:<workspace>:<channel>}:view:<view id>:<view hash>
#                                                    a submitted modal, applied once (string, TTL): a
#                                                    replayed view_submission is acknowledged, not applied
#    crmbot:{t:<workspace>:<channel>}:step:<execution id>
#                                                    a Workflow Builder step run for the team completed (string,
#                                                    TTL): its completion queued once (bot.slack.listeners.workflow);
#                                                    a run naming no valid channel: crmbot:{ws:<workspace>}:step:<id>
#
# ---- Slack installations (many workspaces, OAuth; see conversations.installations) ------------
#
#    crmbot:{ws:<workspace>}:install                 the workspace's installation (hash: "bot" -> the bot's
#                                                    token and IDs, "installer" / "installer:<user>" -> who
#                                                    installed it; JSON each)
#    crmbot:{ws:<workspace>}:rotating                held by the one process refreshing the workspace's bot
#                                                    token (string: its owner token, PX)
#    crmbot:{oauth}:state:<state>                    an install's one-time OAuth state (string: when issued, EX)
#    crmbot:{oauth}:states                           the states outstanding (sorted set: state -> when issued),
#                                                    what the cap on outstanding states counts
#    crmbot:{oauth}:client:<hash>                    the states one client address was issued in the last
#                                                    minute (sorted set; the address only as a hash)

ALL_TEAMS = f"{PREFIX}:{{teams}}:all"


@dataclass(frozen=True)
class TeamRef:
    workspace: str
    channel: str

    def __post_init__(self) -> None:
        for name, value in (("workspace", self.workspace), ("channel", self.channel)):
            if not isinstance(value, str) or not value or len(value) > 32 or not value.isalnum():
                raise InvalidInput(f"{name} {str(value)[:20]!r} is not a valid Slack ID")

    @property
    def tag(self) -> str:
        return f"{{t:{self.workspace}:{self.channel}}}"

    @property
    def id(self) -> str:
        return f"{self.workspace}:{self.channel}"

    @classmethod
    def parse(cls, text: str) -> TeamRef:
        workspace, _, channel = text.partition(":")
        return cls(workspace, channel)


def team(t: TeamRef) -> str:
    return f"{PREFIX}:{t.tag}:team"


def team_targets(t: TeamRef) -> str:
    return f"{PREFIX}:{t.tag}:targets"


def team_kpi(t: TeamRef, quarter: str) -> str:
    return f"{PREFIX}:{t.tag}:kpi:{quarter}"


def team_owners(t: TeamRef) -> str:
    return f"{PREFIX}:{t.tag}:owners"


def team_actions(t: TeamRef, quarter: str) -> str:
    return f"{PREFIX}:{t.tag}:actions:{quarter}"


def team_quarters(t: TeamRef) -> str:
    return f"{PREFIX}:{t.tag}:quarters"


def team_audit(t: TeamRef) -> str:
    return f"{PREFIX}:{t.tag}:audit"


_VIEW_PART = re.compile(r"[A-Za-z0-9._-]{1,64}")  # Slack's view IDs ("V0123ABC") and hashes ("1712345678.a1b2")


@dataclass(frozen=True)
class ViewRef:
    """One state of a Slack modal: its view ID and the hash Slack gives each version of it."""

    id: str
    hash: str

    def __post_init__(self) -> None:
        for name, value in (("view id", self.id), ("view hash", self.hash)):
            if not isinstance(value, str) or not _VIEW_PART.fullmatch(value):
                raise InvalidInput(f"{name} {str(value)[:20]!r} is not a Slack view ID or hash")


def team_view_submitted(t: TeamRef, view: ViewRef) -> str:
    """Mark of one submitted state of a modal, in the team's hash slot (so the submission's script sets it)."""
    return f"{PREFIX}:{t.tag}:view:{view.id}:{view.hash}"


_EXECUTION = re.compile(r"[A-Za-z0-9]{1,64}")  # a custom step run's function_execution_id ("Fx0123ABCD")


def step_done(tag: str, execution_id: str) -> str:
    """Mark of one Workflow Builder step run completed (success or error), in the hash slot of ``tag`` (the
    team's, ``t:<workspace>:<channel>``, or for a run naming no channel the workspace's, ``ws:<workspace>``),
    beside the mailbox its completion is queued in: one script writes both. InvalidInput for an execution
    ID Slack never sends."""
    if not isinstance(execution_id, str) or not _EXECUTION.fullmatch(execution_id):
        raise InvalidInput("not a function execution ID")
    if not tag or _FORBIDDEN & set(tag) - {":"}:
        raise InvalidInput("not a hash tag")
    return f"{PREFIX}:{{{tag}}}:step:{execution_id}"


def workspace_teams(workspace: str) -> str:
    return f"{PREFIX}:{{ws:{workspace}}}:teams"


REPLY_UNKNOWN_OUTCOMES = ("pushed", "parked")


def reply_unknown(outcome: str) -> str:
    """Jobs whose LINE reply had an unknown outcome when its window closed (sorted set: job id -> when),
    one set per policy outcome (``pushed`` | ``parked``); the console's delivery page counts them."""
    if outcome not in REPLY_UNKNOWN_OUTCOMES:
        raise ValueError(outcome)
    return f"{PREFIX}:{{ops}}:reply-unknown:{outcome}"


def content(version: str) -> str:
    """A diagnosis script by its content version (conversations.content.Script.version)."""
    return f"{PREFIX}:{{content}}:{version}"


# Content versions published from the console (conversations.content_versions): in the {content} slot with
# the stored texts, so one Lua script stores a version's text, names it and makes it the one in use.
CONTENT_PUBLISHED = f"{PREFIX}:{{content}}:published"
CONTENT_LABELS = f"{PREFIX}:{{content}}:labels"
CONTENT_SEQ = f"{PREFIX}:{{content}}:seq"
CONTENT_ACTIVE = f"{PREFIX}:{{content}}:active"


def content_draft(draft_id: str) -> str:
    """An uploaded content file waiting to be published (conversations.content_versions)."""
    if not re.fullmatch(r"[0-9a-f]{8,32}", draft_id):
        raise InvalidInput("not a draft id")
    return f"{PREFIX}:{{content}}:draft:{draft_id}"


def slack_seen(event_id: str) -> str:
    return f"{PREFIX}:{{slack}}:seen:{event_id}"


# ---- a LINE webhook forwarded to the other LINE tool (CRMBOT_LINE_FORWARD_URL) --------------------------


def forward_tag(digest: str) -> str:
    """The hash tag (without braces) of one webhook's forward: a tag per webhook (its events' digest), so
    forwards spread over every slot and queue shard."""
    if not digest or not digest.isalnum() or len(digest) > 64:
        raise InvalidInput("a forward's digest is hex")
    return f"fwd:{digest}"


def forwarded(digest: str) -> str:
    """Ledger mark of one webhook's forward, in its slot: set with the job, so a redelivery is not queued again."""
    return f"{PREFIX}:{{{forward_tag(digest)}}}:forwarded"


# ---- the client's webhook endpoints (bot/webhooks.py) ----------------------------------------------------

WEBHOOK_ENDPOINTS = f"{PREFIX}:{{webhooks}}:endpoints"  # hash: endpoint id -> its JSON (URL, events, secret)


def webhook_responses(endpoint_id: str) -> str:
    """An endpoint's last answers (list, newest first, capped), for the console."""
    return f"{PREFIX}:{{webhooks}}:last:{endpoint_id}"


def webhook_tag(endpoint_id: str) -> str:
    """The hash tag (without braces) of one endpoint's deliveries: its mailbox and ledger marks."""
    if not endpoint_id or not endpoint_id.isalnum() or len(endpoint_id) > 32:
        raise InvalidInput("a webhook endpoint's id is hex")
    return f"wh:{endpoint_id}"


def webhook_queued(endpoint_id: str, digest: str) -> str:
    """Ledger mark of one event queued for one endpoint, in its slot: the same event is never queued twice."""
    return f"{PREFIX}:{{{webhook_tag(endpoint_id)}}}:queued:{digest}"


# ---- the operator's channel (consultation briefs) -----------------------------------------------


def operator_tag(channel: str) -> str:
    """The hash tag (without braces) of the operator's Slack channel: its mailbox and ledger marks."""
    return f"op:{channel}"


def consult_briefed(channel: str, lead_id: str) -> str:
    """Ledger mark of one lead's brief to the operator's channel, in the channel's slot: queued once."""
    return f"{PREFIX}:{{{operator_tag(channel)}}}:brief:{lead_id}"


def operator_threads(channel: str) -> str:
    """The operator channel's lead threads: the brief's ``ts`` -> the lead ref (:func:`lead_ref`) it is about, so
    a reply in the thread finds its owner (bot/handoff.py)."""
    return f"{PREFIX}:{{{operator_tag(channel)}}}:threads"


def operator_thread(subject: Subject) -> str:
    """A person's thread in the operator's channel, in the person's own slot (a hash: ``ch`` the channel, ``ts``
    the brief's ts, ``read`` the markAsReadToken of their latest message relayed there): bot/handoff.py."""
    return f"{PREFIX}:{subject.tag}:opthread"


def operator_news(subject: Subject, news_id: str) -> str:
    """Ledger mark of one booking news posted into the person's thread (queued once per news id)."""
    return f"{PREFIX}:{subject.tag}:opnews:{news_id}"


def operator_receipt(subject: Subject, reply_ts: str) -> str:
    """Ledger mark of the receipt (✓ or why not) of one operator reply pushed to the person."""
    return f"{PREFIX}:{subject.tag}:oprcpt:{reply_ts}"


def handoff_log(subject: Subject) -> str:
    """The person's conversation with the operator during handoffs, in their own slot (a list of compact JSON
    entries, oldest first, capped, written by the step's commit): conversations.handoff_log."""
    return f"{PREFIX}:{subject.tag}:oplog"


def slack_id(value: object, name: str = "workspace") -> str:
    """A Slack ID (team, enterprise, user: letters and digits, at most 32), or InvalidInput."""
    if not isinstance(value, str) or not value or len(value) > 32 or not value.isascii() or not value.isalnum():
        raise InvalidInput(f"{name} {str(value)[:20]!r} is not a valid Slack ID")
    return value


def installation(workspace: str) -> str:
    """The workspace's installation, in the workspace's hash slot (beside its list of teams)."""
    return f"{PREFIX}:{{ws:{slack_id(workspace)}}}:install"


def installation_rotating(workspace: str) -> str:
    return f"{PREFIX}:{{ws:{slack_id(workspace)}}}:rotating"


_STATE = re.compile(r"[A-Za-z0-9_-]{16,128}")


def oauth_state(state: str) -> str:
    """An OAuth install's state; InvalidInput for a value we never issue (so no key is built from it)."""
    if not isinstance(state, str) or not _STATE.fullmatch(state):
        raise InvalidInput("not an OAuth state we issue")
    return f"{PREFIX}:{{oauth}}:state:{state}"


OAUTH_STATES = f"{PREFIX}:{{oauth}}:states"


def oauth_client(address: str) -> str:
    """The states recently issued to one client address (kept as a hash of the address)."""
    return f"{PREFIX}:{{oauth}}:client:{hashlib.sha256(address.encode(errors='replace')).hexdigest()[:16]}"


# ---- consultation bookings (see conversations.booking) -----------------------------------------
#
# All in one hash slot, ``{booking}``, so one Lua script books, moves, cancels and schedules the
# reminders of a booking together with the capacity check and the lead's one active booking (a
# lead's pointer and a slot's bookings would sit in different slots if keyed by user or by day).
# A consultancy books a few dozen consultations a day at most: one slot carries that many times over.
#
#    crmbot:{booking}:availability              the operator's availability (hash: json, v its version)
#    crmbot:{booking}:bookings                  every booking (hash: booking id -> JSON)
#    crmbot:{booking}:starts                    every booking by start (sorted set: id -> start, epoch s)
#    crmbot:{booking}:held                      bookings holding a place: not cancelled (the same)
#    crmbot:{booking}:remind                    reminders to send (sorted set: "<id>|<kind>|<seq>" -> when
#                                               due, or a claim's lease end)
#    crmbot:{booking}:lead:<lead>               a lead's consultation record (hash: st status, rq first asked,
#                                               at status set at, cur the active booking)
#    crmbot:{booking}:lead:<lead>:bookings      the lead's bookings (sorted set: id -> created)
#    crmbot:{booking}:consult:<ch>:<status>     leads of a channel by consultation status (sorted set:
#                                               lead -> first asked); each lead in exactly one
#    crmbot:{booking}:req:<request id>          a booking request's outcome (string, TTL): a redelivered
#                                               or repeated request is answered alike, never booked twice
#
# ``<lead>`` is ``<transport>:<user id>`` (:func:`lead_ref`), as the console names a person.

BOOKING = f"{PREFIX}:{{booking}}"
BOOKING_AVAILABILITY = f"{BOOKING}:availability"
BOOKINGS = f"{BOOKING}:bookings"
BOOKING_STARTS = f"{BOOKING}:starts"
BOOKING_HELD = f"{BOOKING}:held"
BOOKING_REMIND = f"{BOOKING}:remind"
_REQUEST = re.compile(r"[A-Za-z0-9._-]{1,128}")


def lead_ref(subject: Subject) -> str:
    """A person as bookings name them: ``<transport>:<user id>`` (``line:U0123...``)."""
    return f"{subject.transport}:{subject.user_id}"


def lead_subject(ref: str) -> Subject:
    """The Subject of a lead ref; InvalidInput when it is not one."""
    transport, sep, user_id = ref.partition(":")
    if not sep:
        raise InvalidInput(f"not a lead: {ref[:20]!r}")
    return Subject(Transport.parse(transport), user_id)


def booking_lead(subject: Subject) -> str:
    return f"{BOOKING}:lead:{lead_ref(subject)}"


def booking_lead_bookings(subject: Subject) -> str:
    return f"{BOOKING}:lead:{lead_ref(subject)}:bookings"


def booking_consult(channel: str, status: str) -> str:
    return f"{BOOKING}:consult:{channel}:{status}"


def booking_request(request_id: str) -> str:
    """A booking request's outcome; InvalidInput for an id that could not be a key's part."""
    if not isinstance(request_id, str) or not _REQUEST.fullmatch(request_id):
        raise InvalidInput("a booking request id is 1-128 letters, digits, '.', '_' or '-'")
    return f"{BOOKING}:req:{request_id}"


def booking_owner_told(subject: Subject, news_id: str) -> str:
    """Ledger mark of one piece of booking news pushed to its owner (a cancellation from the console), in
    the user's slot (Outbox.put_once: queued once)."""
    digest = hashlib.sha256(str(news_id).encode()).hexdigest()[:32]  # any id the news carries, kept short
    return f"{PREFIX}:{subject.tag}:bknews:{digest}"


def followup_sent(subject: Subject, sid: int, step: int) -> str:
    """Ledger mark of one follow-up's push (step ``step`` of diagnosis ``sid``), in the user's slot."""
    return f"{PREFIX}:{subject.tag}:fu:{sid}:{step}"


def followup_booked(subject: Subject) -> str:
    """When the user last booked a consultation: the follow-ups started before it stop."""
    return f"{PREFIX}:{subject.tag}:fu:booked"


def booking_reminder_sent(subject: Subject, booking_id: str, kind: str, seq: int) -> str:
    """Ledger mark of one booking reminder's push, in the user's slot (Outbox.put_once: queued once)."""
    return f"{PREFIX}:{subject.tag}:bkrem:{booking_id}:{kind}:{seq}"


# ---- Slack names (people and channels as Slack names them, for the console: conversations/slack_names.py) ----
SLACK_NAMES = f"{PREFIX}:{{slacknames}}"
SLACK_NAMES_WANTED = f"{SLACK_NAMES}:wanted"  # set of "<workspace>:<user or channel id>" the console asked for


def slack_name(workspace: str, slack_id: str) -> str:
    """One cached name (string, with a TTL): a person's display name or a channel's name."""
    return f"{SLACK_NAMES}:n:{workspace}:{slack_id}"


# ---- drop-off nudges and the push budget (conversations/nudges.py, bot/nudges.py, bot/push_budget.py) ----
#    crmbot:{nudge}:due                         diagnoses left mid-way, to nudge (sorted set: "<ref>|<sid>|<begun
#                                               ms>" -> when due; while claimed, the lease's end)
#    crmbot:{nudge}:held                        nudges held by the push budget (hash: member -> the month held)
#    crmbot:{u:<transport>:<user id>}:nudge:<sid>-<begun ms>
#                                               the diagnosis' nudge queued (string, TTL): its ledger mark
#    crmbot:{budget}:<YYYY-MM>                  one month's pushes (hash: "n" total, "k:<kind>" per kind,
#                                               "j:<job id>" each push counted, "held:<kind>", "dropped:<kind>")
NUDGE = f"{PREFIX}:{{nudge}}"
NUDGE_DUE = f"{NUDGE}:due"
NUDGE_HELD = f"{NUDGE}:held"


def nudge_member(subject: Subject, sid: int, begun: float) -> str:
    """A diagnosis in the nudge schedule: its user, number and start (ms), so a later one is another member."""
    return f"{subject.transport}:{subject.user_id}|{sid}|{round(begun * 1000)}"


def nudge_sent(subject: Subject, sid: int, begun: float) -> str:
    """Ledger mark of one diagnosis' drop-off nudge, in the user's slot (Outbox.put_once: queued once)."""
    return f"{PREFIX}:{subject.tag}:nudge:{sid}-{round(begun * 1000)}"


def push_budget(month: str) -> str:
    """One calendar month's pushes (Japan time, "2026-12"), all in one hash (bot/push_budget.py)."""
    return f"{PREFIX}:{{budget}}:{month}"


# ---- LINE's statistics per aggregation unit (bot/insight.py, read by the console's nurture page) ----
#    crmbot:{insight}:run                       the daily fetch: "next" (Unix time it is due), "owner" and "until"
#                                               (the worker running it and its lease's end) (hash)
#    crmbot:{insight}:units                     the units followed (sorted set: unit -> when last listed or sent)
#    crmbot:{insight}:day:<unit>                one unit's figures per Japan-time day (hash: "YYYYMMDD" -> JSON,
#                                               days older than bot.insight.KEEP_DAYS trimmed, TTL as long)
#    crmbot:{insight}:sent:<unit>               the unit's pushes LINE accepted (sorted set: job id -> when; trimmed)
INSIGHT = f"{PREFIX}:{{insight}}"
INSIGHT_RUN = f"{INSIGHT}:run"
INSIGHT_UNITS = f"{INSIGHT}:units"
_UNIT_RE = re.compile(r"^[a-zA-Z0-9_]{1,30}$")  # LINE's rule for a custom aggregation unit's name


def valid_unit(unit: str) -> bool:
    return bool(_UNIT_RE.match(unit))


def insight_days(unit: str) -> str:
    """One aggregation unit's figures from LINE, per day (bot/insight.py)."""
    if not valid_unit(unit):
        raise InvalidInput(f"not an aggregation unit name: {unit[:40]!r}")
    return f"{INSIGHT}:day:{unit}"


def insight_sent(unit: str) -> str:
    """One aggregation unit's pushes LINE accepted, by job id (bot/insight.py)."""
    if not valid_unit(unit):
        raise InvalidInput(f"not an aggregation unit name: {unit[:40]!r}")
    return f"{INSIGHT}:sent:{unit}"


# Ended content experiments -> the variant every new diagnosis is shown (hash; conversations.experiments).
EXPERIMENT_WINNERS = f"{PREFIX}:{{experiments}}:winners"


def experiment_stage(name: str, variant: str, stage: str) -> str:
    """One experiment's diagnoses that reached ``stage`` with ``variant`` (set): every key of an experiment in
    its own slot, so one script counts or ends it."""
    return f"{PREFIX}:{{x:{name}}}:{variant}:{stage}"


def experiment_ended(name: str) -> str:
    """An ended experiment: its winner, when and by whom, and the counts' snapshot (hash)."""
    return f"{PREFIX}:{{x:{name}}}:ended"
