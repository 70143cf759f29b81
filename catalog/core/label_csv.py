"""Reading a label set in the VGGSounder CSV layout (video_id,label,modality,background_music,static_image,
voice_over): pure, validated, every problem reported with its line. Used by label-set import and the simulator."""

from __future__ import annotations

import csv
from collections import OrderedDict

from catalog.core.vocabulary import BOOL_TEXT, LABEL_CSV_COLUMNS, META_LABELS, MODALITIES
from catalog.errors import ImportFailed


def read_label_csv(fileobj, class_names, *, where: str = "file"):
    """Parse and validate a VGGSounder-layout CSV. Returns (clips, rows):
    clips: OrderedDict video_id -> (bm, vo, si) in order of first appearance; rows: [(video_id, label,
    modality)] in file order. Raises ImportFailed listing every problem with its line number."""
    known = set(class_names)
    reader = csv.reader(fileobj)
    try:
        header = next(reader)
    except StopIteration:
        raise ImportFailed(f"{where}: the file is empty; expected the header {','.join(LABEL_CSV_COLUMNS)}") from None
    if header and header[0].startswith("\ufeff"):
        header[0] = header[0][1:]
    if header != LABEL_CSV_COLUMNS:
        raise ImportFailed(f"{where}:1: header is {','.join(header)!r}; expected exactly {','.join(LABEL_CSV_COLUMNS)}")
    errors: list[str] = []
    clips: OrderedDict = OrderedDict()
    clip_line: dict[str, int] = {}
    seen: dict[tuple, int] = {}
    rows = []
    for lineno, rec in enumerate(reader, start=2):
        if len(rec) != len(LABEL_CSV_COLUMNS):
            errors.append(
                f"{where}:{lineno}: {len(rec)} fields; expected {len(LABEL_CSV_COLUMNS)} "
                f"({','.join(LABEL_CSV_COLUMNS)})"
            )
            continue
        vid, label, modality, bm, si, vo = rec
        bad = False
        if not vid:
            errors.append(f"{where}:{lineno}: field 'video_id' is empty")
            bad = True
        if label not in known:
            errors.append(f"{where}:{lineno}: field 'label' names unknown class {label!r}")
            bad = True
        if modality not in MODALITIES:
            errors.append(f"{where}:{lineno}: field 'modality' is {modality!r}; allowed: A, V, AV")
            bad = True
        flags = []
        for fname, val in (("background_music", bm), ("voice_over", vo), ("static_image", si)):
            if val not in BOOL_TEXT:
                errors.append(f"{where}:{lineno}: field '{fname}' is {val!r}; allowed: True, False")
                bad = True
            flags.append(BOOL_TEXT.get(val))
        if bad:
            continue
        meta = tuple(flags)
        if vid in clips and clips[vid] != meta:
            diff = [
                f"{n} {clips[vid][j]} (line {clip_line[vid]}) vs {meta[j]}"
                for j, n in enumerate(META_LABELS)
                if clips[vid][j] != meta[j]
            ]
            errors.append(
                f"{where}:{lineno}: meta flags of clip {vid!r} disagree with its earlier rows: " + "; ".join(diff)
            )
            continue
        if (vid, label) in seen:
            errors.append(
                f"{where}:{lineno}: duplicate row for clip {vid!r} and class {label!r} "
                f"(first on line {seen[(vid, label)]})"
            )
            continue
        seen[(vid, label)] = lineno
        if vid not in clips:
            clips[vid] = meta
            clip_line[vid] = lineno
        rows.append((vid, label, modality))
    if errors:
        shown = errors[:200]
        if len(errors) > 200:
            shown.append(f"... and {len(errors) - 200} more")
        raise ImportFailed(f"{where}: {len(errors)} problem(s); nothing was imported", details=shown)
    return clips, rows
