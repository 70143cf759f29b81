"""Marketplace REST API (staff only), mounted under /api/marketplace/: HITs, publish (dry run = estimate),
sync now, long-operation progress, dataset operations summary, in-house assignment, bonuses."""

from decimal import Decimal, InvalidOperation

from django.shortcuts import get_object_or_404
from django.urls import path
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from catalog.access import AdminOnly
from catalog.errors import ValidationError
from catalog.models import Dataset, Operation
from crowd.marketplace.inhouse import inhouse_assign
from crowd.models import Assignment, Batch, Bonus, Hit
from crowd.selectors.crowd import parse_uuid
from crowd.selectors.ops import dataset_ops
from crowd.services.publish import publish_plan
from crowd.services.sync import bonus_create
from crowd.tasks import batches_publish_start, marketplace_sync_start


class HitSerializer(serializers.ModelSerializer):
    batch = serializers.UUIDField(source="batch.uuid")
    dataset = serializers.CharField(source="batch.dataset.name")

    class Meta:
        model = Hit
        fields = [
            "id",
            "dataset",
            "batch",
            "backend",
            "external_id",
            "sandbox",
            "mode",
            "reward",
            "max_assignments",
            "target_assignments",
            "reposted",
            "status",
            "expires_at",
            "error",
            "created_at",
            "last_synced_at",
        ]


class OperationSerializer(serializers.ModelSerializer):
    dataset = serializers.CharField(source="dataset.name", default=None)

    class Meta:
        model = Operation
        fields = [
            "id",
            "kind",
            "dataset",
            "status",
            "done",
            "total",
            "percent",
            "message",
            "summary",
            "started_at",
            "finished_at",
        ]


# --- Schema-only serializers: they describe the bodies the views below read and write (the views parse
# request.data themselves, so these are never used for validation). ---------------------------------------------


class MarketplaceErrorSerializer(serializers.Serializer):
    error = serializers.CharField(help_text="what is wrong and what is allowed")
    field = serializers.CharField(required=False, help_text="the request field at fault")
    details = serializers.JSONField(required=False, help_text="one entry per problem, when there are several")


class PublishRequestSerializer(serializers.Serializer):
    dataset = serializers.CharField(help_text="dataset name")
    count = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        help_text="publish this many open, unpublished batches (default: all)",
    )
    batches = serializers.ListField(
        child=serializers.UUIDField(), required=False, help_text="publish exactly these batches of the dataset"
    )
    backend = serializers.ChoiceField(choices=["mturk", "prolific"], default="mturk")
    sandbox = serializers.BooleanField(default=True)
    mode = serializers.ChoiceField(choices=["external", "html"], default="external")
    reward = serializers.DecimalField(
        max_digits=8,
        decimal_places=2,
        required=False,
        allow_null=True,
        coerce_to_string=True,
        help_text="reward per assignment in dollars (default: the configured one)",
    )
    dry_run = serializers.BooleanField(default=False, help_text="only return the cost estimate")


class PublishEstimateSerializer(serializers.Serializer):
    dry_run = serializers.BooleanField()
    hits = serializers.IntegerField(help_text="number of HITs that would be created")
    cost_usd = serializers.CharField(help_text="total cost in dollars, fees included")
    committed_usd = serializers.CharField(help_text="dollars already committed on this dataset")
    budget_usd = serializers.CharField()
    lines = serializers.ListField(child=serializers.CharField(), help_text="human-readable estimate")


class PublishStartedSerializer(PublishEstimateSerializer):
    operation = serializers.IntegerField(help_text="id of the long operation: GET operations/<id>/")


class OperationStartedSerializer(serializers.Serializer):
    operation = serializers.IntegerField(help_text="id of the long operation: GET operations/<id>/")


class _Count(serializers.DictField):
    child = serializers.IntegerField()


DATASET_SUMMARY = inline_serializer(
    "MarketplaceDatasetSummary",
    {
        "name": serializers.CharField(),
        "progress": serializers.ListField(
            child=serializers.ListField(child=serializers.JSONField(), min_length=2, max_length=2),
            help_text='[label, clips] pairs: clips with 0, 1, ..., k-1 and "k+" approved annotations',
        ),
        "hits": _Count(help_text="HIT status -> count"),
        "open_hits": serializers.IntegerField(),
        "assignments": _Count(
            help_text='assignment status -> count, plus "unverified": submitted but not yet reported by the '
            "marketplace for that worker (not approved, paid or merged until it is)"
        ),
        "spend": inline_serializer(
            "MarketplaceSummarySpend",
            {
                "budget": serializers.CharField(),
                "paid": serializers.CharField(),
                "committed": serializers.CharField(),
                "remaining": serializers.CharField(),
                "percent": serializers.FloatField(),
                "bonuses_paid": serializers.CharField(),
            },
        ),
        "median_work_seconds": serializers.FloatField(allow_null=True),
        "median_reward": serializers.CharField(allow_null=True),
        "hourly_pay": serializers.CharField(allow_null=True, help_text="implied dollars per hour"),
        "media_reports": inline_serializer(
            "MarketplaceSummaryMediaReports",
            {
                "clips": serializers.IntegerField(help_text="clips that at least one worker reported as not playing"),
                "reports": serializers.IntegerField(help_text="answers reporting a clip as not playing"),
            },
        ),
        "workers": inline_serializer(
            "MarketplaceSummaryWorker",
            {
                "worker": serializers.CharField(help_text="marketplace worker id"),
                "backend": serializers.CharField(),
                "assignments": serializers.IntegerField(),
                "approved": serializers.IntegerField(),
                "rejected": serializers.IntegerField(),
                "mean_catch_f1": serializers.FloatField(allow_null=True),
                "approval_rate": serializers.FloatField(allow_null=True),
                "is_blocked": serializers.BooleanField(),
            },
            many=True,
        ),
        "rejections": inline_serializer(
            "MarketplaceSummaryRejection",
            {
                "assignment": serializers.UUIDField(),
                "worker": serializers.CharField(),
                "catch_f1": serializers.FloatField(allow_null=True),
                "reason": serializers.CharField(),
            },
            many=True,
        ),
        "operations": OperationSerializer(many=True, help_text="the 10 latest long operations of the dataset"),
    },
)


