"""Celery tasks of the catalog: thin, idempotent, acks_late; the work is in services."""

from celery import shared_task

from catalog.models import Operation
from catalog.services.clips import (
    clip_probe,
    clips_import_folder_request,
    clips_import_folder_run,
    clips_import_staged,
    clips_import_upload_request,
)
from catalog.services.operations import operation_queue, operations_fail_stale


@shared_task(
    bind=True, acks_late=True, autoretry_for=(OSError,), retry_backoff=True, retry_backoff_max=300, max_retries=5
)
def clip_probe_task(self, clip_id: int) -> dict:
    """Decode a clip's media and store its duration and which streams it has."""
    return clip_probe(clip_id)


@shared_task(acks_late=True)
def operations_fail_stale_task() -> int:
    """Fail running Operations whose worker or command died, or that no worker picked up (Celery beat, every
    minute); their pages then offer a retry."""
    return operations_fail_stale()


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def clips_import_task(self, operation_id: int, **kwargs) -> str:
    """Import clips uploaded through a page or the API (saved for it); the outcome and progress are on the
    Operation."""
    return clips_import_staged(operation_id, **kwargs).status


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def clips_import_folder_task(self, operation_id: int, **kwargs) -> str:
    """Import the clips of a server folder inside MEDIA_IMPORT_ROOTS; outcome and progress on the Operation."""
    return clips_import_folder_run(operation_id, **kwargs).status


def clips_import_start(dataset_name: str, files, csv_file=None, *, user=None) -> Operation:
    """The clip import of a page or the API: checked and saved now, imported in the background (a Celery task, or
    without a broker a background thread); returns the Operation to follow."""
    op, kwargs = clips_import_upload_request(dataset_name, files, csv_file, user=user)
    return operation_queue(op, clips_import_task, kwargs=kwargs, queue="default", background=True)


def clips_import_folder_start(dataset_name: str, folder: str, *, copy_media: bool = False, user=None) -> Operation:
    """The folder import of a page or the API, in the background; returns the Operation to follow."""
    op, kwargs = clips_import_folder_request(dataset_name, folder, copy_media=copy_media, user=user)
    return operation_queue(op, clips_import_folder_task, kwargs=kwargs, queue="default", background=True)
