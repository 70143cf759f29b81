import uuid

from django.conf import settings
from django.db import models


class Worker(models.Model):
    """A person who annotates: identified by the marketplace (no account) or an in-house login."""

    MTURK, PROLIFIC, INHOUSE, SIMULATED = "mturk", "prolific", "inhouse", "simulated"
    BACKENDS = [
        (MTURK, "Amazon Mechanical Turk"),
        (PROLIFIC, "Prolific"),
        (INHOUSE, "In-house"),
        (SIMULATED, "Simulated"),
    ]

    backend = models.CharField(max_length=16, choices=BACKENDS)
    external_id = models.CharField(max_length=200)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="workers"
    )
    is_blocked = models.BooleanField(default=False)
    blocked_reason = models.TextField(blank=True)
    mean_catch_f1 = models.FloatField(null=True, blank=True)
    n_scored = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "annotation_worker"
        ordering = ["backend", "external_id"]
        constraints = [models.UniqueConstraint(fields=["backend", "external_id"], name="uniq_worker")]

    def __str__(self):
        return f"{self.backend}:{self.external_id}"


class Batch(models.Model):
    """A unit of work (one HIT): `dataset.batch_size` clips, some of them gold catch trials."""

    OPEN, CLOSED = "open", "closed"
    STATUSES = [(OPEN, "open"), (CLOSED, "closed")]

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    dataset = models.ForeignKey("catalog.Dataset", on_delete=models.CASCADE, related_name="batches")
    status = models.CharField(max_length=16, choices=STATUSES, default=OPEN)
    created_at = models.DateTimeField(auto_now_add=True)
    annotations_wanted = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="assignments this batch takes (adaptive overlap: one more vote on uncertain clips); "
        "empty = the dataset's annotations_per_clip",
    )

    class Meta:
        db_table = "annotation_batch"
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "batches"

    def __str__(self):
        return f"batch {self.uuid} ({self.dataset})"

    @property
    def wanted(self) -> int:
        """Assignments by distinct workers this batch takes."""
        return self.annotations_wanted or self.dataset.annotations_per_clip


class BatchItem(models.Model):
    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="items")
    clip = models.ForeignKey("catalog.Clip", on_delete=models.CASCADE, related_name="batch_items")
    position = models.PositiveSmallIntegerField()
    is_gold = models.BooleanField(default=False)
    proposals = models.JSONField(default=list, blank=True, help_text="class names proposed for this clip")

    class Meta:
        db_table = "annotation_batchitem"
        ordering = ["batch", "position"]
        constraints = [
            models.UniqueConstraint(fields=["batch", "position"], name="uniq_batch_position"),
            models.UniqueConstraint(fields=["batch", "clip"], name="uniq_batch_clip"),
        ]


class AssignmentQuerySet(models.QuerySet):
    def verified(self):
        """Work that counts: confirmed by the marketplace (a sync saw this assignment for this worker, or the
        requester's own results file listed it), or done by a logged-in in-house annotator or the simulator."""
        return self.filter(models.Q(verified_at__isnull=False) | models.Q(backend__in=Assignment.SELF_VERIFIED))

    def unverified(self):
        return self.exclude(models.Q(verified_at__isnull=False) | models.Q(backend__in=Assignment.SELF_VERIFIED))


