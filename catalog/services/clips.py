"""Creating datasets and importing clips. Every import validates everything first, with no transaction open, then
writes in short bulk transactions (catalog.services.bulk); a refused or failed import changes nothing."""

from __future__ import annotations

import csv
import logging
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from catalog.core.media import MEDIA_EXTENSIONS, MediaError, probe
from catalog.errors import ImportFailed, ValidationError
from catalog.models import Clip, Dataset, Operation
from catalog.progress import NULL_BAR
from catalog.selectors.taxonomy import class_pks
from catalog.services.bulk import analyze, bulk_insert, bulk_insert_chunks, chunk_rows, chunks
from catalog.services.operations import OperationBar, operation_finish, operation_finish_staged
from catalog.services.uploads import staged_folder, staged_name, uploads_stage

# The clip-id rule, on every import path (CSV, folder, upload, MTurk results): letters, digits, '_', '-', '.'; so
# no id can start a spreadsheet formula (=, +, @, |, parentheses and spaces are refused). A leading '-' stays
# allowed: YouTube ids (VGGSound's "-0BIyqJj9ZU_000030") start with it, and without the other signs it is text.
VIDEO_ID_RE = re.compile(r"^[A-Za-z0-9_\-.]{1,200}$")
VIDEO_ID_RULE = "1-200 of A-Z a-z 0-9 _ - . (no spaces, no = + @ | or other signs)"
REMOTE_SCHEMES = ("http://", "https://", "s3://")
LABEL_SEPARATOR = "|"

log = logging.getLogger(__name__)


@dataclass
class ClipSpec:
    video_id: str
    source: str  # remote URL or local path
    original_labels: list[str] = field(default_factory=list)
    where: str = ""  # "file:line" for messages


def dataset_get_or_create(name: str, **fields) -> tuple[Dataset, bool]:
    if not re.fullmatch(r"[-a-zA-Z0-9_]+", name or ""):
        raise ValidationError(
            f"dataset name {name!r} is not allowed; use letters, digits, '-' and '_'", field="dataset"
        )
    return Dataset.objects.get_or_create(name=name, defaults=fields)


def read_clip_csv(path: Path) -> list[ClipSpec]:
    """Clip specs of a CSV file; a relative file path in `url` is relative to the CSV's folder."""
    with path.open(newline="", encoding="utf-8-sig") as fh:
        return _clip_rows(
            fh, str(path), lambda url: url if Path(url).is_absolute() else str((path.parent / url).resolve())
        )


def _clip_rows(fh, where: str, local_url) -> list[ClipSpec]:
    """Rows video_id,url[,original_label] -> specs; ``local_url(url)`` maps a url that is not an http(s)/s3 URL
    to a file path, or returns None when that is not allowed."""
    errors: list[str] = []
    specs: list[ClipSpec] = []
    reader = csv.DictReader(fh)
    header = reader.fieldnames or []
    missing = [c for c in ("video_id", "url") if c not in header]
    if missing:
        raise ImportFailed(f"{where}: missing column(s) {', '.join(missing)}; expected video_id,url[,original_label]")
    for lineno, row in enumerate(reader, start=2):
        vid = (row.get("video_id") or "").strip()
        url = (row.get("url") or "").strip()
        label = (row.get("original_label") or "").strip()
        if not VIDEO_ID_RE.match(vid):
            errors.append(f"{where}:{lineno}: field 'video_id' is {vid!r}; allowed: {VIDEO_ID_RULE}")
        if not url:
            errors.append(f"{where}:{lineno}: field 'url' is empty; expected an http(s)/s3 URL or a file path")
        elif not url.startswith(REMOTE_SCHEMES):
            resolved = local_url(url)
            if resolved is None:
                errors.append(
                    f"{where}:{lineno}: field 'url' is {url!r}; allowed: an http(s):// or s3:// URL, or the name "
                    "of a file uploaded with this CSV (no server paths)"
                )
            url = resolved or url
        labels = [part.strip() for part in label.split(LABEL_SEPARATOR) if part.strip()]
        specs.append(ClipSpec(vid, url, labels, f"{where}:{lineno}"))
    if errors:
        raise ImportFailed(f"{where}: {len(errors)} problem(s); nothing was imported", details=errors)
    return specs