class InhouseAssignRequestSerializer(serializers.Serializer):
    batch = serializers.UUIDField()
    username = serializers.CharField(help_text="an active user account")


class InhouseAssignResponseSerializer(serializers.Serializer):
    batch = serializers.UUIDField()
    username = serializers.CharField()
    created = serializers.BooleanField(help_text="false when the user already had this batch")
    url = serializers.CharField(help_text="the HIT page of the batch")


class BonusRequestSerializer(serializers.Serializer):
    assignment = serializers.UUIDField()
    amount = serializers.DecimalField(
        max_digits=8,
        decimal_places=2,
        coerce_to_string=True,
        help_text="dollars, whole cents, from 0.01 up to the dataset's bonus cap",
    )
    reason = serializers.CharField(help_text="shown to the worker")
    idempotency_key = serializers.CharField(
        required=False,
        max_length=200,
        help_text="repeat it to retry safely (the Idempotency-Key header works too); without one, the same "
        "assignment, amount and reason are the same bonus",
    )


class BonusResponseSerializer(serializers.Serializer):
    bonus = serializers.IntegerField()
    status = serializers.ChoiceField(choices=Bonus.STATUSES)
    amount = serializers.CharField()
    replayed = serializers.BooleanField(help_text="true: this request repeated an earlier one; nothing new is paid")


ERROR_400 = OpenApiResponse(
    MarketplaceErrorSerializer, description="bad input: `field` names the request field at fault"
)
DATASET_PARAM = OpenApiParameter("dataset", str, description="dataset name")


class Staff(APIView):
    permission_classes = [AdminOnly]


class HitList(Staff):
    @extend_schema(
        parameters=[DATASET_PARAM, OpenApiParameter("status", str, enum=[s for s, _ in Hit.STATUSES])],
        responses=HitSerializer(many=True),
        description="The 500 latest HITs.",
    )
    def get(self, request):
        qs = Hit.objects.select_related("batch__dataset").order_by("-created_at")
        if request.query_params.get("dataset"):
            qs = qs.filter(batch__dataset__name=request.query_params["dataset"])
        if request.query_params.get("status"):
            qs = qs.filter(status=request.query_params["status"])
        return Response(HitSerializer(qs[:500], many=True).data)


def _bool(value, default):
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    return str(value).lower() in ("1", "true", "yes", "on")


class Publish(Staff):
    """POST {"dataset", "count"?, "batches"?: [uuid], "backend"?, "sandbox"?, "mode"?, "reward"?, "dry_run"?}"""

    @extend_schema(
        request=PublishRequestSerializer,
        responses={
            200: OpenApiResponse(PublishEstimateSerializer, description="dry run: the estimate"),
            202: OpenApiResponse(PublishStartedSerializer, description="publishing started as a long operation"),
            400: ERROR_400,
        },
    )
    def post(self, request):
        data = request.data
        dataset = Dataset.objects.filter(name=data.get("dataset")).first()
        if dataset is None:
            raise ValidationError(f"no dataset named {data.get('dataset')!r}", field="dataset")
        try:
            reward = Decimal(str(data["reward"])) if data.get("reward") not in (None, "") else None
        except InvalidOperation:
            raise ValidationError("reward must be a number of dollars", field="reward") from None
        batches = None
        if data.get("batches"):
            batches = list(Batch.objects.filter(dataset=dataset, uuid__in=data["batches"]))
            if len(batches) != len(set(data["batches"])):
                raise ValidationError("some batches are not in this dataset", field="batches")
        kw = dict(
            count=data.get("count"),
            batches=batches,
            backend=data.get("backend", "mturk"),
            sandbox=_bool(data.get("sandbox"), True),
            mode=data.get("mode", "external"),
            reward=reward,
        )
        plan = publish_plan(dataset, dry_run=_bool(data.get("dry_run"), False), **kw)
        estimate = {
            "hits": len(plan.hits),
            "cost_usd": str(plan.total),
            "committed_usd": str(plan.committed),
            "budget_usd": str(plan.budget),
            "lines": plan.lines(),
            "warnings": plan.warnings,
        }
        if _bool(data.get("dry_run"), False):
            return Response({"dry_run": True, **estimate})
        op = batches_publish_start(plan, reward=reward, user=request.user)  # refusals: catalog.http's handler
        return Response({"dry_run": False, "operation": op.pk, **estimate}, status=202)


