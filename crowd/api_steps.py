"""REST API of the crowd's pipeline steps (admins only): import gold from a CSV, create batches, rebuild the batches
built without catch trials. Each answers with its Operation (gold: 202, running in the background; batches: 201) or
400 naming what is wrong."""

from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.views import APIView

from catalog.access import AdminOnly
from catalog.api_steps import StepOperationSerializer, dataset_or_404, operation_response, operation_started
from crowd.services.steps import batches_create_step, batches_rebuild_step
from crowd.tasks import gold_import_start


class GoldImportSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="CSV id,label,original,modality (modality A, V, AV or - for absent)")
    decide = serializers.BooleanField(
        default=False, help_text="also approve/reject the assignments still waiting, by the dataset policy"
    )


class GoldImport(APIView):
    """Import gold labels (all or nothing), then mark catch trials and re-score the assignments, in the
    background: 202 with the Operation to poll."""

    permission_classes = [AdminOnly]
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(request=GoldImportSerializer, responses={202: StepOperationSerializer})
    def post(self, request, name):
        dataset = dataset_or_404(name)
        ser = GoldImportSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        d = ser.validated_data
        return operation_started(gold_import_start(dataset, d["file"], user=request.user, decide=d["decide"]))


class BatchesCreateSerializer(serializers.Serializer):
    allow_without_gold = serializers.BooleanField(
        default=False,
        help_text="build batches although the dataset has no gold clip (no catch trials: publishing refuses them)",
    )


class BatchesCreate(APIView):
    """Create batches from the dataset's clips that are in no batch yet (refused without gold clips)."""

    permission_classes = [AdminOnly]
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    @extend_schema(request=BatchesCreateSerializer, responses={201: StepOperationSerializer})
    def post(self, request, name):
        dataset = dataset_or_404(name)
        ser = BatchesCreateSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        op = batches_create_step(
            dataset, user=request.user, allow_without_gold=ser.validated_data["allow_without_gold"]
        )
        return operation_response(op)


class BatchesRebuild(APIView):
    """Rebuild the batches without catch trials (never worked on, never published) with today's gold clips."""

    permission_classes = [AdminOnly]

    @extend_schema(request=None, responses={201: StepOperationSerializer})
    def post(self, request, name):
        return operation_response(batches_rebuild_step(dataset_or_404(name), user=request.user))


urlpatterns = [
    path("datasets/<str:name>/gold/import/", GoldImport.as_view(), name="step-gold"),
    path("datasets/<str:name>/batches/", BatchesCreate.as_view(), name="step-batches"),
    path("datasets/<str:name>/batches/rebuild/", BatchesRebuild.as_view(), name="step-rebuild"),
]
