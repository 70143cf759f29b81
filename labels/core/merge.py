"""Pure merging of crowd annotations into one label set per clip (no Django).

Everything works on flat numpy arrays (see `Votes`): one row per annotation (a worker's answer for one
clip) and one row per tick (a class the annotation marked audible and/or visible). A class an annotation
did not tick counts as "no" for both flags.

Methods (``METHODS``):

- ``majority`` (default): per clip rank its annotations by their annotator's mean catch-trial F1 (unknown
  F1 ranks last; ties keep load order), keep the top ``k``, and take a strict majority per (class,
  audible), per (class, visible) and per meta label. A class is in the set when audible or visible won.
- ``weighted``: every annotation of the clip votes with weight = its annotator's F1 (unknown F1: the mean
  of the known ones); a flag wins when its weighted yes-share is above one half.
- ``dawid_skene``: Dawid–Skene EM (annotation.core.dawid_skene) over binary atoms (clip, class,
  audible|visible) and (clip, meta label); every annotator has its own 2x2 confusion matrix per flag;
  the gold clips' atoms can be clamped to the gold answer.

Clips with fewer than ``k`` (``min_annotations``) annotations are not merged; they are reported in
``MergeResult.needs_annotation``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from catalog.core.vocabulary import META_LABELS
from labels.core.dawid_skene import dawid_skene_binary

MOD_A, MOD_V, MOD_AV = 1, 2, 3
MODALITY_NAMES = {MOD_A: "A", MOD_V: "V", MOD_AV: "AV"}
MODALITY_CODES = {v: k for k, v in MODALITY_NAMES.items()}
METHODS = ("majority", "weighted", "dawid_skene")


def _as_code(modality) -> int:
    """A modality given as a name ("A", "V", "AV") or a code, as its code; other names ("-") and None: 0."""
    return MODALITY_CODES.get(modality, 0) if modality is None or isinstance(modality, str) else int(modality)


def modality_code(audible, visible):
    """Vectorised: 0 none, 1 A, 2 V, 3 AV."""
    return np.asarray(audible, dtype=np.int8) * MOD_A + np.asarray(visible, dtype=np.int8) * MOD_V


@dataclass
class Votes:
    """Approved annotations of a dataset as arrays.

    ann_*: one entry per annotation; tick_*: one entry per ticked class of an annotation;
    cand_*: optional extra (clip, class) candidates (e.g. the proposals shown), used by Dawid–Skene and
    agreement as atoms that were asked even if nobody ticked them. worker_quality: mean catch-trial F1 per
    annotator index (NaN = unknown). ann_group: optional assignment index per annotation (catch F1 is pooled
    per group and averaged per annotator, as in production); defaults to one group per annotation.
    """

    n_clips: int
    n_classes: int
    ann_clip: np.ndarray
    ann_worker: np.ndarray
    ann_meta: np.ndarray
    tick_ann: np.ndarray
    tick_class: np.ndarray
    tick_audible: np.ndarray
    tick_visible: np.ndarray
    worker_quality: np.ndarray
    ann_group: np.ndarray | None = None
    cand_clip: np.ndarray | None = None
    cand_class: np.ndarray | None = None

    def __post_init__(self):
        self.ann_clip = np.asarray(self.ann_clip, dtype=np.int64).reshape(-1)
        self.ann_worker = np.asarray(self.ann_worker, dtype=np.int64).reshape(-1)
        n = len(self.ann_clip)
        meta = np.asarray(self.ann_meta, dtype=bool)
        self.ann_meta = meta.reshape(n, len(META_LABELS)) if meta.size or n == 0 else meta
        self.tick_ann = np.asarray(self.tick_ann, dtype=np.int64).reshape(-1)
        self.tick_class = np.asarray(self.tick_class, dtype=np.int64).reshape(-1)
        self.tick_audible = np.asarray(self.tick_audible, dtype=bool).reshape(-1)
        self.tick_visible = np.asarray(self.tick_visible, dtype=bool).reshape(-1)
        self.worker_quality = np.asarray(self.worker_quality, dtype=np.float64).reshape(-1)
        if self.ann_group is None:
            self.ann_group = np.arange(n, dtype=np.int64)
        self.ann_group = np.asarray(self.ann_group, dtype=np.int64).reshape(-1)
        if self.cand_clip is None:
            self.cand_clip = np.zeros(0, dtype=np.int64)
            self.cand_class = np.zeros(0, dtype=np.int64)
        self.cand_clip = np.asarray(self.cand_clip, dtype=np.int64).reshape(-1)
        self.cand_class = np.asarray(self.cand_class, dtype=np.int64).reshape(-1)
        self._validate()

    # -- validation -------------------------------------------------------------------------------------
    def _validate(self):
        n = len(self.ann_clip)
        t = len(self.tick_ann)

        def check(name, arr, length, upper):
            if len(arr) != length:
                raise ValueError(f"Votes.{name} has {len(arr)} entries; expected {length}")
            if length and (arr.min() < 0 or arr.max() >= upper):
                raise ValueError(f"Votes.{name} holds an index outside 0..{upper - 1}")

        check("ann_clip", self.ann_clip, n, max(self.n_clips, 1))
        check("ann_worker", self.ann_worker, n, max(len(self.worker_quality), 1))
        if self.ann_meta.shape != (n, len(META_LABELS)):
            raise ValueError(f"Votes.ann_meta has shape {self.ann_meta.shape}; expected ({n}, {len(META_LABELS)})")
        check("ann_group", self.ann_group, n, np.iinfo(np.int64).max)
        check("tick_ann", self.tick_ann, t, max(n, 1))
        check("tick_class", self.tick_class, t, max(self.n_classes, 1))
        check("tick_audible", self.tick_audible, t, 2)
        check("tick_visible", self.tick_visible, t, 2)
        check("cand_clip", self.cand_clip, len(self.cand_class), max(self.n_clips, 1))
        check("cand_class", self.cand_class, len(self.cand_clip), max(self.n_classes, 1))

    # -- convenience ------------------------------------------------------------------------------------
    @classmethod
    def from_records(cls, clip_ids, class_names, annotations, quality=None, candidates=None):
        """Build from plain records (tests, small services).

        annotations: iterable of dicts {"clip": video_id, "worker": key, "meta": {name: bool|None} or a
        3-tuple in META_LABELS order, "labels": [{"name", "audible", "visible"}] or [(name, aud, vis)],
        optional "group": key}. quality: {worker key: F1 or None}. candidates: {video_id: [class names]}.
        Returns (votes, worker_keys).
        """
        clip_index = {c: i for i, c in enumerate(clip_ids)}
        class_index = {c: i for i, c in enumerate(class_names)}
        quality = quality or {}
        workers: dict = {}
        groups: dict = {}
        ann_clip, ann_worker, ann_meta, ann_group = [], [], [], []
        tick_ann, tick_class, tick_aud, tick_vis = [], [], [], []
        for a_idx, ann in enumerate(annotations):
            try:
                ann_clip.append(clip_index[ann["clip"]])
            except KeyError:
                raise ValueError(f"annotation {a_idx}: unknown clip {ann['clip']!r}") from None
            ann_worker.append(workers.setdefault(ann["worker"], len(workers)))
            ann_group.append(groups.setdefault(ann.get("group", ("ann", a_idx)), len(groups)))
            meta = ann.get("meta") or {}
            if isinstance(meta, dict):
                meta = [bool(meta.get(m)) for m in META_LABELS]
            ann_meta.append([bool(x) for x in meta])
            for lab in ann.get("labels", ()):
                if isinstance(lab, dict):
                    name, aud, vis = lab["name"], lab.get("audible"), lab.get("visible")
                else:
                    name, aud, vis = lab
                if name not in class_index:
                    raise ValueError(f"annotation {a_idx}: unknown class {name!r}")
                tick_ann.append(a_idx)
                tick_class.append(class_index[name])
                tick_aud.append(bool(aud))
                tick_vis.append(bool(vis))
        q = np.array([np.nan if quality.get(w) is None else float(quality[w]) for w in workers], dtype=float)
        cand_clip, cand_class = [], []
        for vid, names in (candidates or {}).items():
            for name in names:
                cand_clip.append(clip_index[vid])
                cand_class.append(class_index[name])
        votes = cls(
            n_clips=len(clip_index),
            n_classes=len(class_index),
            ann_clip=ann_clip,
            ann_worker=ann_worker,
            ann_meta=np.array(ann_meta, dtype=bool).reshape(-1, 3),
            tick_ann=tick_ann,
            tick_class=tick_class,
            tick_audible=tick_aud,
            tick_visible=tick_vis,
            worker_quality=q,
            ann_group=ann_group,
            cand_clip=cand_clip,
            cand_class=cand_class,
        )
        return votes, list(workers)

    def annotation_quality(self, worker_quality=None) -> np.ndarray:
        q = self.worker_quality if worker_quality is None else np.asarray(worker_quality, dtype=float)
        return q[self.ann_worker] if len(q) else np.full(len(self.ann_clip), np.nan)

    def unique_ticks(self):
        """(ann, class, audible, visible) with one row per (annotation, class); repeated ticks are OR-ed.
        Rows with neither flag are dropped. Sorted by annotation then class."""
        keep = self.tick_audible | self.tick_visible
        key = self.tick_ann[keep] * self.n_classes + self.tick_class[keep]
        aud = self.tick_audible[keep]
        vis = self.tick_visible[keep]
        if len(key) == 0:
            z = np.zeros(0, dtype=np.int64)
            return z, z, np.zeros(0, bool), np.zeros(0, bool)
        order = np.argsort(key, kind="stable")
        key, aud, vis = key[order], aud[order], vis[order]
        first = np.ones(len(key), dtype=bool)
        first[1:] = key[1:] != key[:-1]
        starts = np.flatnonzero(first)
        aud = np.logical_or.reduceat(aud, starts)
        vis = np.logical_or.reduceat(vis, starts)
        ukey = key[starts]
        return ukey // self.n_classes, ukey % self.n_classes, aud, vis

    def subset(self, clip_mask) -> "Votes":
        """Votes restricted to the annotations of clips where clip_mask is True (indices unchanged)."""
        clip_mask = np.asarray(clip_mask, dtype=bool)
        keep_ann = clip_mask[self.ann_clip]
        new_index = np.cumsum(keep_ann) - 1
        keep_tick = keep_ann[self.tick_ann]
        keep_cand = clip_mask[self.cand_clip]
        return Votes(
            n_clips=self.n_clips,
            n_classes=self.n_classes,
            ann_clip=self.ann_clip[keep_ann],
            ann_worker=self.ann_worker[keep_ann],
            ann_meta=self.ann_meta[keep_ann],
            ann_group=self.ann_group[keep_ann],
            tick_ann=new_index[self.tick_ann[keep_tick]],
            tick_class=self.tick_class[keep_tick],
            tick_audible=self.tick_audible[keep_tick],
            tick_visible=self.tick_visible[keep_tick],
            worker_quality=self.worker_quality,
            cand_clip=self.cand_clip[keep_cand],
            cand_class=self.cand_class[keep_cand],
        )


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
        ukey, inv = np.unique(key, return_inverse=True)
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


def _atoms(votes: Votes, extra_clip=None, extra_class=None):
    """Candidate (clip, class) pairs: every class ticked by any annotation of the clip, the proposals
    (votes.cand_*), and extra pairs (e.g. the gold labels of gold clips). Sorted unique keys."""
    t_ann, t_cls, _, _ = votes.unique_ticks()
    parts = [votes.ann_clip[t_ann] * votes.n_classes + t_cls, votes.cand_clip * votes.n_classes + votes.cand_class]
    if extra_clip is not None and len(extra_clip):
        parts.append(np.asarray(extra_clip, dtype=np.int64) * votes.n_classes + np.asarray(extra_class, dtype=np.int64))
    key = np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)
    # only atoms of clips that have annotations
    has_ann = np.bincount(votes.ann_clip, minlength=votes.n_clips) > 0
    key = key[has_ann[key // votes.n_classes]]
    return key


def atom_answers(votes: Votes, atom_key: np.ndarray, used=None):
    """Long table: for every atom and every (used) annotation of its clip, the annotation's (audible,
    visible) answer. Returns (atom_row, ann, audible, visible)."""
    n = len(votes.ann_clip)
    used = np.ones(n, dtype=bool) if used is None else used
    ann_idx = np.flatnonzero(used)
    order = ann_idx[np.argsort(votes.ann_clip[ann_idx], kind="stable")]
    sorted_clip = votes.ann_clip[order]
    atom_clip = atom_key // votes.n_classes
    start = np.searchsorted(sorted_clip, atom_clip, side="left")
    stop = np.searchsorted(sorted_clip, atom_clip, side="right")
    count = stop - start
    atom_row = np.repeat(np.arange(len(atom_key)), count)
    offset = np.arange(len(atom_row)) - np.repeat(np.cumsum(count) - count, count)
    ann = order[np.repeat(start, count) + offset]
    t_ann, t_cls, t_aud, t_vis = votes.unique_ticks()
    tick_key = t_ann * votes.n_classes + t_cls  # sorted
    query = ann * votes.n_classes + (atom_key % votes.n_classes)[atom_row]
    pos = np.searchsorted(tick_key, query)
    pos_c = np.minimum(pos, max(len(tick_key) - 1, 0))
    hit = (pos < len(tick_key)) & (tick_key[pos_c] == query) if len(tick_key) else np.zeros(len(query), bool)
    aud = np.where(hit, t_aud[pos_c] if len(tick_key) else False, False)
    vis = np.where(hit, t_vis[pos_c] if len(tick_key) else False, False)
    return atom_row, ann, aud, vis


def _gold_arrays(gold, n_classes):
    """gold: {clip_idx: {class_idx: modality code or name}} -> (clip, class, audible, visible) arrays."""
    gc, gk, ga, gv = [], [], [], []
    for c, labels in (gold or {}).items():
        for k, m in labels.items():
            code = _as_code(m)  # "-" or unknown: absent
            gc.append(c)
            gk.append(k)
            ga.append(bool(code & MOD_A))
            gv.append(bool(code & MOD_V))
    return (
        np.array(gc, dtype=np.int64),
        np.array(gk, dtype=np.int64),
        np.array(ga, dtype=bool),
        np.array(gv, dtype=bool),
    )


def merge_dawid_skene(
    votes: Votes, k: int = 3, gold=None, n_iter: int = 100, tol: float = 1e-5, clamp_clips=None
) -> MergeResult:
    """Dawid–Skene (annotation.core.dawid_skene, crowd-kit's formulation) with one 2x2 confusion matrix per
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
    atom_row, ann, aud, vis = atom_answers(votes, atom_key, used)
    n_atoms = len(atom_key)
    n_meta = len(META_LABELS)
    n_flags = 2 + n_meta
    # tasks: atom*2 + flag (0 audible, 1 visible); meta tasks after all atom tasks: offset + clip*3 + j
    task = np.concatenate([atom_row * 2, atom_row * 2 + 1])
    worker = np.concatenate([votes.ann_worker[ann] * n_flags, votes.ann_worker[ann] * n_flags + 1])
    label = np.concatenate([aud, vis])
    meta_offset = 2 * n_atoms
    ann_all = np.arange(len(votes.ann_clip))
    for j in range(n_meta):
        task = np.concatenate([task, meta_offset + votes.ann_clip * n_meta + j])
        worker = np.concatenate([worker, votes.ann_worker * n_flags + 2 + j])
        label = np.concatenate([label, votes.ann_meta[ann_all, j]])
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
    fit = dawid_skene_binary(
        task,
        worker,
        label,
        n_iter=n_iter,
        tol=tol,
        true_task=np.asarray(true_task, dtype=np.int64),
        true_label=np.asarray(true_label, dtype=bool),
    )
    p_true = np.zeros(int(task.max()) + 1)
    p_true[fit.tasks] = fit.p_true  # clamped atoms carry the gold answer
    win = p_true > 0.5
    aud_win = win[np.arange(n_atoms) * 2] if n_atoms else np.zeros(0, bool)
    vis_win = win[np.arange(n_atoms) * 2 + 1] if n_atoms else np.zeros(0, bool)
    mod = modality_code(aud_win, vis_win)
    a_clip = atom_key // votes.n_classes
    sel = (mod > 0) & eligible[a_clip]
    meta_p = np.zeros((votes.n_clips, n_meta), dtype=bool)
    clips_with = np.flatnonzero(n_ann > 0)
    for j in range(n_meta):
        meta_p[clips_with, j] = win[meta_offset + clips_with * n_meta + j]
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
        method="dawid_skene",
        params={
            "k": int(k),
            "n_iter": n_iter,
            "tol": tol,
            "gold_clamped": int(len(gold_clip_set)),
            "iterations": fit.n_iter,
        },
    )


