"""Report figures drawn from plain data (numpy arrays, lists, strings), in this process or in helper processes.

:mod:`benchmark.report` turns its tables and label sets into the small inputs of each figure (cheap numpy work)
and hands them to :func:`draw` or to a :class:`FigurePool`. A pool draws in separate Python processes, so the
figures are drawn on another core while the report evaluates its models (a thread would share the GIL with the
evaluation). This module imports only the standard library and numpy (matplotlib when a figure is drawn): a
helper process loads this file alone, not the ``benchmark`` package (no pandas, no metrics), and imports
matplotlib while the models are being evaluated.
"""

from __future__ import annotations

import math
import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

FIGURE_RC = {"svg.fonttype": "none", "svg.hashsalt": "avcrowd"}
"""SVG text stays text (not one path per glyph: smaller, faster, searchable); ids are reproducible."""

PNG_DPI = 120
PNG_COMPRESS_LEVEL = 3
"""zlib level of the PNGs (written as RGB): ≈ 45 % less CPU to encode than Pillow's default (6) on RGBA, for files
within ± 15 % of the size."""

EDGE = 0.1
"""Inches left free between the outermost text of a figure and its edge."""

MODALITY_COLORS = {"a": "#1f77b4", "v": "#2ca02c", "av": "#d62728", "a only": "#17becf", "v only": "#bcbd22"}


def _figure(figsize):
    """A figure with its Agg canvas attached at the PNG's resolution, so that its text can be measured before
    it is drawn (by the renderer that then draws the PNG: the text metrics are cached in between). matplotlib's
    object API (no pyplot: no global figure registry, nothing to close, safe in worker threads)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415  matplotlib only when drawing
    from matplotlib.figure import Figure  # noqa: PLC0415

    fig = Figure(figsize=figsize, dpi=PNG_DPI)
    FigureCanvasAgg(fig)
    return fig


def _subplots(nrows=1, ncols=1, *, figsize, margins, **kwargs):
    """A grid of axes with fixed ``margins`` and gaps in inches (``left``, ``right``, ``top``, ``bottom``,
    ``wspace``, ``hspace``), for figures whose text is known in advance (metric, subset and meta names, titles):
    no layout pass (matplotlib's constrained layout measures every text once more before the figure is drawn)."""
    w, h = figsize
    m = {"left": 0.0, "right": 0.0, "top": 0.0, "bottom": 0.0, "wspace": 0.0, "hspace": 0.0, **margins}
    cell_w = (w - m["left"] - m["right"] - (ncols - 1) * m["wspace"]) / ncols
    cell_h = (h - m["top"] - m["bottom"] - (nrows - 1) * m["hspace"]) / nrows
    fig = _figure(figsize)
    fig.subplots_adjust(
        left=m["left"] / w,
        right=1 - m["right"] / w,
        top=1 - m["top"] / h,
        bottom=m["bottom"] / h,
        wspace=m["wspace"] / cell_w,
        hspace=m["hspace"] / cell_h,
    )
    return fig, fig.subplots(nrows, ncols, **kwargs)


def _extent(fig, texts) -> tuple[float, float]:
    """The largest width and the largest height (inches) of the ``texts`` as drawn (rotation included)."""
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in texts if t.get_visible() and t.get_text()]
    return (
        max((b.width for b in boxes), default=0.0) / fig.dpi,
        max((b.height for b in boxes), default=0.0) / fig.dpi,
    )


def _tick_space(axis: str = "x") -> float:
    """Inches between an axis and its tick labels (tick length + padding)."""
    import matplotlib  # noqa: PLC0415

    rc = matplotlib.rcParams
    return (rc[f"{axis}tick.major.size"] + rc[f"{axis}tick.major.pad"]) / 72


def _place(fig, ax, left, bottom, width, height) -> None:
    """Put ``ax`` at this rectangle, in inches from the figure's lower left corner."""
    w, h = fig.get_size_inches()
    ax.set_position((left / w, bottom / h, width / w, height / h))


