"""Synthetic predictions for tests and benchmarks (deterministic given a seed)."""

from __future__ import annotations

import numpy as np

from .labels import INPUTS, LabelSet


def synthetic_predictions(
    labels: LabelSet,
    *,
    seed: int = 0,
    kind: str = "scores",
    coverage: float = 0.97,
    ties: bool = False,
    skill: float = 2.0,
    float32: bool = False,
) -> dict:
    """A VGGSounder prediction mapping correlated with ``labels``.

    kind: "scores" (logits, as lists of floats) or "labels" (label sets).
    coverage: share of the label set's clips that get an entry (the rest are missing).
    ties: round scores to one decimal so many ties occur (exercises tie handling).
    """
    rng = np.random.default_rng(seed)
    n, C = len(labels), len(labels.classes)
    keep = rng.random(n) < coverage
    truths = {"a": labels.truth("a"), "v": labels.truth("v"), "av": labels.truth("all")}
    out = {}
    rows = np.flatnonzero(keep)
    for inp in INPUTS:
        noise = rng.normal(size=(len(rows), C))
        s = noise + skill * truths[inp][rows] * rng.random((len(rows), 1))
        if ties:
            s = np.round(s, 1)
        truths[inp] = s
    for j, r in enumerate(rows):
        vid = str(labels.video_ids[r])
        if j % 7 == 3:
            vid = vid + ".mp4"  # the reference strips ".mp4"
        entry = {}
        if kind == "scores":
            entry["logits"] = {
                inp: (truths[inp][j].astype(np.float32) if float32 else truths[inp][j].tolist()) for inp in INPUTS
            }
        else:
            preds = {}
            for inp in INPUTS:
                row = truths[inp][j]
                thr = 1.2 + 0.6 * rng.random()
                chosen = np.flatnonzero(row > thr)
                preds[inp] = [labels.classes[c] for c in chosen]
            entry["predictions"] = preds
        out[vid] = entry
    return out
