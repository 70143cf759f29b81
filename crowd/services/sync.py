"""Syncing with the marketplaces (Celery beat every few minutes, and on demand).

For each open MTurk HIT: list its assignments (paginated), store new submissions (our HIT page already holds the
answers of ExternalQuestion HITs; HTMLQuestion answers are parsed from the crowd-form `taskAnswers`), score and
decide them with the issue-3 services, push the decision (ApproveAssignment / RejectAssignment with
RequesterFeedback), re-post rejected slots (CreateAdditionalAssignmentsForHIT), extend HITs that expired short of
their target, expire HITs that are done. Then pay pending bonuses (SendBonus) and block workers the policy blocked
(CreateWorkerBlock + our 'blocked' qualification). Prolific studies get the same treatment through its REST API
(bonuses through its bulk bonus API, blocks through a participant group). A failure on one HIT is recorded on it
and the others go on; every call is logged (MarketplaceCall).

A submission is verified when the marketplace lists it for the worker it is bound to here: only then is it
decided, approved, paid and merged. Syncs are serialized (a PostgreSQL advisory lock), so two syncs never push
the same decision or bonus twice.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
import uuid
from collections import Counter
from contextlib import contextmanager
from decimal import Decimal, InvalidOperation

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from catalog.errors import AvcrowdError, ValidationError
from catalog.selectors.taxonomy import class_names
from catalog.services.operations import Progress
from crowd.marketplace import MarketplaceConfigError, crowdform, mturk
from crowd.marketplace import prolific as prolific_mod
from crowd.marketplace.retry import error_message, is_duplicate_token, is_retryable
from crowd.models import (
    Assignment,
    Bonus,
    Hit,
    HitAssignment,
    MarketplaceCall,
    MarketplaceQualification,
    Worker,
    WorkerBlock,
)
from crowd.services import assignments
from crowd.services.costs import dataset_spend
from crowd.services.publish import PROLIFIC_BLOCKLIST, ensure_prolific_group, public_media_url

PAST = dt.datetime(2015, 1, 1, tzinfo=dt.timezone.utc)  # UpdateExpirationForHIT to a past time = expire now
DEFAULT_APPROVE_FEEDBACK = "Thank you for your careful work."


def _crowd():
    return assignments


# --- one submission ------------------------------------------------------------------------------


def _ingest(
    hit, *, worker_id: str, external_assignment_id: str, answer_xml: str = "", accept_time=None, submit_time=None
):
    """The local Assignment for a marketplace submission, verified (the marketplace reports it for this worker)
    and submitted (scored, decided) if it was still open."""
    crowd = _crowd()
    backend = hit.backend
    local = (
        Assignment.objects.filter(backend=backend, external_assignment_id=external_assignment_id)
        .select_related("worker")
        .first()
    )
    if local is None:
        local = Assignment.objects.filter(
            batch=hit.batch, worker__backend=backend, worker__external_id=worker_id
        ).first()
    if local is None:
        local = crowd.assignment_start(
            hit.batch,
            backend=backend,
            worker_external_id=worker_id,
            external_assignment_id=external_assignment_id,
            hit_id=hit.external_id,
        )
    local = crowd.assignment_verify(local, worker_external_id=worker_id, source=f"{backend} {hit.external_id}")
    if local.status != Assignment.IN_PROGRESS:
        return local
    if hit.mode == hit.HTML and answer_xml:
        _store_crowdform_answers(local, answer_xml)
    work = None
    if accept_time and submit_time:
        work = max(0.0, (submit_time - accept_time).total_seconds())
    try:
        return crowd.assignment_submit(local, work_seconds=work)
    except AvcrowdError as exc:
        # submitted on the marketplace but incomplete here: reject it with the reason
        return crowd.assignment_decide(
            local,
            status=Assignment.REJECTED,
            reason=f"submitted incomplete: {exc.message}",
            feedback="The task was submitted before every video was watched and its questions answered.",
        )


def _store_crowdform_answers(assignment, answer_xml: str):
    """The crowd-form's answers, keyed by clip id (HITs published before that keyed them by media URL, which
    still matches for clips with a stable http(s) URL)."""
    answers = crowdform.parse_question_form_answers(answer_xml)
    items = list(assignment.batch.items.select_related("clip").order_by("position"))
    keys = [(i.clip.video_id, public_media_url(i.clip)) for i in items]
    parsed = crowdform.parse_task_answers(answers.get("taskAnswers", "[{}]"), keys, set(class_names()))
    crowd = _crowd()
    for item in items:
        crowd.answer_save(assignment, item.clip.video_id, parsed.payloads[item.clip.video_id])


# --- MTurk ---------------------------------------------------------------------------------------


def _feedback(a, default: str) -> str:
    text = (a.feedback or a.decision_reason or default).strip() or default
    return text[:1024]


def mturk_hit_sync(hit, mt: mturk.MTurk, stats: Counter) -> None:
    for remote in mt.paginate(
        "ListAssignmentsForHIT",
        "Assignments",
        hit=hit,
        HITId=hit.external_id,
        MaxResults=100,
        AssignmentStatuses=["Submitted", "Approved", "Rejected"],
    ):
        aid, status = remote["AssignmentId"], remote["AssignmentStatus"]
        ha, created = HitAssignment.objects.get_or_create(
            hit=hit,
            external_id=aid,
            defaults={
                "worker_external_id": remote["WorkerId"],
                "remote_status": status,
                "submitted_at": remote.get("SubmitTime"),
                "answer_xml": remote.get("Answer", ""),
            },
        )
        if created:
            stats["new_submissions"] += 1
        if not ha.decision_pushed and status in ("Approved", "Rejected"):
            ha.decision_pushed = status.lower()  # decided on MTurk already (auto-approval, requester site)
        local = ha.assignment
        if local is None or local.status == Assignment.IN_PROGRESS or not local.is_verified:
            try:
                local = _ingest(
                    hit,
                    worker_id=remote["WorkerId"],
                    external_assignment_id=aid,
                    answer_xml=remote.get("Answer", ""),
                    accept_time=remote.get("AcceptTime"),
                    submit_time=remote.get("SubmitTime"),
                )
            except (AvcrowdError, crowdform.AnswerParseError) as exc:
                # cannot be stored (e.g. unreadable answer, worker refused): left for an admin, nothing pushed
                ha.error = (getattr(exc, "message", None) or str(exc))[:2000]
                ha.remote_status = status
                ha.save()
                stats["assignment_errors"] += 1
                continue
            ha.assignment = local
            ha.error = ""
        if local.status == Assignment.SUBMITTED and ha.decision_pushed == "approved":
            local = _crowd().assignment_decide(
                local, status=Assignment.APPROVED, reason="approved on MTurk (auto-approval delay passed)"
            )
        ha.remote_status = status
        _push_decision(hit, mt, ha, local, stats)
        ha.save()
    _repost(hit, mt, stats)
    _close_or_extend(hit, mt, stats)


def _push_decision(hit, mt, ha, local, stats: Counter):
    if local.status == Assignment.APPROVED and ha.decision_pushed != "approved":
        params = {"AssignmentId": ha.external_id, "RequesterFeedback": _feedback(local, DEFAULT_APPROVE_FEEDBACK)}
        if ha.decision_pushed == "rejected":
            params["OverrideRejection"] = True  # an admin overrode our automatic rejection
        mt.call("ApproveAssignment", hit=hit, **params)
        ha.decision_pushed, ha.remote_status = "approved", "Approved"
        stats["approved"] += 1
        stats["bonuses_queued"] += int(_maybe_bonus(local))
    elif local.status == Assignment.REJECTED and not ha.decision_pushed:
        mt.call(
            "RejectAssignment",
            hit=hit,
            AssignmentId=ha.external_id,
            RequesterFeedback=_feedback(local, "Rejected after review."),
        )
        ha.decision_pushed, ha.remote_status = "rejected", "Rejected"
        stats["rejected"] += 1


def _maybe_bonus(local) -> bool:
    """Automatic quality bonus when configured: MTURK_BONUS = {"min_f1": 0.9, "amount": "0.25"}."""
    policy = mturk.setting("MTURK_BONUS")
    if not isinstance(policy, dict) or local.catch_f1 is None or local.catch_f1 < float(policy.get("min_f1", 1.1)):
        return False
    if Bonus.objects.filter(assignment=local).exists():
        return False
    try:
        bonus_create(
            local,
            policy.get("amount", "0.25"),
            policy.get("reason", f"Bonus for high accuracy on the check clips (F1 {local.catch_f1:.2f})."),
        )
    except AvcrowdError:  # e.g. above the dataset's bonus cap or budget: no automatic bonus, the sync goes on
        return False
    return True


def _repost(hit, mt, stats: Counter):
    """One additional assignment for every rejected one not yet replaced."""
    todo = list(HitAssignment.objects.filter(hit=hit, decision_pushed="rejected", reposted=False))
    if not todo:
        return
    n = len(todo)
    token = f"avcrowd-repost-{hit.pk}-{hit.reposted + n}"
    try:
        mt.call(
            "CreateAdditionalAssignmentsForHIT",
            hit=hit,
            HITId=hit.external_id,
            NumberOfAdditionalAssignments=n,
            UniqueRequestToken=token,
        )
    except Exception as exc:  # noqa: BLE001
        if not is_duplicate_token(exc):
            raise
    with transaction.atomic():
        HitAssignment.objects.filter(pk__in=[t.pk for t in todo]).update(reposted=True)
        hit.max_assignments += n
        hit.reposted += n
        hit.save(update_fields=["max_assignments", "reposted"])
    stats["reposted"] += n
    if hit.expires_at and hit.expires_at <= timezone.now():
        _extend(hit, mt, stats)


def _extend(hit, mt, stats: Counter):
    new = timezone.now() + dt.timedelta(seconds=hit.lifetime_seconds)
    mt.call("UpdateExpirationForHIT", hit=hit, HITId=hit.external_id, ExpireAt=new)
    hit.expires_at = new
    hit.save(update_fields=["expires_at"])
    stats["extended"] += 1


def _close_or_extend(hit, mt, stats: Counter):
    approved = hit.batch.assignments.filter(status=Assignment.APPROVED).count()
    active = hit.batch.assignments.filter(status__in=(Assignment.IN_PROGRESS, Assignment.SUBMITTED)).count()
    if approved >= hit.target_assignments:
        mt.call("UpdateExpirationForHIT", hit=hit, HITId=hit.external_id, ExpireAt=PAST)
        hit.status = Hit.COMPLETED
        hit.expires_at = timezone.now()
        hit.save(update_fields=["status", "expires_at"])
        stats["completed"] += 1
    elif hit.expires_at and hit.expires_at <= timezone.now() and approved + active < hit.target_assignments:
        _extend(hit, mt, stats)  # expired short of its target: the missing assignments go back on the market


def bonuses_pay(mt: mturk.MTurk, stats: Counter):
    """SendBonus for every pending bonus of verified MTurk work, each with its own UniqueRequestToken. A bonus whose
    earlier SendBonus failed ambiguously stays pending and is re-sent with the same token; past MTurk's 24 h memory
    of tokens, ListBonusPayments is asked first whether it was paid."""
    pending = (
        Bonus.objects.filter(
            status=Bonus.PENDING, assignment__backend="mturk", assignment__marketplace_records__hit__sandbox=mt.sandbox
        )
        .select_related("assignment__worker")
        .distinct()
    )
    for bonus in pending:
        a = bonus.assignment
        try:
            if _mturk_bonus_found(mt, bonus):
                pass
            else:
                try:
                    mt.call(
                        "SendBonus",
                        WorkerId=a.worker.external_id,
                        BonusAmount=str(bonus.amount),
                        AssignmentId=a.external_assignment_id,
                        Reason=bonus.reason[:1024],
                        UniqueRequestToken=bonus.unique_request_token,
                    )
                except Exception as exc:  # noqa: BLE001
                    if not is_duplicate_token(exc):
                        raise
        except MarketplaceConfigError:
            raise
        except Exception as exc:  # noqa: BLE001
            bonus.error = error_message(exc)[:2000]
            if not is_retryable(exc):  # refused for good (e.g. a bad amount): an admin decides
                bonus.status = Bonus.FAILED
            bonus.save(update_fields=["error", "status"])
            stats["bonus_failed"] += 1
            continue
        bonus.status, bonus.paid_at, bonus.error = Bonus.PAID, timezone.now(), ""
        bonus.save(update_fields=["status", "paid_at", "error"])
        stats["bonuses_paid"] += 1


def _mturk_bonus_found(mt: mturk.MTurk, bonus) -> bool:
    """After a SendBonus of this bonus was tried more than 23 h ago (MTurk forgets tokens after 24 h): whether
    MTurk lists a bonus of this amount and reason on the assignment."""
    tried = MarketplaceCall.objects.filter(
        operation="SendBonus", request__UniqueRequestToken=bonus.unique_request_token
    ).order_by("created_at")
    first = tried.first()
    if first is None or first.created_at > timezone.now() - dt.timedelta(hours=23):
        return False
    for paid in mt.paginate(
        "ListBonusPayments", "BonusPayments", AssignmentId=bonus.assignment.external_assignment_id, MaxResults=100
    ):
        if Decimal(str(paid.get("BonusAmount", "0"))) == bonus.amount and paid.get("Reason", "") == bonus.reason[:1024]:
            return True
    return False


def blocks_push(mt: mturk.MTurk, stats: Counter):
    """CreateWorkerBlock (+ our 'blocked' qualification) for every blocked MTurk worker not yet blocked there."""
    qual = MarketplaceQualification.objects.filter(sandbox=mt.sandbox, purpose="blocked").first()
    done = WorkerBlock.objects.filter(sandbox=mt.sandbox, pushed=True).values("worker_id")
    for worker in Worker.objects.filter(backend="mturk", is_blocked=True).exclude(pk__in=done):
        reason = (worker.blocked_reason or "Work quality below our threshold on quality-control clips.")[:1024]
        block, _ = WorkerBlock.objects.get_or_create(worker=worker, sandbox=mt.sandbox, defaults={"reason": reason})
        try:
            mt.call("CreateWorkerBlock", WorkerId=worker.external_id, Reason=reason)
            if qual:
                mt.call(
                    "AssociateQualificationWithWorker",
                    QualificationTypeId=qual.qualification_type_id,
                    WorkerId=worker.external_id,
                    IntegerValue=1,
                    SendNotification=False,
                )
        except MarketplaceConfigError:
            raise
        except Exception as exc:  # noqa: BLE001
            block.error = error_message(exc)[:2000]
            block.save(update_fields=["error"])
            stats["block_failed"] += 1
            continue
        block.pushed, block.error = True, ""
        block.save(update_fields=["pushed", "error"])
        stats["blocked"] += 1


# --- Prolific --------------------------------------------------------------------------------------

PROLIFIC_DONE = ("AWAITING REVIEW", "APPROVED", "REJECTED")
PROLIFIC_GONE = ("RETURNED", "TIMED-OUT")  # Prolific reopens the place itself
RELEASED = "released"


def prolific_study_sync(hit, client, stats: Counter):
    for sub in client.submissions(hit.external_id, hit=hit):
        status = sub.get("status", "")
        if status in PROLIFIC_GONE:
            _prolific_release(hit, sub, status, stats)
            continue
        if status not in PROLIFIC_DONE:
            continue
        ha, created = HitAssignment.objects.get_or_create(
            hit=hit,
            external_id=sub["id"],
            defaults={"worker_external_id": sub["participant_id"], "remote_status": status},
        )
        stats["new_submissions"] += int(created)
        if not ha.decision_pushed and status in ("APPROVED", "REJECTED"):
            ha.decision_pushed = status.lower()
        local = ha.assignment
        if local is None or local.status == Assignment.IN_PROGRESS or not local.is_verified:
            try:
                local = _ingest(hit, worker_id=sub["participant_id"], external_assignment_id=sub["id"])
            except AvcrowdError as exc:
                ha.error = exc.message[:2000]
                ha.remote_status = status
                ha.save()
                stats["assignment_errors"] += 1
                continue
            ha.assignment = local
            ha.error = ""
        if local.status == Assignment.APPROVED and not ha.decision_pushed:
            client.approve(sub["id"], hit=hit)
            ha.decision_pushed = "approved"
            stats["approved"] += 1
            stats["bonuses_queued"] += int(_maybe_bonus(local))
        elif local.status == Assignment.REJECTED and not ha.decision_pushed:
            client.reject(sub["id"], _feedback(local, "Rejected after review."), category="FAILED_CHECK", hit=hit)
            ha.decision_pushed = "rejected"
            stats["rejected"] += 1
        ha.remote_status = status
        ha.save()
    todo = list(HitAssignment.objects.filter(hit=hit, decision_pushed="rejected", reposted=False))
    if todo:
        client.set_places(hit.external_id, hit.max_assignments + len(todo), hit=hit)
        HitAssignment.objects.filter(pk__in=[t.pk for t in todo]).update(reposted=True)
        hit.max_assignments += len(todo)
        hit.reposted += len(todo)
        hit.save(update_fields=["max_assignments", "reposted"])
        stats["reposted"] += len(todo)
    approved = hit.batch.assignments.filter(status=Assignment.APPROVED).count()
    if approved >= hit.target_assignments:
        hit.status = hit.COMPLETED
        hit.save(update_fields=["status"])
        stats["completed"] += 1


def _prolific_release(hit, sub, status: str, stats: Counter):
    """A returned or timed-out submission: its local assignment (not yet decided) is released so its slot is free
    for the participant Prolific recruits next. Nothing is sent to Prolific (it reopened the place itself)."""
    ha, _ = HitAssignment.objects.get_or_create(
        hit=hit,
        external_id=sub["id"],
        defaults={"worker_external_id": sub.get("participant_id", ""), "remote_status": status},
    )
    if ha.decision_pushed == RELEASED:
        return
    local = ha.assignment or (
        Assignment.objects.filter(backend="prolific", external_assignment_id=sub["id"]).first()
        or Assignment.objects.filter(
            batch=hit.batch, worker__backend="prolific", worker__external_id=sub.get("participant_id", "")
        ).first()
    )
    if local is not None and local.status in (Assignment.IN_PROGRESS, Assignment.SUBMITTED):
        _crowd().assignment_decide(
            local,
            status=Assignment.REJECTED,
            reason=f"{status.lower()} on Prolific: the place is free for another participant",
            feedback="",
        )
    ha.assignment = local
    ha.decision_pushed = RELEASED
    ha.remote_status = status
    ha.save()
    stats["released"] += 1


def prolific_bonuses_pay(client, stats: Counter):
    """Pending bonuses of verified Prolific work: one bulk bonus per study is set up (POST
    submissions/bonus-payments/; repeating it pays nothing), then paid once (POST bulk-bonus-payments/{id}/pay/,
    which Prolific documents as not idempotent). Each bonus is marked "sending" before the pay call: an
    ambiguous failure leaves it there for a person to check on Prolific, and it is never paid again by itself."""
    pending = list(
        Bonus.objects.filter(status=Bonus.PENDING, assignment__backend="prolific").select_related("assignment__worker")
    )
    by_study: dict[int, list] = {}
    hits: dict[int, Hit] = {}
    for bonus in pending:
        record = (
            HitAssignment.objects.filter(assignment=bonus.assignment, hit__backend=Hit.PROLIFIC)
            .select_related("hit")
            .first()
        )
        if record is not None and bonus.assignment.is_verified:  # the study Prolific listed the submission in
            hits[record.hit_id] = record.hit
            by_study.setdefault(record.hit_id, []).append(bonus)
    for hit_pk, bonuses in by_study.items():
        hit = hits[hit_pk]
        study_id = hit.external_id
        fresh = [b for b in bonuses if not b.external_id]
        try:
            if fresh:
                rows = [(b.assignment.worker.external_id, f"{b.amount:.2f}") for b in fresh]
                bulk = str(client.bonus_setup(study_id, rows, hit=hit)["id"])
                Bonus.objects.filter(pk__in=[b.pk for b in fresh]).update(external_id=bulk)
                for b in fresh:
                    b.external_id = bulk
        except MarketplaceConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 - nothing was paid: left pending for the next sync
            Bonus.objects.filter(pk__in=[b.pk for b in fresh]).update(error=error_message(exc)[:2000])
            stats["bonus_failed"] += len(fresh)
        for bulk in sorted({b.external_id for b in bonuses if b.external_id}):
            with transaction.atomic():  # claim the bulk payment: a concurrent sync finds nothing pending
                claimed = Bonus.objects.filter(external_id=bulk, status=Bonus.PENDING).update(status=Bonus.SENDING)
            if not claimed:
                continue
            try:
                client.bonus_pay(bulk, hit=hit)
            except MarketplaceConfigError:
                Bonus.objects.filter(external_id=bulk, status=Bonus.SENDING).update(status=Bonus.PENDING)
                raise
            except Exception as exc:  # noqa: BLE001
                status_code = getattr(exc, "status", None)
                definite = status_code is not None and 400 <= status_code < 500 and status_code != 408
                note = error_message(exc)[:1500]
                Bonus.objects.filter(external_id=bulk, status=Bonus.SENDING).update(
                    status=Bonus.FAILED if definite else Bonus.SENDING,
                    error=note
                    if definite
                    else f"{note} (payment outcome unknown: check the bulk bonus {bulk} on Prolific before "
                    "paying it again; it is not re-sent automatically)",
                )
                stats["bonus_failed"] += claimed
                continue
            Bonus.objects.filter(external_id=bulk, status=Bonus.SENDING).update(
                status=Bonus.PAID, paid_at=timezone.now(), error=""
            )
            stats["bonuses_paid"] += claimed


def prolific_blocks_push(client, stats: Counter):
    """Blocked Prolific participants go into our block-list participant group (the studies' blocklist filter)."""
    group = ensure_prolific_group(client, PROLIFIC_BLOCKLIST)
    if group is None:
        return  # no workspace configured: our HIT page still refuses blocked participants
    done = WorkerBlock.objects.filter(sandbox=False, pushed=True).values("worker_id")
    todo = list(Worker.objects.filter(backend="prolific", is_blocked=True).exclude(pk__in=done))
    if not todo:
        return
    for worker in todo:
        WorkerBlock.objects.get_or_create(
            worker=worker, sandbox=False, defaults={"reason": worker.blocked_reason or "blocked"}
        )
    try:
        client.group_add(group, [w.external_id for w in todo])
    except MarketplaceConfigError:
        raise
    except Exception as exc:  # noqa: BLE001
        WorkerBlock.objects.filter(worker__in=todo, sandbox=False).update(error=error_message(exc)[:2000])
        stats["block_failed"] += len(todo)
        return
    WorkerBlock.objects.filter(worker__in=todo, sandbox=False).update(pushed=True, error="")
    stats["blocked"] += len(todo)


# --- entry point ---------------------------------------------------------------------------------

SYNC_LOCK_KEY = 0x61766353  # PostgreSQL advisory lock of the marketplace sync ("avcS")
_local_sync_lock = threading.Lock()


@contextmanager
def sync_lock():
    """One marketplace sync at a time: a PostgreSQL session advisory lock (released on disconnect too), a
    process lock elsewhere (SQLite: one process)."""
    if connection.vendor != "postgresql":
        with _local_sync_lock:
            yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [SYNC_LOCK_KEY])
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [SYNC_LOCK_KEY])


