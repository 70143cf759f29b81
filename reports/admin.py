from django.contrib import admin

from reports.models import MetricReport


@admin.register(MetricReport)
class MetricReportAdmin(admin.ModelAdmin):
    list_display = ("id", "title", "status", "created_by", "created_at", "finished_at")
    list_filter = ("status",)
    search_fields = ("title",)
    readonly_fields = ("params", "files", "summary", "error", "created_by", "created_at", "started_at", "finished_at")
