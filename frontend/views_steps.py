"""Every pipeline step of a dataset on one page (admins only), mounted under /ops/<dataset>/steps/: import clips,
import gold, create batches (refused without gold, warned with too little), rebuild batches without catch trials,
import predictions, import a label set. Each form calls the same service as its command and the REST API, recorded
as an Operation; a refusal comes back to this page with the reason. Imports run in the background: the form lands on
their Operation's page, which follows the progress."""

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from catalog.access import admin_page
from catalog.models import Dataset
from catalog.services.clips import import_roots
from catalog.tasks import clips_import_folder_start, clips_import_start
from crowd.selectors.steps import dataset_steps
from crowd.services.steps import batches_create_step, batches_rebuild_step
from crowd.tasks import gold_import_start
from labels.tasks import release_import_start
from proposals.tasks import run_import_start

from .middleware import back_on_error


def _back(request, name):
    return reverse("steps:index", args=[name])


def _done(request, op):
    messages.success(request, op.message)
    return redirect("ops:operation", pk=op.pk)


def _started(request, op):
    """Work started in the background: its Operation's page follows the progress (it reloads while running)."""
    op.refresh_from_db()
    if op.status == op.FAILED:
        messages.error(request, op.message)
    elif op.status == op.DONE:
        messages.success(request, op.message)
    else:
        messages.info(request, f"Started in the background: {op.message.removeprefix('queued: ')}")
    return redirect("ops:operation", pk=op.pk)


@admin_page
def steps(request, name):
    ds = get_object_or_404(Dataset, name=name)
    return render(
        request, "frontend/ops/steps.html", {"dataset": ds, "s": dataset_steps(ds), "import_roots": import_roots()}
    )


def _dataset(name):
    return get_object_or_404(Dataset, name=name)


@admin_page
@require_POST
@back_on_error(_back)
def step_clips(request, name):
    ds = _dataset(name)
    if request.POST.get("folder", "").strip():
        op = clips_import_folder_start(
            ds.name, request.POST["folder"], copy_media=request.POST.get("copy") == "on", user=request.user
        )
    else:
        op = clips_import_start(ds.name, request.FILES.getlist("media"), request.FILES.get("csv"), user=request.user)
    return _started(request, op)


@admin_page
@require_POST
@back_on_error(_back)
def step_gold(request, name):
    op = gold_import_start(
        _dataset(name), request.FILES.get("file"), user=request.user, decide=request.POST.get("decide") == "on"
    )
    return _started(request, op)


@admin_page
@require_POST
@back_on_error(_back)
def step_batches(request, name):
    op = batches_create_step(
        _dataset(name), user=request.user, allow_without_gold=request.POST.get("allow_without_gold") == "on"
    )
    return _done(request, op)


@admin_page
@require_POST
@back_on_error(_back)
def step_rebuild(request, name):
    return _done(request, batches_rebuild_step(_dataset(name), user=request.user))


@admin_page
@require_POST
@back_on_error(_back)
def step_predictions(request, name):
    op = run_import_start(
        _dataset(name),
        request.POST.get("model", ""),
        request.FILES.get("file"),
        user=request.user,
        allow_unknown_clips=request.POST.get("allow_unknown_clips") == "on",
        input=request.POST.get("input", ""),
    )
    return _started(request, op)


@admin_page
@require_POST
@back_on_error(_back)
def step_labels(request, name):
    op = release_import_start(
        _dataset(name), request.POST.get("release", ""), request.FILES.get("file"), user=request.user
    )
    return _started(request, op)


urlpatterns = [
    path("<slug:name>/steps/", steps, name="index"),
    path("<slug:name>/steps/clips/", step_clips, name="clips"),
    path("<slug:name>/steps/gold/", step_gold, name="gold"),
    path("<slug:name>/steps/batches/", step_batches, name="batches"),
    path("<slug:name>/steps/rebuild/", step_rebuild, name="rebuild"),
    path("<slug:name>/steps/predictions/", step_predictions, name="predictions"),
    path("<slug:name>/steps/labels/", step_labels, name="labels"),
]
