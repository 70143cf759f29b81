"""Publishing batches: MTurk HITs (ExternalQuestion or HTMLQuestion), Prolific studies, in-house assignment.

`publish_plan` validates and prices; `batches_publish` creates the HITs (or, with dry_run, only prints them).
Every create call carries a UniqueRequestToken derived from the batch uuid and the attempt number, so a re-run
after a crash re-sends the same token and MTurk does not post the HIT twice.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from catalog.errors import ValidationError
from catalog.selectors.clips import clip_media_url
from catalog.selectors.taxonomy import class_names
from catalog.services.operations import Progress
from crowd.marketplace import MarketplaceConfigError, MarketplaceError, crowdform, mturk
from crowd.marketplace import prolific as prolific_mod
from crowd.marketplace.retry import as_marketplace_error, error_message, is_duplicate_token
from crowd.models import Batch, Hit, MarketplaceQualification, ProlificStudy, Worker
from crowd.services.costs import cost_per_assignment, dataset_spend, hit_cost_per_assignment, reward_for_batch

MODES = ("external", "html")
BACKENDS = ("mturk", "prolific")
BLOCKED_QUALIFICATION_NAME = "avcrowd: blocked by requester"


@dataclass
class HitSettings:
    title: str = "Label what you hear and see in short videos"
    description: str = (
        "Watch short video clips with sound and tick which of the listed sound/object classes "
        "are audible and which are visible."
    )
    keywords: str = "video, audio, sound, labeling, classification, annotation"
    assignment_duration_seconds: int = 3600
    lifetime_seconds: int = 7 * 24 * 3600
    auto_approval_delay_seconds: int = 3 * 24 * 3600
    frame_height: int = 0
    qualifications: mturk.QualificationPolicy = field(default_factory=mturk.QualificationPolicy)

    @classmethod
    def from_settings(cls, **overrides) -> "HitSettings":
        conf = dict(getattr(settings, "MTURK_HIT", {}) or {})
        quals = dict(conf.pop("qualifications", {}) or {})
        for key in ("masters", "min_approval_rate", "min_approved_hits", "locales"):
            if key in overrides and overrides[key] is not None:
                quals[key] = overrides.pop(key)
            overrides.pop(key, None)
        if "locales" in quals:
            quals["locales"] = tuple(quals["locales"])
        conf.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**conf, qualifications=mturk.QualificationPolicy(**quals))


@dataclass
class PlannedHit:
    batch: object
    reward: Decimal
    assignments: int
    cost: Decimal
    n_clips: int
    n_gold: int


@dataclass
class PublishPlan:
    dataset: object
    backend: str
    sandbox: bool
    mode: str
    hits: list[PlannedHit]
    total: Decimal
    committed: Decimal
    budget: Decimal
    settings: HitSettings

    def lines(self) -> list[str]:
        env = "sandbox" if self.sandbox else "PRODUCTION"
        out = [f"{len(self.hits)} HIT(s) on {self.backend} {env}, mode {self.mode}:"]
        for h in self.hits:
            out.append(
                f"  batch {h.batch.uuid}: {h.n_clips} clips ({h.n_gold} gold), reward ${h.reward} x "
                f"{h.assignments} assignments = ${h.cost} incl. fees"
            )
        out.append(
            f"total ${self.total}; already committed ${self.committed}; budget ${self.budget}; "
            f"after publishing ${self.committed + self.total} "
            f"({'within' if self.committed + self.total <= self.budget else 'OVER'} budget)"
        )
        return out


def request_token(batch, attempt: int, kind: str = "hit") -> str:
    """UniqueRequestToken for a create call: deterministic from batch id + attempt (<= 64 characters)."""
    return f"avcrowd-{kind}-{batch.uuid.hex}-{attempt}"[:64]


def _unpublished_batches(dataset, backend: str, sandbox: bool):
    live = Hit.objects.filter(backend=backend, sandbox=sandbox).exclude(status__in=(Hit.FAILED, Hit.PENDING))
    return Batch.objects.filter(dataset=dataset, status=Batch.OPEN).exclude(hits__in=live).order_by("created_at", "id")


def publish_plan(
    dataset,
    *,
    count: int | None = None,
    batches=None,
    backend: str = "mturk",
    sandbox: bool = True,
    mode: str = "external",
    reward: Decimal | None = None,
    hit_settings: HitSettings | None = None,
) -> PublishPlan:
    """Check the batches can be published and price them; refuses with the reason (no proposals, no gold clips,
    over budget, nothing to publish)."""
    if backend not in BACKENDS:
        raise ValidationError(f"backend {backend!r} is not allowed; allowed: {', '.join(BACKENDS)}", field="backend")
    if mode not in MODES:
        raise ValidationError(f"mode {mode!r} is not allowed; allowed: {', '.join(MODES)}", field="mode")
    if reward is not None and Decimal(reward) < Decimal("0.01"):
        raise ValidationError(f"reward ${reward} is too low; MTurk requires at least $0.01", field="reward")
    hs = hit_settings or HitSettings.from_settings()
    if batches is None:
        if count is not None and count < 1:
            raise ValidationError(f"count must be >= 1, got {count}", field="count")
        batches = list(_unpublished_batches(dataset, backend, sandbox)[: count or None])
        if not batches:
            raise ValidationError(
                f"dataset {dataset.name} has no open, unpublished batches to publish on "
                f"{backend} ({'sandbox' if sandbox else 'production'}); create batches first",
                field="count",
            )
    else:
        batches = list(batches)
        published = set(_published_ids(batches, backend, sandbox))
        if published:
            raise ValidationError(
                "these batches are already published: " + ", ".join(str(b.uuid) for b in batches if b.pk in published),
                field="batches",
            )
    problems: list[str] = []
    planned: list[PlannedHit] = []
    for batch in batches:
        if batch.dataset_id != dataset.pk:
            problems.append(f"batch {batch.uuid} belongs to dataset {batch.dataset.name}, not {dataset.name}")
            continue
        items = list(batch.items.all())
        n_gold = sum(1 for i in items if i.is_gold)
        no_props = [i.clip.video_id for i in items if not i.is_gold and not i.proposals]
        if not items:
            problems.append(f"batch {batch.uuid} has no clips")
            continue
        if no_props:
            problems.append(
                f"batch {batch.uuid}: {len(no_props)} clip(s) without proposals "
                f"(e.g. {', '.join(no_props[:3])}); compute proposals first"
            )
        if dataset.gold_per_batch and n_gold == 0:
            problems.append(
                f"batch {batch.uuid} has no gold clips (the dataset asks for {dataset.gold_per_batch} "
                "per batch); mark gold clips and rebuild the batch"
            )
        r = Decimal(reward) if reward is not None else reward_for_batch(len(items))
        n = dataset.annotations_per_clip
        cost = cost_per_assignment(backend, r, n, hs.qualifications.masters) * n
        planned.append(PlannedHit(batch, r, n, cost, len(items), n_gold))
    if problems:
        raise ValidationError(f"cannot publish: {len(problems)} problem(s)", field="batches", details=problems)
    total = sum((p.cost for p in planned), Decimal(0))
    spend = dataset_spend(dataset, sandbox=sandbox)
    # a pending HIT of a crashed run is about to be re-sent (same token): it is in `total`, not twice

    resent = sum(
        (
            hit_cost_per_assignment(h) * h.max_assignments
            for h in Hit.objects.filter(
                batch__in=[p.batch for p in planned], backend=backend, sandbox=sandbox, status=Hit.PENDING
            )
        ),
        Decimal(0),
    )
    spend.committed -= resent
    plan = PublishPlan(dataset, backend, sandbox, mode, planned, total, spend.committed, spend.budget, hs)
    if spend.committed + total > spend.budget:
        raise ValidationError(
            f"over budget: publishing costs ${total} and ${spend.committed} is already committed, "
            f"${spend.committed + total} in all, but dataset {dataset.name}'s budget is ${spend.budget}; "
            f"raise the budget or publish fewer batches",
            field="budget",
            details=plan.lines(),
        )
    return plan


def _published_ids(batches, backend, sandbox):
    return (
        Hit.objects.filter(batch__in=batches, backend=backend, sandbox=sandbox)
        .exclude(status__in=(Hit.FAILED, Hit.PENDING))
        .values_list("batch_id", flat=True)
    )


def hit_page_url(batch) -> str:
    base = getattr(settings, "PUBLIC_BASE_URL", "").rstrip("/")
    return f"{base}/hit/{batch.uuid}/"


def public_media_url(clip) -> str:
    """The clip's media URL as a worker's browser reaches it (absolute, on PUBLIC_BASE_URL when served here)."""
    if clip.media_url.startswith(("http://", "https://")):
        return clip.media_url
    return getattr(settings, "PUBLIC_BASE_URL", "").rstrip("/") + clip_media_url(clip)


def batch_inputs(batch) -> tuple[list[str], list[list[str]]]:
    """(video_urls, proposal_lists) of a batch in position order, as the crowd-form page and the CSV use them."""
    items = list(batch.items.select_related("clip").order_by("position"))
    return [public_media_url(i.clip) for i in items], [list(i.proposals) for i in items]


def question_for(batch, mode: str, hs: HitSettings) -> str:
    if mode == "external":
        return mturk.external_question(hit_page_url(batch), hs.frame_height)
    urls, props = batch_inputs(batch)
    try:
        return mturk.html_question(crowdform.crowd_form_page(urls, props, class_names()), hs.frame_height)
    except ValueError as exc:
        raise ValidationError(f"batch {batch.uuid}: {exc}", field="mode") from exc


def _check_public_url(plan: PublishPlan):
    if plan.backend == "mturk" and plan.mode == "external" and not mturk.setting("MTURK_ENDPOINT_URL"):
        base = getattr(settings, "PUBLIC_BASE_URL", "")
        if not base.startswith("https://"):
            raise ValidationError(
                f"ExternalQuestion needs an HTTPS page: PUBLIC_BASE_URL is {base!r}; set it to "
                "this server's public https:// address, or publish with mode 'html'",
                field="PUBLIC_BASE_URL",
            )


def ensure_blocked_qualification(mt: mturk.MTurk) -> str:
    """Our 'blocked by requester' qualification type in this environment (created on first use)."""
    row = MarketplaceQualification.objects.filter(sandbox=mt.sandbox, purpose="blocked").first()
    if row:
        return row.qualification_type_id
    try:
        resp = mt.call(
            "CreateQualificationType",
            Name=BLOCKED_QUALIFICATION_NAME,
            Keywords="avcrowd",
            Description="Given to workers whose work on our video labelling HITs was blocked.",
            QualificationTypeStatus="Active",
        )
        qid = resp["QualificationType"]["QualificationTypeId"]
    except Exception as exc:  # noqa: BLE001 - an existing type of that name is found and reused
        if "already" not in error_message(exc).lower():
            raise
        found = [
            q
            for q in mt.paginate(
                "ListQualificationTypes",
                "QualificationTypes",
                Query=BLOCKED_QUALIFICATION_NAME,
                MustBeRequestable=False,
                MustBeOwnedByCaller=True,
                MaxResults=100,
            )
            if q["Name"] == BLOCKED_QUALIFICATION_NAME
        ]
        if not found:
            raise
        qid = found[0]["QualificationTypeId"]
    MarketplaceQualification.objects.create(sandbox=mt.sandbox, purpose="blocked", qualification_type_id=qid)
    return qid


@dataclass
class PublishResult:
    plan: PublishPlan
    created: list = field(default_factory=list)
    failed: list = field(default_factory=list)  # (batch uuid, message)
    dry_run: bool = False

    def summary(self) -> dict:
        return {
            "dry_run": self.dry_run,
            "backend": self.plan.backend,
            "sandbox": self.plan.sandbox,
            "planned": len(self.plan.hits),
            "created": len(self.created),
            "failed": len(self.failed),
            "cost_usd": str(self.plan.total),
            "errors": [f"{b}: {m}" for b, m in self.failed],
        }


def batches_publish(
    dataset,
    *,
    count: int | None = None,
    batches=None,
    backend: str = "mturk",
    sandbox: bool = True,
    dry_run: bool = False,
    mode: str = "external",
    reward: Decimal | None = None,
    hit_settings: HitSettings | None = None,
    echo=None,
    user=None,
    operation=None,
) -> PublishResult:
    """Publish batches (see module doc). A failure on one batch is recorded and the others go on; missing
    credentials stop before anything is sent."""
    plan = publish_plan(
        dataset,
        count=count,
        batches=batches,
        backend=backend,
        sandbox=sandbox,
        mode=mode,
        reward=reward,
        hit_settings=hit_settings,
    )
    result = PublishResult(plan, dry_run=dry_run)
    if dry_run:
        for line in plan.lines():
            echo and echo(line)
        if backend == "mturk":
            for h in plan.hits[:1]:
                echo and echo(f"question of batch {h.batch.uuid}: {question_for(h.batch, mode, plan.settings)[:300]}")
        return result
    _check_public_url(plan)
    progress = Progress("publish", dataset=dataset, user=user, echo=echo, operation=operation)
    progress.total(len(plan.hits))
    try:
        if backend == "mturk":
            _publish_mturk(plan, result, progress)
        else:
            _publish_prolific(plan, result, progress)
    except MarketplaceConfigError as exc:
        progress.finish(result.summary(), failed=True, message=exc.message)
        raise
    progress.finish(
        result.summary(),
        failed=bool(result.failed and not result.created),
        message=f"created {len(result.created)}, failed {len(result.failed)}",
    )
    return result


def _hit_row(planned: PlannedHit, plan: PublishPlan, token_kind: str):
    """The Hit row for this batch: a pending one from a crashed run is reused (same token), a failed one gives
    the next attempt a new token."""
    hs = plan.settings
    pending = Hit.objects.filter(
        batch=planned.batch, backend=plan.backend, sandbox=plan.sandbox, status=Hit.PENDING
    ).first()
    if pending:
        return pending
    attempt = Hit.objects.filter(batch=planned.batch, backend=plan.backend, sandbox=plan.sandbox).count() + 1
    return Hit.objects.create(
        batch=planned.batch,
        backend=plan.backend,
        sandbox=plan.sandbox,
        mode=plan.mode,
        reward=planned.reward,
        masters=hs.qualifications.masters,
        max_assignments=planned.assignments,
        target_assignments=planned.assignments,
        lifetime_seconds=hs.lifetime_seconds,
        assignment_duration_seconds=hs.assignment_duration_seconds,
        auto_approval_delay_seconds=hs.auto_approval_delay_seconds,
        title=hs.title[:200],
        unique_request_token=request_token(planned.batch, attempt, token_kind),
        attempt=attempt,
    )


def _publish_mturk(plan: PublishPlan, result: PublishResult, progress: Progress):
    mt = mturk.get_backend(plan.sandbox)
    hs = plan.settings
    blocked_list = list(mturk.setting("MTURK_BLOCK_LIST", []) or [])
    if isinstance(blocked_list, str):
        blocked_list = [w.strip() for w in blocked_list.split(",") if w.strip()]
    _block_list_workers(blocked_list)
    qual_id = hs.qualifications.blocked_qualification_id
    if qual_id is None and mturk.setting("MTURK_USE_BLOCKED_QUALIFICATION", True) not in (False, "0", "false"):
        try:
            qual_id = ensure_blocked_qualification(mt)
        except Exception as exc:  # noqa: BLE001
            raise as_marketplace_error(exc, "could not create the 'blocked' qualification type") from exc
    quals = mturk.qualification_requirements(
        mturk.QualificationPolicy(**{**hs.qualifications.__dict__, "blocked_qualification_id": qual_id}),
        sandbox=plan.sandbox,
    )
    for planned in plan.hits:
        hit = _hit_row(planned, plan, "hit")
        params = dict(
            MaxAssignments=hit.max_assignments,
            AutoApprovalDelayInSeconds=hit.auto_approval_delay_seconds,
            LifetimeInSeconds=hit.lifetime_seconds,
            AssignmentDurationInSeconds=hit.assignment_duration_seconds,
            Reward=str(hit.reward),
            Title=hs.title,
            Keywords=hs.keywords,
            Description=hs.description,
            Question=question_for(planned.batch, plan.mode, hs),
            RequesterAnnotation=str(planned.batch.uuid),
            QualificationRequirements=quals,
            UniqueRequestToken=hit.unique_request_token,
        )
        try:
            try:
                resp = mt.call("CreateHIT", hit=hit, **params)["HIT"]
            except Exception as exc:  # noqa: BLE001
                if not is_duplicate_token(exc):
                    raise
                resp = _find_hit(mt, planned.batch, hit)
                if resp is None:
                    raise
        except MarketplaceConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 - one failed HIT must not stop the others
            err = as_marketplace_error(exc, "CreateHIT failed") if not isinstance(exc, MarketplaceError) else exc
            Hit.objects.filter(pk=hit.pk).update(status=Hit.FAILED, error=err.message)
            result.failed.append((str(planned.batch.uuid), err.message))
            progress.step(f"batch {planned.batch.uuid}: FAILED: {err.message}")
            continue
        with transaction.atomic():
            hit.external_id = resp["HITId"]
            hit.hit_type_id = resp.get("HITTypeId", "")
            hit.expires_at = resp.get("Expiration") or (timezone.now() + dt.timedelta(seconds=hit.lifetime_seconds))
            hit.status = Hit.OPEN
            hit.error = ""
            hit.save()
        result.created.append(hit)
        progress.step(
            f"batch {planned.batch.uuid}: HIT {hit.external_id} "
            f"({mturk.worker_site(plan.sandbox)}/projects/{hit.hit_type_id}/tasks)"
        )


def _find_hit(mt: mturk.MTurk, batch, hit) -> dict | None:
    """After MTurk said the token was already used: the HIT an earlier (crashed) run created for this batch."""
    for h in mt.paginate("ListHITs", "HITs", hit=hit, MaxResults=100):
        if h.get("RequesterAnnotation") == str(batch.uuid):
            return h
    return None


def _block_list_workers(worker_ids: list[str]):
    for wid in worker_ids:
        w, _ = Worker.objects.get_or_create(backend="mturk", external_id=wid)
        if not w.is_blocked:
            w.is_blocked = True
            w.blocked_reason = w.blocked_reason or "on the requester's block list (MTURK_BLOCK_LIST)"
            w.save(update_fields=["is_blocked", "blocked_reason"])


def _publish_prolific(plan: PublishPlan, result: PublishResult, progress: Progress):
    client = prolific_mod.client_factory()
    hs = plan.settings
    for planned in plan.hits:
        hit = _hit_row(planned, plan, "study")
        study = getattr(hit, "prolific", None) or ProlificStudy.objects.create(
            hit=hit,
            completion_code=prolific_mod.new_completion_code(plan.dataset),
            internal_name=f"avcrowd {plan.dataset.name} {planned.batch.uuid}",
        )
        try:
            if not hit.external_id:
                resp = client.create_study(
                    name=hs.title,
                    description=hs.description,
                    external_url=hit_page_url(planned.batch),
                    completion_code=study.completion_code,
                    places=hit.max_assignments,
                    minutes=max(1, int(hs.assignment_duration_seconds // 60 // 3)),
                    reward_cents=int(hit.reward * 100),
                    hit=hit,
                )
                hit.external_id = str(resp["id"])
                hit.save(update_fields=["external_id"])
            client.publish_study(hit.external_id, hit=hit)
        except MarketplaceConfigError:
            raise
        except Exception as exc:  # noqa: BLE001
            msg = getattr(exc, "message", None) or str(exc)
            # a study that exists on Prolific stays pending, so a re-run publishes it instead of creating another
            Hit.objects.filter(pk=hit.pk).update(status=Hit.PENDING if hit.external_id else Hit.FAILED, error=msg)
            result.failed.append((str(planned.batch.uuid), msg))
            progress.step(f"batch {planned.batch.uuid}: FAILED: {msg}")
            continue
        hit.status = Hit.OPEN
        hit.expires_at = timezone.now() + dt.timedelta(seconds=hit.lifetime_seconds)
        hit.save()
        study.remote_status = "ACTIVE"
        study.save(update_fields=["remote_status"])
        result.created.append(hit)
        progress.step(f"batch {planned.batch.uuid}: Prolific study {hit.external_id}")