def marketplace_sync(*, dataset=None, hits=None, echo=None, user=None, operation=None) -> dict:
    """Sync every open HIT / study (of `dataset`, or the given `hits`); returns a summary of what happened.
    Serialized: a sync that starts while another runs waits for it, then sees what it pushed."""
    with sync_lock():
        return _marketplace_sync(dataset=dataset, hits=hits, echo=echo, user=user, operation=operation)


def _marketplace_sync(*, dataset=None, hits=None, echo=None, user=None, operation=None) -> dict:
    qs = hits if hits is not None else Hit.objects.filter(status=Hit.OPEN).exclude(external_id="")
    if dataset is not None:
        qs = qs.filter(batch__dataset=dataset)
    qs = list(qs.select_related("batch", "batch__dataset").order_by("id"))
    progress = Progress("sync", dataset=dataset, user=user, echo=echo, operation=operation)
    progress.total(len(qs))
    stats: Counter = Counter()
    errors: list[str] = []
    backends: dict = {}
    envs = set()
    try:
        for hit in qs:
            try:
                if hit.backend == Hit.MTURK:
                    key = ("mturk", hit.sandbox)
                    if key not in backends:
                        backends[key] = mturk.get_backend(hit.sandbox)
                    envs.add(hit.sandbox)
                    mturk_hit_sync(hit, backends[key], stats)
                else:
                    if "prolific" not in backends:
                        backends["prolific"] = prolific_mod.client_factory()
                    prolific_study_sync(hit, backends["prolific"], stats)
            except MarketplaceConfigError:
                raise
            except Exception as exc:  # noqa: BLE001 - recorded on the HIT; the others go on
                msg = getattr(exc, "message", None) or error_message(exc) or repr(exc)
                Hit.objects.filter(pk=hit.pk).update(error=msg[:2000])
                errors.append(f"{hit.backend} {hit.external_id}: {msg}")
                stats["hit_errors"] += 1
                progress.step(f"HIT {hit.external_id}: ERROR {msg}")
                continue
            Hit.objects.filter(pk=hit.pk).update(last_synced_at=timezone.now(), error="")
            progress.step(f"HIT {hit.external_id}: synced")
        for sandbox in sorted(envs):
            mt = backends[("mturk", sandbox)]
            bonuses_pay(mt, stats)
            blocks_push(mt, stats)
        if "prolific" in backends:
            prolific_bonuses_pay(backends["prolific"], stats)
            prolific_blocks_push(backends["prolific"], stats)
    except MarketplaceConfigError as exc:
        progress.finish({"errors": [exc.message], **stats}, failed=True, message=exc.message)
        raise
    summary = {"hits": len(qs), **dict(stats), "errors": errors}
    progress.finish(summary, message=", ".join(f"{k} {v}" for k, v in sorted(stats.items())) or "nothing new")
    return summary


