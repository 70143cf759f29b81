"""In-house backend: admins assign batches to named annotators (logged-in users); no marketplace calls."""
from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import transaction

from catalog.errors import ValidationError


def inhouse_assign(batch, username_or_user, *, assigned_by=None):
    """Give `batch` to an in-house annotator. Idempotent. Returns (InhouseTask, created)."""
    from crowd.models import InhouseTask

    user = username_or_user
    if isinstance(username_or_user, str):
        User = get_user_model()
        user = User.objects.filter(username=username_or_user, is_active=True).first()
        if user is None:
            raise ValidationError(f"no active user named {username_or_user!r}; create the annotator's account "
                                  "first (admin > Users)", field="username")
    with transaction.atomic():
        return InhouseTask.objects.get_or_create(batch=batch, user=user, defaults={"assigned_by": assigned_by})


def inhouse_tasks(user):
    """Batches assigned to `user`, oldest first, with the user's assignment status when started."""
    from crowd.models import Assignment, InhouseTask

    rows = []
    for task in InhouseTask.objects.filter(user=user).select_related("batch", "batch__dataset"):
        a = Assignment.objects.filter(batch=task.batch, worker__user=user).first()
        rows.append({"task": task, "batch": task.batch, "status": a.status if a else "not started",
                     "url": f"/hit/{task.batch.uuid}/"})
    return rows


def next_batch_for(user):
    """The next assigned batch the user has not submitted yet (for the HIT page's in-house hand-off), or None."""
    from crowd.models import Assignment

    for row in inhouse_tasks(user):
        if row["status"] in ("not started", Assignment.IN_PROGRESS):
            return row["batch"]
    return None
