"""REST API of releases (mounted under /api/releases/): list, detail, create (admins), import (admins), diff,
streamed exports and background exports with progress. Researchers (and admins) read and export, with an API token
or a session; annotators never see releases (they hold the gold labels)."""

from __future__ import annotations

import io

from django.http import FileResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from catalog.access import AdminOnly, ResearcherOnly, ResearcherRead
from catalog.api_steps import StepOperationSerializer, operation_started
from catalog.errors import ValidationError
from catalog.models import Dataset
from labels.core.merge import METHODS
from labels.models import Release, ReleaseExport
from labels.selectors.releases import releases_list
from labels.services.create import release_create
from labels.services.diff import release_diff
from labels.services.export import EXPORT_CONTENT_TYPES, EXPORT_FORMATS, export_chunks, export_filename
from labels.services.imports import release_import
from labels.tasks import release_create_start, release_export_start, release_import_start

TRUE_TEXT = {"1", "true", "yes", "on"}


class ReleaseSerializer(serializers.ModelSerializer):
    dataset = serializers.SlugRelatedField(slug_field="name", read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Release
        fields = [
            "id",
            "dataset",
            "name",
            "method",
            "params",
            "imported",
            "source_file",
            "source_counts",
            "created_at",
            "created_by",
        ]


class ReleaseDetailSerializer(ReleaseSerializer):
    class Meta(ReleaseSerializer.Meta):
        fields = ReleaseSerializer.Meta.fields + ["stats"]


class ReleaseCreateSerializer(serializers.Serializer):
    dataset = serializers.SlugRelatedField(slug_field="name", queryset=Dataset.objects.all())
    name = serializers.CharField(max_length=100)
    method = serializers.ChoiceField(choices=METHODS, default="majority")
    k = serializers.IntegerField(min_value=1, required=False)
    gold_override = serializers.BooleanField(default=True)
    background = serializers.BooleanField(
        default=False,
        help_text="create it in the background: 202 with the operation to poll (for datasets large "
        "enough to outlast an HTTP request)",
    )


class ReleaseStartedSerializer(serializers.Serializer):
    operation = serializers.IntegerField()
    status_url = serializers.CharField(
        help_text="GET it until status is done (summary.release is the new release's id) or failed (message says why)"
    )


class ReleaseImportSerializer(serializers.Serializer):
    dataset = serializers.SlugRelatedField(slug_field="name", queryset=Dataset.objects.all())
    name = serializers.CharField(max_length=100)
    file = serializers.FileField()
    background = serializers.BooleanField(
        default=False,
        help_text="import it in the background: 202 with the Operation to poll (status_url; summary.release is the "
        "new release's id), for files large enough to outlast an HTTP request",
    )


class ReleaseExportSerializer(serializers.ModelSerializer):
    progress = serializers.FloatField(read_only=True)
    download = serializers.SerializerMethodField()

    class Meta:
        model = ReleaseExport
        fields = [
            "id",
            "release",
            "format",
            "include_background_music",
            "status",
            "rows_done",
            "rows_total",
            "progress",
            "error",
            "created_at",
            "finished_at",
            "download",
        ]

    def get_download(self, job) -> str | None:
        if job.status != ReleaseExport.DONE:
            return None
        url = reverse("api_releases:export-download", args=[job.pk])
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request else url


class ExportFormatNegotiation(DefaultContentNegotiation):
    """`?format=` names the export format on these endpoints, not a DRF renderer: answer JSON for errors."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


def _bool_param(request, name) -> bool:
    return (request.query_params.get(name) or "").strip().lower() in TRUE_TEXT


FORMAT_PARAM = OpenApiParameter(
    "format", str, enum=list(EXPORT_FORMATS), description="export format (default vggsounder-csv)"
)
BM_PARAM = OpenApiParameter(
    "include_background_music",
    bool,
    description="keep clips with background music (default: left out, as vggsounder.csv)",
)


class ReleaseList(APIView):
    permission_classes = [ResearcherRead]
    parser_classes = [JSONParser, FormParser, MultiPartParser]

    @extend_schema(
        responses=ReleaseSerializer(many=True),
        parameters=[OpenApiParameter("dataset", str, description="dataset name")],
    )
    def get(self, request):
        qs = releases_list()
        if request.query_params.get("dataset"):
            qs = qs.filter(dataset__name=request.query_params["dataset"])
        return Response(ReleaseSerializer(qs, many=True).data)

    @extend_schema(
        request=ReleaseCreateSerializer, responses={201: ReleaseDetailSerializer, 202: ReleaseStartedSerializer}
    )
    def post(self, request):
        ser = ReleaseCreateSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        d = ser.validated_data
        params = {"k": d["k"]} if d.get("k") else {}
        if d["background"]:
            op = release_create_start(
                d["dataset"],
                d["name"],
                method=d["method"],
                params=params,
                user=request.user,
                gold_override=d["gold_override"],
            )
            return Response(
                {"operation": op.pk, "status_url": reverse("api_marketplace:operation", args=[op.pk])},
                status=status.HTTP_202_ACCEPTED,
            )
        release = release_create(
            d["dataset"],
            d["name"],
            method=d["method"],
            params=params,
            user=request.user,
            gold_override=d["gold_override"],
        )
        return Response(ReleaseDetailSerializer(release).data, status=status.HTTP_201_CREATED)


class ReleaseImport(APIView):
    permission_classes = [AdminOnly]
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        request=ReleaseImportSerializer, responses={201: ReleaseDetailSerializer, 202: StepOperationSerializer}
    )
    def post(self, request):
        ser = ReleaseImportSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        upload = ser.validated_data["file"]
        if ser.validated_data["background"]:
            op = release_import_start(
                ser.validated_data["dataset"], ser.validated_data["name"], upload, user=request.user
            )
            return operation_started(op)
        text = io.TextIOWrapper(upload.file, encoding="utf-8", newline="")
        release = release_import(
            ser.validated_data["dataset"],
            ser.validated_data["name"],
            text,
            user=request.user,
            source_name=upload.name,
        )
        return Response(ReleaseDetailSerializer(release).data, status=status.HTTP_201_CREATED)


class ReleaseDetail(APIView):
    permission_classes = [ResearcherRead]

    @extend_schema(responses=ReleaseDetailSerializer)
    def get(self, request, pk):
        return Response(ReleaseDetailSerializer(get_object_or_404(Release, pk=pk)).data)


def streamed_export(release, fmt, include_background_music):
    response = StreamingHttpResponse(
        export_chunks(release, fmt, include_background_music=include_background_music),
        content_type=EXPORT_CONTENT_TYPES[fmt],
    )
    response["Content-Disposition"] = (
        f'attachment; filename="{export_filename(release, fmt, include_background_music)}"'
    )
    return response


class ReleaseExportStream(APIView):
    permission_classes = [ResearcherRead]
    content_negotiation_class = ExportFormatNegotiation

    @extend_schema(parameters=[FORMAT_PARAM, BM_PARAM], responses={(200, "text/csv"): bytes})
    def get(self, request, pk):
        release = get_object_or_404(Release.objects.select_related("dataset"), pk=pk)
        fmt = request.query_params.get("format") or "vggsounder-csv"
        if fmt not in EXPORT_FORMATS:
            raise ValidationError(
                f"unknown export format {fmt!r}; allowed: {', '.join(EXPORT_FORMATS)}", field="format"
            )
        return streamed_export(release, fmt, _bool_param(request, "include_background_music"))


class ReleaseExportJobs(APIView):
    """POST: prepare an export file in the background; poll the returned job for progress."""

    permission_classes = [ResearcherOnly]  # preparing an export file is reading the release
    content_negotiation_class = ExportFormatNegotiation

    @extend_schema(parameters=[FORMAT_PARAM, BM_PARAM], request=None, responses={202: ReleaseExportSerializer})
    def post(self, request, pk):
        release = get_object_or_404(Release, pk=pk)
        fmt = request.query_params.get("format") or request.data.get("format") or "vggsounder-csv"
        bm = (
            _bool_param(request, "include_background_music")
            or str(request.data.get("include_background_music", "")).lower() in TRUE_TEXT
        )
        job = release_export_start(release, fmt, include_background_music=bm, user=request.user)
        job.refresh_from_db()
        return Response(
            ReleaseExportSerializer(job, context={"request": request}).data, status=status.HTTP_202_ACCEPTED
        )


class ExportStatus(APIView):
    permission_classes = [ResearcherRead]

    @extend_schema(responses=ReleaseExportSerializer)
    def get(self, request, pk):
        job = get_object_or_404(ReleaseExport, pk=pk)
        return Response(ReleaseExportSerializer(job, context={"request": request}).data)


class ExportDownload(APIView):
    permission_classes = [ResearcherRead]

    @extend_schema(responses={(200, "application/octet-stream"): bytes})
    def get(self, request, pk):
        job = get_object_or_404(ReleaseExport.objects.select_related("release", "release__dataset"), pk=pk)
        if job.status != ReleaseExport.DONE or not job.file:
            return Response({"error": f"export {job.pk} is {job.status}; poll until it is done"}, status=409)
        return FileResponse(
            job.file.open("rb"),
            as_attachment=True,
            filename=export_filename(job.release, job.format, job.include_background_music),
            content_type=EXPORT_CONTENT_TYPES[job.format],
        )


class ReleaseDiffView(APIView):
    permission_classes = [ResearcherRead]

    @extend_schema(responses=dict)
    def get(self, request, pk, other):
        a = get_object_or_404(Release.objects.select_related("dataset"), pk=pk)
        b = get_object_or_404(Release.objects.select_related("dataset"), pk=other)
        return Response(release_diff(a, b))


urlpatterns = [
    path("", ReleaseList.as_view(), name="list"),
    path("import/", ReleaseImport.as_view(), name="import"),
    path("<int:pk>/", ReleaseDetail.as_view(), name="detail"),
    path("<int:pk>/export/", ReleaseExportStream.as_view(), name="export"),
    path("<int:pk>/exports/", ReleaseExportJobs.as_view(), name="export-start"),
    path("<int:pk>/diff/<int:other>/", ReleaseDiffView.as_view(), name="diff"),
    path("exports/<int:pk>/", ExportStatus.as_view(), name="export-status"),
    path("exports/<int:pk>/download/", ExportDownload.as_view(), name="export-download"),
]
