"""Admin actions of the annotator area: approve/reject overrides and unblocking, each with a reason (audited),
re-queue; and a "Create batches" page."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from catalog.errors import AvcrowdError
from catalog.models import Dataset
from crowd.admin.core import AssignmentAdmin, BatchAdmin, WorkerAdmin, WorkerStatusLogInline
from crowd.admin.marketplace import publish_to_marketplace
from crowd.models import Assignment, Batch, Worker
from crowd.selectors.review import pct
from crowd.services.assignments import assignment_decide
from crowd.services.batches import batch_refresh_status, batches_create
from crowd.services.workers import worker_unblock


class ReasonActionForm(ActionForm):
    reason = forms.CharField(
        required=False, label="Reason (kept in the audit log)", widget=forms.TextInput(attrs={"size": 50})
    )
    feedback = forms.CharField(
        required=False, label="Feedback to the worker", widget=forms.TextInput(attrs={"size": 50})
    )


def _decide(modeladmin, request, queryset, status):
    reason = (request.POST.get("reason") or "").strip()
    if not reason:
        modeladmin.message_user(request, "Type a reason in the Reason box: every override is audited.", messages.ERROR)
        return
    done, failed = 0, []
    for assignment in queryset:
        try:
            assignment_decide(
                assignment,
                status=status,
                actor=request.user,
                reason=reason,
                feedback=(request.POST.get("feedback") or "").strip(),
            )
            done += 1
        except AvcrowdError as exc:
            failed.append(f"{assignment.uuid}: {exc.message}")
    modeladmin.message_user(request, f"{done} assignment(s) set to {status}.", messages.SUCCESS)
    for line in failed:
        modeladmin.message_user(request, line, messages.WARNING)


class CrowdAssignmentAdmin(AssignmentAdmin):
    action_form = ReasonActionForm
    actions = ["approve_override", "reject_override", "release_abandoned"]
    list_display = ("uuid", "worker", "batch", "status", "catch_f1_pct", "submitted_at", "review_link")
    list_select_related = ("batch__dataset", "worker")
    readonly_fields = (
        "uuid",
        "review_link",
        "catch_f1_pct",
        "catch_precision",
        "catch_recall",
        "status",
        "decided_at",
        "decision_reason",
    )

    @admin.display(description="catch F1", ordering="catch_f1")
    def catch_f1_pct(self, obj):
        return pct(obj.catch_f1)

    @admin.display(description="review")
    def review_link(self, obj):
        url = reverse("review:assignment", args=[obj.batch.dataset.name, obj.uuid])
        return format_html('<a href="{}">review screen</a>', url)

    @admin.action(description="Approve (override; needs a reason)")
    def approve_override(self, request, queryset):
        _decide(self, request, queryset, Assignment.APPROVED)

    @admin.action(description="Reject and re-queue the clips (override; needs a reason)")
    def reject_override(self, request, queryset):
        _decide(self, request, queryset, Assignment.REJECTED)

    @admin.action(description="Release abandoned in-progress assignments (frees their slot; needs a reason)")
    def release_abandoned(self, request, queryset):
        _decide(self, request, queryset.filter(status=Assignment.IN_PROGRESS), Assignment.REJECTED)


class CreateBatchesForm(forms.Form):
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.order_by("name"), to_field_name="name")


class CrowdBatchAdmin(BatchAdmin):
    actions = ["requeue", publish_to_marketplace]
    change_list_template = "admin/crowd/batch/change_list_create.html"

    def get_urls(self):
        extra = [path("create/", self.admin_site.admin_view(self.create_view), name="crowd_batch_create")]
        return extra + super().get_urls()

    def create_view(self, request):
        """Build batches from the dataset's clips that are in no batch yet (batch size, gold per batch and the
        proposals as `create_batches` uses them)."""
        if not self.has_add_permission(request):
            messages.error(request, "Creating batches needs the permission to add batches.")
            return redirect(reverse("admin:crowd_batch_changelist"))
        form = CreateBatchesForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            dataset = form.cleaned_data["dataset"]
            try:
                batches = batches_create(dataset)
            except AvcrowdError as exc:
                messages.error(request, exc.message)
                for detail in exc.details if isinstance(exc.details, (list, tuple)) else []:
                    messages.error(request, detail)
            else:
                if batches:
                    messages.success(request, f"Created {len(batches)} batch(es) in dataset {dataset.name}.")
                else:
                    messages.warning(request, f"Every clip of dataset {dataset.name} is in a batch already.")
                return redirect(reverse("admin:crowd_batch_changelist") + f"?dataset__id__exact={dataset.pk}")
        context = {
            **self.admin_site.each_context(request),
            "title": "Create batches",
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/crowd/batch/create.html", context)

    @admin.action(description="Re-queue: re-open batches that lack annotators after rejections")
    def requeue(self, request, queryset):
        reopened = 0
        for batch in queryset.select_related("dataset"):
            before = batch.status
            if batch_refresh_status(batch).status == Batch.OPEN and before != Batch.OPEN:
                reopened += 1
        self.message_user(request, f"{reopened} batch(es) re-opened; the others are open or full.")


class UnblockActionForm(ActionForm):
    reason = forms.CharField(
        required=False, label="Reason (kept in the audit log)", widget=forms.TextInput(attrs={"size": 50})
    )


class CrowdWorkerAdmin(WorkerAdmin):
    action_form = UnblockActionForm
    actions = ["unblock"]
    list_display = ("external_id", "backend", "mean_catch_f1", "n_scored", "is_blocked", "blocked_reason")
    inlines = [WorkerStatusLogInline]

    @admin.action(description="Unblock the selected workers (needs a reason)")
    def unblock(self, request, queryset):
        reason = (request.POST.get("reason") or "").strip()
        if not reason:
            self.message_user(request, "Type a reason in the Reason box: every unblock is audited.", messages.ERROR)
            return
        n = sum(worker_unblock(worker, request.user, reason) for worker in queryset)
        self.message_user(request, f"{n} worker(s) unblocked.")


admin.site.register(Assignment, CrowdAssignmentAdmin)
admin.site.register(Batch, CrowdBatchAdmin)
admin.site.register(Worker, CrowdWorkerAdmin)
