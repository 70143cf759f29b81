"""Metric report pages (mounted under /reports/): list + start a report, a report with sortable tables and
figures, and its files. Researchers and admins only (access rule `researcher`, catalog.access)."""

from __future__ import annotations

import json
import mimetypes

from django.contrib import messages
from django.http import FileResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST

from catalog.access import researcher_page
from catalog.errors import AvcrowdError, ValidationError
from labels.models import Release
from proposals.models import ModelRun
from reports.models import MetricReport
from reports.services import report_file_open, report_upload
from reports.tasks import report_create

from .middleware import back_on_error
from .report_display import Names, hide_paths, per_class_tables

app_name = "reports"
TABLES = [
    ("paper", "Benchmark (paper table)"),
    ("topk", "Top-k metrics"),
    ("metrics", "All metrics"),
    ("delta_f1", "ΔF1 with − without meta label"),
    ("meta_f1", "F1 per meta-label filter"),
]
FIGURES = [
    ("radar", "Metrics per input modality"),
    ("delta_f1", "ΔF1 for meta labels"),
    ("class_frequency", "Class frequency by modality"),
    ("cooccurrence", "Class co-occurrence"),
    ("per_class", "Per-class F1 by modality"),
    ("per_class_f1", "Per-class F1 by modality"),
]


def _choices():
    releases = list(Release.objects.select_related("dataset").order_by("dataset__name", "name"))
    runs = list(
        ModelRun.objects.filter(status=ModelRun.DONE)
        .select_related("checkpoint", "dataset")
        .order_by("-finished_at", "-pk")[:200]
    )
    return releases, runs


@researcher_page
def report_list(request):
    releases, runs = _choices()
    reports = list(MetricReport.objects.select_related("created_by")[:200])
    _name(reports)
    return render(
        request,
        "frontend/reports/list.html",
        {"reports": reports, "releases": releases, "runs": runs},
    )


def _name(reports) -> None:
    """Give each report the names people know: releases and runs by name, files by their own name, errors
    without server paths."""
    names = Names(reports)
    for r in reports:
        p = r.params or {}
        r.labels_name = names.labels(p.get("labels", ""))
        r.model_names = [names.model(spec) for spec in p.get("predictions", [])]
        r.error_text = hide_paths(r.error)


def _per_class(report):
    """The per-class tables from report.json's `per_class` key ([] for reports made before it existed)."""
    text = _read_text(report, "report.json")
    if not text:
        return []
    try:
        data = json.loads(text)
    except ValueError:
        return []
    return per_class_tables(data.get("per_class") or {})


@researcher_page
@require_POST
@back_on_error("reports:list")
def report_new(request):
    labels = request.POST.get("labels", "").strip()
    upload = request.FILES.get("labels_file")
    if upload and labels:
        raise ValidationError("pick a release or upload a label CSV, not both", field="labels")
    if upload:
        labels = report_upload(upload, upload.name)
    preds = [f"run:{r}" for r in request.POST.getlist("runs") if r.strip()]
    preds += [report_upload(f, f.name) for f in request.FILES.getlist("prediction_files")]
    report = report_create(
        labels=labels,
        predictions=preds,
        regime=request.POST.get("regime", "default"),
        confusion=request.POST.get("confusion", "v1.0"),
        meta=request.POST.get("meta", "on") == "on",
        title=request.POST.get("title", ""),
        user=request.user,
    )
    messages.success(request, f"report {report.pk} started")
    return redirect("reports:detail", pk=report.pk)


def _read_text(report, name):
    """A table's HTML, or None when the report has no such file (not every report makes every table)."""
    try:
        with report_file_open(report, name) as fh:
            return fh.read().decode("utf-8")
    except AvcrowdError:
        return None


@researcher_page
def report_detail(request, pk):
    report = get_object_or_404(MetricReport.objects.select_related("created_by"), pk=pk)
    _name([report])
    tables, figures, per_class = [], [], []
    if report.status == MetricReport.DONE:
        for stem, title in TABLES:
            html = _read_text(report, f"{stem}.html")  # written by benchmark.report, every cell escaped
            if html is not None:
                downloads = [ext for ext in ("csv", "md", "tex", "html") if f"{stem}.{ext}" in report.files]
                tables.append({"stem": stem, "title": title, "html": mark_safe(html), "downloads": downloads})
        for stem, title in FIGURES:
            if f"{stem}.svg" in report.files:
                figures.append({"stem": stem, "title": title})
        per_class = _per_class(report)
    return render(
        request,
        "frontend/reports/detail.html",
        {
            "report": report,
            "tables": tables,
            "figures": figures,
            "per_class": per_class,
            "running": report.status in (MetricReport.PENDING, MetricReport.RUNNING),
        },
    )


@researcher_page
def report_file(request, pk, name):
    report = get_object_or_404(MetricReport, pk=pk)
    fh = report_file_open(report, name)
    ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if name.endswith((".md", ".tex")):
        ctype = "text/plain; charset=utf-8"
    inline = name.endswith((".png", ".svg", ".json", ".html"))
    return FileResponse(fh, content_type=ctype, as_attachment=not inline, filename=name)


urlpatterns = [
    path("", report_list, name="list"),
    path("new/", report_new, name="new"),
    path("<int:pk>/", report_detail, name="detail"),
    path("<int:pk>/files/<str:name>", report_file, name="file"),
]
