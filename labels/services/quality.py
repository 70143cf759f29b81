"""The inputs of a fair quality measurement from loaded votes (labels.services.load): the annotations that must not
vote on a held-out gold clip (the experts who made the gold), the gold meta labels (the experts' majority on each
gold clip), and the release's quality card (labels.core.card). Reads only; releases store the card in their stats."""

from __future__ import annotations

import numpy as np

from catalog.core.vocabulary import META_LABELS
from labels.core.card import quality_card, worker_quality


def expert_annotations(loaded) -> np.ndarray:
    """Bool per annotation: made by an in-house expert (annotator key ("expert", user id))."""
    is_expert = np.array([key[0] == "expert" for key in loaded.annotator_keys], dtype=bool)
    votes = loaded.votes
    return is_expert[votes.ann_worker] if len(is_expert) else np.zeros(len(votes.ann_clip), dtype=bool)


def gold_meta(loaded) -> dict:
    """{gold clip: [bool]*3}: the strict majority of the experts' meta labels on each gold clip they annotated."""
    votes = loaded.votes
    experts = expert_annotations(loaded)
    out = {}
    for c in loaded.gold:
        rows = votes.ann_meta[experts & (votes.ann_clip == c)]
        if len(rows):
            out[c] = [bool(x) for x in (rows.sum(axis=0) * 2 > len(rows))]
    return out if any(len(v) == len(META_LABELS) for v in out.values()) else {}


def apply_worker_quality(loaded) -> None:
    """Set the votes' annotator quality to the one definition releases and comparisons share
    (labels.core.card.worker_quality: this dataset's approved assignments' catch F1)."""
    loaded.votes.worker_quality = worker_quality(loaded.votes, loaded.gold, loaded.catch_clips)


def release_quality_card(loaded, method: str, k: int, params: dict | None = None, *, seed: int = 0) -> dict:
    """The quality card of merging `loaded` with `method` (see labels.core.card.quality_card)."""
    card = quality_card(
        loaded.votes,
        loaded.gold,
        method,
        k=k,
        params={key: v for key, v in (params or {}).items() if key in ("n_iter", "tol", "floor")},
        catch_clips=loaded.catch_clips,
        exclude_ann=expert_annotations(loaded),
        gold_meta=gold_meta(loaded),
        class_names=loaded.class_names,
        em_folds=5,  # EM methods refit once per fold: 5 folds of gold + 2,000 other clips keep a release quick
        em_sample=2000,
        seed=seed,
    )
    return card
