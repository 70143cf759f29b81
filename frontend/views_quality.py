"""Label-quality pages of the operations dashboard (admins only), mounted under /ops/: adaptive overlap (the clips
still waiting for votes and what they would cost) and worker quality (catch-F1 trend, agreement with the merged
labels)."""

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse

from catalog.access import admin_page
from catalog.models import Dataset
from labels.services.overlap import EM_ONLY, overlap_queue, overlap_report
from labels.services.workers import latest_release, worker_quality_report

from .middleware import back_on_error


def _params(data) -> dict:
    def num(key, default, cast):
        raw = data.get(key)
        if raw in (None, ""):
            return default
        try:
            return cast(raw)
        except ValueError:
            return raw  # overlap_report names what is wrong

    return {
        "min_votes": num("min_votes", 2, int),
        "max_votes": num("max_votes", 5, int),
        "max_expected_errors": num("max_errors", 1.5, float),
        "method": data.get("method") or "modality_ds",
        "backend": data.get("backend") or "mturk",
    }


@admin_page
@back_on_error(lambda request, name: reverse("quality:overlap", args=[name]))
def overlap(request, name):
    ds = get_object_or_404(Dataset, name=name)
    if request.method == "POST":
        report = overlap_report(ds, **_params(request.POST))
        batches = overlap_queue(report)
        messages.success(request, f"queued {len(batches)} batches for {len(report.waiting)} clips")
        return redirect("quality:overlap", name=ds.name)
    report = overlap_report(ds, **_params(request.GET))
    return render(
        request,
        "frontend/ops/overlap.html",
        {"dataset": ds, "r": report, "waiting": report.waiting[:200], "methods": EM_ONLY},
    )


def _sparkline(values, width=120, height=24) -> str:
    """SVG polyline points of catch F1 values (0..1) across the assignments."""
    if len(values) < 2:
        return ""
    step = width / (len(values) - 1)
    return " ".join(f"{i * step:.1f},{height - v * height:.1f}" for i, v in enumerate(values))


@admin_page
def worker_quality(request, name):
    ds = get_object_or_404(Dataset, name=name)
    rows = worker_quality_report(ds)
    for r in rows:
        r["spark"] = _sparkline(r["trend"]["values"])
    return render(
        request, "frontend/ops/worker_quality.html", {"dataset": ds, "rows": rows, "release": latest_release(ds)}
    )


urlpatterns = [
    path("<slug:name>/overlap/", overlap, name="overlap"),
    path("<slug:name>/worker-quality/", worker_quality, name="worker-quality"),
]
