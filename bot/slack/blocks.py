"""Block Kit for Slack: the KPI modals, the result message, history, App Home, diagnosis messages.

Pure builders over plain data (no Slack client, no Redis): each returns dicts ready for the Web API.
"""

from __future__ import annotations

import json
import math
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from bot import views
from bot.slack.texts import months_label, period_label, t, with_unit
from conversations.content import Script
from conversations.kpi_catalog import Catalog
from conversations.teams import Team
from scoring.kpi import MAX_SCORE, Indicator, KpiResult, target_problem
from scoring.periods import Quarter

REPORT_CALLBACK = "kpi_report"
TARGETS_CALLBACK = "kpi_targets"
DIAGNOSIS_ACTION = "dx"  # action_id prefix of diagnosis buttons
CONSULT_URL_ACTION = "consult_url"  # the booking page's link button (Slack still sends an action: acked)
OPEN_REPORT_ACTION = "kpi_open"
MAX_INPUT_CHARS = 20


def plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text, "emoji": True}


def mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text}


def section(text: str, **extra: Any) -> dict[str, Any]:
    return {"type": "section", "text": mrkdwn(text[:3000]), **extra}


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


def parse_number(text: str | None) -> float | None:
    """'92.5', '９２．５', '1,200', '95%', '−20' -> float; blank -> None; anything else -> ValueError."""
    if text is None:
        return None
    # NFKC turns full-width digits, '．' and '－' into ASCII; the minus sign U+2212 it leaves alone
    s = unicodedata.normalize("NFKC", text).strip().replace(",", "").replace("\u2212", "-")
    if not s:
        return None
    s = s.removesuffix("%").strip()
    if len(s) > MAX_INPUT_CHARS:
        raise ValueError("too long")
    value = float(s)  # ValueError for anything that is not a number
    if not math.isfinite(value):
        raise ValueError("not finite")
    return value


def figure(catalog: Catalog, locale: str, key: str, value: float) -> str:
    """A figure with the indicator's unit in the locale: 「95%」「3.5点」 / "3.5 of 5"."""
    return with_unit(locale, fmt(value), catalog.unit(key, locale))


def _hint(catalog: Catalog, locale: str, ind: Indicator, target: float, defaults: bool) -> str:
    """The indicator's one-line definition, then its target."""
    if ind.rule == "improve":
        key = "improve_default_hint" if defaults else "improve_hint"
    else:
        key = "default_hint" if defaults else "target_hint"
    line = t(locale, key, target=figure(catalog, locale, ind.key, target), direction=t(locale, ind.direction))
    definition = catalog.definition(ind.key, locale)
    return (f"{definition}\n{line}" if definition else line)[:2000]


def _label(catalog: Catalog, locale: str, ind: Indicator) -> str:
    name, unit = catalog.name(ind.key, locale), catalog.unit(ind.key, locale)
    return (f"{name} ({unit})" if locale == "en" else f"{name}（{unit}）")[:2000]


# ---- modals -------------------------------------------------------------------------------------


