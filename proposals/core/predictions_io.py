"""Reading and writing predictions (pure; no Django).

* Artifact (.npz, loaded without pickle): ``video_ids`` (unicode), ``scores_<m>`` float32
  [n, C] and/or ``labels_<m>`` bool [n, C] for m in a/v/av, ``class_names`` (unicode).
* VGGSounder pickle: ``{video_id: {"predictions": {m: [class names]}, "logits": {m: [C floats]}}}``.
* CSV label list: header ``video_id,input,label`` (``modality`` accepted for ``input``; input in
  a/v/av), one row per predicted class.
* JSONL label list: one object per line ``{"video_id": ..., "a": [...], "v": [...], "av": [...]}``
  or ``{"video_id": ..., "predictions": {...}, "logits": {...}}``.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

MODALITIES = ("a", "v", "av")
INPUT_ALIASES = {"a": "a", "v": "v", "av": "av", "audio": "a", "visual": "v", "video": "v",
                 "audio-visual": "av", "audiovisual": "av", "a only": "a", "v only": "v"}


class PredictionFileError(ValueError):
    """A prediction file is malformed; the message names file, line/clip and what is allowed."""


@dataclass
class PredictionArrays:
    video_ids: list[str]
    class_names: list[str]
    scores: dict[str, np.ndarray] = field(default_factory=dict)  # m -> float32 [n, C]
    labels: dict[str, np.ndarray] = field(default_factory=dict)  # m -> bool [n, C]

    @property
    def kind(self) -> str:
        return "scores" if self.scores else "labels"

    @property
    def modalities(self) -> list[str]:
        return [m for m in MODALITIES if m in self.scores or m in self.labels]


# ------------------------------------------------------------------------------------------------
# artifact
# ------------------------------------------------------------------------------------------------

def to_npz_bytes(arrays: PredictionArrays) -> bytes:
    payload: dict[str, np.ndarray] = {
        "video_ids": np.asarray(arrays.video_ids, dtype=np.str_),
        "class_names": np.asarray(arrays.class_names, dtype=np.str_),
    }
    for m, arr in arrays.scores.items():
        payload[f"scores_{m}"] = np.asarray(arr, dtype=np.float32)
    for m, arr in arrays.labels.items():
        payload[f"labels_{m}"] = np.asarray(arr, dtype=bool)
    buf = io.BytesIO()
    np.savez(buf, **payload)
    return buf.getvalue()


def from_npz(fileobj) -> PredictionArrays:
    with np.load(fileobj, allow_pickle=False) as z:
        vids = [str(v) for v in z["video_ids"]]
        names = [str(c) for c in z["class_names"]] if "class_names" in z.files else []
        scores = {k[7:]: z[k].astype(np.float32) for k in z.files if k.startswith("scores_")}
        labels = {k[7:]: z[k].astype(bool) for k in z.files if k.startswith("labels_")}
    return PredictionArrays(vids, names, scores, labels)


# ------------------------------------------------------------------------------------------------
# validation helpers
# ------------------------------------------------------------------------------------------------

def _modality(value: Any, where: str) -> str:
    m = INPUT_ALIASES.get(str(value).strip().lower())
    if m is None:
        raise PredictionFileError(f"{where}: unknown input modality {value!r}; allowed: a, v, av")
    return m


def _unknown_message(where: str, unknown: Mapping[str, int]) -> str:
    names = sorted(unknown)
    return (f"{where}: {len(names)} unknown class name(s): "
            + "; ".join(f"{n!r} ({unknown[n]}x)" for n in names[:20])
            + (" ..." if len(names) > 20 else ""))


def from_label_lists(label_lists: Mapping[str, Mapping[str, Iterable[str]]], class_names: list[str],
                     scores: Mapping[str, Mapping[str, Any]] | None = None, *,
                     where: str = "predictions") -> PredictionArrays:
    """{video_id: {m: [names]}} (+ optional {video_id: {m: [C floats]}}) -> arrays."""
    vids = list(label_lists) or list(scores or {})
    if not vids:
        raise PredictionFileError(f"{where}: no clips")
    col = {c: j for j, c in enumerate(class_names)}
    C = len(class_names)
    labels: dict[str, np.ndarray] = {}
    unknown: dict[str, int] = {}
    for r, vid in enumerate(vids):
        for m_raw, names in (label_lists.get(vid) or {}).items():
            m = _modality(m_raw, f"{where}: clip {vid!r}")
            if isinstance(names, str):
                names = [names]
            mat = labels.setdefault(m, np.zeros((len(vids), C), dtype=bool))
            for name in names:
                j = col.get(name)
                if j is None:
                    unknown[name] = unknown.get(name, 0) + 1
                else:
                    mat[r, j] = True
    if unknown:
        raise PredictionFileError(_unknown_message(where, unknown))
    score_mats: dict[str, np.ndarray] = {}
    if scores:
        mods = sorted({_modality(m, where) for per in scores.values() for m in per},
                      key=MODALITIES.index)
        for m in mods:
            mat = np.empty((len(vids), C), dtype=np.float32)
            for r, vid in enumerate(vids):
                per = {_modality(k, where): v for k, v in (scores.get(vid) or {}).items()}
                if m not in per:
                    raise PredictionFileError(f"{where}: clip {vid!r} has no scores for input {m!r}")
                try:
                    row = np.asarray(per[m], dtype=np.float32)
                except (TypeError, ValueError):
                    raise PredictionFileError(
                        f"{where}: clip {vid!r} input {m!r}: scores are not numbers") from None
                if row.shape != (C,):
                    raise PredictionFileError(
                        f"{where}: clip {vid!r} input {m!r}: scores have shape {row.shape}, "
                        f"expected ({C},) (one per class)")
                mat[r] = row
            if not np.isfinite(mat).all():
                bad = [vids[i] for i in np.flatnonzero(~np.isfinite(mat).all(axis=1))[:5]]
                raise PredictionFileError(f"{where}: input {m!r}: NaN/inf scores in clip(s) {bad}")
            score_mats[m] = mat
    return PredictionArrays(vids, list(class_names), score_mats, labels)


# ------------------------------------------------------------------------------------------------
# file readers
# ------------------------------------------------------------------------------------------------

def _load_pickle(fileobj, class_names: list[str]):
    try:
        from benchmark.io import load_predictions_pickle  # noqa: PLC0415
    except ImportError:
        load_predictions_pickle = None
    if load_predictions_pickle is not None:
        return load_predictions_pickle(fileobj, class_names)
    from .unpickle import restricted_load  # noqa: PLC0415
    return restricted_load(fileobj)


def read_vggsounder_pickle(path_or_fileobj, class_names: list[str], *, name: str = "") -> PredictionArrays:
    where = name or str(getattr(path_or_fileobj, "name", path_or_fileobj))
    try:
        data = _load_pickle(path_or_fileobj, class_names)
    except PredictionFileError:
        raise
    except Exception as exc:  # noqa: BLE001 - refused or unreadable pickles are bad input
        msg = str(exc)
        raise PredictionFileError(msg if msg.startswith(where) else f"{where}: {msg}") from None
    if hasattr(data, "video_ids") and (hasattr(data, "scores") or hasattr(data, "labels")):
        # benchmark.io may return its ModelPredictions directly
        scores = {m: np.asarray(a, dtype=np.float32) for m, a in (getattr(data, "scores", {}) or {}).items()}
        labels = {m: np.asarray(a, dtype=bool) for m, a in (getattr(data, "labels", {}) or {}).items()}
        return PredictionArrays([str(v) for v in data.video_ids], list(class_names), scores, labels)
    if not isinstance(data, Mapping) or not data:
        raise PredictionFileError(
            f"{where}: expected a non-empty dict {{video_id: {{'predictions': ..., 'logits': ...}}}}, "
            f"got {type(data).__name__}")
    label_lists, logits = {}, {}
    for vid, entry in data.items():
        if not isinstance(entry, Mapping):
            raise PredictionFileError(f"{where}: clip {vid!r}: expected a dict with 'predictions'/'logits'")
        label_lists[str(vid)] = entry.get("predictions") or {}
        if entry.get("logits"):
            logits[str(vid)] = entry["logits"]
    if logits and len(logits) != len(label_lists):
        missing = [v for v in label_lists if v not in logits][:5]
        raise PredictionFileError(f"{where}: some clips have logits and others not, e.g. {missing}")
    return from_label_lists(label_lists, class_names, logits or None, where=where)


def read_label_csv(path_or_fileobj, class_names: list[str], *, name: str = "") -> PredictionArrays:
    where = name or str(getattr(path_or_fileobj, "name", path_or_fileobj))
    text = _read_text(path_or_fileobj)
    reader = csv.DictReader(io.StringIO(text))
    fields = [f.strip() for f in (reader.fieldnames or [])]
    input_col = "input" if "input" in fields else ("modality" if "modality" in fields else None)
    missing = [c for c in ("video_id", "label") if c not in fields] + ([] if input_col else ["input"])
    if missing:
        raise PredictionFileError(
            f"{where}: missing column(s) {missing}; expected header video_id,input,label "
            f"(input in a/v/av)")
    lists: dict[str, dict[str, list[str]]] = {}
    unknown: dict[str, int] = {}
    col = set(class_names)
    for lineno, row in enumerate(reader, start=2):
        vid = (row.get("video_id") or "").strip()
        if not vid:
            raise PredictionFileError(f"{where}, line {lineno}: empty video_id")
        m = _modality(row.get(input_col) or "", f"{where}, line {lineno}, field {input_col}")
        label = (row.get("label") or "").strip()
        if label not in col:
            unknown[label] = unknown.get(label, 0) + 1
            continue
        lists.setdefault(vid, {}).setdefault(m, []).append(label)
    if unknown:
        raise PredictionFileError(_unknown_message(where, unknown))
    return from_label_lists(lists, class_names, where=where)


def read_label_jsonl(path_or_fileobj, class_names: list[str], *, name: str = "") -> PredictionArrays:
    where = name or str(getattr(path_or_fileobj, "name", path_or_fileobj))
    lists: dict[str, dict[str, list[str]]] = {}
    logits: dict[str, dict[str, Any]] = {}
    for lineno, line in enumerate(_read_text(path_or_fileobj).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise PredictionFileError(f"{where}, line {lineno}: not valid JSON ({exc.msg})") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("video_id"), str):
            raise PredictionFileError(f"{where}, line {lineno}: expected an object with a string 'video_id'")
        vid = obj["video_id"]
        if vid in lists:
            raise PredictionFileError(f"{where}, line {lineno}: duplicate video_id {vid!r}")
        preds = obj.get("predictions")
        if preds is None:
            preds = {k: v for k, v in obj.items() if k not in ("video_id", "logits")}
        if not isinstance(preds, dict):
            raise PredictionFileError(f"{where}, line {lineno}: 'predictions' must be an object {{a|v|av: [...]}}")
        for k, v in preds.items():
            _modality(k, f"{where}, line {lineno}")
            if not isinstance(v, list):
                raise PredictionFileError(f"{where}, line {lineno}: {k!r} must be a list of class names")
        lists[vid] = preds
        if obj.get("logits"):
            logits[vid] = obj["logits"]
    if logits and len(logits) != len(lists):
        raise PredictionFileError(f"{where}: some lines have logits and others not")
    return from_label_lists(lists, class_names, logits or None, where=where)


def read_predictions_file(path, class_names: list[str]) -> PredictionArrays:
    """Dispatch on the file extension: .pkl/.pickle, .csv, .jsonl/.ndjson, .npz."""
    p = Path(path)
    if not p.exists():
        raise PredictionFileError(f"{path}: no such file")
    suffix = p.suffix.lower()
    if suffix in (".pkl", ".pickle"):
        return read_vggsounder_pickle(p, class_names, name=str(p))
    if suffix == ".csv":
        return read_label_csv(p, class_names, name=str(p))
    if suffix in (".jsonl", ".ndjson"):
        return read_label_jsonl(p, class_names, name=str(p))
    if suffix == ".npz":
        try:
            arr = from_npz(p)
        except Exception as exc:  # noqa: BLE001
            raise PredictionFileError(f"{path}: not a readable .npz artifact: {exc}") from None
        check_arrays(arr, class_names, where=str(p))
        return arr
    raise PredictionFileError(f"{path}: unknown file type {suffix!r}; allowed: .pkl, .pickle, .csv, .jsonl, .npz")


def check_arrays(arr: PredictionArrays, class_names: list[str], *, where: str) -> None:
    n, C = len(arr.video_ids), len(class_names)
    if arr.class_names and list(arr.class_names) != list(class_names):
        raise PredictionFileError(f"{where}: class list differs from the taxonomy ({len(arr.class_names)} classes)")
    if len(set(arr.video_ids)) != n:
        raise PredictionFileError(f"{where}: duplicate video ids")
    for kind, store in (("scores", arr.scores), ("labels", arr.labels)):
        for m, a in store.items():
            if m not in MODALITIES:
                raise PredictionFileError(f"{where}: unknown input {m!r}; allowed: a, v, av")
            if a.shape != (n, C):
                raise PredictionFileError(f"{where}: {kind}_{m} has shape {a.shape}, expected ({n}, {C})")
    if not arr.scores and not arr.labels:
        raise PredictionFileError(f"{where}: neither scores nor label sets")


def _read_text(path_or_fileobj) -> str:
    if hasattr(path_or_fileobj, "read"):
        data = path_or_fileobj.read()
    else:
        data = Path(path_or_fileobj).read_bytes()
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise PredictionFileError(f"file is not UTF-8 text: {exc}") from None
    return data
