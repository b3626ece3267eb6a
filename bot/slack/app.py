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
from slack_sdk import WebClient

from bot.core import Bot, InboundEvent
from bot.errors import InvalidInput, StoreUnavailable
from bot.logs import uid
from bot.slack import blocks as B
from bot.slack.texts import t
from conversations import inputs as I
from conversations import keys
from conversations.content import Script
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
        ref = TeamRef(command["team_id"], command["channel_id"])
        user, channel = command["user_id"], command["channel_id"]
        # split on any whitespace: Japanese input methods type U+3000 (full-width) for a space
        words = (command.get("text") or "").split(None, 1)
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
        try:
            data = json.loads(action.get("value") or "{}")
            team = teams.get(TeamRef.parse(data.get("team", "")))
            quarter = Quarter.parse(data.get("quarter", ""))
        except (ValueError, InvalidInput):
            return
        if team is not None:
            open_report(body["trigger_id"], team, quarter)

    # ---- modal submissions -----------------------------------------------------------------------
    def team_of_view(view: dict[str, Any]) -> Team | None:
        try:
            return teams.get(TeamRef.parse(json.loads(view.get("private_metadata") or "{}").get("team", "")))
        except (ValueError, InvalidInput, AttributeError):
            return None

    @app.view(B.REPORT_CALLBACK)
    def on_report(ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        team = team_of_view(view)
        state = (view.get("state") or {}).get("values") or {}
        if team is None:
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
        user = body["user"]["id"]
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
        if team is None:
            ack(response_action="errors", errors={})
            return
        values, errors = B.parse_figures(catalog, locale, (view.get("state") or {}).get("values") or {})
        if errors:
            ack(response_action="errors", errors=errors)
            return
        ack()
        teams.set_targets(team.ref, values, body["user"]["id"], clock())
        ephemeral(team.ref.channel, body["user"]["id"], t(locale, "targets_saved"))

    # ---- App Home --------------------------------------------------------------------------------
    @app.event("app_home_opened")
    def home(event: dict[str, Any], body: dict[str, Any]) -> None:
        if event.get("tab", "home") != "home":
            return
        workspace = body.get("team_id", "")
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
        client.views_publish(user_id=event["user"], view=B.home_view(catalog, locale, rows))

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
        handle(command["team_id"], command["user_id"], "cmd:" + command.get("trigger_id", ""), I.Input(I.START))

    @app.action(re.compile(rf"^{B.DIAGNOSIS_ACTION}:\d+$"))
    def diagnosis_button(ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        ack()
        user = body["user"]
        workspace = user.get("team_id") or (body.get("team") or {}).get("id", "")
        action_ts = action.get("action_ts") or body.get("trigger_id", "")
        handle(workspace, user["id"], f"act:{action_ts}", I.from_button(action.get("value") or ""))

    @app.event("message")
    def direct_message(event: dict[str, Any], body: dict[str, Any]) -> None:
        if event.get("channel_type") != "im" or event.get("subtype") or event.get("bot_id"):
            return
        text = event.get("text") or ""
        handle(body.get("team_id", ""), event.get("user", ""), "ev:" + body.get("event_id", ""),
               I.from_text(text, script.keywords))

    return SlackParts(app, SlackRequestHandler(app), client, teams, catalog)


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
        return svc.slack.handler.handle(request)

    return bp
