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

MODALITY_COLORS = {"a": "#1f77b4", "v": "#2ca02c", "av": "#d62728", "a only": "#17becf", "v only": "#bcbd22"}


def _subplots(nrows=1, ncols=1, *, figsize, margins=None, **kwargs):
    """matplotlib's object API (no pyplot: no global figure registry, nothing to close, safe in worker threads).

    Without ``margins`` the layout is solved by matplotlib (constrained layout: every text measured once more
    before the figure is drawn): for figures whose labels come from the data (class names). ``margins``: fixed
    margins and gaps in inches (``left``, ``right``, ``top``, ``bottom``, ``wspace``, ``hspace``) for figures
    whose text is known in advance (metric, subset and meta names, titles): about a third cheaper to draw."""
    from matplotlib.figure import Figure  # noqa: PLC0415  matplotlib only when figures are drawn

    if margins is None:
        fig = Figure(figsize=figsize, layout="constrained")
        return fig, fig.subplots(nrows, ncols, **kwargs)
    w, h = figsize
    m = {"left": 0.0, "right": 0.0, "top": 0.0, "bottom": 0.0, "wspace": 0.0, "hspace": 0.0, **margins}
    cell_w = (w - m["left"] - m["right"] - (ncols - 1) * m["wspace"]) / ncols
    cell_h = (h - m["top"] - m["bottom"] - (nrows - 1) * m["hspace"]) / nrows
    fig = Figure(figsize=figsize)
    fig.subplots_adjust(
        left=m["left"] / w,
        right=1 - m["right"] / w,
        top=1 - m["top"] / h,
        bottom=m["bottom"] / h,
        wspace=m["wspace"] / cell_w,
        hspace=m["hspace"] / cell_h,
    )
    return fig, fig.subplots(nrows, ncols, **kwargs)


def _save(fig, out_dir: Path, stem: str) -> dict[str, str]:
    """Write the figure as PNG and SVG, rendering it once per format: one raster draw (which also solves the
    constrained layout, once) gives the PNG's pixels; the SVG is then written with the layout frozen. (Saving each
    format with ``bbox_inches="tight"`` drew the figure four times, and laid out every text each time.)"""
    import matplotlib  # noqa: PLC0415  matplotlib only when figures are drawn
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
    from matplotlib.image import imsave  # noqa: PLC0415

    files = {}
    with matplotlib.rc_context(FIGURE_RC):
        fig.set_dpi(PNG_DPI)
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        png = out_dir / f"{stem}.png"
        imsave(png, np.asarray(canvas.buffer_rgba()), format="png", dpi=PNG_DPI)
        files["png"] = png.name
        fig.set_layout_engine("none")  # keep the positions just solved
        svg = out_dir / f"{stem}.svg"
        fig.savefig(svg, format="svg", metadata={"Date": None})
        files["svg"] = svg.name
    return files