class SyncNow(Staff):
    @extend_schema(
        request=inline_serializer(
            "MarketplaceSyncRequest",
            {"dataset": serializers.CharField(required=False, help_text="dataset name (default: all)")},
        ),
        responses={202: OperationStartedSerializer, 400: ERROR_400},
    )
    def post(self, request):
        dataset = None
        if request.data.get("dataset"):
            dataset = Dataset.objects.filter(name=request.data["dataset"]).first()
            if dataset is None:
                raise ValidationError("no such dataset", field="dataset")
        op = marketplace_sync_start(dataset, request.user)
        return Response({"operation": op.pk}, status=202)


class OperationDetail(Staff):
    @extend_schema(responses={200: OperationSerializer, 404: OpenApiResponse(description="no such operation")})
    def get(self, request, pk):
        return Response(OperationSerializer(get_object_or_404(Operation, pk=pk)).data)


class DatasetSummary(Staff):
    @extend_schema(responses={200: DATASET_SUMMARY, 404: OpenApiResponse(description="no such dataset")})
    def get(self, request, name):
        d = dataset_ops(get_object_or_404(Dataset, name=name))
        return Response(
            {k: v for k, v in d.items() if k not in ("dataset", "workers", "rejections", "operations")}
            | {
                "operations": OperationSerializer(d["operations"], many=True).data,
                "workers": [
                    {
                        k: w[k]
                        for k in (
                            "worker",
                            "backend",
                            "assignments",
                            "approved",
                            "rejected",
                            "mean_catch_f1",
                            "approval_rate",
                            "is_blocked",
                        )
                    }
                    for w in d["workers"]
                ],
                "rejections": [
                    {
                        "assignment": str(a.uuid),
                        "worker": str(a.worker),
                        "catch_f1": a.catch_f1,
                        "reason": a.decision_reason,
                    }
                    for a in d["rejections"]
                ],
            }
        )


class InhouseAssign(Staff):
    """POST {"batch": uuid, "username": str}"""

    @extend_schema(
        request=InhouseAssignRequestSerializer,
        responses={
            201: OpenApiResponse(InhouseAssignResponseSerializer, description="assigned"),
            200: OpenApiResponse(InhouseAssignResponseSerializer, description="already assigned"),
            400: ERROR_400,
        },
    )
    def post(self, request):
        batch = Batch.objects.filter(uuid=request.data.get("batch")).first() if request.data.get("batch") else None
        if batch is None:
            raise ValidationError("unknown batch", field="batch")
        task, created = inhouse_assign(batch, str(request.data.get("username", "")), assigned_by=request.user)
        return Response(
            {
                "batch": str(batch.uuid),
                "username": task.user.username,
                "created": created,
                "url": f"/hit/{batch.uuid}/",
            },
            status=201 if created else 200,
        )


class BonusCreate(Staff):
    """POST {"assignment": uuid, "amount": "0.50", "reason": str, "idempotency_key"?: str} (or the
    Idempotency-Key header): queued, paid by the next sync exactly once. A repeated request returns the first
    bonus (200, replayed); a new one 201."""

    @extend_schema(
        request=BonusRequestSerializer,
        responses={
            201: BonusResponseSerializer,
            200: OpenApiResponse(BonusResponseSerializer, description="a repeated request: the first bonus"),
            400: ERROR_400,
        },
    )
    def post(self, request):
        ref = request.data.get("assignment")
        a = Assignment.objects.filter(uuid=ref).first() if ref and parse_uuid(ref) else None
        if a is None:
            raise ValidationError("unknown assignment", field="assignment")
        key = request.data.get("idempotency_key") or request.headers.get("Idempotency-Key")
        bonus = bonus_create(
            a,
            request.data.get("amount", "0"),
            str(request.data.get("reason", "")),
            user=request.user,
            idempotency_key=str(key) if key else None,
        )
        replayed = getattr(bonus, "replayed", False)
        return Response(
            {"bonus": bonus.pk, "status": bonus.status, "amount": str(bonus.amount), "replayed": replayed},
            status=200 if replayed else 201,
        )


urlpatterns = [
    path("hits/", HitList.as_view(), name="hits"),
    path("publish/", Publish.as_view(), name="publish"),
    path("sync/", SyncNow.as_view(), name="sync"),
    path("operations/<int:pk>/", OperationDetail.as_view(), name="operation"),
    path("datasets/<str:name>/summary/", DatasetSummary.as_view(), name="dataset-summary"),
    path("inhouse/assign/", InhouseAssign.as_view(), name="inhouse-assign"),
    path("bonuses/", BonusCreate.as_view(), name="bonuses"),
]
