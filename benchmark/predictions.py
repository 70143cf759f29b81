"""One model's predictions per input modality, as label sets (bool) or scores (float)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .errors import BenchmarkInputError
from .labels import INPUTS


@dataclass
class ModelPredictions:
    """Predictions of one model for ``m`` clips.

    ``labels[input]`` is bool [m, C] (predicted label sets), ``scores[input]`` float [m, C]
    (logit column i = class i). A model with scores is evaluated from its scores (top-k,
    AUC), like ``vggsounder`` does; a model without scores from its label sets.
    """

    name: str
    video_ids: np.ndarray
    classes: list[str]
    labels: dict[str, np.ndarray] = field(default_factory=dict)
    scores: dict[str, np.ndarray] = field(default_factory=dict)
    unknown_names: dict[str, int] = field(default_factory=dict)
    """Class names of the file that are not in ``classes``, skipped, with how often each occurred."""
    not_judged: int = 0
    """Clips of LLM-judged CSVs left out because some input was not judged yet."""

    def __post_init__(self):
        self.video_ids = np.asarray([str(v) for v in self.video_ids], dtype=object)
        if len(self.video_ids) == 0:
            raise BenchmarkInputError(f"model {self.name!r}: empty prediction set (no clips)")
        dup = pd.Index(self.video_ids).duplicated()
        if dup.any():
            dups = sorted(set(self.video_ids[dup]))
            raise BenchmarkInputError(
                f"model {self.name!r}: duplicate clip id(s) {', '.join(dups[:10])}" + (" ..." if len(dups) > 10 else "")
            )
        m, C = len(self.video_ids), len(self.classes)
        for kind, store in (("labels", self.labels), ("scores", self.scores)):
            for inp, arr in store.items():
                if inp not in INPUTS:
                    raise BenchmarkInputError(
                        f"model {self.name!r}: unknown input {inp!r}; allowed: {', '.join(INPUTS)}"
                    )
                if arr.ndim != 2 or arr.shape[0] != m:
                    raise BenchmarkInputError(
                        f"model {self.name!r}: {kind}[{inp!r}] has shape {arr.shape}, expected ({m}, {C})"
                    )
                if arr.shape[1] != C:
                    raise BenchmarkInputError(
                        f"model {self.name!r}: {kind}[{inp!r}] has {arr.shape[1]} score columns, "
                        f"expected {C} (one per class)"
                    )
        for inp, arr in self.scores.items():
            if not np.issubdtype(arr.dtype, np.number):
                raise BenchmarkInputError(f"model {self.name!r}: scores[{inp!r}] are not numbers")
            if not np.isfinite(arr).all():
                bad = int((~np.isfinite(arr).all(axis=1)).sum())
                raise BenchmarkInputError(
                    f"model {self.name!r}: scores[{inp!r}] hold NaN or infinite values in {bad} clip(s)"
                )
        if not self.labels and not self.scores:
            raise BenchmarkInputError(f"model {self.name!r}: neither label sets nor scores given")

    @property
    def kind(self) -> str:
        return "scores" if self.scores else "labels"

    @property
    def inputs(self) -> tuple[str, ...]:
        store = self.scores if self.scores else self.labels
        return tuple(i for i in INPUTS if i in store)

    # ------------------------------------------------------------- builders
    @classmethod
    def from_label_lists(
        cls,
        name: str,
        label_lists: dict[str, dict[str, list[str]]],
        classes: list[str],
        scores: dict[str, dict[str, object]] | None = None,
        *,
        source: str | None = None,
        strict: bool = False,
        classes_from: str | None = None,
    ) -> "ModelPredictions":
        """From ``{video_id: {input: [class names]}}`` (and optionally ``{video_id: {input: [C floats]}}``).

        Class names that are not in ``classes`` are skipped and counted in ``unknown_names`` (the reference
        ignores them too); blank names (the padding of the published LLM files) are ignored. With ``strict``
        the first unknown name is refused, naming the clip, the input and where the allowed names come from
        (``classes_from``)."""
        where = source or f"model {name!r}"
        vids = list(label_lists) if label_lists else list(scores or {})
        if not vids:
            raise BenchmarkInputError(f"{where}: empty prediction set (no clips)")
        class_index = {c: i for i, c in enumerate(classes)}
        labels: dict[str, np.ndarray] = {}
        unknown: dict[str, int] = {}
        if label_lists:
            inputs = sorted({i for per in label_lists.values() for i in per}, key=_input_key)
            for inp in inputs:
                mat = np.zeros((len(vids), len(classes)), dtype=bool)
                for r, vid in enumerate(vids):
                    for lab in label_lists[vid].get(inp) or ():
                        j = class_index.get(lab)
                        if j is not None:
                            mat[r, j] = True
                        elif lab.strip():
                            if strict:
                                raise BenchmarkInputError(
                                    f"{where}: clip {vid!r} input {inp!r}: unknown class name {lab!r}; allowed: "
                                    + allowed_names_text(classes, classes_from)
                                    + " (without --strict unknown names are skipped and counted)"
                                )
                            unknown[lab] = unknown.get(lab, 0) + 1
                labels[inp] = mat
        score_mats: dict[str, np.ndarray] = {}
        if scores:
            missing = [v for v in vids if v not in scores]
            if missing:
                raise BenchmarkInputError(
                    f"{where}: {len(missing)} clip(s) have label sets but no scores, e.g. {missing[0]!r}"
                )
            inputs = sorted({i for per in scores.values() for i in per}, key=_input_key)
            C = len(classes)
            for inp in inputs:
                rows = []
                for vid in vids:
                    row = scores[vid].get(inp)
                    if row is None:
                        raise BenchmarkInputError(f"{where}: clip {vid!r} has no scores for input {inp!r}")
                    if len(row) != C or (isinstance(row, np.ndarray) and row.ndim != 1):
                        shape = getattr(row, "shape", (len(row),))
                        raise BenchmarkInputError(
                            f"{where}: clip {vid!r} input {inp!r}: {shape[0] if len(shape) == 1 else shape} "
                            f"score columns, expected {C} (one per class)"
                        )
                    rows.append(row)
                score_mats[inp] = _stack_rows(rows, C, where, inp)
        return cls(
            name, np.asarray(vids, dtype=object), list(classes), labels, score_mats, dict(sorted(unknown.items()))
        )


def allowed_names_text(classes: list[str], classes_from: str | None = None) -> str:
    """'the 309 class names of <source>, e.g. ...': what a name must be, and where the list comes from."""
    sample = ", ".join(repr(c) for c in classes[:3])
    return f"the {len(classes)} class names of {classes_from or 'the label set (its class list)'}" + (
        f", e.g. {sample}" if sample else ""
    )


def unknown_names_text(unknown: dict[str, int], limit: int = 20) -> str:
    """ "2 unknown class names skipped: 'x' (1x), 'y' (3x)" (empty without any)."""
    if not unknown:
        return ""
    names = sorted(unknown, key=lambda n: (-unknown[n], n))
    return (
        f"{len(names)} unknown class name(s) skipped ({sum(unknown.values())} occurrences): "
        + "; ".join(f"{n!r} ({unknown[n]}x)" for n in names[:limit])
        + (" ..." if len(names) > limit else "")
    )


def _stack_rows(rows: list, C: int, where: str, inp: str) -> np.ndarray:
    """Stack per-clip score rows into [m, C] with the dtype ``np.array(rows)`` would give
    (float64 for lists of Python floats, the arrays' dtype for numpy rows), quickly."""
    try:
        base = _common_base(rows, C)
        if base is not None:  # rows decoded by the pickle fast path
            matrix, index = base
            if index.size > 1:
                step = int(index[1] - index[0])
                if (
                    step > 0
                    and index[-1] == index[0] + step * (index.size - 1)
                    and np.array_equal(np.diff(index), np.full(index.size - 1, step))
                ):
                    # evenly spaced (the usual layout: a, v, av of clip after clip): a strided view, no copy
                    return matrix[index[0] :: step][: index.size]
            return matrix[index]  # one gather, no per-row copy
        refs = [i for i, r in enumerate(rows) if type(r) is RowRef]
        if refs and all(rows[i].matrix is rows[refs[0]].matrix for i in refs):
            # most rows decoded in bulk, a few (straddling a pickle frame) read the ordinary way
            ref_set = set(refs)
            others = [i for i in range(len(rows)) if i not in ref_set]
            rest = np.array([rows[i] for i in others])
            matrix = rows[refs[0]].matrix
            out = np.empty((len(rows), C), dtype=np.result_type(matrix.dtype, rest.dtype))
            out[refs] = matrix[[rows[i].index for i in refs]]
            out[others] = rest
            return out
        if rows and all(type(r) is list for r in rows):
            flat = itertools.chain.from_iterable(rows)
            try:
                return (
                    np.fromiter(flat, dtype=np.float64, count=len(rows) * C).reshape(len(rows), C)
                    if all(type(x) is float for x in rows[0])
                    else np.array(rows)
                )
            except (TypeError, ValueError):
                return np.array(rows)
        return np.array(rows)
    except (TypeError, ValueError) as exc:
        raise BenchmarkInputError(f"{where}: scores for input {inp!r} are not numbers") from exc


class RowRef:
    """Row ``index`` of the score matrix ``matrix`` (rows decoded in bulk by the pickle fast path)."""

    __slots__ = ("matrix", "index")

    def __init__(self, matrix: np.ndarray, index: int):
        self.matrix, self.index = matrix, index

    def __len__(self) -> int:
        return self.matrix.shape[1]


def _common_base(rows: list, C: int):
    """(matrix, row indices) when every row is a :class:`RowRef` into one [*, C] matrix, else None."""
    first = rows[0] if rows else None
    if type(first) is not RowRef or first.matrix.shape[1] != C:
        return None
    matrix = first.matrix
    if not all(type(r) is RowRef and r.matrix is matrix for r in rows):
        return None
    return matrix, np.fromiter((r.index for r in rows), dtype=np.int64, count=len(rows))


def _input_key(inp: str) -> int:
    if inp not in INPUTS:
        raise BenchmarkInputError(f"unknown input {inp!r}; allowed: {', '.join(INPUTS)}")
    return INPUTS.index(inp)
