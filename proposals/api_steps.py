"""REST API: import a model's predictions from an uploaded file (admins only), answered with its Operation."""

from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.views import APIView

from catalog.access import AdminOnly
from catalog.api_steps import StepOperationSerializer, dataset_or_404, operation_started
from proposals.tasks import run_import_start


class PredictionsImportSerializer(serializers.Serializer):
    file = serializers.FileField(
        help_text="VGGSounder pickle (.pkl), CSV video_id,input,label, JSONL label list or .npz artifact"
    )
    name = serializers.CharField(required=False, allow_blank=True, help_text="model name (default: the file stem)")
    allow_unknown_clips = serializers.BooleanField(default=False, help_text="skip clips not in the dataset")
    input = serializers.ChoiceField(
        choices=["a", "v", "av"],
        required=False,
        allow_blank=True,
        help_text="for an LLM-judged CSV as VGGSounder publishes them (video_id,suggestions,response; one file per "
        "input): the input it holds, as its folder csv/a/, csv/v/ or csv/av/",
    )
    strict = serializers.BooleanField(
        default=False,
        help_text="refuse a file holding a class name outside the taxonomy (default: skip such names and count them)",
    )


class PredictionsImport(APIView):
    """Import predictions of a model run elsewhere (re-importing a name replaces its run), in the background: 202
    with the Operation to poll."""

    permission_classes = [AdminOnly]
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(request=PredictionsImportSerializer, responses={202: StepOperationSerializer})
    def post(self, request, name):
        dataset = dataset_or_404(name)
        ser = PredictionsImportSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        d = ser.validated_data
        op = run_import_start(
            dataset,
            d.get("name", ""),
            d["file"],
            user=request.user,
            allow_unknown_clips=d["allow_unknown_clips"],
            input=d.get("input", ""),
            strict=d["strict"],
        )
        return operation_started(op)


urlpatterns = [
    path("datasets/<str:name>/predictions/import/", PredictionsImport.as_view(), name="step-predictions"),
]