class Assignment(models.Model):
    """One worker's attempt at one batch."""

    # backends whose work is verified by who produced it: an in-house login, the simulator
    SELF_VERIFIED = ("inhouse", "simulated")

    IN_PROGRESS, SUBMITTED, APPROVED, REJECTED = "in_progress", "submitted", "approved", "rejected"
    EXPIRED = "expired"  # not submitted within the assignment duration: the slot went back to the batch
    STATUSES = [
        (IN_PROGRESS, "in progress"),
        (SUBMITTED, "submitted"),
        (APPROVED, "approved"),
        (REJECTED, "rejected"),
        (EXPIRED, "expired"),
    ]

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="assignments")
    worker = models.ForeignKey(Worker, null=True, blank=True, on_delete=models.PROTECT, related_name="assignments")
    backend = models.CharField(max_length=16, choices=Worker.BACKENDS)
    external_assignment_id = models.CharField(max_length=200, blank=True)
    external_hit_id = models.CharField(max_length=200, blank=True)
    turk_submit_to = models.CharField(max_length=300, blank=True)
    browser_secret_hash = models.CharField(
        max_length=64,
        blank=True,
        help_text="SHA-256 of the secret issued to the browser that started the assignment (the HIT page keeps it); "
        "later sessions need it, or the same marketplace assignment id",
    )
    client_hash = models.CharField(
        max_length=64, blank=True, db_index=True, help_text="keyed hash of the address that started it (slot limits)"
    )
    expires_at = models.DateTimeField(
        null=True, blank=True, db_index=True, help_text="an in-progress assignment not submitted by then expires"
    )
    status = models.CharField(max_length=16, choices=STATUSES, default=IN_PROGRESS, db_index=True)
    position = models.PositiveSmallIntegerField(default=0, help_text="last clip the worker looked at")
    started_at = models.DateTimeField(auto_now_add=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    work_seconds = models.FloatField(null=True, blank=True)
    catch_f1 = models.FloatField(null=True, blank=True)
    catch_precision = models.FloatField(null=True, blank=True)
    catch_recall = models.FloatField(null=True, blank=True)
    decision_reason = models.TextField(blank=True)
    feedback = models.TextField(blank=True)
    verified_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="when the marketplace confirmed this assignment for this worker (a sync saw it, or the "
        "requester's results file listed it); marketplace work is approved, paid and merged only once verified",
    )

    objects = AssignmentQuerySet.as_manager()

    class Meta:
        db_table = "annotation_assignment"
        ordering = ["-started_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["batch", "worker"], name="uniq_assignment_worker_batch"),
            models.UniqueConstraint(
                fields=["backend", "external_assignment_id"],
                condition=~models.Q(external_assignment_id=""),
                name="uniq_external_assignment",
            ),
        ]

    def __str__(self):
        return f"assignment {self.uuid} ({self.status})"

    @property
    def is_verified(self) -> bool:
        return self.verified_at is not None or self.backend in self.SELF_VERIFIED


class ClipAnswer(models.Model):
    """A worker's answer for one clip of an assignment; saved on every change (idempotent upsert)."""

    assignment = models.ForeignKey(Assignment, on_delete=models.CASCADE, related_name="answers")
    clip = models.ForeignKey("catalog.Clip", on_delete=models.CASCADE, related_name="answers")
    background_music = models.BooleanField(null=True, blank=True)
    voice_over = models.BooleanField(null=True, blank=True)
    static_image = models.BooleanField(null=True, blank=True)
    played = models.BooleanField(default=False)
    watch_seconds = models.FloatField(default=0)
    labels = models.JSONField(default=list, blank=True, help_text='[{"name", "audible", "visible"}]')
    comment = models.TextField(blank=True)
    media_failed = models.BooleanField(
        default=False,
        help_text="the worker reported that the clip does not load or play; such an answer "
        "completes the clip without questions and is left out of the votes",
    )
    superseded = models.BooleanField(
        default=False,
        db_default=False,  # the autosave's raw upsert does not name this column
        help_text="the same worker answered this clip again in a later submission (two HITs of an imported "
        "results file); the later answer is the worker's one vote, this one is kept but not counted",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "annotation_clipanswer"
        constraints = [models.UniqueConstraint(fields=["assignment", "clip"], name="uniq_answer_per_clip")]


class AssignmentDecisionLog(models.Model):
    """Audit record of every approve/reject, automatic or by an admin."""

    assignment = models.ForeignKey(Assignment, on_delete=models.CASCADE, related_name="decision_log")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    old_status = models.CharField(max_length=16)
    new_status = models.CharField(max_length=16)
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "annotation_assignmentdecisionlog"
        ordering = ["-created_at", "-id"]


class WorkerStatusLog(models.Model):
    """Audit record of every block and unblock of a worker: by the quality policy or the block list (no actor) or
    by an admin (the actor), with the reason."""

    BLOCKED, UNBLOCKED = "blocked", "unblocked"
    ACTIONS = [(BLOCKED, "blocked"), (UNBLOCKED, "unblocked")]

    worker = models.ForeignKey(Worker, on_delete=models.CASCADE, related_name="status_log")
    action = models.CharField(max_length=16, choices=ACTIONS)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    reason = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.worker} {self.action}"
