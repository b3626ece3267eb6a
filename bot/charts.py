"""Charts drawn on the server with matplotlib: SVG for the console, PNG for a chat message.

No CDN and no JavaScript: a chart is a file the app makes. Japanese labels render on any machine:
the IPAexGothic font comes with the ``matplotlib-fontja`` package (no system font needed), and in SVG
the text is drawn as outlines, so the browser needs no Japanese font either.

Only matplotlib's object API is used (no pyplot, no global figure state), and one lock serialises
drawing: the web server renders charts from several threads. The output is deterministic (no date
in the metadata, fixed SVG ids), so the same figures give the same bytes.

    bars(labels, series, ...)    grouped or stacked bars, vertical or horizontal
    lines(labels, series, ...)   one line per series over the labels (e.g. quarters)
    radar(axes, series, ...)     one closed line per series around the axes (e.g. the five KPI areas)

Every function draws SVG (the console) or PNG (``fmt="png"``: Slack shows PNG images, not SVG).
"""

from __future__ import annotations

import io
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Literal

Format = Literal["svg", "png"]

# Colours that stay apart for the colour-blind (Okabe-Ito), by the names the product uses.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
COLORS: Mapping[str, str] = {
    "A": "#009E73", "B": "#56B4E9", "C": "#E69F00", "D": "#D55E00",
}
TIER_COLORS: Mapping[str, str] = {"A": "#007a5a", "B": "#2a7ab0", "C": "#b06d00"}  # as the console's tier badges
WIDTH, HEIGHT = 8.0, 3.4  # inches at 100 dpi: 800 x 340 px
RADAR_SIZE = (6.4, 5.0)  # inches: the radar's labels need room around the circle
PNG_DPI = 150

_lock = threading.Lock()
_ready = False


def _setup() -> tuple[Any, Any]:
    """matplotlib with the bundled Japanese font registered (once per process)."""
    global _ready
    import matplotlib
    from matplotlib import font_manager
    from matplotlib.figure import Figure

    if not _ready:
        import matplotlib_fontja  # registers IPAexGothic with matplotlib's font manager

        font_manager.fontManager.addfont(matplotlib_fontja.get_font_ttf_path())
        _ready = True
    return matplotlib, Figure


def _style() -> dict[str, Any]:
    return {
        "font.family": ["IPAexGothic", "sans-serif"],
        "font.size": 10,
        "svg.fonttype": "path",  # text as outlines: no font needed in the browser
        "svg.hashsalt": "crmbot",  # stable element ids
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.edgecolor": "#888888",
        "axes.grid": True,
        "grid.color": "#e5e5e5",
        "axes.axisbelow": True,
        "legend.frameon": False,
        # every text drawn as written: a team name is outside text, and mathtext would draw "$1 $2" in
        # italics and refuse "$\frac$" (the chart never drawn, its job parked)
        "text.parse_math": False,
    }


def _color(name: str, i: int, colors: Mapping[str, str] | None = None) -> str:
    return (colors or COLORS).get(name) or PALETTE[i % len(PALETTE)]


def _render(fig: Any, fmt: Format) -> bytes:
    buf = io.BytesIO()
    meta: dict[str, Any] = {"Date": None} if fmt == "svg" else {}
    fig.savefig(buf, format=fmt, metadata=meta, dpi=100 if fmt == "svg" else PNG_DPI)
    return buf.getvalue()


