"""Celery tasks of the catalog: thin, idempotent, acks_late; the work is in services."""

from celery import shared_task

from catalog.services.clips import clip_probe


@shared_task(
    bind=True, acks_late=True, autoretry_for=(OSError,), retry_backoff=True, retry_backoff_max=300, max_retries=5
)
def clip_probe_task(self, clip_id: int) -> dict:
    """Decode a clip's media and store its duration and which streams it has."""
    return clip_probe(clip_id)
