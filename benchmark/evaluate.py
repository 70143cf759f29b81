"""The VGGSounder benchmark: every metric, every subset, many models (numpy, vectorised).

``evaluate`` returns ``{model: {subset: {metric: fraction}}}`` with the same keys as
``vggsounder.benchmark.compute_all_results``; ``metric_table`` turns it into the paper's
table (×100). ``meta_breakdown`` / ``delta_f1_table`` give the meta-label analysis.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np
import pandas as pd

from .errors import BenchmarkInputError
from .labels import META_LABELS, REGIMES, SUBSET_INPUT, SUBSETS, LabelSet, apply_regime
from .metrics import (
    TOP_KS,
    Positives,
    auc_macro,
    cells_contain,
    hits,
    label_set_counts_metrics,
    label_set_metrics,
    modality_confusion,
    topk_cells,
)
from .predictions import ModelPredictions

METRICS = (
    [f"hit_rate@{k}" for k in TOP_KS]
    + ["hit_rate"]
    + [f"f1@{k}" for k in TOP_KS]
    + ["f1"]
    + [f"f1_macro@{k}" for k in TOP_KS]
    + ["f1_macro"]
    + [f"jaccard@{k}" for k in TOP_KS]
    + ["jaccard"]
    + [f"precision@{k}" for k in TOP_KS]
    + ["precision"]
    + [f"recall@{k}" for k in TOP_KS]
    + ["recall"]
    + [f"accuracy@{k}" for k in TOP_KS]
    + ["accuracy"]
    + ["auc_roc", "auc_pr", "mu"]
)
"""Metric columns of the table, in the reference's order (its never-computed
``avg_n_preds``/``med_n_preds`` are left out)."""

CONFUSION_DEFINITIONS = ("v1.0", "pre-v1.0")
PER_CLASS_KEY = "_per_class"  # where an evaluation with per_class=True leaves its per-class arrays

EVAL_THREADS = min(2, os.cpu_count() or 1)
"""Threads evaluating one model's clip selections (regime + meta-label filters) at the same time."""

PAPER_METRICS = [
    ("accuracy", ["a", "v", "av"]),
    ("f1", ["a", "v", "av", "a only", "v only"]),
    ("hit_rate", ["a", "v", "av"]),
    ("mu", ["a", "v", "av"]),
]
"""The paper's main table (as in the ``vggsounder`` README)."""

META_FILTERS = {
    "with background_music": {"background_music": True},
    "without background_music": {"background_music": False},
    "with static_image": {"static_image": True},
    "without static_image": {"static_image": False},
    "with voice_over": {"voice_over": True},
    "without voice_over": {"voice_over": False},
    "neither": {"background_music": False, "static_image": False, "voice_over": False},
}


def _check_classes(gt: LabelSet, pred: ModelPredictions):
    if list(pred.classes) != list(gt.classes):
        raise BenchmarkInputError(
            f"model {pred.name!r}: its class list ({len(pred.classes)} classes) differs from the "
            f"label set's ({len(gt.classes)} classes); both must use the same taxonomy order"
        )


def _check_confusion(confusion: str):
    if confusion not in CONFUSION_DEFINITIONS:
        raise BenchmarkInputError(
            f"unknown modality-confusion definition {confusion!r}; allowed: {', '.join(CONFUSION_DEFINITIONS)}"
        )


