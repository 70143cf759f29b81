"""Reads for the annotator side: batch contents, stored answers, the marketplace hand-off, the next batch."""

from __future__ import annotations

import uuid
from urllib.parse import urlencode

from django.conf import settings

from catalog.core.vocabulary import META_LABELS
from crowd.models import Assignment, Batch, BatchItem, ClipAnswer, InhouseTask, ProlificStudy

PROLIFIC_COMPLETE_URL = "https://app.prolific.com/submissions/complete"
ANSWER_FIELD = "avcrowdAssignment"  # the answer field our externalSubmit form posts with the assignmentId
ANSWER_FIELDS = META_LABELS + ("played", "watch_seconds", "labels", "comment", "media_failed")


_BATCH_CLIPS: dict[int, dict[str, int]] = {}
_BATCH_CLIPS_MAX = 8192


def batch_clip_ids(batch_id: int) -> dict[str, int]:
    """video_id -> clip pk for one batch. Cached per process: a batch's items never change once created, and
    primary keys are never reused (PostgreSQL sequences, SQLite AUTOINCREMENT)."""
    found = _BATCH_CLIPS.get(batch_id)
    if found is None:
        found = dict(BatchItem.objects.filter(batch_id=batch_id).values_list("clip__video_id", "clip_id"))
        if found:  # an empty result is not cached: the batch may not be committed yet
            if len(_BATCH_CLIPS) >= _BATCH_CLIPS_MAX:
                _BATCH_CLIPS.clear()
            _BATCH_CLIPS[batch_id] = found
    return found


def clear_cache() -> None:
    _BATCH_CLIPS.clear()


def batch_items(batch: Batch) -> list[BatchItem]:
    return list(batch.items.select_related("clip").order_by("position"))


def answer_payload(answer: ClipAnswer) -> dict:
    return {key: getattr(answer, key) for key in ANSWER_FIELDS}


def assignment_answers(assignment: Assignment) -> dict[str, dict]:
    """video_id -> stored payload, for restoring the page."""
    rows = ClipAnswer.objects.filter(assignment=assignment).select_related("clip")
    return {row.clip.video_id: answer_payload(row) for row in rows}


def parse_uuid(value) -> uuid.UUID | None:
    """The UUID in `value` (as the URL gives it), or None when it is not one."""
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def assignment_by_uuid(value) -> Assignment | None:
    value = parse_uuid(value)
    if value is None:
        return None
    return Assignment.objects.select_related("batch__dataset", "worker").filter(uuid=value).first()


def batch_by_uuid(value) -> Batch | None:
    value = parse_uuid(value)
    if value is None:
        return None
    return Batch.objects.select_related("dataset").filter(uuid=value).first()


def prolific_completion_code(dataset) -> str:
    per_dataset = getattr(settings, "PROLIFIC_COMPLETION_CODES", {}) or {}
    return per_dataset.get(dataset.name) or getattr(settings, "PROLIFIC_COMPLETION_CODE", "")


def next_batch_for_worker(worker, dataset) -> Batch | None:
    """The oldest open batch of the dataset this worker may take: not started by them, no clip they have had."""
    seen = BatchItem.objects.filter(batch__assignments__worker=worker).values("clip_id")
    return (
        Batch.objects.filter(dataset=dataset, status=Batch.OPEN)
        .exclude(assignments__worker=worker)
        .exclude(items__clip_id__in=seen)
        .order_by("created_at", "id")
        .first()
    )


def assignment_handoff(assignment: Assignment) -> dict | None:
    """What the page does after submit (None while the assignment is in progress)."""
    if assignment.status == Assignment.IN_PROGRESS:
        return None
    backend = assignment.backend
    if backend == "mturk":
        base = (assignment.turk_submit_to or "https://www.mturk.com").rstrip("/")
        # MTurk's externalSubmit wants at least one answer field besides assignmentId; ours names the avcrowd
        # assignment that holds the answers (the sync sees it in the assignment's Answer)
        return {
            "kind": "mturk",
            "action": f"{base}/mturk/externalSubmit",
            "fields": {"assignmentId": assignment.external_assignment_id, ANSWER_FIELD: str(assignment.uuid)},
        }
    if backend == "prolific":
        code = completion_code_for(assignment.batch) or prolific_completion_code(assignment.batch.dataset)
        return {"kind": "prolific", "url": PROLIFIC_COMPLETE_URL + (f"?{urlencode({'cc': code})}" if code else "")}
    if backend == "inhouse":
        # in-house annotators label only the batches assigned to them: the next one of those, else the start page
        user = assignment.worker.user if assignment.worker else None
        nxt = next_batch_for(user) if user else None
        return {"kind": "inhouse", "next_url": f"/hit/{nxt.uuid}/" if nxt else "/"}
    return {"kind": "simulated"}


def completion_code_for(batch) -> str | None:
    """The completion code of the batch's Prolific study (for the HIT page's Prolific hand-off), or None."""
    study = (
        ProlificStudy.objects.filter(hit__batch=batch)
        .exclude(hit__status="failed")
        .order_by("-hit__created_at")
        .first()
    )
    return study.completion_code if study else None


def inhouse_tasks(user):
    """Batches assigned to `user`, oldest first, with the user's assignment status when started."""
    rows = []
    for task in InhouseTask.objects.filter(user=user).select_related("batch", "batch__dataset"):
        a = Assignment.objects.filter(batch=task.batch, worker__user=user).first()
        rows.append(
            {
                "task": task,
                "batch": task.batch,
                "status": a.status if a else "not started",
                "url": f"/hit/{task.batch.uuid}/",
            }
        )
    return rows


def next_batch_for(user):
    """The next assigned batch the user has not submitted yet (for the HIT page's in-house hand-off), or None."""
    for row in inhouse_tasks(user):
        if row["status"] in ("not started", Assignment.IN_PROGRESS):
            return row["batch"]
    return None
