"""Syncing with the marketplaces (Celery beat every few minutes, and on demand).

For each open MTurk HIT: list its assignments (paginated), store new submissions (our HIT page already holds the
answers of ExternalQuestion HITs; HTMLQuestion answers are parsed from the crowd-form `taskAnswers`), score and
decide them with the issue-3 services, push the decision (ApproveAssignment / RejectAssignment with
RequesterFeedback), re-post rejected slots (CreateAdditionalAssignmentsForHIT), extend HITs that expired short of
their target, expire HITs that are done. Then pay pending bonuses (SendBonus) and block workers the policy blocked
(CreateWorkerBlock + our 'blocked' qualification). Prolific studies get the same treatment through its REST API.
A failure on one HIT is recorded on it and the others go on; every call is logged (MarketplaceCall).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from catalog.errors import AvcrowdError
from catalog.selectors.taxonomy import class_names
from catalog.services.operations import Progress
from crowd.marketplace import MarketplaceConfigError, crowdform, mturk
from crowd.marketplace import prolific as prolific_mod
from crowd.marketplace.retry import error_message, is_duplicate_token
from crowd.models import Assignment, Bonus, Hit, HitAssignment, MarketplaceQualification, Worker, WorkerBlock
from crowd.services import assignments
from crowd.services.publish import public_media_url

PAST = dt.datetime(2015, 1, 1, tzinfo=dt.timezone.utc)  # UpdateExpirationForHIT to a past time = expire now
DEFAULT_APPROVE_FEEDBACK = "Thank you for your careful work."


def _crowd():
    return assignments


# --- one submission ------------------------------------------------------------------------------


def _ingest(
    hit, *, worker_id: str, external_assignment_id: str, answer_xml: str = "", accept_time=None, submit_time=None
):
    """The local Assignment for a marketplace submission, submitted (scored, decided) if it was still open."""
    crowd = _crowd()
    backend = hit.backend
    local = Assignment.objects.filter(backend=backend, external_assignment_id=external_assignment_id).first()
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
    answers = crowdform.parse_question_form_answers(answer_xml)

    items = list(assignment.batch.items.select_related("clip").order_by("position"))
    urls = [public_media_url(i.clip) for i in items]  # as batch_inputs gives them to the crowd-form page
    parsed = crowdform.parse_task_answers(answers.get("taskAnswers", "[{}]"), urls, set(class_names()))
    crowd = _crowd()
    for item, url in zip(items, urls):
        crowd.answer_save(assignment, item.clip.video_id, parsed.payloads[url])


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
        if local is None or local.status == Assignment.IN_PROGRESS:
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
    bonus_create(
        local,
        policy.get("amount", "0.25"),
        policy.get("reason", f"Bonus for high accuracy on the check clips (F1 {local.catch_f1:.2f})."),
    )
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
            bonus.status = Bonus.FAILED
            bonus.save(update_fields=["error", "status"])
            stats["bonus_failed"] += 1
            continue
        bonus.status, bonus.paid_at, bonus.error = Bonus.PAID, timezone.now(), ""
        bonus.save(update_fields=["status", "paid_at", "error"])
        stats["bonuses_paid"] += 1


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


def prolific_study_sync(hit, client, stats: Counter):
    for sub in client.submissions(hit.external_id, hit=hit):
        status = sub.get("status", "")
        if status not in ("AWAITING REVIEW", "APPROVED", "REJECTED"):
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
        if local is None or local.status == Assignment.IN_PROGRESS:
            local = _ingest(hit, worker_id=sub["participant_id"], external_assignment_id=sub["id"])
            ha.assignment = local
        if local.status == Assignment.APPROVED and not ha.decision_pushed:
            client.approve(sub["id"], hit=hit)
            ha.decision_pushed = "approved"
            stats["approved"] += 1
        elif local.status == Assignment.REJECTED and not ha.decision_pushed:
            client.reject(sub["id"], _feedback(local, "Rejected after review."), hit=hit)
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


# --- entry point ---------------------------------------------------------------------------------


def marketplace_sync(*, dataset=None, hits=None, echo=None, user=None, operation=None) -> dict:
    """Sync every open HIT / study (of `dataset`, or the given `hits`); returns a summary of what happened."""
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
    except MarketplaceConfigError as exc:
        progress.finish({"errors": [exc.message], **stats}, failed=True, message=exc.message)
        raise
    summary = {"hits": len(qs), **dict(stats), "errors": errors}
    progress.finish(summary, message=", ".join(f"{k} {v}" for k, v in sorted(stats.items())) or "nothing new")
    return summary


def bonus_create(assignment, amount, reason: str, *, user=None):
    """Queue a bonus for an assignment (paid by the next sync, exactly once: UniqueRequestToken)."""
    amount = Decimal(str(amount))
    if amount < Decimal("0.01"):
        raise AvcrowdError(f"bonus ${amount} is too low; at least $0.01", field="amount")
    if not reason.strip():
        raise AvcrowdError("a bonus needs a reason (the worker sees it)", field="reason")
    return Bonus.objects.create(
        assignment=assignment,
        amount=amount,
        reason=reason,
        created_by=user,
        unique_request_token=bonus_token(assignment),
    )


def bonus_token(assignment) -> str:
    """SendBonus UniqueRequestToken of the assignment's next bonus (one per bonus, so each is paid once)."""
    n = Bonus.objects.filter(assignment=assignment).count() + 1
    return f"avcrowd-bonus-{assignment.uuid.hex}-{n}"
