"""Inter-annotator agreement: Krippendorff's alpha (nominal, binary values) — pure, no Django.

Units:
- audible / visible: every candidate (clip, class) of a clip with at least two annotations, where a
  candidate is a class some annotation of the clip ticked or a proposal shown (``Votes.cand_*``); each
  annotation contributes yes/no (an unticked class is "no").
- each meta label: every clip with at least two annotations.
Per class: alpha over that class's units (audible and visible separately), so unreliable classes stand out.
"""

from __future__ import annotations

import numpy as np

from catalog.core.vocabulary import META_LABELS
from labels.core.votes import Votes, _atoms, atom_marks

AGREEMENT_BLOCK = 1 << 20  # atoms whose table keys are built at a time


def _by_size(n: np.ndarray, yes: np.ndarray, group=None, n_groups: int = 1):
    """Per (group, unit size n): number of units, sum of yes, sum of yes^2 — by one integer bincount over
    (group, n, yes) keys (yes is a count, 0..n), no boolean masks or float temporaries per unit (4.6 M units at
    150k clips). Returns float arrays [n_groups, max n + 1]; the sums are exact, as the weighted sums were."""
    n = np.asarray(n).astype(np.int64, copy=False)
    yes = np.asarray(yes)
    width = int(n.max()) + 1 if len(n) else 1
    key = n if group is None else np.asarray(group, dtype=np.int64) * width + n
    size = n_groups * width
    yes_int = yes.astype(np.int64)
    if len(yes) and (yes_int.min() < 0 or yes_int.max() >= width or not np.array_equal(yes_int, yes)):
        yes = yes.astype(float)  # not counts: weighted sums
        count = np.bincount(key, minlength=size).reshape(n_groups, width).astype(float)
        s1 = np.bincount(key, weights=yes, minlength=size).reshape(n_groups, width)
        s2 = np.bincount(key, weights=yes * yes, minlength=size).reshape(n_groups, width)
        return count, s1, s2
    table = np.bincount(key * width + yes_int, minlength=size * width).reshape(n_groups, width, width).astype(float)
    values = np.arange(width, dtype=float)
    return table.sum(axis=2), table @ values, table @ (values * values)


def _alpha_from_sums(count, s1, s2):
    """alpha = 1 - (N - 1) * sum_u(yes_u * no_u / (n_u - 1)) / (N_yes * N_no) over units with n >= 2, from the
    per-size sums (yes * no / (n - 1) = (n * yes - yes^2) / (n - 1)); NaN where undefined."""
    sizes = np.arange(count.shape[1], dtype=float)
    pairable = sizes >= 2
    count, s1, s2 = count[:, pairable], s1[:, pairable], s2[:, pairable]
    sizes = sizes[pairable]
    total = (count * sizes).sum(axis=1)
    n_yes = s1.sum(axis=1)
    n_no = total - n_yes
    observed = ((sizes * s1 - s2) / (sizes - 1)).sum(axis=1)
    denom = n_yes * n_no
    alpha = np.where(denom > 0, 1.0 - (total - 1.0) * observed / np.where(denom > 0, denom, 1.0), np.nan)
    units = count.sum(axis=1)
    return alpha, units


def alpha_binary(yes: np.ndarray, n: np.ndarray) -> float:
    """Krippendorff's alpha for nominal binary data from per-unit counts.

    yes[u]: number of "yes" values in unit u; n[u]: number of values in unit u. Units with fewer than two
    values are not pairable and are ignored. alpha = 1 - (N - 1) * sum_u(yes_u * no_u / (n_u - 1)) /
    (N_yes * N_no), with N the number of pairable values. NaN when every pairable value is the same
    (expected disagreement 0) or no unit is pairable.
    """
    if len(np.asarray(n)) == 0:
        return float("nan")
    alpha, _units = _alpha_from_sums(*_by_size(n, yes))
    return float(alpha[0]) if len(alpha) else float("nan")


def _alpha_grouped(group: np.ndarray, yes: np.ndarray, n: np.ndarray, n_groups: int):
    """alpha_binary per group, vectorised. Returns (alpha [n_groups] with NaN where undefined, units)."""
    if len(np.asarray(n)) == 0:
        return np.full(n_groups, np.nan), np.zeros(n_groups, dtype=np.int64)
    alpha, units = _alpha_from_sums(*_by_size(n, yes, group, n_groups))
    return alpha, units.astype(np.int64)


