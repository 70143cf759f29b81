"""Publishing batches: MTurk HITs (ExternalQuestion or HTMLQuestion), Prolific studies, in-house assignment.

`publish_plan` validates and prices; `batches_publish` creates the HITs (or, with dry_run, only prints them).
Every create call carries a UniqueRequestToken derived from the batch uuid and the publish round, so a re-run after
a crash or an ambiguous failure (the HIT may exist, the answer was lost) re-sends the same token: MTurk answers
"already processed" and the HIT is found (RequesterAnnotation = batch uuid) and recorded, never posted twice. Only a
definite refusal (a 4xx that created nothing) ends a round. One backend per batch; batches whose results were
imported from a results file are closed for publishing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from botocore.exceptions import ClientError
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from catalog.errors import ValidationError
from catalog.selectors.clips import clip_media_url
from catalog.selectors.taxonomy import class_names
from catalog.services.operations import Progress
from crowd.marketplace import MarketplaceConfigError, MarketplaceError, crowdform, mturk
from crowd.marketplace import prolific as prolific_mod
from crowd.marketplace.retry import as_marketplace_error, error_message, is_duplicate_token, is_retryable
from crowd.models import Batch, Hit, MarketplaceQualification, ProlificStudy, Worker
from crowd.services.costs import (
    cost_per_assignment,
    dataset_spend,
    hit_cost_per_assignment,
    prolific_estimate,
    prolific_reward_floor,
    reward_for_batch,
    seconds_per_clip,
)
from crowd.services.workers import worker_block

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
    passed_gold_only: bool = False  # Prolific: only participants whose check-clip F1 passed (an allow list)

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
    warnings: list[str] = field(default_factory=list)

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
        out += [f"WARNING: {w}" for w in self.warnings]
        return out


def request_token(batch, attempt: int, kind: str = "hit") -> str:
    """UniqueRequestToken for a create call: deterministic from batch id + attempt (<= 64 characters)."""
    return f"avcrowd-{kind}-{batch.uuid.hex}-{attempt}"[:64]


def _live_hits():
    """HITs / studies that exist on a marketplace, or may (a pending one: its create call's outcome is unknown)."""
    return Hit.objects.exclude(status=Hit.FAILED)


def _unpublished_batches(dataset, backend: str, sandbox: bool):
    """Open batches with nothing live on this backend and environment, none on another backend, nothing imported."""
    live_here = Hit.objects.filter(backend=backend, sandbox=sandbox).exclude(status__in=(Hit.FAILED, Hit.PENDING))
    elsewhere = _live_hits().exclude(backend=backend)
    return (
        Batch.objects.filter(dataset=dataset, status=Batch.OPEN)
        .exclude(hits__in=live_here)
        .exclude(hits__in=elsewhere)
        .exclude(hits__imported=True)
        .order_by("created_at", "id")
    )


def batch_publish_refusal(batch, backend: str) -> str | None:
    """Why `batch` cannot be published on `backend` (any environment), or None: its results were imported from a
    results file, or it is live on another backend (one backend per batch)."""
    imported = batch.hits.filter(imported=True).first()
    if imported is not None:
        return (
            f"batch {batch.uuid} holds results imported from a results file (HIT {imported.external_id}); "
            "its work is done, it is closed for publishing"
        )
    other = _live_hits().filter(batch=batch).exclude(backend=backend).first()
    if other is not None:
        kind = "HIT" if other.backend == Hit.MTURK else "study"
        return (
            f"batch {batch.uuid} is already published on {other.get_backend_display()} ({kind} "
            f"{other.external_id or '(pending)'}, {other.status}); one backend per batch: publish other batches "
            f"on {backend}"
        )
    return None


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
    dry_run: bool = False,
) -> PublishPlan:
    """Check the batches can be published and price them; refuses with the reason (no proposals, no gold clips,
    over budget, nothing to publish). A dry run is not refused for the budget (a new dataset's is $0.00): the plan
    says what budget it needs in its warnings. A reward below the estimate for the clips is warned with the
    numbers."""
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
    low_rewards: dict[int, Decimal] = {}  # n_clips -> the estimate a lower reward is under
    low_wages: dict[tuple[int, float], Decimal] = {}  # (n_clips, minutes) -> a reward under the dataset's wage
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
        refusal = batch_publish_refusal(batch, backend)
        if refusal:
            problems.append(refusal)
            continue
        if backend == "prolific":
            estimate = prolific_estimate(dataset, len(items))
            r = Decimal(reward) if reward is not None else prolific_reward_floor(estimate.minutes)
            low = estimate.refusal(r)
            if low:
                problems.append(f"batch {batch.uuid}: {low}")
                continue
            minutes = float(estimate.minutes)
        else:
            estimate_r = reward_for_batch(len(items))
            r = Decimal(reward) if reward is not None else estimate_r
            if r < estimate_r:
                low_rewards.setdefault(len(items), estimate_r)
            minutes = mturk.expected_minutes(len(items), seconds_per_clip())
        if dataset.min_hourly_wage_usd and r < wage_reward(dataset.min_hourly_wage_usd, minutes):
            low_wages.setdefault((len(items), minutes), r)
        n = batch.wanted
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
    plan.warnings += [reward_warning(Decimal(reward), n, est) for n, est in sorted(low_rewards.items())]
    plan.warnings += [wage_warning(dataset, r, n, m) for (n, m), r in sorted(low_wages.items())]
    if spend.committed + total > spend.budget:
        if spend.budget <= 0:
            over = (
                f"dataset {dataset.name} has no budget yet ($0.00): set its budget (budget_usd: Django admin > "
                f"Datasets, or PATCH /api/datasets/{dataset.name}/) to at least ${spend.committed + total} to "
                f"publish these {len(planned)} HIT(s)"
            )
        else:
            over = (
                f"over budget: publishing costs ${total} and ${spend.committed} is already committed, "
                f"${spend.committed + total} in all, but dataset {dataset.name}'s budget is ${spend.budget}; "
                f"raise the budget or publish fewer batches"
            )
        if not dry_run:
            raise ValidationError(over, field="budget", details=plan.lines())
        plan.warnings.append(over + " (this dry run is shown anyway; publishing is refused until then)")
    return plan


