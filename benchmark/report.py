"""Reports: tables (CSV, Markdown, LaTeX, HTML), figures (PNG + SVG) and ``report.json``.

Pure: takes a :class:`~benchmark.labels.LabelSet` and :class:`~benchmark.predictions.ModelPredictions`,
writes files into a directory. Figures use matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from .evaluate import (
    META_FILTERS,
    PAPER_METRICS,
    delta_f1_table,
    evaluate_stream,
    metric_table,
    select_table,
)
from .labels import META_LABELS, LabelSet, apply_regime
from .metrics import TOP_KS

TABLE_FORMATS = ("csv", "md", "tex", "html")
FIGURE_FORMATS = ("png", "svg")
RADAR_METRICS = ("accuracy", "f1", "f1_macro", "precision", "recall", "jaccard", "hit_rate")


# --------------------------------------------------------------------------- tables
def _flat_columns(df: pd.DataFrame) -> list[str]:
    if isinstance(df.columns, pd.MultiIndex):
        return [" ".join(str(x) for x in col) for col in df.columns]
    return [str(c) for c in df.columns]


def _fmt(v, digits: int) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, (float, np.floating)):
        return f"{v:.{digits}f}"
    return str(v)


def table_to_markdown(df: pd.DataFrame, digits: int = 2) -> str:
    head = [df.index.name or ""] + _flat_columns(df)
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * len(df.columns)) + "|"]
    for idx, row in df.iterrows():
        lines.append("| " + " | ".join([str(idx)] + [_fmt(v, digits) for v in row.tolist()]) + " |")
    return "\n".join(lines) + "\n"


_TEX_ESCAPE = {
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "\\": r"\textbackslash{}",
}


def _tex(s: str) -> str:
    return "".join(_TEX_ESCAPE.get(ch, ch) for ch in str(s))


def table_to_latex(df: pd.DataFrame, digits: int = 1, caption: str | None = None) -> str:
    """A booktabs table; with (metric, subset) columns the metric is a spanning header row."""
    n = len(df.columns)
    out = ["\\begin{table}[t]", "\\centering", "\\begin{tabular}{l" + "r" * n + "}", "\\toprule"]
    if isinstance(df.columns, pd.MultiIndex) and df.columns.nlevels == 2:
        top, spans, start = [], [], 1
        groups = []
        for col in df.columns:
            if groups and groups[-1][0] == col[0]:
                groups[-1][1] += 1
            else:
                groups.append([col[0], 1])
        for name, width in groups:
            top.append(f"\\multicolumn{{{width}}}{{c}}{{{_tex(name)}}}")
            spans.append(f"\\cmidrule(lr){{{start + 1}-{start + width}}}")
            start += width
        out.append(" & " + " & ".join(top) + " \\\\")
        out.append(" ".join(spans))
        out.append(_tex(df.index.name or "") + " & " + " & ".join(_tex(c[1]) for c in df.columns) + " \\\\")
    else:
        out.append(_tex(df.index.name or "") + " & " + " & ".join(_tex(c) for c in _flat_columns(df)) + " \\\\")
    out.append("\\midrule")
    for idx, row in df.iterrows():
        out.append(_tex(idx) + " & " + " & ".join(_tex(_fmt(v, digits)) for v in row.tolist()) + " \\\\")
    out += ["\\bottomrule", "\\end{tabular}"]
    if caption:
        out.append(f"\\caption{{{_tex(caption)}}}")
    out.append("\\end{table}")
    return "\n".join(out) + "\n"


def table_to_html(df: pd.DataFrame, digits: int = 2, table_id: str | None = None) -> str:
    """A plain ``<table class="sortable">``; cells carry ``data-value`` for client-side sorting."""
    attrs = f' id="{html.escape(table_id)}"' if table_id else ""
    out = [f'<table class="sortable metric-table"{attrs}>', "<thead><tr>"]
    for h in [df.index.name or ""] + _flat_columns(df):
        out.append(f'<th scope="col">{html.escape(h)}</th>')
    out.append("</tr></thead><tbody>")
    for idx, row in df.iterrows():
        out.append(f'<tr><th scope="row">{html.escape(str(idx))}</th>')
        for v in row.tolist():
            num = "" if v is None or (isinstance(v, float) and math.isnan(v)) else f' data-value="{float(v)!r}"'
            out.append(f"<td{num}>{html.escape(_fmt(v, digits))}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out) + "\n"


def write_table(df: pd.DataFrame, out_dir: Path, stem: str, caption: str | None = None) -> dict[str, str]:
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {}
    flat = df.copy()
    flat.columns = _flat_columns(df)
    p = out_dir / f"{stem}.csv"
    flat.to_csv(p, float_format="%.6f")
    files["csv"] = p.name
    p = out_dir / f"{stem}.md"
    p.write_text(table_to_markdown(df), encoding="utf-8")
    files["md"] = p.name
    p = out_dir / f"{stem}.tex"
    p.write_text(table_to_latex(df, caption=caption), encoding="utf-8")
    files["tex"] = p.name
    p = out_dir / f"{stem}.html"
    p.write_text(table_to_html(df, table_id=stem), encoding="utf-8")
    files["html"] = p.name
    return files


# --------------------------------------------------------------------------- figures
def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out_dir: Path, stem: str) -> dict[str, str]:
    files = {}
    for ext in FIGURE_FORMATS:
        p = out_dir / f"{stem}.{ext}"
        fig.savefig(
            p, dpi=120 if ext == "png" else None, bbox_inches="tight", metadata={"Date": None} if ext == "svg" else None
        )
        files[ext] = p.name
    _plt().close(fig)
    return files


def radar_figure(
    table: pd.DataFrame,
    out_dir: Path,
    stem: str = "radar",
    metrics: Iterable[str] = RADAR_METRICS,
    inputs=("a", "v", "av"),
) -> dict[str, str]:
    """One radar per model: axes are metrics, one polygon per input modality; every axis is
    normalised by its maximum over all models and inputs (1 = best value in the report)."""
    plt = _plt()
    metrics = [m for m in metrics if m in table.columns.get_level_values(0)]
    models = list(table.index)
    vals = np.array([[[table.loc[m, (met, inp)] for met in metrics] for inp in inputs] for m in models], float)
    scale = np.nanmax(np.where(np.isnan(vals), -np.inf, vals), axis=(0, 1))
    scale[~np.isfinite(scale) | (scale <= 0)] = 1.0
    norm = np.nan_to_num(vals / scale)
    angles = np.linspace(0, 2 * np.pi, len(metrics), endpoint=False).tolist()
    cols = min(3, len(models))
    rows = math.ceil(len(models) / cols)
    fig, axes = plt.subplots(rows, cols, subplot_kw={"polar": True}, figsize=(4.2 * cols, 4.2 * rows), squeeze=False)
    colors = {"a": "#1f77b4", "v": "#2ca02c", "av": "#d62728"}
    for i, model in enumerate(models):
        ax = axes[i // cols][i % cols]
        for j, inp in enumerate(inputs):
            v = norm[i, j].tolist()
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
    fig.suptitle("Metrics per input modality (normalised to the best value per metric)", fontsize=11)
    return _save(fig, out_dir, stem)


def delta_f1_figure(
    delta: pd.DataFrame, out_dir: Path, stem: str = "delta_f1", subsets=("a", "v", "av")
) -> dict[str, str]:
    """Grouped bars: ΔF1 (with − without meta label) per meta label, one panel per subset."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(subsets), figsize=(4.5 * len(subsets), 3.6), sharey=True, squeeze=False)
    metas = [m for m in META_LABELS if m in delta.columns.get_level_values(0)]
    models = list(delta.index)
    width = 0.8 / max(1, len(models))
    x = np.arange(len(metas))
    for k, subset in enumerate(subsets):
        ax = axes[0][k]
        for i, model in enumerate(models):
            vals = [delta.loc[model, (meta, subset)] if (meta, subset) in delta.columns else np.nan for meta in metas]
            ax.bar(x + (i - (len(models) - 1) / 2) * width, vals, width, label=str(model))
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xticks(x)
        ax.set_xticklabels([m.replace("_", " ") for m in metas], fontsize=8)
        ax.set_title(f"subset {subset}", fontsize=10)
    axes[0][0].set_ylabel("ΔF1 (with − without), points")
    axes[0][-1].legend(fontsize=7, loc="best")
    return _save(fig, out_dir, stem)


