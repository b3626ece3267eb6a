"""Block Kit for Slack: the KPI modals, the result message, history, App Home, diagnosis messages.

Pure builders over plain data (no Slack client, no Redis): each returns dicts ready for the Web API.
Text from outside (a team name, an action someone typed) goes into mrkdwn only through
:func:`bot.mrkdwn.escape`; every mrkdwn object is made by :func:`bot.mrkdwn.mrkdwn`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, assert_never

from bot import views
from bot.kpi import Refused
from bot.kpi.figures import MAX_INPUT_CHARS, Problem
from bot.mrkdwn import escape, mrkdwn
from bot.slack.texts import months_label, period_label, t, with_unit
from conversations.content import Script
from conversations.kpi_catalog import Catalog
from conversations.outputs import (
    Advice,
    BookingNote,
    ConfirmRestart,
    ConsultAck,
    Definition,
    DoneHelp,
    Erasure,
    FollowOffer,
    FollowStep,
    Greeting,
    Heard,
    Notice,
    Offer,
    OptinOffer,
    Output,
    Qualify,
    Question,
    Reminder,
    Result,
    Resume,
    Slots,
)
from conversations.teams import Action, Team
from scoring.kpi import MAX_SCORE, Indicator, KpiResult
from scoring.periods import Quarter

REPORT_CALLBACK = "kpi_report"
TARGETS_CALLBACK = "kpi_targets"
DIAGNOSIS_ACTION = "dx"  # action_id prefix of diagnosis buttons
CONSULT_URL_ACTION = "consult_url"  # the booking page's link button (Slack still sends an action: acked)
OPEN_REPORT_ACTION = "kpi_open"
OWNERS_CALLBACK = "kpi_owners"
ACTIONS_CALLBACK = "kpi_actions"
ACTIONS_ACTION = "kpi_add_actions"
DETAIL_ACTION = "kpi_detail"
MAX_ACTION_CHARS = 150
ACTIONS_PER_MODAL = 3


def plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text, "emoji": True}


def section(text: str, **extra: Any) -> dict[str, Any]:
    return {"type": "section", "text": mrkdwn(text[:3000]), **extra}


def joined(locale: str, items: Sequence[str]) -> str:
    return ("、" if locale != "en" else ", ").join(items)


def fmt(value: float) -> str:
    """A figure as people write it: 1000000 (not 1e+06), 12.345678 (every digit kept), 95 (no .0)."""
    v = float(value)
    return str(int(v)) if v.is_integer() else repr(v)


def bar(score: float) -> str:
    filled = max(0, min(10, math.floor(score + 0.5)))  # half up, like the scores (round() goes to even)
    return "▰" * filled + "▱" * (10 - filled)


def delta_text(delta: float | None) -> str:
    if delta is None:
        return ""
    if delta > 0:
        return f"  ▲{delta:.1f}"
    if delta < 0:
        return f"  ▼{-delta:.1f}"
    return "  ±0"


def figure(catalog: Catalog, locale: str, key: str, value: float) -> str:
    """A figure with the indicator's unit in the locale: 「95%」「3.5点」 / "3.5 of 5"."""
    return with_unit(locale, fmt(value), catalog.unit(key, locale))


def rule_text(catalog: Catalog, locale: str, ind: Indicator) -> str:
    """How the indicator is scored, in one clause (published with the form, as the method asks)."""
    step = figure(catalog, locale, ind.key, ind.step)
    if not ind.counted:
        return t(locale, "rule_reference")
    match ind.rule:
        case "gap":
            return t(locale, "rule_gap", step=step)
        case "ratio":
            return t(locale, "rule_ratio")
        case "scale":
            assert ind.floor is not None
            return t(locale, "rule_scale", floor=figure(catalog, locale, ind.key, ind.floor))
        case "improve":
            return t(locale, "rule_improve", step=step)
        case "yoy":
            return t(locale, "rule_year", step=step)
        case _:
            assert_never(ind.rule)


def _hint(catalog: Catalog, locale: str, ind: Indicator, target: float, defaults: bool) -> str:
    """The indicator's one-line definition, then its target and how it is scored."""
    if ind.rule == "improve":
        key = "improve_default_hint" if defaults else "improve_hint"
    else:
        key = "default_hint" if defaults else "target_hint"
    line = t(locale, key, target=figure(catalog, locale, ind.key, target), direction=t(locale, ind.direction))
    line += "\n" + rule_text(catalog, locale, ind)
    definition = catalog.definition(ind.key, locale)
    return (f"{definition}\n{line}" if definition else line)[:2000]


