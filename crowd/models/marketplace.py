"""Marketplace records: HITs (MTurk) / studies (Prolific) / in-house tasks per batch, the marketplace's view of each
assignment, the log of every marketplace call, bonuses and worker blocks."""

from django.conf import settings
from django.db import models

__all__ = [
    "Hit",
    "HitAssignment",
    "MarketplaceCall",
    "Bonus",
    "WorkerBlock",
    "MarketplaceQualification",
    "ProlificStudy",
    "InhouseTask",
]


class Hit(models.Model):
    """One batch published on one marketplace (an MTurk HIT or a Prolific study)."""

    MTURK, PROLIFIC = "mturk", "prolific"
    BACKENDS = [(MTURK, "Amazon Mechanical Turk"), (PROLIFIC, "Prolific")]
    EXTERNAL, HTML = "external", "html"
    MODES = [(EXTERNAL, "ExternalQuestion (our HIT page)"), (HTML, "HTMLQuestion (self-contained crowd-form)")]
    PENDING, OPEN, COMPLETED, EXPIRED, FAILED = "pending", "open", "completed", "expired", "failed"
    STATUSES = [
        (PENDING, "pending (create call not confirmed)"),
        (OPEN, "open"),
        (COMPLETED, "completed"),
        (EXPIRED, "expired"),
        (FAILED, "failed"),
    ]

    batch = models.ForeignKey("crowd.Batch", on_delete=models.CASCADE, related_name="hits")
    backend = models.CharField(max_length=16, choices=BACKENDS, default=MTURK)
    external_id = models.CharField(max_length=200, blank=True, db_index=True, help_text="HITId / study id")
    hit_type_id = models.CharField(max_length=200, blank=True)
    sandbox = models.BooleanField(default=True)
    mode = models.CharField(max_length=16, choices=MODES, default=EXTERNAL)
    masters = models.BooleanField(default=False, help_text="Masters required (adds 5 % to MTurk's fee)")
    reward = models.DecimalField(max_digits=8, decimal_places=2)
    max_assignments = models.PositiveIntegerField(help_text="assignments posted so far (incl. re-posts)")
    target_assignments = models.PositiveIntegerField(help_text="accepted assignments wanted")
    reposted = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=16, choices=STATUSES, default=PENDING, db_index=True)
    lifetime_seconds = models.PositiveIntegerField(default=7 * 24 * 3600)
    assignment_duration_seconds = models.PositiveIntegerField(default=3600)
    auto_approval_delay_seconds = models.PositiveIntegerField(default=3 * 24 * 3600)
    expires_at = models.DateTimeField(null=True, blank=True)
    unique_request_token = models.CharField(max_length=64, unique=True)
    attempt = models.PositiveIntegerField(default=1)
    title = models.CharField(max_length=200, blank=True)
    imported = models.BooleanField(
        default=False, help_text="recorded from a results file: the work was done elsewhere; never published again"
    )
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "annotation_hit"
        ordering = ["-created_at", "-id"]
        verbose_name = "HIT / study"

    def __str__(self):
        env = "sandbox" if self.sandbox else "production"
        return f"{self.backend} {self.external_id or '(pending)'} [{env}] batch {self.batch.uuid}"


class HitAssignment(models.Model):
    """The marketplace's view of one assignment, and what we already pushed back to it."""

    hit = models.ForeignKey(Hit, on_delete=models.CASCADE, related_name="marketplace_assignments")
    assignment = models.ForeignKey(
        "crowd.Assignment", null=True, blank=True, on_delete=models.SET_NULL, related_name="marketplace_records"
    )
    external_id = models.CharField(max_length=200, help_text="AssignmentId / Prolific submission id")
    worker_external_id = models.CharField(max_length=200)
    remote_status = models.CharField(max_length=32, help_text="status on the marketplace at the last sync")
    decision_pushed = models.CharField(max_length=16, blank=True, help_text="approved / rejected once sent")
    reposted = models.BooleanField(default=False)
    submitted_at = models.DateTimeField(null=True, blank=True)
    answer_xml = models.TextField(blank=True)
    error = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "annotation_hitassignment"
        ordering = ["hit", "id"]
        constraints = [models.UniqueConstraint(fields=["hit", "external_id"], name="uniq_hit_assignment")]


