"""Pipeline steps started from a page or the API (the same services as the commands), each recorded as an
Operation: import gold from an uploaded CSV (then re-score the catch trials; in the background), create batches
(refused without gold, warned with too little), rebuild the batches built without catch trials."""

from __future__ import annotations

from django.db import transaction
from django.urls import reverse

from catalog.errors import ValidationError
from catalog.models import Dataset, Operation
from catalog.services.operations import OperationBar, operation_finish_staged, operation_run
from catalog.services.uploads import staged_folder, staged_name, uploads_stage
from crowd.selectors.batches import batches_gold_check
from crowd.services.batches import batches_create, batches_rebuild_without_catch_trials
from crowd.services.gold import gold_import_csv
from crowd.services.rescore import catch_trials_rescore


def gold_import_request(dataset, upload, *, user=None, decide: bool = False) -> tuple[Operation, dict]:
    """`import_gold` for an uploaded `id,label,original,modality` CSV: a file chosen, saved for the background
    (``gold_import_staged``, queued by crowd.tasks.gold_import_start). Returns the Operation and the task's
    keyword arguments."""
    if upload is None:
        raise ValidationError("choose a gold CSV to upload (field 'file')", field="file")
    staged = uploads_stage([upload])
    name = staged_name(upload)
    op = Operation.objects.create(
        kind=Operation.IMPORT,
        dataset=dataset,
        started_by=user,
        message=f"queued: import gold labels from {name} into dataset {dataset.name}",
        summary={"upload": name},
    )
    return op, {"dataset_id": dataset.pk, "staged": staged, "name": name, "decide": decide}


def gold_import_staged(operation_id: int, *, dataset_id: int, staged: str, name: str, decide: bool = False):
    """Import the staged gold CSV, then mark catch trials and re-score the assignments (all or nothing), with its
    steps on the Operation; the upload is removed when it ends."""

    def work(op):
        dataset = Dataset.objects.get(pk=dataset_id)
        bar = OperationBar(op.pk)
        bar.reset(total=1)
        bar.set_description(f"reading {name}, then re-scoring the catch trials")
        with staged_folder(staged) as folder, transaction.atomic():  # no progress written inside: it would wait
            n = gold_import_csv(dataset, folder / name)
            report = catch_trials_rescore(dataset, decide=decide)
        bar.update(1)
        lines = report.lines()
        return (
            f"imported {n} gold label rows into dataset {dataset.name}" + (f"; {lines[0]}" if lines else ""),
            {"rows": n, "lines": lines[:50], "url": reverse("frontend:gold") + f"?dataset={dataset.name}"},
        )

    return operation_finish_staged(operation_id, staged, work)


def batches_create_step(dataset, *, user=None, allow_without_gold: bool = False) -> Operation:
    """`create_batches` for the dataset's clips in no batch yet; the outcome names the gold situation."""

    def work(op):
        check = batches_gold_check(dataset)
        batches = batches_create(dataset, allow_without_gold=allow_without_gold)
        message = (
            f"created {len(batches)} batch(es) in dataset {dataset.name}"
            if batches
            else f"every clip of dataset {dataset.name} is in a batch already: nothing to create"
        )
        if batches and check["refusal"]:
            message += " WITHOUT catch trials (allowed by the request): publishing refuses them until rebuilt"
        elif batches and check["warning"]:
            message += f"; warning: {check['warning']}"
        return message, {
            "batches": [str(b.uuid) for b in batches],
            "warning": check["warning"],
            "url": reverse("ops:dataset", args=[dataset.name]),
        }

    return operation_run(Operation.IMPORT, work, dataset=dataset, user=user)


def batches_rebuild_step(dataset, *, user=None) -> Operation:
    """Rebuild the batches that have no catch trial (never worked on, never published) with today's gold."""

    def work(op):
        result = batches_rebuild_without_catch_trials(dataset)
        message = (
            f"rebuilt {result['deleted']} batch(es) without catch trials as {len(result['created'])} batch(es) "
            f"with catch trials in dataset {dataset.name}"
        )
        if result["kept"]:
            message += f"; {len(result['kept'])} batch(es) kept as they are (they have work or HITs)"
        return message, {**result, "url": reverse("ops:dataset", args=[dataset.name])}

    return operation_run(Operation.IMPORT, work, dataset=dataset, user=user)
