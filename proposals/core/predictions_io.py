"""Reading and writing predictions (pure; no Django).

* Artifact (.npz, loaded without pickle): ``video_ids`` (unicode), ``scores_<m>`` float32
  [n, C] and/or ``labels_<m>`` bool [n, C] for m in a/v/av, ``class_names`` (unicode).
* VGGSounder pickles, CSV and JSONL label lists are read by :mod:`benchmark.io` (formats there);
  here they also accept the input spellings of :data:`INPUT_ALIASES` (audio, visual, ...), and
  JSONL keeps its label sets next to its logits.
"""

from __future__ import annotations

import io
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmark.errors import BenchmarkInputError
from benchmark.io import (
    is_judged_csv,
    judged_dir_models,
    judged_model_name,
    load_judged_csvs,
    load_predictions_csv,
    load_predictions_jsonl,
    load_predictions_pickle,
)
from benchmark.predictions import ModelPredictions

MODALITIES = ("a", "v", "av")
INPUT_ALIASES = {
    "a": "a",
    "v": "v",
    "av": "av",
    "audio": "a",
    "visual": "v",
    "video": "v",
    "audio-visual": "av",
    "audiovisual": "av",
    "a only": "a",
    "v only": "v",
}


class PredictionFileError(ValueError):
    """A prediction file is malformed; the message names file, line/clip and what is allowed."""


@dataclass
class PredictionArrays:
    video_ids: list[str]
    class_names: list[str]
    scores: dict[str, np.ndarray] = field(default_factory=dict)  # m -> float32 [n, C]
    labels: dict[str, np.ndarray] = field(default_factory=dict)  # m -> bool [n, C]
    unknown_names: dict[str, int] = field(default_factory=dict)  # class names not in the taxonomy, skipped
    not_judged: int = 0  # clips of judged CSVs left out (not judged in every input)

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