def clip_upload_names_check(names) -> None:
    """Refuse media files not named <video id>.<media extension> (all of them named in the error)."""
    errors = [
        f"{name}: not allowed; media files are named <video id>{'|'.join(sorted(MEDIA_EXTENSIONS))} "
        "with a video id of A-Z a-z 0-9 _ - ."
        for name in (Path(n).name for n in names)
        if Path(name).suffix.lower() not in MEDIA_EXTENSIONS or not VIDEO_ID_RE.match(Path(name).stem)
    ]
    if errors:
        raise ImportFailed(f"{len(errors)} file(s) refused; nothing was imported", details=errors)


def _uploaded_specs(media: dict[str, Path], csv_path: Path | None, *, bar=NULL_BAR) -> list[ClipSpec]:
    specs: list[ClipSpec] = []
    if csv_path is not None:
        bar.set_description(f"reading {csv_path.name}")
        with open(csv_path, encoding="utf-8-sig", newline="") as text:
            specs = _clip_rows(text, csv_path.name, lambda url: str(media[url]) if url in media else None)
    named = {Path(s.source).name for s in specs if s.source in {str(p) for p in media.values()}}
    return specs + [ClipSpec(Path(n).stem, str(p), [], n) for n, p in media.items() if n not in named]


def clips_import_files(
    dataset_name: str, media: dict[str, Path], csv_path: Path | None, *, root: str, bar=NULL_BAR
) -> tuple[Dataset, list[Clip]]:
    """Import uploaded files saved under ``root``: ``media`` {file name: path} and/or a CSV of clips (see
    ``clips_import_upload``). All or nothing; the dataset is created if absent."""
    specs = _uploaded_specs(media, csv_path, bar=bar)
    with transaction.atomic():
        dataset, _ = dataset_get_or_create(dataset_name)
        clips = clips_import(dataset, specs, copy_media=True, local_roots=[root], bar=bar)  # our own copies
    return dataset, clips


def clips_import_upload(dataset_name: str, files, csv_file=None) -> tuple[Dataset, list[Clip]]:
    """Import clips uploaded through a page: media files (video id = file name without extension) and/or a CSV
    video_id,url[,original_label] whose url is an http(s)/s3 URL or the name of one of the uploaded files (to give
    it an id and labels). The media is copied into the media storage (S3 when configured). No server path can be
    named. All or nothing; the dataset is created if absent (and not left behind when the import is refused)."""
    files = list(files or [])
    if not files and csv_file is None:
        raise ValidationError("choose media files and/or a CSV of clips to import", field="media")
    clip_upload_names_check(f.name for f in files)
    with tempfile.TemporaryDirectory(prefix="avcrowd-upload-") as tmp:
        media: dict[str, Path] = {}
        for f in [*files, *([csv_file] if csv_file is not None else [])]:
            target = Path(tmp) / Path(f.name).name
            with open(target, "wb") as out:
                for chunk in f.chunks():
                    out.write(chunk)
            if f is not csv_file:
                media[target.name] = target
        csv_path = Path(tmp) / Path(csv_file.name).name if csv_file is not None else None
        return clips_import_files(dataset_name, media, csv_path, root=tmp)


def scan_media_dir(path: Path) -> list[ClipSpec]:
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in MEDIA_EXTENSIONS)
    if not files:
        raise ImportFailed(f"{path}: no media files found (looked for {', '.join(sorted(MEDIA_EXTENSIONS))})")
    return [ClipSpec(p.stem, str(p), [], str(p)) for p in files]


def import_roots(roots=None) -> list[Path]:
    """The directories local media may come from (settings.MEDIA_IMPORT_ROOTS), resolved."""
    roots = settings.MEDIA_IMPORT_ROOTS if roots is None else roots
    return [Path(r).resolve() for r in roots if str(r).strip()]


def local_path_check(source: str, roots: list[Path]) -> str | None:
    """Why a local media path may not be used (None when it may): it must resolve, symlinks followed, to a file
    under one of `roots`; `..` and links pointing out of them are refused."""
    if not roots:
        return (
            f"local path {source!r} refused: no local media directories are configured (MEDIA_IMPORT_ROOTS is "
            "empty); use an http(s)/s3 URL, upload the files, or name the directory in MEDIA_IMPORT_ROOTS"
        )
    resolved = Path(source).resolve()
    if not any(resolved == root or resolved.is_relative_to(root) for root in roots):
        return (
            f"local path {source!r} (resolves to {str(resolved)!r}) is outside the allowed media directories; "
            f"allowed: {', '.join(str(r) for r in roots)} (MEDIA_IMPORT_ROOTS)"
        )
    return None


