"""Importing a label set in the VGGSounder CSV layout as an immutable release (all or nothing)."""

import logging
from pathlib import Path

import numpy as np

from catalog.core.label_csv import read_label_csv
from catalog.errors import ImportFailed
from catalog.models import Clip, Dataset, Operation
from catalog.progress import NULL_BAR
from catalog.selectors.taxonomy import class_names
from catalog.services.operations import OperationBar, operation_finish_staged
from catalog.services.uploads import staged_folder, staged_name, uploads_stage
from labels.models import (
    ImmutableReleaseError,  # noqa: F401  (re-exported for callers)
    Release,
    ReleaseLabel,
)
from labels.services.create import _check_name, _store, release_stats

log = logging.getLogger(__name__)


log = logging.getLogger(__name__)


def release_import(
    dataset: Dataset, name: str, source, *, user=None, source_name: str | None = None, bar=NULL_BAR
) -> Release:
    """Import a VGGSounder-layout CSV (path or text file object) as an immutable release that keeps the file's
    row order. Clip ids are linked to the dataset's clips where they exist. All or nothing. bar: a progress bar
    (catalog.progress) advanced per step (reading, linking, storing)."""
    name = _check_name(dataset, name)
    bar.reset(total=3)
    bar.set_description("reading the CSV")
    if isinstance(source, (str, Path)):
        where = str(source)
        try:
            fh = open(source, newline="", encoding="utf-8")
        except OSError as exc:
            raise ImportFailed(f"{where}: cannot be read ({exc.strerror})") from None
        with fh:
            clips, rows = read_label_csv(fh, class_names(), where=where)
    else:
        where = source_name or getattr(source, "name", None) or "upload"
        clips, rows = read_label_csv(source, class_names(), where=where)
    if not rows:
        raise ImportFailed(f"{where}: no label rows; nothing was imported")
    bar.update(1)
    bar.set_description(f"linking {len(clips)} clips")
    clip_pk = dict(Clip.objects.filter(dataset=dataset).values_list("video_id", "id"))
    position = {vid: i for i, vid in enumerate(clips)}
    label_rows = [(position[vid], label, mod, ReleaseLabel.HUMAN, "") for vid, label, mod in rows]
    meta = np.array(list(clips.values()), dtype=bool).reshape(-1, 3)
    stats = release_stats(meta, label_rows, len(clips))
    linked = sum(1 for vid in clips if vid in clip_pk)
    source_counts = {"rows": len(rows), "clips": len(clips), "clips_linked_to_dataset": linked}
    bar.update(1)
    bar.set_description(f"storing {len(rows)} labels")
    release = _store(
        dataset,
        name,
        Release.IMPORT,
        {},
        True,
        Path(where).name,
        source_counts,
        stats,
        user,
        [(vid, clip_pk.get(vid), m) for vid, m in clips.items()],
        label_rows,
    )
    bar.update(1)
    return release


def release_import_request(dataset: Dataset, name: str, upload, *, user=None) -> tuple[Operation, dict]:
    """`import_labels` for an uploaded VGGSounder-layout CSV: the name and a file checked now, the CSV saved and
    read in the background (``release_import_staged``, queued by labels.tasks.release_import_start). Returns the
    Operation and the task's keyword arguments."""
    name = _check_name(dataset, name)
    if upload is None:
        raise ImportFailed("choose a label CSV to upload (field 'file')")
    staged = uploads_stage([upload])
    file = staged_name(upload)
    op = Operation.objects.create(
        kind=Operation.IMPORT,
        dataset=dataset,
        started_by=user,
        message=f"queued: import {file} as label set {dataset.name}/{name}",
        summary={"upload": file},
    )
    return op, {"dataset_id": dataset.pk, "name": name, "staged": staged, "file": file}


def release_import_staged(operation_id: int, *, dataset_id: int, name: str, staged: str, file: str) -> Operation:
    """Import the staged label CSV as a release, its steps (reading, linking, storing) on the Operation; the upload
    is removed when it ends."""

    def work(op):
        dataset = Dataset.objects.get(pk=dataset_id)
        with staged_folder(staged) as folder:
            release = release_import(
                dataset, name, folder / file, user=op.started_by, source_name=file, bar=OperationBar(op.pk)
            )
        c = release.source_counts
        return (
            f"imported {c['rows']} labels of {c['clips']} clips as {dataset.name}/{release.name}",
            {"release": release.pk, "url": f"/releases/{release.pk}/"},
        )

    return operation_finish_staged(operation_id, staged, work)
