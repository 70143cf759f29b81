"""Ground-truth label sets in the VGGSounder layout, as multi-hot matrices.

A :class:`LabelSet` holds, for ``n`` clips and ``C`` classes, three boolean
matrices telling whether a (clip, class) pair was labelled with modality
``A``, ``V`` or ``AV`` (a pair may, in a hand-made CSV, carry several rows),
plus the three meta labels per clip. Subsets follow ``vggsounder`` 1.0:

* ``a``      = labels with modality A or AV
* ``v``      = labels with modality V or AV
* ``av``     = labels with modality AV
* ``a only`` = labels with modality A
* ``v only`` = labels with modality V
* ``all``    = every label

A clip belongs to a subset only if it has at least one label in it.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from .errors import BenchmarkInputError

SUBSETS = ("a", "v", "av", "a only", "v only")
"""Ground-truth subsets (the paper's columns); each is evaluated with one input."""

SUBSET_INPUT = {"a": "a", "v": "v", "av": "av", "a only": "a", "v only": "v"}
"""Which model input ("a", "v", "av") is evaluated against which subset."""

INPUTS = ("a", "v", "av")
META_LABELS = ("background_music", "static_image", "voice_over")
LABEL_COLUMNS = ("video_id", "label", "modality") + META_LABELS
MODALITY_VALUES = ("A", "V", "AV")


def default_class_names() -> list[str]:
    """The 309 VGGSound class names in logit order, from the installed ``vggsounder`` package."""
    try:
        import vggsounder  # noqa: F401  (only for its data directory)
    except ImportError as exc:  # pragma: no cover - vggsounder is a requirement
        raise BenchmarkInputError(
            "no class list given and the 'vggsounder' package is not installed; pass class_names"
        ) from exc
    path = Path(vggsounder.__file__).parent / "data" / "classes.csv"
    with open(path, encoding="utf-8") as fh:
        return [row["display_name"] for row in csv.DictReader(fh)]


def default_labels_csv() -> Path:
    """The published VGGSounder 1.0 label CSV (all clips, incl. background music)."""
    import vggsounder

    return Path(vggsounder.__file__).parent / "data" / "vggsounder+background-music.csv"


def _bool_column(values: pd.Series) -> np.ndarray:
    # vggsounder: ``value.lower() == "true"``; accept real booleans too.
    if values.dtype == bool:
        return values.to_numpy()
    return values.astype(str).str.lower().eq("true").to_numpy()


@dataclass
class LabelSet:
    """Ground truth for ``n`` clips over ``len(classes)`` classes."""

    video_ids: np.ndarray  # (n,) object array of str, in first-appearance order
    classes: list[str]
    has_a: np.ndarray  # (n, C) bool: a row with modality "A"
    has_v: np.ndarray  # (n, C) bool: a row with modality "V"
    has_av: np.ndarray  # (n, C) bool: a row with modality "AV"
    meta: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (n,) bool

    # ------------------------------------------------------------------ build
    @classmethod
    def from_dataframe(
        cls, df: pd.DataFrame, class_names: list[str] | None = None, *, source: str = "label set"
    ) -> "LabelSet":
        """Build from rows ``video_id,label,modality,background_music,static_image,voice_over``.

        Unknown class names and modalities are refused, listing the offenders.
        Meta labels are taken from each clip's first row (as ``vggsounder`` does).
        """
        classes = list(class_names) if class_names is not None else default_class_names()
        missing = [c for c in LABEL_COLUMNS if c not in df.columns]
        if missing:
            raise BenchmarkInputError(
                f"{source}: missing column(s) {', '.join(missing)}; expected {','.join(LABEL_COLUMNS)}"
            )
        if len(df) == 0:
            raise BenchmarkInputError(f"{source}: no label rows")
        labels = df["label"].astype(str)
        class_index = pd.Index(classes)
        cidx = class_index.get_indexer(labels)
        if (cidx < 0).any():
            unknown = sorted(set(labels[cidx < 0]))
            raise BenchmarkInputError(
                f"{source}: {len(unknown)} unknown class name(s): "
                + "; ".join(repr(u) for u in unknown[:20])
                + (" ..." if len(unknown) > 20 else "")
            )
        mods = df["modality"].astype(str).str.strip().str.upper()
        bad = ~mods.isin(MODALITY_VALUES)
        if bad.any():
            first = int(np.flatnonzero(bad.to_numpy())[0])
            raise BenchmarkInputError(
                f"{source}: row {first + 2}: modality {df['modality'].iloc[first]!r} is not one of "
                f"{', '.join(MODALITY_VALUES)}"
            )
        vids = df["video_id"].astype(str).to_numpy()
        codes, uniques = pd.factorize(vids, sort=False)  # first-appearance order
        n, C = len(uniques), len(classes)
        out = {}
        for m, name in (("A", "has_a"), ("V", "has_v"), ("AV", "has_av")):
            mat = np.zeros((n, C), dtype=bool)
            sel = (mods == m).to_numpy()
            mat[codes[sel], cidx[sel]] = True
            out[name] = mat
        first_rows = np.unique(codes, return_index=True)[1]  # first row of each clip
        meta = {k: _bool_column(df[k].iloc[first_rows].reset_index(drop=True)) for k in META_LABELS}
        return cls(np.asarray(uniques, dtype=object), classes, meta=meta, **out)

    @classmethod
    def from_csv(cls, path_or_buffer, class_names: list[str] | None = None) -> "LabelSet":
        """Read a label CSV in the VGGSounder layout."""
        name = str(path_or_buffer) if isinstance(path_or_buffer, (str, os.PathLike)) else "label CSV"
        try:
            df = pd.read_csv(path_or_buffer, dtype=str, keep_default_na=False)
        except FileNotFoundError as exc:
            raise BenchmarkInputError(f"{name}: file not found") from exc
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise BenchmarkInputError(f"{name}: not a readable CSV ({exc})") from exc
        return cls.from_dataframe(df, class_names, source=name)

    # ------------------------------------------------------------------ views
    def __len__(self) -> int:
        return len(self.video_ids)

    def truth(self, subset: str) -> np.ndarray:
        """Multi-hot ground truth (n, C) of a subset (``a``, ``v``, ``av``, ``a only``, ``v only``, ``all``)."""
        if subset == "a":
            return self.has_a | self.has_av
        if subset == "v":
            return self.has_v | self.has_av
        if subset == "av":
            return self.has_av
        if subset == "a only":
            return self.has_a
        if subset == "v only":
            return self.has_v
        if subset == "all":
            return self.has_a | self.has_v | self.has_av
        raise BenchmarkInputError(f"unknown subset {subset!r}; allowed: {', '.join(SUBSETS + ('all',))}")

    def select(self, mask: np.ndarray) -> "LabelSet":
        mask = np.asarray(mask, dtype=bool)
        return LabelSet(
            self.video_ids[mask],
            self.classes,
            self.has_a[mask],
            self.has_v[mask],
            self.has_av[mask],
            {k: v[mask] for k, v in self.meta.items()},
        )

    def select_rows(self, rows: np.ndarray) -> "LabelSet":
        """The clips at the positions ``rows`` (an index array; the same as ``select`` with a mask)."""
        rows = np.asarray(rows)
        return LabelSet(
            self.video_ids[rows],
            self.classes,
            self.has_a[rows],
            self.has_v[rows],
            self.has_av[rows],
            {k: v[rows] for k, v in self.meta.items()},
        )

    def meta_mask(self, **filters: bool | None) -> np.ndarray:
        """Clips whose meta labels equal the given values (``None`` = no filter)."""
        unknown = set(filters) - set(META_LABELS)
        if unknown:
            raise BenchmarkInputError(f"unknown meta label(s) {sorted(unknown)}; allowed: {', '.join(META_LABELS)}")
        mask = np.ones(len(self), dtype=bool)
        for key, want in filters.items():
            if want is None:
                continue
            mask &= self.meta[key] == bool(want)
        return mask

    def filter_meta(self, **filters: bool | None) -> "LabelSet":
        return self.select(self.meta_mask(**filters))

    def subset_ids(self, ids: Iterable[str]) -> "LabelSet":
        return self.select(pd.Index(self.video_ids).isin(list(ids)))


REGIMES = {
    # vggsounder.VGGSounder() defaults: clips with background music are left out.
    "default": {"background_music": False, "voice_over": None, "static_image": None},
    "all": {"background_music": None, "voice_over": None, "static_image": None},
}


def apply_regime(labels: LabelSet, regime: str) -> LabelSet:
    if regime not in REGIMES:
        raise BenchmarkInputError(f"unknown regime {regime!r}; allowed: {', '.join(REGIMES)}")
    return labels.filter_meta(**REGIMES[regime])
