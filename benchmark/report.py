"""Reports: tables (CSV, Markdown, LaTeX, HTML), figures (PNG + SVG) and ``report.json``.

Pure: takes a :class:`~benchmark.labels.LabelSet` and :class:`~benchmark.predictions.ModelPredictions`,
writes files into a directory. Figures use matplotlib's Agg backend (no display needed); their inputs are computed
here and :mod:`benchmark.figures` draws them, by default in helper processes while the models are evaluated.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from . import figures as drawings
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

PER_CLASS_MIN_SUPPORT = 5
"""A class with fewer labelled clips than this in a subset gets no per-class F1/AP (null): too little data."""

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
# Each figure: its inputs computed here from the tables / label set (small arrays and names), then drawn by
# benchmark.figures (matplotlib, Agg), here or in a helper process (FigurePool).


def radar_data(table: pd.DataFrame, metrics: Iterable[str] = RADAR_METRICS, inputs=("a", "v", "av")) -> dict:
    """Inputs of the radar figure: every metric normalised by its maximum over all models and inputs."""
    metrics = [m for m in metrics if m in table.columns.get_level_values(0)]
    models = list(table.index)
    vals = np.array([[[table.loc[m, (met, inp)] for met in metrics] for inp in inputs] for m in models], float)
    scale = np.nanmax(np.where(np.isnan(vals), -np.inf, vals), axis=(0, 1))
    scale[~np.isfinite(scale) | (scale <= 0)] = 1.0
    norm = np.nan_to_num(vals / scale)
    return {"models": [str(m) for m in models], "metrics": metrics, "inputs": list(inputs), "norm": norm}


def radar_figure(
    table: pd.DataFrame,
    out_dir: Path,
    stem: str = "radar",
    metrics: Iterable[str] = RADAR_METRICS,
    inputs=("a", "v", "av"),
) -> dict[str, str]:
    """One radar per model: axes are metrics, one polygon per input modality; every axis is
    normalised by its maximum over all models and inputs (1 = best value in the report)."""
    return drawings.draw("radar", out_dir, stem, radar_data(table, metrics, inputs))


def delta_f1_data(delta: pd.DataFrame, subsets=("a", "v", "av")) -> dict:
    """Inputs of the ΔF1 figure: ``values[subset, model, meta]`` in points (NaN where missing)."""
    metas = [m for m in META_LABELS if m in delta.columns.get_level_values(0)]
    models = list(delta.index)
    values = np.array(
        [
            [
                [delta.loc[model, (meta, s)] if (meta, s) in delta.columns else np.nan for meta in metas]
                for model in models
            ]
            for s in subsets
        ],
        dtype=float,
    ).reshape(len(subsets), len(models), len(metas))
    return {"metas": metas, "models": [str(m) for m in models], "subsets": list(subsets), "values": values}


def delta_f1_figure(
    delta: pd.DataFrame, out_dir: Path, stem: str = "delta_f1", subsets=("a", "v", "av")
) -> dict[str, str]:
    """Grouped bars: ΔF1 (with − without meta label) per meta label, one panel per subset."""
    return drawings.draw("delta_f1", out_dir, stem, delta_f1_data(delta, subsets))


def class_frequency_data(labels: LabelSet, top: int = 40) -> dict:
    """Inputs of the class frequency figure: clips per class tagged AV / A only / V only, the classes sorted by
    their total (most frequent first, ties in class order), and the names of the ``top`` first."""
    a = labels.has_a.sum(0)
    v = labels.has_v.sum(0)
    av = labels.has_av.sum(0)
    order = np.argsort(-(a + v + av), kind="stable")
    return {
        "av": av[order],
        "a": a[order],
        "v": v[order],
        "top_names": [labels.classes[i] for i in order[:top]],
        "clips": len(labels),
    }


def class_frequency_figure(
    labels: LabelSet, out_dir: Path, stem: str = "class_frequency", top: int = 40
) -> dict[str, str]:
    """Clips per class split by modality tag (A only / V only / AV): all classes sorted, and the top ones named."""
    return drawings.draw("class_frequency", out_dir, stem, class_frequency_data(labels, top))


COOC_CHUNK = 32_768
"""Clips per float32 block of :func:`cooccurrence_matrix` (bounds its memory: 32k x 309 x 4 bytes = 40 MB)."""


COOC_PAIR_LIMIT = 32
"""Most labels per clip for which :func:`cooccurrence_matrix` counts label pairs directly."""


def cooccurrence_matrix(labels: LabelSet, *, chunk: int = COOC_CHUNK, method: str = "auto") -> np.ndarray:
    """Clips in which both classes are labelled (any modality), int64 [C, C]; always exact integer counts.

    ``"pairs"``: a clip has a few labels (2.5 on average in VGGSounder), so the pairs of labels of each clip are
    counted directly with integer ``bincount`` (one pass per offset between a clip's labels: at most the largest
    number of labels of one clip). ``"float32"``: float32 matrix products ``B.T @ B`` (BLAS) over blocks of
    ``chunk`` clips; every partial sum is a whole number below 2**24 (a block has at most ``chunk`` clips), which
    float32 holds exactly, and the blocks are summed as integers. (The int32 product ``T.T @ T`` has no BLAS:
    112 s at 150k clips.) ``"auto"`` counts pairs unless a clip has more than ``COOC_PAIR_LIMIT`` labels."""
    T = labels.truth("all")
    n, C = T.shape
    rows, cols = np.nonzero(T)  # row-major: each clip's labels are consecutive
    per_clip = np.bincount(rows, minlength=n)
    if method not in ("auto", "pairs", "float32"):
        raise ValueError(f"unknown method {method!r}; allowed: auto, pairs, float32")
    if method == "pairs" or (method == "auto" and (per_clip.max(initial=0) <= COOC_PAIR_LIMIT)):
        counts = np.bincount(cols * (C + 1), minlength=C * C).astype(np.int64)  # the diagonal
        for offset in range(1, int(per_clip.max(initial=0))):
            same = rows[offset:] == rows[:-offset]
            i, j = cols[:-offset][same], cols[offset:][same]
            counts += np.bincount(i * C + j, minlength=C * C)
            counts += np.bincount(j * C + i, minlength=C * C)
        return counts.reshape(C, C)
    chunk = max(1, min(int(chunk), 1 << 24))
    out = np.zeros((C, C), dtype=np.int64)
    for start in range(0, n, chunk):
        block = T[start : start + chunk].astype(np.float32)
        out += np.rint(block.T @ block).astype(np.int64)
    return out


def cooccurrence_data(labels: LabelSet, top: int = 40) -> tuple[str, dict]:
    """The co-occurrence figure as ``(kind, inputs)`` for :func:`benchmark.figures.draw`: P(column class | row
    class) of the ``top`` classes that co-occur most (classes that share no clip with another are left out), or
    a "too little data" figure when no two classes share a clip."""
    M = cooccurrence_matrix(labels).astype(float)
    diag = np.diag(M).copy()
    off = M - np.diag(diag)
    shared = off.sum(1)
    order = np.argsort(-shared, kind="stable")[: min(top, int(np.count_nonzero(shared)))]
    if order.size < 2:
        return "too_little_data", {
            "title": "Class co-occurrence",
            "message": f"too little data: no two classes share a clip ({len(labels)} clips)",
        }
    sub = M[np.ix_(order, order)]
    cond = np.divide(sub, np.diag(sub)[:, None], out=np.zeros_like(sub), where=np.diag(sub)[:, None] > 0)
    np.fill_diagonal(cond, np.nan)
    return "cooccurrence", {"cond": cond, "names": [labels.classes[i] for i in order]}


def cooccurrence_figure(labels: LabelSet, out_dir: Path, stem: str = "cooccurrence", top: int = 40) -> dict[str, str]:
    """Heatmap of P(column class | row class) for the ``top`` classes that co-occur most (classes that share
    no clip with another are left out). With no co-occurrence at all the figure says so instead of drawing an
    empty colour scale."""
    return drawings.draw(*_with_stem(cooccurrence_data(labels, top), out_dir, stem))


def _with_stem(kind_data: tuple[str, dict], out_dir, stem: str):
    kind, data = kind_data
    return kind, out_dir, stem, data


def per_class_json(per_class: dict, classes: list[str], min_support: int = PER_CLASS_MIN_SUPPORT):
    """``({model: {subset: {class: {"f1", "ap", "support"}}}}, {model: {subset: classes left out}})``: F1 and AP
    are null for a class with fewer than ``min_support`` labelled clips (too little data to say anything), and
    AP is null for label-set models."""
    out: dict = {}
    too_little: dict = {}
    for model, subsets in per_class.items():
        out[model], too_little[model] = {}, {}
        for subset, arrays in subsets.items():
            support = np.asarray(arrays["support"], dtype=np.int64)
            f1 = np.asarray(arrays["f1"], dtype=np.float64)
            ap = None if arrays.get("ap") is None else np.asarray(arrays["ap"], dtype=np.float64)
            enough = support >= min_support
            out[model][subset] = {
                name: {
                    "f1": float(f1[j]) if enough[j] else None,
                    "ap": float(ap[j]) if ap is not None and enough[j] and np.isfinite(ap[j]) else None,
                    "support": int(support[j]),
                }
                for j, name in enumerate(classes)
            }
            too_little[model][subset] = int((~enough).sum())
    return out, too_little


def per_class_f1_data(per_class: dict, subsets=("a", "v", "av")) -> tuple[str, dict]:
    """The per-class F1 figure as ``(kind, inputs)``: per model, F1 x100 of the classes with enough data sorted
    from best to worst by the last subset's F1, one line per subset; or a "too little data" figure."""
    panels = []
    for model, per_subset in per_class.items():
        shown = [s for s in subsets if s in per_subset]
        if not shown:
            continue
        key = shown[-1]
        names = [c for c, v in per_subset[key].items() if v["f1"] is not None]
        if not names:
            continue
        order = sorted(names, key=lambda c: -per_subset[key][c]["f1"])
        lines = []
        for subset in shown:
            vals = [per_subset[subset][c]["f1"] for c in order]
            lines.append((subset, np.array([np.nan if v is None else 100 * v for v in vals])))
        panels.append({"model": str(model), "key": key, "left_out": len(per_subset[key]) - len(names), "lines": lines})
    if not panels:
        return "too_little_data", {
            "title": "Per-class F1",
            "message": f"too little data: no class has {PER_CLASS_MIN_SUPPORT} or more labelled clips in any subset",
        }
    return "per_class_f1", {"panels": panels}


