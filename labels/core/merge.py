"""Pure merging of crowd annotations into one label set per clip (no Django).

Everything works on flat numpy arrays (see `labels.core.votes.Votes`): one row per annotation (a worker's answer for one
clip) and one row per tick (a class the annotation marked audible and/or visible). A class an annotation
did not tick counts as "no" for both flags.

Methods (``METHODS``):

- ``majority`` (default): per clip rank its annotations by their annotator's mean catch-trial F1 (unknown
  F1 ranks last; ties keep load order), keep the top ``k``, and take a strict majority per (class,
  audible), per (class, visible) and per meta label. A class is in the set when audible or visible won.
- ``weighted``: every annotation of the clip votes with weight = its annotator's F1 (unknown F1: the mean
  of the known ones); a flag wins when its weighted yes-share is above one half.
- ``shrunk_ds``: Dawid–Skene with shrinkage (labels.core.aggregators.fit_shrunk): confusions shrunk towards the
  pooled confusion of the flag, and a per-(class, flag) prior shrunk towards the flag's prior.
- ``dawid_skene``: Dawid–Skene EM (labels.core.dawid_skene) over binary atoms (clip, class,
  audible|visible) and (clip, meta label); every annotator has its own 2x2 confusion matrix per flag;
  the gold clips' atoms can be clamped to the gold answer.

Every method counts one vote per annotator and clip (merge() drops all but the latest submission of an annotator
for a clip and flags the others in ``MergeResult.duplicate``).

Clips with fewer than ``k`` (``min_annotations``) annotations are not merged; they are reported in
``MergeResult.needs_annotation``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from catalog.core.vocabulary import META_LABELS
from labels.core.aggregators import fit_categorical, fit_shrunk
from labels.core.dawid_skene import dawid_skene_binary
from labels.core.votes import (
    MODALITY_NAMES,
    Votes,
    _atoms,
    _gold_arrays,
    annotations_by_clip,
    atom_answers,
    duplicate_votes,
    modality_code,
    select_annotations,
    unique_inverse,
)

METHODS = ("majority", "weighted", "dawid_skene", "shrunk_ds", "modality_ds")
EM_METHODS = ("dawid_skene", "shrunk_ds", "modality_ds")  # fitted by EM: gold clamped, posteriors


@dataclass
class MergeResult:
    """Merged label sets.

    clips: indices of merged clips (sorted); meta: [len(clips), 3] bool in META_LABELS order;
    label_clip/label_class/label_modality: one row per final label (sorted by clip then class; modality
    1=A, 2=V, 3=AV); needs_annotation: clip indices with fewer annotations than required (with at least one
    annotation or all clips, see merge()); n_annotations: annotations per clip; used: bool per annotation,
    whether it took part in the vote.
    """

    clips: np.ndarray
    meta: np.ndarray
    label_clip: np.ndarray
    label_class: np.ndarray
    label_modality: np.ndarray
    needs_annotation: np.ndarray
    n_annotations: np.ndarray
    used: np.ndarray
    method: str = "majority"
    params: dict = field(default_factory=dict)
    duplicate: np.ndarray | None = None  # bool per annotation: an earlier vote of the same annotator on the clip
    p_true: dict | None = None  # shrunk_ds / dawid_skene: {(clip, class): (P(audible), P(visible))} when asked

    def label_sets(self, clip_ids=None, class_names=None) -> dict:
        """{clip: {class: "A"|"V"|"AV"}} for every merged clip (names when id lists are given)."""
        out = {}
        for c in self.clips.tolist():
            out[clip_ids[c] if clip_ids is not None else c] = {}
        for c, k, m in zip(self.label_clip.tolist(), self.label_class.tolist(), self.label_modality.tolist()):
            out[clip_ids[c] if clip_ids is not None else c][class_names[k] if class_names is not None else k] = (
                MODALITY_NAMES[m]
            )
        return out

    def meta_of(self, clip_ids=None) -> dict:
        return {
            (clip_ids[c] if clip_ids is not None else c): dict(zip(META_LABELS, map(bool, row)))
            for c, row in zip(self.clips.tolist(), self.meta.tolist())
        }


# -- helpers ------------------------------------------------------------------------------------------------


def _eligible(votes: Votes, min_annotations: int):
    n_ann = np.bincount(votes.ann_clip, minlength=votes.n_clips)
    eligible = n_ann >= max(int(min_annotations), 1)
    needs = np.flatnonzero(~eligible)
    return n_ann, eligible, needs


def _rank_within_clip(votes: Votes, quality: np.ndarray) -> np.ndarray:
    """Rank (0 = best) of each annotation among its clip's annotations by quality desc; NaN last; ties by
    annotation order."""
    n = len(votes.ann_clip)
    q = np.where(np.isnan(quality), -np.inf, quality)
    order = np.lexsort((np.arange(n), -q, votes.ann_clip))
    sorted_clip = votes.ann_clip[order]
    starts = np.searchsorted(sorted_clip, sorted_clip, side="left")
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - starts
    return rank


def _weighted_decision(votes: Votes, weight: np.ndarray, eligible: np.ndarray, used: np.ndarray, method, params, n_ann):
    """Common tail: a flag wins when sum(weight*yes) > 0.5 * sum(weight) over the clip's used annotations."""
    weight = np.where(used, weight, 0.0)
    total = np.bincount(votes.ann_clip, weights=weight, minlength=votes.n_clips)
    t_ann, t_cls, t_aud, t_vis = votes.unique_ticks()
    keep = used[t_ann]
    t_ann, t_cls, t_aud, t_vis = t_ann[keep], t_cls[keep], t_aud[keep], t_vis[keep]
    t_clip = votes.ann_clip[t_ann]
    key = t_clip * votes.n_classes + t_cls
    if len(key):
        ukey, inv = unique_inverse(key)  # sort + diff (np.unique: 11 s at 150k clips)
        w = weight[t_ann]
        aud_w = np.bincount(inv, weights=w * t_aud, minlength=len(ukey))
        vis_w = np.bincount(inv, weights=w * t_vis, minlength=len(ukey))
        u_clip = ukey // votes.n_classes
        u_cls = ukey % votes.n_classes
        half = 0.5 * total[u_clip]
        # small tolerance so that exact ties (2 of 4) count as lost despite float rounding
        aud_win = aud_w > half + 1e-9 * np.maximum(total[u_clip], 1)
        vis_win = vis_w > half + 1e-9 * np.maximum(total[u_clip], 1)
        mod = modality_code(aud_win, vis_win)
        sel = (mod > 0) & eligible[u_clip] & (total[u_clip] > 0)
        label_clip, label_class, label_mod = u_clip[sel], u_cls[sel], mod[sel]
    else:
        label_clip = label_class = np.zeros(0, dtype=np.int64)
        label_mod = np.zeros(0, dtype=np.int8)
    meta_w = (
        np.stack(
            [
                np.bincount(votes.ann_clip, weights=weight * votes.ann_meta[:, j], minlength=votes.n_clips)
                for j in range(len(META_LABELS))
            ],
            axis=1,
        )
        if len(META_LABELS)
        else np.zeros((votes.n_clips, 0))
    )
    meta_win = meta_w > (0.5 * total + 1e-9 * np.maximum(total, 1))[:, None]
    clips = np.flatnonzero(eligible)
    return MergeResult(
        clips=clips,
        meta=meta_win[clips],
        label_clip=label_clip,
        label_class=label_class,
        label_modality=label_mod.astype(np.int8),
        needs_annotation=np.flatnonzero(~eligible),
        n_annotations=n_ann,
        used=used,
        method=method,
        params=params,
    )


