"""Who may do what: the one home of the access rules.

Role predicates (admin, researcher, in-house annotator), the rules built from them, and the two forms every view
uses: DRF permission classes for the APIs and decorators for the pages. Every view names its rule
(`view_rule(view)` reads it: `access_rule` on a page, the permission class on an API view); the role matrix test
(tests/foundation/test_access_matrix.py) walks every URL pattern and checks each role against the declared rule,
so an endpoint without a rule fails CI. The matrix itself is in docs/architecture.md ("Where each kind of rule
lives").

Roles: admins are staff accounts; researchers and in-house annotators are members of the groups that
`create_user --role researcher|annotator` puts them in. A signed-in account in neither group has no role: it
reaches only the `signed_in` pages (its own tasks). Crowd workers have no account: they use the HIT page and its
API, whose signed token the crowd services check.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import wraps
from typing import Callable

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from rest_framework.permissions import BasePermission

RESEARCHER_GROUP = "researchers"
ANNOTATOR_GROUP = "annotators"
READ_METHODS = ("GET", "HEAD", "OPTIONS")


# --- role predicates --------------------------------------------------------------------------------------------


def _groups(user) -> frozenset[str]:
    """The user's group names, looked up once per user object (one request)."""
    cached = getattr(user, "_avcrowd_groups", None)
    if cached is None:
        cached = frozenset(user.groups.values_list("name", flat=True))
        user._avcrowd_groups = cached
    return cached


def is_signed_in(user) -> bool:
    return bool(user is not None and user.is_authenticated and user.is_active)


def is_admin(user) -> bool:
    """Staff: admins do everything."""
    return is_signed_in(user) and bool(user.is_staff)


def is_researcher(user) -> bool:
    """Member of the `researchers` group (`create_user --role researcher`)."""
    return is_signed_in(user) and RESEARCHER_GROUP in _groups(user)


def is_annotator(user) -> bool:
    """In-house annotator: member of the `annotators` group (`create_user --role annotator`)."""
    return is_signed_in(user) and ANNOTATOR_GROUP in _groups(user)


def _anyone(user) -> bool:
    return True


def _research(user) -> bool:
    return is_admin(user) or is_researcher(user)


def _gold(user) -> bool:
    return is_admin(user) or is_annotator(user)


# --- rules ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    name: str
    description: str  # for people: shown in 403 answers and the docs' matrix
    read: Callable[[object], bool]  # GET, HEAD, OPTIONS
    write: Callable[[object], bool]  # every other method

    def allows(self, user, method: str) -> bool:
        return (self.read if method.upper() in READ_METHODS else self.write)(user)


PUBLIC = Rule("public", "anyone, no login", _anyone, _anyone)
PUBLIC_HIT = Rule(
    "public_hit",
    "public; the HIT token (X-HIT-Token) is checked by the crowd services",
    _anyone,
    _anyone,
)
PUBLIC_SIGNED_LINK = Rule(
    "public_signed_link", "public; the signed, expiring link in the URL is checked by the view", _anyone, _anyone
)
PUBLIC_TOKEN = Rule(
    "public_token",
    "public; a bearer token of the server's configuration (METRICS_TOKEN) is checked by the view",
    _anyone,
    _anyone,
)
SIGNED_IN = Rule("signed_in", "any signed-in account (the page shows only its own data)", is_signed_in, is_signed_in)
ANNOTATOR = Rule("annotator", "in-house annotators and admins only", _gold, _gold)
RESEARCHER_READ = Rule("researcher_read", "researchers and admins read; only admins write", _research, is_admin)
RESEARCHER = Rule("researcher", "researchers and admins only", _research, _research)
ADMIN = Rule("admin", "admins (staff) only", is_admin, is_admin)
DJANGO_ADMIN = Rule("django_admin", "Django admin: staff only (the admin site's own login)", is_admin, is_admin)

RULES = {
    r.name: r
    for r in (
        PUBLIC,
        PUBLIC_HIT,
        PUBLIC_SIGNED_LINK,
        PUBLIC_TOKEN,
        SIGNED_IN,
        ANNOTATOR,
        RESEARCHER_READ,
        RESEARCHER,
        ADMIN,
    )
}
RULES[DJANGO_ADMIN.name] = DJANGO_ADMIN


def refusal(rule: Rule, user) -> str:
    """Why a signed-in account is refused: the rule and who they are."""
    who = f"you are signed in as {user.get_username()}" if is_signed_in(user) else "you are not signed in"
    return f"this is for {rule.description}; {who}"


# --- DRF permission classes -------------------------------------------------------------------------------------


class RulePermission(BasePermission):
    """A DRF permission that applies one Rule; the subclasses below are the ones views use."""

    rule: Rule = ADMIN

    def has_permission(self, request, view):
        if self.rule.allows(request.user, request.method):
            return True
        self.message = refusal(self.rule, request.user)
        return False


class Public(RulePermission):
    rule = PUBLIC


class PublicHit(RulePermission):
    rule = PUBLIC_HIT


class SignedIn(RulePermission):
    rule = SIGNED_IN


class AnnotatorOnly(RulePermission):
    rule = ANNOTATOR


class ResearcherRead(RulePermission):
    rule = RESEARCHER_READ


class ResearcherOnly(RulePermission):
    rule = RESEARCHER


class AdminOnly(RulePermission):
    rule = ADMIN


class Undeclared(BasePermission):
    """REST_FRAMEWORK's default permission: an API view that names no rule is closed to everyone (and the role
    matrix test names it)."""

    message = "this endpoint declares no access rule (catalog.access); nobody may use it"

    def has_permission(self, request, view):
        return False


# --- page decorators --------------------------------------------------------------------------------------------


def _tag(view, rule: Rule):
    view.access_rule = rule.name
    return view


def page(rule: Rule):
    """Decorator for a page view: anonymous visitors go to the login page, signed-in accounts without the role get
    403 naming the rule. Put it outermost, so the rule is checked before anything else."""

    def decorator(view):
        if rule.read is _anyone and rule.write is _anyone:
            return _tag(view, rule)

        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if not rule.allows(request.user, request.method):
                if not is_signed_in(request.user):
                    return redirect_to_login(request.get_full_path())
                raise PermissionDenied(refusal(rule, request.user))
            return view(request, *args, **kwargs)

        return _tag(wrapper, rule)

    return decorator


public_page = page(PUBLIC)
public_hit = page(PUBLIC_HIT)
public_signed_link = page(PUBLIC_SIGNED_LINK)
public_token = page(PUBLIC_TOKEN)
signed_in_page = page(SIGNED_IN)
annotator_page = page(ANNOTATOR)
researcher_page = page(RESEARCHER)
admin_page = page(ADMIN)


def view_rule(view) -> Rule | None:
    """The rule a URL pattern's view declares: `access_rule` (pages, the HIT API), else the one RulePermission of
    a DRF view (`as_view()`, routers and `@api_view` keep the class in `view.cls`). None when it declares none."""
    name = getattr(view, "access_rule", None)
    if name:
        return RULES[name]
    cls = getattr(view, "cls", None)
    perms = list(getattr(cls, "permission_classes", None) or [])
    if len(perms) == 1 and isinstance(perms[0], type) and issubclass(perms[0], RulePermission):
        return perms[0].rule
    return None


def user_roles(user) -> dict[str, bool]:
    """What the pages' navigation shows (template context `roles`)."""
    return {
        "admin": is_admin(user),
        "researcher": _research(user),
        "annotator": _gold(user),
        "signed_in": is_signed_in(user),
    }