def _title(ax, text, fontsize) -> None:
    """The axes' title just above it (at the fixed height matplotlib would choose when no tick label is on top,
    without measuring every tick label of the axes at each draw to check)."""
    ax.set_title(text, fontsize=fontsize, y=1.0)


def _bars(ax, x, heights, bottoms, width, color, label=None):
    """Bars as one collection (``Axes.bar`` adds one patch per bar and updates the data limits for each, the
    most expensive part of building a 40-bar chart); the caller sets the axes' limits."""
    from matplotlib.collections import PolyCollection  # noqa: PLC0415

    x = np.asarray(x, dtype=float)
    top = np.asarray(bottoms, dtype=float) + np.asarray(heights, dtype=float)
    x0, x1 = x - width / 2, x + width / 2
    verts = np.stack(
        [np.stack([x0, bottoms], 1), np.stack([x0, top], 1), np.stack([x1, top], 1), np.stack([x1, bottoms], 1)], 1
    )
    bars = PolyCollection(verts, facecolors=color, edgecolors="none", linewidths=0, label=label)
    ax.add_collection(bars, autolim=False)
    return bars


def _stairs(ax, values, edges, *, color, **kwargs):
    """A filled step outline as ``Axes.stairs(..., fill=True)`` draws it (no edge), without updating the data
    limits from each of its steps (a third of building a 300-step outline); the caller sets the limits."""
    from matplotlib.patches import StepPatch  # noqa: PLC0415

    patch = StepPatch(values, edges, fill=True, facecolor=color, linewidth=0, **kwargs)
    ax.add_artist(patch)
    return patch


def _dots(ax, x, y, size, color, label=None):
    """Round dots ``size`` points wide at ``(x, y)`` (NaN: none), drawn as one line of short round-capped dashes:
    a single path in the SVG instead of one ``<use>`` element and style per marker (which was a quarter of
    the per-class figure). Returns a marker-only stand-in for the legend."""
    from matplotlib.lines import Line2D  # noqa: PLC0415

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(y)
    x, y = x[ok], y[ok]
    half = 0.02  # of the distance between two classes: a dash shorter than any pixel, drawn as a dot
    xs = np.column_stack([x - half, x + half, np.full_like(x, np.nan)]).ravel()
    ys = np.column_stack([y, y, np.full_like(y, np.nan)]).ravel()
    (line,) = ax.plot(xs, ys, color=color, linewidth=size, solid_capstyle="round")
    line.set_snap(False)  # snapped to pixel centres, a dash shorter than a pixel would vanish
    return Line2D([], [], linestyle="none", marker=".", markersize=2.5, color=color, label=label)


def _tick_names(ax, which: str, names, *, fontsize, rotation=0, ha=None):
    """Name the positions 0, 1, ... along the bottom (``which="x"``) or the left (``"y"``) of ``ax``: tick marks
    and texts as ``set_xticks`` + ``set_xticklabels`` draw them, but one line of tick markers and one plain text
    per name instead of one ``Tick`` per name (five artists each, all measured at every draw). Returns the
    texts."""
    import matplotlib  # noqa: PLC0415
    from matplotlib.lines import Line2D  # noqa: PLC0415

    rc = matplotlib.rcParams
    size = rc[f"{which}tick.major.size"]
    at = np.arange(len(names))
    if which == "x":
        ax.set_xticks([])
        trans, va, default_ha = ax.get_xaxis_text1_transform(size + rc["xtick.major.pad"])
        marks = Line2D(at, np.zeros(len(at)), transform=ax.get_xaxis_transform(), marker=3)  # TICKDOWN
        xy = [(p, 0) for p in at]
    else:
        ax.set_yticks([])
        trans, va, default_ha = ax.get_yaxis_text1_transform(size + rc["ytick.major.pad"])
        marks = Line2D(np.zeros(len(at)), at, transform=ax.get_yaxis_transform(), marker=0)  # TICKLEFT
        xy = [(0, p) for p in at]
    marks.set(linestyle="none", markersize=size, markeredgewidth=rc[f"{which}tick.major.width"])
    marks.set(color=rc[f"{which}tick.color"], clip_on=False)
    ax.add_artist(marks)
    return [
        ax.text(x, y, str(name), transform=trans, va=va, ha=ha or default_ha, rotation=rotation, fontsize=fontsize)
        for (x, y), name in zip(xy, names)
    ]


