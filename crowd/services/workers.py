"""Blocking and unblocking workers. Every change is recorded in WorkerStatusLog: who (None for the quality policy
and the requester's block list), when and why, so an unblock is audited like a block."""

from __future__ import annotations

from django.db import transaction

from catalog.errors import ValidationError
from crowd.models import Worker, WorkerStatusLog


def worker_status_record(worker: Worker, action: str, reason: str, actor=None) -> WorkerStatusLog:
    """The audit record of one block or unblock (called inside the transaction that changes the worker)."""
    return WorkerStatusLog.objects.create(worker=worker, action=action, actor=actor, reason=reason)


@transaction.atomic
def worker_block(worker: Worker, reason: str, *, actor=None) -> bool:
    """Block a worker (refused new assignments; the next sync blocks them on MTurk). False if already blocked."""
    worker = Worker.objects.select_for_update().get(pk=worker.pk)
    if worker.is_blocked:
        return False
    worker.is_blocked, worker.blocked_reason = True, reason
    worker.save(update_fields=["is_blocked", "blocked_reason"])
    worker_status_record(worker, WorkerStatusLog.BLOCKED, reason, actor)
    return True


@transaction.atomic
def worker_unblock(worker: Worker, actor, reason: str) -> bool:
    """Unblock a worker, recording the admin and the reason (with the reason it was blocked for). False, and
    nothing recorded, if the worker was not blocked."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError("type a reason to unblock: every unblock is kept in the audit log", field="reason")
    worker = Worker.objects.select_for_update().get(pk=worker.pk)
    if not worker.is_blocked:
        return False
    was = worker.blocked_reason.strip()
    worker.is_blocked, worker.blocked_reason = False, ""
    worker.save(update_fields=["is_blocked", "blocked_reason"])
    worker_status_record(worker, WorkerStatusLog.UNBLOCKED, f"{reason} (was blocked: {was})" if was else reason, actor)
    return True
