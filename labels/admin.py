"""Admin for releases: read-only (releases are immutable; create them with release_create / import_labels)."""

from django.contrib import admin

from labels.models import Release, ReleaseClip, ReleaseExport, ReleaseLabel


class _ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Release)
class ReleaseAdmin(_ReadOnly):
    list_display = ("name", "dataset", "method", "imported", "created_at", "created_by")
    list_filter = ("dataset", "method", "imported")
    search_fields = ("name",)


@admin.register(ReleaseClip)
class ReleaseClipAdmin(_ReadOnly):
    list_display = ("video_id", "release", "background_music", "voice_over", "static_image", "order")
    list_filter = ("release",)
    search_fields = ("video_id",)
    raw_id_fields = ("release", "clip")


@admin.register(ReleaseLabel)
class ReleaseLabelAdmin(_ReadOnly):
    list_display = ("name", "modality", "origin", "origin_source", "release_clip", "release")
    list_filter = ("release", "origin", "modality")
    raw_id_fields = ("release", "release_clip", "cls")


@admin.register(ReleaseExport)
class ReleaseExportAdmin(_ReadOnly):
    list_display = ("release", "format", "include_background_music", "status", "rows_done", "rows_total", "created_at")
    list_filter = ("status", "format")
