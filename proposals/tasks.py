"""Celery tasks of the proposals app (queue ``gpu``): thin, idempotent per (run, chunk), acks_late,
retried with exponential backoff. Routed to ``gpu`` by CELERY_TASK_ROUTES and
enqueued with queue="gpu". The model is cached per worker process in proposals.gpu."""

import logging
import threading

from celery import current_app, shared_task
from django.db import connection, transaction

from catalog.progress import NULL_BAR
from catalog.services.operations import operation_queue
from proposals.services import (
    chunk_process,
    proposal_set_request,
    proposal_set_run,
    run_finalize,
    run_import_request,
    run_import_staged,
    run_prepare,
)


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


log = logging.getLogger(__name__)

# Without a broker (the embedded set-up: Celery runs tasks in-process), a run started from a page computes in a
# background thread instead of inside the request (minutes to hours); its progress is on the ModelRun row.
COMPUTE_THREAD = True


def _chunks_in_thread(run_id: int, chunk_ids: list[int]) -> threading.Thread:
    def work():
        try:
            for cid in chunk_ids:
                try:
                    chunk_process(cid)
                except Exception:  # noqa: BLE001 - the chunk stays pending (a later start resumes it); logged
                    log.exception("run %s: chunk %s failed in the background thread", run_id, cid)
        finally:
            connection.close()

    thread = threading.Thread(target=work, name=f"avcrowd-compute-run{run_id}", daemon=True)
    thread.start()
    return thread


def run_start(
    dataset,
    checkpoint,
    *,
    chunk_size: int = 256,
    modalities: list[str] | None = None,
    restart: bool = False,
    background: bool = False,
    bar=NULL_BAR,
):
    """Create (or resume) the run of ``checkpoint`` on ``dataset`` and queue its chunks still to compute on the
    ``gpu`` queue once the transaction commits. Returns the run. background (a page): without a broker the chunks
    are computed in a background thread, so the request returns at once. bar: advanced per chunk computed here
    (in-process, a command without a broker)."""
    run, pending = run_prepare(dataset, checkpoint, chunk_size=chunk_size, modalities=modalities, restart=restart)
    eager = bool(current_app.conf.task_always_eager)
    if eager and background and COMPUTE_THREAD and pending:
        transaction.on_commit(lambda: _chunks_in_thread(run.pk, list(pending)))
        return run
    if eager:
        bar.set_description(f"computing {checkpoint.name}")
        bar.reset(total=len(pending))

    def send(cid):
        compute_chunk.apply_async(args=[cid], queue="gpu")
        if eager:
            bar.update(1)

    for chunk_id in pending:
        transaction.on_commit(lambda cid=chunk_id: send(cid))
    return run


def proposal_set_start(dataset, strategy=None, *, models: list[str] | None = None, user=None):
    """Check the strategy and the runs now (a refusal starts nothing), then build the proposal set in the
    background (Celery task on the default queue; ~25 s at 15,000 clips, mostly the insert). The returned
    Operation (kind "proposals") reports the outcome and links the new active set."""
    op = proposal_set_request(dataset, strategy, models=models, user=user)
    return operation_queue(op, build_proposal_set, queue="default")


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def predictions_import_task(self, operation_id: int, **kwargs) -> str:
    """Import an uploaded predictions file (CPU work: enqueued on the default queue explicitly, which overrides this
    module's route to 'gpu'); outcome and progress on the Operation."""
    return run_import_staged(operation_id, **kwargs).status


def run_import_start(
    dataset,
    name: str,
    upload,
    *,
    user=None,
    allow_unknown_clips: bool = False,
    strict: bool = False,
    input: str = "",
):
    """The predictions import of a page or the API: checked and saved now, read in the background (a Celery task,
    or without a broker a background thread); returns the Operation to follow."""
    op, kwargs = run_import_request(
        dataset, name, upload, user=user, allow_unknown_clips=allow_unknown_clips, strict=strict, input=input
    )
    return operation_queue(op, predictions_import_task, kwargs=kwargs, queue="default", background=True)
