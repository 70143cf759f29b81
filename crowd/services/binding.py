"""Binding a HIT session to one worker's browser, and expiring what was never submitted.

Everything in a HIT URL (batch id, worker id, HIT id) is known to strangers: anyone who previews the HIT on
MTurk sees them. So the first session of an assignment issues a browser secret (kept by the HIT page, in its
storage and an HttpOnly cookie) and stores only its hash; a later session resumes the assignment only with
  - that secret (the same browser), which may also rebind the marketplace ids (the worker returned the HIT and
    accepted it again), or
  - the same marketplace assignment id (a worker who lost the secret: MTurk's assignment ids are shown only to the
    worker who accepted), which resumes but rebinds nothing, or
  - for in-house work, the same signed-in account.
Anything else is refused (403) and changes nothing: a stranger cannot read the answers, write them, or point the
worker's submit to another address. In-progress marketplace assignments expire after their HIT's assignment
duration (`assignments_expire`: at every session start of the batch and from beat), which frees the slot, and one
address may hold only so many open assignments (slot squatting with invented ids).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from catalog.access import is_admin, is_annotator
from catalog.errors import Forbidden, TooManyRequests, ValidationError
from crowd.models import Assignment, Batch, InhouseTask, Worker
from crowd.services.assignments import BACKENDS, _set_status, assignment_expiry, assignment_start
from crowd.services.batches import ACTIVE_STATUSES


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _secret_matches(secret: str | None, stored: str) -> bool:
    return bool(secret and stored and hmac.compare_digest(secret_hash(secret), stored))


def _issue_secret(assignment: Assignment) -> str | None:
    """A secret for an assignment bound before secrets existed (None when another request issued one first)."""
    secret = secrets.token_urlsafe(32)
    if not Assignment.objects.filter(pk=assignment.pk, browser_secret_hash="").update(
        browser_secret_hash=secret_hash(secret)
    ):
        return None
    assignment.browser_secret_hash = secret_hash(secret)
    return secret


def _proof(existing: Assignment, *, secret, external_assignment_id: str, user) -> str | None:
    """How this request proves it is the assignment's worker, or None."""
    if _secret_matches(secret, existing.browser_secret_hash):
        return "secret"
    if existing.backend == "inhouse" and user is not None and existing.worker and existing.worker.user_id == user.pk:
        return "login"
    if external_assignment_id and external_assignment_id == existing.external_assignment_id:
        return "assignment id"
    return None


def inhouse_may_label(user, batch: Batch) -> bool:
    """In-house annotators label only the batches assigned to them (admins: any)."""
    if is_admin(user):
        return True
    return is_annotator(user) and InhouseTask.objects.filter(batch=batch, user=user).exists()


def assignment_open(
    batch: Batch,
    *,
    backend: str,
    worker_external_id: str,
    external_assignment_id: str = "",
    hit_id: str = "",
    turk_submit_to: str = "",
    user=None,
    secret: str | None = None,
    client: str = "",
) -> tuple[Assignment, str | None]:
    """The HIT API's session: resume the worker's assignment of `batch` (with proof, see the module) or start a
    new one. Returns (assignment, new browser secret or None when the browser already holds it)."""
    if backend not in BACKENDS:
        raise ValidationError(
            f"backend {backend!r} is not allowed; allowed: {', '.join(sorted(BACKENDS))}", field="backend"
        )
    if backend == "inhouse" and not inhouse_may_label(user, batch):
        raise Forbidden(
            "in-house annotators label only the batches assigned to them (and the gold standard at /gold/); "
            "this batch is not assigned to you",
            field="batch",
        )
    assignments_expire(batch=batch)
    worker = Worker.objects.filter(backend=backend, external_id=(worker_external_id or "").strip()).first()
    existing = None
    if worker is not None:
        existing = Assignment.objects.filter(batch=batch, worker=worker).select_related("worker").first()
    if existing is not None:
        return _resume(
            existing,
            secret=secret,
            external_assignment_id=external_assignment_id,
            hit_id=hit_id,
            turk_submit_to=turk_submit_to,
            user=user,
        )
    if client and backend in ("mturk", "prolific"):
        _check_open_limit(client)
    assignment = assignment_start(
        batch,
        backend=backend,
        worker_external_id=worker_external_id,
        external_assignment_id=external_assignment_id,
        hit_id=hit_id,
        turk_submit_to=turk_submit_to,
        user=user,
        rebind=False,
    )
    new_secret = secrets.token_urlsafe(32)
    won = Assignment.objects.filter(pk=assignment.pk, browser_secret_hash="").update(
        browser_secret_hash=secret_hash(new_secret), client_hash=client
    )
    if not won:  # a concurrent first session of the same worker id bound it first: this one needs a proof
        return _resume(
            assignment,
            secret=secret,
            external_assignment_id=external_assignment_id,
            hit_id=hit_id,
            turk_submit_to=turk_submit_to,
            user=user,
        )
    assignment.browser_secret_hash, assignment.client_hash = secret_hash(new_secret), client
    return assignment, new_secret


