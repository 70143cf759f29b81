"""Admin of the marketplace area: HITs, marketplace assignments, the call log, bonuses, blocks, in-house tasks,
operations; and the "Publish to MTurk / Prolific" action on batches (a confirmation page with the cost estimate)."""

from decimal import Decimal, InvalidOperation

from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse

from catalog.errors import AvcrowdError, ValidationError
from crowd.models import (
    Bonus,
    Hit,
    HitAssignment,
    InhouseTask,
    MarketplaceCall,
    MarketplaceQualification,
    ProlificStudy,
    WorkerBlock,
)
from crowd.services.publish import publish_plan
from crowd.services.sync import bonus_check, bonus_create
from crowd.tasks import batches_publish_start


class HitAssignmentInline(admin.TabularInline):
    model = HitAssignment
    extra = 0
    fields = ("external_id", "worker_external_id", "remote_status", "decision_pushed", "reposted", "assignment")
    readonly_fields = fields
    can_delete = False


@admin.register(Hit)
class HitAdmin(admin.ModelAdmin):
    list_display = (
        "external_id",
        "backend",
        "sandbox",
        "mode",
        "status",
        "reward",
        "max_assignments",
        "reposted",
        "expires_at",
        "last_synced_at",
    )
    list_filter = ("backend", "sandbox", "status", "mode", "batch__dataset")
    search_fields = ("external_id", "batch__uuid")
    raw_id_fields = ("batch",)
    readonly_fields = ("unique_request_token", "attempt", "created_at", "last_synced_at")
    inlines = [HitAssignmentInline]


@admin.register(MarketplaceCall)
class MarketplaceCallAdmin(admin.ModelAdmin):
    list_display = ("created_at", "backend", "operation", "sandbox", "ok", "error_code", "attempt", "duration_ms")
    list_filter = ("backend", "operation", "ok", "sandbox")
    readonly_fields = [f.name for f in MarketplaceCall._meta.fields]
    raw_id_fields = ("hit",)

    def has_add_permission(self, request):
        return False


class BonusAddForm(forms.ModelForm):
    """Adding a bonus: the service's checks (bonus_check) shown on the form's fields; bonus_create makes it."""

    class Meta:
        model = Bonus
        fields = ("assignment", "amount", "reason")

    def clean(self):
        data = super().clean()
        if {"assignment", "amount", "reason"} <= set(data):
            try:
                bonus_check(data["assignment"], data["amount"], data["reason"])
            except ValidationError as exc:
                self.add_error(exc.field if exc.field in self.fields else None, exc.message)
        return data


@admin.register(Bonus)
class BonusAdmin(admin.ModelAdmin):
    """Bonuses are money: added only through bonus_create (its checks shown on the form; the same bonus twice is the
    first one), never edited (a pending bonus can be deleted before the next sync pays it)."""

    form = BonusAddForm
    list_display = ("assignment", "amount", "status", "paid_at", "created_by")
    list_filter = ("status",)
    raw_id_fields = ("assignment",)

    def get_fields(self, request, obj=None):
        if obj is None:
            return list(BonusAddForm.Meta.fields)
        return [f.name for f in Bonus._meta.fields if f.name != "id"]

    def has_change_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        created = bonus_create(obj.assignment, obj.amount, obj.reason, user=request.user)
        for f in Bonus._meta.concrete_fields:  # the admin goes on with `obj` (log entry, redirect)
            setattr(obj, f.attname, getattr(created, f.attname))
        obj._state.adding, obj._state.db = False, created._state.db
        if getattr(created, "replayed", False):
            self.message_user(
                request,
                f"This assignment already has this bonus (#{created.pk}, ${created.amount}, same reason): nothing new "
                "was added and it is paid once. Give another reason for a second bonus.",
                messages.WARNING,
            )


@admin.register(WorkerBlock)
class WorkerBlockAdmin(admin.ModelAdmin):
    list_display = ("worker", "sandbox", "pushed", "reason", "created_at")
    list_filter = ("sandbox", "pushed")
    raw_id_fields = ("worker",)


@admin.register(InhouseTask)
class InhouseTaskAdmin(admin.ModelAdmin):
    list_display = ("batch", "user", "assigned_by", "created_at")
    raw_id_fields = ("batch",)

    def save_model(self, request, obj, form, change):
        obj.assigned_by = obj.assigned_by or request.user
        super().save_model(request, obj, form, change)


class PublishForm(forms.Form):
    backend = forms.ChoiceField(choices=[("mturk", "Amazon Mechanical Turk"), ("prolific", "Prolific")])
    environment = forms.ChoiceField(choices=[("sandbox", "MTurk sandbox"), ("production", "production (real money)")])
    mode = forms.ChoiceField(
        choices=[("external", "ExternalQuestion (our HIT page)"), ("html", "HTMLQuestion (self-contained crowd-form)")]
    )
    reward = forms.CharField(required=False, help_text="USD per assignment; empty = expected minutes at $7.25/h")


@admin.action(description="Publish to MTurk / Prolific (shows the cost first)")
def publish_to_marketplace(modeladmin, request, queryset):
    batches = list(queryset.select_related("dataset"))
    datasets = {b.dataset_id for b in batches}
    if len(datasets) != 1:
        modeladmin.message_user(request, "Pick batches of one dataset to publish together.", messages.ERROR)
        return None
    dataset = batches[0].dataset
    form = PublishForm(
        request.POST if "confirm" in request.POST or "estimate" in request.POST else None,
        initial={"backend": "mturk", "environment": "sandbox", "mode": "external"},
    )
    plan = error = None
    if form.is_bound and form.is_valid():
        try:
            reward = Decimal(form.cleaned_data["reward"]) if form.cleaned_data["reward"] else None
        except InvalidOperation:
            reward, error = None, f"reward {form.cleaned_data['reward']!r} is not a number of dollars"
        kw = dict(
            backend=form.cleaned_data["backend"],
            sandbox=form.cleaned_data["environment"] == "sandbox",
            mode=form.cleaned_data["mode"],
            reward=reward,
        )
        if error is None:
            try:
                plan = publish_plan(dataset, batches=batches, dry_run="confirm" not in request.POST, **kw)
            except AvcrowdError as exc:
                error = exc.as_text()
        if plan is not None and "confirm" in request.POST:
            try:
                op = batches_publish_start(plan, reward=reward, user=request.user)
            except AvcrowdError as exc:  # refused before anything was queued: say why on the same page
                error = exc.as_text()
            else:
                modeladmin.message_user(
                    request,
                    f"Publishing {len(plan.hits)} batch(es) for ${plan.total}: see /ops/operations/{op.pk}/",
                    messages.SUCCESS,
                )
                return None
    elif not form.is_bound:
        try:
            plan = publish_plan(dataset, batches=batches, dry_run=True)
        except AvcrowdError as exc:
            error = exc.as_text()
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": "Publish batches",
        "form": form,
        "plan": plan,
        "error": error,
        "batches": batches,
        "opts": modeladmin.model._meta,
        "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, "frontend/ops/publish_confirm.html", context)


@admin.register(HitAssignment)
class HitAssignmentAdmin(admin.ModelAdmin):
    list_display = (
        "external_id",
        "hit",
        "worker_external_id",
        "remote_status",
        "decision_pushed",
        "reposted",
        "submitted_at",
    )
    list_filter = ("remote_status", "decision_pushed", "reposted")
    search_fields = ("external_id", "worker_external_id")
    raw_id_fields = ("hit", "assignment")


admin.site.register(MarketplaceQualification)
admin.site.register(ProlificStudy)
