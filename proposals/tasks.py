"""Celery tasks of the proposals app (queue ``gpu``): thin, idempotent per (run, chunk), acks_late,
retried with exponential backoff. Routed to ``gpu`` by CELERY_TASK_ROUTES and
enqueued with queue="gpu". The model is cached per worker process in proposals.gpu."""

from celery import shared_task
from django.db import transaction

from catalog.services.operations import operation_queue
from proposals.services import chunk_process, proposal_set_request, proposal_set_run, run_finalize, run_prepare


@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(OSError, RuntimeError),
    retry_backoff=True,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=5,
)
def compute_chunk(self, chunk_id: int) -> str:
    """Run the run's model on one chunk of clips and store its scores (skipped when already done)."""
    return chunk_process(chunk_id)


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def build_proposal_set(self, operation_id: int) -> str:
    """Build a proposal set requested from the page (CPU work: enqueued on the default queue explicitly,
    which overrides this module's route to 'gpu'); the outcome is on the Operation."""
    return proposal_set_run(operation_id).status


@shared_task(bind=True, acks_late=True, autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def finalize_run(self, run_id: int) -> str:
    return run_finalize(run_id).status


def run_start(
    dataset, checkpoint, *, chunk_size: int = 256, modalities: list[str] | None = None, restart: bool = False
):
    """Create (or resume) the run of ``checkpoint`` on ``dataset`` and queue its chunks still to compute on the
    ``gpu`` queue once the transaction commits. Returns the run."""
    run, pending = run_prepare(dataset, checkpoint, chunk_size=chunk_size, modalities=modalities, restart=restart)
    for chunk_id in pending:
        transaction.on_commit(lambda cid=chunk_id: compute_chunk.apply_async(args=[cid], queue="gpu"))
    return run


def proposal_set_start(dataset, strategy=None, *, models: list[str] | None = None, user=None):
    """Check the strategy and the runs now (a refusal starts nothing), then build the proposal set in the
    background (Celery task on the default queue; ~25 s at 15,000 clips, mostly the insert). The returned
    Operation (kind "proposals") reports the outcome and links the new active set."""
    op = proposal_set_request(dataset, strategy, models=models, user=user)
    return operation_queue(op, build_proposal_set, queue="default")
