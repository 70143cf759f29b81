"""Celery tasks of the proposals app (queue ``gpu``): thin, idempotent per (run, chunk), acks_late,
retried with exponential backoff. Routed to ``gpu`` by CELERY_TASK_ROUTES and
enqueued with queue="gpu". The model is cached per worker process in proposals.gpu."""
from celery import shared_task


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True,
             autoretry_for=(OSError, RuntimeError), retry_backoff=True, retry_backoff_max=600,
             retry_jitter=True, max_retries=5)
def compute_chunk(self, chunk_id: int) -> str:
    """Run the run's model on one chunk of clips and store its scores (skipped when already done)."""
    from proposals.services import chunk_process

    return chunk_process(chunk_id)


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def build_proposal_set(self, operation_id: int) -> str:
    """Build a proposal set requested from the page (CPU work: enqueued on the default queue explicitly,
    which overrides this module's route to 'gpu'); the outcome is on the Operation."""
    from proposals.services import proposal_set_run

    return proposal_set_run(operation_id).status


@shared_task(bind=True, acks_late=True, autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def finalize_run(self, run_id: int) -> str:
    from proposals.services import run_finalize

    return run_finalize(run_id).status
