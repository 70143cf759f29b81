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

import contextlib
import gc
import io
import json
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd

from .errors import BenchmarkInputError
from .fastpickle import FastPathUnavailable, extract_float_lists, read_unframed, substitute_rows
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


def _input_of(key, inputs, where: str) -> str:
    """The input (a/v/av) that ``key`` names: exactly a/v/av, or a spelling ``inputs`` maps to one."""
    inp = key if inputs is None else inputs.get(str(key).strip().lower())
    if inp not in INPUTS:
        raise BenchmarkInputError(f"{where}: unknown input {key!r}; allowed: {', '.join(INPUTS)}")
    return inp


def predictions_from_mapping(data, class_names: list[str], *, name: str, source: str,
                             inputs: dict[str, str] | None = None,
                             keep_label_sets: bool = False) -> ModelPredictions:
    """Validate a VGGSounder prediction mapping and build :class:`ModelPredictions`.

    ``inputs`` maps other spellings of an input (lower case, e.g. ``"audio"``) to a/v/av; by default
    only a/v/av are allowed. A scored model is evaluated from its scores and its label sets are dropped
    (like the reference) unless ``keep_label_sets``; they are then checked against the classes too.
    """
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
            for key, lst in preds.items():
                inp = _input_of(key, inputs, f"{source}: clip {raw_vid!r}")
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
            if inputs is None:
                for key in logits:
                    _input_of(key, None, f"{source}: clip {raw_vid!r}")
            else:
                logits = {_input_of(k, inputs, f"{source}: clip {raw_vid!r}"): v for k, v in logits.items()}
            scores[vid] = logits
            n_logits += 1
    if scores and n_logits != len(data):
        raise BenchmarkInputError(
            f"{source}: {n_logits} of {len(data)} clips have 'logits'; give scores for every clip or for none")
    if not scores and len(labels) != len(data):
        raise BenchmarkInputError(f"{source}: some clips have neither 'predictions' nor 'logits'")
    if scores:
        # scored models are evaluated from their scores (the reference drops label sets then)
        lists = {v: labels.get(v, {}) for v in scores} if keep_label_sets else {v: {} for v in scores}
        return ModelPredictions.from_label_lists(name, lists, class_names, scores=scores, source=source)
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


def _name_and_source(path_or_fileobj, name):
    name = _model_name(path_or_fileobj, name)
    is_path = isinstance(path_or_fileobj, (str, os.PathLike))
    return name, (str(path_or_fileobj) if is_path else f"predictions {name!r}")


@contextlib.contextmanager
def _naming(source: str):
    """Every :class:`BenchmarkInputError` raised inside starts with ``source`` (the file)."""
    try:
        yield
    except BenchmarkInputError as exc:
        msg = str(exc)
        if msg.startswith(source):
            raise
        raise BenchmarkInputError(f"{source}: {msg}") from None


def load_predictions_pickle(path_or_fileobj, class_names: list[str], *, name: str | None = None,
                            **options) -> ModelPredictions:
    """Load a VGGSounder prediction pickle with the restricted unpickler and validate it
    (``options``: those of :func:`predictions_from_mapping`)."""
    name, source = _name_and_source(path_or_fileobj, name)
    with _naming(source):
        if isinstance(path_or_fileobj, (str, os.PathLike)):
            try:
                raw = read_unframed(path_or_fileobj)
            except FileNotFoundError as exc:
                raise BenchmarkInputError(f"{source}: file not found") from exc
        else:
            raw = path_or_fileobj.read()
        data = restricted_loads_scores(raw, len(class_names))
        del raw
        return predictions_from_mapping(data, class_names, name=name, source=source, **options)


def load_predictions_jsonl(path_or_fileobj, class_names: list[str], *, name: str | None = None,
                           **options) -> ModelPredictions:
    """JSONL: one object per line with a string ``video_id`` and ``"predictions": {input: [class names]}``
    and/or ``"logits": {input: [C floats]}``; without ``predictions``, the object's other keys are the
    label lists (``{"video_id": ..., "a": [...], "v": [...], "av": [...]}``).
    ``options``: those of :func:`predictions_from_mapping`."""
    name, source = _name_and_source(path_or_fileobj, name)
    is_path = isinstance(path_or_fileobj, (str, os.PathLike))
    with _naming(source), (open(path_or_fileobj, encoding="utf-8-sig") if is_path
                           else contextlib.nullcontext(path_or_fileobj)) as fh:
        try:
            records = read_jsonl_records(fh, source)
        except UnicodeDecodeError as exc:
            raise BenchmarkInputError(f"{source}: not UTF-8 text ({exc})") from None
    data = {}
    for vid, obj in records.items():
        if obj.get("predictions") is None:  # label lists as keys of the object itself
            entry = {"predictions": {k: v for k, v in obj.items() if k not in ("predictions", "logits")}}
            if obj.get("logits") is not None:
                entry["logits"] = obj["logits"]
            obj = entry
        data[vid] = obj
    del records
    with _naming(source):
        return predictions_from_mapping(data, class_names, name=name, source=source, **options)


