"""Sign-in throttling: after LOGIN_FAILURE_LIMIT wrong passwords for one account name (or
LOGIN_FAILURE_LIMIT_PER_ADDRESS from one address) within LOGIN_FAILURE_WINDOW seconds, sign-in is refused, even with
the right password, until the window has passed. The counts live in the shared cache (Redis in production), so
every gunicorn worker sees them.

Both sign-in forms (the site's /accounts/login/ and the admin's) check the lock before the password; Django's
`user_login_failed` signal counts the failures (also those of API or management code that calls `authenticate`).
A plain cache throttle rather than django-axes: no extra tables, and the test client's `login()` (which calls
`authenticate` without a request) keeps working.
"""

from __future__ import annotations

import hashlib
import time

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.core.cache import cache
from django.dispatch import receiver

from catalog.throttles import client_ip


def _key(kind: str, value: str) -> str:
    return f"login-fail:{kind}:{hashlib.sha256(value.strip().lower().encode()).hexdigest()[:32]}"


def _keys(username: str | None, request) -> list[tuple[str, int]]:
    keys = []
    if username:
        keys.append((_key("user", username), settings.LOGIN_FAILURE_LIMIT))
    if request is not None:
        keys.append((_key("addr", client_ip(request)), settings.LOGIN_FAILURE_LIMIT_PER_ADDRESS))
    return keys


def login_failure_record(username: str | None, request) -> None:
    """Count one failed sign-in for the account name and the address (the window starts at the first failure;
    `incr` is atomic on Redis, so concurrent guesses are all counted)."""
    window = settings.LOGIN_FAILURE_WINDOW
    for key, _ in _keys(username, request):
        cache.add(key + ":t", time.time(), timeout=window)
        if not cache.add(key, 1, timeout=window):
            try:
                cache.incr(key)
            except ValueError:  # expired between the two calls
                cache.add(key, 1, timeout=window)


def login_locked(username: str | None, request) -> int:
    """Seconds until sign-in is allowed again for this account name and address (0: allowed now)."""
    now = time.time()
    wait = 0
    for key, limit in _keys(username, request):
        if (cache.get(key) or 0) >= limit:
            since = cache.get(key + ":t") or now
            wait = max(wait, int(settings.LOGIN_FAILURE_WINDOW - (now - since)) + 1)
    return wait


def lock_message(wait: int) -> str:
    minutes = max(1, (wait + 59) // 60)
    return (
        f"Too many failed sign-in attempts for this account or from this address (limit "
        f"{settings.LOGIN_FAILURE_LIMIT} within {settings.LOGIN_FAILURE_WINDOW // 60} minutes): sign-in is paused. "
        f"Try again in {minutes} minute{'s' if minutes != 1 else ''}."
    )


@receiver(user_login_failed)
def _count_failure(sender, credentials, request=None, **kwargs):
    login_failure_record((credentials or {}).get("username"), request)


@receiver(user_logged_in)
def _reset_on_success(sender, request, user, **kwargs):
    key = _key("user", user.get_username())
    cache.delete_many([key, key + ":t"])


class _ThrottledMixin:
    def clean(self):
        wait = login_locked(self.data.get("username"), self.request)
        if wait:
            raise forms.ValidationError(lock_message(wait), code="throttled")
        return super().clean()


class ThrottledAuthenticationForm(_ThrottledMixin, AuthenticationForm):
    """The site's sign-in form (/accounts/login/)."""


class ThrottledAdminAuthenticationForm(_ThrottledMixin, AdminAuthenticationForm):
    """The admin site's sign-in form."""
