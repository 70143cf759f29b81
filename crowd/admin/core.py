"""Admin of the crowd's records: batches, workers, assignments and answers (read mostly), the audit log, gold."""

from django.contrib import admin

from crowd.models import (
    AssignmentDecisionLog,
    BatchItem,
    ClipAnswer,
    ExpertAnnotation,
    WorkerStatusLog,
)


class BatchItemInline(admin.TabularInline):
    model = BatchItem
    extra = 0
    raw_id_fields = ("clip",)


class BatchAdmin(admin.ModelAdmin):
    list_display = ("uuid", "dataset", "status", "created_at")
    list_filter = ("dataset", "status")
    inlines = [BatchItemInline]


class WorkerAdmin(admin.ModelAdmin):
    list_display = ("external_id", "backend", "mean_catch_f1", "n_scored", "is_blocked")
    list_filter = ("backend", "is_blocked")
    search_fields = ("external_id",)


class WorkerStatusLogInline(admin.TabularInline):
    model = WorkerStatusLog
    extra = 0
    readonly_fields = ("action", "actor", "reason", "created_at")
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(WorkerStatusLog)
class WorkerStatusLogAdmin(admin.ModelAdmin):
    """The block/unblock audit trail: read only."""

    list_display = ("created_at", "worker", "action", "actor", "reason")
    list_filter = ("action",)
    search_fields = ("worker__external_id", "reason")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ClipAnswerInline(admin.TabularInline):
    """A worker's answers, read-only: a correction is its own audited action, never an edit of the answer."""

    model = ClipAnswer
    extra = 0
    fields = ("clip", "played", "watch_seconds", "media_failed", "labels", "comment", "updated_at")
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class DecisionLogInline(admin.TabularInline):
    model = AssignmentDecisionLog
    extra = 0
    readonly_fields = ("actor", "old_status", "new_status", "reason", "created_at")
    can_delete = False


class AssignmentAdmin(admin.ModelAdmin):
    list_display = ("uuid", "worker", "batch", "status", "catch_f1", "submitted_at")
    list_filter = ("status", "backend", "batch__dataset")
    search_fields = ("external_assignment_id", "worker__external_id")
    raw_id_fields = ("batch", "worker")
    inlines = [ClipAnswerInline, DecisionLogInline]


@admin.register(BatchItem)
class BatchItemAdmin(admin.ModelAdmin):
    list_display = ("batch", "position", "clip", "is_gold")
    list_filter = ("is_gold", "batch__dataset")
    search_fields = ("clip__video_id",)
    raw_id_fields = ("batch", "clip")


@admin.register(ClipAnswer)
class ClipAnswerAdmin(admin.ModelAdmin):
    """Answers are read-only (view permission only): the review screen (/ops/<dataset>/review/) shows them."""

    list_display = ("assignment", "clip", "played", "watch_seconds", "updated_at")
    list_filter = ("assignment__status", "assignment__batch__dataset")
    search_fields = ("clip__video_id", "assignment__worker__external_id")
    raw_id_fields = ("assignment", "clip")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(AssignmentDecisionLog)
class AssignmentDecisionLogAdmin(admin.ModelAdmin):
    """The audit trail: read only."""

    list_display = ("created_at", "assignment", "old_status", "new_status", "actor", "reason")
    list_filter = ("new_status",)
    search_fields = ("assignment__worker__external_id", "reason")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ExpertAnnotation)
class ExpertAnnotationAdmin(admin.ModelAdmin):
    list_display = ("clip", "user", "updated_at")
    raw_id_fields = ("clip",)