def _label(catalog: Catalog, locale: str, ind: Indicator) -> str:
    """「name（unit）」; a name ending in its own brackets takes the unit inside them:
    「リピート売上の伸び（前年同期比、%）」, not 「…（前年同期比）（%）」."""
    name, unit = catalog.name(ind.key, locale), catalog.unit(ind.key, locale)
    if locale == "en":
        label = f"{name[:-1]}, {unit})" if name.endswith(")") else f"{name} ({unit})"
    else:
        label = f"{name[:-1]}、{unit}）" if name.endswith("）") else f"{name}（{unit}）"
    return label[:2000]


# ---- modals -------------------------------------------------------------------------------------


def _indicator_inputs(
    catalog: Catalog,
    locale: str,
    initial: Mapping[str, float],
    shape: Callable[[Indicator], tuple[bool, float, bool]],
    editable: Sequence[str] | None = None,
    readonly: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """One header per area and one number input per indicator (block ind:<key>, action <key>).
    ``shape(indicator)`` gives (optional, the target shown in the hint, whether it is a default).
    ``editable``: the areas with inputs (None: all); the others show ``readonly[area]`` as text."""
    blocks: list[dict[str, Any]] = []
    for area in catalog.areas:
        blocks.append({"type": "header", "text": plain(catalog.name(area.key, locale))})
        if editable is not None and area.key not in editable:
            blocks.append({"type": "context", "elements": [mrkdwn((readonly or {}).get(area.key, "-")[:3000])]})
            continue
        for key in area.indicator_keys:
            ind = catalog.indicator(key)
            optional, target, defaults = shape(ind)
            element: dict[str, Any] = {"type": "plain_text_input", "action_id": key, "max_length": MAX_INPUT_CHARS}
            if key in initial:
                element["initial_value"] = fmt(initial[key])
            blocks.append({
                "type": "input",
                "block_id": f"ind:{key}",
                "optional": optional,
                "label": plain(_label(catalog, locale, ind)),
                "hint": plain(_hint(catalog, locale, ind, target, defaults)),
                "element": element,
            })
    return blocks


def report_modal(
    catalog: Catalog,
    locale: str,
    team: Team,
    quarters: Sequence[Quarter],
    initial: Quarter,
    values: Mapping[str, float],
    targets: Mapping[str, float],
    editable: Sequence[str] | None = None,
    readonly: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The report form. ``editable``: the areas this person reports (an owner's); the others are shown
    read-only (``readonly[area]``: who owns it, whether it is in). None: every area."""
    options = [{"text": plain(period_label(locale, q, team.fy_start)[:75]), "value": str(q)} for q in quarters]
    initial_option = next(o for o in options if o["value"] == str(initial))
    if editable is None or len(editable) == len(catalog.areas):
        intro = t(locale, "report_intro", team=escape(team.name))
    else:
        intro = t(locale, "report_intro_owner", team=escape(team.name),
                  areas=joined(locale, [catalog.name(a, locale) for a in editable]))
    blocks: list[dict[str, Any]] = [
        section(intro),
        {
            "type": "input",
            "block_id": "quarter",
            "label": plain(t(locale, "quarter_label")),
            "hint": plain(t(locale, "quarter_hint")),
            "element": {"type": "static_select", "action_id": "q", "options": options,
                        "initial_option": initial_option},
        },
    ]
    blocks += _indicator_inputs(
        catalog, locale, values, lambda ind: (not ind.required, targets.get(ind.key, ind.target), False),
        editable, readonly,
    )
    return {
        "type": "modal",
        "callback_id": REPORT_CALLBACK,
        "title": plain(t(locale, "report_title")),
        "submit": plain(t(locale, "submit")),
        "close": plain(t(locale, "cancel")),
        "private_metadata": json.dumps({"team": team.ref.id}),
        "blocks": blocks,
    }


def targets_modal(catalog: Catalog, locale: str, team: Team, targets: Mapping[str, float]) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = [section(t(locale, "targets_intro", team=escape(team.name)))]
    blocks += _indicator_inputs(catalog, locale, targets, lambda ind: (True, ind.target, True))
    return {
        "type": "modal",
        "callback_id": TARGETS_CALLBACK,
        "title": plain(t(locale, "targets_title")),
        "submit": plain(t(locale, "save")),
        "close": plain(t(locale, "cancel")),
        "private_metadata": json.dumps({"team": team.ref.id}),
        "blocks": blocks,
    }


def _input_value(state: Mapping[str, Any], block_id: str, action_id: str) -> Mapping[str, Any]:
    """One input's state entry ({} when absent or not shaped as Slack sends it)."""
    block = state.get(block_id) if isinstance(state, Mapping) else None
    entry = block.get(action_id) if isinstance(block, Mapping) else None
    return entry if isinstance(entry, Mapping) else {}


def typed_figures(catalog: Catalog, state: Mapping[str, Any]) -> dict[str, str | None]:
    """The indicator inputs a submitted modal has (block ind:<key>, action <key>), as typed: indicator
    key -> text (None: blank). An input the modal does not have is left out."""
    typed: dict[str, str | None] = {}
    for ind in catalog.indicators:
        block = f"ind:{ind.key}"
        if block not in state or ind.retired:
            continue
        raw = _input_value(state, block, ind.key).get("value")
        typed[ind.key] = raw if isinstance(raw, str) or raw is None else str(raw)
    return typed


def chosen_quarter(state: Mapping[str, Any]) -> str:
    """The quarter chosen in a report modal, as sent ("" when none)."""
    option = _input_value(state, "quarter", "q").get("selected_option")
    raw = option.get("value") if isinstance(option, Mapping) else None
    return raw if isinstance(raw, str) else ""


def problem_text(catalog: Catalog, locale: str, problem: Problem, key: str = "") -> str:
    """What is wrong with a field of a submitted modal (``key``: the indicator's, for a figure)."""
    match problem:
        case "number":
            return t(locale, "err_number")
        case "percent":
            return t(locale, "err_percent")
        case "range":
            ind = catalog.indicator(key)
            return t(locale, "err_range", min=fmt(ind.minimum), max=fmt(ind.maximum))
        case "floor":
            ind = catalog.indicator(key)
            assert ind.floor is not None
            name = "err_floor_higher" if ind.direction == "higher" else "err_floor_lower"
            return t(locale, name, floor=figure(catalog, locale, ind.key, ind.floor))
        case "quarter":
            return t(locale, "err_quarter")
        case "running":
            return t(locale, "err_running")
        case "owner_changed":
            return t(locale, "err_owner_changed")
        case _:
            assert_never(problem)


def modal_errors(catalog: Catalog, locale: str, refused: Refused) -> dict[str, str]:
    """A refused submission as the modal's errors by block ID: the form's under the quarter, a figure's
    under its input."""
    errors = {"quarter": problem_text(catalog, locale, refused.form)} if refused.form is not None else {}
    return errors | {f"ind:{key}": problem_text(catalog, locale, problem, key)
                     for key, problem in refused.figures.items()}


# ---- messages -----------------------------------------------------------------------------------


def result_message(
    catalog: Catalog,
    locale: str,
    team: Team,
    quarter: Quarter,
    result: KpiResult,
    deltas: Mapping[str, float | None] | None,
    by: str,
    replaced: bool,
    *,
    reporters: Sequence[str] = (),
    owners: Mapping[str, str] | None = None,
    follow: Sequence[tuple[Action, float | None]] = (),
    closed: bool = False,
    native: Sequence[dict[str, Any]] = (),
) -> tuple[str, list[dict[str, Any]]]:
    """The team's result post. ``reporters``: everyone who reported an area (``by`` alone when empty);
    ``owners``: an area not reported names its owner; ``follow``: last quarter's actions with the change
    of their area; ``closed``: posted at the last reminder with areas missing; ``native``: Slack's own
    chart and table of the scores (:mod:`bot.slack.native`), shown under the overall score (the section
    of the areas above them says the same figures in words)."""
    period = period_label(locale, quarter, team.fy_start)
    title = t(locale, "result_title", period=period, team=team.name)  # the header: plain text, as typed
    lines = []
    for area in result.areas:
        name = catalog.name(area.area, locale)
        if area.score is None:
            owner = (owners or {}).get(area.area)
            missing = t(locale, "not_reported_owner", user=owner) if owner else t(locale, "not_reported")
            lines.append(f"*{name}*\n{missing}")
        else:
            change = delta_text(deltas.get(area.area) if deltas else None)
            coverage = t(locale, "coverage", reported=area.reported, total=area.total)
            lines.append(f"*{name}*\n`{bar(area.score)}` {area.score:.1f}/10{change}\n{coverage}")
    blocks: list[dict[str, Any]] = [{"type": "header", "text": plain(title[:150])}]
    blocks.append({"type": "section", "fields": [mrkdwn(x) for x in lines]})
    if result.overall is not None:
        change = delta_text(deltas.get("overall") if deltas else None)
        overall = f"*{t(locale, 'overall')}*  `{bar(result.overall)}` *{result.overall:.1f}/10*{change}"
        blocks.append(section(overall))
    blocks.extend(native)
    if result.weakest is not None:
        weakest = result.area(result.weakest)
        text = t(locale, "weakest", area=catalog.name(result.weakest, locale), score=f"{weakest.score:.1f}")
        if result.weakest_figure is not None:
            text += "\n" + weakest_figure(catalog, locale, result)
        blocks.append(section(text))
    if follow:
        rows = [t(locale, "follow_line", area=catalog.name(a.area, locale), what=escape(a.what), owner=a.owner,
                  due=a.due, moved=moved_text(locale, change)) for a, change in follow]
        blocks.append(section(t(locale, "follow_title") + "\n" + "\n".join(rows)))
    people = list(dict.fromkeys(reporters)) or [by]
    if len(people) == 1:
        context = [t(locale, "replaced_by", user=people[0], period=period) if replaced
                   else t(locale, "submitted_by", user=people[0])]
    else:
        users = joined(locale, [f"<@{u}>" for u in people])
        context = [t(locale, "replaced_by_many", users=users, period=period) if replaced
                   else t(locale, "submitted_by_many", users=users)]
    context.append(t(locale, "coverage", reported=result.reported, total=result.total))
    if deltas is None:
        context.append(t(locale, "no_previous"))
    else:
        context.append(f"▲▼ {t(locale, 'vs_previous')}")
    if closed:
        context.append(t(locale, "closed_note"))
    blocks.append({"type": "context", "elements": [mrkdwn(x) for x in context]})
    overall_txt = f"{result.overall:.1f}/10" if result.overall is not None else t(locale, "not_reported")
    text = t(locale, "result_title", period=period, team=escape(team.name))  # a message's text is mrkdwn
    return f"{text}: {t(locale, 'overall')} {overall_txt}", blocks


def moved_text(locale: str, change: float | None, pending: bool = False) -> str:
    """Whether an action's area moved: its score's change from the quarter it was decided on to the next."""
    if pending:
        return t(locale, "moved_pending")
    if change is None:
        return t(locale, "moved_unknown")
    if change > 0:
        return t(locale, "moved_up", delta=f"{change:.1f}")
    if change < 0:
        return t(locale, "moved_down", delta=f"{-change:.1f}")
    return t(locale, "moved_same")


def actions_button(locale: str, team: Team, quarter: Quarter, area: str | None) -> dict[str, Any]:
    """「改善アクションを登録」 under a result post: opens the actions modal for that quarter's result."""
    value = {"team": team.ref.id, "quarter": str(quarter)} | ({"area": area} if area else {})
    return {
        "type": "actions",
        "block_id": "kpi_actions",
        "elements": [{"type": "button", "action_id": ACTIONS_ACTION, "text": plain(t(locale, "actions_button")),
                      "value": json.dumps(value)}],
    }


def with_detail_button(locale: str, team: Team, quarter: Quarter, actions: dict[str, Any]) -> dict[str, Any]:
    """The actions block under a result with 「内訳を見る」 added: the breakdown, to whoever asks."""
    value = json.dumps({"team": team.ref.id, "quarter": str(quarter)})
    button = {"type": "button", "action_id": DETAIL_ACTION, "text": plain(t(locale, "detail_button")), "value": value}
    return {**actions, "elements": [*actions.get("elements", []), button]}


def detail_blocks(catalog: Catalog, locale: str, team: Team, quarter: Quarter,
                  result: KpiResult) -> tuple[str, list[dict[str, Any]]]:
    """The breakdown of a result: per area its score, per indicator its value, what it was scored against
    (the target, or last quarter's or last year's figure) and its score; a reference figure as such."""
    title = t(locale, "detail_title", period=period_label(locale, quarter, team.fy_start))
    blocks: list[dict[str, Any]] = [section(title)]
    for area in result.areas:
        score = t(locale, "not_reported") if area.score is None else f"{area.score:.1f}/10"
        lines = [t(locale, "detail_area", area=catalog.name(area.area, locale), score=score)]
        for row in area.indicators:
            name = catalog.name(row.key, locale)
            if row.value is None or row.score is None:
                lines.append(t(locale, "detail_blank", name=name))
                continue
            value = figure(catalog, locale, row.key, row.value)
            if not row.counted:
                lines.append(t(locale, "detail_reference", name=name, value=value) + f" ({row.score}/10)")
                continue
            lines.append(t(locale, "detail_line", name=name, value=value, basis=t(locale, f"detail_basis_{row.basis}"),
                           target=figure(catalog, locale, row.key, row.target), score=f"{row.score}/10"))
        blocks.append(section("\n".join(lines)))
    blocks.append({"type": "context", "elements": [mrkdwn(t(locale, "detail_rules"))]})
    return title, blocks


def weakest_figure(catalog: Catalog, locale: str, result: KpiResult) -> str:
    """The figure that pulled the weakest area down, with its value against its target (or against
    last quarter's figure, for the improve rule)."""
    assert result.weakest_figure is not None
    row = result.indicator(result.weakest_figure)
    assert row.value is not None and row.score is not None and row.score < MAX_SCORE
    key = "weakest_figure_previous" if row.basis == "previous" else "weakest_figure"
    return t(locale, key, name=catalog.name(row.key, locale), value=figure(catalog, locale, row.key, row.value),
             target=figure(catalog, locale, row.key, row.target), score=row.score)


def history_blocks(
    catalog: Catalog,
    locale: str,
    team: Team,
    rows: Sequence[tuple[Quarter, KpiResult]],
    actions: Sequence[tuple[Quarter, Action, float | None, bool]] = (),
) -> tuple[str, list[dict[str, Any]]]:
    """The team's trend; ``actions``: (the quarter whose result they were decided on, the action, the
    change of its area by the next quarter, whether that quarter is still to be reported)."""
    title = t(locale, "history_title", team=escape(team.name))
    if not rows:
        return title, [section(title), section(t(locale, "history_empty"))]
    blocks = [section(title), section(history_area_lines(catalog, locale, rows))]
    if actions:
        rows_text = [t(locale, "history_action_line", period=months_label(locale, q),
                       area=catalog.name(a.area, locale), what=escape(a.what), owner=a.owner, due=a.due,
                       moved=moved_text(locale, change, pending)) for q, a, change, pending in actions]
        text = t(locale, "history_actions")
        for row in rows_text:  # newest last; a section holds 3,000 characters
            if len(text) + len(row) + 1 > 2900:
                break
            text += "\n" + row
        blocks.append(section(text))
    return title, blocks


def history_area_lines(catalog: Catalog, locale: str, rows: Sequence[tuple[Quarter, KpiResult]]) -> str:
    """The trend as one line per area (a table does not line up in Slack's proportional font): the
    quarters once, oldest first, then each area's scores in that order and where the last one went."""
    def cell(score: float | None) -> str:
        return "-" if score is None else f"{score:.1f}"

    def trend(scores: Sequence[float | None]) -> str:
        known = [x for x in scores if x is not None]
        if len(known) < 2:
            return ""
        return " ↗" if known[-1] > known[-2] else (" ↘" if known[-1] < known[-2] else " →")

    lines = [" → ".join(months_label(locale, q) for q, _ in rows)]
    series = [(catalog.name(a.key, locale), [res.area(a.key).score for _, res in rows]) for a in catalog.areas]
    series.append((t(locale, "overall"), [res.overall for _, res in rows]))
    for name, scores in series:
        lines.append(f"*{name}*  " + " → ".join(cell(x) for x in scores) + trend(scores))
    return "\n".join(lines)


def owners_modal(catalog: Catalog, locale: str, team: Team, owners: Mapping[str, str]) -> dict[str, Any]:
    """One optional user picker per area (block and action owner:<area>), the current owner preselected."""
    blocks: list[dict[str, Any]] = [section(t(locale, "owners_intro"))]
    for area in catalog.areas:
        element: dict[str, Any] = {"type": "users_select", "action_id": f"owner:{area.key}"}
        if owners.get(area.key):
            element["initial_user"] = owners[area.key]
        blocks.append({"type": "input", "block_id": f"owner:{area.key}", "optional": True,
                       "label": plain(t(locale, "owners_label", area=catalog.name(area.key, locale))[:2000]),
                       "element": element})
    return {
        "type": "modal",
        "callback_id": OWNERS_CALLBACK,
        "title": plain(t(locale, "owners_title")),
        "submit": plain(t(locale, "save")),
        "close": plain(t(locale, "cancel")),
        "private_metadata": json.dumps({"team": team.ref.id}),
        "blocks": blocks,
    }


def chosen_user(state: Mapping[str, Any], block_id: str) -> Any:
    """What a user picker (its action ID is its block's) holds, as sent: None when nothing is chosen."""
    return _input_value(state, block_id, block_id).get("selected_user")


def parse_user(state: Mapping[str, Any], block_id: str) -> str | None:
    """A user picker's choice: a Slack user ID, or None (nothing chosen, or not shaped as one)."""
    value = chosen_user(state, block_id)
    if isinstance(value, str) and 2 <= len(value) <= 32 and value[0] in "UW" and value.isalnum():
        return value
    return None


def actions_modal(catalog: Catalog, locale: str, team: Team, quarter: Quarter, area: str | None) -> dict[str, Any]:
    """One to three actions for an area: what (text), owner (user picker), due date (date picker).
    The first is required; the others are optional, each complete or blank."""
    options = [{"text": plain(catalog.name(a.key, locale)[:75]), "value": a.key} for a in catalog.areas]
    area_select: dict[str, Any] = {"type": "static_select", "action_id": "a", "options": options}
    if area in catalog.area_keys:
        area_select["initial_option"] = next(o for o in options if o["value"] == area)
    blocks: list[dict[str, Any]] = [
        section(t(locale, "actions_intro", period=period_label(locale, quarter, team.fy_start))),
        {"type": "input", "block_id": "area", "label": plain(t(locale, "action_area")), "element": area_select},
    ]
    for n in range(1, ACTIONS_PER_MODAL + 1):
        optional = n > 1
        if optional:
            blocks.append({"type": "divider"})
        blocks += [
            {"type": "input", "block_id": f"what:{n}", "optional": optional,
             "label": plain(t(locale, "action_what", n=n)),
             "element": {"type": "plain_text_input", "action_id": f"what:{n}", "max_length": MAX_ACTION_CHARS}},
            {"type": "input", "block_id": f"owner:{n}", "optional": optional,
             "label": plain(t(locale, "action_owner", n=n)),
             "element": {"type": "users_select", "action_id": f"owner:{n}"}},
            {"type": "input", "block_id": f"due:{n}", "optional": optional,
             "label": plain(t(locale, "action_due", n=n)), "element": {"type": "datepicker", "action_id": f"due:{n}"}},
        ]
    return {
        "type": "modal",
        "callback_id": ACTIONS_CALLBACK,
        "title": plain(t(locale, "actions_title")),
        "submit": plain(t(locale, "save")),
        "close": plain(t(locale, "cancel")),
        "private_metadata": json.dumps({"team": team.ref.id, "quarter": str(quarter)}),
        "blocks": blocks,
    }


def parse_actions(
    locale: str, state: Mapping[str, Any], today: str, areas: Sequence[str]
) -> tuple[str | None, list[tuple[str, str, str]], dict[str, str]]:
    """A submitted actions modal -> (area, [(what, owner, due)], errors keyed by block_id). ``today``:
    the team's date (YYYY-MM-DD); a due date before it is refused."""
    import datetime as dt

    errors: dict[str, str] = {}
    option = _input_value(state, "area", "a").get("selected_option")
    area = option.get("value") if isinstance(option, Mapping) else None
    if area not in areas:
        errors["area"] = t(locale, "action_area")
        area = None
    rows: list[tuple[str, str, str]] = []
    for n in range(1, ACTIONS_PER_MODAL + 1):
        raw = _input_value(state, f"what:{n}", f"what:{n}").get("value")
        what = " ".join(raw.split())[:MAX_ACTION_CHARS] if isinstance(raw, str) else ""
        owner = parse_user(state, f"owner:{n}")
        due_raw = _input_value(state, f"due:{n}", f"due:{n}").get("selected_date")
        due = due_raw if isinstance(due_raw, str) else ""
        if n > 1 and not what and owner is None and not due:
            continue  # an optional action left blank
        if not what:
            errors[f"what:{n}"] = t(locale, "err_action_what")
        if owner is None:
            errors[f"owner:{n}"] = t(locale, "err_action_owner")
        try:
            if dt.date.fromisoformat(due).isoformat() != due:
                raise ValueError(due)
            if due < today:
                errors[f"due:{n}"] = t(locale, "err_due_past")
        except ValueError:
            errors[f"due:{n}"] = t(locale, "err_action_due")
        if owner is not None and what:
            rows.append((what, owner, due))
    return area, rows, errors


def actions_post(
    catalog: Catalog, locale: str, team: Team, quarter: Quarter, area: str, actions: Sequence[Action], by: str
) -> tuple[str, list[dict[str, Any]]]:
    lines = "\n".join(t(locale, "action_line", what=escape(a.what), owner=a.owner, due=a.due) for a in actions)
    text = t(locale, "actions_post", user=by, period=period_label(locale, quarter, team.fy_start),
             area=catalog.name(area, locale), lines=lines)
    return text, [section(text)]


def owners_post(catalog: Catalog, locale: str, owners: Mapping[str, str], by: str) -> tuple[str, list[dict[str, Any]]]:
    if not owners:
        text = t(locale, "owners_cleared_post", user=by)
    else:
        text = t(locale, "owners_post", user=by, lines=owner_lines(catalog, locale, owners))
    return text, [section(text)]


def owner_lines(catalog: Catalog, locale: str, owners: Mapping[str, str]) -> str:
    return "\n".join(t(locale, "owner_line", area=catalog.name(a, locale), user=owners[a]) if owners.get(a)
                     else t(locale, "owner_none", area=catalog.name(a, locale)) for a in catalog.area_keys)


def missing_text(catalog: Catalog, locale: str, missing: Sequence[str], owners: Mapping[str, str]) -> str:
    """Areas still to report, each with its owner mentioned: 「データ品質（@佐藤）、ROI」."""
    return joined(locale, [t(locale, "missing_owned", area=catalog.name(a, locale), user=owners[a]) if owners.get(a)
                           else catalog.name(a, locale) for a in missing])


def reminder_message(
    catalog: Catalog | None,
    locale: str,
    team: Team,
    asked: Quarter,
    kind: str,
    *,
    owners: Mapping[str, str] | None = None,
    missing: Sequence[str] = (),
    actions: Sequence[Action] = (),
) -> tuple[str, list[dict[str, Any]]]:
    """A reminder in the team's channel. The kickoff names each area's owner and lists the actions
    decided last quarter; a nudge mentions only the owners of the areas still missing."""
    period = period_label(locale, asked, team.fy_start)
    text = t(locale, "remind_kickoff" if kind == "kickoff" else "remind_nudge", period=period)
    blocks: list[dict[str, Any]] = [section(text)]
    if catalog is not None and owners:
        if kind == "kickoff":
            blocks.append(section(t(locale, "kickoff_owners", lines=owner_lines(catalog, locale, owners))))
        elif missing:
            blocks.append(section(t(locale, "nudge_missing", missing=missing_text(catalog, locale, missing, owners))))
    if catalog is not None and kind == "kickoff" and actions:
        lines = "\n".join(t(locale, "kickoff_action_line", area=catalog.name(a.area, locale), what=escape(a.what),
                             owner=a.owner, due=a.due) for a in actions)
        blocks.append(section(t(locale, "kickoff_actions", lines=lines)))
    return text, blocks


def home_view(
    catalog: Catalog, locale: str, rows: Sequence[tuple[Team, Quarter, bool, Quarter | None, KpiResult | None]]
) -> dict[str, Any]:
    """rows: (team, the quarter due (the last ended), reported?, latest reported quarter, its result)."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": plain(t(locale, "home_title"))},
        section(t(locale, "home_intro")),
    ]
    if not rows:
        blocks.append(section(t(locale, "home_none")))
    for team, due, reported, latest_q, latest in rows[:30]:
        period = period_label(locale, due, team.fy_start)
        status = t(locale, "home_reported" if reported else "home_missing", period=period)
        mark = "✅" if reported else "⏳"
        text = f"*{escape(team.name)}*  <#{team.ref.channel}>\n{mark} {status}"
        if latest is not None and latest_q is not None and latest.overall is not None:
            text += "\n" + t(locale, "home_latest", period=period_label(locale, latest_q, team.fy_start),
                              score=f"{latest.overall:.1f}")
            text += "\n" + " ".join(
                f"{catalog.name(a.area, locale)} {'-' if a.score is None else f'{a.score:.1f}'}" for a in latest.areas
            )
        blocks.append({"type": "divider"})
        blocks.append(section(text))
    return {"type": "home", "blocks": blocks}


def report_button(locale: str, team: Team, quarter: Quarter) -> dict[str, Any]:
    return {
        "type": "actions",
        "block_id": "kpi_open",
        "elements": [{
            "type": "button",
            "style": "primary",
            "action_id": OPEN_REPORT_ACTION,
            "text": plain(t(locale, "report_button")),
            "value": json.dumps({"team": team.ref.id, "quarter": str(quarter)}),
        }],
    }


# ---- the diagnosis ------------------------------------------------------------------------------


def diagnosis_message(script: Script, outputs: Sequence[Output]) -> tuple[str, list[dict[str, Any]]]:
    """All outputs of one step as one Slack message (one post = one delivery to check)."""
    blocks: list[dict[str, Any]] = []
    texts: list[str] = []
    numbered = 0
    for out in outputs:
        match out:
            case OptinOffer() | FollowOffer() | FollowStep():
                continue  # the quarterly retake reminder and the follow-ups are LINE features
            case Result(answers=answers, prev=prev, peers=peers):
                text, result_blocks = diagnosis_result(script, answers, prev, peers)
                texts.append(text)
                blocks += result_blocks
            case ConsultAck():
                v = views.consult_view(script, out)
                texts.append(v.text)
                blocks.append(section(v.text))
                if v.url:
                    blocks.append({"type": "actions", "block_id": f"consult-{len(blocks)}", "elements": [
                        {"type": "button", "action_id": CONSULT_URL_ACTION, "text": plain(v.url_label[:75]),
                         "url": v.url, "style": "primary"}]})
            case (Greeting() | Offer() | Notice() | Question() | Resume() | ConfirmRestart() | Advice() | DoneHelp()
                  | Reminder() | Definition() | Erasure() | Heard() | Slots() | BookingNote() | Qualify()):
                body = views.plain_text(script, out)
                texts.append(body)
                blocks.append(section(body))
            case _:
                assert_never(out)
        buttons = views.buttons_for(script, out)
        if buttons:
            blocks.append({
                "type": "actions",
                "block_id": f"dx-{len(blocks)}",
                "elements": [
                    {"type": "button", "action_id": f"{DIAGNOSIS_ACTION}:{i}", "text": plain(b.label[:75]),
                     "value": b.data}
                    for i, b in enumerate(buttons, start=numbered)
                ],
            })
            numbered += len(buttons)  # action ids are unique in the whole message (the result's, then others)
    return "\n".join(texts)[:3000], blocks


def diagnosis_result(script: Script, answers: str, prev: str = "",
                     peers: tuple[tuple[int, int], ...] = ()) -> tuple[str, list[dict[str, Any]]]:
    """The result, the news first: tier, A count and how close the next tier is; the comparison with the
    result before (on a retake); the point to fix with its advice; the 90-day plan; the framing, the tier's
    text and next theme; the ten answers by topic last (each non-A one has an advice button below)."""
    v = views.result_view(script, answers, prev, peers)
    marks = {"A": "🟢", "B": "🟡", "C": "🟠", "D": "⚪"}
    head = f"*{v.label}*  {v.count_line}" + (f"\n{v.closeness}" if v.closeness else "")
    point = f"*{v.point_heading}*" + (f"\n*{v.point_title}*" if v.point_title else "") + f"\n{v.point_text}"
    point += f"\n_{v.point_peer}_" if v.point_peer else ""
    steps = "\n".join(f"*{p.when}｜{p.title}*\n{p.step}" + (f"\n_{p.peer}_" if p.peer else "") for p in v.plan)
    rows = "\n".join(f"{marks[r.letter]} {r.letter}  Q{r.q + 1} {r.topic}" for r in v.rows)
    blocks = [
        {"type": "header", "text": plain(f"{v.heading}: {v.label}"[:150])},
        section(head),
        *([section(f"*{v.comparison[0]}*\n" + "\n".join(v.comparison[1:]))] if v.comparison else []),
        section(point),
        *([section(f"*{v.plan_heading}*\n{steps}")] if v.plan else []),
        *([{"type": "context", "elements": [mrkdwn(v.framing[:3000])]}] if v.framing else []),
        section(v.summary),
        section(f"*{v.theme_heading}*\n{v.theme}"),
        section(f"*{v.answers_heading}*\n{rows}" + (f"\n{v.advice_hint}" if v.advice_hint else "")),
    ]
    return v.alt, blocks
