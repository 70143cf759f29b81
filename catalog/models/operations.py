"""Long-running operations (publish, sync, import, release, proposal set) with their progress and summary."""

from django.conf import settings
from django.db import models


class Operation(models.Model):
    """A long operation (publish, sync, import, release creation, building a proposal set) with its progress and
    final summary."""

    PUBLISH, SYNC, IMPORT, RELEASE, PROPOSALS = "publish", "sync", "import", "release", "proposals"
    KINDS = [
        (PUBLISH, "publish"),
        (SYNC, "sync"),
        (IMPORT, "import"),
        (RELEASE, "release"),
        (PROPOSALS, "proposal set"),
    ]
    RUNNING, DONE, FAILED = "running", "done", "failed"
    STATUSES = [(RUNNING, "running"), (DONE, "done"), (FAILED, "failed")]

    kind = models.CharField(max_length=16, choices=KINDS)
    dataset = models.ForeignKey("catalog.Dataset", null=True, blank=True, on_delete=models.SET_NULL)
    status = models.CharField(max_length=16, choices=STATUSES, default=RUNNING)
    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    message = models.TextField(blank=True)
    summary = models.JSONField(default=dict, blank=True)
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # the last sign of life of the process doing the work (None: no worker has picked it up yet)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # how the work was queued, so that a failed run can be retried: {"task", "kwargs", "queue", "summary"}
    queued = models.JSONField(default=dict, blank=True)
    retry_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="retries")

    class Meta:
        db_table = "annotation_operation"
        ordering = ["-started_at", "-id"]

    @property
    def can_retry(self) -> bool:
        """A failed operation that was queued as a task (not a command's) and was not retried yet."""
        return self.status == self.FAILED and bool(self.queued.get("task")) and not self.retries.exists()

    @property
    def percent(self) -> int:
        return int(100 * self.done / self.total) if self.total else (100 if self.status != self.RUNNING else 0)
