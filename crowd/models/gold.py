from django.conf import settings
from django.db import models


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
