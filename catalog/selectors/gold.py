"""Reads of the gold standard: catch-trial scoring, proposal evaluation and merging read it here."""

from __future__ import annotations

from catalog.models import Clip, GoldLabel


def gold_labels(clip_ids) -> dict[str, dict[str, str]]:
    """video_id -> {class: modality} for the given clips."""
    out: dict[str, dict[str, str]] = {}
    for vid, name, modality in GoldLabel.objects.filter(clip_id__in=list(clip_ids)).values_list(
        "clip__video_id", "cls__name", "modality"
    ):
        out.setdefault(vid, {})[name] = modality
    return out


def dataset_gold(dataset) -> dict[str, list[str]]:
    """{video_id: [class names present]} for every gold clip (labels with modality != "-")."""
    out: dict[str, list[str]] = {}
    gold_clip_ids = set(Clip.objects.filter(dataset=dataset, is_gold=True).values_list("video_id", flat=True))
    for vid in gold_clip_ids:
        out[vid] = []
    for vid, name in (
        GoldLabel.objects.filter(clip__dataset=dataset).exclude(modality="-").values_list("clip__video_id", "cls__name")
    ):
        out.setdefault(vid, []).append(name)
    return out
