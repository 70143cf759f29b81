"""Celery tasks of the crowd (review window, marketplaces), and the helpers that start them: thin, idempotent,
acks_late, retried with backoff; the work is in services.

Beat: `marketplace_sync_task` every 5 minutes (see docs/operations.md for the CELERY_BEAT_SCHEDULE entry).
"""

import datetime as dt
from decimal import Decimal

from celery import shared_task
from django.db import transaction
from django.utils import timezone

from catalog.models import Dataset, Operation
from crowd.models import Batch
from crowd.services.assignments import assignments_approve_due
from crowd.services.publish import batches_publish
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
    already pushed are recorded per assignment, create calls carry UniqueRequestTokens."""
    if (
        operation_id is None
        and Operation.objects.filter(
            kind=Operation.SYNC, status=Operation.RUNNING, started_at__gte=timezone.now() - dt.timedelta(minutes=15)
        ).exists()
    ):
        return {"skipped": "another sync is still running"}  # beat fired while a long sync is going on
    dataset = Dataset.objects.filter(pk=dataset_id).first() if dataset_id else None
    op = Operation.objects.filter(pk=operation_id).first() if operation_id else None
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
    dataset = Dataset.objects.get(pk=dataset_id)
    batches = list(Batch.objects.filter(pk__in=batch_ids)) if batch_ids else None
    op = Operation.objects.filter(pk=operation_id).first() if operation_id else None
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
    """Record a sync Operation and queue the sync once the transaction commits; returns the Operation."""
    op = Operation.objects.create(kind=Operation.SYNC, dataset=dataset, started_by=user)
    transaction.on_commit(lambda: marketplace_sync_task.delay(dataset.pk if dataset else None, op.pk))
    return op


def batches_publish_start(plan, *, reward, user):
    """Record a publish Operation for a checked PublishPlan and queue the publishing of its batches once the
    transaction commits; `reward` is the one asked for (None = the default). Returns the Operation."""
    op = Operation.objects.create(kind=Operation.PUBLISH, dataset=plan.dataset, started_by=user, total=len(plan.hits))
    transaction.on_commit(
        lambda: batches_publish_task.delay(
            plan.dataset.pk,
            batch_ids=[p.batch.pk for p in plan.hits],
            backend=plan.backend,
            sandbox=plan.sandbox,
            mode=plan.mode,
            reward=str(reward) if reward else None,
            operation_id=op.pk,
        )
    )
    return op


@shared_task(acks_late=True)
def assignments_approve_due_task() -> int:
    """Approve submitted assignments whose dataset review window has passed (Celery beat, hourly)."""
    return assignments_approve_due()