def _flag_tables(votes: Votes, ticks, n_ann: np.ndarray, width: int):
    """("audible" | "visible", int table [class, unit size, yes]): the number of atoms (candidate (clip, class)
    units, labels.core.votes._atoms) of each class whose clip has that many annotations and that many of them
    ticked the flag. The overall alpha is that table summed over classes (the same exact integer sums as separate
    passes).

    The atoms with a tick are counted from the (deduplicated) ticks; each class's other atoms are its atoms
    counted per unit size in the dense mark table (labels.core.votes.atom_marks) less those: no array of the ~5 M
    atoms of a 150k-clip release, no clip/class/size array of them. Beyond the dense table's size limit, from
    the sorted atom keys a block of them at a time."""
    t_ann, t_cls, t_aud, t_vis = ticks
    n = votes.n_classes
    marks = atom_marks(votes, ticks=ticks)
    if marks is not None:
        total = np.zeros((n, width), dtype=np.int64)  # atoms per (class, unit size)
        for size in np.unique(n_ann[n_ann > 0]).tolist():
            total[:, size] = marks.sum(axis=0, where=(n_ann == size)[:, None])
        del marks
        tick_key = votes.ann_clip[t_ann] * n + t_cls
        for flag, sel in (("audible", t_aud), ("visible", t_vis)):
            keys = np.sort(tick_key[sel])  # one per (annotation, class): runs of a key are its annotations
            first = np.ones(len(keys), dtype=bool)
            first[1:] = keys[1:] != keys[:-1]
            starts = np.flatnonzero(first)
            yes = np.diff(np.append(starts, len(keys)))
            clip, cls = np.divmod(keys[starts], n)
            table = np.bincount((cls * width + n_ann[clip]) * width + yes, minlength=n * width * width)
            table = table.reshape(n, width, width)
            table[:, :, 0] = total - table[:, :, 1:].sum(axis=2)  # the class's atoms nobody ticked
            yield flag, table
        return
    atom_key = _atoms(votes, ticks=ticks)
    row = np.searchsorted(atom_key, votes.ann_clip[t_ann] * n + t_cls)  # every tick's (clip, class) is an atom
    n_atoms = len(atom_key)
    key = np.empty(n_atoms, dtype=np.int32 if n * width * width < 2**31 else np.int64)
    for at in range(0, n_atoms, AGREEMENT_BLOCK):  # ((class * width) + unit size) * width per atom
        clip, cls = np.divmod(atom_key[at : at + AGREEMENT_BLOCK], n)
        key[at : at + AGREEMENT_BLOCK] = (cls * width + n_ann[clip]) * width
    del atom_key
    for flag, flag_rows in (("audible", row[t_aud]), ("visible", row[t_vis])):
        yes = np.bincount(flag_rows, minlength=n_atoms)
        yes += key
        yield flag, np.bincount(yes, minlength=n * width * width).reshape(n, width, width)


def agreement(votes: Votes, clips=None, class_names=None) -> dict:
    """Agreement of the annotations of `clips` (all clips when None).

    Returns {"audible": alpha, "visible": alpha, "<meta>": alpha..., "units": {...}, "per_class": {class:
    {"audible": alpha|None, "visible": alpha|None, "units": n}}} (class keys are names when class_names is
    given; per_class lists classes with at least one unit).
    """
    if clips is not None:
        mask = np.zeros(votes.n_clips, dtype=bool)
        mask[np.asarray(clips if isinstance(clips, np.ndarray) else list(clips), dtype=np.int64)] = True
        if not mask[votes.ann_clip].all():  # clips without annotations add no unit: no copy when all are kept
            votes = votes.subset(mask)
    n_ann = np.bincount(votes.ann_clip, minlength=votes.n_clips)
    ticks = votes.unique_ticks()
    width = int(n_ann.max()) + 1 if len(n_ann) else 1
    values = np.arange(width, dtype=float)
    out: dict = {}
    per_flag = {}
    count = np.zeros((votes.n_classes, width))
    for flag, table in _flag_tables(votes, ticks, n_ann, width):
        table = table.astype(float)
        count, s1, s2 = table.sum(axis=2), table @ values, table @ (values * values)
        alpha, _units = _alpha_from_sums(count.sum(axis=0)[None], s1.sum(axis=0)[None], s2.sum(axis=0)[None])
        out[flag] = _nan_to_none(alpha[0])
        per_flag[flag] = _alpha_from_sums(count, s1, s2)
    n_pairable = int(count.sum(axis=0)[2:].sum())
    units = {"audible": n_pairable, "visible": n_pairable}
    for j, name in enumerate(META_LABELS):
        yes_m = np.bincount(votes.ann_clip, weights=votes.ann_meta[:, j], minlength=votes.n_clips)
        out[name] = _nan_to_none(alpha_binary(yes_m, n_ann))
        units[name] = int((n_ann >= 2).sum())
    out["units"] = units
    alpha_a, cls_units = per_flag["audible"]
    alpha_v, _ = per_flag["visible"]
    per_class = {}
    for c in np.flatnonzero(cls_units).tolist():
        key = class_names[c] if class_names is not None else c
        per_class[key] = {
            "audible": _nan_to_none(alpha_a[c]),
            "visible": _nan_to_none(alpha_v[c]),
            "units": int(cls_units[c]),
        }
    out["per_class"] = per_class
    return out


def _nan_to_none(x):
    x = float(x)
    return None if np.isnan(x) else round(x, 6)
