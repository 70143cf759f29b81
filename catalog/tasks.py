"""Celery tasks of the catalog: thin, idempotent, acks_late; the work is in services."""

from celery import shared_task

from catalog.services.clips import clip_probe
from catalog.services.operations import operations_fail_stale


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
