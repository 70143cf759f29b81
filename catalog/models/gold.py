"""The gold standard: the reference labels of a dataset's gold clips (imported, or the majority of in-house experts,
whose annotations live in the crowd app). Read by proposal evaluation, catch-trial scoring and merging."""

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
