"""Decisions from the admins' review screen: one assignment, or many of a batch at once. Each decision is
`assignment_decide` (audited, needs a reason); the marketplace hears of it at the next sync."""

from __future__ import annotations

from catalog.errors import AvcrowdError, ValidationError
from crowd.models import Assignment
from crowd.services.assignments import assignment_decide

DECISIONS = {"approve": Assignment.APPROVED, "reject": Assignment.REJECTED}


def decision_status(decision: str) -> str:
    if decision not in DECISIONS:
        raise ValidationError(
            f"decision {decision!r} is not allowed; allowed: {', '.join(DECISIONS)}", field="decision"
        )
    return DECISIONS[decision]


def assignments_decide_many(assignments, *, decision: str, actor, reason: str, feedback: str = "") -> dict:
    """Approve or reject each of `assignments` (each in its own transaction, like one at a time). Refuses the
    whole request when the decision or the reason is missing; an assignment that cannot take the decision (not
    submitted yet, unverified) is listed in `refused` with the reason, and the others are decided."""
    status = decision_status(decision)
    if not (reason or "").strip():
        raise ValidationError("type a reason: every decision is kept in the audit log", field="reason")
    assignments = list(assignments)
    if not assignments:
        raise ValidationError("select at least one assignment", field="assignments")
    done, refused = [], []
    for a in assignments:
        try:
            assignment_decide(a, status=status, actor=actor, reason=reason.strip(), feedback=(feedback or "").strip())
        except AvcrowdError as exc:  # one refusal does not stop the others: it is reported with its assignment
            refused.append({"assignment": str(a.uuid), "worker": str(a.worker or "-"), "error": exc.message})
        else:
            done.append(str(a.uuid))
    return {"status": status, "done": done, "refused": refused}