def write_npz_stream(fileobj, members) -> None:
    """An artifact written member by member, each member's rows as they come: what ``np.savez`` writes (a zip of
    stored, uncompressed ``.npy`` members, so ``NpzRows`` reads rows in place), without holding any member whole.
    ``members``: (name, shape, dtype, iterable of C-ordered arrays whose rows make up the member, in order). A
    member whose parts do not fill its shape exactly raises ValueError (the file is then not a valid artifact)."""
    with zipfile.ZipFile(fileobj, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, shape, dtype, parts in members:
            dtype = np.dtype(dtype)
            header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": tuple(shape)}
            expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            with zf.open(f"{name}.npy", "w", force_zip64=True) as out:
                np.lib.format.write_array_header_1_0(out, header)
                written = 0
                for part in parts:
                    part = np.ascontiguousarray(part, dtype=dtype)
                    if part.shape[1:] != tuple(shape[1:]):
                        raise ValueError(f"{name}: a part of shape {part.shape} in a member of shape {tuple(shape)}")
                    out.write(part.data if part.size else b"")
                    written += part.nbytes
                if written != expected:
                    raise ValueError(f"{name}: {written} bytes written for a member of shape {tuple(shape)}")


def from_npz(fileobj) -> PredictionArrays:
    with np.load(fileobj, allow_pickle=False) as z:
        vids = [str(v) for v in z["video_ids"]]
        names = [str(c) for c in z["class_names"]] if "class_names" in z.files else []
        scores = {k[7:]: z[k].astype(np.float32) for k in z.files if k.startswith("scores_")}
        labels = {k[7:]: z[k].astype(bool) for k in z.files if k.startswith("labels_")}
    return PredictionArrays(vids, names, scores, labels)


# ------------------------------------------------------------------------------------------------
# prediction files
# ------------------------------------------------------------------------------------------------


def from_model_predictions(pred: ModelPredictions) -> PredictionArrays:
    return PredictionArrays(
        [str(v) for v in pred.video_ids],
        list(pred.classes),
        {m: np.asarray(a, dtype=np.float32) for m, a in pred.scores.items()},
        {m: np.asarray(a, dtype=bool) for m, a in pred.labels.items()},
        dict(pred.unknown_names),
        int(pred.not_judged),
    )


_LABEL_LISTS = {"inputs": INPUT_ALIASES}
READERS = {  # suffix -> (benchmark loader, its options)
    ".pkl": (load_predictions_pickle, {}),
    ".pickle": (load_predictions_pickle, {}),
    ".csv": (load_predictions_csv, _LABEL_LISTS),
    ".jsonl": (load_predictions_jsonl, {**_LABEL_LISTS, "keep_label_sets": True}),
    ".ndjson": (load_predictions_jsonl, {**_LABEL_LISTS, "keep_label_sets": True}),
}


def read_predictions_file(
    path, class_names: list[str], *, strict: bool = False, classes_from: str | None = None
) -> PredictionArrays:
    """Dispatch on the file extension: .pkl/.pickle, .csv (a label list, or an LLM-judged CSV with a
    ``suggestions`` column), .jsonl/.ndjson, .npz. Unknown class names are skipped and counted in
    ``unknown_names``, or refused with ``strict`` (``classes_from``: where the allowed names come from)."""
    p = Path(path)
    if not p.exists():
        raise PredictionFileError(f"{path}: no such file")
    suffix = p.suffix.lower()
    if suffix in READERS:
        loader, options = READERS[suffix]
        try:
            return from_model_predictions(loader(p, class_names, **options, strict=strict, classes_from=classes_from))
        except BenchmarkInputError as exc:
            raise PredictionFileError(str(exc)) from None
    if suffix == ".npz":
        try:
            arr = from_npz(p)
        except Exception as exc:  # noqa: BLE001
            raise PredictionFileError(f"{path}: not a readable .npz artifact: {exc}") from None
        check_arrays(arr, class_names, where=str(p))
        return arr
    raise PredictionFileError(f"{path}: unknown file type {suffix!r}; allowed: .pkl, .pickle, .csv, .jsonl, .npz")


def read_judged_files(
    paths, class_names: list[str], *, strict: bool = False, classes_from: str | None = None
) -> PredictionArrays:
    """One model's LLM-judged CSVs (one per input, each in a folder a/, v/ or av/) as label sets."""
    try:
        return from_model_predictions(
            load_judged_csvs(list(paths), class_names, strict=strict, classes_from=classes_from)
        )
    except BenchmarkInputError as exc:
        raise PredictionFileError(str(exc)) from None


def group_prediction_files(specs) -> list[tuple[str | None, list[Path]]]:
    """``[(model name or None, [paths])]``: the files to import, one entry per model. LLM-judged CSVs of one model
    (``.../{a,v,av}/predictions-<model>.csv``) make one entry named after the model, a directory laid out that
    way one entry per model; any other file is an entry of its own (named by its stem later)."""
    out: list[tuple[str | None, list[Path]]] = []
    judged: dict[str, list[Path]] = {}
    for spec in specs:
        p = Path(spec)
        if p.is_dir():
            models = judged_dir_models(p)
            if not models:
                raise PredictionFileError(
                    f"{spec}: a directory is read only when laid out like VGGSounder's judged CSVs "
                    "(a/, v/, av/ holding predictions-<model>.csv); name the files otherwise"
                )
            for name, by_input in models.items():
                judged.setdefault(name, []).extend(by_input.values())
        elif p.suffix.lower() == ".csv" and p.is_file() and is_judged_csv(p):
            judged.setdefault(judged_model_name(p), []).append(p)
        else:
            out.append((None, [p]))
    return [(name, paths) for name, paths in judged.items()] + out


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


# ------------------------------------------------------------------------------------------------
# reading an artifact a block of rows at a time
# ------------------------------------------------------------------------------------------------


class NpzRows:
    """The arrays of a .npz artifact read a block of rows at a time from a seekable binary file, without loading
    a whole array: :func:`to_npz_bytes` writes uncompressed members, whose rows are read where they lie in the
    file. A compressed or Fortran-ordered member is loaded whole once (the file stays correct, only the memory
    bound is lost). The file must stay open while rows are read."""

    def __init__(self, fileobj, *, where: str = "artifact"):
        self.fh = fileobj
        self.where = where
        try:
            self.zf = zipfile.ZipFile(fileobj)
            self.members: dict[str, tuple[int, tuple[int, ...], np.dtype]] = {}
            self.loaded: dict[str, np.ndarray] = {}
            for info in self.zf.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                name = info.filename[:-4]
                member = self._locate(info) if info.compress_type == zipfile.ZIP_STORED else None
                if member is None:
                    with self.zf.open(info) as fh:
                        self.loaded[name] = np.lib.format.read_array(fh, allow_pickle=False)
                else:
                    self.members[name] = member
        except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
            raise PredictionFileError(f"{where}: not a readable .npz artifact: {exc}") from None

    def _locate(self, info: zipfile.ZipInfo):
        fh = self.fh
        fh.seek(info.header_offset)
        head = fh.read(30)
        if len(head) != 30 or head[:4] != b"PK\x03\x04":
            raise ValueError(f"bad local header for {info.filename}")
        name_len, extra_len = struct.unpack("<HH", head[26:30])
        fh.seek(info.header_offset + 30 + name_len + extra_len)
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        if fortran or dtype.hasobject:
            return None
        return fh.tell(), tuple(shape), dtype

    @property
    def names(self) -> list[str]:
        return list(self.members) + list(self.loaded)

    def shape(self, name: str) -> tuple[int, ...]:
        return self.loaded[name].shape if name in self.loaded else self.members[name][1]

    def array(self, name: str) -> np.ndarray:
        """A whole (small) member, e.g. video_ids and class_names."""
        return self.loaded[name] if name in self.loaded else self.rows(name, 0, self.shape(name)[0])

    def rows(self, name: str, start: int, stop: int) -> np.ndarray:
        if name in self.loaded:
            return self.loaded[name][start:stop]
        offset, shape, dtype = self.members[name]
        stop = max(start, min(stop, shape[0]))
        out = np.empty((stop - start, *shape[1:]), dtype=dtype)
        row_bytes = out[:1].nbytes if out.size else int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        self.fh.seek(offset + start * row_bytes)
        data = self.fh.read(out.nbytes)
        if len(data) != out.nbytes:
            raise PredictionFileError(f"{self.where}: {name} is truncated")
        out.reshape(-1).view(np.uint8)[:] = np.frombuffer(data, dtype=np.uint8)
        return out

    def take(self, name: str, index: np.ndarray) -> np.ndarray:
        """Rows at ``index`` (any order), read as runs of consecutive rows."""
        index = np.asarray(index, dtype=np.int64)
        if index.size and index[0] >= 0 and np.all(np.diff(index) == 1):
            return self.rows(name, int(index[0]), int(index[-1]) + 1)
        order = np.argsort(index, kind="stable")
        ordered = index[order]
        shape = self.shape(name)
        dtype = self.loaded[name].dtype if name in self.loaded else self.members[name][2]
        out = np.empty((index.size, *shape[1:]), dtype=dtype)
        breaks = np.flatnonzero(np.diff(ordered) != 1) + 1
        for a, b in zip(np.r_[0, breaks].tolist(), np.r_[breaks, ordered.size].tolist()):
            if b > a:
                out[order[a:b]] = self.rows(name, int(ordered[a]), int(ordered[a]) + (b - a))
        return out
