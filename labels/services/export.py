"""Exporting releases: the VGGSounder CSV, JSONL and Parquet, streamed or as a background file."""

import csv
import io
import json
import logging

from django.core.files.base import ContentFile
from django.utils import timezone

from catalog.core.vocabulary import LABEL_CSV_COLUMNS
from catalog.errors import ValidationError
from labels.models import (
    ORIGIN_SEPARATOR,
    ImmutableReleaseError,  # noqa: F401  (re-exported for callers)
    Release,
    ReleaseClip,
    ReleaseExport,
    ReleaseLabel,
)

log = logging.getLogger(__name__)

log = logging.getLogger(__name__)

CSV_COLUMNS = LABEL_CSV_COLUMNS
EXPORT_FORMATS = ("vggsounder-csv", "jsonl", "parquet")
EXPORT_CONTENT_TYPES = {
    "vggsounder-csv": "text/csv; charset=utf-8",
    "jsonl": "application/x-ndjson",
    "parquet": "application/vnd.apache.parquet",
}
EXPORT_EXTENSIONS = {"vggsounder-csv": "csv", "jsonl": "jsonl", "parquet": "parquet"}


def release_rows(release: Release, *, include_background_music: bool = True):
    """(video_id, label, modality, background_music, static_image, voice_over, origin, origin_source) in the
    release's row order, streamed from the database."""
    qs = ReleaseLabel.objects.filter(release=release)
    if not include_background_music:
        qs = qs.filter(release_clip__background_music=False)
    return (
        qs.order_by("order")
        .values_list(
            "release_clip__video_id",
            "name",
            "modality",
            "release_clip__background_music",
            "release_clip__static_image",
            "release_clip__voice_over",
            "origin",
            "origin_source",
        )
        .iterator(chunk_size=10000)
    )


def release_row_count(release: Release, *, include_background_music: bool = True) -> int:
    qs = ReleaseLabel.objects.filter(release=release)
    if not include_background_music:
        qs = qs.filter(release_clip__background_music=False)
    return qs.count()


def release_to_dataframe(release: Release):
    """pandas DataFrame video_id,label,modality,background_music,static_image,voice_over in the release's row
    order (all clips, including those with background music); booleans as bool."""
    import pandas as pd  # noqa: PLC0415 - pandas is heavy; only metric reports read releases as frames

    rows = [r[:6] for r in release_rows(release, include_background_music=True)]
    df = pd.DataFrame(rows, columns=CSV_COLUMNS)
    for col in ("background_music", "static_image", "voice_over"):
        df[col] = df[col].astype(bool)
    return df


def _check_format(fmt: str):
    if fmt not in EXPORT_FORMATS:
        raise ValidationError(f"unknown export format {fmt!r}; allowed: {', '.join(EXPORT_FORMATS)}", field="format")


def export_chunks(
    release: Release,
    fmt: str = "vggsounder-csv",
    *,
    include_background_music: bool = False,
    progress=None,
    chunk_rows: int = 5000,
):
    """Yield the export as bytes chunks (CSV / JSONL streamed; Parquet built in memory, then yielded).

    progress: optional callable(rows_done) called after each chunk.
    """
    _check_format(fmt)
    rows = release_rows(release, include_background_music=include_background_music)
    if fmt == "parquet":
        yield _parquet_bytes(release, include_background_music, progress)
        return
    if fmt == "vggsounder-csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        n = 0
        for r in rows:
            writer.writerow(
                (
                    r[0],
                    r[1],
                    r[2],
                    "True" if r[3] else "False",
                    "True" if r[4] else "False",
                    "True" if r[5] else "False",
                )
            )
            n += 1
            if n % chunk_rows == 0:
                yield buf.getvalue().encode("utf-8")
                buf.seek(0)
                buf.truncate()
                if progress:
                    progress(n)
        yield buf.getvalue().encode("utf-8")
        if progress:
            progress(n)
        return
    # jsonl: one line per clip (clips without labels included), in row order
    n = 0
    out = []
    clip_filter = {} if include_background_music else {"background_music": False}
    clips = (
        ReleaseClip.objects.filter(release=release, **clip_filter)
        .order_by("order")
        .values_list("id", "video_id", "background_music", "voice_over", "static_image")
    )
    labels_by_clip: dict[int, list] = {}
    for rc_id, name, mod, origin, src in (
        ReleaseLabel.objects.filter(release=release)
        .order_by("order")
        .values_list("release_clip_id", "name", "modality", "origin", "origin_source")
        .iterator(chunk_size=10000)
    ):
        item = {"label": name, "modality": mod, "origin": origin}
        if src:
            item["origin_source"] = src.split(ORIGIN_SEPARATOR) if origin == ReleaseLabel.AUTO else src
        labels_by_clip.setdefault(rc_id, []).append(item)
    for rc_id, vid, bm, vo, si in clips.iterator(chunk_size=10000):
        labels = labels_by_clip.get(rc_id, [])
        out.append(
            json.dumps(
                {"video_id": vid, "labels": labels, "background_music": bm, "voice_over": vo, "static_image": si},
                ensure_ascii=False,
            )
        )
        n += len(labels)
        if len(out) >= chunk_rows:
            yield ("\n".join(out) + "\n").encode("utf-8")
            out = []
            if progress:
                progress(n)
    if out:
        yield ("\n".join(out) + "\n").encode("utf-8")
    if progress:
        progress(n)


