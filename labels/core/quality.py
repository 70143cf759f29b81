"""Annotator quality from the gold standard (no Django); the leave-out comparison of merge methods on gold clips is
labels.core.card.compare_methods.
Catch-trial F1 comes from catalog.core.vocabulary.catch_scores, the function live scoring uses."""

from __future__ import annotations

import numpy as np

from catalog.core.vocabulary import catch_scores
from labels.core.votes import MOD_A, MOD_V, MODALITY_NAMES, Votes, _as_code


def catch_counts(votes: Votes, gold, catch_clips=None):
    """Per (group, catch clip) row: the group (assignment) and its annotator, the clip, and the clip's (tp, fp, fn)
    from catalog.core.vocabulary.catch_scores — the catch-trial scoring live assignments get, clip by clip (F1
    pools these counts over an assignment's catch clips).

    gold: {clip index: {class index: modality name or code}}. catch_clips: optional {group: (annotator index,
    [catch clip indices shown])}, the catch clips each assignment was shown, including those it has no annotation
    for in `votes` (reported as not playing): such a clip counts with nothing ticked, as in live scoring. Groups
    not in catch_clips count the gold clips they answered. Returns arrays (group, annotator, clip, tp, fp, fn, atoms)
    where atoms = the clip's gold atoms."""
    gold = gold or {}
    names = {
        c: {k: (m if isinstance(m, str) else MODALITY_NAMES.get(int(m), "-")) for k, m in labels.items()}
        for c, labels in gold.items()
    }
    on_gold = np.isin(votes.ann_clip, np.fromiter(names, dtype=np.int64, count=len(names)))
    ticks: dict[int, dict[int, tuple[bool, bool]]] = {}
    t_ann, t_cls, t_aud, t_vis = votes.unique_ticks()
    keep = on_gold[t_ann]
    for a, k, au, vi in zip(t_ann[keep].tolist(), t_cls[keep].tolist(), t_aud[keep].tolist(), t_vis[keep].tolist()):
        ticks.setdefault(a, {})[k] = (au, vi)
    shown: dict[int, tuple[int, dict[int, dict]]] = {}
    for a in np.flatnonzero(on_gold).tolist():
        group, clip = int(votes.ann_group[a]), int(votes.ann_clip[a])
        shown.setdefault(group, (int(votes.ann_worker[a]), {}))[1][clip] = ticks.get(a, {})
    for group, (worker, clips) in (catch_clips or {}).items():
        answered = shown.get(group, (worker, {}))[1]
        shown[group] = (worker, {c: answered.get(c, {}) for c in clips if c in names})
    rows = []
    for group, (worker, clips) in shown.items():
        for clip, answer in clips.items():
            _f1, _p, _r, tp, fp, fn = catch_scores({clip: names[clip]}, {clip: answer})
            rows.append((group, worker, clip, tp, fp, fn, tp + fn))
    cols = np.array(rows, dtype=np.int64).reshape(-1, 7)
    return tuple(cols[:, j] for j in range(7))


def worker_quality_from_gold(votes: Votes, gold, exclude_clips=None, catch_clips=None, counts=None) -> np.ndarray:
    """Mean catch F1 per annotator: each group's (assignment's) F1 pooled over its catch clips (see catch_counts),
    averaged over the annotator's scored groups; gold clips in exclude_clips are ignored, and a group left with no
    gold atom is not scored (as live scoring leaves such an assignment unscored). NaN for annotators with no scored
    group. `counts`: catch_counts(votes, gold, catch_clips), when the caller computes it once for many calls."""
    group, worker, clip, tp, fp, fn, atoms = counts if counts is not None else catch_counts(votes, gold, catch_clips)
    n_workers = len(votes.worker_quality)
    if exclude_clips is not None and len(exclude_clips):
        keep = ~np.isin(clip, np.asarray(list(exclude_clips), dtype=np.int64))
        group, worker, tp, fp, fn, atoms = group[keep], worker[keep], tp[keep], fp[keep], fn[keep], atoms[keep]
    if len(group) == 0:
        return np.full(n_workers, np.nan)
    groups, ginv = np.unique(group, return_inverse=True)
    g_tp, g_fp, g_fn, g_atoms = (np.bincount(ginv, weights=x, minlength=len(groups)) for x in (tp, fp, fn, atoms))
    g_worker = np.zeros(len(groups), dtype=np.int64)
    g_worker[ginv] = worker
    # F1 = 2TP / (2TP + FP + FN), 0 when the denominator is 0 (catalog.core.vocabulary.f1_from_counts); a group with
    # no gold atom is not scored
    denom = 2 * g_tp + g_fp + g_fn
    f1 = np.where(denom > 0, 2 * g_tp / np.maximum(denom, 1), 0.0)
    is_scored = g_atoms > 0
    total = np.bincount(g_worker, weights=np.where(is_scored, f1, 0.0), minlength=n_workers)
    scored = np.bincount(g_worker, weights=is_scored.astype(float), minlength=n_workers)
    return np.where(scored > 0, total / np.maximum(scored, 1), np.nan)


def macro_f1(pred: dict, gold: dict) -> tuple[float, dict]:
    """Macro-F1 over classes of audible/visible atoms. pred/gold: {clip: {class: modality}} over the same
    clips. A class counts when it occurs in gold or in the predictions. Returns (macro, {class: f1})."""
    tp: dict = {}
    fp: dict = {}
    fn: dict = {}
    for clip, g in gold.items():
        p = pred.get(clip, {})
        for cls in set(g) | set(p):
            gm, pm = _as_code(g.get(cls)), _as_code(p.get(cls))
            for bit in (MOD_A, MOD_V):
                gb, pb = bool(gm & bit), bool(pm & bit)
                tp[cls] = tp.get(cls, 0) + (gb and pb)
                fp[cls] = fp.get(cls, 0) + (pb and not gb)
                fn[cls] = fn.get(cls, 0) + (gb and not pb)
    per_class = {}
    for cls in tp:
        denom = 2 * tp[cls] + fp[cls] + fn[cls]
        if denom:
            per_class[cls] = 2 * tp[cls] / denom
    macro = float(np.mean(list(per_class.values()))) if per_class else 0.0
    return macro, per_class
