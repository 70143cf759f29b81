from django.contrib import admin
from django.utils.html import format_html

from .models import ModelCheckpoint, ModelRun, Proposal, ProposalSet, RunChunk


@admin.register(ModelCheckpoint)
class ModelCheckpointAdmin(admin.ModelAdmin):
    list_display = ("name", "architecture", "path", "created_at")
    list_filter = ("architecture",)
    search_fields = ("name", "path")


class RunChunkInline(admin.TabularInline):
    model = RunChunk
    extra = 0
    fields = ("index", "status", "n_done", "seconds", "attempts", "updated_at")
    readonly_fields = fields
    can_delete = False
    show_change_link = True


@admin.register(ModelRun)
class ModelRunAdmin(admin.ModelAdmin):
    list_display = (
        "__str__",
        "dataset",
        "kind",
        "status",
        "progress_display",
        "clips_per_s",
        "n_errors",
        "started_at",
        "finished_at",
    )
    list_filter = ("status", "kind", "dataset")
    search_fields = ("external_name", "checkpoint__name")
    readonly_fields = ("n_done", "clips_per_s", "errors", "started_at", "finished_at", "created_at")
    inlines = [RunChunkInline]

    @admin.display(description="progress")
    def progress_display(self, obj):
        return format_html("{}/{} ({}%)", obj.n_done, obj.n_clips, round(100 * obj.progress))

    @admin.display(description="errors")
    def n_errors(self, obj):
        return len(obj.errors or [])


@admin.register(RunChunk)
class RunChunkAdmin(admin.ModelAdmin):
    list_display = ("run", "index", "status", "n_done", "seconds", "attempts", "updated_at")
    list_filter = ("status",)


@admin.register(ProposalSet)
class ProposalSetAdmin(admin.ModelAdmin):
    list_display = ("__str__", "dataset", "active", "n_proposals", "recall", "mean_size", "created_at")
    list_filter = ("active", "dataset")
    readonly_fields = ("evaluation", "n_proposals", "created_at")
    filter_horizontal = ("runs",)

    @admin.display(description="recall")
    def recall(self, obj):
        r = (obj.evaluation or {}).get("recall")
        return "-" if r is None else f"{r:.3f}"

    @admin.display(description="mean size")
    def mean_size(self, obj):
        m = (obj.evaluation or {}).get("mean_size")
        return "-" if m is None else f"{m:.1f}"


@admin.register(Proposal)
class ProposalAdmin(admin.ModelAdmin):
    list_display = ("proposal_set", "clip", "cls")
    list_select_related = ("proposal_set", "clip", "cls")
    search_fields = ("clip__video_id", "cls__name")
    raw_id_fields = ("proposal_set", "clip", "cls")
