"""Progress records of long operations (publish, sync, import), shown on the operations dashboard."""
from __future__ import annotations

from django.utils import timezone


class Progress:
    """Writes progress to an Operation row (when given) and lines to a callback (management commands)."""

    def __init__(self, kind: str, *, dataset=None, user=None, echo=None, operation=None, record: bool = True):
        from annotation.models import Operation

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