def _resume(existing, *, secret, external_assignment_id, hit_id, turk_submit_to, user):
    with transaction.atomic():
        a = Assignment.objects.select_for_update(of=("self",)).select_related("worker").get(pk=existing.pk)
        proof = _proof(a, secret=secret, external_assignment_id=external_assignment_id, user=user)
        if proof is None:
            raise Forbidden(
                "this worker's assignment of this task is bound to the browser that started it: continue in that "
                "browser, or open the task from your marketplace's own link (the same assignment id); "
                "nothing was changed",
                field="assignmentId",
            )
        if a.status == Assignment.EXPIRED:
            _revive(a, proof=proof, new_assignment_id=external_assignment_id)
        if proof == "secret" and a.status == Assignment.IN_PROGRESS:
            changed = []
            for attr, value in (
                ("external_assignment_id", external_assignment_id),
                ("external_hit_id", hit_id),
                ("turk_submit_to", turk_submit_to),
            ):
                if value and getattr(a, attr) != value:
                    setattr(a, attr, value)
                    changed.append(attr)
            if (
                "external_assignment_id" in changed
                and Assignment.objects.filter(backend=a.backend, external_assignment_id=a.external_assignment_id)
                .exclude(pk=a.pk)
                .exists()
            ):
                raise Forbidden("this marketplace assignment is already bound to another worker", field="assignmentId")
            if changed:
                a.save(update_fields=changed)
        new_secret = None if a.browser_secret_hash else _issue_secret(a)  # bound before secrets existed
    return a, new_secret


def _revive(a: Assignment, *, proof: str, new_assignment_id: str) -> None:
    """An expired assignment comes back (answers kept, a new time limit) only to its own browser under a new
    marketplace assignment (the worker accepted the HIT again), and only while the batch has a free slot."""
    batch = Batch.objects.select_for_update().select_related("dataset").get(pk=a.batch_id)
    full = batch.assignments.filter(status__in=ACTIVE_STATUSES).count() >= batch.dataset.annotations_per_clip
    if proof != "secret" or not new_assignment_id or new_assignment_id == a.external_assignment_id or full:
        raise Forbidden(
            "this assignment expired: it was not submitted within the time allowed"
            + (", and its place went to another worker" if full else "")
            + ". Please return the task (accepting it again in this browser continues your answers).",
            field="status",
        )
    _set_status(a, Assignment.IN_PROGRESS, reason=f"resumed after expiry as marketplace assignment {new_assignment_id}")
    a.expires_at = assignment_expiry(batch, a.backend)
    a.save(update_fields=["expires_at"])


def _check_open_limit(client: str) -> None:
    now = timezone.now()
    open_rows = Assignment.objects.filter(status=Assignment.IN_PROGRESS, client_hash=client).exclude(
        expires_at__lte=now
    )
    limit = settings.HIT_MAX_OPEN_PER_CLIENT
    if open_rows.count() >= limit:
        first = open_rows.exclude(expires_at=None).order_by("expires_at").values_list("expires_at", flat=True).first()
        wait = int((first - now).total_seconds()) + 1 if first else 3600
        raise TooManyRequests(
            f"this address already holds {limit} unfinished tasks (the limit per address): submit or return "
            "one of them first",
            retry_after=wait,
            field="assignmentId",
        )


def assignments_expire(now=None, *, batch: Batch | None = None) -> int:
    """Expire in-progress assignments whose time is up (status `expired`, audit record); their slots go back to
    their batches. Returns how many expired."""
    now = now or timezone.now()
    due = Assignment.objects.filter(status=Assignment.IN_PROGRESS, expires_at__lte=now)
    if batch is not None:
        due = due.filter(batch=batch)
    done = 0
    for pk in list(due.values_list("pk", flat=True)[:10000]):
        with transaction.atomic():
            a = Assignment.objects.select_for_update(of=("self",)).select_related("batch__dataset").get(pk=pk)
            if a.status != Assignment.IN_PROGRESS or a.expires_at is None or a.expires_at > now:
                continue
            started = timezone.localtime(a.started_at).strftime("%Y-%m-%d %H:%M")
            _set_status(
                a,
                Assignment.EXPIRED,
                reason=f"expired: started {started} UTC and not submitted by {a.expires_at:%Y-%m-%d %H:%M} UTC",
            )
            done += 1
    return done