def per_class_f1_figure(
    per_class: dict, out_dir: Path, stem: str = "per_class_f1", subsets=("a", "v", "av")
) -> dict[str, str]:
    """Per-class F1 sorted from best to worst, one panel per model, one line per input subset (sorted by the
    last subset's F1); classes with too little data are left out and counted in the title. Without any class
    with enough data the figure says so."""
    return drawings.draw(*_with_stem(per_class_f1_data(per_class, subsets), out_dir, stem))


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
    on_model=None,
    figure_processes: int | None = None,
) -> dict:
    """Evaluate ``models`` on ``labels`` and write the whole report into ``out_dir``.

    ``models``: :class:`ModelPredictions`, predictions file paths (read with ``class_names``, default the
    label set's classes) or callables returning a model (e.g. :class:`benchmark.io.PredictionsFile`). They
    are loaded and evaluated one after another, the next one read in a background thread with ``prefetch``
    (:func:`benchmark.evaluate.evaluate_stream`): only each model's numbers are kept, so files never sit
    in memory more than two at a time. ``on_model(name)`` is called after each model is evaluated.

    Writes ``report.json`` (parameters, results as fractions, tables ×100, list of files), tables
    ``paper``, ``metrics`` (all metrics), ``topk`` and, with ``meta``, ``meta_f1`` / ``delta_f1`` in
    CSV/Markdown/LaTeX/HTML, and figures ``radar``, ``delta_f1``, ``class_frequency``,
    ``cooccurrence``, ``per_class_f1`` in PNG and SVG, drawn in ``figure_processes`` helper processes (default
    :data:`benchmark.figures.FIGURE_PROCESSES`; 0: in a thread of this process). Returns the content of
    ``report.json``.
    """
    out_dir = Path(out_dir)
    gt = apply_regime(labels, regime)
    processes = drawings.FIGURE_PROCESSES if figure_processes is None else figure_processes
    with drawings.FigurePool(processes if figures else 0) as drawing:
        # the figures are drawn in helper processes (on another core than the evaluation; with
        # figure_processes=0 in one thread here): the two that need only the labels while the models are
        # evaluated, the others once their numbers are known
        pending: dict[str, object] = {}
        if figures:
            out_dir.mkdir(parents=True, exist_ok=True)
            pending["figure_class_frequency"] = drawing.submit(
                "class_frequency", out_dir, "class_frequency", class_frequency_data(gt)
            )
            pending["figure_cooccurrence"] = drawing.submit(*_with_stem(cooccurrence_data(gt), out_dir, "cooccurrence"))
        report = _evaluate_and_write(
            out_dir,
            labels,
            gt,
            models,
            drawing,
            pending,
            regime=regime,
            confusion=confusion,
            meta=meta,
            figures=figures,
            params=params,
            label_source=label_source,
            class_names=class_names,
            prefetch=prefetch,
            on_model=on_model,
        )
    with open(out_dir / "report.json", "w", encoding="utf-8") as fh:
        json.dump(report, fh, indent=1, allow_nan=False)
    return report


