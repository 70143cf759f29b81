"""Reading predictions: VGGSounder pickles (restricted unpickler), CSV and JSONL label lists.

Pickle layout (VGGSounder)::

    {video_id: {"predictions": {"a"|"v"|"av": [class names]},
                "logits":      {"a"|"v"|"av": [C floats]}}}

A pickle can run code when loaded; :class:`RestrictedUnpickler` resolves no global
except the few numpy needs to rebuild arrays and scalars, so a file holding anything
but plain data (dicts, lists, tuples, str, numbers, bools, None, numpy arrays) is
refused with the name of the global it asked for.
"""
from __future__ import annotations

import gc
import io
import json
import os
import pickle
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd

from .errors import BenchmarkInputError
from .fastpickle import FastPathUnavailable, extract_float_lists, substitute_rows
from .labels import INPUTS
from .predictions import ModelPredictions

ALLOWED_GLOBALS = {
    # numpy arrays / dtypes / scalars (numpy 1.x and 2.x module paths)
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    # bytes in protocol-2 pickles of numpy arrays
    ("_codecs", "encode"),
    # plain containers
    ("collections", "OrderedDict"),
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that only rebuilds plain data and numpy arrays."""

    def find_class(self, module, name):
        if (module, name) in ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise BenchmarkInputError(
            f"pickle refused: it references the global '{module}.{name}'; only plain data "
            "(dict, list, tuple, str, int, float, bool, None) and numpy arrays are allowed"
        )

    def persistent_load(self, pid):
        raise BenchmarkInputError("pickle refused: it uses persistent ids; only plain data is allowed")


def restricted_load(fileobj: BinaryIO):
    # millions of small containers: the cyclic GC would walk them again and again while
    # loading (plain data cannot form reference cycles worth collecting here)
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return RestrictedUnpickler(fileobj).load()
    except BenchmarkInputError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, MemoryError) as exc:
        raise BenchmarkInputError(f"pickle refused: not a readable pickle ({type(exc).__name__}: {exc})") from exc
    finally:
        if gc_was_enabled:
            gc.enable()


def _model_name(path_or_fileobj, name):
    if name:
        return name
    if isinstance(path_or_fileobj, (str, os.PathLike)):
        return Path(path_or_fileobj).stem
    return getattr(path_or_fileobj, "name", None) and Path(path_or_fileobj.name).stem or "model"


def _strip_mp4(vid: str) -> str:
    return vid.replace(".mp4", "")  # the reference strips ".mp4" from ids


def predictions_from_mapping(data, class_names: list[str], *, name: str,
                             source: str) -> ModelPredictions:
    """Validate a VGGSounder prediction mapping and build :class:`ModelPredictions`."""
    if not isinstance(data, dict):
        raise BenchmarkInputError(f"{source}: expected a dict of clip id -> entry, got {type(data).__name__}")
    if not data:
        raise BenchmarkInputError(f"{source}: empty prediction set (no clips)")
    labels: dict[str, dict[str, list[str]]] = {}
    scores: dict[str, dict[str, object]] = {}
    n_logits = 0
    for raw_vid, entry in data.items():
        if not isinstance(raw_vid, str):
            raise BenchmarkInputError(f"{source}: clip id {raw_vid!r} is not a string")
        vid = _strip_mp4(raw_vid)
        if vid in labels or vid in scores:
            raise BenchmarkInputError(f"{source}: clip {vid!r} appears twice")
        if not isinstance(entry, dict):
            raise BenchmarkInputError(f"{source}: clip {raw_vid!r}: entry must be a dict, got {type(entry).__name__}")
        if "predictions" not in entry and "logits" not in entry:
            raise BenchmarkInputError(f"{source}: clip {raw_vid!r}: needs 'predictions' and/or 'logits'")
        preds = entry.get("predictions")
        if preds is not None:
            if not isinstance(preds, dict):
                raise BenchmarkInputError(f"{source}: clip {raw_vid!r}: 'predictions' must be a dict")
            per = {}
            for inp, lst in preds.items():
                if inp not in INPUTS:
                    raise BenchmarkInputError(
                        f"{source}: clip {raw_vid!r}: unknown input {inp!r}; allowed: {', '.join(INPUTS)}")
                if lst is None:
                    lst = []
                if isinstance(lst, str) or not isinstance(lst, (list, tuple, np.ndarray)):
                    raise BenchmarkInputError(
                        f"{source}: clip {raw_vid!r}: predictions[{inp!r}] must be a list of class names")
                per[inp] = [str(x) for x in lst]
            labels[vid] = per
        logits = entry.get("logits")
        if logits is not None:
            if not isinstance(logits, dict):
                raise BenchmarkInputError(f"{source}: clip {raw_vid!r}: 'logits' must be a dict")
            for inp in logits:
                if inp not in INPUTS:
                    raise BenchmarkInputError(
                        f"{source}: clip {raw_vid!r}: unknown input {inp!r}; allowed: {', '.join(INPUTS)}")
            scores[vid] = logits
            n_logits += 1
    if scores and n_logits != len(data):
        raise BenchmarkInputError(
            f"{source}: {n_logits} of {len(data)} clips have 'logits'; give scores for every clip or for none")
    if not scores and len(labels) != len(data):
        raise BenchmarkInputError(f"{source}: some clips have neither 'predictions' nor 'logits'")
    if scores:
        # scored models are evaluated from their scores (the reference drops label sets then)
        return ModelPredictions.from_label_lists(
            name, {v: {} for v in scores}, class_names, scores=scores, source=source)
    return ModelPredictions.from_label_lists(name, labels, class_names, source=source)


def restricted_loads_scores(raw: bytes, width: int):
    """Restricted unpickling of prediction bytes; float lists of ``width`` values are decoded with numpy
    (see :mod:`benchmark.fastpickle`) when the bytes allow it, else read the ordinary way."""
    try:
        small, values = extract_float_lists(raw, width)
    except FastPathUnavailable:
        return restricted_load(io.BytesIO(raw))
    try:
        data = restricted_load(io.BytesIO(small))
        return substitute_rows(data, values)
    except (BenchmarkInputError, FastPathUnavailable, AttributeError, TypeError):
        return restricted_load(io.BytesIO(raw))  # anything unexpected: the slow path decides


def load_predictions_pickle(path_or_fileobj, class_names: list[str], *, name: str | None = None) -> ModelPredictions:
    """Load a VGGSounder prediction pickle with the restricted unpickler and validate it."""
    name = _model_name(path_or_fileobj, name)
    if isinstance(path_or_fileobj, (str, os.PathLike)):
        source = str(path_or_fileobj)
        try:
            with open(path_or_fileobj, "rb") as fh:
                raw = fh.read()
        except FileNotFoundError as exc:
            raise BenchmarkInputError(f"{source}: file not found") from exc
    else:
        source = f"predictions {name!r}"
        raw = path_or_fileobj.read()
    data = restricted_loads_scores(raw, len(class_names))
    del raw
    try:
        return predictions_from_mapping(data, class_names, name=name, source=source)
    except BenchmarkInputError as exc:
        msg = str(exc)
        raise BenchmarkInputError(msg if msg.startswith(source) else f"{source}: {msg}") from None


def load_predictions_jsonl(path_or_fileobj, class_names: list[str], *, name: str | None = None) -> ModelPredictions:
    """JSONL: one object per line, ``{"video_id": ..., "predictions": {...}, "logits": {...}}``."""
    name = _model_name(path_or_fileobj, name)
    source = str(path_or_fileobj) if isinstance(path_or_fileobj, (str, os.PathLike)) else f"predictions {name!r}"
    fh = open(path_or_fileobj, encoding="utf-8") if isinstance(path_or_fileobj, (str, os.PathLike)) else path_or_fileobj
    data = {}
    try:
        for lineno, line in enumerate(fh, 1):
            if isinstance(line, bytes):
                line = line.decode("utf-8")
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise BenchmarkInputError(f"{source}: line {lineno}: not valid JSON ({exc.msg})") from None
            if not isinstance(obj, dict) or not isinstance(obj.get("video_id"), str):
                raise BenchmarkInputError(f"{source}: line {lineno}: expected an object with a string 'video_id'")
            vid = obj.pop("video_id")
            if vid in data:
                raise BenchmarkInputError(f"{source}: line {lineno}: clip {vid!r} appears twice")
            data[vid] = obj
    finally:
        if fh is not path_or_fileobj:
            fh.close()
    return predictions_from_mapping(data, class_names, name=name, source=source)


CSV_COLUMNS = ("video_id", "input", "label")


def load_predictions_csv(path_or_fileobj, class_names: list[str], *, name: str | None = None) -> ModelPredictions:
    """CSV label lists: one row per predicted (clip, input, class): ``video_id,input,label``.

    A clip with an empty prediction for an input may appear with an empty ``label``.
    """
    name = _model_name(path_or_fileobj, name)
    source = str(path_or_fileobj) if isinstance(path_or_fileobj, (str, os.PathLike)) else f"predictions {name!r}"
    try:
        df = pd.read_csv(path_or_fileobj, dtype=str, keep_default_na=False)
    except FileNotFoundError as exc:
        raise BenchmarkInputError(f"{source}: file not found") from exc
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise BenchmarkInputError(f"{source}: not a readable CSV ({exc})") from exc
    missing = [c for c in CSV_COLUMNS if c not in df.columns]
    if missing:
        raise BenchmarkInputError(f"{source}: missing column(s) {', '.join(missing)}; expected {','.join(CSV_COLUMNS)}")
    data: dict[str, dict] = {}
    for i, (vid, inp, lab) in enumerate(zip(df["video_id"], df["input"], df["label"]), start=2):
        inp = inp.strip().lower()
        if inp not in INPUTS:
            raise BenchmarkInputError(f"{source}: line {i}: input {inp!r} is not one of {', '.join(INPUTS)}")
        per = data.setdefault(vid, {"predictions": {}})["predictions"].setdefault(inp, [])
        if lab:
            per.append(lab)
    return predictions_from_mapping(data, class_names, name=name, source=source)


LOADERS = {".pkl": load_predictions_pickle, ".pickle": load_predictions_pickle,
           ".jsonl": load_predictions_jsonl, ".csv": load_predictions_csv}


def load_predictions(path, class_names: list[str], *, name: str | None = None) -> ModelPredictions:
    """Load a predictions file by extension (.pkl/.pickle, .jsonl, .csv)."""
    suffix = Path(path).suffix.lower()
    loader = LOADERS.get(suffix)
    if loader is None:
        raise BenchmarkInputError(
            f"{path}: unsupported predictions file type {suffix or '(none)'}; allowed: {', '.join(LOADERS)}")
    return loader(path, class_names, name=name)


def load_predictions_dir(directory, class_names: list[str]) -> list[ModelPredictions]:
    """Every predictions file in a directory (one model per file, named by the file stem)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise BenchmarkInputError(f"{directory}: not a directory")
    files = sorted(p for p in directory.iterdir() if p.suffix.lower() in LOADERS and p.is_file())
    if not files:
        raise BenchmarkInputError(f"{directory}: no predictions files ({', '.join(LOADERS)})")
    return [load_predictions(p, class_names) for p in files]
