"""REST API of the pipeline steps that take a file or start work, admins only: each runs the command's service
and answers with the Operation that records it, or 400 naming what is wrong (nothing changed). Imports (clips, gold,
predictions) are checked, saved and answered at once with 202 and the running Operation to poll (`status_url`);
the quick steps (batches) answer 201 with the finished one. This module: the Operation's shape and the clip import;
crowd.api_steps (gold, batches) and proposals.api_steps (predictions) add theirs."""

from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from catalog.access import AdminOnly
from catalog.models import Dataset, Operation
from catalog.tasks import clips_import_folder_start, clips_import_start


class StepOperationSerializer(serializers.ModelSerializer):
    dataset = serializers.CharField(source="dataset.name", default=None)
    kind = serializers.CharField(help_text="import, publish, sync, release, proposals")
    status = serializers.CharField(help_text="running, done or failed")
    url = serializers.SerializerMethodField(help_text="the page of the result (the dataset, the release, ...)")
    page = serializers.SerializerMethodField(help_text="the Operation's own page")
    status_url = serializers.SerializerMethodField(help_text="GET it until status is done or failed (JSON)")

    class Meta:
        model = Operation
        fields = [
            "id",
            "kind",
            "dataset",
            "status",
            "message",
            "done",
            "total",
            "summary",
            "url",
            "page",
            "status_url",
            "started_at",
            "finished_at",
        ]

    def get_url(self, op) -> str | None:
        return (op.summary or {}).get("url")

    def get_page(self, op) -> str:
        return f"/ops/operations/{op.pk}/"

    def get_status_url(self, op) -> str:
        return reverse("api_marketplace:operation", args=[op.pk])


def dataset_or_404(name: str) -> Dataset:
    return get_object_or_404(Dataset, name=name)


def operation_response(op: Operation) -> Response:
    return Response(StepOperationSerializer(op).data, status=status.HTTP_201_CREATED)


def operation_started(op: Operation) -> Response:
    """202 with the Operation of work started in the background (reloaded: without a broker it may be done)."""
    op.refresh_from_db()
    return Response(StepOperationSerializer(op).data, status=status.HTTP_202_ACCEPTED)


class ClipImportSerializer(serializers.Serializer):
    media = serializers.ListField(
        child=serializers.FileField(), required=False, help_text="video files named <video id>.<mp4|webm|...>"
    )
    csv = serializers.FileField(
        required=False, help_text="video_id,url[,original_label]: http(s)/s3 URLs or names of the uploaded files"
    )
    folder = serializers.CharField(
        required=False, help_text="instead of uploads: a server folder inside MEDIA_IMPORT_ROOTS (files used in place)"
    )
    copy = serializers.BooleanField(default=False, help_text="with folder: copy the files into the media storage")


class ClipImport(APIView):
    """Import clips into a dataset (created if absent): uploaded media and/or a CSV of URLs, or a server folder.
    All or nothing, in the background: 202 with the Operation (progress: clips checked, then written)."""

    permission_classes = [AdminOnly]
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(request=ClipImportSerializer, responses={202: StepOperationSerializer})
    def post(self, request, name):
        ser = ClipImportSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        d = ser.validated_data
        if d.get("folder"):
            op = clips_import_folder_start(name, d["folder"], copy_media=d["copy"], user=request.user)
        else:
            op = clips_import_start(name, request.FILES.getlist("media"), d.get("csv"), user=request.user)
        return operation_started(op)


urlpatterns = [
    path("datasets/<str:name>/clips/import/", ClipImport.as_view(), name="step-clips"),
]
