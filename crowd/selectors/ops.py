"""Reads for the operations dashboard: per dataset, clip progress, HITs, assignments, spend vs budget, work time
and implied hourly pay, worker quality, recent rejections, long operations. Each figure has a matching list
(`clips_with_accepted`, `hits_list`, `assignments_list`, `workers_list`) so the page can link every number."""

from __future__ import annotations

import statistics
from decimal import Decimal

from django.db import connection
from django.db.models import Count, Exists, OuterRef, Q

from catalog.models import Clip, Dataset, Operation
from crowd.models import Assignment, ClipAnswer, Hit, Worker
from crowd.services.costs import dataset_spend


def _accepted_answers(dataset):
    """The approved annotations of the dataset's non-gold clips; an answer that only reports the clip as not
    playing is not an annotation. (assignment, clip) is unique, so answers per clip = approved assignments."""
    return ClipAnswer.objects.filter(
        clip__dataset=dataset, clip__is_gold=False, assignment__status=Assignment.APPROVED, media_failed=False
    ).order_by()


def _per_clip(dataset):
    return _accepted_answers(dataset).values("clip_id").annotate(n=Count("id"))


def progress_buckets(dataset) -> list[tuple[str, int]]:
    """[(label, count)] for 0, 1, ..., k-1 and >=k accepted annotations (k = annotations_per_clip) of the non-gold
    clips: two aggregate queries (answers grouped per clip, then per bucket; the clips without any are the rest),
    whatever the dataset's size, instead of a loop over every clip."""
    k = max(1, dataset.annotations_per_clip)
    sql, params = _per_clip(dataset).query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT CASE WHEN t.n >= %s THEN %s ELSE t.n END, COUNT(*) FROM ({sql}) t GROUP BY 1", [k, k, *params]
        )
        counts = {int(b): int(n) for b, n in cursor.fetchall()}
    counts[0] = Clip.objects.filter(dataset=dataset, is_gold=False).count() - sum(counts.values())
    return [(str(i) if i < k else f"{k}+", counts.get(i, 0)) for i in range(k + 1)]


def parse_bucket(bucket: str) -> tuple[int, bool]:
    """Bucket "3" -> (3, False): exactly 3; "3+" -> (3, True): at least 3. ValueError names what is allowed."""
    text = (bucket or "").strip()
    at_least = text.endswith("+")
    try:
        want = int(text.rstrip("+"))
    except ValueError:
        want = -1
    if want < 0:
        raise ValueError(f"bucket {bucket!r} is not allowed; use 0, 1, ... or k+ (k = annotations per clip)")
    return want, at_least


def clips_with_accepted(dataset, bucket: str, *, video_id_prefix: str = ""):
    """Non-gold clips whose number of approved annotations falls in `bucket` ("0", "1", ..., "k+"), ordered by
    video id, as a queryset (the page slices it; accepted_counts gives the numbers of the clips shown). Bucket 0
    is an anti-join; the others a semi-join on the answers grouped per clip (no aggregate over every clip)."""
    want, at_least = parse_bucket(bucket)
    qs = Clip.objects.filter(dataset=dataset, is_gold=False)
    if video_id_prefix:
        qs = qs.filter(video_id__startswith=video_id_prefix)
    if want == 0 and at_least:
        pass  # "0+": every clip
    elif want == 0:
        qs = qs.exclude(Exists(_accepted_answers(dataset).filter(clip_id=OuterRef("pk"))))
    else:
        per_clip = _per_clip(dataset)
        per_clip = per_clip.filter(n__gte=want) if at_least else per_clip.filter(n=want)
        qs = qs.filter(pk__in=per_clip.values("clip_id"))
    return qs.only("id", "video_id").order_by("video_id")


def accepted_counts(dataset, clip_ids) -> dict[int, int]:
    """{clip pk: approved annotations} for a page of clips (one query; clips with none are absent)."""
    return dict(_per_clip(dataset).filter(clip_id__in=list(clip_ids)).values_list("clip_id", "n"))


def hits_list(dataset, status: str | None = None, backend: str | None = None):
    qs = Hit.objects.filter(batch__dataset=dataset).select_related("batch").order_by("-created_at", "-id")
    if backend:
        qs = qs.filter(backend=backend)
    return qs.filter(status=status) if status else qs


UNVERIFIED = "unverified"  # pseudo-status: submitted, but the marketplace has not reported it for this worker


def assignments_list(dataset, *, status: str | None = None, worker_id: int | None = None):
    """status: an Assignment status, or "unverified" (submitted, not yet confirmed by the marketplace)."""
    qs = (
        Assignment.objects.filter(batch__dataset=dataset)
        .select_related("worker", "batch")
        .order_by("-submitted_at", "-id")
    )
    if status == UNVERIFIED:
        qs = qs.filter(status=Assignment.SUBMITTED, verified_at__isnull=True).exclude(
            backend__in=Assignment.SELF_VERIFIED
        )
    elif status:
        qs = qs.filter(status=status)
    if worker_id:
        qs = qs.filter(worker_id=worker_id)
    return qs


