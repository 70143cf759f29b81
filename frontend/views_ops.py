"""The operations dashboard (admins only), mounted under /ops/: per dataset, clip progress, HITs, assignments,
spend vs budget, work time and hourly pay, workers, rejections, long operations. Every number links to the list
behind it."""

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from catalog.access import admin_page, signed_in_page
from catalog.models import Dataset, Operation
from catalog.services.operations import operation_retry, operations_fail_stale
from crowd.models import Hit
from crowd.selectors import ops
from crowd.selectors.crowd import inhouse_tasks
from crowd.services.costs import hit_cost_per_assignment
from crowd.tasks import marketplace_sync_start

from .charts import dataset_charts
from .middleware import back_on_error


def operation_started(request, op: Operation, running_text: str):
    """Where a page goes after starting an Operation: straight to the result when it is done already (tasks
    run in-process), else to the operation's page, which refreshes itself until it is done and links it."""
    op.refresh_from_db()
    if op.status == Operation.DONE and op.summary.get("url"):
        messages.success(request, op.message)
        return redirect(op.summary["url"])
    messages.info(request, running_text)
    return redirect("ops:operation", pk=op.pk)


@admin_page
def index(request):
    operations_fail_stale()
    return render(
        request, "frontend/ops/index.html", {"datasets": ops.ops_overview(), "operations": Operation.objects.all()[:10]}
    )


@admin_page
def dataset(request, name):
    operations_fail_stale()
    ds = get_object_or_404(Dataset, name=name)
    return render(request, "frontend/ops/dataset.html", {"d": ops.dataset_ops(ds), "charts": dataset_charts(ds)})


PAGE_SIZE = 100  # rows per page of every ops list


def _page(request, qs):
    """The requested page of a queryset (COUNT + one LIMIT/OFFSET query, whatever the table's size); a page
    number past the end shows the last page."""
    return Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))


def _table(request, ds, title, headers, rows, *, page=None, filters=None):
    """filters: [(name, label, current value, [(value, label)] or None for a text box)], kept in the page links."""
    keep = request.GET.copy()
    keep.pop("page", None)
    return render(
        request,
        "frontend/ops/table.html",
        {
            "dataset": ds,
            "title": title,
            "headers": headers,
            "rows": rows,
            "count": page.paginator.count if page is not None else len(rows),
            "page": page,
            "query": keep.urlencode(),
            "filters": filters or [],
        },
    )


def _admin(obj):
    return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])


@admin_page
def clips(request, name):
    ds = get_object_or_404(Dataset, name=name)
    bucket = request.GET.get("accepted", "0")
    prefix = request.GET.get("q", "").strip()
    try:
        found = ops.clips_with_accepted(ds, bucket, video_id_prefix=prefix)
    except ValueError as exc:
        raise Http404(str(exc))
    page = _page(request, found)
    rows = [
        [(c.video_id, reverse("clip_pages:dataset-clip", args=[ds.name, c.video_id])), (c.accepted_answers, None)]
        for c in page
    ]
    k = max(1, ds.annotations_per_clip)
    buckets = [(str(i), str(i)) for i in range(k)] + [(f"{k}+", f"{k} or more")]
    return _table(
        request,
        ds,
        f"Clips with {bucket} accepted annotation(s)",
        ["clip", "accepted"],
        rows,
        page=page,
        filters=[("accepted", "accepted annotations", bucket, buckets), ("q", "video id starts with", prefix, None)],
    )


@admin_page
def media_reports(request, name):
    ds = get_object_or_404(Dataset, name=name)
    rows = [
        [
            (r["clip"].video_id, _admin(r["clip"])),
            (r["reports"], None),
            (r["answers"], None),
            (", ".join(r["workers"]), None),
            (r["clip"].media_url, None),
        ]
        for r in ops.media_failure_reports(ds)
    ]
    return _table(
        request,
        ds,
        "Clips that workers reported as not loading or playing",
        ["clip", "reports", "answers", "reported by", "media"],
        rows,
    )


@admin_page
def hits(request, name):
    ds = get_object_or_404(Dataset, name=name)
    status = request.GET.get("status") or None
    backend = request.GET.get("backend") or None
    page = _page(request, ops.hits_list(ds, status, backend))
    rows = [
        [
            (h.external_id or "(pending)", _admin(h)),
            (h.backend, None),
            ("sandbox" if h.sandbox else "production", None),
            (h.status, None),
            (str(h.batch.uuid), reverse("ops:assignments", args=[ds.name]) + f"?batch={h.batch.uuid}"),
            (f"${h.reward}", None),
            (f"{h.max_assignments} ({h.reposted} re-posted)", None),
            (f"${hit_cost_per_assignment(h) * h.max_assignments}", None),
            (h.error[:120], None),
        ]
        for h in page
    ]
    return _table(
        request,
        ds,
        f"HITs{' (' + status + ')' if status else ''}",
        ["HIT", "backend", "environment", "status", "batch", "reward", "assignments", "cost", "error"],
        rows,
        page=page,
        filters=[
            ("status", "status", status or "", [("", "any")] + list(Hit.STATUSES)),
            ("backend", "backend", backend or "", [("", "any")] + list(Hit.BACKENDS)),
        ],
    )


