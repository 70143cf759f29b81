"""One clip of a release with everything behind its labels: the released labels (and where each came from), the
proposals the workers saw, and every vote (crowd answers with their assignment's status and catch F1, expert
annotations), side by side per class."""

from __future__ import annotations

from django.shortcuts import get_object_or_404

from catalog.core.vocabulary import META_LABELS, ticked_modalities
from crowd.models import Assignment, BatchItem, ClipAnswer, ExpertAnnotation
from labels.models import ReleaseClip
from proposals.models import Proposal


def release_clip_detail(release, video_id: str, *, media_url) -> dict:
    rc = get_object_or_404(ReleaseClip.objects.select_related("clip"), release=release, video_id=video_id)
    labels = list(rc.labels.order_by("name").values("name", "modality", "origin", "origin_source"))
    meta = {m: getattr(rc, m) for m in META_LABELS}
    return {"rc": rc, "video_id": rc.video_id, **clip_detail(rc.clip, media_url=media_url, labels=labels, meta=meta)}


def clip_detail(clip, *, media_url, labels=None, meta=None) -> dict:
    """A clip's video, the proposals its workers saw and every vote, per class; with `labels` / `meta` (a
    release's), the released answer beside them."""
    labels = labels or []
    voters, proposals, active = [], [], []
    if clip is not None:
        seen = set()
        for props in BatchItem.objects.filter(clip=clip).values_list("proposals", flat=True):
            for name in props or ():
                if name not in seen:
                    seen.add(name)
                    proposals.append(name)
        active = list(
            Proposal.objects.filter(clip=clip, proposal_set__active=True)
            .select_related("cls")
            .order_by("cls__index")
            .values_list("cls__name", "provenance")
        )
        answers = (
            ClipAnswer.objects.filter(clip=clip)
            .exclude(assignment__status=Assignment.IN_PROGRESS)
            .select_related("assignment__worker")
            .order_by("assignment__submitted_at", "pk")
        )
        for a in answers:
            asg = a.assignment
            voters.append(
                {
                    "who": str(asg.worker) if asg.worker_id else "-",
                    "kind": "crowd",
                    "status": asg.status,
                    "catch_f1": None if asg.catch_f1 is None else f"{100 * asg.catch_f1:.0f} %",
                    "ticks": ticked_modalities(a.labels, a.media_failed),
                    "meta": {m: getattr(a, m) for m in META_LABELS},
                    "media_failed": a.media_failed,
                    "comment": a.comment,
                    "assignment": str(asg.uuid),
                }
            )
        for e in ExpertAnnotation.objects.filter(clip=clip).select_related("user").order_by("updated_at"):
            voters.append(
                {
                    "who": e.user.username,
                    "kind": "expert",
                    "status": "expert",
                    "catch_f1": None,
                    "ticks": ticked_modalities(e.labels),
                    "meta": {m: getattr(e, m) for m in META_LABELS},
                    "media_failed": False,
                    "comment": "",
                    "assignment": None,
                }
            )
    released = {lab["name"]: lab for lab in labels}
    names = sorted(set(released) | {n for v in voters for n in v["ticks"]})
    rows = []
    for name in names:
        votes = [v["ticks"].get(name, "") for v in voters]
        rows.append(
            {
                "name": name,
                "released": released.get(name),
                "votes": votes,
                "audible": sum("A" in m for m in votes),
                "visible": sum("V" in m for m in votes),
                "proposed": name in proposals,
            }
        )
    return {
        "clip": clip,
        "media_url": media_url(clip) if clip is not None else None,
        "labels": labels,
        "meta": meta,
        "meta_rows": [
            {"key": m, "released": (meta or {}).get(m), "votes": [v["meta"][m] for v in voters]} for m in META_LABELS
        ],
        "proposals": proposals,
        "active_proposals": active,
        "voters": voters,
        "rows": rows,
    }
