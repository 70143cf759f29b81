"""Creating batches (HITs) from clips with proposals, and putting clips back in the queue."""

from __future__ import annotations

import random

from django.db import transaction
from django.db.models import Count, Q

from catalog.errors import ValidationError
from catalog.models import Clip, Dataset, GoldLabel
from catalog.selectors.taxonomy import class_names
from crowd.core.batching import plan_batches
from crowd.models import Assignment, Batch, BatchItem
from crowd.selectors.batches import batches_gold_check, batches_without_catch_trials
from proposals.models import Proposal, ProposalSet


def _default_proposals(dataset: Dataset, clip_ids: list[int]) -> dict[int, list[str]]:
    """clip pk -> proposed class names (logit order): the active proposal set, else the original labels."""
    out: dict[int, list[str]] = {}
    if not clip_ids:
        return out
    active = ProposalSet.objects.filter(dataset=dataset, active=True).first()
    if active is not None:
        rows = (
            Proposal.objects.filter(proposal_set=active, clip_id__in=clip_ids)
            .order_by("clip_id", "cls__index")
            .values_list("clip_id", "cls__name")
        )
        for clip_id, name in rows:
            out.setdefault(clip_id, []).append(name)
    missing = [pk for pk in clip_ids if pk not in out]
    if missing:
        through = Clip.original_labels.through
        rows = (
            through.objects.filter(clip_id__in=missing)
            .order_by("clip_id", "taxonomyclass__index")
            .values_list("clip_id", "taxonomyclass__name")
        )
        for clip_id, name in rows:
            out.setdefault(clip_id, []).append(name)
    return out


def gold_clips_in_rotation_order(dataset: Dataset, rng: random.Random) -> list[Clip]:
    """Gold clips that can be scored (at least one gold label present), least used in batches first."""
    clips = list(
        Clip.objects.filter(dataset=dataset, is_gold=True)
        .filter(pk__in=GoldLabel.objects.exclude(modality="-").values("clip_id"))
        .annotate(uses=Count("batch_items"))
    )
    rng.shuffle(clips)
    clips.sort(key=lambda c: c.uses)  # stable: random order among equally used clips
    return clips


def batches_create(
    dataset: Dataset,
    *,
    clips=None,
    proposals: dict[str, list[str]] | None = None,
    rng: random.Random | None = None,
    annotations_wanted: int | None = None,
    allow_without_gold: bool = False,
) -> list[Batch]:
    """Build batches of `dataset.batch_size` clips, `dataset.gold_per_batch` of them gold, at random positions.

    clips: Clip objects or video ids (default: the dataset's non-gold clips that are in no batch yet).
    proposals: video_id -> class names; clips not named fall back to the active proposal set, else their
    original labels. Each batch takes `annotations_per_clip` assignments by distinct workers (or
    `annotations_wanted`, e.g. one more vote for clips whose merged labels are uncertain). All or nothing.
    Refused when the dataset asks for catch trials but has no gold clip (unless `allow_without_gold`).
    """
    rng = rng or random.Random()
    check = batches_gold_check(dataset)
    if check["refusal"] and not allow_without_gold:
        raise ValidationError(check["refusal"], field="dataset")
    if clips is None:
        regular = list(
            Clip.objects.filter(dataset=dataset, is_gold=False).exclude(batch_items__isnull=False).order_by("video_id")
        )
    else:
        wanted = [c.video_id if isinstance(c, Clip) else str(c) for c in clips]
        found = {c.video_id: c for c in Clip.objects.filter(dataset=dataset, video_id__in=wanted)}
        unknown = [v for v in wanted if v not in found]
        if unknown:
            raise ValidationError(
                f"{len(unknown)} clip(s) are not in dataset {dataset.name}", field="clips", details=unknown[:50]
            )
        regular = [found[v] for v in dict.fromkeys(wanted) if not found[v].is_gold]
    if not regular:
        return []
    names = set(class_names())
    proposals = proposals or {}
    bad = [f"{vid}: {name!r}" for vid, lst in proposals.items() for name in lst if name not in names]
    if bad:
        raise ValidationError(
            f"proposals name {len(bad)} class(es) not in the taxonomy", field="proposals", details=bad[:50]
        )
    gold = gold_clips_in_rotation_order(dataset, rng)
    by_vid = {c.video_id: c for c in regular + gold}
    plans = plan_batches(
        [c.video_id for c in regular],
        [c.video_id for c in gold],
        batch_size=dataset.batch_size,
        gold_per_batch=dataset.gold_per_batch,
        rng=rng,
    )
    default = _default_proposals(dataset, [c.pk for c in by_vid.values() if c.video_id not in proposals])
    created = []
    with transaction.atomic():
        for plan in plans:
            batch = Batch.objects.create(dataset=dataset, annotations_wanted=annotations_wanted)
            BatchItem.objects.bulk_create(
                [
                    BatchItem(
                        batch=batch,
                        clip=by_vid[item.video_id],
                        position=pos,
                        is_gold=item.is_gold,
                        proposals=list(proposals.get(item.video_id, default.get(by_vid[item.video_id].pk, []))),
                    )
                    for pos, item in enumerate(plan)
                ]
            )
            created.append(batch)
    return created