def _parquet_bytes(release, include_background_music, progress=None) -> bytes:
    import pyarrow as pa  # noqa: PLC0415 - pyarrow is heavy and only Parquet exports need it
    import pyarrow.parquet as pq  # noqa: PLC0415 - as above

    cols = [[] for _ in range(8)]
    for r in release_rows(release, include_background_music=include_background_music):
        for i, v in enumerate(r):
            cols[i].append(v)
    table = pa.table(
        {
            "video_id": pa.array(cols[0], pa.string()),
            "label": pa.array(cols[1], pa.string()),
            "modality": pa.array(cols[2], pa.string()),
            "background_music": pa.array(cols[3], pa.bool_()),
            "static_image": pa.array(cols[4], pa.bool_()),
            "voice_over": pa.array(cols[5], pa.bool_()),
            "origin": pa.array(cols[6], pa.string()),
            "origin_source": pa.array(cols[7], pa.string()),
        }
    )
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    if progress:
        progress(len(cols[0]))
    return sink.getvalue()


def release_export_to_file(
    release: Release, fmt: str, path, *, include_background_music: bool = False, progress=None
) -> int:
    """Write an export to `path`; returns bytes written."""
    _check_format(fmt)
    total = 0
    with open(path, "wb") as fh:
        for chunk in export_chunks(release, fmt, include_background_music=include_background_music, progress=progress):
            fh.write(chunk)
            total += len(chunk)
    return total


def export_filename(release: Release, fmt: str, include_background_music: bool) -> str:
    suffix = "+background-music" if include_background_music else ""
    return f"{release.dataset.name}-{release.name}{suffix}.{EXPORT_EXTENSIONS[fmt]}"


def release_export_request(
    release: Release, fmt: str, *, include_background_music: bool = False, user=None
) -> ReleaseExport:
    """Record a background export (labels.tasks.release_export_start queues it). Returns the job to poll."""
    _check_format(fmt)
    return ReleaseExport.objects.create(
        release=release,
        format=fmt,
        include_background_music=include_background_music,
        rows_total=release_row_count(release, include_background_music=include_background_music),
        created_by=user,
    )


def release_export_fail(job: ReleaseExport, message: str) -> None:
    """Fail an export that has not started (e.g. its task could not be queued), with the reason."""
    ReleaseExport.objects.filter(pk=job.pk, status=ReleaseExport.PENDING).update(
        status=ReleaseExport.FAILED, error=message[:2000]
    )


def release_export_run(export_id: int) -> ReleaseExport:
    """Run a queued export (idempotent: a finished job is returned as is)."""
    job = ReleaseExport.objects.select_related("release", "release__dataset").get(pk=export_id)
    if job.status == ReleaseExport.DONE:
        return job
    ReleaseExport.objects.filter(pk=job.pk).update(status=ReleaseExport.RUNNING, rows_done=0, error="")

    def progress(n):
        ReleaseExport.objects.filter(pk=job.pk).update(rows_done=n)

    try:
        buf = io.BytesIO()
        for chunk in export_chunks(
            job.release, job.format, include_background_music=job.include_background_music, progress=progress
        ):
            buf.write(chunk)
        job.refresh_from_db()
        job.file.save(
            export_filename(job.release, job.format, job.include_background_music),
            ContentFile(buf.getvalue()),
            save=False,
        )
        job.status = ReleaseExport.DONE
        job.rows_done = job.rows_total
        job.finished_at = timezone.now()
        job.save(update_fields=["file", "status", "rows_done", "finished_at"])
    except Exception as exc:  # recorded for the person polling, then re-raised for the task's retry policy
        ReleaseExport.objects.filter(pk=job.pk).update(
            status=ReleaseExport.FAILED, error=str(exc)[:2000], finished_at=timezone.now()
        )
        raise
    return job
