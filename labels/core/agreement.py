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
from labels.core.votes import Votes, _atoms


def _by_size(n: np.ndarray, yes: np.ndarray, group=None, n_groups: int = 1):
    """Per (group, unit size n): number of units, sum of yes, sum of yes^2 — by bincounts over integer keys, no
    boolean masks or float temporaries per unit (4.6 M units at 150k clips). Returns arrays [n_groups, max n + 1]."""
    n = np.asarray(n).astype(np.int64, copy=False)
    yes = np.asarray(yes, dtype=float)
    width = int(n.max()) + 1 if len(n) else 1
    key = n if group is None else np.asarray(group, dtype=np.int64) * width + n
    size = n_groups * width
    count = np.bincount(key, minlength=size).reshape(n_groups, width).astype(float)
    s1 = np.bincount(key, weights=yes, minlength=size).reshape(n_groups, width)
    s2 = np.bincount(key, weights=yes * yes, minlength=size).reshape(n_groups, width)
    return count, s1, s2


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


def agreement(votes: Votes, clips=None, class_names=None) -> dict:
    """Agreement of the annotations of `clips` (all clips when None).

    Returns {"audible": alpha, "visible": alpha, "<meta>": alpha..., "units": {...}, "per_class": {class:
    {"audible": alpha|None, "visible": alpha|None, "units": n}}} (class keys are names when class_names is
    given; per_class lists classes with at least one unit).
    """
    if clips is not None:
        mask = np.zeros(votes.n_clips, dtype=bool)
        mask[np.asarray(list(clips), dtype=np.int64)] = True
        votes = votes.subset(mask)
    n_ann = np.bincount(votes.ann_clip, minlength=votes.n_clips)
    atom_key = _atoms(votes)
    atom_clip = atom_key // votes.n_classes
    atom_class = atom_key % votes.n_classes
    # yes-counts per atom straight from the (deduplicated) ticks; every tick's (clip, class) is an atom
    t_ann, t_cls, t_aud, t_vis = votes.unique_ticks()
    row = np.searchsorted(atom_key, votes.ann_clip[t_ann] * votes.n_classes + t_cls)
    yes_a = np.bincount(row, weights=t_aud, minlength=len(atom_key))
    yes_v = np.bincount(row, weights=t_vis, minlength=len(atom_key))
    n_units = n_ann[atom_clip]
    out: dict = {
        "audible": _nan_to_none(alpha_binary(yes_a, n_units)),
        "visible": _nan_to_none(alpha_binary(yes_v, n_units)),
    }
    units = {"audible": int((n_units >= 2).sum()), "visible": int((n_units >= 2).sum())}
    for j, name in enumerate(META_LABELS):
        yes_m = np.bincount(votes.ann_clip, weights=votes.ann_meta[:, j], minlength=votes.n_clips)
        out[name] = _nan_to_none(alpha_binary(yes_m, n_ann))
        units[name] = int((n_ann >= 2).sum())
    out["units"] = units
    alpha_a, cls_units = _alpha_grouped(atom_class, yes_a, n_units, votes.n_classes)
    alpha_v, _ = _alpha_grouped(atom_class, yes_v, n_units, votes.n_classes)
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
