"""In-house backend: admins assign batches to named annotators (logged-in users); no marketplace calls. Reads of
the assigned batches are in crowd.selectors.crowd."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import transaction

from catalog.errors import ValidationError
from crowd.models import InhouseTask


def inhouse_assign(batch, username_or_user, *, assigned_by=None):
    """Give `batch` to an in-house annotator. Idempotent. Returns (InhouseTask, created)."""
    user = username_or_user
    if isinstance(username_or_user, str):
        User = get_user_model()
        user = User.objects.filter(username=username_or_user, is_active=True).first()
        if user is None:
            raise ValidationError(
                f"no active user named {username_or_user!r}; create the annotator's account first (admin > Users)",
                field="username",
            )
    with transaction.atomic():
        return InhouseTask.objects.get_or_create(batch=batch, user=user, defaults={"assigned_by": assigned_by})
