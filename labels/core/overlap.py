"""Adaptive overlap (pure, no Django): which clips need another annotator. Instead of a fixed 3+ annotators per clip,
a clip stops at `min_votes` when the merge is confident about every (class, audible|visible) atom of it, and gets
one more annotator at a time — up to `max_votes` — while some atom's posterior is uncertain.

The posterior comes from the EM merge (labels.core.merge with posteriors=True: P(audible), P(visible) per atom);
a clip's uncertainty is its expected number of wrong atoms, the sum over its atoms of min(p, 1 - p). A clip is done
when it has max_votes annotations, or at least min_votes and either its annotators all gave the same answer
(unanimous, when stop_when_unanimous) or its expected wrong atoms are at most max_expected_errors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labels.core.merge import merge
from labels.core.votes import Votes, duplicate_votes


@dataclass
class OverlapPlan:
    votes: np.ndarray  # annotations per clip (one per annotator)
    uncertainty: np.ndarray  # per clip, 0..0.5 (0 for clips without atoms)
    need: np.ndarray  # bool per clip: ask one more annotator
    done: np.ndarray  # bool per clip: enough votes
    params: dict


def clip_uncertainty(n_clips: int, n_classes: int, posteriors: dict | None) -> np.ndarray:
    """Expected wrong atoms per clip: sum of min(p, 1-p) over its (class, audible|visible) atoms."""
    if not posteriors:
        return np.zeros(n_clips)
    clip = posteriors["atom_key"] // n_classes
    pa, pv = posteriors["audible"], posteriors["visible"]
    u = np.minimum(pa, 1 - pa) + np.minimum(pv, 1 - pv)
    return np.bincount(clip, weights=u, minlength=n_clips)


def unanimous(votes: Votes, used: np.ndarray) -> np.ndarray:
    """Bool per clip: every used annotation of the clip ticked exactly the same (class, audible, visible) set and
    the same meta labels (True for clips with fewer than two annotations)."""
    ann = np.flatnonzero(used)
    t_ann, t_cls, t_aud, t_vis = votes.unique_ticks()
    keep = used[t_ann]
    # a hash of each annotation's answer: sum of a random code per (class, flags) and per meta label
    rng = np.random.default_rng(12345)
    code_cls = rng.integers(1, 2**40, size=(votes.n_classes, 4))
    code_meta = rng.integers(1, 2**40, size=votes.ann_meta.shape[1] if votes.ann_meta.ndim == 2 else 0)
    h = np.zeros(len(votes.ann_clip), dtype=np.int64)
    np.add.at(h, t_ann[keep], code_cls[t_cls[keep], t_aud[keep] * 1 + t_vis[keep] * 2])
    if len(code_meta):
        h += (votes.ann_meta.astype(np.int64) * code_meta).sum(axis=1)
    lo = np.full(votes.n_clips, np.iinfo(np.int64).max)
    hi = np.full(votes.n_clips, np.iinfo(np.int64).min)
    np.minimum.at(lo, votes.ann_clip[ann], h[ann])
    np.maximum.at(hi, votes.ann_clip[ann], h[ann])
    return (lo == hi) | (np.bincount(votes.ann_clip[ann], minlength=votes.n_clips) < 2)


def plan_overlap(
    votes: Votes,
    *,
    gold=None,
    method: str = "modality_ds",
    min_votes: int = 2,
    max_votes: int = 5,
    max_expected_errors: float = 0.5,
    stop_when_unanimous: bool = True,
    clips=None,
) -> OverlapPlan:
    """Which clips (of `clips`, default all non-gold clips) need another annotator; see the module doc."""
    if not 1 <= min_votes <= max_votes:
        raise ValueError(f"need 1 <= min_votes <= max_votes; got min_votes={min_votes}, max_votes={max_votes}")
    if not max_expected_errors >= 0:
        raise ValueError(f"max_expected_errors must be 0 or more; got {max_expected_errors}")
    dup = duplicate_votes(votes)
    n = np.bincount(votes.ann_clip[~dup], minlength=votes.n_clips)
    res = merge(votes, method, gold=gold, k=1, posteriors=True)
    unc = clip_uncertainty(votes.n_clips, votes.n_classes, res.p_true)
    scope = np.zeros(votes.n_clips, dtype=bool)
    if clips is None:
        scope[:] = True
        if gold:
            scope[list(gold)] = False
    else:
        scope[np.asarray(list(clips), dtype=np.int64)] = True
    agree = unanimous(votes, ~dup) if stop_when_unanimous else np.zeros(votes.n_clips, dtype=bool)
    done = (n >= max_votes) | ((n >= min_votes) & (agree | (unc <= max_expected_errors)))
    need = scope & ~done
    return OverlapPlan(
        votes=n,
        uncertainty=unc,
        need=need,
        done=scope & done,
        params={
            "method": method,
            "min_votes": min_votes,
            "max_votes": max_votes,
            "max_expected_errors": max_expected_errors,
            "stop_when_unanimous": stop_when_unanimous,
        },
    )
