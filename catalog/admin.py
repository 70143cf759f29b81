"""Admin of the catalog: classes, relations, meta labels, datasets (with an "Import clips" page), clips, the gold
standard, operations."""

from django import forms
from django.contrib import admin, messages
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from catalog.errors import AvcrowdError
from catalog.models import ClassRelation, Clip, Dataset, GoldLabel, MetaLabel, Operation, TaxonomyClass
from catalog.services.clips import clips_import_upload


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


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        if isinstance(data, (list, tuple)):
            return [super(MultipleFileField, self).clean(d, initial) for d in data]
        return [super().clean(data, initial)] if data else []


class ImportClipsForm(forms.Form):
    dataset = forms.SlugField(max_length=100, help_text="an existing dataset, or a new one (created)")
    media = MultipleFileField(
        required=False,
        help_text="video files; the video id is the file name without its extension (.mp4, .webm, .mkv, ...)",
    )
    csv = forms.FileField(
        required=False,
        label="CSV",
        help_text="optional: video_id,url[,original_label] with an http(s):// or s3:// URL, or the name of an "
        "uploaded file (to give it an id and labels; several labels separated by |)",
    )


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "budget_usd",
        "min_hourly_wage_usd",
        "batch_size",
        "gold_per_batch",
        "annotations_per_clip",
        "reject_below",
    )
    search_fields = ("name",)
    change_list_template = "admin/catalog/dataset/change_list_import.html"

    def get_urls(self):
        extra = [
            path(
                "import-clips/",
                self.admin_site.admin_view(self.import_clips_view),
                name="catalog_dataset_import_clips",
            )
        ]
        return extra + super().get_urls()

    def import_clips_view(self, request):
        """Upload clips into a dataset: the media goes to the media storage (S3 when configured). Large imports
        are better done with `python manage.py import_clips` on the server."""
        if not self.has_add_permission(request):
            messages.error(request, "Importing clips needs the permission to add datasets.")
            return redirect(reverse("admin:catalog_dataset_changelist"))
        form = ImportClipsForm(request.POST or None, request.FILES or None, initial={"dataset": request.GET.get("d")})
        if request.method == "POST" and form.is_valid():
            try:
                dataset, clips = clips_import_upload(
                    form.cleaned_data["dataset"], form.cleaned_data["media"], form.cleaned_data["csv"]
                )
            except AvcrowdError as exc:  # refused: nothing was imported; say why, line by line
                messages.error(request, exc.message)
                for detail in exc.details if isinstance(exc.details, (list, tuple)) else []:
                    messages.error(request, detail)
            else:
                messages.success(request, f"Imported {len(clips)} clip(s) into dataset {dataset.name}.")
                return redirect(reverse("admin:catalog_clip_changelist") + f"?dataset__id__exact={dataset.pk}")
        context = {
            **self.admin_site.each_context(request),
            "title": "Import clips",
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/catalog/dataset/import_clips.html", context)


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