def class_frequency_figure(
    labels: LabelSet, out_dir: Path, stem: str = "class_frequency", top: int = 40
) -> dict[str, str]:
    """Clips per class split by modality tag (A only / V only / AV): all classes sorted, and the top ones named."""
    plt = _plt()
    a = labels.has_a.sum(0)
    v = labels.has_v.sum(0)
    av = labels.has_av.sum(0)
    total = a + v + av
    order = np.argsort(-total, kind="stable")
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(13, 8.5), gridspec_kw={"height_ratios": [1, 1.4]})
    x = np.arange(len(order))
    ax1.bar(x, av[order], color="#d62728", width=1.0, label="AV")
    ax1.bar(x, a[order], bottom=av[order], color="#1f77b4", width=1.0, label="A only")
    ax1.bar(x, v[order], bottom=(av + a)[order], color="#2ca02c", width=1.0, label="V only")
    ax1.set_xlim(-0.5, len(order) - 0.5)
    ax1.set_xticks([])
    ax1.set_ylabel("clips")
    ax1.set_title(f"Class frequency by modality, all {len(order)} classes ({len(labels)} clips)", fontsize=10)
    ax1.legend(fontsize=8)
    t = order[:top]
    xt = np.arange(len(t))
    ax2.bar(xt, av[t], color="#d62728", label="AV")
    ax2.bar(xt, a[t], bottom=av[t], color="#1f77b4", label="A only")
    ax2.bar(xt, v[t], bottom=(av + a)[t], color="#2ca02c", label="V only")
    ax2.set_xticks(xt)
    ax2.set_xticklabels([labels.classes[i] for i in t], rotation=75, ha="right", fontsize=7)
    ax2.set_ylabel("clips")
    ax2.set_title(f"Top {len(t)} classes", fontsize=10)
    fig.tight_layout()
    return _save(fig, out_dir, stem)


