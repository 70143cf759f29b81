"""Celery tasks of the releases area: thin, idempotent, acks_late; the work is in annotation.services.releases."""
from celery import shared_task


@shared_task(bind=True, acks_late=True, autoretry_for=(OSError,), retry_backoff=True, retry_backoff_max=300,
             max_retries=3)
def release_export_task(self, export_id: int) -> dict:
    """Prepare a release export file with progress (ReleaseExport.rows_done / rows_total)."""
    from annotation.services.releases import release_export_run

    job = release_export_run(export_id)
    return {"export": job.pk, "status": job.status, "rows": job.rows_done}


@shared_task(bind=True, acks_late=True, max_retries=0)
def release_create_task(self, dataset_id: int, name: str, method: str = "majority", params: dict | None = None,
                        user_id: int | None = None) -> dict:
    """Create a release in the background (idempotent: an existing release of that name is returned)."""
    from django.contrib.auth import get_user_model

    from annotation.models import Dataset, Release
    from annotation.services.releases import release_create

    existing = Release.objects.filter(dataset_id=dataset_id, name=name).first()
    if existing:
        return {"release": existing.pk, "created": False}
    user = get_user_model().objects.filter(pk=user_id).first() if user_id else None
    release = release_create(Dataset.objects.get(pk=dataset_id), name, method=method, params=params, user=user)
    return {"release": release.pk, "created": True}
