"""Slack: a Bolt app mounted in Flask at POST /slack/events (slash commands, interactivity, events).

Every listener acks first (Bolt then answers Slack at once and runs the rest in its thread pool),
so Slack never waits past its 3 seconds. Bolt verifies the signature and refuses timestamps older
than five minutes. Events Slack retries (same event_id) are handled once.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, current_app, request
from slack_bolt import App, BoltResponse
from slack_bolt.adapter.flask import SlackRequestHandler
from slack_bolt.request.internals import parse_body
from slack_sdk import WebClient

from bot.core import Bot, InboundEvent
from bot.logs import uid
from bot.slack import blocks as B
from bot.slack.texts import t
from conversations import inputs as I
from conversations import keys
from conversations.content import Script
from conversations.errors import InvalidInput, StoreUnavailable
from conversations.keys import Subject, TeamRef
from conversations.kpi_catalog import Catalog
from conversations.teams import Team, TeamStore
from scoring.kpi import KpiResult, compare, missing_required
from scoring.periods import Quarter, quarter_of, recent, zone

log = logging.getLogger(__name__)
SEEN_TTL = 86400
DEFAULT_TZ = "Asia/Tokyo"


@dataclass
class SlackParts:
    app: App
    handler: SlackRequestHandler
    client: WebClient
    teams: TeamStore
    catalog: Catalog


def subject_of(workspace: str, user: str) -> Subject:
    return Subject("slack", f"{workspace}.{user}")


def build_slack(
    *,
    signing_secret: str,
    client: WebClient,
    redis_client: Any,
    bot: Bot,
    script: Script,
    catalog: Catalog,
    teams: TeamStore,
    outbox: Any,
    locale: str,
    clock: Callable[[], float],
) -> SlackParts:
    app = App(
        client=client,
        signing_secret=signing_secret,
        token_verification_enabled=False,
        process_before_response=False,
        logger=logging.getLogger("crmbot.slack.bolt"),
    )

    # ---- retries: an event Slack redelivers (X-Slack-Retry-Num, same event_id) is handled once ----
    @app.middleware
    def once_per_event(req: Any, resp: Any, next: Callable[[], Any]) -> Any:
        body = req.body or {}
        event_id = body.get("event_id") if isinstance(body, dict) else None
        if body.get("type") == "event_callback" and isinstance(event_id, str) and event_id:
            try:
                first = redis_client.set(keys.slack_seen(event_id), "1", nx=True, ex=SEEN_TTL)
            except Exception:
                return BoltResponse(status=503, body="store unavailable")
            if not first:
                log.info("slack: event %s already handled (retry %s)", event_id[:12],
                         req.headers.get("x-slack-retry-num", ["?"])[0])
                return BoltResponse(status=200, body="")
        return next()

    def ephemeral(channel: str, user: str, text: str, blocks: list[dict[str, Any]] | None = None) -> None:
        client.chat_postEphemeral(channel=channel, user=user, text=text, blocks=blocks)

    def targets_of(ref: TeamRef) -> dict[str, float]:
        return teams.targets(ref)

    def usable(figures: Any) -> dict[str, float]:
        """Figures the current catalog can score: stored reports outlive catalog edits (a renamed
        indicator, a narrower range), and an old figure the catalog no longer knows is left out."""
        out = {}
        for key, value in dict(figures or {}).items():
            try:
                ind = catalog.indicator(key)
            except KeyError:
                continue
            if ind.minimum <= value <= ind.maximum:
                out[key] = value
        return out

    def score(values: Any, targets: Any) -> KpiResult:
        return catalog.score(usable(values), usable(targets))

    def score_report(rep: Any, ref: TeamRef) -> KpiResult:
        """A stored report, scored against the targets in force when it was reported."""
        return score(rep.values, rep.targets if rep.targets is not None else targets_of(ref))

    def post_to_team(team: Team, text: str, blocks: list[dict[str, Any]]) -> None:
        outbox.enqueue(subject_of(team.ref.workspace, team.ref.channel),
                       [{"type": "slack_post", "text": text, "blocks": blocks}])

    def open_report(trigger_id: str, team: Team, quarter: Quarter | None = None) -> None:
        now = clock()
        choices = recent(now, team.tz)
        initial = quarter if quarter in choices else choices[0]
        report = teams.report(team.ref, initial)
        view = B.report_modal(catalog, locale, team, choices, initial, report.values if report else {},
                              targets_of(team.ref))
        client.views_open(trigger_id=trigger_id, view=view)

    # ---- /kpi ------------------------------------------------------------------------------------
    @app.command("/kpi")
    def kpi(ack: Any, command: dict[str, Any]) -> None:
        ack()
        ids = _strings(command, "team_id", "channel_id", "user_id", "trigger_id")
        try:
            ref = TeamRef(ids[0], ids[1]) if ids else None
        except InvalidInput:
            ref = None
        if ids is None or ref is None:
            log.warning("slack: /kpi without a valid team, channel, user or trigger ignored")
            return
        user, channel = ids[2], ids[1]
        # split on any whitespace: Japanese input methods type U+3000 (full-width) for a space
        text = command.get("text")
        words = (text if isinstance(text, str) else "").split(None, 1)
        sub = words[0].lower() if words else ""
        rest = words[1] if len(words) > 1 else ""
        if sub == "setup":
            setup(ref, user, rest.strip())
            return
        if sub in ("help", "?"):
            ephemeral(channel, user, t(locale, "help"))
            return
        team = teams.get(ref)
        if team is None:
            ephemeral(channel, user, t(locale, "not_a_team"))
            return
        if sub == "":
            open_report(command["trigger_id"], team)
        elif sub == "targets":
            client.views_open(trigger_id=command["trigger_id"],
                              view=B.targets_modal(catalog, locale, team, targets_of(ref)))
        elif sub == "history":
            rows = []
            for q in teams.quarters(ref)[-8:]:
                rep = teams.report(ref, q)
                if rep is not None:
                    rows.append((q, score_report(rep, ref)))
            text, blks = B.history_blocks(catalog, locale, team, rows)
            ephemeral(channel, user, text, blks)
        elif sub == "reminders" and rest.strip().lower() in ("on", "off"):
            on = rest.strip().lower() == "on"
            teams.set_reminders(ref, on)
            ephemeral(channel, user, t(locale, "reminders_on" if on else "reminders_off"))
        else:
            ephemeral(channel, user, t(locale, "help"))

    def setup(ref: TeamRef, user: str, rest: str) -> None:
        tz = DEFAULT_TZ
        words = []
        for word in rest.split():
            if word.lower().startswith("tz="):
                tz = word[3:]
            else:
                words.append(word)
        try:
            zone(tz)
        except ValueError:
            ephemeral(ref.channel, user, t(locale, "bad_tz", tz=tz[:40]))
            return
        name = _plain_name(" ".join(words))
        if not name:
            existing = teams.get(ref)
            if existing:
                name = existing.name
            else:
                try:
                    name = _plain_name(client.conversations_info(channel=ref.channel)["channel"]["name"])
                except Exception:
                    name = ref.channel
        team, created = teams.register(ref, name, tz, user, clock())
        if created:
            # the announcement is queued first: a failed (best-effort) ephemeral must not lose it
            post_to_team(team, t(locale, "setup_announce", user=user, name=team.name),
                         [B.section(t(locale, "setup_announce", user=user, name=team.name))])
            ephemeral(ref.channel, user, t(locale, "setup_done", name=team.name, tz=team.tz))
        else:
            ephemeral(ref.channel, user, t(locale, "setup_updated", name=team.name, tz=team.tz))

    @app.action(B.OPEN_REPORT_ACTION)
    def open_from_button(ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        ack()
        data = _json_object(action.get("value"))
        trigger_id = body.get("trigger_id")
        try:
            team = teams.get(TeamRef.parse(data.get("team"))) if isinstance(data.get("team"), str) else None
            quarter = Quarter.parse(data.get("quarter", ""))
        except (ValueError, InvalidInput):
            return
        if team is not None and isinstance(trigger_id, str) and trigger_id:
            open_report(trigger_id, team, quarter)

    # ---- modal submissions -----------------------------------------------------------------------
    def team_of_view(view: dict[str, Any]) -> Team | None:
        ref = _json_object(view.get("private_metadata")).get("team")
        try:
            return teams.get(TeamRef.parse(ref)) if isinstance(ref, str) else None
        except InvalidInput:
            return None

    @app.view(B.REPORT_CALLBACK)
    def on_report(ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        team = team_of_view(view)
        state = _object(_object(view.get("state")).get("values"))
        user = _strings(_object(body.get("user")), "id")
        if team is None or user is None:
            ack(response_action="errors", errors={"quarter": t(locale, "not_a_team")})
            return
        now = clock()
        quarter, errors = B.parse_quarter(locale, state, quarter_of(now, team.tz))
        values, value_errors = B.parse_figures(catalog, locale, state)
        errors |= value_errors
        for key in missing_required(catalog.indicators, values):
            errors.setdefault(f"ind:{key}", t(locale, "err_number"))
        if errors or quarter is None:
            ack(response_action="errors", errors=errors)
            return
        ack()
        user = user[0]
        targets = targets_of(team.ref)
        replaced = teams.submit(team.ref, quarter, values, user, now, targets)
        result = score(values, targets)
        prev = teams.report(team.ref, quarter.previous())
        deltas = compare(result, score_report(prev, team.ref)) if prev else None
        text, blks = B.result_message(catalog, locale, team, quarter, result, deltas, user, bool(replaced))
        post_to_team(team, text, blks)
        log.info("slack: team %s reported %s (%d figures) by %s", team.ref.channel, quarter, len(values), uid(user))

    @app.view(B.TARGETS_CALLBACK)
    def on_targets(ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        team = team_of_view(view)
        user = _strings(_object(body.get("user")), "id")
        if team is None or user is None:
            # Slack refuses an empty errors object (and Bolt raises on one): name the first input
            ack(response_action="errors", errors={f"ind:{catalog.indicators[0].key}": t(locale, "not_a_team")})
            return
        values, errors = B.parse_figures(catalog, locale, _object(_object(view.get("state")).get("values")))
        if errors:
            ack(response_action="errors", errors=errors)
            return
        ack()
        teams.set_targets(team.ref, values, user[0], clock())
        ephemeral(team.ref.channel, user[0], t(locale, "targets_saved"))

    # ---- App Home --------------------------------------------------------------------------------
    @app.event("app_home_opened")
    def home(event: dict[str, Any], body: dict[str, Any]) -> None:
        ids = _strings(event, "user")
        workspace = body.get("team_id", "")
        if event.get("tab", "home") != "home" or ids is None or not isinstance(workspace, str):
            return
        now = clock()
        rows = []
        for team in teams.workspace_teams(workspace):
            current = quarter_of(now, team.tz)
            reported = teams.report(team.ref, current) is not None
            quarters = teams.quarters(team.ref)
            latest_q = quarters[-1] if quarters else None
            latest = None
            if latest_q is not None:
                rep = teams.report(team.ref, latest_q)
                latest = score_report(rep, team.ref) if rep else None
            rows.append((team, current, reported, latest_q, latest))
        client.views_publish(user_id=ids[0], view=B.home_view(catalog, locale, rows))

    # ---- the diagnosis ---------------------------------------------------------------------------
    def handle(workspace: str, user: str, event_id: str, inp: I.Input) -> None:
        try:
            bot.handle(InboundEvent(subject_of(workspace, user), event_id, inp, timestamp=clock()))
        except StoreUnavailable as e:
            log.error("slack: store unavailable (%s)", e)
        except InvalidInput as e:
            log.warning("slack: refused input: %s", e)

    @app.command("/diagnosis")
    def diagnosis(ack: Any, command: dict[str, Any]) -> None:
        ack(text=t(locale, "dm_only"))
        ids = _strings(command, "team_id", "user_id", "trigger_id")
        if ids is None:
            log.warning("slack: /diagnosis without a team, user or trigger ignored")
            return
        handle(ids[0], ids[1], "cmd:" + ids[2], I.Input(I.START))

    @app.action(re.compile(rf"^{B.DIAGNOSIS_ACTION}:\d+$"))
    def diagnosis_button(ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        ack()
        user = _object(body.get("user"))
        workspace = user.get("team_id") or _object(body.get("team")).get("id")
        action_ts = action.get("action_ts") or body.get("trigger_id")
        ids = _strings({"w": workspace, "u": user.get("id"), "a": action_ts}, "w", "u", "a")
        if ids is None:
            log.warning("slack: a diagnosis button without a team, user or action time ignored")
            return
        handle(ids[0], ids[1], f"act:{ids[2]}", I.from_button(action.get("value") or ""))

    @app.event("message")
    def direct_message(event: dict[str, Any], body: dict[str, Any]) -> None:
        if event.get("channel_type") != "im" or event.get("subtype") or event.get("bot_id"):
            return
        text = event.get("text") or ""
        ids = _strings({"w": body.get("team_id"), "u": event.get("user"), "e": body.get("event_id")}, "w", "u", "e")
        if ids is None or not isinstance(text, str):
            log.warning("slack: a direct message without a team, user, event ID or text ignored")
            return
        handle(ids[0], ids[1], "ev:" + ids[2], I.from_text(text, script.keywords))

    return SlackParts(app, SlackRequestHandler(app), client, teams, catalog)


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _json_object(text: Any) -> dict[str, Any]:
    """A JSON object carried in a string field (button value, private_metadata); {} for anything else."""
    try:
        return _object(json.loads(text)) if isinstance(text, str) else {}
    except (ValueError, RecursionError):
        return {}


def _strings(d: dict[str, Any], *names: str) -> tuple[str, ...] | None:
    """The named fields, when every one is a non-empty string (as Slack always sends them); else None."""
    values = tuple(d.get(n) for n in names)
    return values if all(isinstance(v, str) and v for v in values) else None  # type: ignore[return-value]


# What Bolt relies on in a request body, as Slack always sends it. Bolt raises on anything else:
# before even checking the signature when the body does not parse or is not an object (a 500), in
# its middleware (a 500), or in a listener after its ack. Such a body cannot be Slack's: refused.
_ID_FIELDS = ("team", "user", "channel", "enterprise")  # an ID, or an object carrying it
# Objects Bolt reads IDs from, recursively (the event, the message acted on, ...).
_NESTED = ("event", "message", "previous_message", "item", "assistant_thread", "view", "function_data", "container",
           "state", "workflow_step")
_NOT_NULL = ("event", "view", "actions", "response_urls", "authorizations")  # read with .get(name, {}) / [0]
_STRING_FIELDS = ("type", "command", "text", "team_id", "channel_id", "user_id", "trigger_id", "event_id",
                  "callback_id", "action_id", "response_url", "api_app_id", "token", "enterprise_id")


def _shape(obj: dict[str, Any], where: str, depth: int = 0) -> str | None:
    """The first field of ``obj`` (or of the objects nested in it) of a type Bolt cannot take."""
    for name in _ID_FIELDS:
        if obj.get(name) is not None and not isinstance(obj[name], str | dict):
            return where + name
    for name in ("authorizations", "actions", "response_urls"):  # lists of objects
        value = obj.get(name)
        if value is not None and not (isinstance(value, list) and all(isinstance(v, dict) for v in value)):
            return where + name
    nested = [(name, obj.get(name)) for name in _NESTED]
    nested.append(("authorizations[0]", (obj.get("authorizations") or [None])[0]))
    for name, value in nested:
        if value is None:
            continue
        if not isinstance(value, dict):
            return where + name
        if depth < 4 and (problem := _shape(value, f"{where}{name}.", depth + 1)):
            return problem
    return None


def malformed(raw: str, content_type: str | None) -> str | None:
    """Why a request body cannot be one of Slack's (so must not reach Bolt), or None."""
    try:
        body = parse_body(raw, content_type)  # exactly as Bolt will parse it
        json.dumps(body, ensure_ascii=False).encode()  # lone surrogates ("\ud800") are not text
    except (ValueError, RecursionError) as e:
        return type(e).__name__
    if not isinstance(body, dict):
        return "not an object"
    for name in _NOT_NULL:
        if name in body and body[name] is None:
            return name
    for name in _STRING_FIELDS:
        if body.get(name) is not None and not isinstance(body[name], str):
            return name
    if problem := _shape(body, ""):
        return problem
    if body.get("actions") == [] or not all(isinstance(a.get("action_id"), str) for a in body.get("actions") or []):
        return "actions"  # Bolt matches actions[0].action_id
    for name, inner in (("event", "type"), ("view", "callback_id"), ("view", "type")):
        value = _object(body.get(name)).get(inner)
        if value is not None and not isinstance(value, str):
            return f"{name}.{inner}"
    return None


def _plain_name(text: str) -> str:
    """A team name safe in mrkdwn: no <, > or & (so no mentions like <!channel>), at most 80 chars."""
    return re.sub(r"[<>&*_~`]", "", text).strip()[:80]


def blueprint() -> Blueprint:
    bp = Blueprint("slack", __name__)

    @bp.post("/slack/events")
    def events() -> Any:
        svc = current_app.extensions["crmbot"]
        if svc.slack is None:
            return "Slack is not configured on this server", 503
        content_type = request.headers.get("Content-Type")
        problem = malformed(request.get_data(as_text=True), content_type.split(";")[0] if content_type else None)
        if problem is not None:
            log.warning("slack: malformed request body (%s)", problem)
            return "malformed body", 400
        return svc.slack.handler.handle(request)

    return bp
