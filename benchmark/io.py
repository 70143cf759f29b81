"""Reading predictions: VGGSounder pickles (restricted unpickler), CSV and JSONL label lists.

Pickle layout (VGGSounder)::

    {video_id: {"predictions": {"a"|"v"|"av": [class names]},
                "logits":      {"a"|"v"|"av": [C floats]}}}

The published files are ``collections.defaultdict(dict)`` objects (protocol 4), sometimes with
``OrderedDict`` entries, numpy scalars and float32 arrays. A pickle can run code when loaded;
:class:`RestrictedUnpickler` resolves no global except those containers (``defaultdict`` only with
``dict`` or ``list`` as its factory, or none) and the few numpy needs to rebuild arrays, dtypes and
scalars, so a file holding anything else (``os.system``, ``builtins.eval``, any class) is refused with
the name of the global it asked for, before anything is called.
"""

from __future__ import annotations

import ast
import collections
import contextlib
import csv
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
    # plain containers (the published files are defaultdict(dict))
    ("collections", "OrderedDict"),
    ("collections", "defaultdict"),
    # defaultdict factories (calling them only builds an empty container)
    ("builtins", "dict"),
    ("builtins", "list"),
}

DEFAULTDICT_FACTORIES = (None, dict, list)
"""What a pickled defaultdict may use as its default factory."""


def _defaultdict(factory=None, *rest):
    """``collections.defaultdict`` as the restricted unpickler rebuilds it: only a plain factory."""
    if rest or not any(factory is f for f in DEFAULTDICT_FACTORIES):
        raise BenchmarkInputError(
            f"pickle refused: a defaultdict with the factory {getattr(factory, '__name__', type(factory).__name__)!r}; "
            "allowed factories: dict, list or none"
        )
    return collections.defaultdict(factory)


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that only rebuilds plain data and numpy arrays."""

    def find_class(self, module, name):
        if (module, name) == ("collections", "defaultdict"):
            return _defaultdict
        if (module, name) in ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise BenchmarkInputError(
            f"pickle refused: it references the global '{module}.{name}'; only plain data "
            "(dict, defaultdict, OrderedDict, list, tuple, str, int, float, bool, None) and numpy arrays and "
            "scalars are allowed"
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
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        KeyError,
        MemoryError,
    ) as exc:
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


def predictions_from_mapping(
    data,
    class_names: list[str],
    *,
    name: str,
    source: str,
    inputs: dict[str, str] | None = None,
    keep_label_sets: bool = False,
    strict: bool = False,
    classes_from: str | None = None,
) -> ModelPredictions:
    """Validate a VGGSounder prediction mapping and build :class:`ModelPredictions`.

    ``inputs`` maps other spellings of an input (lower case, e.g. ``"audio"``) to a/v/av; by default
    only a/v/av are allowed. A scored model is evaluated from its scores and its label sets are dropped
    (like the reference) unless ``keep_label_sets``; they are then checked against the classes too.
    Unknown class names are skipped and counted (``unknown_names``), or refused with ``strict``
    (``classes_from`` says where the allowed names come from).
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
                        f"{source}: clip {raw_vid!r}: predictions[{inp!r}] must be a list of class names"
                    )
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
            f"{source}: {n_logits} of {len(data)} clips have 'logits'; give scores for every clip or for none"
        )
    if not scores and len(labels) != len(data):
        raise BenchmarkInputError(f"{source}: some clips have neither 'predictions' nor 'logits'")
    if scores:
        # scored models are evaluated from their scores (the reference drops label sets then)
        lists = {v: labels.get(v, {}) for v in scores} if keep_label_sets else {v: {} for v in scores}
        return ModelPredictions.from_label_lists(
            name, lists, class_names, scores=scores, source=source, strict=strict, classes_from=classes_from
        )
    return ModelPredictions.from_label_lists(
        name, labels, class_names, source=source, strict=strict, classes_from=classes_from
    )


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


def load_predictions_pickle(
    path_or_fileobj, class_names: list[str], *, name: str | None = None, **options
) -> ModelPredictions:
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


