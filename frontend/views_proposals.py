"""Admin pages: model runs with progress and throughput; proposal sets with their evaluation and the
tuner's Pareto front (recall vs mean proposal-list size). A refused form post goes back to its page with the error
as a message (frontend.middleware)."""

from __future__ import annotations

import json

from django.contrib import messages
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.views.decorators.http import require_http_methods, require_POST

from catalog.access import admin_page
from catalog.errors import ValidationError
from catalog.models import Dataset
from proposals.core.plots import pareto_svg
from proposals.core.predictions_io import MODALITIES
from proposals.models import ModelCheckpoint, ModelRun, ProposalSet
from proposals.selectors import runs_overview
from proposals.services import checkpoint_get, proposal_set_tune
from proposals.tasks import proposal_set_start, run_start

from .middleware import back_on_error
from .views_ops import operation_started


def _run_row(run: ModelRun) -> dict:
    return {
        "id": run.pk,
        "model": run.model_name,
        "dataset": run.dataset.name,
        "kind": run.kind,
        "status": run.status,
        "n_done": run.n_done,
        "n_clips": run.n_clips,
        "percent": round(100 * run.progress, 1),
        "clips_per_s": run.clips_per_s,
        "errors": len(run.errors or []),
        "started_at": run.started_at,
        "finished_at": run.finished_at,
    }


@admin_page
def overview(request):
    datasets = []
    runs = runs_overview()
    sets = list(ProposalSet.objects.select_related("dataset").order_by("dataset__name", "-created_at"))
    for ds in Dataset.objects.order_by("name"):
        datasets.append(
            {
                "dataset": ds,
                "runs": [_run_row(r) for r in runs if r.dataset_id == ds.pk],
                "sets": [s for s in sets if s.dataset_id == ds.pk],
            }
        )
    any_running = any(r.status in (ModelRun.PENDING, ModelRun.RUNNING) for r in runs)
    return render(
        request,
        "proposals/overview.html",
        {
            "datasets": datasets,
            "any_running": any_running,
            "modalities": MODALITIES,
            "checkpoints": list(ModelCheckpoint.objects.order_by("name")),
        },
    )


def _dataset_section(request, name):
    return reverse("proposals:overview") + f"#dataset-{name}"


@admin_page
@require_POST
@back_on_error(_dataset_section)
def compute(request, name):
    """Start (or resume) a model run of a registered checkpoint on every clip of the dataset (queue 'gpu')."""
    ds = get_object_or_404(Dataset, name=name)
    raw = request.POST.get("chunk_size", "256").strip()
    mods = request.POST.getlist("modalities")
    if not raw.isdigit():
        raise ValidationError(
            f"chunk size {raw!r} is not allowed; allowed: a whole number of clips >= 1", field="chunk_size"
        )
    if not mods:
        raise ValidationError(
            f"choose at least one input to score; allowed: {', '.join(MODALITIES)}", field="modalities"
        )
    ckpt = checkpoint_get(request.POST.get("checkpoint", ""))
    run = run_start(
        ds, ckpt, chunk_size=int(raw), modalities=mods, restart=bool(request.POST.get("restart")), background=True
    )
    run.refresh_from_db()
    messages.success(
        request,
        f"{ckpt.name} on {ds.name}: {run.status}, {run.n_done}/{run.n_clips} clips"
        + (" (computing in the background: this page shows its progress)" if run.status == ModelRun.RUNNING else ""),
    )
    return redirect(_dataset_section(request, ds.name))


@admin_page
@require_POST
@back_on_error(_dataset_section)
def build(request, name):
    """Build the dataset's proposal set from its finished runs in the background; the operation page links it."""
    ds = get_object_or_404(Dataset, name=name)
    text = request.POST.get("strategy", "").strip()
    op = proposal_set_start(ds, text or None, user=request.user)
    return operation_started(request, op, f"the proposal set of {ds.name} is being built in the background")


@admin_page
def runs_progress(request):
    return JsonResponse(
        {
            "runs": [
                {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in _run_row(r).items()}
                for r in runs_overview()
            ]
        }
    )


def _front_rows(tune: dict | None) -> list[dict]:
    """The tuner's front for the page: each strategy as the JSON the build form takes, numbered as in the plot."""
    if not tune:
        return []
    chosen = tune.get("chosen") or {}
    return [
        {
            "n": i,
            "mean_size": t["mean_size"],
            "recall": t["recall"],
            "json": json.dumps(t["strategy"], sort_keys=True),
            "chosen": (t["mean_size"], t["recall"]) == (chosen.get("mean_size"), chosen.get("recall")),
        }
        for i, t in enumerate(tune["front"], start=1)
    ]


@admin_page
@require_http_methods(["GET", "POST"])
@back_on_error(lambda request, pk: reverse("proposals:set-detail", args=[pk]))
def set_detail(request, pk: int):
    pset = get_object_or_404(ProposalSet.objects.select_related("dataset"), pk=pk)
    if request.method == "POST":
        proposal_set_tune(pset, request.POST.get("target", "0.9"))
        return redirect("proposals:set-detail", pk=pset.pk)
    ev = pset.evaluation or {}
    tune = ev.get("tune")
    rules = [
        {"rule": r, "recall": v, "only": (ev.get("only_rule") or {}).get(r)}
        for r, v in (ev.get("recall_per_rule") or {}).items()
    ]
    return render(
        request,
        "proposals/set_detail.html",
        {
            "pset": pset,
            "ev": ev,
            "rules": rules,
            "tune": tune,
            "plot": pareto_svg(tune["front"], tune.get("chosen"), tune.get("target"))
            if tune and tune["front"]
            else None,
            "front": _front_rows(tune),
            "strategy_json": json.dumps(pset.strategy, indent=2, sort_keys=True),
            "runs": [r.model_name for r in pset.runs.all()],
        },
    )


app_name = "proposals"
urlpatterns = [
    path("", overview, name="overview"),
    path("sets/<int:pk>/", set_detail, name="set-detail"),
    path("runs/progress.json", runs_progress, name="runs-progress"),
    path("datasets/<slug:name>/compute/", compute, name="compute"),
    path("datasets/<slug:name>/build/", build, name="build"),
]