# --------------------------------------------------------------------------- the figures, from plain data
def draw_radar(out_dir: Path, stem: str, *, models, metrics, inputs, norm) -> dict[str, str]:
    """``norm[model, input, metric]``: the values already normalised (1 = best value in the report)."""
    angles = np.linspace(0, 2 * np.pi, len(metrics), endpoint=False).tolist()
    cols = min(3, len(models))
    rows = math.ceil(len(models) / cols)
    # room for the metric names around each circle, the model above it, the title and the legend
    margins = {"left": 0.5, "right": 0.5, "top": 0.8, "bottom": 0.65, "wspace": 0.95, "hspace": 0.75}
    fig, axes = _subplots(
        rows,
        cols,
        subplot_kw={"polar": True},
        figsize=(max(4.2 * cols, 6.2), 4.2 * rows + 0.4),  # at least as wide as the title
        margins=margins,
        squeeze=False,
    )
    colors = {"a": "#1f77b4", "v": "#2ca02c", "av": "#d62728"}
    for i, model in enumerate(models):
        ax = axes[i // cols][i % cols]
        for j, inp in enumerate(inputs):
            v = np.asarray(norm[i][j], dtype=float).tolist()
            ax.plot(angles + angles[:1], v + v[:1], color=colors.get(inp), label=f"input {inp}")
            ax.fill(angles + angles[:1], v + v[:1], color=colors.get(inp), alpha=0.1)
        ax.set_xticks(angles)
        ax.set_xticklabels(metrics, fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.set_yticks([0.25, 0.5, 0.75, 1.0])
        ax.set_yticklabels([])
        ax.set_title(str(model), fontsize=10)
    for k in range(len(models), rows * cols):
        axes[k // cols][k % cols].set_visible(False)
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=len(inputs), fontsize=8)
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
    for k, subset in enumerate(subsets):
        ax = axes[0][k]
        for i, model in enumerate(models):
            ax.bar(x + (i - (len(models) - 1) / 2) * width, list(values[k][i]), width, label=str(model))
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xticks(x)
        ax.set_xticklabels([m.replace("_", " ") for m in metas], fontsize=8)
        ax.set_title(f"subset {subset}", fontsize=10)
    axes[0][0].set_ylabel("ΔF1 (with − without), points")
    axes[0][-1].legend(fontsize=7, loc="best")
    return _save(fig, out_dir, stem)


def draw_class_frequency(out_dir: Path, stem: str, *, av, a, v, top_names, clips) -> dict[str, str]:
    """``av``/``a``/``v``: clips per class (AV, A only, V only) with the classes sorted by their total, most
    frequent first; ``top_names``: the names of the first ones (named in the lower panel)."""
    av, a, v = (np.asarray(x) for x in (av, a, v))
    n = len(av)
    fig, (ax1, ax2) = _subplots(2, 1, figsize=(13, 8.5), gridspec_kw={"height_ratios": [1, 1.4]})
    # all classes: one filled step outline per modality (3 artists instead of 3 x 309 bars)
    edges = np.arange(n + 1) - 0.5
    base = np.zeros(n)
    for vals, color, name in ((av, "#d62728", "AV"), (a, "#1f77b4", "A only"), (v, "#2ca02c", "V only")):
        top_ = base + vals
        ax1.stairs(top_, edges, baseline=base, fill=True, color=color, label=name)
        base = top_
    ax1.set_xlim(-0.5, n - 0.5)
    ax1.set_xticks([])
    ax1.set_ylabel("clips")
    ax1.set_title(f"Class frequency by modality, all {n} classes ({clips} clips)", fontsize=10)
    ax1.legend(fontsize=8)
    t = len(top_names)
    xt = np.arange(t)
    ax2.bar(xt, av[:t], color="#d62728", label="AV")
    ax2.bar(xt, a[:t], bottom=av[:t], color="#1f77b4", label="A only")
    ax2.bar(xt, v[:t], bottom=(av + a)[:t], color="#2ca02c", label="V only")
    ax2.set_xticks(xt)
    ax2.set_xticklabels(list(top_names), rotation=75, ha="right", fontsize=7)
    ax2.set_ylabel("clips")
    ax2.set_title(f"Top {t} classes", fontsize=10)
    return _save(fig, out_dir, stem)


def draw_cooccurrence(out_dir: Path, stem: str, *, cond, names) -> dict[str, str]:
    """``cond[i, j]``: P(class j | class i) of the ``names`` (NaN on the diagonal)."""
    fig, ax = _subplots(figsize=(11, 10))
    im = ax.imshow(cond, cmap="viridis", vmin=0, vmax=1)  # a probability: the scale is 0..1 whatever the data
    ax.set_xticks(np.arange(len(names)))
    ax.set_yticks(np.arange(len(names)))
    ax.set_xticklabels(list(names), rotation=90, fontsize=6)
    ax.set_yticklabels(list(names), fontsize=6)
    ax.set_title(f"Class co-occurrence: P(column | row), {len(names)} classes with most co-occurrences", fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
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
        for subset, ys in lines:
            if subset == key:  # one filled step outline (not one bar per class)
                ax.stairs(
                    ys,
                    np.arange(n + 1) - 0.5,
                    fill=True,
                    color=MODALITY_COLORS.get(subset),
                    alpha=0.35,
                    label=f"{subset} (sorted)",
                )
            else:
                ax.plot(x, ys, ".", markersize=2.5, color=MODALITY_COLORS.get(subset), label=subset)
        ax.set_xlim(-0.5, n - 0.5)
        ax.set_ylim(0, 100)
        ax.set_ylabel("F1 (x100)")
        ax.set_xticks([])
        left_out = panel["left_out"]
        note = f"; {left_out} classes with too little data left out" if left_out else ""
        ax.set_title(f"{panel['model']}: per-class F1, {n} classes sorted by {key} F1{note}", fontsize=9)
        ax.legend(fontsize=7, loc="upper right", ncol=len(lines))
    return _save(fig, out_dir, stem)


def draw_too_little_data(out_dir: Path, stem: str, *, title, message) -> dict[str, str]:
    """A small figure that says there is too little data to draw ``title`` (instead of drawing noise)."""
    fig, ax = _subplots(figsize=(6, 1.6))
    ax.set_axis_off()
    ax.set_title(title, fontsize=10)
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
