"""REST API of metric reports (mounted under /api/reports/): start a report, follow its status, download its files.
Researchers and admins only (access rule `researcher`, catalog.access; token or session auth).

    POST /api/reports/            {"labels": "<release id | dataset/name | name>", "predictions": ["run:3", "cav-mae"],
                                   "regime": "default"|"all", "confusion": "v1.0"|"pre-v1.0", "meta": true, "title": ""}
                                  or multipart with labels_file / prediction_files uploads -> 202 + the report
    GET  /api/reports/            the reports, newest first, a page at a time (?limit=, default 100, at most
                                  1000; ?offset=; ?status=): {"count", "next", "previous", "results"}
    GET  /api/reports/<id>/       status, error, summary (paper table) and links to every file
    GET  /api/reports/<id>/files/<name>   one file (report.json, paper.csv, radar.svg, ...)
"""

from __future__ import annotations

import mimetypes

from django.http import FileResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from catalog.access import ResearcherOnly
from catalog.errors import ValidationError
from reports.models import MetricReport
from reports.services import report_file_open, report_upload
from reports.tasks import report_create


class MetricReportSerializer(serializers.ModelSerializer):
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    links = serializers.SerializerMethodField()

    class Meta:
        model = MetricReport
        fields = [
            "id",
            "title",
            "status",
            "params",
            "error",
            "summary",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
            "links",
        ]

    def get_links(self, report) -> dict[str, str]:
        request = self.context.get("request")
        out = {}
        for name in sorted(report.files or {}):
            url = reverse("api_reports:file", args=[report.pk, name])
            out[name] = request.build_absolute_uri(url) if request else url
        return out


class ReportStartSerializer(serializers.Serializer):
    labels = serializers.CharField(
        required=False, allow_blank=True, help_text="release id, DATASET/NAME or unique NAME"
    )
    labels_file = serializers.FileField(required=False, help_text="label CSV in the VGGSounder layout")
    predictions = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text="model runs: run:ID, ID or model name (latest finished run)",
    )
    prediction_files = serializers.ListField(
        child=serializers.FileField(), required=False, help_text=".pkl/.pickle (VGGSounder layout), .csv or .jsonl"
    )
    regime = serializers.ChoiceField(choices=["default", "all"], default="default")
    confusion = serializers.ChoiceField(choices=["v1.0", "pre-v1.0"], default="v1.0")
    meta = serializers.BooleanField(default=True)
    strict = serializers.BooleanField(
        default=False,
        help_text="refuse a predictions file with a class name outside the taxonomy (default: skip and count it)",
    )
    title = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")

    def validate(self, data):
        if bool(data.get("labels")) == bool(data.get("labels_file")):
            raise serializers.ValidationError({"labels": "give exactly one of labels (a release) or labels_file"})
        if not data.get("predictions") and not data.get("prediction_files"):
            raise serializers.ValidationError({"predictions": "give model runs (predictions) and/or prediction_files"})
        return data


class ReportPages(LimitOffsetPagination):
    """?limit= (1-1000, default 100) and ?offset= (>= 0); a bad value is refused instead of ignored."""

    default_limit = 100
    max_limit = 1000

    def check(self, request) -> None:
        for name, low, high in (("limit", 1, self.max_limit), ("offset", 0, None)):
            raw = request.query_params.get(name)
            if raw is None:
                continue
            try:
                value = int(raw)
            except ValueError:
                value = None
            if value is None or value < low or (high is not None and value > high):
                allowed = f"an integer from {low} to {high}" if high else f"an integer >= {low}"
                raise ValidationError(f"{name} {raw!r} is not allowed; allowed: {allowed}", field=name)


