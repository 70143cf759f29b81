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
    Positives are sparse (a few labels per clip out of hundreds of classes), so the AUC sums run
    over the positives only: for each positive we need the number of negatives ranked strictly
    below its tie group and inside it (ROC AUC, ties count one half) and the number of positives
    and negatives ranked at or above its tie group (precision at that threshold, for AP).
    """

    def __init__(self, scores: np.ndarray):
        scores = np.asarray(scores)
        n, C = scores.shape
        self.n, self.C = n, C
        cols = np.ascontiguousarray(scores.T)  # (C, n)
        order = np.argsort(cols, axis=1)  # ascending; order inside a tie is irrelevant
        self.order = order
        sorted_vals = np.take_along_axis(cols, order, axis=1)
        pos = np.arange(n, dtype=np.int32)
        same_as_prev = np.zeros((C, n), dtype=bool)
        if n > 1:
            same_as_prev[:, 1:] = sorted_vals[:, 1:] == sorted_vals[:, :-1]
        self.has_ties = bool(same_as_prev.any())
        if self.has_ties:
            # first / last sorted position of each element's tie group
            self.gstart = np.maximum.accumulate(np.where(same_as_prev, 0, pos), axis=1).astype(np.int32)
            same_as_next = np.zeros((C, n), dtype=bool)
            same_as_next[:, :-1] = same_as_prev[:, 1:]
            rev = np.where(same_as_next, n, pos)[:, ::-1]
            self.gend = np.minimum.accumulate(rev, axis=1)[:, ::-1].astype(np.int32)
        # rank[c, r] = sorted position of clip r for class c
        self.rank = np.empty((C, n), dtype=np.int32)
        np.put_along_axis(self.rank, order, np.broadcast_to(pos, (C, n)), axis=1)

    def auc(self, truth: np.ndarray, rows: np.ndarray | None = None):
        """Macro AUC-ROC and AUC-PR over classes with >=1 positive and >=1 negative among ``rows``.

        truth: bool [n, C] aligned with the scores; rows: bool [n] (default: all rows).
        Returns (auc_roc, auc_pr); 0.0 when no class qualifies (as the reference does).
        """
        n, C = self.n, self.C
        truth = np.asarray(truth, dtype=bool)
        all_rows = rows is None or bool(np.all(rows))
        if all_rows:
            pos_mask = truth
            n_rows = n
        else:
            rows = np.asarray(rows, dtype=bool)
            pos_mask = truth & rows[:, None]
            n_rows = int(rows.sum())
        rr, cc = np.nonzero(pos_mask)
        P = np.bincount(cc, minlength=C).astype(np.float64)
        N = n_rows - P
        if rr.size == 0:
            return 0.0, 0.0
        p = self.rank[cc, rr].astype(np.int64)
        if self.has_ties:
            gs = self.gstart[cc, p].astype(np.int64)
            ge = self.gend[cc, p].astype(np.int64)
        else:
            gs = ge = p
        # clips of the subset ranked below the group / up to the group's end
        if all_rows:
            rows_below = gs
            rows_upto = ge + 1
        else:
            rows_sorted = rows[self.order]  # (C, n)
            cum = np.cumsum(rows_sorted, axis=1, dtype=np.int32)
            rows_upto = cum[cc, ge].astype(np.int64)
            rows_below = (cum[cc, gs] - rows_sorted[cc, gs]).astype(np.int64)
        # positives of the same class ranked below the group / up to its end
        key = cc.astype(np.int64) * n + p
        skey = np.sort(key)
        base = np.searchsorted(skey, cc.astype(np.int64) * n, side="left")
        pos_below = np.searchsorted(skey, cc.astype(np.int64) * n + gs, side="left") - base
        pos_upto = np.searchsorted(skey, cc.astype(np.int64) * n + ge, side="right") - base
        neg_below = rows_below - pos_below
        neg_in_group = (rows_upto - rows_below) - (pos_upto - pos_below)
        # ROC AUC = P(score_pos > score_neg) + 0.5 P(tie)
        roc_num = np.bincount(cc, weights=neg_below + 0.5 * neg_in_group, minlength=C)
        # AP = sum over positives of the precision at their threshold, / P
        tp_at = P[cc] - pos_below
        fp_at = N[cc] - neg_below
        ap_num = np.bincount(cc, weights=tp_at / (tp_at + fp_at), minlength=C)
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