def cooccurrence_matrix(labels: LabelSet) -> np.ndarray:
    """Clips in which both classes are labelled (any modality), int [C, C]."""
    T = labels.truth("all").astype(np.int32)
    return T.T @ T


def cooccurrence_figure(labels: LabelSet, out_dir: Path, stem: str = "cooccurrence", top: int = 40) -> dict[str, str]:
    """Heatmap of P(column class | row class) for the ``top`` classes that co-occur most."""
    plt = _plt()
    M = cooccurrence_matrix(labels).astype(float)
    diag = np.diag(M).copy()
    off = M - np.diag(diag)
    order = np.argsort(-off.sum(1), kind="stable")[:top]
    sub = M[np.ix_(order, order)]
    cond = np.divide(sub, np.diag(sub)[:, None], out=np.zeros_like(sub), where=np.diag(sub)[:, None] > 0)
    np.fill_diagonal(cond, np.nan)
    fig, ax = plt.subplots(figsize=(11, 10))
    im = ax.imshow(
        cond, cmap="viridis", vmin=0, vmax=max(1e-9, float(np.nanmax(cond)) if np.isfinite(cond).any() else 1)
    )
    names = [labels.classes[i] for i in order]
    ax.set_xticks(np.arange(len(order)))
    ax.set_yticks(np.arange(len(order)))
    ax.set_xticklabels(names, rotation=90, fontsize=6)
    ax.set_yticklabels(names, fontsize=6)
    ax.set_title(f"Class co-occurrence: P(column | row), {len(order)} classes with most co-occurrences", fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return _save(fig, out_dir, stem)


# --------------------------------------------------------------------------- report
def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return None if math.isnan(float(obj)) else float(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def _table_json(df: pd.DataFrame) -> dict:
    return {
        "index": [str(i) for i in df.index],
        "columns": [list(map(str, c)) if isinstance(c, tuple) else [str(c)] for c in df.columns],
        "data": _jsonable(df.to_numpy().tolist()),
    }


def write_report(
    out_dir,
    labels: LabelSet,
    models,
    *,
    regime: str = "default",
    confusion: str = "v1.0",
    meta: bool = True,
    figures: bool = True,
    params: dict | None = None,
    label_source: str | None = None,
    class_names: list[str] | None = None,
    prefetch: bool = True,
) -> dict:
    """Evaluate ``models`` on ``labels`` and write the whole report into ``out_dir``.

    ``models``: :class:`ModelPredictions`, predictions file paths (read with ``class_names``, default the
    label set's classes) or callables returning a model (e.g. :class:`benchmark.io.PredictionsFile`). They
    are loaded and evaluated one after another, the next one read in a background thread with ``prefetch``
    (:func:`benchmark.evaluate.evaluate_stream`): only each model's numbers are kept, so files never sit
    in memory more than two at a time.

    Writes ``report.json`` (parameters, results as fractions, tables ×100, list of files), tables
    ``paper``, ``metrics`` (all metrics), ``topk`` and, with ``meta``, ``meta_f1`` / ``delta_f1`` in
    CSV/Markdown/LaTeX/HTML, and figures ``radar``, ``delta_f1``, ``class_frequency``,
    ``cooccurrence`` in PNG and SVG. Returns the content of ``report.json``.
    """
    out_dir = Path(out_dir)
    gt = apply_regime(labels, regime)
    done = evaluate_stream(
        labels,
        models,
        list(labels.classes) if class_names is None else class_names,
        regime=regime,
        confusion=confusion,
        meta_filters=META_FILTERS if meta else None,
        prefetch=prefetch,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    results = done.results
    table = metric_table(results)
    paper = select_table(table, PAPER_METRICS)
    topk_cols = [
        (f"{m}@{k}", s) for m in ("hit_rate", "f1", "precision", "recall") for k in TOP_KS for s in ("a", "v", "av")
    ]
    topk = (
        table.loc[:, [c for c in topk_cols if table[c].notna().any()]]
        if any(m["kind"] == "scores" for m in done.models.values())
        else None
    )
    files: dict[str, dict[str, str]] = {}
    tables = {"paper": paper, "metrics": table}
    if topk is not None and topk.shape[1]:
        tables["topk"] = topk
    breakdown = delta = None
    if meta:
        breakdown = done.breakdown
        meta_f1 = pd.concat(
            {name: metric_table(res, metrics=["f1"])["f1"] for name, res in breakdown.items() if res},
            axis=1,
            names=["filter", "modality"],
        )
        tables["meta_f1"] = meta_f1
        delta = delta_f1_table(breakdown)
        if not delta.empty:
            tables["delta_f1"] = delta
    captions = {
        "paper": "VGGSounder benchmark (x100)",
        "metrics": "All metrics (x100)",
        "topk": "Top-k metrics (x100)",
        "meta_f1": "F1 per meta-label filter (x100)",
        "delta_f1": "F1 with minus without each meta label (points)",
    }
    for stem, df in tables.items():
        files[f"table_{stem}"] = write_table(df, out_dir, stem, caption=captions.get(stem))
    if figures:
        files["figure_radar"] = radar_figure(table, out_dir)
        if delta is not None and not delta.empty:
            files["figure_delta_f1"] = delta_f1_figure(delta, out_dir)
        files["figure_class_frequency"] = class_frequency_figure(gt, out_dir)
        files["figure_cooccurrence"] = cooccurrence_figure(gt, out_dir)
    report = {
        "params": {"regime": regime, "confusion": confusion, "meta": meta, **(params or {})},
        "labels": {
            "source": label_source,
            "clips": len(labels),
            "clips_in_regime": len(gt),
            "classes": len(labels.classes),
        },
        "models": done.models,
        "results": _jsonable(results),
        "tables": {stem: _table_json(df) for stem, df in tables.items()},
        "meta_results": _jsonable(breakdown) if breakdown is not None else None,
        "files": files,
    }
    with open(out_dir / "report.json", "w", encoding="utf-8") as fh:
        json.dump(report, fh, indent=1, allow_nan=False)
    return report
