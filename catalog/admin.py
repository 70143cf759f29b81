"""Admin of the catalog: classes, relations, meta labels, datasets, clips, the gold standard, operations."""

from django.contrib import admin

from catalog.models import ClassRelation, Clip, Dataset, GoldLabel, MetaLabel, Operation, TaxonomyClass


@admin.register(TaxonomyClass)
class TaxonomyClassAdmin(admin.ModelAdmin):
    list_display = ("index", "name", "mid")
    ordering = ("index",)
    search_fields = ("name",)
    list_per_page = 400


@admin.register(MetaLabel)
class MetaLabelAdmin(admin.ModelAdmin):
    list_display = ("key", "question", "position")


@admin.register(ClassRelation)
class ClassRelationAdmin(admin.ModelAdmin):
    list_display = ("kind", "source", "target")
    list_filter = ("kind",)
    autocomplete_fields = ("source", "target")


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ("name", "budget_usd", "batch_size", "gold_per_batch", "annotations_per_clip", "reject_below")
    search_fields = ("name",)


@admin.register(Clip)
class ClipAdmin(admin.ModelAdmin):
    list_display = ("video_id", "dataset", "is_gold", "duration", "has_audio", "has_video")
    list_filter = ("dataset", "is_gold", "has_audio", "has_video")
    search_fields = ("video_id",)
    filter_horizontal = ("original_labels",)


@admin.register(Operation)
class OperationAdmin(admin.ModelAdmin):
    list_display = ("id", "kind", "dataset", "status", "done", "total", "message", "started_at", "finished_at")
    list_filter = ("kind", "status")


@admin.register(GoldLabel)
class GoldLabelAdmin(admin.ModelAdmin):
    list_display = ("clip", "cls", "modality", "original", "source")
    list_filter = ("modality", "source", "clip__dataset")
    raw_id_fields = ("clip", "cls")