def _indicator_inputs(
    catalog: Catalog,
    locale: str,
    initial: Mapping[str, float],
    shape: Callable[[Indicator], tuple[bool, float, bool]],
) -> list[dict[str, Any]]:
    """One header per area and one number input per indicator (block ind:<key>, action <key>).
    ``shape(indicator)`` gives (optional, the target shown in the hint, whether it is a default)."""
    blocks: list[dict[str, Any]] = []
    for area in catalog.areas:
        blocks.append({"type": "header", "text": plain(catalog.name(area.key, locale))})
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
) -> dict[str, Any]:
    options = [{"text": plain(period_label(locale, q, team.fy_start)[:75]), "value": str(q)} for q in quarters]
    initial_option = next(o for o in options if o["value"] == str(initial))
    blocks: list[dict[str, Any]] = [
        section(t(locale, "report_intro", team=team.name)),
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
        catalog, locale, values, lambda ind: (not ind.required, targets.get(ind.key, ind.target), False)
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
    blocks: list[dict[str, Any]] = [section(t(locale, "targets_intro", team=team.name))]
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


def parse_figures(
    catalog: Catalog, locale: str, state: Mapping[str, Any], *, as_targets: bool = False
) -> tuple[dict[str, float], dict[str, str]]:
    """The indicator inputs of a submitted modal -> (values, errors keyed by block_id).
    ``as_targets``: the inputs are targets (a scale's target must lie on the better side of its floor)."""
    values: dict[str, float] = {}
    errors: dict[str, str] = {}
    for ind in catalog.indicators:
        block = f"ind:{ind.key}"
        raw = _input_value(state, block, ind.key).get("value")
        try:
            value = parse_number(raw if isinstance(raw, str) or raw is None else str(raw))
        except ValueError:
            errors[block] = t(locale, "err_number")
            continue
        if value is None:
            continue
        if ind.unit == "%" and value > 100 >= ind.maximum:  # a share (growth may pass 100%)
            errors[block] = t(locale, "err_percent")
        elif not ind.minimum <= value <= ind.maximum:
            errors[block] = t(locale, "err_range", min=fmt(ind.minimum), max=fmt(ind.maximum))
        elif as_targets and ind.floor is not None and target_problem(ind, value):
            key = "err_floor_higher" if ind.direction == "higher" else "err_floor_lower"
            errors[block] = t(locale, key, floor=figure(catalog, locale, ind.key, ind.floor))
        else:
            values[ind.key] = value
    return values, errors


def parse_quarter(
    locale: str, state: Mapping[str, Any], running: Quarter
) -> tuple[Quarter | None, dict[str, str]]:
    """The quarter chosen in a report modal; refused unless it has ended (before ``running``)."""
    option = _input_value(state, "quarter", "q").get("selected_option")
    raw = option.get("value") if isinstance(option, Mapping) else None
    try:
        quarter = Quarter.parse(raw if isinstance(raw, str) else "")
    except ValueError:
        return None, {"quarter": t(locale, "err_quarter")}
    if quarter >= running:
        return None, {"quarter": t(locale, "err_running")}
    return quarter, {}


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
) -> tuple[str, list[dict[str, Any]]]:
    period = period_label(locale, quarter, team.fy_start)
    title = t(locale, "result_title", period=period, team=team.name)
    lines = []
    for area in result.areas:
        name = catalog.name(area.area, locale)
        if area.score is None:
            lines.append(f"*{name}*\n{t(locale, 'not_reported')}")
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
    if result.weakest is not None:
        weakest = result.area(result.weakest)
        text = t(locale, "weakest", area=catalog.name(result.weakest, locale), score=f"{weakest.score:.1f}")
        if result.weakest_figure is not None:
            text += "\n" + weakest_figure(catalog, locale, result)
        blocks.append(section(text))
    context = [t(locale, "replaced_by", user=by, period=period) if replaced else t(locale, "submitted_by", user=by)]
    context.append(t(locale, "coverage", reported=result.reported, total=result.total))
    if deltas is None:
        context.append(t(locale, "no_previous"))
    else:
        context.append(f"▲▼ {t(locale, 'vs_previous')}")
    blocks.append({"type": "context", "elements": [mrkdwn(x) for x in context]})
    overall_txt = f"{result.overall:.1f}/10" if result.overall is not None else t(locale, "not_reported")
    return f"{title}: {t(locale, 'overall')} {overall_txt}", blocks


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
    catalog: Catalog, locale: str, team: Team, rows: Sequence[tuple[Quarter, KpiResult]]
) -> tuple[str, list[dict[str, Any]]]:
    title = t(locale, "history_title", team=team.name)
    if not rows:
        return title, [section(title), section(t(locale, "history_empty"))]
    header = "| " + " | ".join(months_label(locale, q) for q, _ in rows)
    lines = [header]

    def cell(score: float | None) -> str:
        return "  -  " if score is None else f"{score:4.1f}"

    for area in catalog.areas:
        scores = [res.area(area.key).score for _, res in rows]
        trend = ""
        known = [s for s in scores if s is not None]
        if len(known) >= 2:
            trend = " ↗" if known[-1] > known[-2] else (" ↘" if known[-1] < known[-2] else " →")
        lines.append(f"{catalog.name(area.key, locale)}: " + " | ".join(cell(s) for s in scores) + trend)
    overall = [res.overall for _, res in rows]
    lines.append(f"{t(locale, 'overall')}: " + " | ".join(cell(s) for s in overall))
    return title, [section(title), section("```" + "\n".join(lines) + "```")]


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
        text = f"*{team.name}*  <#{team.ref.channel}>\n{mark} {status}"
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


def diagnosis_message(script: Script, outputs: Sequence[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """All outputs of one step as one Slack message (one post = one delivery to check)."""
    blocks: list[dict[str, Any]] = []
    texts: list[str] = []
    for out in outputs:
        if out["type"] == "optin_offer":
            continue  # the quarterly retake reminder is a LINE feature
        if out["type"] == "result":
            text, result_blocks = diagnosis_result(script, out["answers"], out.get("prev", ""))
            texts.append(text)
            blocks += result_blocks
        elif out["type"] == "consult_ack":
            v = views.consult_view(script, out)
            texts.append(v.text)
            blocks.append(section(v.text))
            if v.url:
                blocks.append({"type": "actions", "block_id": f"consult-{len(blocks)}", "elements": [
                    {"type": "button", "action_id": CONSULT_URL_ACTION, "text": plain(v.url_label[:75]),
                     "url": v.url, "style": "primary"}]})
        else:
            body = views.plain_text(script, out)
            texts.append(body)
            blocks.append(section(body))
        buttons = views.buttons_for(script, out)
        if buttons:
            blocks.append({
                "type": "actions",
                "block_id": f"dx-{len(blocks)}",
                "elements": [
                    {"type": "button", "action_id": f"{DIAGNOSIS_ACTION}:{i}", "text": plain(b.label[:75]),
                     "value": b.data}
                    for i, b in enumerate(buttons)
                ],
            })
    return "\n".join(texts)[:3000], blocks


def diagnosis_result(script: Script, answers: str, prev: str = "") -> tuple[str, list[dict[str, Any]]]:
    """The result: tier, A count and how close the next tier is, the tier's text and next theme, the point
    to fix with its advice, the ten answers by topic (each non-A one has an advice button below), and the
    comparison with the result before."""
    v = views.result_view(script, answers, prev)
    marks = {"A": "🟢", "B": "🟡", "C": "🟠", "D": "⚪"}
    head = f"*{v.label}*  {v.count_line}" + (f"\n{v.closeness}" if v.closeness else "")
    point = f"*{v.point_heading}*" + (f"\n*{v.point_title}*\n{v.point_text}" if v.point_title else "")
    rows = "\n".join(f"{marks[r.letter]} {r.letter}  Q{r.q + 1} {r.topic}" for r in v.rows)
    blocks = [
        {"type": "header", "text": plain(f"{v.heading}: {v.label}"[:150])},
        section(head),
        *([section(v.framing)] if v.framing else []),
        section(v.summary),
        section(f"*{v.theme_heading}*\n{v.theme}"),
        section(point),
        section(f"*{v.answers_heading}*\n{rows}" + (f"\n{v.advice_hint}" if v.advice_hint else "")),
    ]
    if v.comparison:
        blocks.append(section(f"*{v.comparison[0]}*\n" + "\n".join(v.comparison[1:])))
    return v.alt, blocks