# --- bonuses ---------------------------------------------------------------------------------------

CENT = Decimal("0.01")


def _bonus_amount(amount) -> Decimal:
    try:
        value = Decimal(str(amount).strip().lstrip("$"))
    except (InvalidOperation, ValueError):
        raise ValidationError(f"bonus amount {amount!r} is not a number of dollars, e.g. 0.50", field="amount")
    if not value.is_finite():
        raise ValidationError(f"bonus amount {amount!r} is not a number of dollars, e.g. 0.50", field="amount")
    if value != value.quantize(CENT):
        raise ValidationError(
            f"bonus amount ${value} has fractions of a cent; use whole cents, e.g. 0.50", field="amount"
        )
    return value.quantize(CENT)


def bonus_key(assignment, amount, reason: str) -> str:
    """The idempotency key of a bonus request that brought none: the same assignment, amount and reason are the
    same bonus (a repeated or concurrent request returns it instead of paying twice)."""
    digest = hashlib.sha256(f"{assignment.uuid}|{amount}|{reason.strip()}".encode()).hexdigest()
    return f"auto:{digest}"


def _bonus_request(amount, reason: str) -> tuple[Decimal, str]:
    amount = _bonus_amount(amount)
    reason = (reason or "").strip()
    if amount < CENT:
        raise ValidationError(f"bonus ${amount} is too low; at least $0.01", field="amount")
    if not reason:
        raise ValidationError("a bonus needs a reason (the worker sees it)", field="reason")
    return amount, reason


