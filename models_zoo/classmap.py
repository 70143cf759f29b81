"""Models with their own class list: an explicit mapping from their classes to the taxonomy's.

A mapping file is a CSV with the columns ``source,target,note``: one row per (own class, taxonomy class)
pair; an own class that has no counterpart is listed once with an empty ``target`` (and a note why), so
every own class is accounted for. ``map_scores`` turns a model's [n, S] scores into the taxonomy's
[n, T] columns: a taxonomy class takes the highest score of the own classes mapped to it; a class no
own class maps to gets ``fill``, a value below every real score, so it never enters a top-k or a
global ranking before a mapped class does. Pure numpy/csv; no Django.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

UNMAPPED_SCORE = -1.0  # below any probability; the runs of mapped models hold probabilities


class ClassMapError(ValueError):
    """A class mapping does not fit the model's or the taxonomy's classes; the message names the classes."""


def load_class_map(path, source_classes: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """Read a mapping CSV; refuses a class not in ``source_classes`` and an own class the file leaves out."""
    p = Path(path)
    try:
        with p.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or not {"source", "target"} <= set(reader.fieldnames):
                raise ClassMapError(
                    f"{p}: a class mapping needs the columns source,target[,note]; found {reader.fieldnames}"
                )
            rows = [(r["source"].strip(), (r["target"] or "").strip()) for r in reader]
    except FileNotFoundError:
        raise ClassMapError(f"class mapping file {p} not found") from None
    known = set(source_classes)
    unknown = sorted({s for s, _ in rows if s not in known})
    if unknown:
        raise ClassMapError(
            f"{p}: unknown source class(es) {unknown}; the model's classes are: {', '.join(source_classes)}"
        )
    out: dict[str, list[str]] = {s: [] for s in source_classes}
    listed = set()
    for s, t in rows:
        listed.add(s)
        if t and t not in out[s]:
            out[s].append(t)
    missing = [s for s in source_classes if s not in listed]
    if missing:
        raise ClassMapError(
            f"{p}: class(es) {missing} are not listed; list every class of the model "
            f"(with an empty target if it has no counterpart)"
        )
    return {s: tuple(ts) for s, ts in out.items()}


def unreachable_classes(mapping: Mapping[str, Sequence[str]], target_classes: Sequence[str]) -> list[str]:
    """Taxonomy classes no own class maps to (the model can never propose them), in taxonomy order."""
    reached = {t for ts in mapping.values() for t in ts}
    return [c for c in target_classes if c not in reached]


def map_scores(
    scores: np.ndarray,
    source_classes: Sequence[str],
    target_classes: Sequence[str],
    mapping: Mapping[str, Sequence[str]] | None = None,
    *,
    fill: float = UNMAPPED_SCORE,
) -> np.ndarray:
    """[n, len(source_classes)] -> float32 [n, len(target_classes)].

    ``mapping`` None: an own class maps to the taxonomy class of the same name (every own class must have
    one). A mapped name that is not a taxonomy class is refused with the names."""
    arr = np.asarray(scores, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[1] != len(source_classes):
        raise ClassMapError(
            f"scores have shape {arr.shape}, expected (n, {len(source_classes)}) for the "
            f"model's {len(source_classes)} classes"
        )
    col = {c: j for j, c in enumerate(target_classes)}
    if mapping is None:
        absent = [c for c in source_classes if c not in col]
        if absent:
            raise ClassMapError(
                f"the model's class(es) {absent} are not taxonomy classes and no class mapping "
                "was given (set class_map in the model config)"
            )
        mapping = {c: (c,) for c in source_classes}
    bad = sorted({t for ts in mapping.values() for t in ts if t not in col})
    if bad:
        raise ClassMapError(f"class mapping names {len(bad)} class(es) that are not in the taxonomy: {bad}")
    out = np.full((arr.shape[0], len(target_classes)), fill, dtype=np.float32)
    for j, src in enumerate(source_classes):
        for t in mapping.get(src, ()):
            k = col[t]
            np.maximum(out[:, k], arr[:, j], out=out[:, k])
    return out


__all__ = ["UNMAPPED_SCORE", "ClassMapError", "load_class_map", "map_scores", "unreachable_classes"]