def clips_validate(
    dataset: Dataset | None,
    specs: list[ClipSpec],
    *,
    probe_media: bool = True,
    skip_existing: bool = False,
    local_roots: list | None = None,
    bar=NULL_BAR,
) -> tuple[list[ClipSpec], dict]:
    """Check every spec (ids, duplicates in the file and in the dataset, labels, media) without writing anything.
    Returns (the specs to create, {video id: probed media facts}); ImportFailed lists every problem.
    Local media paths must lie under `local_roots` (default settings.MEDIA_IMPORT_ROOTS); nothing else is read.
    bar: a progress bar (catalog.progress), advanced per clip checked."""
    errors: list[str] = [
        f"{spec.where}: clip id {spec.video_id[:80]!r} breaks the clip-id rule; allowed: {VIDEO_ID_RULE}"
        for spec in specs
        if not VIDEO_ID_RE.match(spec.video_id)
    ]
    roots = import_roots(local_roots)
    errors += [
        f"{spec.where}: {why}"
        for spec in specs
        if not spec.source.startswith(REMOTE_SCHEMES) and (why := local_path_check(spec.source, roots))
    ]
    if errors:
        raise ImportFailed(f"{len(errors)} problem(s); nothing was imported", details=errors)
    errors = []
    seen: dict[str, str] = {}
    duplicates: list[str] = []
    for spec in specs:
        if spec.video_id in seen:
            duplicates.append(f"{spec.video_id} ({seen[spec.video_id]} and {spec.where})")
        seen.setdefault(spec.video_id, spec.where)
    existing: set[str] = set()
    if dataset is not None and dataset.pk is not None:
        # the dataset's ids streamed and intersected here: `video_id IN (300k ids)` exceeds SQLite's variable limit
        ids = Clip.objects.filter(dataset=dataset).values_list("video_id", flat=True).order_by()
        existing = {vid for vid in ids.iterator(chunk_size=20000) if vid in seen}
    if skip_existing:
        specs = [spec for spec in specs if spec.video_id not in existing]
    else:
        duplicates += [
            f"{vid} (already in dataset {dataset.name}; --skip-existing imports the others)" for vid in sorted(existing)
        ]
    if duplicates:
        raise ImportFailed(f"duplicate clip ids: {len(duplicates)}; nothing was imported", details=duplicates)

    classes = class_pks()
    infos = {}
    bar.set_description("checking clips")
    bar.reset(total=len(specs))
    for spec in specs:
        bar.update(1)
        for label in spec.original_labels:
            if label not in classes:
                errors.append(f"{spec.where}: field 'original_label' names unknown class {label!r}")
        if not spec.source.startswith(REMOTE_SCHEMES):
            local = Path(spec.source)
            if not local.is_file():
                errors.append(f"{spec.where}: media file {spec.source} does not exist")
            elif probe_media:
                try:
                    infos[spec.video_id] = probe(local)
                except MediaError as exc:
                    errors.append(f"{spec.where}: {exc}")
    if errors:
        raise ImportFailed(f"{len(errors)} problem(s); nothing was imported", details=errors)
    return specs, infos


def _copy_media(dataset: Dataset, specs: list[ClipSpec], copy_media: bool, saved: list[str]) -> dict[str, str]:
    """{video id: stored media name} for local files copied into the media storage (names appended to `saved`
    as they are written, so that a failed import can remove them)."""
    if not copy_media:
        return {}
    field = Clip._meta.get_field("media")
    names = {}
    for spec in specs:
        if spec.source.startswith(REMOTE_SCHEMES):
            continue
        wanted = field.generate_filename(None, f"{dataset.name}/{spec.video_id}{Path(spec.source).suffix.lower()}")
        with open(spec.source, "rb") as fh:
            name = field.storage.save(wanted, File(fh), max_length=field.max_length)
        saved.append(name)
        names[spec.video_id] = name
    return names