def _bonus_limits(a, amount: Decimal) -> None:
    dataset = a.batch.dataset
    if amount > dataset.bonus_cap_usd:
        raise ValidationError(
            f"bonus ${amount} is above dataset {dataset.name}'s cap of ${dataset.bonus_cap_usd} per bonus; "
            "allowed: $0.01 up to the cap (raise the dataset's bonus cap to pay more)",
            field="amount",
        )
    if a.backend in ("mturk", "prolific") and not a.is_verified:
        raise ValidationError(
            f"assignment {a.uuid} is unverified: {a.backend} has not reported it for this worker, so it "
            "cannot get a bonus; sync the marketplace first",
            field="assignment",
        )
    spend = dataset_spend(dataset)
    cost = mturk.bonus_cost(amount)
    if spend.committed + cost > spend.budget:
        raise ValidationError(
            f"over budget: this bonus costs ${cost} with fees and ${spend.committed} is already committed, "
            f"but dataset {dataset.name}'s budget is ${spend.budget}",
            field="amount",
        )


def bonus_check(assignment, amount, reason: str) -> tuple[Decimal, str]:
    """The checks bonus_create makes, without making the bonus: (amount, reason) or a ValidationError naming the
    field. For forms that show the service's messages on their fields (the admin's); bonus_create checks again
    under the assignment's lock."""
    amount, reason = _bonus_request(amount, reason)
    _bonus_limits(Assignment.objects.select_related("batch__dataset").get(pk=assignment.pk), amount)
    return amount, reason


