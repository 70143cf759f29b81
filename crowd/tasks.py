"""Celery tasks of the crowd (review window, marketplaces), and the helpers that start them: thin, idempotent,
acks_late, retried with backoff; the work is in services.

Beat: `marketplace_sync_task` every 5 minutes (see docs/operations.md for the CELERY_BEAT_SCHEDULE entry).
"""

from decimal import Decimal

from celery import shared_task

from catalog.models import Dataset, Operation
from catalog.services.operations import (
    OperationFinished,
    operation_guard,
    operation_queue,
    operation_running,
    operations_fail_stale,
)
from crowd.models import Batch
from crowd.services.assignments import assignments_approve_due
from crowd.services.binding import assignments_expire
from crowd.services.publish import batches_publish, publish_check
from crowd.services.steps import gold_import_request, gold_import_staged
from crowd.services.sync import marketplace_sync

RETRY = dict(
    bind=True,
    acks_late=True,
    autoretry_for=(OSError,),
    retry_backoff=True,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=5,
)


@shared_task(**RETRY)
def marketplace_sync_task(self, dataset_id: int | None = None, operation_id: int | None = None) -> dict:
    """Sync every open HIT / study (optionally of one dataset). Safe to run concurrently with itself: decisions
    already pushed are recorded per assignment, create calls carry UniqueRequestTokens. A periodic run (no
    operation) is skipped while another sync is running; a sync whose worker or command died stops counting as
    running once it is failed as stale (catalog.services.operations), so it cannot block the schedule."""
    if operation_id is None:
        operations_fail_stale()
        if Operation.objects.filter(kind=Operation.SYNC, status=Operation.RUNNING).exists():
            return {"skipped": "another sync is still running"}  # beat fired while a long sync is going on
    try:
        op = operation_running(operation_id)
    except OperationFinished as exc:
        return {"skipped": str(exc)}
    dataset = Dataset.objects.filter(pk=dataset_id).first() if dataset_id else None
    with operation_guard(operation_id):
        return marketplace_sync(dataset=dataset, operation=op)


@shared_task(**RETRY)
def batches_publish_task(
    self,
    dataset_id: int,
    *,
    count: int | None = None,
    batch_ids: list[int] | None = None,
    backend: str = "mturk",
    sandbox: bool = True,
    mode: str = "external",
    reward: str | None = None,
    operation_id: int | None = None,
) -> dict:
    """Publish batches (re-running it after a crash re-sends the same UniqueRequestTokens: no double posting)."""
    try:
        op = operation_running(operation_id)
    except OperationFinished as exc:
        return {"skipped": str(exc)}
    dataset = Dataset.objects.get(pk=dataset_id)
    batches = list(Batch.objects.filter(pk__in=batch_ids)) if batch_ids else None
    with operation_guard(operation_id):
        result = batches_publish(
            dataset,
            count=count,
            batches=batches,
            backend=backend,
            sandbox=sandbox,
            mode=mode,
            reward=Decimal(reward) if reward else None,
            operation=op,
        )
    return result.summary()


def marketplace_sync_start(dataset, user):
    """Record a sync Operation and queue the sync once the transaction commits; returns the Operation (failed
    at once with the reason if the broker cannot take the task)."""
    op = Operation.objects.create(kind=Operation.SYNC, dataset=dataset, started_by=user)
    return operation_queue(op, marketplace_sync_task, kwargs={"dataset_id": dataset.pk if dataset else None})


def batches_publish_start(plan, *, reward, user):
    """Record a publish Operation for a checked PublishPlan and queue the publishing of its batches once the
    transaction commits; `reward` is the one asked for (None = the default). Returns the Operation (failed at
    once with the reason if the broker cannot take the task). What would fail for sure (an http PUBLIC_BASE_URL
    for an ExternalQuestion) is refused here with a ValidationError, and nothing is recorded."""
    publish_check(plan)
    op = Operation.objects.create(kind=Operation.PUBLISH, dataset=plan.dataset, started_by=user, total=len(plan.hits))
    kwargs = dict(
        dataset_id=plan.dataset.pk,
        batch_ids=[p.batch.pk for p in plan.hits],
        backend=plan.backend,
        sandbox=plan.sandbox,
        mode=plan.mode,
        reward=str(reward) if reward else None,
    )
    return operation_queue(op, batches_publish_task, kwargs=kwargs)


@shared_task(acks_late=True)
def assignments_approve_due_task() -> int:
    """Approve submitted assignments whose dataset review window has passed (Celery beat, hourly)."""
    return assignments_approve_due()


@shared_task(acks_late=True)
def assignments_expire_task() -> int:
    """Expire in-progress assignments past their HIT's assignment duration, freeing their slots (beat, every
    minute; a session start of a batch also expires that batch's)."""
    return assignments_expire()


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def gold_import_task(self, operation_id: int, **kwargs) -> str:
    """Import an uploaded gold CSV and re-score the catch trials; outcome and progress on the Operation."""
    return gold_import_staged(operation_id, **kwargs).status


def gold_import_start(dataset, upload, *, user=None, decide: bool = False) -> Operation:
    """The gold import of a page or the API: saved now, imported in the background (a Celery task, or without a
    broker a background thread); returns the Operation to follow."""
    op, kwargs = gold_import_request(dataset, upload, user=user, decide=decide)
    return operation_queue(op, gold_import_task, kwargs=kwargs, queue="default", background=True)