class MarketplaceCall(models.Model):
    """Every call to a marketplace API, each retry attempt included."""

    backend = models.CharField(max_length=16)
    operation = models.CharField(max_length=64)
    sandbox = models.BooleanField(default=True)
    hit = models.ForeignKey(Hit, null=True, blank=True, on_delete=models.SET_NULL, related_name="calls")
    request = models.JSONField(default=dict)
    response = models.JSONField(default=dict, blank=True)
    ok = models.BooleanField(default=True)
    error_code = models.CharField(max_length=100, blank=True)
    error_message = models.TextField(blank=True)
    attempt = models.PositiveSmallIntegerField(default=1)
    duration_ms = models.FloatField(default=0)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        db_table = "annotation_marketplacecall"
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.backend}.{self.operation} {'ok' if self.ok else self.error_code}"


class Bonus(models.Model):
    PENDING, SENDING, PAID, FAILED = "pending", "sending", "paid", "failed"
    STATUSES = [
        (PENDING, "pending"),
        (SENDING, "sending (payment sent, outcome unknown: check the marketplace before paying again)"),
        (PAID, "paid"),
        (FAILED, "failed"),
    ]

    assignment = models.ForeignKey("crowd.Assignment", on_delete=models.CASCADE, related_name="bonuses")
    amount = models.DecimalField(max_digits=8, decimal_places=2)
    reason = models.TextField()
    status = models.CharField(max_length=16, choices=STATUSES, default=PENDING, db_index=True)
    unique_request_token = models.CharField(max_length=64, unique=True)
    idempotency_key = models.CharField(
        max_length=200,
        null=True,
        blank=True,
        unique=True,
        help_text="the client's key (or one derived from assignment, amount and reason): a repeated request "
        "returns this bonus instead of paying twice",
    )
    external_id = models.CharField(max_length=200, blank=True, help_text="Prolific bulk bonus payment id")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    paid_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "annotation_bonus"
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "bonuses"


class WorkerBlock(models.Model):
    """A worker blocked on a marketplace (CreateWorkerBlock + our 'blocked' qualification)."""

    worker = models.ForeignKey("crowd.Worker", on_delete=models.CASCADE, related_name="marketplace_blocks")
    sandbox = models.BooleanField(default=True)
    reason = models.TextField()
    pushed = models.BooleanField(default=False)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "annotation_workerblock"
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["worker", "sandbox"], name="uniq_worker_block")]


class MarketplaceQualification(models.Model):
    """Our own MTurk qualification types (e.g. the one given to workers we blocked), per environment."""

    BLOCKED = "blocked"
    sandbox = models.BooleanField(default=True)
    purpose = models.CharField(max_length=32, default=BLOCKED)
    qualification_type_id = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "annotation_marketplacequalification"
        constraints = [models.UniqueConstraint(fields=["sandbox", "purpose"], name="uniq_marketplace_qual")]


class ProlificStudy(models.Model):
    """Prolific-specific fields of a Hit with backend=prolific."""

    hit = models.OneToOneField(Hit, on_delete=models.CASCADE, related_name="prolific")
    completion_code = models.CharField(max_length=64)
    internal_name = models.CharField(max_length=200, blank=True)
    remote_status = models.CharField(max_length=32, blank=True)

    class Meta:
        db_table = "annotation_prolificstudy"


class InhouseTask(models.Model):
    """A batch assigned by an admin to a named in-house annotator."""

    batch = models.ForeignKey("crowd.Batch", on_delete=models.CASCADE, related_name="inhouse_tasks")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="inhouse_tasks")
    assigned_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "annotation_inhousetask"
        ordering = ["created_at", "id"]
        constraints = [models.UniqueConstraint(fields=["batch", "user"], name="uniq_inhouse_task")]
