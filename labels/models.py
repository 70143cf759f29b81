"""Label-set releases: immutable, versioned, merged (or imported) label sets with their provenance."""

from django.conf import settings
from django.db import models

__all__ = ["Release", "ReleaseClip", "ReleaseLabel", "ReleaseExport", "ImmutableReleaseError"]


class ImmutableReleaseError(Exception):
    """Raised when code tries to change a stored release (releases are immutable; create a new one)."""


class _Immutable(models.Model):
    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if self.pk is not None and not kwargs.pop("_allow_update", False):
            raise ImmutableReleaseError(
                f"{type(self).__name__} {self.pk} is part of a release and cannot be "
                "changed; create a new release instead"
            )
        super().save(*args, **kwargs)


class Release(_Immutable):
    MAJORITY, WEIGHTED, DAWID_SKENE, IMPORT = "majority", "weighted", "dawid_skene", "import"
    METHODS = [
        (MAJORITY, "top-k majority"),
        (WEIGHTED, "gold-F1-weighted voting"),
        (DAWID_SKENE, "Dawid-Skene (gold clamped)"),
        ("shrunk_ds", "Dawid-Skene with shrinkage (per-class priors)"),
        ("modality_ds", "Dawid-Skene over modality (none/A/V/AV), shrunk"),
        (IMPORT, "imported file"),
    ]

    dataset = models.ForeignKey("catalog.Dataset", on_delete=models.CASCADE, related_name="releases")
    name = models.CharField(max_length=100)
    method = models.CharField(max_length=16, choices=METHODS)
    params = models.JSONField(default=dict, blank=True)
    imported = models.BooleanField(default=False)
    source_file = models.CharField(max_length=500, blank=True, help_text="file name of an imported release")
    source_counts = models.JSONField(default=dict, blank=True, help_text="annotations, workers, experts used")
    stats = models.JSONField(default=dict, blank=True, help_text="summary statistics and agreement")
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="releases"
    )

    class Meta:
        db_table = "annotation_release"
        ordering = ["dataset", "-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["dataset", "name"], name="uniq_release_name")]

    def __str__(self):
        return f"{self.dataset.name}/{self.name}"


class ReleaseClip(_Immutable):
    # no index of its own: uniq_release_clip (release, video_id) serves every lookup by release, and one index fewer
    # is maintained while a release's 150k clips are written
    # Release rows are written once, in bulk, by labels.services.create._store, which checks their references with
    # one set-based query per release (_check_references); no per-row foreign-key triggers in the database (at 150k
    # clips they cost ~15 s of database CPU per release, locking the referenced rows 900k times). Deletes cascade
    # / set null through Django's collector as before.
    release = models.ForeignKey(
        Release, on_delete=models.CASCADE, related_name="clips", db_index=False, db_constraint=False
    )
    video_id = models.CharField(max_length=200)
    clip = models.ForeignKey(
        "catalog.Clip",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="release_clips",
        db_constraint=False,
    )
    background_music = models.BooleanField(default=False)
    voice_over = models.BooleanField(default=False)
    static_image = models.BooleanField(default=False)
    order = models.PositiveIntegerField()

    class Meta:
        db_table = "annotation_releaseclip"
        ordering = ["release", "order"]
        constraints = [models.UniqueConstraint(fields=["release", "video_id"], name="uniq_release_clip")]


ORIGIN_SEPARATOR = "|"  # between the classes an auto-added label came from (ReleaseLabel.origin_source)


class ReleaseLabel(_Immutable):
    HUMAN, AUTO, OVERRIDE = "human", "auto", "override"
    ORIGINS = [(HUMAN, "human majority"), (AUTO, "auto-added (synonym/superclass)"), (OVERRIDE, "in-house override")]
    MODALITIES = [("A", "audible"), ("V", "visible"), ("AV", "audible and visible")]

    # no indexes of their own: release_label_order (release, order) and uniq_release_label (release_clip, cls) lead
    # with these columns (two indexes fewer to maintain while a release's 370k labels are written)
    # like ReleaseClip: references checked once per release by _store, not by per-row triggers
    release = models.ForeignKey(
        Release, on_delete=models.CASCADE, related_name="labels", db_index=False, db_constraint=False
    )
    release_clip = models.ForeignKey(
        ReleaseClip, on_delete=models.CASCADE, related_name="labels", db_index=False, db_constraint=False
    )
    cls = models.ForeignKey(
        "catalog.TaxonomyClass", on_delete=models.PROTECT, related_name="release_labels", db_constraint=False
    )
    name = models.CharField(max_length=200, help_text="class name (denormalised for fast exports)")
    modality = models.CharField(max_length=2, choices=MODALITIES)
    origin = models.CharField(max_length=16, choices=ORIGINS, default=HUMAN)
    origin_source = models.CharField(
        max_length=500,
        blank=True,
        help_text="auto: the class(es) it was added from, '|'-separated; override: where the in-house labels came from",
    )
    order = models.PositiveIntegerField(help_text="row order in the release's exports")

    class Meta:
        db_table = "annotation_releaselabel"
        ordering = ["release", "order"]
        constraints = [models.UniqueConstraint(fields=["release_clip", "cls"], name="uniq_release_label")]
        indexes = [models.Index(fields=["release", "order"], name="release_label_order")]


class ReleaseExport(models.Model):
    """A background export of a release to a file (for large releases), with progress."""

    PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"
    STATUSES = [(PENDING, "pending"), (RUNNING, "running"), (DONE, "done"), (FAILED, "failed")]

    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="exports")
    format = models.CharField(max_length=32)
    include_background_music = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=STATUSES, default=PENDING)
    rows_total = models.PositiveIntegerField(default=0)
    rows_done = models.PositiveIntegerField(default=0)
    file = models.FileField(upload_to="exports/%Y/%m/", blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        db_table = "annotation_releaseexport"
        ordering = ["-created_at", "-id"]

    @property
    def progress(self) -> float:
        return 1.0 if self.status == self.DONE else (self.rows_done / self.rows_total if self.rows_total else 0.0)