class ScoredModel:
    """A model with scores, prepared once on the clips of a label set, then evaluated on any of their subsets.

    What does not depend on which clips are evaluated is computed here once per input: the scores of the
    label set's clips (clips without scores are dropped; with ``clips``, only those a bool mask selects), each
    clip's top-k classes for every k as flat cell indices (one partial sort per block of clips, shared with the
    top-1 class), the ground truth's positive cells per subset and the top-1 hits. The model's score matrices
    are used in place (never copied), so the memory needed beyond the inputs stays small at any size.
    :meth:`evaluate` then only counts over the chosen clips and sorts each class's scores of those clips for the
    AUCs: the numbers are those of evaluating the subset on its own (the same operations
    on the same values in the same order). Sorting a subset's columns is cheaper than filtering a presorted
    order (measured), so the AUC sort is not shared."""

    def __init__(
        self,
        labels: LabelSet,
        pred: ModelPredictions,
        *,
        ks: Iterable[int] = TOP_KS,
        confusion: str = "v1.0",
        threads: int = 1,
        clips: np.ndarray | None = None,
    ):
        _check_confusion(confusion)
        _check_classes(labels, pred)
        self.ks = tuple(ks)
        self.confusion = confusion
        idx = pd.Index(pred.video_ids).get_indexer(pd.Index(labels.video_ids))
        wanted = idx >= 0 if clips is None else (idx >= 0) & np.asarray(clips, dtype=bool)
        self.rows = np.flatnonzero(wanted)  # label-set clips the model scored (and that are wanted)
        self.n_labels = len(labels)
        m, C = self.rows.size, len(labels.classes)
        self.m, self.C = m, C
        self.inputs = [inp for inp in pred.inputs]
        self.S, self.pred_flat, self.pred_cells, self.pred_row = {}, {}, {}, {}
        have_all = all(i in self.inputs for i in ("a", "v", "av"))
        top1 = {}
        take = idx[self.rows]  # the model's row of each prepared clip (None: the same rows, in order)
        self.take = None if take.size == len(pred.video_ids) and np.array_equal(take, np.arange(take.size)) else take

        def prepare(inp):
            # the model's own matrix, never copied: rows are looked up through self.take
            S = pred.scores[inp]
            # each clip's top-k cells as sorted flat indices (no [m, C] mask per k), ranked in blocks of clips
            cells, top1[inp] = topk_cells(S, self.ks, top1=have_all, rows=self.take)
            for k, flat in cells.items():
                r, c = np.divmod(flat, C)
                self.pred_flat[inp, k] = flat
                self.pred_cells[inp, k] = (r, c.astype(np.int16 if C < 2**15 else np.int32))
                self.pred_row[inp, k] = np.bincount(r, minlength=m)
            self.S[inp] = S

        if threads > 1 and len(self.inputs) > 1:  # inputs are independent; numpy works without the GIL
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="prepare") as pool:
                list(pool.map(prepare, self.inputs))
        else:
            for inp in self.inputs:
                prepare(inp)
        self.truth = {}
        for subset in SUBSETS:
            if SUBSET_INPUT[subset] not in self.S:
                continue
            self.truth[subset] = _truth_cells(labels, subset, self.rows)
        self.top1_hits = None
        if have_all:
            self.top1_hits = {}
            for inp in ("a", "v", "av"):
                against = "all" if confusion == "v1.0" or inp == "av" else inp
                self.top1_hits[inp] = _truth_at(labels, against, self.rows, top1[inp])

    def evaluate(
        self, clips: np.ndarray | None = None, *, threads: int = 1, per_class: bool = False
    ) -> dict[str, dict[str, float]]:
        """All metrics on the label-set clips selected by ``clips`` (bool over the label set; None = all);
        with ``threads`` > 1 the subsets are evaluated that many at a time."""
        sel = np.ones(self.m, dtype=bool) if clips is None else np.asarray(clips, dtype=bool)[self.rows]
        if threads > 1 and len(self.truth) > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="evaluate") as pool:
                done = list(pool.map(lambda subset: self._subset(subset, sel, per_class), self.truth))
        else:
            done = [self._subset(subset, sel, per_class) for subset in self.truth]
        results: dict[str, dict[str, float]] = dict(zip(self.truth, done))
        if self.top1_hits is not None:
            h = self.top1_hits
            mus = modality_confusion(h["a"][sel], h["v"][sel], h["av"][sel])
            for inp in ("a", "v", "av"):
                results[inp]["mu"] = mus[inp]
        return results

    def _subset(self, subset: str, sel: np.ndarray, per_class: bool = False) -> dict[str, float]:
        present_all, tr, tc = self.truth[subset]
        inp = SUBSET_INPUT[subset]
        present = present_all & sel
        R = np.flatnonzero(present)
        n = R.size
        new_row = np.cumsum(present) - 1  # row of each kept clip among the kept ones
        keep = present[tr]
        pos = Positives.from_cells(new_row[tr[keep]], tc[keep], n, self.C)
        grow = R[pos.rows]  # each positive's row among the scored clips
        res = {}
        classes = {} if per_class else None  # per-class F1 (top-1, as the reference's f1) and AP
        k_f1 = 1 if 1 in self.ks else min(self.ks)
        for k in self.ks:
            pr, pc = self.pred_cells[inp, k]
            pred_c = np.bincount(pc[present[pr]], minlength=self.C)
            correct = cells_contain(self.pred_flat[inp, k], grow * self.C + pos.cols)
            for name, value in label_set_counts_metrics(
                pos, correct, pred_c, self.pred_row[inp, k][R] if n else None, per_class=classes if k == k_f1 else None
            ).items():
                res[f"{name}@{k}"] = value
        S = self.S[inp]
        rows = R if self.take is None else self.take[R]  # the chosen clips' rows of the model's matrix
        every_row = self.take is None and n == S.shape[0]

        def sorted_cols(classes):
            # the chosen clips' scores of a few classes, one row per class, sorted
            lo, hi = int(classes[0]), int(classes[-1]) + 1  # a contiguous run of columns: a view, no gather
            block = (S[:, lo:hi] if every_row else S[rows, lo:hi]).T.copy()
            if hi - lo != classes.size:
                block = block[classes - lo]
            block.sort(axis=1)
            return block

        srow = grow if self.take is None else self.take[grow]
        res["auc_roc"], res["auc_pr"] = auc_macro(
            pos, None, sorted_cols=sorted_cols, pos_values=S[srow, pos.cols], per_class=classes
        )
        if classes is not None:
            res[PER_CLASS_KEY] = classes
        res["n_clips"] = int(n)
        return res


