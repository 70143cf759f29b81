"""Marketplace REST API (staff only), mounted under /api/marketplace/: HITs, publish (dry run = estimate),
sync now, long-operation progress, dataset operations summary, in-house assignment, bonuses."""
from decimal import Decimal, InvalidOperation

from django.db import transaction
from django.shortcuts import get_object_or_404
from django.urls import path
from rest_framework import permissions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.errors import AvcrowdError
from annotation.marketplace import MarketplaceError
from annotation.models import Assignment, Batch, Dataset, Hit, Operation


class HitSerializer(serializers.ModelSerializer):
    batch = serializers.UUIDField(source="batch.uuid")
    dataset = serializers.CharField(source="batch.dataset.name")

    class Meta:
        model = Hit
        fields = ["id", "dataset", "batch", "backend", "external_id", "sandbox", "mode", "reward", "max_assignments",
                  "target_assignments", "reposted", "status", "expires_at", "error", "created_at", "last_synced_at"]


class OperationSerializer(serializers.ModelSerializer):
    dataset = serializers.CharField(source="dataset.name", default=None)

    class Meta:
        model = Operation
        fields = ["id", "kind", "dataset", "status", "done", "total", "percent", "message", "summary", "started_at",
                  "finished_at"]


def _error(exc):
    if isinstance(exc, AvcrowdError):
        return Response(exc.as_dict(), status=exc.status_code)
    return Response({"error": exc.message}, status=status.HTTP_502_BAD_GATEWAY)


class Staff(APIView):
    permission_classes = [permissions.IsAdminUser]


class HitList(Staff):
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

    def post(self, request):
        from annotation.services.publish import publish_plan
        from annotation.tasks_marketplace import batches_publish_task

        data = request.data
        dataset = Dataset.objects.filter(name=data.get("dataset")).first()
        if dataset is None:
            return Response({"error": f"no dataset named {data.get('dataset')!r}", "field": "dataset"}, status=400)
        try:
            reward = Decimal(str(data["reward"])) if data.get("reward") not in (None, "") else None
        except InvalidOperation:
            return Response({"error": "reward must be a number of dollars", "field": "reward"}, status=400)
        batches = None
        if data.get("batches"):
            batches = list(Batch.objects.filter(dataset=dataset, uuid__in=data["batches"]))
            if len(batches) != len(set(data["batches"])):
                return Response({"error": "some batches are not in this dataset", "field": "batches"}, status=400)
        kw = dict(count=data.get("count"), batches=batches, backend=data.get("backend", "mturk"),
                  sandbox=_bool(data.get("sandbox"), True), mode=data.get("mode", "external"), reward=reward)
        try:
            plan = publish_plan(dataset, **kw)
        except AvcrowdError as exc:
            return _error(exc)
        estimate = {"hits": len(plan.hits), "cost_usd": str(plan.total), "committed_usd": str(plan.committed),
                    "budget_usd": str(plan.budget), "lines": plan.lines()}
        if _bool(data.get("dry_run"), False):
            return Response({"dry_run": True, **estimate})
        op = Operation.objects.create(kind=Operation.PUBLISH, dataset=dataset, started_by=request.user,
                                      total=len(plan.hits))
        transaction.on_commit(lambda: batches_publish_task.delay(
            dataset.pk, batch_ids=[p.batch.pk for p in plan.hits], backend=kw["backend"], sandbox=kw["sandbox"],
            mode=kw["mode"], reward=str(reward) if reward else None, operation_id=op.pk))
        return Response({"dry_run": False, "operation": op.pk, **estimate}, status=202)


class SyncNow(Staff):
    def post(self, request):
        from annotation.tasks_marketplace import marketplace_sync_task

        dataset = None
        if request.data.get("dataset"):
            dataset = Dataset.objects.filter(name=request.data["dataset"]).first()
            if dataset is None:
                return Response({"error": "no such dataset", "field": "dataset"}, status=400)
        op = Operation.objects.create(kind=Operation.SYNC, dataset=dataset, started_by=request.user)
        transaction.on_commit(lambda: marketplace_sync_task.delay(dataset.pk if dataset else None, op.pk))
        return Response({"operation": op.pk}, status=202)


class OperationDetail(Staff):
    def get(self, request, pk):
        return Response(OperationSerializer(get_object_or_404(Operation, pk=pk)).data)


class DatasetSummary(Staff):
    def get(self, request, name):
        from annotation.selectors.ops import dataset_ops

        d = dataset_ops(get_object_or_404(Dataset, name=name))
        return Response({k: v for k, v in d.items() if k not in ("dataset", "workers", "rejections")} | {
            "workers": [{k: w[k] for k in ("worker", "backend", "assignments", "approved", "rejected",
                                           "mean_catch_f1", "approval_rate", "is_blocked")} for w in d["workers"]],
            "rejections": [{"assignment": str(a.uuid), "worker": str(a.worker), "catch_f1": a.catch_f1,
                            "reason": a.decision_reason} for a in d["rejections"]]})


class InhouseAssign(Staff):
    """POST {"batch": uuid, "username": str}"""

    def post(self, request):
        from annotation.marketplace.inhouse import inhouse_assign

        batch = Batch.objects.filter(uuid=request.data.get("batch")).first() if request.data.get("batch") else None
        if batch is None:
            return Response({"error": "unknown batch", "field": "batch"}, status=400)
        try:
            task, created = inhouse_assign(batch, str(request.data.get("username", "")), assigned_by=request.user)
        except AvcrowdError as exc:
            return _error(exc)
        return Response({"batch": str(batch.uuid), "username": task.user.username, "created": created,
                         "url": f"/hit/{batch.uuid}/"}, status=201 if created else 200)


class BonusCreate(Staff):
    """POST {"assignment": uuid, "amount": "0.50", "reason": str}: paid by the next sync."""

    def post(self, request):
        from annotation.services.sync import bonus_create

        a = Assignment.objects.filter(uuid=request.data.get("assignment")).first() \
            if request.data.get("assignment") else None
        if a is None:
            return Response({"error": "unknown assignment", "field": "assignment"}, status=400)
        try:
            bonus = bonus_create(a, request.data.get("amount", "0"), str(request.data.get("reason", "")),
                                 user=request.user)
        except (AvcrowdError, InvalidOperation) as exc:
            if isinstance(exc, InvalidOperation):
                return Response({"error": "amount must be a number of dollars", "field": "amount"}, status=400)
            return _error(exc)
        except MarketplaceError as exc:
            return _error(exc)
        return Response({"bonus": bonus.pk, "status": bonus.status, "amount": str(bonus.amount)}, status=201)


urlpatterns = [
    path("hits/", HitList.as_view(), name="hits"),
    path("publish/", Publish.as_view(), name="publish"),
    path("sync/", SyncNow.as_view(), name="sync"),
    path("operations/<int:pk>/", OperationDetail.as_view(), name="operation"),
    path("datasets/<str:name>/summary/", DatasetSummary.as_view(), name="dataset-summary"),
    path("inhouse/assign/", InhouseAssign.as_view(), name="inhouse-assign"),
    path("bonuses/", BonusCreate.as_view(), name="bonuses"),
]
