"""Vectorised VGGSounder metrics over multi-hot matrices (pure numpy).

Definitions follow ``vggsounder`` 1.0 (``vggsounder/benchmark.py``); every value is
a fraction here (the tables multiply by 100 like the paper).
"""

from __future__ import annotations

import numpy as np

TOP_KS = (1, 3, 5, 10)
AUC_CLASS_BLOCK = 16
"""Classes whose sorted scores :func:`auc_macro` holds at a time (16 x 150k clips x 4 bytes = 9.6 MB; with 64 the
copies of two subsets sorted at once were 108 of the 277 MiB a 150k-clip evaluation needs, and no faster)."""
TOPK_ROW_BLOCK = 8192
"""Clips :func:`topk_cells` ranks at a time (its temporary arrays are a few [block, C] matrices)."""
LABEL_METRICS = ("f1", "f1_macro", "accuracy", "jaccard", "precision", "recall", "hit_rate")


def _div(num, den):
    """num / den with 0 where den == 0 (sklearn's ``zero_division=0``)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.zeros(np.broadcast(num, den).shape, dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


class Positives:
    """The positive cells of a ground-truth matrix (few per clip), for sparse counting."""

    def __init__(self, truth: np.ndarray):
        truth = np.asarray(truth, dtype=bool)
        self.n, self.C = truth.shape
        self.rows, self.cols = np.nonzero(truth)
        self.per_class = np.bincount(self.cols, minlength=self.C)
        self.per_row = np.bincount(self.rows, minlength=self.n)

    @classmethod
    def from_cells(cls, rows: np.ndarray, cols: np.ndarray, n: int, C: int) -> "Positives":
        """From positive cells in row-major order (as ``np.nonzero`` gives them) of an [n, C] matrix."""
        self = cls.__new__(cls)
        self.n, self.C, self.rows, self.cols = int(n), int(C), rows, cols
        self.per_class = np.bincount(cols, minlength=self.C)
        self.per_row = np.bincount(rows, minlength=self.n)
        return self


def label_set_metrics(truth, pred: np.ndarray, *, per_class: dict | None = None) -> dict[str, float]:
    """Label-set metrics of ``pred`` (bool [n, C]) against ``truth`` (bool [n, C] or :class:`Positives`).

    micro F1/precision/recall/Jaccard over all (clip, class) cells, macro F1 over all
    C classes (a class with no positives and no predictions scores 0), subset accuracy
    (exact set match), hit rate (at least one correct label).
    """
    pos = truth if isinstance(truth, Positives) else Positives(truth)
    pred = np.asarray(pred, dtype=bool)
    return label_set_counts_metrics(
        pos,
        pred[pos.rows, pos.cols],
        np.count_nonzero(pred, axis=0),
        np.count_nonzero(pred, axis=1) if pos.n else None,
        per_class=per_class,
    )


def label_set_counts_metrics(
    pos: Positives, correct: np.ndarray, pred_c: np.ndarray, pred_row: np.ndarray | None, *, per_class=None
) -> dict[str, float]:
    """:func:`label_set_metrics` from counts: ``correct`` (bool per positive cell of ``pos``: predicted),
    ``pred_c`` (predictions per class) and ``pred_row`` (predictions per clip). With a ``per_class`` dict, its
    ``"f1"`` (F1 of each class, [C]) and ``"support"`` (positives of each class) are filled in too."""
    n, C = pos.n, pos.C
    tp_c = np.bincount(pos.cols[correct], minlength=C)
    fp_c = pred_c - tp_c
    fn_c = pos.per_class - tp_c
    if per_class is not None:
        per_class["f1"] = _div(2 * tp_c, 2 * tp_c + fp_c + fn_c)
        per_class["support"] = np.asarray(pos.per_class, dtype=np.int64)
    tp, fp, fn = int(tp_c.sum()), int(fp_c.sum()), int(fn_c.sum())
    if n:
        tp_row = np.bincount(pos.rows[correct], minlength=n)
        exact = float(np.mean((tp_row == pos.per_row) & (pred_row == pos.per_row)))
        hit = float(np.mean(tp_row > 0))
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


def topk_masks(scores: np.ndarray, ks=TOP_KS) -> dict[int, np.ndarray]:
    return topk_masks_top1(scores, ks, top1=False)[0]


def topk_masks_top1(scores: np.ndarray, ks=TOP_KS, *, top1: bool = True):
    """``(topk_masks(scores, ks), top1_index(scores))`` sharing one partial sort (top-1 is None
    without ``top1``)."""
    """``{k: bool [n, C]}`` with the k highest-scoring classes of each clip set.

    Equal to the reference's ``np.argsort(scores, axis=1)[:, -k:]`` including how ties are
    broken: a partial sort gives each row's k+1 largest values; rows whose k-th and (k+1)-th
    largest values are equal (a tie across the top-k boundary) are resolved with ``np.argsort``
    exactly like the reference; all other rows have exactly k classes scoring >= the k-th value.
    """
    scores = np.asarray(scores)
    n, C = scores.shape
    out: dict[int, np.ndarray] = {}
    ks = sorted(set(int(k) for k in ks))
    inner = [k for k in ks if 0 < k < C]
    if inner and n:
        kmax = max(inner)
        keep = kmax + 1  # k+1 largest values, to see ties across the boundary
        top = np.partition(scores, C - keep, axis=1)[:, C - keep :]
        top.sort(axis=1)  # top[:, keep - k] is each row's k-th largest score
    for k in ks:
        if k >= C:
            out[k] = np.ones((n, C), dtype=bool)
            continue
        if k <= 0 or n == 0:
            out[k] = np.zeros((n, C), dtype=bool)
            continue
        kth = top[:, keep - k]
        mask = scores >= kth[:, None]
        tied = np.flatnonzero(top[:, keep - k - 1] == kth)
        if tied.size:
            order = np.argsort(scores[tied], axis=1)
            fix = np.zeros((tied.size, C), dtype=bool)
            np.put_along_axis(fix, order[:, -k:], True, axis=1)
            mask[tied] = fix
        out[k] = mask
    if not top1:
        return out, None
    if not (inner and n) or C < 2:
        return out, top1_index(scores)
    best = np.argmax(scores, axis=1)
    tied = np.flatnonzero(top[:, -2] == top[:, -1])  # second largest equals the largest
    if tied.size:
        best[tied] = np.argsort(scores[tied], axis=1)[:, -1]
    return out, best


def topk_cells(scores: np.ndarray, ks=TOP_KS, *, top1: bool = True, block: int = TOPK_ROW_BLOCK, rows=None):
    """``({k: flat indices of the cells topk_masks(scores) sets, ascending}, top-1 index or None)``, ranked
    ``block`` clips at a time so that no [n, C] temporary is made (the masks of 4 k's of 150k clips would be
    185 MB each). Flat index = row * C + column; int32 when every index fits, else int64. With ``rows`` (row
    indices) the matrix ranked is ``scores[rows]``, taken a block at a time (no copy of the whole)."""
    scores = np.asarray(scores)
    n, C = scores.shape
    if rows is not None:
        n = len(rows)
    ks = sorted(set(int(k) for k in ks))
    dtype = np.int32 if n * C < 2**31 else np.int64
    parts: dict[int, list] = {k: [] for k in ks}
    best = []
    for start in range(0, n, max(1, int(block))):
        part = scores[start : start + block] if rows is None else scores[rows[start : start + block]]
        masks, b = topk_masks_top1(part, ks, top1=top1)
        for k, mask in masks.items():
            parts[k].append((np.flatnonzero(mask) + start * C).astype(dtype, copy=False))
        if top1:
            best.append(b)
    cells = {k: (np.concatenate(p) if p else np.zeros(0, dtype=dtype)) for k, p in parts.items()}
    return cells, ((np.concatenate(best) if best else np.zeros(0, dtype=np.int64)) if top1 else None)


def cells_contain(cells: np.ndarray, flat: np.ndarray) -> np.ndarray:
    """bool per entry of ``flat``: whether it is one of ``cells`` (ascending flat indices)."""
    if cells.size == 0:
        return np.zeros(flat.shape, dtype=bool)
    at = np.searchsorted(cells, flat)
    np.minimum(at, cells.size - 1, out=at)
    return cells[at] == flat


def top1_index(scores: np.ndarray) -> np.ndarray:
    """Index of the highest score per clip, ties broken like ``np.argsort(scores, axis=1)[:, -1]``."""
    scores = np.asarray(scores)
    n, C = scores.shape
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    best = np.argmax(scores, axis=1)
    if C > 1:
        two = np.partition(scores, C - 2, axis=1)[:, C - 2 :]
        tied = np.flatnonzero(two[:, 0] == two[:, 1])  # second largest equals the largest
        if tied.size:
            best[tied] = np.argsort(scores[tied], axis=1)[:, -1]
    return best


def topk_metrics(truth, masks: dict[int, np.ndarray]) -> dict[str, float]:
    truth = truth if isinstance(truth, Positives) else Positives(truth)
    out = {}
    for k, mask in masks.items():
        for name, value in label_set_metrics(truth, mask).items():
            out[f"{name}@{k}"] = value
    return out


def auc_macro(
    truth, scores: np.ndarray | None, *, sorted_cols=None, pos_values: np.ndarray | None = None, per_class=None
):
    """Macro AUC-ROC and AUC-PR (average precision) over classes with >=1 positive.

    truth: bool [n, C] (or its :class:`Positives`); scores: [n, C]. Instead of ``scores``, a caller that has
    the columns sorted already may pass ``sorted_cols`` (``valid`` class indices -> [len(valid), n] array of
    each class's scores in ascending order) and ``pos_values`` (the score of each positive cell). Returns
    (auc_roc, auc_pr); 0.0 when no class has a positive (as the reference does). A class without negatives makes
    ROC AUC nan and has AP 1.0, as scikit-learn >= 1.6 (installed) reports them to the reference.

    Per class, positives are few: each positive's counts of negatives ranked below / tied with it (ROC AUC, ties
    count one half) and of positives and negatives ranked at or above it (precision at its threshold, for AP)
    come from binary searches in the sorted scores, so only one sort per class is needed. With a ``per_class``
    dict, its ``"ap"`` is filled in: each class's average precision ([C], NaN for a class without positives,
    1.0 for one without negatives).
    """
    pos = truth if isinstance(truth, Positives) else Positives(truth)
    n, C = pos.n, pos.C
    if per_class is not None:
        per_class["ap"] = np.full(C, np.nan)
    if n == 0:
        return 0.0, 0.0
    rr, cc = pos.rows, pos.cols
    P = pos.per_class
    N = n - P
    # classes whose clips are all positive: the installed scikit-learn (the reference calls
    # roc_auc_score / average_precision_score per class) gives ROC AUC = nan and AP = 1.0 for them,
    # and the reference averages them in; mirror that so the numbers stay identical
    all_pos = int(np.count_nonzero((P > 0) & (N == 0)))
    valid = np.flatnonzero((P > 0) & (N > 0))
    if per_class is not None:
        per_class["ap"][(P > 0) & (N == 0)] = 1.0
    if valid.size == 0:
        if all_pos:
            return float("nan"), 1.0
        return 0.0, 0.0

    def sorted_block(classes):
        if sorted_cols is not None:
            return sorted_cols(classes)
        block = np.ascontiguousarray(scores.T[classes])
        block.sort(axis=1)
        return block

    keep = np.isin(cc, valid)
    cc, rr = cc[keep], rr[keep]
    vals = scores[rr, cc] if pos_values is None else pos_values[keep]
    # positives ordered by (class, score): ties among a class's positives are runs of equal values
    order = np.lexsort((vals, cc))
    cc, vals = cc[order], vals[order]
    m = cc.size
    new_run = np.ones(m, dtype=bool)
    new_run[1:] = (cc[1:] != cc[:-1]) | (vals[1:] != vals[:-1])
    run_id = np.cumsum(new_run) - 1
    run_start = np.flatnonzero(new_run)
    run_end = np.append(run_start[1:], m)
    class_start = np.searchsorted(cc, cc, side="left")
    plo = run_start[run_id] - class_start  # positives of the class scored below
    phi = run_end[run_id] - class_start  # ... at or below
    # clips scored below / at or below each positive: binary search in its class's sorted scores
    lo = np.empty(m, dtype=np.int64)
    hi = np.empty(m, dtype=np.int64)
    bounds = np.searchsorted(cc, valid, side="left")
    bounds = np.append(bounds, m)
    for first in range(0, valid.size, AUC_CLASS_BLOCK):  # sorted scores of a few classes at a time
        cols = sorted_block(valid[first : first + AUC_CLASS_BLOCK])
        for j in range(first, first + cols.shape[0]):
            a, b = bounds[j], bounds[j + 1]
            v = vals[a:b]
            lo[a:b] = cols[j - first].searchsorted(v, "left")
            hi[a:b] = cols[j - first].searchsorted(v, "right")
        del cols
    neg_below = lo - plo
    neg_tied = (hi - lo) - (phi - plo)
    p, q = P[cc].astype(np.float64), N[cc].astype(np.float64)
    tp_at = p - plo  # positives scored at or above this positive
    fp_at = q - neg_below  # negatives scored at or above
    slot = np.searchsorted(valid, cc)
    roc = np.bincount(slot, weights=neg_below + 0.5 * neg_tied, minlength=valid.size) / (P[valid] * N[valid])
    ap = np.bincount(slot, weights=tp_at / (tp_at + fp_at), minlength=valid.size) / P[valid]
    if per_class is not None:
        per_class["ap"][valid] = ap
    if all_pos:
        return float("nan"), float((ap.sum() + all_pos) / (ap.size + all_pos))
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