def _evaluate_and_write(
    out_dir: Path,
    labels: LabelSet,
    gt: LabelSet,
    models,
    drawing,
    pending: dict,
    *,
    regime,
    confusion,
    meta,
    figures,
    params,
    label_source,
    class_names,
    prefetch,
    on_model=None,
) -> dict:
    done = evaluate_stream(
        labels,
        models,
        list(labels.classes) if class_names is None else class_names,
        regime=regime,
        confusion=confusion,
        meta_filters=META_FILTERS if meta else None,
        prefetch=prefetch,
        on_model=on_model,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    results = done.results
    table = metric_table(results)
    per_class, too_little = per_class_json(done.per_class, labels.classes)
    if figures:
        # each figure sent to the helpers as soon as its inputs exist, while the tables are made and written
        pending["figure_radar"] = drawing.submit("radar", out_dir, "radar", radar_data(table))
        pending["figure_per_class_f1"] = drawing.submit(
            *_with_stem(per_class_f1_data(per_class), out_dir, "per_class_f1")
        )
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
        if figures and not delta.empty:
            pending["figure_delta_f1"] = drawing.submit("delta_f1", out_dir, "delta_f1", delta_f1_data(delta))
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
    for key in (
        "figure_radar",
        "figure_delta_f1",
        "figure_class_frequency",
        "figure_cooccurrence",
        "figure_per_class_f1",
    ):
        if key in pending:
            files[key] = pending[key].result()
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
        "per_class": per_class,
        "per_class_notes": {
            "min_support": PER_CLASS_MIN_SUPPORT,
            "f1": "F1 of the class: top-1 prediction for scored models (as their f1), the label set otherwise",
            "ap": "average precision of the class's scores (scored models; null for label sets)",
            "support": "clips of the subset labelled with the class",
            "too_little_data": too_little,
        },
        "files": files,
    }
    return report