# -- methods ------------------------------------------------------------------------------------------------


def merge_majority(votes: Votes, k: int = 3, worker_quality=None) -> MergeResult:
    """Top-k annotators by catch-trial F1, strict majority per (class, flag) and meta label."""
    k = int(k)
    if k < 1:
        raise ValueError(f"k must be at least 1; got {k}")
    n_ann, eligible, _ = _eligible(votes, k)
    quality = votes.annotation_quality(worker_quality)
    rank = _rank_within_clip(votes, quality)
    used = (rank < k) & eligible[votes.ann_clip]
    return _weighted_decision(votes, np.ones(len(votes.ann_clip)), eligible, used, "majority", {"k": k}, n_ann)


def merge_weighted(votes: Votes, k: int = 3, worker_quality=None, floor: float = 0.01) -> MergeResult:
    """Every annotation votes with its annotator's F1 (unknown: mean of known F1s, floor `floor`)."""
    n_ann, eligible, _ = _eligible(votes, k)
    quality = votes.annotation_quality(worker_quality)
    known = quality[~np.isnan(quality)]
    fill = float(known.mean()) if len(known) else 1.0
    weight = np.maximum(np.where(np.isnan(quality), fill, quality), floor)
    used = eligible[votes.ann_clip]
    return _weighted_decision(votes, weight, eligible, used, "weighted", {"k": int(k), "floor": floor}, n_ann)