def merge(votes: Votes, method: str = "majority", *, gold=None, **params) -> MergeResult:
    """Dispatch to a merge method by name (see METHODS)."""
    if method == "majority":
        return merge_majority(votes, **params)
    if method == "weighted":
        return merge_weighted(votes, **params)
    if method == "dawid_skene":
        return merge_dawid_skene(votes, gold=gold, **params)
    raise ValueError(f"unknown merge method {method!r}; allowed: {', '.join(METHODS)}")


# -- catch-trial quality and leave-out comparison ----------------------------------------------------------


def annotation_catch_counts(votes: Votes, gold) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per annotation on a gold clip: (is_on_gold, tp, fp, fn) over the audible/visible atoms of the 309
    classes (gold modality A -> audible atom, V -> visible, AV -> both; '-' none), as in catch scoring."""
    n = len(votes.ann_clip)
    gc, gk, ga, gv = _gold_arrays(gold, votes.n_classes)
    is_gold_clip = np.zeros(votes.n_clips, dtype=bool)
    is_gold_clip[list(gold or {})] = True
    on_gold = is_gold_clip[votes.ann_clip]
    # gold atoms per clip
    gold_atoms = np.bincount(gc, weights=ga.astype(float) + gv, minlength=votes.n_clips)
    t_ann, t_cls, t_aud, t_vis = votes.unique_ticks()
    t_clip = votes.ann_clip[t_ann]
    gkey = gc * votes.n_classes + gk
    gorder = np.argsort(gkey)
    gkey_s, ga_s, gv_s = gkey[gorder], ga[gorder], gv[gorder]
    q = t_clip * votes.n_classes + t_cls
    pos = np.searchsorted(gkey_s, q)
    pos_c = np.minimum(pos, max(len(gkey_s) - 1, 0))
    hit = (pos < len(gkey_s)) & (gkey_s[pos_c] == q) if len(gkey_s) else np.zeros(len(q), bool)
    g_a = np.where(hit, ga_s[pos_c] if len(gkey_s) else False, False)
    g_v = np.where(hit, gv_s[pos_c] if len(gkey_s) else False, False)
    tp_t = (t_aud & g_a).astype(float) + (t_vis & g_v)
    fp_t = (t_aud & ~g_a).astype(float) + (t_vis & ~g_v)
    tp = np.bincount(t_ann, weights=tp_t, minlength=n)
    fp = np.bincount(t_ann, weights=fp_t, minlength=n)
    fn = gold_atoms[votes.ann_clip] - tp
    tp, fp, fn = (np.where(on_gold, x, 0.0) for x in (tp, fp, fn))
    return on_gold, tp, fp, fn


def worker_quality_from_gold(votes: Votes, gold, exclude_clips=None) -> np.ndarray:
    """Mean catch F1 per annotator: F1 pooled over each group's (assignment's) gold clips, averaged over the
    annotator's groups; gold clips in exclude_clips are ignored. NaN for annotators with no gold answer."""
    on_gold, tp, fp, fn = annotation_catch_counts(votes, gold)
    if exclude_clips is not None and len(exclude_clips):
        ex = np.zeros(votes.n_clips, dtype=bool)
        ex[np.asarray(list(exclude_clips), dtype=np.int64)] = True
        on_gold = on_gold & ~ex[votes.ann_clip]
    idx = np.flatnonzero(on_gold)
    n_workers = len(votes.worker_quality)
    if len(idx) == 0:
        return np.full(n_workers, np.nan)
    groups, ginv = np.unique(votes.ann_group[idx], return_inverse=True)
    g_tp = np.bincount(ginv, weights=tp[idx])
    g_fp = np.bincount(ginv, weights=fp[idx])
    g_fn = np.bincount(ginv, weights=fn[idx])
    denom = 2 * g_tp + g_fp + g_fn
    g_f1 = np.where(denom > 0, 2 * g_tp / np.maximum(denom, 1e-12), 0.0)
    g_worker = np.zeros(len(groups), dtype=np.int64)
    g_worker[ginv] = votes.ann_worker[idx]
    s = np.bincount(g_worker, weights=g_f1, minlength=n_workers)
    c = np.bincount(g_worker, minlength=n_workers)
    return np.where(c > 0, s / np.maximum(c, 1), np.nan)


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


