"""Celery tasks of the labels app, and the helpers that start them: thin, idempotent, acks_late; the work is in
labels.services (create, export). Starting background work lives here (the service records the request, this module
queues it once the transaction commits), so services never import tasks."""

from celery import shared_task

from catalog.services.operations import operation_queue, task_send_on_commit
from labels.services.create import release_create_request, release_create_run
from labels.services.export import release_export_fail, release_export_request, release_export_run
from labels.services.imports import release_import_request, release_import_staged


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def release_create_task(self, operation_id: int) -> str:
    """Create a release requested from the page (Operation kind "release"); its outcome is on the Operation."""
    return release_create_run(operation_id).status


@shared_task(
    bind=True, acks_late=True, autoretry_for=(OSError,), retry_backoff=True, retry_backoff_max=300, max_retries=3
)
def release_export_task(self, export_id: int) -> dict:
    """Prepare a release export file with progress (ReleaseExport.rows_done / rows_total)."""
    job = release_export_run(export_id)
    return {"export": job.pk, "status": job.status, "rows": job.rows_done}


def release_create_start(
    dataset, name: str, *, method: str = "majority", params: dict | None = None, user=None, gold_override: bool = True
):
    """Check the request now (a refusal starts nothing), then create the release in the background; the returned
    Operation reports the outcome and links the release."""
    op = release_create_request(dataset, name, method=method, params=params, user=user, gold_override=gold_override)
    return operation_queue(op, release_create_task)


def release_export_start(release, fmt: str, *, include_background_music: bool = False, user=None):
    """Queue a background export (Celery; in-process when no broker). Returns the job to poll."""
    job = release_export_request(release, fmt, include_background_music=include_background_music, user=user)
    task_send_on_commit(release_export_task, args=[job.pk], on_failure=lambda msg: release_export_fail(job, msg))
    return job


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def release_import_task(self, operation_id: int, **kwargs) -> str:
    """Import an uploaded label CSV as a release; outcome and progress on the Operation."""
    return release_import_staged(operation_id, **kwargs).status


def release_import_start(dataset, name: str, upload, *, user=None):
    """The label-set import of a page or the API: checked and saved now, imported in the background (a Celery task,
    or without a broker a background thread); returns the Operation to follow."""
    op, kwargs = release_import_request(dataset, name, upload, user=user)
    return operation_queue(op, release_import_task, kwargs=kwargs, queue="default", background=True)
