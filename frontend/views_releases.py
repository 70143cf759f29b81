"""Release pages (mounted under /releases/): list + create, detail with statistics, agreement, clip browser,
diff, streamed downloads and background exports with progress. Researchers and admins read and download; admins
create. A refused form post goes back to its page with the error as a message (frontend.middleware)."""

from __future__ import annotations

from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from catalog.access import admin_page, researcher_page
from catalog.core.vocabulary import META_LABELS
from catalog.errors import ValidationError
from catalog.models import Dataset
from labels.api import streamed_export
from labels.core.merge import METHODS
from labels.models import Release, ReleaseExport
from labels.selectors.releases import release_clip_page, release_exports, releases_list
from labels.services.diff import release_diff
from labels.services.export import EXPORT_FORMATS
from labels.tasks import release_create_start, release_export_start

from .charts import release_charts
from .middleware import back_on_error
from .views_ops import operation_started

app_name = "releases"
PAGE = 100


@researcher_page
def release_list(request):
    return render(
        request,
        "frontend/releases/list.html",
        {
            "releases": releases_list(),
            "datasets": Dataset.objects.order_by("name"),
            "methods": METHODS,
        },
    )


@admin_page
@require_POST
@back_on_error("releases:list")
def release_new(request):
    dataset = get_object_or_404(Dataset, name=request.POST.get("dataset", ""))
    k = request.POST.get("k") or ""
    params = {}
    if k:
        if not k.isdigit() or int(k) < 1:
            raise ValidationError(f"k must be a positive integer; got {k!r}", field="k")
        params["k"] = int(k)
    op = release_create_start(
        dataset,
        request.POST.get("name", ""),
        method=request.POST.get("method", "majority"),
        params=params,
        user=request.user,
    )
    return operation_started(
        request, op, f"release {dataset.name}/{op.summary['name']} is being created in the background"
    )


@researcher_page
def release_detail(request, pk):
    release = get_object_or_404(Release.objects.select_related("dataset", "created_by"), pk=pk)
    try:
        offset = max(int(request.GET.get("offset", 0)), 0)
    except ValueError:
        offset = 0
    query = request.GET.get("q", "").strip()
    total, clips = release_clip_page(release, offset=offset, limit=PAGE, query=query)
    stats = release.stats or {}
    per_class = (stats.get("agreement") or {}).get("per_class") or {}
    unreliable = sorted(
        (
            {"name": n, **v}
            for n, v in per_class.items()
            if v.get("audible") is not None or v.get("visible") is not None
        ),
        key=lambda r: min(x for x in (r.get("audible"), r.get("visible")) if x is not None),
    )[:30]
    return render(
        request,
        "frontend/releases/detail.html",
        {
            "release": release,
            "stats": stats,
            "clips": clips,
            "total": total,
            "offset": offset,
            "query": query,
            "prev_offset": max(offset - PAGE, 0) if offset else None,
            "next_offset": offset + PAGE if offset + PAGE < total else None,
            "agreement": stats.get("agreement") or {},
            "charts": release_charts(stats),
            "unreliable": unreliable,
            "card": stats.get("quality_card") or {},
            "card_classes": sorted(
                ({"name": n, **v} for n, v in ((stats.get("quality_card") or {}).get("per_class") or {}).items()),
                key=lambda r: (r["f1"] is None, r["f1"] or 0.0, r["name"]),
            ),
            "meta_labels": META_LABELS,
            "others": Release.objects.filter(dataset=release.dataset).exclude(pk=release.pk).order_by("-created_at"),
            "exports": release_exports(release)[:10],
            "formats": list(EXPORT_FORMATS),
        },
    )


@researcher_page
def release_download(request, pk):
    release = get_object_or_404(Release.objects.select_related("dataset"), pk=pk)
    fmt = request.GET.get("format", "vggsounder-csv")
    if fmt not in EXPORT_FORMATS:
        raise Http404(f"unknown export format; allowed: {', '.join(EXPORT_FORMATS)}")
    return streamed_export(release, fmt, request.GET.get("include_background_music") in ("1", "true", "on"))


@researcher_page
@require_POST
@back_on_error(lambda request, pk: reverse("releases:detail", args=[pk]))
def release_export_start_view(request, pk):
    release = get_object_or_404(Release, pk=pk)
    job = release_export_start(
        release,
        request.POST.get("format", "vggsounder-csv"),
        include_background_music=request.POST.get("include_background_music") == "1",
        user=request.user,
    )
    return redirect(f"{reverse('releases:detail', args=[pk])}?export={job.pk}#exports")


@researcher_page
def export_status(request, pk):
    job = get_object_or_404(ReleaseExport, pk=pk)
    return JsonResponse(
        {
            "id": job.pk,
            "status": job.status,
            "progress": round(job.progress, 4),
            "rows_done": job.rows_done,
            "rows_total": job.rows_total,
            "error": job.error,
            "download": reverse("api_releases:export-download", args=[job.pk])
            if job.status == ReleaseExport.DONE
            else None,
        }
    )


@researcher_page
def release_diff_view(request, pk):
    a = get_object_or_404(Release.objects.select_related("dataset"), pk=pk)
    try:
        b = get_object_or_404(Release.objects.select_related("dataset"), pk=int(request.GET.get("other", "")))
    except ValueError:
        raise Http404("choose a release to compare with") from None
    diff = release_diff(a, b)
    rows = list(diff["clips"].items())[:500]
    return render(
        request,
        "frontend/releases/diff.html",
        {"a": a, "b": b, "diff": diff, "rows": rows, "truncated": len(diff["clips"]) > len(rows)},
    )


urlpatterns = [
    path("", release_list, name="list"),
    path("new/", release_new, name="new"),
    path("<int:pk>/", release_detail, name="detail"),
    path("<int:pk>/download/", release_download, name="download"),
    path("<int:pk>/exports/", release_export_start_view, name="export-start"),
    path("<int:pk>/diff/", release_diff_view, name="diff"),
    path("exports/<int:pk>/", export_status, name="export-status"),
]