def bonus_create(assignment, amount, reason: str, *, user=None, idempotency_key: str | None = None):
    """Queue a bonus for an assignment, paid by the next sync exactly once (MTurk: UniqueRequestToken; Prolific:
    bulk bonus set up, then paid once). Checked here for every caller (API, admin, automatic quality bonus):
    at least $0.01, at most the dataset's bonus cap, whole cents, a reason, verified marketplace work, within the
    dataset's budget. idempotency_key: a repeated request with the same key (or, without one, the same
    assignment, amount and reason) returns the first bonus; the same key for a different bonus is refused."""
    amount, reason = _bonus_request(amount, reason)
    key = (idempotency_key or "").strip() or bonus_key(assignment, amount, reason)
    if len(key) > 200:
        raise ValidationError("the idempotency key is longer than 200 characters", field="idempotency_key")
    existing = Bonus.objects.filter(idempotency_key=key).first()
    if existing is not None:
        return _same_bonus(existing, assignment, amount, key)
    with transaction.atomic():
        a = Assignment.objects.select_for_update(of=("self",)).select_related("batch__dataset").get(pk=assignment.pk)
        existing = Bonus.objects.filter(idempotency_key=key).first()  # created while we waited for the lock
        if existing is not None:
            return _same_bonus(existing, assignment, amount, key)
        _bonus_limits(a, amount)
        try:
            with transaction.atomic():
                bonus = Bonus.objects.create(
                    assignment=a,
                    amount=amount,
                    reason=reason,
                    created_by=user,
                    idempotency_key=key,
                    unique_request_token=bonus_token(a),
                )
                bonus.replayed = False
                return bonus
        except IntegrityError as exc:  # the same key, created concurrently for another assignment
            conflict = exc
    existing = Bonus.objects.filter(idempotency_key=key).first()
    if existing is None:
        raise conflict
    return _same_bonus(existing, assignment, amount, key)


def _same_bonus(existing, assignment, amount, key):
    if existing.assignment_id != assignment.pk or existing.amount != amount:
        raise ValidationError(
            f"idempotency key {key!r} was already used for another bonus (${existing.amount} on assignment "
            f"{existing.assignment.uuid}); use a new key for a new bonus",
            field="idempotency_key",
        )
    existing.replayed = True
    return existing


def bonus_token(assignment=None) -> str:
    """A SendBonus UniqueRequestToken for a new bonus: unique per bonus (so each is paid once, and two bonuses
    created at the same moment never share one), at most 64 characters."""
    return f"avcrowd-bonus-{uuid.uuid4().hex}"