def _empty(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#888888")
    ax.set_xticks([])
    ax.set_yticks([])


def bars(
    labels: Sequence[str],
    series: Mapping[str, Sequence[float]],
    *,
    title: str = "",
    stacked: bool = False,
    horizontal: bool = False,
    percent: bool = False,
    empty: str = "No data",
    fmt: Format = "svg",
    size: tuple[float, float] = (WIDTH, HEIGHT),
    colors: Mapping[str, str] | None = None,
) -> bytes:
    """Bars per label, one colour per series (``series`` name -> one value per label). ``stacked``
    piles the series; ``percent`` scales each label's bar to 100 % (with ``stacked``); ``colors`` by series
    name (default: A-D as :data:`COLORS`, the rest from :data:`PALETTE`)."""
    matplotlib, Figure = _setup()
    with _lock, matplotlib.rc_context(_style()):
        fig = Figure(figsize=size, layout="constrained")
        ax = fig.add_subplot()
        if title:
            ax.set_title(title, loc="left", fontsize=11)
        n = len(labels)
        if not n or not series or not any(any(v for v in vals) for vals in series.values()):
            _empty(ax, empty)
            return _render(fig, fmt)
        values = {k: [float(x) for x in v] for k, v in series.items()}
        if percent:
            totals = [sum(v[i] for v in values.values()) or 1.0 for i in range(n)]
            values = {k: [100 * x / totals[i] for i, x in enumerate(v)] for k, v in values.items()}
        positions = list(range(n))
        bar = ax.barh if horizontal else ax.bar
        base = [0.0] * n
        width = 0.7 if stacked else 0.8 / len(values)
        for i, (name, vals) in enumerate(values.items()):
            if stacked:
                kwargs = {"left": base} if horizontal else {"bottom": base}
                bar(positions, vals, width, label=name, color=_color(name, i, colors), **kwargs)
                base = [b + v for b, v in zip(base, vals, strict=True)]
            else:
                shifted = [p - 0.4 + width * (i + 0.5) for p in positions]
                bar(shifted, vals, width, label=name, color=_color(name, i, colors))
        ticks = ax.set_yticks if horizontal else ax.set_xticks
        ticks(positions, list(labels))
        if horizontal:
            ax.invert_yaxis()  # the first label on top
            ax.grid(axis="y", visible=False)
        else:
            ax.grid(axis="x", visible=False)
            if n > 12:
                ax.tick_params(axis="x", labelrotation=60, labelsize=8)
        if percent:
            (ax.set_xlim if horizontal else ax.set_ylim)(0, 100)
        elif not horizontal:
            from matplotlib.ticker import MaxNLocator

            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        if len(values) > 1:
            ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
        return _render(fig, fmt)


LINE_STYLES: tuple[Any, ...] = ("-", "--", "-.", ":", (0, (6, 2, 1, 2, 1, 2)))  # one per series, in order
LINE_MARKERS = ("o", "s", "^", "D", "v")
LINE_DODGE = 0.05  # sideways nudge between neighbouring lines, in x units (one per label)


def lines(
    labels: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    *,
    title: str = "",
    y_range: tuple[float, float] | None = None,
    empty: str = "No data",
    fmt: Format = "svg",
    size: tuple[float, float] = (WIDTH, HEIGHT),
    colors: Mapping[str, str] | None = None,
) -> bytes:
    """One line per series over ``labels``; a None value is a gap (e.g. an area not reported)."""
    matplotlib, Figure = _setup()
    with _lock, matplotlib.rc_context(_style()):
        fig = Figure(figsize=size, layout="constrained")
        ax = fig.add_subplot()
        if title:
            ax.set_title(title, loc="left", fontsize=11)
        if not labels or not any(v is not None for vals in series.values() for v in vals):
            _empty(ax, empty)
            return _render(fig, fmt)
        xs = list(range(len(labels)))
        n = len(series)
        for i, (name, vals) in enumerate(series.items()):
            ys = [float("nan") if v is None else float(v) for v in vals]
            # each line its own dash and marker, nudged sideways a little: equal scores never hide a line
            dodge = (i - (n - 1) / 2) * LINE_DODGE if n > 1 else 0.0
            ax.plot([x + dodge for x in xs], ys, marker=LINE_MARKERS[i % len(LINE_MARKERS)],
                    linestyle=LINE_STYLES[i % len(LINE_STYLES)], label=name, color=_color(name, i, colors),
                    linewidth=2, markersize=5, gid=f"series-{i}")
        ax.set_xticks(xs, list(labels))
        if y_range is not None:
            ax.set_ylim(*y_range)
        if len(series) > 1:
            ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
        return _render(fig, fmt)


def radar(
    axes: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    *,
    maximum: float = 10.0,
    title: str = "",
    empty: str = "No data",
    fmt: Format = "svg",
    size: tuple[float, float] = RADAR_SIZE,
    colors: Mapping[str, str] | None = None,
) -> bytes:
    """A radar (spider) chart: one spoke per axis from 0 to ``maximum``, one closed line per series
    (the first filled lightly, the others drawn dashed, so "this quarter against the last" reads at a
    glance). A None value is a gap in its line (e.g. an area not reported)."""
    matplotlib, Figure = _setup()
    with _lock, matplotlib.rc_context(_style()):
        fig = Figure(figsize=size, layout="constrained")
        n = len(axes)
        if n < 3 or not any(v is not None for vals in series.values() for v in vals):
            ax = fig.add_subplot()
            if title:
                ax.set_title(title, loc="left", fontsize=11)
            _empty(ax, empty)
            return _render(fig, fmt)
        import math

        ax = fig.add_subplot(projection="polar")
        if title:
            ax.set_title(title, loc="left", fontsize=11, pad=18)
        ax.set_theta_offset(math.pi / 2)  # the first axis at the top ...
        ax.set_theta_direction(-1)  # ... the others clockwise
        angles = [2 * math.pi * i / n for i in range(n)]
        closed = [*angles, angles[0]]
        for i, (name, vals) in enumerate(series.items()):
            ys = [float("nan") if v is None else float(v) for v in vals]
            color = _color(name, i, colors)
            first = i == 0
            ax.plot(closed, [*ys, ys[0]], color=color, linewidth=2.2 if first else 1.6,
                    linestyle="-" if first else "--", marker="o", markersize=4, label=name)
            if first and all(v is not None for v in vals):
                ax.fill(closed, [*ys, ys[0]], color=color, alpha=0.15)
        ax.set_xticks(angles, list(axes))
        ax.set_ylim(0, maximum)
        ticks = [maximum * k / 5 for k in range(1, 6)]
        ax.set_yticks(ticks, [f"{t:g}" for t in ticks], fontsize=8, color="#666666")
        ax.set_xlim(0, 2 * math.pi)
        ax.set_rlabel_position(180 / n)
        ax.tick_params(axis="x", pad=8)
        ax.spines["polar"].set_color("#bbbbbb")
        if len(series) > 1:
            ax.legend(loc="upper left", bbox_to_anchor=(0.9, 1.12))
        return _render(fig, fmt)