def workers_list(dataset) -> list[dict]:
    rows = (
        Worker.objects.filter(assignments__batch__dataset=dataset)
        .annotate(
            n=Count("assignments", filter=Q(assignments__batch__dataset=dataset), distinct=True),
            n_approved=Count(
                "assignments",
                filter=Q(assignments__batch__dataset=dataset, assignments__status=Assignment.APPROVED),
                distinct=True,
            ),
            n_rejected=Count(
                "assignments",
                filter=Q(assignments__batch__dataset=dataset, assignments__status=Assignment.REJECTED),
                distinct=True,
            ),
        )
        .order_by("-n", "external_id")
    )
    out = []
    for w in rows:
        decided = w.n_approved + w.n_rejected
        out.append(
            {
                "id": w.pk,
                "worker": w.external_id,
                "backend": w.backend,
                "assignments": w.n,
                "approved": w.n_approved,
                "rejected": w.n_rejected,
                "mean_catch_f1": w.mean_catch_f1,
                "approval_rate": (w.n_approved / decided) if decided else None,
                "is_blocked": w.is_blocked,
                "blocked_reason": w.blocked_reason,
            }
        )
    return out


def media_failure_reports(dataset) -> list[dict]:
    """Clips that workers reported as not loading or playing, most reported first:
    [{"clip", "reports", "answers", "workers": [external ids]}] (answers: all saved answers of the clip)."""
    counts = list(
        ClipAnswer.objects.filter(assignment__batch__dataset=dataset)
        .values("clip")
        .annotate(reports=Count("id", filter=Q(media_failed=True)), answers=Count("id"))
        .filter(reports__gt=0)
        .values_list("clip", "reports", "answers")
    )
    if not counts:
        return []
    clips = Clip.objects.in_bulk([c for c, _, _ in counts])
    workers: dict[int, list[str]] = {}
    for clip_id, ext in (
        ClipAnswer.objects.filter(clip_id__in=clips, media_failed=True, assignment__batch__dataset=dataset)
        .order_by("assignment__worker__external_id")
        .values_list("clip_id", "assignment__worker__external_id")
    ):
        workers.setdefault(clip_id, []).append(ext)
    out = [{"clip": clips[c], "reports": r, "answers": n, "workers": workers.get(c, [])} for c, r, n in counts]
    out.sort(key=lambda row: (-row["reports"], row["clip"].video_id))
    return out


def dataset_ops(dataset: Dataset) -> dict:
    hit_status = dict(
        Hit.objects.filter(batch__dataset=dataset)
        .values_list("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    a_status = dict(
        Assignment.objects.filter(batch__dataset=dataset)
        .values_list("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    works = [
        w
        for w in Assignment.objects.filter(batch__dataset=dataset, work_seconds__isnull=False)
        .exclude(status=Assignment.IN_PROGRESS)
        .values_list("work_seconds", flat=True)
        if w > 0
    ]
    rewards = [
        r
        for r in Hit.objects.filter(batch__dataset=dataset).exclude(status=Hit.FAILED).values_list("reward", flat=True)
        if r > 0
    ]
    median_work = statistics.median(works) if works else None
    median_reward = statistics.median(rewards) if rewards else None
    hourly = (
        (Decimal(median_reward) * 3600 / Decimal(str(median_work))).quantize(Decimal("0.01"))
        if median_work and median_reward
        else None
    )
    spend = dataset_spend(dataset)
    reports = ClipAnswer.objects.filter(assignment__batch__dataset=dataset, media_failed=True).aggregate(
        clips=Count("clip", distinct=True), reports=Count("id")
    )
    return {
        "dataset": dataset,
        "name": dataset.name,
        "progress": progress_buckets(dataset),
        "hits": {s: hit_status.get(s, 0) for s, _ in Hit.STATUSES},
        "open_hits": hit_status.get(Hit.OPEN, 0),
        "assignments": {s: a_status.get(s, 0) for s, _ in Assignment.STATUSES}
        | {UNVERIFIED: assignments_list(dataset, status=UNVERIFIED).count()},
        "spend": {
            "budget": str(spend.budget),
            "paid": str(spend.paid),
            "committed": str(spend.committed),
            "remaining": str(spend.remaining),
            "percent": round(spend.percent_of_budget, 1),
            "bonuses_paid": str(spend.bonuses_paid),
        },
        "median_work_seconds": median_work,
        "median_reward": str(median_reward) if median_reward is not None else None,
        "hourly_pay": str(hourly) if hourly is not None else None,
        "workers": workers_list(dataset),
        "media_reports": reports,
        "rejections": list(assignments_list(dataset, status=Assignment.REJECTED).order_by("-decided_at", "-id")[:10]),
        "operations": list(Operation.objects.filter(dataset=dataset)[:10]),
    }


def ops_overview() -> list[dict]:
    return [dataset_ops(d) for d in Dataset.objects.order_by("name")]
