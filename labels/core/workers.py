"""Annotator quality beyond gold (pure, no Django): each annotator's catch-F1 trend over its assignments, and its
agreement with the merged labels of a release on the clips it answered (non-gold clips: a signal that does not
depend on the few catch trials)."""

from __future__ import annotations

import numpy as np

from labels.core.votes import MOD_A, MOD_V, Votes


def catch_trend(f1s) -> dict:
    """Catch F1 of one annotator's assignments in submission order -> n, mean, first and last (means of the first /
    last up to 5), slope per assignment (least squares; None below 3 assignments), the values themselves."""
    f = np.asarray([x for x in f1s if x is not None], dtype=float)
    if not len(f):
        return {"n": 0, "mean": None, "first": None, "last": None, "slope": None, "values": []}
    head, tail = f[:5], f[-5:]
    slope = float(np.polyfit(np.arange(len(f)), f, 1)[0]) if len(f) >= 3 else None
    return {
        "n": int(len(f)),
        "mean": round(float(f.mean()), 4),
        "first": round(float(head.mean()), 4),
        "last": round(float(tail.mean()), 4),
        "slope": None if slope is None else round(slope, 4),
        "values": [round(float(x), 3) for x in f],
    }


def agreement_with_merged(votes: Votes, merged: dict, clips=None) -> dict:
    """Per annotator index: micro-F1 (and precision, recall) of its audible/visible ticks against the merged labels
    `merged` {clip index: {class index: code}} over the clips it annotated that are in `merged` (and in `clips`
    when given). Returns {annotator: {"clips", "f1", "precision", "recall"}}."""
    allowed = set(merged) if clips is None else set(merged) & set(clips)
    t_ann, t_cls, t_aud, t_vis = votes.unique_ticks()
    ticks: dict[int, dict[int, int]] = {}
    for a, k, au, vi in zip(t_ann.tolist(), t_cls.tolist(), t_aud.tolist(), t_vis.tolist()):
        ticks.setdefault(a, {})[k] = MOD_A * au + MOD_V * vi
    counts: dict[int, list[int]] = {}
    for a, (clip, w) in enumerate(zip(votes.ann_clip.tolist(), votes.ann_worker.tolist())):
        if clip not in allowed:
            continue
        mine, truth = ticks.get(a, {}), merged[clip]
        c = counts.setdefault(w, [0, 0, 0, 0])
        c[0] += 1
        for k in set(mine) | set(truth):
            for bit in (MOD_A, MOD_V):
                p, g = bool(mine.get(k, 0) & bit), bool(truth.get(k, 0) & bit)
                c[1] += p and g
                c[2] += p and not g
                c[3] += g and not p
    out = {}
    for w, (n, tp, fp, fn) in counts.items():
        out[w] = {
            "clips": n,
            "f1": round(2 * tp / (2 * tp + fp + fn), 4) if 2 * tp + fp + fn else None,
            "precision": round(tp / (tp + fp), 4) if tp + fp else None,
            "recall": round(tp / (tp + fn), 4) if tp + fn else None,
        }
    return out