class ReportListCreate(APIView):
    permission_classes = [ResearcherOnly]
    parser_classes = [JSONParser, MultiPartParser, FormParser]
    serializer_class = MetricReportSerializer

    @extend_schema(
        operation_id="reports_list",
        responses={
            200: inline_serializer(
                "PaginatedMetricReportList",
                {
                    "count": serializers.IntegerField(),
                    "next": serializers.CharField(allow_null=True),
                    "previous": serializers.CharField(allow_null=True),
                    "results": MetricReportSerializer(many=True),
                },
            ),
            400: OpenApiResponse(description="a bad limit, offset or status, named in `field`"),
        },
        parameters=[
            OpenApiParameter("status", str, enum=[s for s, _ in MetricReport.STATUSES]),
            OpenApiParameter("limit", int, description="reports per page, 1-1000 (default 100)"),
            OpenApiParameter("offset", int, description="reports to skip"),
        ],
    )
    def get(self, request):
        qs = MetricReport.objects.select_related("created_by").order_by("-created_at", "-id")
        wanted = request.query_params.get("status")
        if wanted:
            allowed = [s for s, _ in MetricReport.STATUSES]
            if wanted not in allowed:
                raise ValidationError(
                    f"status {wanted!r} is not allowed; allowed: {', '.join(allowed)}", field="status"
                )
            qs = qs.filter(status=wanted)
        pager = ReportPages()
        pager.check(request)
        page = pager.paginate_queryset(qs, request, view=self)
        return pager.get_paginated_response(MetricReportSerializer(page, many=True, context={"request": request}).data)

    @extend_schema(
        operation_id="reports_create",
        request=ReportStartSerializer,
        responses={202: MetricReportSerializer, 400: OpenApiResponse(description="the error names the field")},
    )
    @extend_schema(
        request={"application/json": ReportStartSerializer, "multipart/form-data": ReportStartSerializer},
        responses={202: MetricReportSerializer, 400: OpenApiResponse(description="bad input, with the reason")},
    )
    def post(self, request):
        ser = ReportStartSerializer(data=request.data)
        if not ser.is_valid():
            errors = ser.errors
            field = next(iter(errors))
            msg = errors[field][0] if isinstance(errors[field], list) else errors[field]
            raise ValidationError(f"{field}: {msg}", field=field, details=errors)
        d = ser.validated_data
        labels = d.get("labels") or report_upload(d["labels_file"], d["labels_file"].name)
        preds = list(d.get("predictions") or [])
        preds += [report_upload(f, f.name) for f in d.get("prediction_files") or []]
        report = report_create(
            labels=labels,
            predictions=preds,
            regime=d["regime"],
            confusion=d["confusion"],
            meta=d["meta"],
            strict=d["strict"],
            title=d.get("title", ""),
            user=request.user,
        )
        data = MetricReportSerializer(report, context={"request": request}).data
        return Response(
            data, status=status.HTTP_202_ACCEPTED, headers={"Location": reverse("api_reports:detail", args=[report.pk])}
        )


class ReportDetail(APIView):
    permission_classes = [ResearcherOnly]
    serializer_class = MetricReportSerializer

    def get(self, request, pk):
        report = get_object_or_404(MetricReport, pk=pk)
        return Response(MetricReportSerializer(report, context={"request": request}).data)


class ReportFile(APIView):
    permission_classes = [ResearcherOnly]

    @extend_schema(
        operation_id="reports_file",
        responses={
            (200, "application/octet-stream"): OpenApiTypes.BINARY,
            400: OpenApiResponse(description="unknown file name"),
            404: OpenApiResponse(description="no such report"),
        },
    )
    def get(self, request, pk, name):
        report = get_object_or_404(MetricReport, pk=pk)
        fh = report_file_open(report, name)
        ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if name.endswith((".md", ".tex", ".csv")):
            ctype = "text/plain; charset=utf-8" if not name.endswith(".csv") else "text/csv; charset=utf-8"
        inline = name.endswith((".png", ".svg", ".json", ".html"))
        return FileResponse(fh, content_type=ctype, as_attachment=not inline, filename=name)


urlpatterns = [
    path("", ReportListCreate.as_view(), name="list"),
    path("<int:pk>/", ReportDetail.as_view(), name="detail"),
    path("<int:pk>/files/<str:name>", ReportFile.as_view(), name="file"),
]