def reward_warning(reward: Decimal, n_clips: int, estimate: Decimal) -> str:
    """A reward under the estimate for `n_clips` clips (expected minutes at the US federal minimum wage)."""
    minutes = mturk.expected_minutes(n_clips, seconds_per_clip())
    hourly = (reward * 60 / Decimal(str(minutes))).quantize(Decimal("0.01"))
    return (
        f"reward ${reward} for a {n_clips}-clip HIT is below the estimate ${estimate} ({n_clips} clips x "
        f"{seconds_per_clip():g} s = {minutes:g} min at ${mturk.US_MINIMUM_WAGE_PER_HOUR}/h): workers would earn "
        f"about ${hourly}/h"
    )


def wage_reward(wage_per_hour: Decimal, minutes: float) -> Decimal:
    """The smallest reward paying `wage_per_hour` for `minutes` of work (rounded up to the cent)."""
    return mturk.default_reward(minutes, wage_per_hour)


def wage_warning(dataset, reward: Decimal, n_clips: int, minutes: float) -> str:
    """A reward that pays less per hour than the minimum wage `dataset` declares, with the numbers."""
    wage = dataset.min_hourly_wage_usd
    hourly = (reward * 60 / Decimal(str(minutes))).quantize(Decimal("0.01"))
    return (
        f"reward ${reward} for a {n_clips}-clip HIT pays about ${hourly}/h ({minutes:g} min expected), below the "
        f"minimum wage dataset {dataset.name} declares (${wage}/h): a reward of at least "
        f"${wage_reward(wage, minutes)} would meet it"
    )


def _published_ids(batches, backend, sandbox):
    return (
        Hit.objects.filter(batch__in=batches, backend=backend, sandbox=sandbox)
        .exclude(status__in=(Hit.FAILED, Hit.PENDING))
        .values_list("batch_id", flat=True)
    )


def hit_page_url(batch) -> str:
    base = getattr(settings, "PUBLIC_BASE_URL", "").rstrip("/")
    return f"{base}/hit/{batch.uuid}/"


def public_media_url(clip, *, valid_seconds: int | None = None) -> str:
    """The clip's media URL as a worker's browser reaches it (absolute, on PUBLIC_BASE_URL when served here).
    valid_seconds: how long a URL served here must keep working (default: the media endpoint's 24 h)."""
    if clip.media_url.startswith(("http://", "https://")):
        return clip.media_url
    return getattr(settings, "PUBLIC_BASE_URL", "").rstrip("/") + clip_media_url(clip, valid_seconds=valid_seconds)


def media_valid_seconds(hs: HitSettings) -> int:
    """How long the media URLs embedded in a HIT must work: a worker may accept it at the end of its lifetime,
    work for the assignment duration, and the requester reviews it until the auto-approval delay has passed."""
    return int(hs.lifetime_seconds + hs.assignment_duration_seconds + hs.auto_approval_delay_seconds)