@admin_page
def assignments(request, name):
    ds = get_object_or_404(Dataset, name=name)
    status = request.GET.get("status") or None
    worker = request.GET.get("worker")
    qs = ops.assignments_list(ds, status=status, worker_id=int(worker) if worker and worker.isdigit() else None)
    if request.GET.get("batch"):
        qs = qs.filter(batch__uuid=request.GET["batch"])
    page = _page(request, qs)
    rows = [
        [
            (str(a.uuid)[:8], _admin(a)),
            (str(a.worker or "-"), None),
            (a.status if a.status != "submitted" or a.is_verified else "submitted, unverified", None),
            (f"{a.catch_f1:.2f}" if a.catch_f1 is not None else "-", None),
            (f"{a.work_seconds / 60:.1f} min" if a.work_seconds else "-", None),
            (a.decision_reason[:160], None),
        ]
        for a in page
    ]
    return _table(
        request,
        ds,
        f"Assignments{' (' + status + ')' if status else ''}",
        ["assignment", "worker", "status", "catch F1", "work time", "reason"],
        rows,
        page=page,
    )


@admin_page
def workers(request, name):
    ds = get_object_or_404(Dataset, name=name)
    base = reverse("ops:assignments", args=[ds.name])
    page = _page(request, ops.workers_list(ds))  # one aggregate query; the page shows 100 of its rows
    rows = [
        [
            (w["worker"], f"{base}?worker={w['id']}"),
            (w["backend"], None),
            (w["assignments"], f"{base}?worker={w['id']}"),
            (w["approved"], f"{base}?worker={w['id']}&status=approved"),
            (w["rejected"], f"{base}?worker={w['id']}&status=rejected"),
            (f"{w['mean_catch_f1']:.2f}" if w["mean_catch_f1"] is not None else "-", None),
            (f"{100 * w['approval_rate']:.0f} %" if w["approval_rate"] is not None else "-", None),
            ("blocked: " + w["blocked_reason"][:80] if w["is_blocked"] else "", None),
        ]
        for w in page
    ]
    return _table(
        request,
        ds,
        "Workers",
        ["worker", "backend", "assignments", "approved", "rejected", "mean catch F1", "approval rate", "blocked"],
        rows,
        page=page,
    )


@admin_page
def operation(request, pk):
    operations_fail_stale()  # a run whose worker died shows as failed (with a retry) without waiting for beat
    op = get_object_or_404(Operation, pk=pk)
    return render(request, "frontend/ops/operation.html", {"op": op})


@admin_page
@require_POST
@back_on_error(lambda request, pk: reverse("ops:operation", args=[pk]))
def operation_retry_view(request, pk):
    op = get_object_or_404(Operation, pk=pk)
    new = operation_retry(op, request.user)
    return operation_started(request, new, f"operation {op.pk} is being retried as operation {new.pk}")


@signed_in_page
def my_tasks(request):
    """In-house annotators: the batches an admin assigned to them, with their status and the HIT page link (any
    signed-in account sees only its own)."""
    return render(request, "frontend/ops/my_tasks.html", {"rows": inhouse_tasks(request.user)})


@admin_page
@require_POST
def sync_now(request, name):
    op = marketplace_sync_start(get_object_or_404(Dataset, name=name), request.user)
    messages.info(request, "sync started")
    return redirect("ops:operation", pk=op.pk)


app_name = "ops"
urlpatterns = [
    path("", index, name="index"),
    path("operations/<int:pk>/", operation, name="operation"),
    path("operations/<int:pk>/retry/", operation_retry_view, name="operation-retry"),
    path("tasks/", my_tasks, name="my-tasks"),
    path("<slug:name>/", dataset, name="dataset"),
    path("<slug:name>/clips/", clips, name="clips"),
    path("<slug:name>/hits/", hits, name="hits"),
    path("<slug:name>/media-reports/", media_reports, name="media-reports"),
    path("<slug:name>/assignments/", assignments, name="assignments"),
    path("<slug:name>/workers/", workers, name="workers"),
    path("<slug:name>/sync/", sync_now, name="sync"),
]
