"""Long work recorded on an Operation row. ``Progress`` writes progress of work done in one call (commands,
tasks); for work started from a page and finished by a Celery task, the request checks and creates the Operation
and the task calls ``operation_finish`` with the work to do."""

from __future__ import annotations

import logging
from typing import Callable

from django.utils import timezone

from catalog.errors import AvcrowdError
from catalog.models import Operation

log = logging.getLogger(__name__)


def operation_finish(operation_id: int, work: Callable[[Operation], tuple[str, dict]]) -> Operation:
    """Run ``work(op)`` for a running Operation and record the outcome. ``work`` returns (message, summary
    additions, e.g. {"url": the result's page}). A bad-input error fails the operation with its message, any
    other error with its type and text (the traceback goes to the log); a finished Operation (a repeated
    delivery of the task) is returned unchanged."""
    op = Operation.objects.select_related("dataset", "started_by").get(pk=operation_id)
    if op.status != Operation.RUNNING:
        return op
    summary = dict(op.summary)
    try:
        message, extra = work(op)
    except AvcrowdError as exc:
        op.status, op.message = Operation.FAILED, exc.message
    except Exception as exc:  # noqa: BLE001 - recorded for the admin
        log.exception("%s operation %s failed", op.kind, op.pk)
        op.status, op.message = Operation.FAILED, f"{type(exc).__name__}: {exc}"
    else:
        op.status, op.done, op.message = Operation.DONE, op.total or 1, message
        summary.update(extra)
    op.summary = summary
    op.finished_at = timezone.now()
    op.save(update_fields=["status", "done", "message", "summary", "finished_at"])
    return op


class Progress:
    """Writes progress to an Operation row (when given) and lines to a callback (management commands)."""

    def __init__(self, kind: str, *, dataset=None, user=None, echo=None, operation=None, record: bool = True):
        self.echo = echo
        self.op = operation
        if self.op is None and record:
            self.op = Operation.objects.create(kind=kind, dataset=dataset, started_by=user)

    def total(self, n: int):
        if self.op:
            self.op.total = n
            self.op.save(update_fields=["total"])

    def step(self, message: str = "", n: int = 1):
        if self.echo and message:
            self.echo(message)
        if self.op:
            self.op.done += n
            if message:
                self.op.message = message[:2000]
            self.op.save(update_fields=["done", "message"])

    def finish(self, summary: dict, *, failed: bool = False, message: str = ""):
        if self.op:
            self.op.status = self.op.FAILED if failed else self.op.DONE
            self.op.summary = summary
            self.op.finished_at = timezone.now()
            if message:
                self.op.message = message[:2000]
            self.op.save()
