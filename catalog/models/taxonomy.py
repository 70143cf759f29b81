from django.db import models


class TaxonomyClass(models.Model):
    """One class of the dataset's fixed class list. `index` is the logit column: the one source of truth."""

    index = models.PositiveIntegerField(unique=True)
    name = models.CharField(max_length=200, unique=True)
    mid = models.CharField(max_length=64, blank=True)

    class Meta:
        db_table = "annotation_taxonomyclass"
        ordering = ["index"]
        verbose_name = "class"
        verbose_name_plural = "classes"

    def __str__(self):
        return f"{self.index}: {self.name}"


class MetaLabel(models.Model):
    """Clip-level meta labels asked on every clip (background music, voice over, static image)."""

    key = models.SlugField(max_length=64, unique=True)
    question = models.CharField(max_length=300)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        db_table = "annotation_metalabel"
        ordering = ["position"]

    def __str__(self):
        return self.key


class ClassRelation(models.Model):
    SYNONYM = "synonym"
    SUPERCLASS = "superclass"
    KINDS = [(SYNONYM, "synonym (symmetric)"), (SUPERCLASS, "superclass (source implies target)")]

    kind = models.CharField(max_length=16, choices=KINDS)
    source = models.ForeignKey(TaxonomyClass, on_delete=models.CASCADE, related_name="relations_out")
    target = models.ForeignKey(TaxonomyClass, on_delete=models.CASCADE, related_name="relations_in")

    class Meta:
        db_table = "annotation_classrelation"
        ordering = ["kind", "source__index", "target__index"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "source", "target"], name="uniq_class_relation"),
            models.CheckConstraint(condition=~models.Q(source=models.F("target")), name="relation_not_self"),
        ]

    def __str__(self):
        arrow = "<->" if self.kind == self.SYNONYM else "->"
        return f"{self.source.name} {arrow} {self.target.name}"
