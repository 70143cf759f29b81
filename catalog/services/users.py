"""Accounts for the three roles that log in: admins (staff), researchers (API token), in-house annotators."""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from rest_framework.authtoken.models import Token

from catalog.access import ANNOTATOR_GROUP, RESEARCHER_GROUP
from catalog.errors import ValidationError

ROLES = ("admin", "researcher", "annotator")
ROLE_GROUPS = {"researcher": RESEARCHER_GROUP, "annotator": ANNOTATOR_GROUP}


@transaction.atomic
def user_create(username: str, role: str, *, email: str = "", password: str | None = None) -> dict:
    """Create a user of a role. Returns the password (generated when not given) and, for researchers, the token."""
    if role not in ROLES:
        raise ValidationError(f"role {role!r} is not known; allowed: {', '.join(ROLES)}", field="role")
    User = get_user_model()
    if not username or User.objects.filter(username=username).exists():
        raise ValidationError(f"username {username!r} is empty or taken", field="username")
    password = password or secrets.token_urlsafe(12)
    user = User.objects.create_user(username, email=email, password=password)
    if role == "admin":
        user.is_staff = user.is_superuser = True
        user.save(update_fields=["is_staff", "is_superuser"])
    else:
        group, _ = Group.objects.get_or_create(name=ROLE_GROUPS[role])
        user.groups.add(group)
    token = Token.objects.create(user=user).key if role == "researcher" else None
    return {"user": user, "password": password, "token": token}
