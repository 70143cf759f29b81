from django.conf import settings
from django.db import models


class GoldLabel(models.Model):
    """The gold standard: one row per (clip, class) that the experts (or an import) decided on."""

    MODALITIES = [("A", "audible"), ("V", "visible"), ("AV", "audible and visible"), ("-", "not present")]
    SOURCES = [("import", "imported"), ("experts", "expert majority")]

    clip = models.ForeignKey("catalog.Clip", on_delete=models.CASCADE, related_name="gold_labels")
    cls = models.ForeignKey("catalog.TaxonomyClass", on_delete=models.PROTECT, related_name="gold_labels")
    modality = models.CharField(max_length=2, choices=MODALITIES)
    original = models.BooleanField(default=False, help_text="the clip's original dataset label")
    source = models.CharField(max_length=16, choices=SOURCES, default="import")

    class Meta:
        db_table = "annotation_goldlabel"
        ordering = ["clip", "cls__index"]
        constraints = [models.UniqueConstraint(fields=["clip", "cls"], name="uniq_gold_label")]


class ExpertAnnotation(models.Model):
    """An in-house expert's full-class-list annotation of one clip."""

    clip = models.ForeignKey("catalog.Clip", on_delete=models.CASCADE, related_name="expert_annotations")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="expert_annotations")
    background_music = models.BooleanField(null=True, blank=True)
    voice_over = models.BooleanField(null=True, blank=True)
    static_image = models.BooleanField(null=True, blank=True)
    labels = models.JSONField(default=list, blank=True, help_text='[{"name", "audible", "visible"}]')
    original_present = models.BooleanField(null=True, blank=True)
    original_audible = models.BooleanField(null=True, blank=True)
    original_visible = models.BooleanField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "annotation_expertannotation"
        constraints = [models.UniqueConstraint(fields=["clip", "user"], name="uniq_expert_annotation")]