TRUTH_ROW_BLOCK = 32_768
"""Clips whose ground-truth rows :func:`_truth_cells` combines at a time (no [n, C] temporary)."""


def _truth_cells(labels: LabelSet, subset: str, rows: np.ndarray):
    """(clip has a label, row, column of each positive cell) of ``labels.truth(subset)[rows]``, in row-major
    order, built a block of rows at a time."""
    C = len(labels.classes)
    present, rr, cc = [], [], []
    for start in range(0, rows.size, TRUTH_ROW_BLOCK):
        block = labels.select_rows(rows[start : start + TRUTH_ROW_BLOCK]).truth(subset)
        r, c = np.divmod(np.flatnonzero(block), C)
        present.append(block.any(axis=1))
        rr.append(r + start)
        cc.append(c)
    if not present:
        empty = np.zeros(0, dtype=np.int64)
        return np.zeros(0, dtype=bool), empty, empty
    return np.concatenate(present), np.concatenate(rr), np.concatenate(cc)


def _truth_at(labels: LabelSet, subset: str, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``labels.truth(subset)[rows[i], cols[i]]`` for every i, without building the [n, C] matrix."""
    a, v, av = labels.has_a[rows, cols], labels.has_v[rows, cols], labels.has_av[rows, cols]
    return {"a": a | av, "v": v | av, "av": av, "a only": a, "v only": v, "all": a | v | av}[subset]


def evaluate_model(
    gt: LabelSet, pred: ModelPredictions, *, ks: Iterable[int] = TOP_KS, confusion: str = "v1.0", per_class=False
) -> dict[str, dict[str, float]]:
    """All metrics of one model on the clips of ``gt`` (already filtered by regime)."""
    _check_confusion(confusion)
    _check_classes(gt, pred)
    if pred.kind == "scores":
        return ScoredModel(gt, pred, ks=ks, confusion=confusion).evaluate(per_class=per_class)
    return _evaluate_label_sets(gt, pred, confusion, per_class=per_class)


def _evaluate_label_sets(
    gt: LabelSet, pred: ModelPredictions, confusion: str, *, per_class: bool = False
) -> dict[str, dict[str, float]]:
    idx = pd.Index(pred.video_ids).get_indexer(pd.Index(gt.video_ids))
    have = idx >= 0
    truth_all = gt.truth("all")
    results: dict[str, dict[str, float]] = {}
    top1_hits: dict[str, np.ndarray] = {}
    preds = {}
    for inp in pred.inputs:
        P = np.zeros(truth_all.shape, dtype=bool)
        P[have] = pred.labels[inp][idx[have]]  # missing clip = empty set
        preds[inp] = P
    for subset in SUBSETS:
        inp = SUBSET_INPUT[subset]
        if inp not in preds:
            continue
        T = gt.truth(subset)
        present = T.any(axis=1)
        classes = {} if per_class else None
        res = label_set_metrics(T[present], preds[inp][present], per_class=classes)
        if classes is not None:
            classes["ap"] = None  # label sets have no ranking
            res[PER_CLASS_KEY] = classes
        res["n_clips"] = int(present.sum())
        results[subset] = res
    if all(i in preds for i in ("a", "v", "av")):
        for inp in ("a", "v", "av"):
            if confusion == "v1.0":
                against = truth_all
            else:
                against = gt.truth(inp if inp != "av" else "all")
            top1_hits[inp] = hits(against, preds[inp])

    if top1_hits:
        mus = modality_confusion(top1_hits["a"], top1_hits["v"], top1_hits["av"])
        for inp in ("a", "v", "av"):
            results[inp]["mu"] = mus[inp]
    return results


def evaluate(
    labels: LabelSet,
    models: Iterable[ModelPredictions],
    *,
    regime: str | None = "default",
    ks: Iterable[int] = TOP_KS,
    confusion: str = "v1.0",
) -> dict[str, dict[str, dict[str, float]]]:
    """``{model: {subset: {metric: fraction}}}`` for every model; ``regime`` filters clips first
    (``default``: without background music, ``all``: every clip, ``None``: ``labels`` as given)."""
    gt = apply_regime(labels, regime) if regime is not None else labels
    out = {}
    for model in models:
        if model.name in out:
            raise BenchmarkInputError(f"two models are named {model.name!r}; names must be unique")
        out[model.name] = evaluate_model(gt, model, ks=ks, confusion=confusion)
    return out


def metric_table(results: dict, subsets: Iterable[str] = SUBSETS, metrics: Iterable[str] = METRICS) -> pd.DataFrame:
    """Models × (metric, subset), ×100. A missing metric falls back to ``metric@1`` (so ``f1`` of a
    scored model is its top-1 F1, as in the reference); otherwise NaN."""
    subsets, metrics = list(subsets), list(metrics)
    cols = pd.MultiIndex.from_product([metrics, subsets], names=["metric", "modality"])
    rows = []
    for per_subset in results.values():
        row = []
        for metric in metrics:
            for subset in subsets:
                res = per_subset.get(subset, {})
                v = res.get(metric, res.get(f"{metric}@1"))
                row.append(np.nan if v is None else 100.0 * v)
        rows.append(row)
    df = pd.DataFrame(rows, index=pd.Index(list(results), name="model"), columns=cols, dtype=float)
    return df


def select_table(table: pd.DataFrame, selection=PAPER_METRICS) -> pd.DataFrame:
    """Pick ``[(metric, [subsets])]`` columns out of :func:`metric_table` (e.g. the paper's table)."""
    cols = [(m, s) for m, subsets in selection for s in subsets]
    unknown = [c for c in cols if c not in table.columns]
    if unknown:
        raise BenchmarkInputError(f"unknown metric/subset column(s): {unknown}")
    return table.loc[:, cols]


def meta_breakdown(
    labels: LabelSet, models: Iterable[ModelPredictions], *, filters: dict | None = None, confusion: str = "v1.0"
) -> dict[str, dict]:
    """Results per meta-label filter (on all clips of ``labels``, no regime applied)."""
    models = list(models)
    _check_confusion(confusion)
    masks = {name: labels.meta_mask(**flt) for name, flt in (filters or META_FILTERS).items()}
    out = {name: {} for name in masks}
    seen = set()
    for model in models:
        if model.name in seen:
            raise BenchmarkInputError(f"two models are named {model.name!r}; names must be unique")
        seen.add(model.name)
        for name, res in _evaluate_filters(labels, model, masks, ks=TOP_KS, confusion=confusion).items():
            out[name][model.name] = res
    return out


def _evaluate_filters(
    labels: LabelSet, model: ModelPredictions, masks: dict[str, np.ndarray], *, ks, confusion: str, per_class_for=None
) -> dict[str, dict]:
    """``{name: results}`` of one model on the clips of ``labels`` selected by each bool mask (empty
    selections left out). A scored model is prepared once (:class:`ScoredModel`) for all of them."""
    masks = {name: m for name, m in masks.items() if m.any()}
    if model.kind == "scores" and masks:
        union = np.logical_or.reduce(list(masks.values()))
        # prepare only the clips some selection needs (no copy of the label set)
        prepared = ScoredModel(
            labels, model, ks=ks, confusion=confusion, threads=EVAL_THREADS, clips=None if union.all() else union
        )
        if len(masks) > 2 and EVAL_THREADS > 1:
            # the selections are independent and most of each is numpy work without the GIL (column
            # filters, sorts): two at a time on a multi-core machine
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=EVAL_THREADS, thread_name_prefix="evaluate") as pool:
                done = list(
                    pool.map(lambda item: prepared.evaluate(item[1], per_class=item[0] is per_class_for), masks.items())
                )
            return dict(zip(masks, done))
        return {
            name: prepared.evaluate(m, threads=EVAL_THREADS, per_class=name is per_class_for)
            for name, m in masks.items()
        }
    return {name: evaluate_model(labels.select(m), model, ks=ks, confusion=confusion) for name, m in masks.items()}


def delta_f1_table(breakdown: dict[str, dict], metric: str = "f1", subsets: Iterable[str] = SUBSETS) -> pd.DataFrame:
    """ΔF1 = F1(with meta label) − F1(without), ×100, per model × (meta label, subset)."""
    subsets = list(subsets)
    tables = {}
    for meta in META_LABELS:
        with_ = breakdown.get(f"with {meta}") or {}
        without = breakdown.get(f"without {meta}") or {}
        if not with_ or not without:
            continue
        a = metric_table(with_, subsets, [metric])[metric]
        b = metric_table(without, subsets, [metric])[metric]
        tables[meta] = a - b
    if not tables:
        return pd.DataFrame()
    df = pd.concat(tables, axis=1, names=["meta_label", "modality"])
    return df


def iter_models(sources, class_names: list[str] | None = None, *, prefetch: bool = True):
    """Yield the :class:`ModelPredictions` of ``sources`` one after another.

    A source is a :class:`ModelPredictions` (yielded as is), a zero-argument callable returning one (e.g.
    :class:`benchmark.io.PredictionsFile`) or a predictions file path (read with
    :func:`benchmark.io.load_predictions` and ``class_names``). With ``prefetch`` the next source is loaded
    in a background thread while the caller works on the current model (numpy releases the GIL for
    sorting and copying, so the two overlap on a multi-core machine). A caller that drops each model
    before asking for the next holds at most two loaded models at a time."""
    from concurrent.futures import ThreadPoolExecutor

    from .io import load_predictions

    def load(src):
        if isinstance(src, ModelPredictions):
            return src
        if callable(src):
            return src()
        if isinstance(src, (str, os.PathLike)):
            return load_predictions(src, class_names)
        raise TypeError(
            f"not a model source: {type(src).__name__} (expected ModelPredictions, a path or a "
            "callable returning ModelPredictions)"
        )

    sources = list(sources)
    if not prefetch or sum(not isinstance(s, ModelPredictions) for s in sources) < 2:
        for src in sources:
            yield load(src)
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="predictions-prefetch") as pool:
        future = pool.submit(load, sources[0])
        for nxt in sources[1:] + [None]:
            model = future.result()
            if nxt is not None:
                future = pool.submit(load, nxt)
            yield model
            del model


