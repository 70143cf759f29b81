"""Reads of releases."""

from __future__ import annotations

from catalog.errors import NotFound, ValidationError
from labels.models import Release, ReleaseClip, ReleaseExport, ReleaseLabel


def releases_list(dataset=None):
    qs = Release.objects.select_related("dataset", "created_by").order_by("dataset__name", "-created_at", "-id")
    return qs.filter(dataset=dataset) if dataset is not None else qs


def release_find(name: str, dataset: str | None = None) -> Release:
    """A release by name ("v1" or "dataset/v1"); the dataset may be omitted when the name is unique."""
    if dataset is None and "/" in name:
        dataset, name = name.split("/", 1)
    qs = Release.objects.select_related("dataset").filter(name=name)
    if dataset is not None:
        qs = qs.filter(dataset__name=dataset)
    found = list(qs[:20])
    if not found:
        where = f" in dataset {dataset!r}" if dataset else ""
        known = ", ".join(f"{r.dataset.name}/{r.name}" for r in releases_list()[:20]) or "none"
        raise NotFound(f"no release {name!r}{where}; known releases: {known}")
    if len(found) > 1:
        raise ValidationError(
            f"release name {name!r} exists in several datasets; give --dataset or DATASET/{name}: "
            + ", ".join(f"{r.dataset.name}/{r.name}" for r in found)
        )
    return found[0]


def release_clip_page(release: Release, *, offset: int = 0, limit: int = 100, query: str = ""):
    """Clips of a release in row order with their labels, for the release page."""
    qs = ReleaseClip.objects.filter(release=release).order_by("order")
    if query:
        qs = qs.filter(video_id__icontains=query)
    total = qs.count()
    clips = list(qs[offset : offset + limit])
    labels: dict[int, list] = {}
    for lab in ReleaseLabel.objects.filter(release_clip__in=[c.pk for c in clips]).order_by("order"):
        labels.setdefault(lab.release_clip_id, []).append(lab)
    for c in clips:
        c.label_list = labels.get(c.pk, [])
    return total, clips


def release_exports(release: Release):
    return ReleaseExport.objects.filter(release=release).order_by("-created_at", "-id")