DS_ATOM_CHUNK = 1 << 18  # atoms per pass when building Dawid–Skene's answer table (~60 MB of temporaries)


def _ds_answers(votes: Votes, atom_key: np.ndarray, used: np.ndarray, n_flags: int):
    """Dawid–Skene's long table, written chunk by chunk of atoms into preallocated compact arrays (int32 ids
    where they fit, bool answers) instead of concatenating int64 copies: ~9 bytes per answer. Tasks: atom*2 +
    flag (0 audible, 1 visible); meta tasks after all atom tasks: 2*n_atoms + r*n_meta + j, r the clip's rank
    among the clips with annotations (so every task id is used: Dawid–Skene takes them as they are, no copy).
    Workers: annotator*n_flags + flag."""
    n_meta = n_flags - 2
    n_atoms = len(atom_key)
    per_clip = np.bincount(votes.ann_clip[used], minlength=votes.n_clips)
    n_atom_answers = int(per_clip[atom_key // votes.n_classes].sum()) if n_atoms else 0
    n_total = 2 * n_atom_answers + n_meta * len(votes.ann_clip)
    max_task = 2 * n_atoms + votes.n_clips * n_meta
    task = np.empty(n_total, dtype=np.int32 if max_task < 2**31 - 1 else np.int64)
    # int16 workers while (worker, answer) pairs fit (up to 3,276 annotators): half the bytes
    worker = np.empty(
        n_total, dtype=np.int16 if 2 * (votes.ann_worker.max(initial=0) + 1) * n_flags < 2**15 else np.int32
    )
    label = np.empty(n_total, dtype=bool)
    ticks = votes.unique_ticks()
    ann_order = annotations_by_clip(votes, used)
    o = 0
    chunk = DS_ATOM_CHUNK
    for a in range(0, n_atoms, chunk):
        atom_row, ann, aud, vis = atom_answers(votes, atom_key[a : a + chunk], used, ticks=ticks, ann_order=ann_order)
        m = len(atom_row)
        atom_row += a
        w = votes.ann_worker[ann] * n_flags
        task[o : o + m] = atom_row * 2
        task[o + m : o + 2 * m] = atom_row * 2 + 1
        worker[o : o + m] = w
        worker[o + m : o + 2 * m] = w + 1
        label[o : o + m] = aud
        label[o + m : o + 2 * m] = vis
        o += 2 * m
    n = len(votes.ann_clip)
    rank = np.cumsum(np.bincount(votes.ann_clip, minlength=votes.n_clips) > 0) - 1
    ann_rank = rank[votes.ann_clip]
    del rank
    for j in range(n_meta):
        task[o : o + n] = 2 * n_atoms + ann_rank * n_meta + j
        worker[o : o + n] = votes.ann_worker * n_flags + 2 + j
        label[o : o + n] = votes.ann_meta[:, j]
        o += n
    return task, worker, label


def merge_dawid_skene(
    votes: Votes,
    k: int = 3,
    gold=None,
    n_iter: int = 100,
    tol: float = 1e-5,
    clamp_clips=None,
    model: str = "dawid_skene",
    worker_strength: float = 4.0,
    prior_strength: float = 10.0,
    posteriors: bool = False,
    threshold: float = 0.5,
) -> MergeResult:
    """Dawid–Skene (labels.core.dawid_skene, crowd-kit's formulation) with one 2x2 confusion matrix per
    annotator and flag.

    gold: {clip_idx: {class_idx: modality}} — the gold clips' answers; their atoms are clamped to the gold
    answer (classes of a gold clip that gold does not list are clamped to "no"). clamp_clips: optional subset
    of gold clips to clamp (leave-out evaluation clamps the others only).
    """
    n_ann, eligible, _ = _eligible(votes, k)
    used = np.ones(len(votes.ann_clip), dtype=bool)
    gc, gk, ga, gv = _gold_arrays(gold, votes.n_classes)
    clamp = np.asarray(sorted(gold or {}) if clamp_clips is None else sorted(clamp_clips), dtype=np.int64)
    clamp = clamp[n_ann[clamp] > 0] if len(clamp) else clamp  # a clip nobody answered has no tasks
    sel = np.isin(gc, clamp)
    gc, gk, ga, gv = gc[sel], gk[sel], ga[sel], gv[sel]
    gold_clip_set = clamp
    atom_key = _atoms(votes, gc, gk)
    n_atoms = len(atom_key)
    n_meta = len(META_LABELS)
    n_flags = 2 + n_meta
    task, worker, label = _ds_answers(votes, atom_key, used, n_flags)
    meta_offset = 2 * n_atoms
    # clamp gold atoms
    true_task, true_label = [], []
    if len(gold_clip_set):
        atom_clip = atom_key // votes.n_classes
        on_gold = np.isin(atom_clip, gold_clip_set)
        gkey = gc * votes.n_classes + gk
        pos = np.searchsorted(atom_key, gkey)
        gold_aud = np.zeros(n_atoms, dtype=bool)
        gold_vis = np.zeros(n_atoms, dtype=bool)
        gold_aud[pos] = ga
        gold_vis[pos] = gv
        rows = np.flatnonzero(on_gold)
        true_task = np.concatenate([rows * 2, rows * 2 + 1])
        true_label = np.concatenate([gold_aud[rows], gold_vis[rows]])
    if len(task) == 0:
        return _weighted_decision(
            votes,
            np.ones(len(votes.ann_clip)),
            eligible,
            used & eligible[votes.ann_clip],
            "dawid_skene",
            {"k": int(k)},
            n_ann,
        )
    if model in ("shrunk_ds", "modality_ds"):
        # prior group per task: (class, flag) for atoms, (meta label) for meta tasks; pool per worker: the flag
        t_flag = np.where(task < meta_offset, task % 2, 2 + (task - meta_offset) % n_meta)
        t_class = np.where(
            task < meta_offset, atom_key[np.minimum(task // 2, max(n_atoms - 1, 0))] % votes.n_classes, 0
        )
        # modality_ds fits the atoms below (fit_categorical); here only the meta labels
        sel = task >= meta_offset if model == "modality_ds" else np.ones(len(task), dtype=bool)
        fit = fit_shrunk(
            task[sel],
            worker[sel],
            label[sel],
            task_group=(t_class * n_flags + t_flag)[sel],
            worker_pool=worker[sel] % n_flags,
            n_iter=min(n_iter, 100),
            tol=tol,
            true_task=np.asarray(true_task, dtype=np.int64),
            true_label=np.asarray(true_label, dtype=bool),
            worker_strength=worker_strength,
            prior_strength=prior_strength,
        )
    else:
        fit = dawid_skene_binary(
            task,
            worker,
            label,
            n_iter=n_iter,
            tol=tol,
            true_task=np.asarray(true_task, dtype=np.int64),
            true_label=np.asarray(true_label, dtype=bool),
            overwrite=model != "modality_ds",  # only modality_ds reads `worker` after the fit
        )
    n_task_ids = int(task.max()) + 1
    if len(fit.tasks) == n_task_ids:  # every task id answered (as _ds_answers builds them): rows are ids
        p_true = fit.p_true
    else:
        p_true = np.zeros(n_task_ids)
        p_true[fit.tasks] = fit.p_true  # clamped atoms carry the gold answer
    fit.tasks = None
    if model == "modality_ds" and n_atoms:
        # the modality of every (clip, class) as one of none / A / V / AV, answers likewise (see fit_categorical)
        # the long table holds, chunk by chunk, the audible rows and then the visible rows of the same
        # (atom, annotator) pairs in the same order
        is_atom = task < meta_offset
        sel_a = np.flatnonzero(is_atom & (task % 2 == 0))
        sel_v = np.flatnonzero(is_atom & (task % 2 == 1))
        atom_row = task[sel_a].astype(np.int64) // 2
        if not (
            np.array_equal(task[sel_v] // 2, task[sel_a] // 2) and np.array_equal(worker[sel_v], worker[sel_a] + 1)
        ):
            raise RuntimeError("Dawid-Skene answer table: audible and visible rows are not paired")
        atom_class = atom_key[atom_row] % votes.n_classes
        true_rows = np.flatnonzero(np.isin(atom_key // votes.n_classes, gold_clip_set)) if len(gold_clip_set) else []
        cat_tasks, post, _it = fit_categorical(
            atom_row,
            worker[sel_a].astype(np.int64) // n_flags,
            label[sel_a].astype(np.int64) + 2 * label[sel_v].astype(np.int64),
            n_states=4,
            task_group=atom_class,
            n_iter=min(n_iter, 100),
            tol=max(tol, 1e-4),
            true_task=np.asarray(true_rows, dtype=np.int64),
            true_state=(
                np.asarray(true_label, dtype=np.int64)[: len(true_rows)]
                + 2 * np.asarray(true_label, dtype=np.int64)[len(true_rows) :]
            )
            if len(true_rows)
            else None,
            worker_strength=worker_strength,
            prior_strength=prior_strength,
        )
        p_true[cat_tasks * 2] = post[:, 1] + post[:, 3]
        p_true[cat_tasks * 2 + 1] = post[:, 2] + post[:, 3]
    del task, worker, label  # the answer table is spent: free it before the per-task results
    win = p_true > threshold
    post = None
    if posteriors and n_atoms:
        pa, pv = p_true[np.arange(n_atoms) * 2], p_true[np.arange(n_atoms) * 2 + 1]
        post = {"atom_key": atom_key, "audible": pa, "visible": pv}
    aud_win = win[np.arange(n_atoms) * 2] if n_atoms else np.zeros(0, bool)
    vis_win = win[np.arange(n_atoms) * 2 + 1] if n_atoms else np.zeros(0, bool)
    mod = modality_code(aud_win, vis_win)
    a_clip = atom_key // votes.n_classes
    sel = (mod > 0) & eligible[a_clip]
    meta_p = np.zeros((votes.n_clips, n_meta), dtype=bool)
    clips_with = np.flatnonzero(n_ann > 0)
    for j in range(n_meta):
        meta_p[clips_with, j] = win[meta_offset + np.arange(len(clips_with)) * n_meta + j]
    clips = np.flatnonzero(eligible)
    return MergeResult(
        clips=clips,
        meta=meta_p[clips],
        label_clip=a_clip[sel],
        label_class=atom_key[sel] % votes.n_classes,
        label_modality=mod[sel].astype(np.int8),
        needs_annotation=np.flatnonzero(~eligible),
        n_annotations=n_ann,
        used=used & eligible[votes.ann_clip],
        method=model,
        params={
            "k": int(k),
            "n_iter": n_iter,
            "tol": tol,
            "gold_clamped": int(len(gold_clip_set)),
            "iterations": fit.n_iter,
            **(
                {"worker_strength": worker_strength, "prior_strength": prior_strength}
                if model in ("shrunk_ds", "modality_ds")
                else {}
            ),
        },
        p_true=post,
    )


def merge(votes: Votes, method: str = "majority", *, gold=None, **params) -> MergeResult:
    """Dispatch to a merge method by name (see METHODS), counting one vote per annotator and clip: an annotator's
    earlier annotations of a clip are left out (flagged in the result's ``duplicate``; ``used`` is False for them)."""
    if method not in METHODS:
        raise ValueError(f"unknown merge method {method!r}; allowed: {', '.join(METHODS)}")
    dup = duplicate_votes(votes)
    base = select_annotations(votes, ~dup) if dup.any() else votes
    if method == "majority":
        res = merge_majority(base, **params)
    elif method == "weighted":
        res = merge_weighted(base, **params)
    else:
        res = merge_dawid_skene(base, gold=gold, model=method, **params)
    if dup.any():
        used = np.zeros(len(votes.ann_clip), dtype=bool)
        used[~dup] = res.used
        res.used = used
        res.params["duplicate_votes_ignored"] = int(dup.sum())
    res.duplicate = dup
    return res