def _save(fig, out_dir: Path, stem: str) -> dict[str, str]:
    """Write the figure as PNG (the Agg canvas attached by :func:`_figure`, RGB: the figure is opaque) and SVG,
    rendering it once per format."""
    import matplotlib  # noqa: PLC0415
    from PIL import Image  # noqa: PLC0415  matplotlib's own dependency

    files = {}
    with matplotlib.rc_context(FIGURE_RC):
        fig.canvas.draw()
        png = out_dir / f"{stem}.png"
        rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3]
        Image.fromarray(np.ascontiguousarray(rgb)).save(
            png, format="png", dpi=(PNG_DPI, PNG_DPI), compress_level=PNG_COMPRESS_LEVEL
        )
        files["png"] = png.name
        svg = out_dir / f"{stem}.svg"
        fig.savefig(svg, format="svg", metadata={"Date": None})
        files["svg"] = svg.name
    return files


# --------------------------------------------------------------------------- the figures, from plain data
def draw_radar(out_dir: Path, stem: str, *, models, metrics, inputs, norm) -> dict[str, str]:
    """``norm[model, input, metric]``: the values already normalised (1 = best value in the report).

    The radars are drawn as lines in one plain axes whose units are inches (circles, spokes and names placed
    here), not as polar axes: no polar transforms, ticks or tick-label measurements. The outer radars are placed
    from the measured metric names, so that every name lies inside the figure."""
    from matplotlib.collections import LineCollection  # noqa: PLC0415  matplotlib only when drawing

    angles = np.linspace(0, 2 * np.pi, len(metrics), endpoint=False)
    cos, sin = np.cos(angles), np.sin(angles)
    cols = min(3, len(models))
    rows = math.ceil(len(models) / cols)
    width, height = max(4.2 * cols, 6.2), 4.2 * rows + 0.4  # at least as wide as the title
    radius = 1.5  # inches, for the best value (the outer circle is at 1.05)
    out = 1.05 * radius + 0.06  # where the metric names start
    fig = _figure((width, height))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ha = ["left" if c > 0.1 else "right" if c < -0.1 else "center" for c in cos]
    va = ["bottom" if s > 0.1 else "top" if s < -0.1 else "center" for s in sin]
    names = [[ax.text(0, 0, name, ha=h, va=v, fontsize=8) for name, h, v in zip(metrics, ha, va)] for _ in models]
    # how far the names reach left and right of a radar's centre
    renderer = fig.canvas.get_renderer()
    widths = [t.get_window_extent(renderer).width / fig.dpi for t in names[0]]
    share = {"left": (0.0, 1.0), "center": (0.5, 0.5), "right": (1.0, 0.0)}  # (leftwards, rightwards)
    reach_l = max([1.05 * radius] + [-out * c + w * share[h][0] for c, w, h in zip(cos, widths, ha)])
    reach_r = max([1.05 * radius] + [out * c + w * share[h][1] for c, w, h in zip(cos, widths, ha)])
    if cols > 1:  # the outer radars' names EDGE from the figure's sides
        first = EDGE + reach_l
        pitch = (width - EDGE - reach_r - first) / (cols - 1)
    else:  # centred
        first, pitch = (width + reach_l - reach_r) / 2, 0.0
    grid = {"colors": "#b0b0b0", "linewidths": 0.8}  # matplotlib's grid style
    circle = np.linspace(0, 2 * np.pi, 129)
    ring_x, ring_y = np.cos(circle), np.sin(circle)
    colors = {"a": "#1f77b4", "v": "#2ca02c", "av": "#d62728"}
    handles = []
    for i, model in enumerate(models):
        cx = first + (i % cols) * pitch
        cy = height - 2.4 - (i // cols) * 4.2
        rings = [np.column_stack([cx + r * radius * ring_x, cy + r * radius * ring_y]) for r in (0.25, 0.5, 0.75, 1.0)]
        spokes = [[(cx, cy), (cx + 1.05 * radius * c, cy + 1.05 * radius * s)] for c, s in zip(cos, sin)]
        ax.add_collection(LineCollection(rings + spokes, **grid), autolim=False)
        ax.plot(cx + 1.05 * radius * ring_x, cy + 1.05 * radius * ring_y, color="black", linewidth=0.8)
        for j, inp in enumerate(inputs):
            r = np.asarray(norm[i][j], dtype=float) * radius
            xs, ys = cx + np.append(r * cos, r[0] * cos[0]), cy + np.append(r * sin, r[0] * sin[0])
            (line,) = ax.plot(xs, ys, color=colors.get(inp), label=f"input {inp}")
            ax.fill(xs, ys, color=colors.get(inp), alpha=0.1)
            if i == 0:
                handles.append(line)
        for t, c, s in zip(names[i], cos, sin):
            t.set_position((cx + out * c, cy + out * s))
        # above the metric names near the top of the circle
        ax.text(cx, cy + 1.05 * radius + 0.28, str(model), ha="center", va="baseline", fontsize=10)
    fig.legend(handles, [h.get_label() for h in handles], loc="lower center", ncol=len(inputs), fontsize=8)
    fig.suptitle("Metrics per input modality (normalised to the best value per metric)", fontsize=11, y=0.995)
    return _save(fig, out_dir, stem)


def draw_delta_f1(out_dir: Path, stem: str, *, metas, models, subsets, values) -> dict[str, str]:
    """``values[subset, model, meta]``: ΔF1 in points (NaN where missing)."""
    margins = {"left": 0.75, "right": 0.15, "top": 0.35, "bottom": 0.4, "wspace": 0.15}
    fig, axes = _subplots(
        1, len(subsets), figsize=(4.5 * len(subsets), 3.6), margins=margins, sharey=True, squeeze=False
    )
    width = 0.8 / max(1, len(models))
    x = np.arange(len(metas))
    values = np.asarray(values, dtype=float).reshape(len(subsets), len(models), len(metas))
    shown = values[np.isfinite(values)]
    lo, hi = min(0.0, float(shown.min(initial=0))), max(0.0, float(shown.max(initial=0)))
    span = (hi - lo) or 1.0
    # Axes.bar's limits: 5 % beyond the bars, none beyond zero
    ylim = (lo - 0.05 * span if lo < 0 else 0.0, hi + 0.05 * span if hi > 0 or lo == 0 else 0.0)
    colors = [f"C{i}" for i in range(len(models))]
    for k, subset in enumerate(subsets):
        ax = axes[0][k]
        for i, model in enumerate(models):
            ok = np.isfinite(values[k][i])
            xi = x + (i - (len(models) - 1) / 2) * width
            _bars(ax, xi[ok], values[k][i][ok], np.zeros(ok.sum()), width, colors[i], label=str(model))
        ax.set_xlim(-0.4 - 0.05 * max(len(metas) - 0.2, 1), len(metas) - 0.6 + 0.05 * max(len(metas) - 0.2, 1))
        ax.set_ylim(*ylim)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xticks(x)
        ax.set_xticklabels([m.replace("_", " ") for m in metas], fontsize=8)
        ax.xaxis.set_label_coords(0.5, 0.0)  # no x label: nothing to place below the names
        _title(ax, f"subset {subset}", 10)
    axes[0][0].set_ylabel("ΔF1 (with − without), points")
    axes[0][-1].legend(fontsize=7, loc="best")
    return _save(fig, out_dir, stem)


def draw_class_frequency(out_dir: Path, stem: str, *, av, a, v, top_names, clips) -> dict[str, str]:
    """``av``/``a``/``v``: clips per class (AV, A only, V only) with the classes sorted by their total, most
    frequent first; ``top_names``: the names of the first ones (named in the lower panel).

    The margins are computed from the measured class names (and count labels), not solved by a layout pass:
    every name lies inside the figure."""
    av, a, v = (np.asarray(x) for x in (av, a, v))
    n, t = len(av), len(top_names)
    width, height = 13.0, 8.5
    fig = _figure((width, height))
    ax1, ax2 = fig.add_axes((0, 0, 1, 1)), fig.add_axes((0, 0, 1, 1))
    # all classes: one filled step outline per modality (3 artists instead of 3 x 309 bars)
    edges = np.arange(n + 1) - 0.5
    base = np.zeros(n)
    for vals, color, name in ((av, "#d62728", "AV"), (a, "#1f77b4", "A only"), (v, "#2ca02c", "V only")):
        top_ = base + vals
        _stairs(ax1, top_, edges, baseline=base, color=color, label=name)
        base = top_
    ax1.set_xlim(-0.5, n - 0.5)
    ax1.set_ylim(0, max(1.0, float(base.max(initial=0))) * 1.05)
    ax1.set_xticks([])
    ax1.set_ylabel("clips")
    _title(ax1, f"Class frequency by modality, all {n} classes ({clips} clips)", 10)
    ax1.legend(fontsize=8)
    # the top classes: stacked bars, named
    xt = np.arange(t)
    for vals, bottom, color in ((av, 0, "#d62728"), (a, av, "#1f77b4"), (v, av + a, "#2ca02c")):
        _bars(ax2, xt, vals[:t], np.broadcast_to(bottom, av.shape)[:t], 0.8, color)
    span = max(t - 0.2, 1.0)
    ax2.set_xlim(-0.4 - 0.05 * span, t - 0.6 + 0.05 * span)  # Axes.bar's default margins
    ax2.set_ylim(0, max(1.0, float((av + a + v)[:t].max(initial=0))) * 1.05)
    names = _tick_names(ax2, "x", top_names, fontsize=7, rotation=75, ha="right")
    ax2.xaxis.set_label_coords(0.5, 0.0)  # no x label: nothing to place below the names
    ax2.set_ylabel("clips")
    _title(ax2, f"Top {t} classes", 10)

    # vertical layout from the measured names and titles, then the left margin from the count labels
    _, names_h = _extent(fig, names)
    _, title_h = _extent(fig, [ax1.title, ax2.title])
    title_space = title_h + 6 / 72  # axes.titlepad
    bottom = EDGE + names_h + _tick_space("x")
    top = EDGE + title_space
    gap = title_space + 0.15
    h1 = (height - bottom - top - gap) / 2.4  # height ratios 1 : 1.4
    right = EDGE + 0.1

    def place(left):
        w_ax = width - left - right
        _place(fig, ax1, left, height - top - h1, w_ax, h1)
        _place(fig, ax2, left, bottom, w_ax, 1.4 * h1)

    # the count labels' ticks depend on the axes' heights (known now), not on the left margin: placed at a first
    # guess, measured, placed again
    place(1.0)
    ticks_w, _ = _extent(fig, ax1.get_yticklabels() + ax2.get_yticklabels())
    label_w, _ = _extent(fig, [ax1.yaxis.label])
    left = EDGE + label_w + 4 / 72 + ticks_w + _tick_space("y")  # 4 pt: axes.labelpad
    # the first name, right-aligned at the first bar and slanted to the left, must not stick out either
    first_w, _ = _extent(fig, names[:1])
    lo, hi = ax2.get_xlim()
    at = (0 - lo) / (hi - lo)  # the first bar, as a fraction of the axes' width
    place(max(left, (EDGE + first_w - at * (width - right)) / (1 - at)))
    return _save(fig, out_dir, stem)


def draw_cooccurrence(out_dir: Path, stem: str, *, cond, names) -> dict[str, str]:
    """``cond[i, j]``: P(class j | class i) of the ``names`` (NaN on the diagonal).

    A square heatmap and its colour bar placed from the measured class names (not by a layout pass): every
    name lies inside the figure."""
    width, height = 11.0, 10.0
    fig = _figure((width, height))
    ax = fig.add_axes((0, 0, 1, 1))
    cax = fig.add_axes((0, 0, 1, 1))
    # "none": the SVG holds the 40 x 40 cells (drawn unsmoothed), not an image resampled to the axes' size;
    # the PNG is resampled as before (nearest: every cell is many pixels wide)
    im = ax.imshow(cond, cmap="viridis", vmin=0, vmax=1, interpolation="none")  # a probability: 0..1 always
    column_names = _tick_names(ax, "x", names, fontsize=6, rotation=90)
    row_names = _tick_names(ax, "y", names, fontsize=6)
    ax.xaxis.set_label_coords(0.5, 0.0)  # no axis labels: nothing to place beside the names
    ax.yaxis.set_label_coords(0.0, 0.5)
    _title(ax, f"Class co-occurrence: P(column | row), {len(names)} classes with most co-occurrences", 10)
    fig.colorbar(im, cax=cax)
    cax.yaxis.set_label_coords(1.0, 0.5)

    _, names_h = _extent(fig, column_names)
    names_w, _ = _extent(fig, row_names)
    _, title_h = _extent(fig, [ax.title])
    bar_w, _ = _extent(fig, cax.get_yticklabels())
    left = EDGE + names_w + _tick_space("y")
    bottom = EDGE + names_h + _tick_space("x")
    top = EDGE + title_h + 6 / 72  # axes.titlepad
    bar_gap, bar_width = 0.35, 0.3
    right = EDGE + bar_w + _tick_space("y") + bar_width + bar_gap
    side = min(width - left - right, height - bottom - top)
    left += (width - left - right - side) / 2  # centred across the free width
    _place(fig, ax, left, height - top - side, side, side)
    _place(fig, cax, left + side + bar_gap, height - top - side, bar_width, side)
    return _save(fig, out_dir, stem)


def draw_per_class_f1(out_dir: Path, stem: str, *, panels) -> dict[str, str]:
    """``panels``: one ``{"model", "key", "left_out", "lines": [(subset, F1 x100 per class)]}`` per model, the
    classes sorted by the ``key`` subset's F1 (its line is drawn as a filled step outline)."""
    margins = {"left": 0.75, "right": 0.15, "top": 0.35, "bottom": 0.15, "hspace": 0.4}
    fig, axes = _subplots(len(panels), 1, figsize=(12, 2.6 * len(panels) + 0.6), margins=margins, squeeze=False)
    for ax, panel in zip(axes[:, 0], panels):
        key, lines = panel["key"], panel["lines"]
        n = len(lines[0][1])
        x = np.arange(n)
        handles = []
        for subset, ys in lines:
            if subset == key:  # one filled step outline (not one bar per class)
                step = _stairs(
                    ax,
                    ys,
                    np.arange(n + 1) - 0.5,
                    color=MODALITY_COLORS.get(subset),
                    alpha=0.35,
                    label=f"{subset} (sorted)",
                )
                handles.append(step)
            else:
                handles.append(_dots(ax, x, ys, 2.25, MODALITY_COLORS.get(subset), label=subset))
        ax.set_xlim(-0.5, n - 0.5)
        ax.set_ylim(0, 100)
        ax.set_ylabel("F1 (x100)")
        ax.set_xticks([])
        left_out = panel["left_out"]
        note = f"; {left_out} classes with too little data left out" if left_out else ""
        ax.xaxis.set_label_coords(0.5, 0.0)  # no x label
        _title(ax, f"{panel['model']}: per-class F1, {n} classes sorted by {key} F1{note}", 9)
        ax.legend(handles=handles, fontsize=7, loc="upper right", ncol=len(lines))
    return _save(fig, out_dir, stem)


def draw_too_little_data(out_dir: Path, stem: str, *, title, message) -> dict[str, str]:
    """A small figure that says there is too little data to draw ``title`` (instead of drawing noise)."""
    fig, ax = _subplots(figsize=(6, 1.6), margins={"left": 0.1, "right": 0.1, "top": 0.4, "bottom": 0.1})
    ax.set_axis_off()
    _title(ax, title, 10)
    ax.text(0.5, 0.4, message, ha="center", va="center", fontsize=9, transform=ax.transAxes)
    return _save(fig, out_dir, stem)


DRAWERS = {
    "radar": draw_radar,
    "delta_f1": draw_delta_f1,
    "class_frequency": draw_class_frequency,
    "cooccurrence": draw_cooccurrence,
    "per_class_f1": draw_per_class_f1,
    "too_little_data": draw_too_little_data,
}


def draw(kind: str, out_dir, stem: str, data: dict) -> dict[str, str]:
    """Draw figure ``kind`` from ``data`` into ``out_dir`` as ``stem``.png / .svg; returns ``{format: file}``."""
    return DRAWERS[kind](Path(out_dir), stem, **data)


# --------------------------------------------------------------------------- helper processes
FIGURE_PROCESSES = 2
"""Drawing processes of a :class:`FigurePool` by default: the figures that need only the labels are drawn while
the models are evaluated, the three that need their numbers two at a time afterwards."""

_BOOT = (
    "import importlib.util, sys\n"
    "spec = importlib.util.spec_from_file_location('_benchmark_figures', sys.argv[1])\n"
    "mod = importlib.util.module_from_spec(spec)\n"
    "sys.modules[spec.name] = mod\n"
    "spec.loader.exec_module(mod)\n"
    "mod._helper_main([int(fd) for fd in sys.argv[2:]])\n"
)
"""The helper loads this file alone (not the ``benchmark`` package: no pandas, nothing else imported)."""


class FigureWorkerError(RuntimeError):
    """A figure could not be drawn in a helper process (its traceback is in the message)."""


def _serve(job_fd: int, answer_fd: int) -> None:
    """Read pickled ``(kind, out_dir, stem, data)`` jobs until the pipe closes, draw each, answer
    ``("ok", files)`` or ``("error", traceback)``."""
    with os.fdopen(job_fd, "rb") as jobs, os.fdopen(answer_fd, "wb") as answers:
        while True:
            try:
                kind, out_dir, stem, data = pickle.load(jobs)
            except EOFError:
                return
            try:
                answer = ("ok", draw(kind, out_dir, stem, data))
            except Exception:  # noqa: BLE001  reported to the parent, which raises it
                answer = ("error", traceback.format_exc())
            pickle.dump(answer, answers, protocol=pickle.HIGHEST_PROTOCOL)
            answers.flush()


def _helper_main(fds: list[int]) -> None:
    """The helper process: import matplotlib once (while the parent evaluates), then fork one drawing process
    per further pair of pipes (a copy of this single-threaded process: nothing imported twice); each serves its
    own ``(jobs, answers)`` pipe pair."""
    sys.stdout = sys.stderr  # anything printed goes to stderr
    import matplotlib.backends.backend_agg  # noqa: F401, PLC0415
    import matplotlib.backends.backend_svg  # noqa: F401, PLC0415
    import matplotlib.figure  # noqa: F401, PLC0415
    import matplotlib.image  # noqa: F401, PLC0415

    pairs = list(zip(fds[0::2], fds[1::2]))
    forked = []
    for k in range(1, len(pairs)):
        pid = os.fork()
        if pid == 0:  # the copy: serve pair k only
            for j, pair in enumerate(pairs):
                if j != k:
                    for fd in pair:
                        os.close(fd)
            code = 0
            try:
                _serve(*pairs[k])
            except BaseException:  # noqa: BLE001
                traceback.print_exc()
                code = 1
            sys.stderr.flush()
            os._exit(code)
        forked.append(pid)
    for pair in pairs[1:]:
        for fd in pair:
            os.close(fd)
    code = 0
    try:
        _serve(*pairs[0])
    except BaseException:  # noqa: BLE001
        traceback.print_exc()
        code = 1
    for pid in forked:
        os.waitpid(pid, 0)
    # every figure is written and answered: end without the interpreter's clean-up (unloading matplotlib took
    # ≈ 0.1 s, which the report waited for)
    sys.stderr.flush()
    os._exit(code)


class _Lane:
    """The parent's end of one drawing process: a pipe for jobs, one for answers."""

    def __init__(self, job_w: int, answer_r: int):
        self.jobs = os.fdopen(job_w, "wb")
        self.answers = os.fdopen(answer_r, "rb")

    def call(self, job) -> dict[str, str]:
        try:
            pickle.dump(job, self.jobs, protocol=pickle.HIGHEST_PROTOCOL)
            self.jobs.flush()
            status, value = pickle.load(self.answers)
        except (OSError, EOFError, pickle.UnpicklingError) as exc:
            raise FigureWorkerError(f"figure {job[2]!r}: the drawing process ended ({exc!r})") from None
        if status != "ok":
            raise FigureWorkerError(f"figure {job[2]!r} could not be drawn:\n{value}")
        return value

    def close(self) -> None:
        for fh in (self.jobs, self.answers):
            try:
                fh.close()
            except OSError:
                pass


def _start_helper(processes: int) -> tuple[subprocess.Popen, list[_Lane]]:
    parent_ends, child_ends = [], []
    try:
        for _ in range(processes):
            job_r, job_w = os.pipe()
            answer_r, answer_w = os.pipe()
            parent_ends.append((job_w, answer_r))
            child_ends += [job_r, answer_w]
        env = dict(os.environ)
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env.setdefault(var, "1")
        proc = subprocess.Popen(
            [sys.executable, "-c", _BOOT, os.path.abspath(__file__), *map(str, child_ends)],
            pass_fds=child_ends,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # its own process group: stopped together (os.killpg)
        )
    except OSError:
        for fd in child_ends + [fd for pair in parent_ends for fd in pair]:
            os.close(fd)
        raise
    for fd in child_ends:
        os.close(fd)
    return proc, [_Lane(*pair) for pair in parent_ends]


class FigurePool:
    """Draws figures in ``processes`` processes besides this one (one helper started at once, so that it imports
    matplotlib while the caller goes on, then forked into ``processes`` copies), each figure in whichever is free;
    ``processes=0`` draws in one thread of this process instead. ``submit`` returns a
    :class:`~concurrent.futures.Future` of ``{format: file}``; a figure that fails raises
    :class:`FigureWorkerError` (with the helper's traceback) from ``result()``. Use it as a context manager:
    leaving it waits for the figures submitted (or, on an exception, stops the helpers)."""

    def __init__(self, processes: int = FIGURE_PROCESSES):
        self.processes = max(0, int(processes)) if hasattr(os, "fork") else 0
        self._idle: queue.SimpleQueue = queue.SimpleQueue()
        self._proc: subprocess.Popen | None = None
        self._lanes: list[_Lane] = []
        if self.processes:
            try:
                self._proc, self._lanes = _start_helper(self.processes)
            except OSError:  # no process could be started: draw here
                self.processes = 0
        for lane in self._lanes:
            self._idle.put(lane)
        self._threads = ThreadPoolExecutor(max_workers=max(1, self.processes), thread_name_prefix="figures")
        self._closed = threading.Event()

    def submit(self, kind: str, out_dir, stem: str, data: dict) -> Future:
        return self._threads.submit(self._run, (kind, str(out_dir), stem, data))

    def _run(self, job) -> dict[str, str]:
        if not self.processes:
            return draw(*job)  # one thread: matplotlib's settings are global
        lane = self._idle.get()
        try:
            return lane.call(job)
        finally:
            self._idle.put(lane)

    def close(self, kill: bool = False) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        if kill and self._proc is not None:
            try:  # the helper and its copies: a figure being drawn fails, the ones not started are cancelled
                os.killpg(self._proc.pid, signal.SIGKILL)
            except OSError:
                pass
        self._threads.shutdown(wait=True, cancel_futures=kill)
        for lane in self._lanes:
            lane.close()  # each drawing process reads the end of its jobs and exits
        if self._proc is not None:
            try:
                self._proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close(kill=exc_type is not None)
        return False
