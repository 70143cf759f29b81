"""Model checkpoints, model runs (the prediction store), proposal sets and proposals."""

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models

# A model name as its authors spell it (gemini-1.5-flash, qwen2.5-omni): letters, digits, '.', '-', '_'.
MODEL_NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
model_name_validator = RegexValidator(
    MODEL_NAME_RE,
    "a model name is 1-100 characters: letters, digits, '.', '-' and '_', starting with a letter or digit",
)

ARCHITECTURES = [("cavmae", "CAV-MAE"), ("leap", "LEAP"), ("crab", "Crab")]


class ModelCheckpoint(models.Model):
    """A model registered from a local weights path (architecture + config preset/overrides)."""

    name = models.SlugField(max_length=100, unique=True)
    architecture = models.CharField(max_length=32, choices=ARCHITECTURES)
    path = models.CharField(
        max_length=1000, blank=True, help_text="local path of the weights (.pth / directory); empty = random init"
    )
    config = models.JSONField(default=dict, blank=True, help_text='models_zoo config: {"preset": "base", ...overrides}')
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return f"{self.name} ({self.architecture})"


class ModelRun(models.Model):
    """Predictions of one model (a registered checkpoint, or an external name for imported
    predictions) on one dataset. The scores live in ``artifact``: an .npz with ``video_ids``
    and, per input modality m in a/v/av, ``scores_<m>`` float32 [n, 309] and/or ``labels_<m>``
    bool [n, 309]."""

    PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"
    STATUSES = [(PENDING, "pending"), (RUNNING, "running"), (DONE, "done"), (FAILED, "failed")]
    SCORES, LABELS = "scores", "labels"
    KINDS = [(SCORES, "scores"), (LABELS, "label sets")]

    dataset = models.ForeignKey("catalog.Dataset", on_delete=models.CASCADE, related_name="model_runs")
    checkpoint = models.ForeignKey(
        ModelCheckpoint, null=True, blank=True, on_delete=models.PROTECT, related_name="runs"
    )
    external_name = models.CharField(
        max_length=100,
        blank=True,
        validators=[model_name_validator],
        help_text="name of a model run elsewhere (imported predictions), kept as given: gemini-1.5-flash",
    )
    kind = models.CharField(max_length=8, choices=KINDS, default=SCORES)
    status = models.CharField(max_length=16, choices=STATUSES, default=PENDING, db_index=True)
    modalities = models.JSONField(default=list, blank=True)
    artifact = models.FileField(upload_to="predictions/", blank=True)
    chunk_size = models.PositiveIntegerField(default=256)
    n_clips = models.PositiveIntegerField(default=0)
    n_done = models.PositiveIntegerField(default=0)
    clips_per_s = models.FloatField(null=True, blank=True)
    errors = models.JSONField(default=list, blank=True, help_text='[{"video_id", "error"}]')
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["dataset", "-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["checkpoint", "dataset"],
                condition=models.Q(checkpoint__isnull=False),
                name="uniq_run_per_checkpoint_dataset",
            ),
            models.UniqueConstraint(
                fields=["external_name", "dataset"],
                condition=~models.Q(external_name=""),
                name="uniq_run_per_external_name_dataset",
            ),
            models.CheckConstraint(
                condition=(models.Q(checkpoint__isnull=False) & models.Q(external_name=""))
                | (models.Q(checkpoint__isnull=True) & ~models.Q(external_name="")),
                name="run_has_checkpoint_xor_external_name",
            ),
        ]

    def __str__(self):
        return f"{self.model_name} on {self.dataset_id and self.dataset.name}"

    @property
    def model_name(self) -> str:
        return self.checkpoint.name if self.checkpoint_id else self.external_name

    @property
    def progress(self) -> float:
        return (self.n_done / self.n_clips) if self.n_clips else 0.0

    def clean(self):
        if bool(self.checkpoint_id) == bool(self.external_name):
            raise ValidationError("a model run names either a checkpoint or an external model name, not both")


class RunChunk(models.Model):
    """One unit of GPU work: a slice of a run's clips. Its result is stored on its own, so a chunk
    that is redone (a killed worker, acks_late) overwrites itself and nothing is counted twice."""

    PENDING, DONE = "pending", "done"

    run = models.ForeignKey(ModelRun, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField()
    video_ids = models.JSONField(default=list)
    status = models.CharField(max_length=16, default=PENDING, db_index=True)
    artifact = models.FileField(upload_to="predictions/chunks/", blank=True)
    n_done = models.PositiveIntegerField(default=0)
    seconds = models.FloatField(null=True, blank=True)
    errors = models.JSONField(default=list, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["run", "index"]
        constraints = [models.UniqueConstraint(fields=["run", "index"], name="uniq_chunk_per_run")]

    def __str__(self):
        return f"{self.run} chunk {self.index}"


class ProposalSet(models.Model):
    """The proposals of one strategy on one dataset; at most one active set per dataset."""

    dataset = models.ForeignKey("catalog.Dataset", on_delete=models.CASCADE, related_name="proposal_sets")
    strategy = models.JSONField(default=dict)
    runs = models.ManyToManyField(ModelRun, blank=True, related_name="proposal_sets")
    active = models.BooleanField(default=False)
    evaluation = models.JSONField(default=dict, blank=True)
    n_proposals = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["dataset", "-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["dataset"], condition=models.Q(active=True), name="one_active_proposal_set_per_dataset"
            )
        ]

    def __str__(self):
        return f"proposal set {self.pk} of {self.dataset_id and self.dataset.name}" + (
            " (active)" if self.active else ""
        )


class Proposal(models.Model):
    # A set is millions of rows written once by COPY (proposals.services.proposal_set_create). Per-row work there
    # is kept to the clip's index (clip deletion cascades by clip_id, through Django). No key has a database
    # constraint: each is a query per row at commit (the clip's took 13 s of a 38 s set at 10x). The set is created
    # in the same transaction (no one else can delete it before the rows are committed); classes are never deleted
    # while referenced (PROTECT, checked by Django); the dataset's clips are locked once, FOR KEY SHARE, in the
    # set's transaction, which is what each row's key check did (a clip deleted before the lock refuses the set;
    # one deleted after it waits for the set's commit, then Django deletes its proposals with it);
    # uniq_proposal (proposal_set, clip, cls) serves every lookup by set.
    proposal_set = models.ForeignKey(
        ProposalSet, on_delete=models.CASCADE, related_name="proposals", db_index=False, db_constraint=False
    )
    clip = models.ForeignKey("catalog.Clip", on_delete=models.CASCADE, related_name="proposals", db_constraint=False)
    cls = models.ForeignKey(
        "catalog.TaxonomyClass", on_delete=models.PROTECT, related_name="proposals", db_index=False, db_constraint=False
    )
    provenance = models.JSONField(default=list, help_text='[{"rule", "model", "modality"}]')

    class Meta:
        ordering = ["proposal_set", "clip", "cls__index"]
        constraints = [models.UniqueConstraint(fields=["proposal_set", "clip", "cls"], name="uniq_proposal")]

    def __str__(self):
        return f"{self.clip_id}: {self.cls_id}"