def load_predictions_jsonl(
    path_or_fileobj, class_names: list[str], *, name: str | None = None, **options
) -> ModelPredictions:
    """JSONL: one object per line with a string ``video_id`` and ``"predictions": {input: [class names]}``
    and/or ``"logits": {input: [C floats]}``; without ``predictions``, the object's other keys are the
    label lists (``{"video_id": ..., "a": [...], "v": [...], "av": [...]}``).
    ``options``: those of :func:`predictions_from_mapping`."""
    name, source = _name_and_source(path_or_fileobj, name)
    is_path = isinstance(path_or_fileobj, (str, os.PathLike))
    with (
        _naming(source),
        open(path_or_fileobj, encoding="utf-8-sig") if is_path else contextlib.nullcontext(path_or_fileobj) as fh,
    ):
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


def load_predictions_csv(
    path_or_fileobj, class_names: list[str], *, name: str | None = None, inputs: dict[str, str] | None = None, **options
) -> ModelPredictions:
    """CSV label lists: one row per predicted (clip, input, class): ``video_id,input,label``
    (a ``modality`` column is accepted for ``input``; inputs a/v/av in any case, or the spellings
    ``inputs`` maps to them).

    A clip with an empty prediction for an input may appear with an empty ``label``.
    """
    if isinstance(path_or_fileobj, (str, os.PathLike)) and is_judged_csv(path_or_fileobj):
        return load_judged_csvs([path_or_fileobj], class_names, name=name, **options)
    name, source = _name_and_source(path_or_fileobj, name)
    try:
        df = pd.read_csv(path_or_fileobj, dtype=str, keep_default_na=False)
    except FileNotFoundError as exc:
        raise BenchmarkInputError(f"{source}: file not found") from exc
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise BenchmarkInputError(f"{source}: not a readable CSV ({exc})") from exc
    if not isinstance(df.index, pd.RangeIndex):  # pandas took the first field for an index
        raise BenchmarkInputError(
            f"{source}: the rows have more fields than the header "
            f"{','.join(df.columns)}; quote labels that contain commas"
        )
    df.columns = [str(c).strip() for c in df.columns]
    col = "modality" if "modality" in df.columns and "input" not in df.columns else "input"
    missing = [c for c in ("video_id", col, "label") if c not in df.columns]
    if missing:
        raise BenchmarkInputError(
            f"{source}: missing column(s) {missing}; expected header {','.join(CSV_COLUMNS)} (input in a/v/av)"
        )
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
                f"{source}: line {i}: input {value!r} is not one of {allowed}"
                if inputs is None
                else f"{source}, line {i}, field {col}: unknown input modality {value!r}; allowed: {allowed}"
            )
        per = data.setdefault(vid, {"predictions": {}})["predictions"].setdefault(inp, [])
        lab = lab.strip()
        if lab:
            per.append(lab)
    with _naming(source):
        return predictions_from_mapping(data, class_names, name=name, source=source, **options)


LOADERS = {
    ".pkl": load_predictions_pickle,
    ".pickle": load_predictions_pickle,
    ".jsonl": load_predictions_jsonl,
    ".csv": load_predictions_csv,
}


def load_predictions(path, class_names: list[str], *, name: str | None = None, **options) -> ModelPredictions:
    """Load a predictions file by extension (.pkl/.pickle, .jsonl, .csv; ``options``: ``strict``,
    ``classes_from``)."""
    suffix = Path(path).suffix.lower()
    loader = LOADERS.get(suffix)
    if loader is None:
        raise BenchmarkInputError(
            f"{path}: unsupported predictions file type {suffix or '(none)'}; allowed: {', '.join(LOADERS)}"
        )
    return loader(path, class_names, name=name, **options)


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
    strict: bool = False
    classes_from: str | None = None

    def __post_init__(self):
        if not self.name and Path(self.path).suffix.lower() == ".csv" and is_judged_csv(self.path):
            self.name = judged_model_name(self.path)
        self.name = _model_name(self.path, self.name)

    def __call__(self) -> ModelPredictions:
        return load_predictions(
            self.path, self.class_names, name=self.name, strict=self.strict, classes_from=self.classes_from
        )


