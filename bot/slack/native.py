"""Slack's native charts and tables: Block Kit's ``data_visualization`` block (a line, bar, area or pie
chart Slack draws in the message) and its ``table`` block, built within Slack's documented limits.

Pure builders over plain data, like :mod:`bot.slack.blocks`. Slack refuses a message with a block
beyond a limit (``invalid_blocks``), so every builder shortens what it is given instead: a label cut
to its length (ending in "…", made unique again), the last points of a series, the first series, the
last rows of a table. A message that carries them also carries the same figures as text (its
``text`` and a section) for screen readers and for clients that draw neither, and a fallback form
without them (:mod:`bot.slack.transport` sends it if Slack refuses the blocks).

The limits, from Slack's reference pages:

- https://docs.slack.dev/reference/block-kit/blocks/data-visualization-block
- https://docs.slack.dev/reference/block-kit/blocks/table-block
- https://docs.slack.dev/reference/block-kit/blocks/data-table-block (the characters of a table)
- https://docs.slack.dev/reference/block-kit/blocks (the blocks of a message)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

# data-visualization-block: "title ... A short label displayed above the chart. Maximum 50 characters."
MAX_CHART_TITLE = 50
# data-visualization-block, Axis Config: x_label and y_label, at most 50 characters each
MAX_AXIS_LABEL = 50
# data-visualization-block: a category, a data point's label, a series' name and a pie segment's label
# hold at most 20 characters
MAX_LABEL = 20
# data-visualization-block: a line, bar or area chart has 1 to 6 series (a pie 1 to 6 segments)
MAX_SERIES = 6
# data-visualization-block, Data Series: 1 to 20 data points, whose labels are the axis' categories
MAX_POINTS = 20
# data-visualization-block: a message holds at most two charts
MAX_CHARTS = 2
# table-block: "Maximum 100 rows. Each row object is an array with a max of 20 table cells";
# column_settings: "Maximum 20 items"
MAX_TABLE_ROWS = 100
MAX_TABLE_COLUMNS = 20
# table-block: a message holds one table (a second one is refused)
MAX_TABLES = 1
# data-table-block: the cells of a table, and of all the tables of a message, hold at most 10,000
# characters; the table block's page names no figure, so its tables are kept under the same one
MAX_TABLE_CHARS = 10_000
# blocks: "You can include up to 50 blocks in each message"
MAX_BLOCKS = 50

CHART = "data_visualization"
TABLE = "table"
NATIVE_TYPES = frozenset({CHART, TABLE, "data_table"})  # what a client before them cannot draw
ELLIPSIS = "…"
EMPTY_CELL = "-"  # a table's raw_text cell needs at least one character

ChartKind = Literal["line", "bar", "area"]
Series = tuple[str, Sequence[float]]  # a series' name, one value per category


def fit(text: str, limit: int) -> str:
    """``text`` on one line, cut to ``limit`` characters (ending in "…" when it was cut)."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + ELLIPSIS


def labels(names: Sequence[str], limit: int = MAX_LABEL) -> list[str]:
    """Each name fitted to ``limit``, and unique: a name that comes out as an earlier one's gets a
    number (Slack tells series and categories apart by their labels)."""
    out: list[str] = []
    for name in names:
        label = fit(name, limit) or EMPTY_CELL
        n = 2
        while label in out:
            suffix = f" {n}"
            label = fit(name, limit - len(suffix)) + suffix
            n += 1
        out.append(label)
    return out


def series_chart(
    kind: ChartKind,
    title: str,
    categories: Sequence[str],
    series: Sequence[Series],
    *,
    x_label: str = "",
    y_label: str = "",
) -> dict[str, Any]:
    """A line, bar or area chart of ``series`` over ``categories``: the first MAX_SERIES series, over the
    last MAX_POINTS categories (a trend keeps its newest points). Every series has a number for every
    category: Slack draws no gap, so leave out what has none."""
    cats = list(categories)[-MAX_POINTS:]
    shown = list(series)[:MAX_SERIES]
    if not cats or not shown:
        raise ValueError("a chart needs at least one category and one series")
    for name, values in shown:
        if len(values) != len(categories):
            raise ValueError(f"series {name[:20]!r}: {len(values)} values for {len(categories)} categories")
    cat_labels = labels(cats)
    data = [
        {"name": name, "data": [{"label": c, "value": round(float(v), 2)}
                                for c, v in zip(cat_labels, list(values)[-len(cats):], strict=True)]}
        for name, (_, values) in zip(labels([n for n, _ in shown]), shown, strict=True)
    ]
    axis: dict[str, Any] = {"categories": cat_labels}
    if x_label:
        axis["x_label"] = fit(x_label, MAX_AXIS_LABEL)
    if y_label:
        axis["y_label"] = fit(y_label, MAX_AXIS_LABEL)
    return {"type": CHART, "title": fit(title, MAX_CHART_TITLE),
            "chart": {"type": kind, "series": data, "axis_config": axis}}


def table(
    header: Sequence[str], rows: Sequence[Sequence[str]], columns: Sequence[Mapping[str, Any]] = ()
) -> dict[str, Any]:
    """A table block: ``header``, then ``rows`` (each cell text; an empty one shows a dash), every row as
    wide as the header. Beyond Slack's limits the last columns and the first rows are left out (give the
    oldest rows first). ``columns``: each column's settings (``align``, ``is_wrapped``)."""
    width = min(len(header), MAX_TABLE_COLUMNS)
    if width == 0:
        raise ValueError("a table needs at least one column")

    def row(cells: Sequence[str]) -> list[str]:
        texts = [" ".join(str(c).split()) or EMPTY_CELL for c in list(cells)[:width]]
        return texts + [EMPTY_CELL] * (width - len(texts))

    head, body = row(header), [row(r) for r in rows][-(MAX_TABLE_ROWS - 1):]
    chars = sum(map(len, head)) + sum(len(c) for r in body for c in r)
    while body and chars > MAX_TABLE_CHARS:
        chars -= sum(map(len, body.pop(0)))
    if chars > MAX_TABLE_CHARS:
        raise ValueError("a table's header alone is over Slack's characters")
    block: dict[str, Any] = {"type": TABLE, "rows": [[{"type": "raw_text", "text": c} for c in r]
                                                     for r in [head, *body]]}
    if columns:
        block["column_settings"] = [dict(c) for c in list(columns)[:width]]
    return block


def without_native(blocks: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """A message's blocks without its charts and tables: its fallback form."""
    return [b for b in blocks if b.get("type") not in NATIVE_TYPES]


def within_limits(blocks: Sequence[dict[str, Any]]) -> bool:
    """Whether one message's blocks keep to the counts Slack allows: blocks, charts, tables."""
    kinds = [b.get("type") for b in blocks]
    return len(blocks) <= MAX_BLOCKS and kinds.count(CHART) <= MAX_CHARTS and kinds.count(TABLE) <= MAX_TABLES
