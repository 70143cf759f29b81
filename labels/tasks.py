"""Celery tasks of the releases area: thin, idempotent, acks_late; the work is in annotation.services.releases."""
from celery import shared_task


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def release_create_task(self, operation_id: int) -> str:
    """Create a release requested from the page (Operation kind "release"); its outcome is on the Operation."""
    from labels.services.releases import release_create_run

    return release_create_run(operation_id).status


@shared_task(bind=True, acks_late=True, autoretry_for=(OSError,), retry_backoff=True, retry_backoff_max=300,
             max_retries=3)
def release_export_task(self, export_id: int) -> dict:
    """Prepare a release export file with progress (ReleaseExport.rows_done / rows_total)."""
    from labels.services.releases import release_export_run

    job = release_export_run(export_id)
    return {"export": job.pk, "status": job.status, "rows": job.rows_done}

