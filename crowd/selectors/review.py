"""Reads for the admins' review screen: one assignment clip by clip (its answers, the gold answer on catch trials,
the other workers' answers to the same clips), and the assignments of a batch or a dataset waiting for a decision.
Read only: decisions go through crowd.services.assignments.assignment_decide."""

from __future__ import annotations

from catalog.core.vocabulary import META_LABELS, ticked_modalities
from catalog.selectors.gold import gold_labels
from crowd.models import Assignment, AssignmentDecisionLog, BatchItem, ClipAnswer


def _compare(worker: dict[str, str], gold: dict[str, str]) -> list[dict]:
    """One row per class the worker ticked or the gold lists as present: both modalities and the verdict
    ("match", "partial": the class right but not its modality, "missed", "extra")."""
    rows = []
    present = {name: m for name, m in gold.items() if m != "-"}
    for name in sorted(set(worker) | set(present)):
        w, g = worker.get(name), present.get(name)
        if w and g:
            verdict = "match" if w == g else "partial"
        else:
            verdict = "extra" if w else "missed"
        rows.append({"name": name, "worker": w or "-", "gold": g or "-", "verdict": verdict})
    return rows


def _meta(answer) -> list[dict]:
    return [{"key": key, "label": key.replace("_", " "), "value": getattr(answer, key, None)} for key in META_LABELS]


def assignment_review(assignment: Assignment, *, media_url) -> dict:
    """Everything the review screen shows for one assignment. `media_url(clip)` signs a clip's media link."""
    items = list(
        BatchItem.objects.filter(batch_id=assignment.batch_id).select_related("clip").order_by("position", "pk")
    )
    clip_ids = [item.clip_id for item in items]
    answers = {a.clip_id: a for a in ClipAnswer.objects.filter(assignment=assignment, clip_id__in=clip_ids)}
    gold = gold_labels(item.clip_id for item in items if item.is_gold)
    others: dict[int, list[dict]] = {}
    other_answers = (
        ClipAnswer.objects.filter(clip_id__in=clip_ids)
        .exclude(assignment=assignment)
        .exclude(assignment__status=Assignment.IN_PROGRESS)
        .select_related("assignment__worker")
        .order_by("assignment__submitted_at", "pk")
    )
    for other in other_answers:
        a = other.assignment
        others.setdefault(other.clip_id, []).append(
            {
                "worker": str(a.worker) if a.worker_id else "-",
                "status": a.status,
                "catch_f1_pct": pct(a.catch_f1),
                "ticks": sorted(ticked_modalities(other.labels, other.media_failed).items()),
                "media_failed": other.media_failed,
                "meta": _meta(other),
                "uuid": str(a.uuid),
            }
        )
    clips = []
    for item in items:
        answer = answers.get(item.clip_id)
        ticks = ticked_modalities(answer.labels, answer.media_failed) if answer else {}
        clip_gold = gold.get(item.clip.video_id) if item.is_gold else None
        clips.append(
            {
                "position": item.position + 1,
                "video_id": item.clip.video_id,
                "clip_id": item.clip_id,
                "media_url": media_url(item.clip),
                "is_gold": item.is_gold,
                "proposals": list(item.proposals or ()),
                "answered": answer is not None,
                "played": bool(answer and answer.played),
                "watch_seconds": answer.watch_seconds if answer else None,
                "media_failed": bool(answer and answer.media_failed),
                "comment": answer.comment if answer else "",
                "meta": _meta(answer) if answer else [],
                "ticks": sorted(ticks.items()),
                "gold": _compare(ticks, clip_gold) if clip_gold is not None else None,
                "others": others.get(item.clip_id, []),
            }
        )
    return {
        "clips": clips,
        "catch_f1_pct": pct(assignment.catch_f1),
        "catch_precision_pct": pct(assignment.catch_precision),
        "catch_recall_pct": pct(assignment.catch_recall),
        "n_gold": sum(1 for item in items if item.is_gold),
        "log": list(
            AssignmentDecisionLog.objects.filter(assignment=assignment).select_related("actor").order_by("created_at")
        ),
    }


def pct(value) -> str:
    """A catch-trial score as the review screens show it: a whole percentage, "-" when not scored."""
    return "-" if value is None else f"{100 * value:.0f} %"


def review_queue(dataset, *, batch=None):
    """Submitted assignments of a dataset (or one batch) waiting for a decision, oldest first; then, for a batch, the
    decided ones (its bulk page lists them all)."""
    qs = Assignment.objects.filter(batch__dataset=dataset).select_related("worker", "batch")
    if batch is not None:
        return qs.filter(batch=batch).exclude(status=Assignment.IN_PROGRESS).order_by("status", "submitted_at", "pk")
    return qs.filter(status=Assignment.SUBMITTED).order_by("submitted_at", "pk")


def review_next(dataset, after: Assignment) -> Assignment | None:
    """The next submitted assignment of the dataset to review after `after` (the oldest other one)."""
    return review_queue(dataset).exclude(pk=after.pk).first()
