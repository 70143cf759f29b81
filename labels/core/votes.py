"""Crowd annotations as flat numpy arrays (no Django): one row per annotation (a worker's answer for one clip)
and one row per tick (a class the annotation marked audible and/or visible). A class an annotation did not tick
counts as "no" for both flags. Also the (clip, class) atoms that merging and agreement are computed over."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from catalog.core.vocabulary import META_LABELS

MOD_A, MOD_V, MOD_AV = 1, 2, 3
MODALITY_NAMES = {MOD_A: "A", MOD_V: "V", MOD_AV: "AV"}
MODALITY_CODES = {v: k for k, v in MODALITY_NAMES.items()}


def _as_code(modality) -> int:
    """A modality given as a name ("A", "V", "AV") or a code, as its code; other names ("-") and None: 0."""
    return MODALITY_CODES.get(modality, 0) if modality is None or isinstance(modality, str) else int(modality)


def sorted_unique(key: np.ndarray) -> np.ndarray:
    """np.unique(key) by sort + diff: numpy 2.x's np.unique takes ~20 s on 13 M int64 keys (hash path), this
    0.15 s."""
    s = np.sort(np.asarray(key))
    if len(s) == 0:
        return s
    first = np.empty(len(s), dtype=bool)
    first[0] = True
    np.not_equal(s[1:], s[:-1], out=first[1:])
    return s[first]


def unique_inverse(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unique sorted keys, index of each key in them), like np.unique(key, return_inverse=True), by one argsort
    + diff + cumsum (np.unique: 3.8 s on 13 M keys; this ~1 s)."""
    key = np.asarray(key)
    if len(key) == 0:
        return key.copy(), np.zeros(0, dtype=np.int64)
    order = np.argsort(key)
    s = key[order]
    first = np.empty(len(s), dtype=bool)
    first[0] = True
    np.not_equal(s[1:], s[:-1], out=first[1:])
    group = np.cumsum(first) - 1
    inverse = np.empty(len(key), dtype=np.int64)
    inverse[order] = group
    return s[first], inverse


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
        # the proposals shown (~30 per clip: 4.6 M at 150k clips) as int32 indices, half the memory of int64; keys
        # computed from them (clip * classes + class) are made in int64 (labels.core.votes._atom_parts)
        if self.cand_clip is None:
            self.cand_clip = self.cand_class = np.zeros(0, dtype=np.int32)
        index = np.int32 if max(self.n_clips, self.n_classes) < 2**31 else np.int64
        self.cand_clip = np.asarray(self.cand_clip, dtype=index).reshape(-1)
        self.cand_class = np.asarray(self.cand_class, dtype=index).reshape(-1)
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
        order = np.argsort(key)  # repeated ticks are OR-ed: their order within a key does not matter
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


DENSE_ATOMS_MAX = 1 << 27  # clips x classes up to which atoms are found with a dense mark table (128 MB of bool)
ATOM_BLOCK = 1 << 20  # proposals turned into atom keys at a time (8 MB of int64 keys, not 37 MB at 150k clips)


def _atom_parts(votes: Votes, extra_clip, extra_class, ticks):
    """The atom keys (clip * classes + class) of each kind: ticks, then the proposals (~30 per clip) a block at a
    time, then the extra pairs."""
    t_ann, t_cls, _, _ = votes.unique_ticks() if ticks is None else ticks
    n = votes.n_classes
    yield votes.ann_clip[t_ann] * n + t_cls
    for at in range(0, len(votes.cand_clip), ATOM_BLOCK):
        key = votes.cand_clip[at : at + ATOM_BLOCK].astype(np.int64)
        key *= n
        key += votes.cand_class[at : at + ATOM_BLOCK]
        yield key
    if extra_clip is not None and len(extra_clip):
        yield np.asarray(extra_clip, dtype=np.int64) * n + np.asarray(extra_class, dtype=np.int64)


def atom_marks(votes: Votes, extra_clip=None, extra_class=None, ticks=None) -> np.ndarray | None:
    """The atoms of _atoms as a dense table: bool [clips, classes], True at each atom; None when the table would
    hold more than DENSE_ATOMS_MAX cells."""
    if votes.n_clips * votes.n_classes > DENSE_ATOMS_MAX:
        return None
    marked = np.zeros((votes.n_clips, votes.n_classes), dtype=bool)
    flat = marked.reshape(-1)
    for part in _atom_parts(votes, extra_clip, extra_class, ticks):
        flat[part] = True
    marked[np.bincount(votes.ann_clip, minlength=votes.n_clips) == 0] = False
    return marked