def batch_inputs(batch, *, valid_seconds: int | None = None) -> tuple[list[str], list[str], list[list[str]]]:
    """(clip_ids, video_urls, proposal_lists) of a batch in position order, as the crowd-form page and the
    requester-UI CSV use them. Answers come back keyed by clip id, so URLs may change (re-signed) freely."""
    items = list(batch.items.select_related("clip").order_by("position"))
    return (
        [i.clip.video_id for i in items],
        [public_media_url(i.clip, valid_seconds=valid_seconds) for i in items],
        [list(i.proposals) for i in items],
    )


def question_for(batch, mode: str, hs: HitSettings) -> str:
    if mode == "external":
        return mturk.external_question(hit_page_url(batch), hs.frame_height)
    ids, urls, props = batch_inputs(batch, valid_seconds=media_valid_seconds(hs))
    try:
        return mturk.html_question(crowdform.crowd_form_page(ids, urls, props, class_names()), hs.frame_height)
    except ValueError as exc:
        raise ValidationError(f"batch {batch.uuid}: {exc}", field="mode") from exc


def publish_check(plan: PublishPlan) -> None:
    """Refuse, before anything is queued or sent, what publishing this plan would fail on for sure: an
    ExternalQuestion needs this server's page on a public https:// address (PUBLIC_BASE_URL)."""
    _check_public_url(plan)


def _check_public_url(plan: PublishPlan):
    if plan.backend == "mturk" and plan.mode == "external" and not mturk.setting("MTURK_ENDPOINT_URL"):
        base = getattr(settings, "PUBLIC_BASE_URL", "")
        if not base.startswith("https://"):
            raise ValidationError(
                f"ExternalQuestion needs an HTTPS page: PUBLIC_BASE_URL is {base!r}; set it to "
                "this server's public https:// address, or publish with mode 'html'",
                field="PUBLIC_BASE_URL",
            )


def qualification_type_ensure(mt: mturk.MTurk, *, purpose: str, name: str, description: str) -> str:
    """One of our MTurk qualification types in this environment (sandbox or production): created on first use and
    recorded; an existing type of that name (created before, the record lost) is found and reused."""
    row = MarketplaceQualification.objects.filter(sandbox=mt.sandbox, purpose=purpose).first()
    if row:
        return row.qualification_type_id
    try:
        resp = mt.call(
            "CreateQualificationType",
            Name=name,
            Keywords="avcrowd",
            Description=description,
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
                Query=name,
                MustBeRequestable=False,
                MustBeOwnedByCaller=True,
                MaxResults=100,
            )
            if q["Name"] == name
        ]
        if not found:
            raise
        qid = found[0]["QualificationTypeId"]
    MarketplaceQualification.objects.create(sandbox=mt.sandbox, purpose=purpose, qualification_type_id=qid)
    return qid


def ensure_blocked_qualification(mt: mturk.MTurk) -> str:
    """Our 'blocked by requester' qualification type in this environment (created on first use)."""
    return qualification_type_ensure(
        mt,
        purpose="blocked",
        name=BLOCKED_QUALIFICATION_NAME,
        description="Given to workers whose work on our video labelling HITs was blocked.",
    )


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
        dry_run=dry_run,
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
    """The Hit row of this batch's publish round: a pending one (a crashed run, or an ambiguous failure: the HIT
    may exist) is reused with its token; a definite refusal ended the round, so the next row gets a new one."""
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
            resp = None
            if hit.created_at < timezone.now() - TOKEN_MEMORY:
                # MTurk remembers a UniqueRequestToken for 24 h: past that, look for the HIT before re-sending
                resp = _find_hit(mt, planned.batch, hit)
            if resp is None:
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
            if _ambiguous(exc):
                # the HIT may have been created (answer lost): stay pending, a re-run re-sends the same token
                msg = f"{err.message} (outcome unknown: the HIT may exist; re-run publish to find or create it)"
                Hit.objects.filter(pk=hit.pk).update(error=msg)
            else:
                msg = err.message
                Hit.objects.filter(pk=hit.pk).update(status=Hit.FAILED, error=msg)
            result.failed.append((str(planned.batch.uuid), msg))
            progress.step(f"batch {planned.batch.uuid}: FAILED: {msg}")
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


TOKEN_MEMORY = dt.timedelta(hours=23)