CLIP_COLUMNS = [
    "dataset_id",
    "video_id",
    "media",
    "media_url",
    "duration",
    "has_audio",
    "has_video",
    "is_gold",
    "created_at",
]


def _clip_rows_for_db(dataset, specs, infos, media_names, gold_ids):
    now = timezone.now()
    for spec in specs:
        info = infos.get(spec.video_id)
        media = media_names.get(spec.video_id, "")
        yield (
            dataset.pk,
            spec.video_id,
            media,
            "" if media else spec.source,
            info.duration if info else None,
            info.has_audio if info else True,
            info.has_video if info else True,
            spec.video_id in gold_ids,
            now,
        )


def clips_write(
    dataset: Dataset,
    specs: list[ClipSpec],
    *,
    infos: dict | None = None,
    copy_media: bool = True,
    gold_ids: set[str] | None = None,
    bar=NULL_BAR,
) -> int:
    """Write validated specs: media copied first (no transaction open), then the clip rows and their original
    labels in short bulk transactions (COPY on PostgreSQL, chunked executemany on SQLite), so that autosaves
    and other writers are never locked out for more than one chunk. When a chunk fails, the chunks already
    committed and the media already copied are removed again: a refused import changes nothing.
    Inside an outer transaction (small imports from tests and the demo) everything is one transaction."""
    infos = infos or {}
    gold_ids = gold_ids or set()
    if not specs:
        return 0
    bar.set_description("importing clips")
    bar.reset(total=len(specs))
    classes = class_pks()
    labels_of = {spec.video_id: [classes[name] for name in spec.original_labels] for spec in specs}
    saved_media: list[str] = []
    written: list[str] = []
    through = Clip.original_labels.through

    def labels_for(rows):
        vids = [r[1] for r in rows if labels_of[r[1]]]
        pks = {}
        if connection.vendor == "postgresql":  # one array parameter, not 20,000 (Django's IN list costs ~1 s here)
            with connection.cursor() as cursor:
                cursor.execute(
                    f"SELECT video_id, id FROM {connection.ops.quote_name(Clip._meta.db_table)} "
                    "WHERE dataset_id = %s AND video_id = ANY(%s)",
                    [dataset.pk, vids],
                )
                pks.update(cursor.fetchall())
        else:
            for part in chunks(vids, 900):  # under SQLite's variable limit
                pks.update(Clip.objects.filter(dataset=dataset, video_id__in=part).values_list("video_id", "id"))
        bulk_insert(
            through,
            ["clip_id", "taxonomyclass_id"],
            ((pks[vid], cls) for vid in vids for cls in dict.fromkeys(labels_of[vid])),
        )
        written.extend(r[1] for r in rows)
        bar.update(len(rows))

    try:
        media_names = _copy_media(dataset, specs, copy_media, saved_media)
        rows = _clip_rows_for_db(dataset, specs, infos, media_names, gold_ids)
        if connection.in_atomic_block:
            for part in chunks(rows, chunk_rows()):
                bulk_insert(Clip, CLIP_COLUMNS, part)
                labels_for(part)
            n = len(specs)
        else:
            n = bulk_insert_chunks(Clip, CLIP_COLUMNS, rows, after_chunk=labels_for)
    except Exception as exc:
        if not connection.in_atomic_block:  # an outer transaction rolls back by itself
            for part in chunks(written, 900):
                Clip.objects.filter(dataset=dataset, video_id__in=part).delete()
        storage = Clip._meta.get_field("media").storage
        for name in saved_media:
            storage.delete(name)
        log.warning("clip import into %s failed after writing %d clips (removed again): %s", dataset, len(written), exc)
        if isinstance(exc, DatabaseError):
            raise ImportFailed(
                f"the clips could not be written ({exc}); nothing was imported (another import into "
                f"{dataset.name} at the same time?)"
            ) from exc
        raise
    analyze(Clip, through)
    return n


