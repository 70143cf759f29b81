"""Read-only API under /api/proposals/: model runs (progress), proposal sets (evaluation) and the
proposal lists of a set. Researchers and admins (researchers name model runs in metric reports)."""

from django.shortcuts import get_object_or_404
from django.urls import path
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import api_view, permission_classes
from rest_framework.response import Response

from catalog.access import ResearcherRead

from .models import ModelRun, ProposalSet
from .selectors import proposal_lists


class ModelRunSerializer(serializers.ModelSerializer):
    model = serializers.CharField(source="model_name", read_only=True)
    dataset = serializers.CharField(source="dataset.name", read_only=True)
    progress = serializers.FloatField(read_only=True)

    class Meta:
        model = ModelRun
        fields = [
            "id",
            "model",
            "dataset",
            "kind",
            "status",
            "modalities",
            "n_clips",
            "n_done",
            "progress",
            "clips_per_s",
            "errors",
            "started_at",
            "finished_at",
        ]


class ProposalSetSerializer(serializers.ModelSerializer):
    dataset = serializers.CharField(source="dataset.name", read_only=True)

    class Meta:
        model = ProposalSet
        fields = ["id", "dataset", "active", "strategy", "n_proposals", "evaluation", "created_at"]


DATASET_PARAM = OpenApiParameter("dataset", str, description="only this dataset (by name)")

SET_PROPOSALS = inline_serializer(
    "ProposalSetProposals",
    {
        "id": serializers.IntegerField(),
        "dataset": serializers.CharField(),
        "proposals": serializers.DictField(
            child=serializers.ListField(child=serializers.CharField()),
            help_text="video_id -> proposed class names, in class-index order",
        ),
    },
)


@extend_schema(parameters=[DATASET_PARAM], responses=ModelRunSerializer(many=True))
@api_view(["GET"])
@permission_classes([ResearcherRead])
def runs(request):
    qs = ModelRun.objects.select_related("checkpoint", "dataset").order_by("-created_at")
    if request.query_params.get("dataset"):
        qs = qs.filter(dataset__name=request.query_params["dataset"])
    return Response(ModelRunSerializer(qs, many=True).data)


@extend_schema(parameters=[DATASET_PARAM], responses=ProposalSetSerializer(many=True))
@api_view(["GET"])
@permission_classes([ResearcherRead])
def sets(request):
    qs = ProposalSet.objects.select_related("dataset").order_by("-created_at")
    if request.query_params.get("dataset"):
        qs = qs.filter(dataset__name=request.query_params["dataset"])
    return Response(ProposalSetSerializer(qs, many=True).data)


@extend_schema(responses={200: SET_PROPOSALS, 404: OpenApiResponse(description="no such proposal set")})
@api_view(["GET"])
@permission_classes([ResearcherRead])
def set_proposals(request, pk: int):
    pset = get_object_or_404(ProposalSet, pk=pk)
    return Response({"id": pset.pk, "dataset": pset.dataset.name, "proposals": proposal_lists(pset)})


urlpatterns = [
    path("runs/", runs, name="runs"),
    path("sets/", sets, name="sets"),
    path("sets/<int:pk>/proposals/", set_proposals, name="set-proposals"),
]