def _ambiguous(exc: BaseException) -> bool:
    """A failure after which the create call may have taken effect: throttling or faults that outlasted the
    retries, lost connections, timeouts, anything that is not a marketplace's definite refusal."""
    if isinstance(exc, MarketplaceError):
        return False
    if is_retryable(exc):
        return True
    return not isinstance(exc, ClientError)


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
            worker_block(w, w.blocked_reason or "on the requester's block list (MTURK_BLOCK_LIST)")


PROLIFIC_BLOCKLIST = "prolific-blocklist"
PROLIFIC_PASSED_GOLD = "prolific-passed-gold"
PROLIFIC_GROUPS = {
    PROLIFIC_BLOCKLIST: ("avcrowd: blocked", "Participants blocked for their answers on our check clips."),
    PROLIFIC_PASSED_GOLD: ("avcrowd: passed check clips", "Participants whose answers passed our check clips."),
}


def ensure_prolific_group(client, purpose: str) -> str | None:
    """Our Prolific participant group for `purpose` (created on first use in PROLIFIC_WORKSPACE_ID), or None
    when no workspace is configured."""
    row = MarketplaceQualification.objects.filter(sandbox=False, purpose=purpose).first()
    if row:
        return row.qualification_type_id
    workspace = mturk.setting("PROLIFIC_WORKSPACE_ID")
    if not workspace:
        return None
    name, description = PROLIFIC_GROUPS[purpose]
    group_id = str(client.group_create(name, workspace_id=workspace, description=description)["id"])
    MarketplaceQualification.objects.create(sandbox=False, purpose=purpose, qualification_type_id=group_id)
    return group_id


def prolific_passed_gold_sync(client, dataset) -> str:
    """The allow list of participants who passed the check clips (mean catch F1 over verified work at least the
    dataset's reject_below), brought up to date; returns its group id."""
    group = ensure_prolific_group(client, PROLIFIC_PASSED_GOLD)
    if group is None:
        raise MarketplaceConfigError(
            "an allow list of participants who passed the check clips is a Prolific participant group: set "
            "PROLIFIC_WORKSPACE_ID (Prolific > Workspace settings) so avcrowd can create it. Nothing was sent."
        )
    passed = list(
        Worker.objects.filter(
            backend="prolific", is_blocked=False, n_scored__gte=1, mean_catch_f1__gte=dataset.reject_below
        ).values_list("external_id", flat=True)
    )
    if not passed:
        raise ValidationError(
            "no Prolific participant has passed the check clips yet (mean catch F1 at least "
            f"{dataset.reject_below:.2f} on verified work); publish a first round without --passed-gold-only",
            field="passed_gold_only",
        )
    client.group_add(group, passed)
    return group


def _publish_prolific(plan: PublishPlan, result: PublishResult, progress: Progress):
    client = prolific_mod.client_factory()
    hs = plan.settings
    policy = prolific_mod.ProlificPolicy.from_settings(
        blocklist_group=ensure_prolific_group(client, PROLIFIC_BLOCKLIST),
        allowlist_group=prolific_passed_gold_sync(client, plan.dataset) if hs.passed_gold_only else None,
    )
    for planned in plan.hits:
        hit = _hit_row(planned, plan, "study")
        study = getattr(hit, "prolific", None) or ProlificStudy.objects.create(
            hit=hit,
            completion_code=prolific_mod.new_completion_code(plan.dataset),
            internal_name=f"avcrowd {plan.dataset.name} {planned.batch.uuid}",
        )
        estimate = prolific_estimate(plan.dataset, planned.n_clips)
        try:
            published = False
            if not hit.external_id:
                resp = client.create_study(
                    name=hs.title,
                    description=hs.description,
                    external_url=hit_page_url(planned.batch),
                    completion_code=study.completion_code,
                    places=hit.max_assignments,
                    minutes=estimate.minutes,
                    reward_cents=int(hit.reward * 100),
                    filters=policy.filters(),
                    internal_name=study.internal_name,
                    hit=hit,
                )
                hit.external_id = str(resp["id"])
                hit.save(update_fields=["external_id"])
            else:  # a re-run: the PUBLISH of an earlier run may have gone through
                published = client.get_study(hit.external_id, hit=hit).get("status", "UNPUBLISHED") != "UNPUBLISHED"
            if not published:
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
        hit.error = ""
        hit.expires_at = timezone.now() + dt.timedelta(seconds=hit.lifetime_seconds)
        hit.save()
        study.remote_status = "ACTIVE"
        study.save(update_fields=["remote_status"])
        result.created.append(hit)
        progress.step(
            f"batch {planned.batch.uuid}: Prolific study {hit.external_id} ({estimate.minutes} min estimated, "
            f"${estimate.hourly(hit.reward)}/h)"
        )
