"""The tuner's Pareto front as a figure (matplotlib, Agg backend; pure, no Django): recall on gold against mean
proposals per clip, with axes, ticks and labels, each point numbered as in the front's table, the chosen one marked."""

from __future__ import annotations

import io
from typing import Any, Mapping, Sequence


def pareto_svg(front: Sequence[Mapping[str, Any]], chosen: Mapping[str, Any] | None = None, target=None) -> str:
    """Inline SVG (no XML prolog) of front = [{"mean_size", "recall", ...}] sorted by mean size."""
    import matplotlib  # noqa: PLC0415  (heavy; only the set page draws)

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure  # noqa: PLC0415  (after choosing the backend)

    with matplotlib.rc_context({"svg.hashsalt": "avcrowd", "svg.fonttype": "none"}):  # stable ids, real <text>
        return _draw(Figure, front, chosen, target)


def _draw(Figure, front, chosen, target) -> str:
    fig = Figure(figsize=(6.4, 3.6))
    ax = fig.add_subplot()
    xs = [float(p["mean_size"]) for p in front]
    ys = [float(p["recall"]) for p in front]
    ax.step(xs, ys, where="post", color="#36c", linewidth=1, alpha=0.6)
    ax.plot(xs, ys, "o", color="#36c", markersize=4, label="Pareto front")
    for i, (x, y) in enumerate(zip(xs, ys), start=1):
        ax.annotate(str(i), (x, y), textcoords="offset points", xytext=(3, -10), fontsize=7)
    if chosen:
        ax.plot([chosen["mean_size"]], [chosen["recall"]], "o", color="#c33", markersize=9, label="chosen")
    if target is not None:
        ax.axhline(float(target), color="#888", linestyle="--", linewidth=0.8, label=f"target recall {target}")
    ax.set_xlabel("mean proposals per clip")
    ax.set_ylabel("recall on gold")
    ax.set_xlim(left=0)
    ax.grid(True, linewidth=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    return text[text.index("<svg") :]
