"""Reads for the expert (gold) pages."""

from __future__ import annotations

from django.db.models import Count, Q

from catalog.models import Clip
from crowd.models import ExpertAnnotation


def expert_annotation_payload(clip: Clip, user) -> dict | None:
    ann = ExpertAnnotation.objects.filter(clip=clip, user=user).first()
    if ann is None:
        return None
    return {
        "background_music": ann.background_music,
        "voice_over": ann.voice_over,
        "static_image": ann.static_image,
        "labels": ann.labels,
        "original_present": ann.original_present,
        "original_audible": ann.original_audible,
        "original_visible": ann.original_visible,
        "updated_at": ann.updated_at.isoformat(),
    }


def expert_queue(dataset, user, *, min_experts: int = 3, extra_clip_ids=(), limit: int = 50) -> list[dict]:
    """Clips an expert should label next: gold clips (and suggested clips) with fewer than `min_experts` expert
    annotations that this user has not labelled yet, fewest annotations first."""
    rows = (
        Clip.objects.filter(dataset=dataset)
        .filter(Q(is_gold=True) | Q(pk__in=list(extra_clip_ids)))
        .exclude(expert_annotations__user=user)
        .annotate(n_experts=Count("expert_annotations", distinct=True))
        .filter(n_experts__lt=min_experts)
        .order_by("n_experts", "video_id")[:limit]
    )
    return [{"clip_id": c.pk, "video_id": c.video_id, "n_experts": c.n_experts, "is_gold": c.is_gold} for c in rows]