def clips_import(
    dataset: Dataset,
    specs: list[ClipSpec],
    *,
    copy_media: bool = True,
    probe_media: bool = True,
    gold_ids: set[str] | None = None,
    skip_existing: bool = False,
    local_roots: list | None = None,
    bar=NULL_BAR,
) -> list[Clip]:
    """Validate every spec (ids, duplicates, labels, media), then write them all (clips_write). Returns the
    clips created, in spec order (for small imports; the import command uses clips_import_into, which returns
    counts). skip_existing: clips already in the dataset are left as they are (not refused)."""
    specs, infos = clips_validate(
        dataset, specs, probe_media=probe_media, skip_existing=skip_existing, local_roots=local_roots, bar=bar
    )
    clips_write(dataset, specs, infos=infos, copy_media=copy_media, gold_ids=gold_ids, bar=bar)
    wanted = {spec.video_id for spec in specs}
    by_id = {c.video_id: c for c in Clip.objects.filter(dataset=dataset).iterator() if c.video_id in wanted}
    return [by_id[spec.video_id] for spec in specs]


def clips_import_into(
    dataset_name: str,
    specs: list[ClipSpec],
    *,
    copy_media: bool = True,
    probe_media: bool = True,
    skip_existing: bool = False,
    local_roots: list | None = None,
    bar=NULL_BAR,
) -> tuple[Dataset, bool, int]:
    """The import command's path: validate everything with no transaction open, create the dataset if absent,
    write in short bulk transactions. Returns (dataset, whether it was created, clips written). When anything
    is refused or fails, nothing is left behind (not even a new, empty dataset)."""
    if not re.fullmatch(r"[-a-zA-Z0-9_]+", dataset_name or ""):
        raise ValidationError(
            f"dataset name {dataset_name!r} is not allowed; use letters, digits, '-' and '_'", field="dataset"
        )
    dataset = Dataset.objects.filter(name=dataset_name).first()
    specs, infos = clips_validate(
        dataset or Dataset(name=dataset_name),
        specs,
        probe_media=probe_media,
        skip_existing=skip_existing,
        local_roots=local_roots,
        bar=bar,
    )
    created = False
    if dataset is None:
        dataset, created = dataset_get_or_create(dataset_name)
    try:
        n = clips_write(dataset, specs, infos=infos, copy_media=copy_media, bar=bar)
    except Exception:
        if created and not Clip.objects.filter(dataset=dataset).exists():
            dataset.delete()
        raise
    return dataset, created, n


def clip_probe(clip_id: int) -> dict:
    """Re-read a local clip's media facts (duration, audio/video streams). Remote media is left as it is."""
    clip = Clip.objects.get(pk=clip_id)
    if clip.media:
        try:
            path = Path(clip.media.path)
        except NotImplementedError:
            return {"clip": clip.video_id, "probed": False, "reason": "remote storage"}
    elif clip.media_url and not clip.media_url.startswith(REMOTE_SCHEMES):
        path = Path(clip.media_url)
    else:
        return {"clip": clip.video_id, "probed": False, "reason": "remote media"}
    info = probe(path, require_audio=False, require_video=False)
    Clip.objects.filter(pk=clip.pk).update(duration=info.duration, has_audio=info.has_audio, has_video=info.has_video)
    return {
        "clip": clip.video_id,
        "probed": True,
        "duration": info.duration,
        "has_audio": info.has_audio,
        "has_video": info.has_video,
    }


def clips_import_upload_request(dataset_name: str, files, csv_file=None, *, user=None) -> tuple[Operation, dict]:
    """The page's and the API's clip import, checked cheaply (a file chosen, media file names) and its files saved
    for the background: returns the Operation (running, nothing done yet) and the keyword arguments of
    ``clips_import_staged`` (catalog.tasks.clips_import_start queues it)."""
    if not re.fullmatch(r"[-a-zA-Z0-9_]+", dataset_name or ""):
        raise ValidationError(
            f"dataset name {dataset_name!r} is not allowed; use letters, digits, '-' and '_'", field="dataset"
        )
    files = list(files or [])
    if not files and csv_file is None:
        raise ValidationError("choose media files and/or a CSV of clips to import", field="media")
    clip_upload_names_check(f.name for f in files)
    if csv_file is not None and Path(csv_file.name).name in {Path(f.name).name for f in files}:
        raise ValidationError(f"the CSV and a media file are both named {Path(csv_file.name).name}", field="csv")
    staged = uploads_stage([*files, *([csv_file] if csv_file is not None else [])])
    names = [staged_name(f) for f in files]
    csv_name = staged_name(csv_file) if csv_file is not None else None
    what = ", ".join(filter(None, [f"{len(names)} media file(s)" if names else "", csv_name]))
    op = Operation.objects.create(
        kind=Operation.IMPORT,
        dataset=Dataset.objects.filter(name=dataset_name).first(),
        started_by=user,
        message=f"queued: import {what} into dataset {dataset_name}",
        summary={"upload": csv_name or (names[0] if len(names) == 1 else f"{len(names)} media files")},
    )
    return op, {"dataset_name": dataset_name, "staged": staged, "media": names, "csv": csv_name}