def read_jsonl_records(lines, source: str, check=None) -> dict[str, dict]:
    """``{video_id: object}`` from JSON Lines: one object with a string ``video_id`` per line (blank lines
    skipped, a byte-order mark on the first line ignored; ``lines``: an open file or a list of lines, str or
    UTF-8 bytes). ``check(obj, where)`` may refuse an object (``video_id`` already popped) before the
    duplicate test. Errors name ``source`` and the line number."""
    data: dict[str, dict] = {}
    for lineno, line in enumerate(lines, 1):
        if isinstance(line, bytes):
            line = line.decode("utf-8")
        if lineno == 1:
            line = line.lstrip("\ufeff")
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BenchmarkInputError(f"{source}: line {lineno}: not valid JSON ({exc.msg})") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("video_id"), str):
            raise BenchmarkInputError(f"{source}: line {lineno}: expected an object with a string 'video_id'")
        vid = obj.pop("video_id")
        if check is not None:
            check(obj, f"{source}: line {lineno}")
        if vid in data:
            raise BenchmarkInputError(f"{source}: line {lineno}: clip {vid!r} appears twice")
        data[vid] = obj
    return data


CSV_COLUMNS = ("video_id", "input", "label")
_EXACT_INPUTS = {i: i for i in INPUTS}


def load_predictions_csv(path_or_fileobj, class_names: list[str], *, name: str | None = None,
                         inputs: dict[str, str] | None = None) -> ModelPredictions:
    """CSV label lists: one row per predicted (clip, input, class): ``video_id,input,label``
    (a ``modality`` column is accepted for ``input``; inputs a/v/av in any case, or the spellings
    ``inputs`` maps to them).

    A clip with an empty prediction for an input may appear with an empty ``label``.
    """
    name, source = _name_and_source(path_or_fileobj, name)
    try:
        df = pd.read_csv(path_or_fileobj, dtype=str, keep_default_na=False)
    except FileNotFoundError as exc:
        raise BenchmarkInputError(f"{source}: file not found") from exc
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise BenchmarkInputError(f"{source}: not a readable CSV ({exc})") from exc
    if not isinstance(df.index, pd.RangeIndex):  # pandas took the first field for an index
        raise BenchmarkInputError(f"{source}: the rows have more fields than the header "
                                  f"{','.join(df.columns)}; quote labels that contain commas")
    df.columns = [str(c).strip() for c in df.columns]
    col = "modality" if "modality" in df.columns and "input" not in df.columns else "input"
    missing = [c for c in ("video_id", col, "label") if c not in df.columns]
    if missing:
        raise BenchmarkInputError(
            f"{source}: missing column(s) {missing}; expected header {','.join(CSV_COLUMNS)} (input in a/v/av)")
    spellings = _EXACT_INPUTS if inputs is None else inputs
    data: dict[str, dict] = {}
    for i, (vid, value, lab) in enumerate(zip(df["video_id"], df[col], df["label"]), start=2):
        vid = vid.strip()
        if not vid:
            raise BenchmarkInputError(f"{source}: line {i}: empty video_id")
        inp = spellings.get(value.strip().lower())
        if inp is None:
            allowed = ", ".join(INPUTS)
            raise BenchmarkInputError(
                f"{source}: line {i}: input {value!r} is not one of {allowed}" if inputs is None else
                f"{source}, line {i}, field {col}: unknown input modality {value!r}; allowed: {allowed}")
        per = data.setdefault(vid, {"predictions": {}})["predictions"].setdefault(inp, [])
        lab = lab.strip()
        if lab:
            per.append(lab)
    with _naming(source):
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


def predictions_dir_files(directory) -> list[Path]:
    """The predictions files of a directory (.pkl/.pickle/.jsonl/.csv), sorted by name."""
    directory = Path(directory)
    if not directory.is_dir():
        raise BenchmarkInputError(f"{directory}: not a directory")
    files = sorted(p for p in directory.iterdir() if p.suffix.lower() in LOADERS and p.is_file())
    if not files:
        raise BenchmarkInputError(f"{directory}: no predictions files ({', '.join(LOADERS)})")
    return files


def load_predictions_dir(directory, class_names: list[str]) -> list[ModelPredictions]:
    """Every predictions file in a directory (one model per file, named by the file stem)."""
    return [load_predictions(p, class_names) for p in predictions_dir_files(directory)]


@dataclass
class PredictionsFile:
    """A predictions file not read yet: calling it loads it (:func:`load_predictions`) as model ``name``
    (default: the file stem). A model source for :func:`benchmark.evaluate.iter_models`."""

    path: str | os.PathLike
    class_names: list[str]
    name: str | None = None

    def __post_init__(self):
        self.name = _model_name(self.path, self.name)

    def __call__(self) -> ModelPredictions:
        return load_predictions(self.path, self.class_names, name=self.name)