def _folds(gold_clips: list, folds: int | None, seed: int):
    gold_clips = list(gold_clips)
    if not folds or folds >= len(gold_clips):
        return [[c] for c in gold_clips]
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(gold_clips))
    return [[gold_clips[i] for i in perm[f::folds]] for f in range(folds)]


def compare_methods(
    votes: Votes,
    gold: dict,
    methods=METHODS,
    k: int = 3,
    folds: int | None = None,
    seed: int = 0,
    ds_folds: int | None = 10,
    ds_iter: int = 50,
    ds_sample: int | None = 3000,
) -> dict:
    """Leave-out comparison on the gold clips.

    For each fold of gold clips (folds=None: one clip per fold = leave-one-out), annotator quality (for
    ``majority``/``weighted``) is recomputed from the gold answers of the *other* gold clips only, and
    Dawid–Skene clamps only the other gold clips; then the fold's clips are merged and compared with gold.
    Dawid–Skene is refitted on the whole data set once per fold, so it uses ``ds_folds`` folds (default 10;
    None = leave-one-out as well) and, to bound its cost, is fitted on the gold clips plus a random sample of
    ``ds_sample`` other clips (None: all clips). Gold clips with fewer than k annotations are skipped.
    Returns {method: {"macro_f1", "n_clips", "per_class", "folds"}}.
    """
    for m in methods:
        if m not in METHODS:
            raise ValueError(f"unknown merge method {m!r}; allowed: {', '.join(METHODS)}")
    n_ann = np.bincount(votes.ann_clip, minlength=votes.n_clips)
    eval_clips = [c for c in sorted(gold) if n_ann[c] >= k]
    gold_only = np.zeros(votes.n_clips, dtype=bool)
    gold_only[eval_clips] = True
    gold_votes = votes.subset(gold_only)
    # annotator quality only depends on the answers on gold clips: compute it on those alone
    all_gold = np.zeros(votes.n_clips, dtype=bool)
    all_gold[list(gold)] = True
    quality_votes = votes.subset(all_gold)
    preds = {m: {} for m in methods}
    n_folds = {}
    simple = [m for m in methods if m != "dawid_skene"]
    if simple:
        fold_list = _folds(eval_clips, folds, seed)
        for fold in fold_list:
            quality = worker_quality_from_gold(quality_votes, gold, exclude_clips=fold)
            mask = np.zeros(votes.n_clips, dtype=bool)
            mask[fold] = True
            fold_votes = gold_votes.subset(mask)
            for m in simple:
                if m == "majority":
                    res = merge_majority(fold_votes, k=k, worker_quality=quality)
                else:
                    res = merge_weighted(fold_votes, k=k, worker_quality=quality)
                sets = res.label_sets()
                for c in fold:
                    preds[m][c] = sets.get(c, {})
        for m in simple:
            n_folds[m] = len(fold_list)
    if "dawid_skene" in methods:
        fit_votes = votes
        has_ann = np.bincount(votes.ann_clip, minlength=votes.n_clips) > 0
        others_idx = np.flatnonzero(has_ann & ~all_gold)
        if ds_sample is not None and len(others_idx) > ds_sample:
            mask = all_gold.copy()
            mask[np.random.default_rng(seed).choice(others_idx, ds_sample, replace=False)] = True
            fit_votes = votes.subset(mask)
        fold_list = _folds(eval_clips, ds_folds, seed)
        for fold in fold_list:
            held = set(fold)
            others = [c for c in gold if c not in held]
            res = merge_dawid_skene(fit_votes, k=k, gold=gold, clamp_clips=others, n_iter=ds_iter)
            sets = res.label_sets()
            for c in fold:
                preds["dawid_skene"][c] = sets.get(c, {})
        n_folds["dawid_skene"] = len(fold_list)
    gold_eval = {c: {k_: v for k_, v in gold[c].items() if _as_code(v)} for c in eval_clips}
    out = {}
    for m in methods:
        macro, per_class = macro_f1(preds[m], gold_eval)
        out[m] = {"macro_f1": macro, "n_clips": len(eval_clips), "per_class": per_class, "folds": n_folds.get(m, 0)}
    return out
