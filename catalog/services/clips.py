"""Creating datasets and importing clips. Every import validates everything first and writes in one transaction."""

from __future__ import annotations

import csv
import io
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.db import transaction

from catalog.core.media import MEDIA_EXTENSIONS, MediaError, probe
from catalog.errors import ImportFailed, ValidationError
from catalog.models import Clip, Dataset
from catalog.progress import NULL_BAR
from catalog.selectors.taxonomy import class_pks
from catalog.services.operations import operation_run

VIDEO_ID_RE = re.compile(r"^[A-Za-z0-9_\-.]{1,200}$")
REMOTE_SCHEMES = ("http://", "https://", "s3://")
LABEL_SEPARATOR = "|"


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
            errors.append(f"{where}:{lineno}: field 'video_id' is {vid!r}; allowed: 1-200 of A-Z a-z 0-9 _ - .")
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


def clips_import_upload(dataset_name: str, files, csv_file=None) -> tuple[Dataset, list[Clip]]:
    """Import clips uploaded through a page: media files (video id = file name without extension) and/or a CSV
    video_id,url[,original_label] whose url is an http(s)/s3 URL or the name of one of the uploaded files (to give
    it an id and labels). The media is copied into the media storage (S3 when configured). No server path can be
    named. All or nothing; the dataset is created if absent (and not left behind when the import is refused)."""
    files = list(files or [])
    if not files and csv_file is None:
        raise ValidationError("choose media files and/or a CSV of clips to import", field="media")
    with tempfile.TemporaryDirectory(prefix="avcrowd-upload-") as tmp:
        uploaded: dict[str, Path] = {}
        errors = []
        for f in files:
            name = Path(f.name).name
            if Path(name).suffix.lower() not in MEDIA_EXTENSIONS or not VIDEO_ID_RE.match(Path(name).stem):
                errors.append(
                    f"{name}: not allowed; media files are named <video id>{'|'.join(sorted(MEDIA_EXTENSIONS))} "
                    "with a video id of A-Z a-z 0-9 _ - ."
                )
                continue
            target = Path(tmp) / name
            with open(target, "wb") as out:
                for chunk in f.chunks():
                    out.write(chunk)
            uploaded[name] = target
        if errors:
            raise ImportFailed(f"{len(errors)} file(s) refused; nothing was imported", details=errors)
        specs: list[ClipSpec] = []
        if csv_file is not None:
            text = io.TextIOWrapper(csv_file, encoding="utf-8-sig", newline="")
            specs = _clip_rows(
                text, Path(csv_file.name).name, lambda url: str(uploaded[url]) if url in uploaded else None
            )
        named = {Path(s.source).name for s in specs if s.source in {str(p) for p in uploaded.values()}}
        specs += [ClipSpec(Path(n).stem, str(p), [], n) for n, p in uploaded.items() if n not in named]
        with transaction.atomic():
            dataset, _ = dataset_get_or_create(dataset_name)
            clips = clips_import(dataset, specs, copy_media=True)
    return dataset, clips


def scan_media_dir(path: Path) -> list[ClipSpec]:
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in MEDIA_EXTENSIONS)
    if not files:
        raise ImportFailed(f"{path}: no media files found (looked for {', '.join(sorted(MEDIA_EXTENSIONS))})")
    return [ClipSpec(p.stem, str(p), [], str(p)) for p in files]


def clips_import(
    dataset: Dataset,
    specs: list[ClipSpec],
    *,
    copy_media: bool = True,
    probe_media: bool = True,
    gold_ids: set[str] | None = None,
    skip_existing: bool = False,
    bar=NULL_BAR,
) -> list[Clip]:
    """Validate every spec (ids, duplicates, labels, media), then create all clips in one transaction.
    skip_existing: clips already in the dataset are left as they are (not refused); the others are created.
    bar: a progress bar (catalog.progress), advanced per clip checked, then per clip created."""
    errors: list[str] = []
    seen: dict[str, str] = {}
    duplicates: list[str] = []
    for spec in specs:
        if spec.video_id in seen:
            duplicates.append(f"{spec.video_id} ({seen[spec.video_id]} and {spec.where})")
        seen.setdefault(spec.video_id, spec.where)
    existing = set(Clip.objects.filter(dataset=dataset, video_id__in=list(seen)).values_list("video_id", flat=True))
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

    gold_ids = gold_ids or set()
    created: list[Clip] = []
    bar.set_description("importing clips")
    bar.reset(total=len(specs))
    with transaction.atomic():
        for spec in specs:
            bar.update(1)
            info = infos.get(spec.video_id)
            clip = Clip(
                dataset=dataset,
                video_id=spec.video_id,
                is_gold=spec.video_id in gold_ids,
                duration=info.duration if info else None,
                has_audio=info.has_audio if info else True,
                has_video=info.has_video if info else True,
            )
            remote = spec.source.startswith(REMOTE_SCHEMES)
            if remote or not copy_media:
                clip.media_url = spec.source
            else:
                with open(spec.source, "rb") as fh:
                    clip.media.save(
                        f"{dataset.name}/{spec.video_id}{Path(spec.source).suffix.lower()}", File(fh), save=False
                    )
            clip.save()
            if spec.original_labels:
                clip.original_labels.set([classes[label] for label in spec.original_labels])
            created.append(clip)
    return created


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


def clips_import_upload_step(dataset_name: str, files, csv_file=None, *, user=None):
    """`clips_import_upload` recorded as an Operation (the page's and the API's clip import)."""
    dataset = Dataset.objects.filter(name=dataset_name).first()

    def work(op):
        ds, clips = clips_import_upload(dataset_name, files, csv_file)
        if op.dataset_id is None:
            op.dataset = ds
            op.save(update_fields=["dataset"])
        return f"imported {len(clips)} clip(s) into dataset {ds.name}", {
            "clips": len(clips),
            "url": f"/ops/{ds.name}/",
        }

    return operation_run("import", work, dataset=dataset, user=user)


def import_roots() -> list[Path]:
    """The server folders clips may be imported from by a page or the API (MEDIA_IMPORT_ROOTS)."""
    return [Path(r).expanduser().resolve() for r in settings.MEDIA_IMPORT_ROOTS]


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


def clips_import_folder_step(dataset_name: str, folder: str, *, copy_media: bool = False, user=None):
    """`import_clips <folder>` for a page or the API, recorded as an Operation: every media file under `folder`
    (inside MEDIA_IMPORT_ROOTS; video id = file name without extension), referenced in place unless copied into the
    media storage. Clips the dataset has already are left as they are."""
    path = import_folder_resolve(folder)
    dataset = Dataset.objects.filter(name=dataset_name).first()

    def work(op):
        specs = scan_media_dir(path)
        with transaction.atomic():
            ds, _ = dataset_get_or_create(dataset_name)
            clips = clips_import(ds, specs, copy_media=copy_media, skip_existing=True)
        if op.dataset_id is None:
            op.dataset = ds
            op.save(update_fields=["dataset"])
        skipped = len(specs) - len(clips)
        return (
            f"imported {len(clips)} clip(s) from folder {folder.strip()} into dataset {ds.name}"
            + (f"; {skipped} already there, left as they are" if skipped else ""),
            {"clips": len(clips), "url": f"/ops/{ds.name}/"},
        )

    return operation_run("import", work, dataset=dataset, user=user)