def _atoms(votes: Votes, extra_clip=None, extra_class=None, ticks=None):
    """Candidate (clip, class) pairs: every class ticked by any annotation of the clip, the proposals
    (votes.cand_*), and extra pairs (e.g. the gold labels of gold clips). Sorted unique keys, only of clips that
    have annotations. Up to DENSE_ATOMS_MAX clips x classes by marking a dense table (atom_marks: no sort of the
    ~30 keys per clip, 0.05 s instead of ~0.9 s at 154k clips), beyond it by sort + diff; the same keys either
    way. ticks: votes.unique_ticks(), when the caller has them already."""
    marked = atom_marks(votes, extra_clip, extra_class, ticks)
    if marked is not None:
        return np.flatnonzero(marked).astype(np.int64, copy=False)
    has_ann = np.bincount(votes.ann_clip, minlength=votes.n_clips) > 0
    key = sorted_unique(np.concatenate(list(_atom_parts(votes, extra_clip, extra_class, ticks))))
    return key[has_ann[key // votes.n_classes]]


def annotations_by_clip(votes: Votes, used=None) -> np.ndarray:
    """The (used) annotations' indices ordered by clip (stable)."""
    ann_idx = np.flatnonzero(np.ones(len(votes.ann_clip), dtype=bool) if used is None else used)
    return ann_idx[np.argsort(votes.ann_clip[ann_idx], kind="stable")]


def atom_answers(votes: Votes, atom_key: np.ndarray, used=None, ticks=None, ann_order=None):
    """Long table: for every atom and every (used) annotation of its clip, the annotation's (audible,
    visible) answer. Returns (atom_row, ann, audible, visible). ticks: votes.unique_ticks(), when the caller
    already has them (calls per chunk of atoms); ann_order: `annotations_by_clip(votes, used)`, likewise."""
    order = annotations_by_clip(votes, used) if ann_order is None else ann_order
    sorted_clip = votes.ann_clip[order]
    atom_clip = atom_key // votes.n_classes
    start = np.searchsorted(sorted_clip, atom_clip, side="left")
    stop = np.searchsorted(sorted_clip, atom_clip, side="right")
    count = stop - start
    atom_row = np.repeat(np.arange(len(atom_key)), count)
    offset = np.arange(len(atom_row)) - np.repeat(np.cumsum(count) - count, count)
    ann = order[np.repeat(start, count) + offset]
    t_ann, t_cls, t_aud, t_vis = votes.unique_ticks() if ticks is None else ticks
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


def duplicate_votes(votes: Votes) -> np.ndarray:
    """Bool per annotation: True when the same annotator has a later annotation of the same clip (annotations are in
    load order = submission order, so the latest submission is the one that counts; the others are flagged)."""
    n = len(votes.ann_clip)
    if n == 0:
        return np.zeros(0, dtype=bool)
    key = votes.ann_worker * max(votes.n_clips, 1) + votes.ann_clip
    # the last occurrence of every key wins
    rev_first = np.unique(key[::-1], return_index=True)[1]
    keep = np.zeros(n, dtype=bool)
    keep[n - 1 - rev_first] = True
    return ~keep


def select_annotations(votes: Votes, ann_mask) -> Votes:
    """Votes restricted to the annotations where ann_mask is True (clip, class and annotator indices unchanged)."""
    ann_mask = np.asarray(ann_mask, dtype=bool)
    new_index = np.cumsum(ann_mask) - 1
    keep_tick = ann_mask[votes.tick_ann]
    return Votes(
        n_clips=votes.n_clips,
        n_classes=votes.n_classes,
        ann_clip=votes.ann_clip[ann_mask],
        ann_worker=votes.ann_worker[ann_mask],
        ann_meta=votes.ann_meta[ann_mask],
        ann_group=votes.ann_group[ann_mask],
        tick_ann=new_index[votes.tick_ann[keep_tick]],
        tick_class=votes.tick_class[keep_tick],
        tick_audible=votes.tick_audible[keep_tick],
        tick_visible=votes.tick_visible[keep_tick],
        worker_quality=votes.worker_quality,
        cand_clip=votes.cand_clip,
        cand_class=votes.cand_class,
    )