def clips_import_staged(
    operation_id: int, *, dataset_name: str, staged: str, media: list[str], csv: str | None = None
) -> Operation:
    """Import the staged uploads of ``clips_import_upload_request`` for its Operation, progress on it (checking,
    then writing the clips); the uploads are removed when it ends."""

    def work(op):
        bar = OperationBar(op.pk)
        with staged_folder(staged) as folder:
            specs = _uploaded_specs({n: folder / n for n in media}, folder / csv if csv else None, bar=bar)
            # checked with no transaction open, written in short ones (the progress is seen meanwhile); a refusal
            # or a failure leaves nothing behind, not even a new dataset
            ds, _, n = clips_import_into(dataset_name, specs, copy_media=True, local_roots=[folder], bar=bar)
        if op.dataset_id is None:
            Operation.objects.filter(pk=op.pk).update(dataset=ds)
        return f"imported {n} clip(s) into dataset {ds.name}", {"clips": n, "url": f"/ops/{ds.name}/"}

    return operation_finish_staged(operation_id, staged, work)


def import_folder_resolve(folder: str) -> Path:
    """`folder` (absolute, or relative to the first allowed root) as a real directory inside an allowed root;
    refused otherwise (also through a symbolic link or `..`), naming the allowed roots."""
    roots = import_roots()
    if not roots:
        raise ValidationError(
            "importing from a server folder is off: set MEDIA_IMPORT_ROOTS to the folders that may be imported "
            "from (or upload the files)",
            field="folder",
        )
    raw = (folder or "").strip()
    if not raw:
        raise ValidationError("name a folder to import from", field="folder")
    path = Path(raw).expanduser()
    path = (path if path.is_absolute() else roots[0] / path).resolve()
    if not any(path == root or root in path.parents for root in roots):
        raise ValidationError(
            f"folder {raw!r} is not inside an allowed import folder; allowed: {', '.join(map(str, roots))}",
            field="folder",
        )
    if not path.is_dir():
        raise ValidationError(f"folder {raw!r} does not exist (or is not a folder)", field="folder")
    return path


def clips_import_folder_request(
    dataset_name: str, folder: str, *, copy_media: bool = False, user=None
) -> tuple[Operation, dict]:
    """`import_clips <folder>` for a page or the API: the folder is checked now (inside MEDIA_IMPORT_ROOTS, see
    ``import_folder_resolve``), the import runs in the background (``clips_import_folder_run``). Returns the
    Operation and the task's keyword arguments."""
    path = import_folder_resolve(folder)
    op = Operation.objects.create(
        kind=Operation.IMPORT,
        dataset=Dataset.objects.filter(name=dataset_name).first(),
        started_by=user,
        message=f"queued: import folder {folder.strip()} into dataset {dataset_name}",
    )
    return op, {"dataset_name": dataset_name, "folder": folder.strip(), "path": str(path), "copy_media": copy_media}


def clips_import_folder_run(
    operation_id: int, *, dataset_name: str, folder: str, path: str, copy_media: bool = False
) -> Operation:
    """Every media file under the checked folder ``path`` (video id = file name without extension), referenced in
    place unless copied into the media storage; clips the dataset has already are left as they are. Progress on
    the Operation."""

    def work(op):
        specs = scan_media_dir(import_folder_resolve(path))  # checked again: the roots may have changed
        ds, _, n = clips_import_into(
            dataset_name, specs, copy_media=copy_media, skip_existing=True, bar=OperationBar(op.pk)
        )
        if op.dataset_id is None:
            Operation.objects.filter(pk=op.pk).update(dataset=ds)
        skipped = len(specs) - n
        return (
            f"imported {n} clip(s) from folder {folder} into dataset {ds.name}"
            + (f"; {skipped} already there, left as they are" if skipped else ""),
            {"clips": n, "url": f"/ops/{ds.name}/"},
        )

    return operation_finish(operation_id, work)
