"""Metric reports: one run of the VGGSounder benchmark (labels x model predictions) and its output files."""

from django.conf import settings
from django.db import models

__all__ = ["MetricReport"]


class MetricReport(models.Model):
    """A benchmark report. ``params`` records what was asked (labels, predictions, regime, ...);
    ``files`` maps output file names (report.json, tables, figures) to storage paths."""

    PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"
    STATUSES = [(PENDING, "pending"), (RUNNING, "running"), (DONE, "done"), (FAILED, "failed")]
    REGIMES = [("default", "default (without background music)"), ("all", "all clips")]
    CONFUSIONS = [("v1.0", "v1.0"), ("pre-v1.0", "pre-v1.0")]

    title = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=16, choices=STATUSES, default=PENDING, db_index=True)
    params = models.JSONField(
        default=dict, blank=True, help_text='{"labels": {...}, "predictions": [...], "regime", "confusion", "meta"}'
    )
    files = models.JSONField(default=dict, blank=True, help_text="file name -> storage path")
    summary = models.JSONField(default=dict, blank=True, help_text="models, clips and the paper table")
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="metric_reports"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "annotation_metricreport"
        ordering = ["-created_at"]

    def __str__(self):
        return f"report {self.pk}" + (f" ({self.title})" if self.title else "") + f" [{self.status}]"

    @property
    def storage_prefix(self) -> str:
        return f"reports/{self.pk}"