# --------------------------------------------------------------------------- LLM-judged CSVs
JUDGED_COLUMNS = ("video_id", "suggestions")
"""The published LLM-judged prediction CSVs (VGGSounder ``experiments/gpt-evaluation/csv/{a,v,av}/
predictions-<model>.csv``): ``video_id`` (``<id>.mp4``), ``suggestions`` (a dict literal
``{class name: {"pred": "yes"|"no", "score": 0..5}}``, ``[]`` for a clip not judged yet) and ``response``
(the model's caption). One file per input; the input is the name of the file's folder (a, v or av)."""
JUDGED_PREFIXES = ("predictions-", "predictions_")


def is_judged_csv(path) -> bool:
    """Whether the CSV file's header names a ``suggestions`` column (an LLM-judged prediction CSV)."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            header = next(csv.reader(fh), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return False
    return "suggestions" in [h.strip() for h in header]


def judged_model_name(path) -> str:
    """The model a judged CSV belongs to: its file stem without the ``predictions-`` prefix."""
    stem = Path(path).stem
    for prefix in JUDGED_PREFIXES:
        if stem.startswith(prefix) and len(stem) > len(prefix):
            return stem[len(prefix) :]
    return stem


def judged_input(path, input: str | None = None) -> str:
    """The input of a judged CSV: ``input`` when given, else the name of its folder (a, v or av)."""
    inp = input if input is not None else Path(path).parent.name
    if inp not in INPUTS:
        raise BenchmarkInputError(
            f"{path}: a judged CSV holds one input, named by its folder (.../a/, .../v/ or .../av/, as VGGSounder "
            f"publishes them); this one is in {Path(path).parent.name!r}; allowed: {', '.join(INPUTS)}"
        )
    return inp


def _parse_suggestions(text: str, where: str):
    text = text.strip()
    if text in ("", "[]"):
        return None  # not judged yet
    try:
        value = json.loads(text)
    except ValueError:
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            raise BenchmarkInputError(
                f"{where}: suggestions is not a dict literal ({text[:60]!r}); expected "
                "{class name: {'pred': 'yes'|'no', 'score': 0-5}} or [] for a clip not judged"
            ) from None
    if isinstance(value, list) and not value:
        return None
    if not isinstance(value, dict):
        raise BenchmarkInputError(
            f"{where}: suggestions is a {type(value).__name__}; expected "
            "{class name: {'pred': 'yes'|'no', 'score': 0-5}} or [] for a clip not judged"
        )
    return value


def _judged_labels(value: dict, where: str, threshold: float | None) -> list[str]:
    out = []
    for cls_name, verdict in value.items():
        if not isinstance(cls_name, str) or not isinstance(verdict, dict):
            raise BenchmarkInputError(
                f"{where}: suggestion {cls_name!r} is not class name -> {{'pred': 'yes'|'no', 'score': 0-5}}"
            )
        if threshold is None:
            pred = str(verdict.get("pred", "")).strip().lower()
            if pred not in ("yes", "no"):
                raise BenchmarkInputError(
                    f"{where}: suggestion {cls_name!r}: pred {verdict.get('pred')!r}; allowed: 'yes', 'no'"
                )
            keep = pred == "yes"
        else:
            score = verdict.get("score")
            if isinstance(score, bool) or not isinstance(score, (int, float)):
                raise BenchmarkInputError(f"{where}: suggestion {cls_name!r}: score {score!r} is not a number")
            keep = score >= threshold
        if keep:
            out.append(cls_name)
    return out


def read_judged_csv(path, *, threshold: float | None = None) -> tuple[dict[str, list[str]], set[str]]:
    """``({video_id: [class names judged present]}, {clips not judged yet})`` of one judged CSV: names whose
    ``pred`` is ``yes`` (or whose ``score`` >= ``threshold``), as VGGSounder's ``gather_results.py`` does.
    Errors name the file, the line and the clip."""
    source = str(path)
    try:
        fh = open(path, encoding="utf-8-sig", newline="")
    except FileNotFoundError:
        raise BenchmarkInputError(f"{source}: file not found") from None
    out: dict[str, list[str]] = {}
    not_judged: set[str] = set()
    with fh:
        reader = csv.reader(fh)
        try:
            header = [h.strip() for h in next(reader, [])]
            missing = [c for c in JUDGED_COLUMNS if c not in header]
            if missing:
                raise BenchmarkInputError(
                    f"{source}: missing column(s) {missing}; a judged CSV has the header video_id,suggestions,response"
                )
            i_vid, i_sug = header.index("video_id"), header.index("suggestions")
            for row in reader:
                lineno = reader.line_num
                if not any(f.strip() for f in row):
                    continue
                if len(row) != len(header):
                    raise BenchmarkInputError(
                        f"{source}: line {lineno}: {len(row)} fields, the header has "
                        f"{len(header)}; quote fields that contain commas"
                    )
                vid = _strip_mp4(row[i_vid].strip())
                where = f"{source}: line {lineno} (clip {vid!r})"
                if not vid:
                    raise BenchmarkInputError(f"{source}: line {lineno}: empty video_id")
                if vid in out or vid in not_judged:
                    raise BenchmarkInputError(f"{where}: clip appears twice")
                value = _parse_suggestions(row[i_sug], where)
                if value is None:
                    not_judged.add(vid)
                    continue
                out[vid] = _judged_labels(value, where, threshold)
        except csv.Error as exc:
            raise BenchmarkInputError(f"{source}: line {reader.line_num}: not a readable CSV ({exc})") from None
        except UnicodeDecodeError as exc:
            raise BenchmarkInputError(f"{source}: not UTF-8 text ({exc})") from None
    return out, not_judged


def load_judged_csvs(
    paths,
    class_names: list[str],
    *,
    name: str | None = None,
    modality: str | None = None,
    threshold: float | None = None,
    strict: bool = False,
    classes_from: str | None = None,
) -> ModelPredictions:
    """One model's label sets from its judged CSVs (one per input: ``paths`` a list, the input of each from
    its folder name, or ``{input: path}``). Like the reference's ``gather_results.py``, a clip counts only
    when it has been judged for every given input; the others are left out and counted in
    ``not_judged``. Unknown class names are skipped and counted (refused with ``strict``)."""
    if isinstance(paths, dict):
        by_input = {judged_input(p, inp): p for inp, p in paths.items()}
    else:
        paths = list(paths)
        by_input = {}
        for p in paths:
            inp = judged_input(p, modality)
            if inp in by_input:
                raise BenchmarkInputError(f"{p}: a second judged CSV for input {inp!r} (the first: {by_input[inp]})")
            by_input[inp] = p
    if not by_input:
        raise BenchmarkInputError("no judged CSV given")
    first = next(iter(by_input.values()))
    name = name or judged_model_name(first)
    read = {inp: read_judged_csv(p, threshold=threshold) for inp, p in by_input.items()}
    common = set.intersection(*(set(per) for per, _ in read.values()))
    order = [v for v in read[next(iter(read))][0] if v in common]
    seen = set().union(*(set(per) | unjudged for per, unjudged in read.values()))
    source = ", ".join(str(p) for p in by_input.values())
    if not order:
        raise BenchmarkInputError(f"{source}: no clip is judged in every input ({', '.join(by_input)})")
    lists = {v: {inp: read[inp][0][v] for inp in by_input} for v in order}
    model = ModelPredictions.from_label_lists(
        name, lists, class_names, source=source, strict=strict, classes_from=classes_from
    )
    model.not_judged = len(seen) - len(order)
    return model


def judged_dir_models(directory) -> dict[str, dict[str, Path]]:
    """``{model: {input: path}}`` of a folder laid out as VGGSounder publishes the judged CSVs
    (``<dir>/{a,v,av}/predictions-<model>.csv``); empty when it has no such sub-folders."""
    directory = Path(directory)
    found: dict[str, dict[str, Path]] = {}
    for inp in INPUTS:
        sub = directory / inp
        if not sub.is_dir():
            continue
        for p in sorted(sub.glob("*.csv")):
            if p.is_file() and is_judged_csv(p):
                found.setdefault(judged_model_name(p), {})[inp] = p
    return dict(sorted(found.items()))


@dataclass
class JudgedPredictions:
    """The judged CSVs of one model, not read yet: calling it loads them (:func:`load_judged_csvs`)."""

    paths: dict
    class_names: list[str]
    name: str | None = None
    strict: bool = False
    classes_from: str | None = None

    def __post_init__(self):
        self.name = self.name or judged_model_name(next(iter(self.paths.values())))

    def __call__(self) -> ModelPredictions:
        return load_judged_csvs(
            self.paths, self.class_names, name=self.name, strict=self.strict, classes_from=self.classes_from
        )
