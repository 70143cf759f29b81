"""The admins' review screen, mounted under /ops/<dataset>/review/: the queue of submitted work, one assignment clip
by clip (video, the worker's answers, the gold answer on catch trials, the other workers' answers), approve/reject
with a reason, and bulk decisions for a batch. Answers are read-only here; decisions go through
crowd.services.review (assignment_decide: audited, pushed to the marketplace by the next sync)."""

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.views.decorators.http import require_http_methods

from catalog.access import admin_page
from catalog.models import Dataset
from catalog.selectors.clips import clip_media_url
from crowd.models import Assignment, Batch
from crowd.selectors.review import assignment_review, pct, review_next, review_queue
from crowd.services.review import assignments_decide_many

from .middleware import back_on_error


def _status_text(a: Assignment) -> str:
    return a.status if a.status != Assignment.SUBMITTED or a.is_verified else "submitted, unverified"


def _row(a: Assignment) -> dict:
    return {
        "a": a,
        "status": _status_text(a),
        "catch_f1_pct": pct(a.catch_f1),
        "minutes": f"{a.work_seconds / 60:.1f}" if a.work_seconds else "-",
    }


@admin_page
def review_index(request, name):
    ds = get_object_or_404(Dataset, name=name)
    waiting = list(review_queue(ds)[:500])
    batches = {}
    for a in waiting:
        batches.setdefault(a.batch_id, {"batch": a.batch, "n": 0})["n"] += 1
    return render(
        request,
        "frontend/review/index.html",
        {"dataset": ds, "rows": [_row(a) for a in waiting], "batches": list(batches.values())},
    )


def _back_to_assignment(request, name, assignment_uuid):
    return reverse("review:assignment", args=[name, assignment_uuid])


@admin_page
@require_http_methods(["GET", "POST"])
@back_on_error(_back_to_assignment)
def review_assignment(request, name, assignment_uuid):
    ds = get_object_or_404(Dataset, name=name)
    a = get_object_or_404(Assignment.objects.select_related("worker", "batch"), uuid=assignment_uuid, batch__dataset=ds)
    if request.method == "POST":
        result = assignments_decide_many(
            [a],
            decision=request.POST.get("decision", ""),
            actor=request.user,
            reason=request.POST.get("reason", ""),
            feedback=request.POST.get("feedback", ""),
        )
        for refusal in result["refused"]:
            messages.error(request, f"Not decided: {refusal['error']}")
        if result["done"]:
            messages.success(request, f"Assignment {str(a.uuid)[:8]} ({a.worker or '-'}) {result['status']}.")
            nxt = review_next(ds, a) if request.POST.get("then") == "next" else None
            if nxt is not None:
                return redirect("review:assignment", name=ds.name, assignment_uuid=nxt.uuid)
            if request.POST.get("then") == "next":
                messages.info(request, "No more submitted assignments wait for a review in this dataset.")
                return redirect("review:index", name=ds.name)
        return redirect("review:assignment", name=ds.name, assignment_uuid=a.uuid)
    review = assignment_review(a, media_url=lambda clip: clip_media_url(clip, request))
    nxt = review_next(ds, a)
    return render(
        request,
        "frontend/review/assignment.html",
        {"dataset": ds, "a": a, "status": _status_text(a), "r": review, "next": nxt},
    )


def _back_to_batch(request, name, batch_uuid):
    return reverse("review:batch", args=[name, batch_uuid])


@admin_page
@require_http_methods(["GET", "POST"])
@back_on_error(_back_to_batch)
def review_batch(request, name, batch_uuid):
    ds = get_object_or_404(Dataset, name=name)
    batch = get_object_or_404(Batch, uuid=batch_uuid, dataset=ds)
    rows = list(review_queue(ds, batch=batch))
    if request.method == "POST":
        chosen = set(request.POST.getlist("assignment"))
        result = assignments_decide_many(
            [a for a in rows if str(a.uuid) in chosen],
            decision=request.POST.get("decision", ""),
            actor=request.user,
            reason=request.POST.get("reason", ""),
            feedback=request.POST.get("feedback", ""),
        )
        if result["done"]:
            messages.success(request, f"{len(result['done'])} assignment(s) {result['status']}.")
        for refusal in result["refused"]:
            messages.error(request, f"{refusal['assignment'][:8]} ({refusal['worker']}): {refusal['error']}")
        return redirect("review:batch", name=ds.name, batch_uuid=batch.uuid)
    return render(
        request,
        "frontend/review/batch.html",
        {"dataset": ds, "batch": batch, "rows": [_row(a) for a in rows]},
    )


urlpatterns = [
    path("<slug:name>/review/", review_index, name="index"),
    path("<slug:name>/review/batch/<uuid:batch_uuid>/", review_batch, name="batch"),
    path("<slug:name>/review/<uuid:assignment_uuid>/", review_assignment, name="assignment"),
]