ACTIVE_STATUSES = (Assignment.IN_PROGRESS, Assignment.SUBMITTED, Assignment.APPROVED)


def batch_refresh_status(batch: Batch) -> Batch:
    """Open while it still needs assignments (non-rejected < annotations_per_clip), else closed."""
    active = batch.assignments.filter(status__in=ACTIVE_STATUSES).count()
    status = Batch.OPEN if active < batch.wanted else Batch.CLOSED
    if status != batch.status:
        Batch.objects.filter(pk=batch.pk).update(status=status)
        batch.status = status
    return batch


def batches_requeue(dataset: Dataset) -> list[tuple[Batch, int]]:
    """Re-open every batch of the dataset that lacks assignments (after rejections); (batch, free slots) each.

    A rejected assignment frees its slot: the batch's clips go back to the queue for other workers (a
    marketplace re-posts the free slots)."""
    rows = (
        Batch.objects.filter(dataset=dataset)
        .select_related("dataset")
        .annotate(active=Count("assignments", filter=Q(assignments__status__in=ACTIVE_STATUSES)))
    )
    out = []
    for batch in rows:
        free = batch.wanted - batch.active
        if free > 0:
            if batch.status != Batch.OPEN:
                Batch.objects.filter(pk=batch.pk).update(status=Batch.OPEN)
                batch.status = Batch.OPEN
            out.append((batch, free))
    return out


def batches_rebuild_without_catch_trials(dataset: Dataset, *, rng: random.Random | None = None) -> dict:
    """Rebuild the dataset's batches that have no catch trial, with the gold clips it has now: each one nobody has
    worked on and that was never published is deleted and its clips are batched again (with catch trials), all or
    nothing. Batches with work or HITs are left alone and listed. Refused while the dataset has no gold."""
    check = batches_gold_check(dataset)
    if check["refusal"]:
        raise ValidationError(check["refusal"], field="dataset")
    candidates = list(
        batches_without_catch_trials(dataset).annotate(n_assign=Count("assignments"), n_hits=Count("hits"))
    )
    rebuildable = [b for b in candidates if not b.n_assign and not b.n_hits]
    kept = [str(b.uuid) for b in candidates if b.n_assign or b.n_hits]
    with transaction.atomic():
        clip_ids = list(BatchItem.objects.filter(batch__in=rebuildable).values_list("clip_id", flat=True))
        proposals = {
            vid: list(props)
            for vid, props in BatchItem.objects.filter(batch__in=rebuildable).values_list("clip__video_id", "proposals")
        }
        Batch.objects.filter(pk__in=[b.pk for b in rebuildable]).delete()
        clips = list(Clip.objects.filter(pk__in=clip_ids, is_gold=False).order_by("video_id"))
        created = batches_create(dataset, clips=clips, proposals=proposals, rng=rng) if clips else []
    return {
        "deleted": len(rebuildable),
        "created": [str(b.uuid) for b in created],
        "kept": kept,
        "warning": check["warning"],
    }
