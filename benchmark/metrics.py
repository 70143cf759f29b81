"""Vectorised VGGSounder metrics over multi-hot matrices (pure numpy).

Definitions follow ``vggsounder`` 1.0 (``vggsounder/benchmark.py``); every value is
a fraction here (the tables multiply by 100 like the paper).
"""
from __future__ import annotations

import numpy as np

TOP_KS = (1, 3, 5, 10)
LABEL_METRICS = ("f1", "f1_macro", "accuracy", "jaccard", "precision", "recall", "hit_rate")


def _div(num, den):
    """num / den with 0 where den == 0 (sklearn's ``zero_division=0``)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.zeros(np.broadcast(num, den).shape, dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


def label_set_metrics(truth: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Label-set metrics of ``pred`` against ``truth`` (both bool [n, C]).

    micro F1/precision/recall/Jaccard over all (clip, class) cells, macro F1 over all
    C classes (a class with no positives and no predictions scores 0), subset accuracy
    (exact set match), hit rate (at least one correct label).
    """
    truth = np.asarray(truth, dtype=bool)
    pred = np.asarray(pred, dtype=bool)
    both = truth & pred
    tp_c = both.sum(axis=0, dtype=np.int64)
    fp_c = pred.sum(axis=0, dtype=np.int64) - tp_c
    fn_c = truth.sum(axis=0, dtype=np.int64) - tp_c
    tp, fp, fn = int(tp_c.sum()), int(fp_c.sum()), int(fn_c.sum())
    n = truth.shape[0]
    if n:
        exact = float(np.mean(~(truth ^ pred).any(axis=1)))
        hit = float(np.mean(both.any(axis=1)))
    else:
        exact = hit = float("nan")
    return {
        "f1": float(_div(2 * tp, 2 * tp + fp + fn)),
        "f1_macro": float(np.mean(_div(2 * tp_c, 2 * tp_c + fp_c + fn_c))),
        "accuracy": exact,
        "jaccard": float(_div(tp, tp + fp + fn)),
        "precision": float(_div(tp, tp + fp)),
        "recall": float(_div(tp, tp + fn)),
        "hit_rate": hit,
    }


def row_order(scores: np.ndarray) -> np.ndarray:
    """Per-clip class order, ascending score (``np.argsort(axis=1)``, ties as the reference breaks them)."""
    return np.argsort(scores, axis=1)


def topk_mask(order: np.ndarray, k: int) -> np.ndarray:
    """Bool [n, C] with the k highest-scoring classes of each clip set (from :func:`row_order`)."""
    mask = np.zeros(order.shape, dtype=bool)
    if order.shape[0]:
        np.put_along_axis(mask, order[:, -k:], True, axis=1)
    return mask


def topk_metrics(truth: np.ndarray, order: np.ndarray, ks=TOP_KS) -> dict[str, float]:
    out = {}
    for k in ks:
        for name, value in label_set_metrics(truth, topk_mask(order, k)).items():
            out[f"{name}@{k}"] = value
    return out


class ColumnRanking:
    """Per-class ranking of clips by score, computed once and reused for many ground-truth subsets.

    Sorting is the costly part of AUC; the subsets ``a`` and ``a only`` (``v``/``v only``) share
    the same input's scores, so each input is sorted once and each subset only supplies a row mask.
    """

    def __init__(self, scores: np.ndarray):
        scores = np.asarray(scores)
        n, C = scores.shape
        self.n, self.C = n, C
        cols = np.ascontiguousarray(scores.T)  # (C, n)
        self.order = np.argsort(cols, axis=1)  # ascending; order inside a tie is irrelevant
        sorted_vals = np.take_along_axis(cols, self.order, axis=1)
        start = np.ones((C, n), dtype=bool)
        if n > 1:
            start[:, 1:] = sorted_vals[:, 1:] != sorted_vals[:, :-1]
        # global tie-group id over the flattened (class-major) sorted array
        self.group = (np.cumsum(start.ravel()) - 1).astype(np.int64)
        self.n_groups = int(self.group[-1]) + 1 if self.group.size else 0
        first_group = self.group.reshape(C, n)[:, 0] if n else np.zeros(C, dtype=np.int64)
        self.group_class = np.repeat(np.arange(C), np.diff(np.append(first_group, self.n_groups)))

    def auc(self, truth: np.ndarray, rows: np.ndarray | None = None):
        """Macro AUC-ROC and AUC-PR over classes with ≥1 positive and ≥1 negative among ``rows``.

        truth: bool [n, C] aligned with the scores; rows: bool [n] (default: all rows).
        Returns (auc_roc, auc_pr); 0.0 when no class qualifies (as the reference does).
        """
        truth = np.asarray(truth, dtype=bool)
        if rows is None:
            rows = np.ones(self.n, dtype=bool)
        pos = truth & rows[:, None]
        neg = ~truth & rows[:, None]
        pos_s = np.take_along_axis(pos.T, self.order, axis=1).ravel()
        neg_s = np.take_along_axis(neg.T, self.order, axis=1).ravel()
        G = self.n_groups
        pos_g = np.bincount(self.group, weights=pos_s, minlength=G)
        neg_g = np.bincount(self.group, weights=neg_s, minlength=G)
        P = np.bincount(self.group_class, weights=pos_g, minlength=self.C)
        N = np.bincount(self.group_class, weights=neg_g, minlength=self.C)
        # cumulative counts strictly below each group (ascending score), restarted per class
        cpos = np.cumsum(pos_g) - pos_g
        cneg = np.cumsum(neg_g) - neg_g
        class_start = np.searchsorted(self.group_class, np.arange(self.C))
        pos_below = cpos - cpos[class_start][self.group_class]
        neg_below = cneg - cneg[class_start][self.group_class]
        # ROC AUC = P(score_pos > score_neg) + 0.5 P(tie)
        roc_num = np.bincount(self.group_class, weights=pos_g * (neg_below + 0.5 * neg_g),
                              minlength=self.C)
        # AP = sum over thresholds (descending) of Δrecall × precision
        tp_at = P[self.group_class] - pos_below
        fp_at = N[self.group_class] - neg_below
        prec = _div(tp_at, tp_at + fp_at)
        ap_num = np.bincount(self.group_class, weights=pos_g * prec, minlength=self.C)
        valid = (P > 0) & (N > 0)
        if not valid.any():
            return 0.0, 0.0
        roc = roc_num[valid] / (P[valid] * N[valid])
        ap = ap_num[valid] / P[valid]
        return float(np.mean(roc)), float(np.mean(ap))


def hits(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    return (np.asarray(truth, bool) & np.asarray(pred, bool)).any(axis=1)


def modality_confusion(hit_a: np.ndarray, hit_v: np.ndarray, hit_av: np.ndarray) -> dict[str, float]:
    """μ_A, μ_V, μ_{A∩V}: share of clips a unimodal input gets right while the AV input fails.

    Returned under the keys the reference uses: ``a`` (μ_A), ``v`` (μ_V), ``av`` (μ_{A∩V}).
    """
    fail_av = ~hit_av
    if hit_av.size == 0:
        nan = float("nan")
        return {"a": nan, "v": nan, "av": nan}
    return {
        "a": float(np.mean(hit_a & fail_av)),
        "v": float(np.mean(hit_v & fail_av)),
        "av": float(np.mean(hit_a & hit_v & fail_av)),
    }
