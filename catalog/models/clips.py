from decimal import Decimal

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


class Dataset(models.Model):
    """A collection of clips annotated together, with its crowd policy and budget."""

    name = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    budget_usd = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("0"))
    batch_size = models.PositiveSmallIntegerField(default=20, validators=[MinValueValidator(1)])
    gold_per_batch = models.PositiveSmallIntegerField(default=2)
    annotations_per_clip = models.PositiveSmallIntegerField(default=3, validators=[MinValueValidator(1)])
    reject_below = models.FloatField(default=0.25, validators=[MinValueValidator(0), MaxValueValidator(1)])
    block_floor = models.FloatField(default=0.25, validators=[MinValueValidator(0), MaxValueValidator(1)])
    block_after = models.PositiveSmallIntegerField(default=5)
    review_window_hours = models.PositiveIntegerField(default=0)
    bonus_cap_usd = models.DecimalField(
        max_digits=8,
        decimal_places=2,
        default=Decimal("5.00"),
        validators=[MinValueValidator(Decimal("0.01"))],
        help_text="largest bonus one assignment may get, in dollars (every bonus path checks it)",
    )
    min_hourly_wage_usd = models.DecimalField(
        max_digits=7,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0.01"))],
        help_text="the minimum hourly pay this dataset's workers should get, in dollars (e.g. your local minimum "
        "wage); publishing warns, with the numbers, when a reward pays less for the expected work time. Empty: no "
        "check beyond the US federal minimum wage of the default reward",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "annotation_dataset"
        ordering = ["name"]

    def __str__(self):
        return self.name


class Clip(models.Model):
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="clips")
    video_id = models.CharField(max_length=200)
    media = models.FileField(upload_to="clips/%Y/%m/", blank=True)
    media_url = models.CharField(
        max_length=1000, blank=True, help_text="http(s):// or s3:// URL, or an absolute local path"
    )
    duration = models.FloatField(null=True, blank=True)
    has_audio = models.BooleanField(default=True)
    has_video = models.BooleanField(default=True)
    is_gold = models.BooleanField(default=False, db_index=True)
    original_labels = models.ManyToManyField("catalog.TaxonomyClass", blank=True, related_name="original_clips")
    created_at = models.DateTimeField(auto_now_add=True)
    accepted_answers = models.PositiveIntegerField(
        default=0,
        db_default=0,  # bulk imports (COPY) do not name this column
        help_text="approved annotations of this clip (approved assignments' answers that are not a media-failure "
        "report); kept by crowd.services.progress in the transaction that approves, rejects or re-decides",
    )

    class Meta:
        db_table = "annotation_clip"
        ordering = ["dataset", "video_id"]
        constraints = [models.UniqueConstraint(fields=["dataset", "video_id"], name="uniq_clip_per_dataset")]
        indexes = [models.Index(fields=["dataset", "is_gold", "accepted_answers"], name="clip_accepted_idx")]

    def __str__(self):
        return self.video_id