@dataclass
class StreamedEvaluation:
    """What :func:`evaluate_stream` keeps of each model once its arrays are gone."""

    results: dict
    """``{model: {subset: {metric: fraction}}}`` (as :func:`evaluate`)."""
    breakdown: dict | None
    """``{filter: {model: ...}}`` (as :func:`meta_breakdown`), or None without ``meta_filters``."""
    models: dict = field(default_factory=dict)
    """``{model: {"kind", "clips", "inputs", "unknown_names" ({name: count} skipped), "not_judged"}}``."""
    per_class: dict = field(default_factory=dict)
    """``{model: {subset: {"f1": [C], "ap": [C] or None, "support": [C]}}}`` on the regime's clips: F1 of each
    class (top-1 for a scored model, as its ``f1``; its label sets otherwise), average precision (scored models),
    positives of each class."""


def evaluate_stream(
    labels: LabelSet,
    sources,
    class_names: list[str] | None = None,
    *,
    regime: str | None = "default",
    ks: Iterable[int] = TOP_KS,
    confusion: str = "v1.0",
    meta_filters: dict | None = None,
    prefetch: bool = True,
    on_model=None,
) -> StreamedEvaluation:
    """Evaluate models one at a time as they are loaded (see :func:`iter_models`), keeping only their numbers.

    Gives the same numbers as :func:`evaluate` (``regime`` applied to ``labels``) and, with ``meta_filters``
    (e.g. :data:`META_FILTERS`), as :func:`meta_breakdown` on all clips of ``labels``. ``on_model(name)`` is
    called after each model is evaluated (e.g. to advance a progress bar)."""
    ks = tuple(ks)
    _check_confusion(confusion)
    if regime is not None:
        apply_regime(labels, regime)  # refuses an unknown regime
    in_regime = labels.meta_mask(**REGIMES[regime]) if regime is not None else np.ones(len(labels), dtype=bool)
    filters = (
        {name: labels.meta_mask(**flt) for name, flt in meta_filters.items()} if meta_filters is not None else None
    )
    out = StreamedEvaluation({}, {name: {} for name in filters} if filters is not None else None)
    regime_key = object()  # cannot clash with a filter name
    for model in iter_models(sources, class_names, prefetch=prefetch):
        if model.name in out.results:
            raise BenchmarkInputError(f"two models are named {model.name!r}; names must be unique")
        if model.kind == "scores" and in_regime.any():
            # one preparation for the regime and every filter
            masks = {regime_key: in_regime, **(filters or {})}
            done = _evaluate_filters(labels, model, masks, ks=ks, confusion=confusion, per_class_for=regime_key)
            out.results[model.name] = done.pop(regime_key)
        else:
            gt = labels.select(in_regime)
            _check_classes(gt, model)
            out.results[model.name] = evaluate_model(gt, model, ks=ks, confusion=confusion, per_class=True)
            done = _evaluate_filters(labels, model, filters or {}, ks=ks, confusion=confusion)
        out.per_class[model.name] = {
            subset: res.pop(PER_CLASS_KEY) for subset, res in out.results[model.name].items() if PER_CLASS_KEY in res
        }
        for name, res in done.items():
            out.breakdown[name][model.name] = res
        out.models[model.name] = {
            "kind": model.kind,
            "clips": len(model.video_ids),
            "inputs": list(model.inputs),
            "unknown_names": dict(model.unknown_names),
            "not_judged": int(model.not_judged),
        }
        if on_model is not None:
            on_model(model.name)
        del model
    return out


def evaluate_paths(
    labels: LabelSet,
    paths,
    class_names: list[str],
    *,
    regime: str | None = "default",
    ks: Iterable[int] = TOP_KS,
    confusion: str = "v1.0",
    prefetch: bool = True,
) -> dict:
    """Load and evaluate prediction files one after another (only one or two models in memory at a time);
    with ``prefetch`` the next file is read in a background thread (see :func:`iter_models`)."""
    return evaluate_stream(
        labels, paths, class_names, regime=regime, ks=ks, confusion=confusion, prefetch=prefetch
    ).results
