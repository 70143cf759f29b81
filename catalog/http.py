"""The one mapping of the project's errors (catalog.errors.AvcrowdError) to HTTP and to management commands.

- REST APIs (DRF): `exception_handler`, set as REST_FRAMEWORK["EXCEPTION_HANDLER"]: the error's status code and
  its `as_dict()` body ({"error", "field"?, "details"?}); everything else goes to DRF's own handler.
- Plain JSON views (the HIT API): the `json_errors` decorator gives the same answer; with `quiet_not_found` a 404
  says only {"error": "not found"} (public endpoints reveal nothing about ids they do not know).
- Pages: frontend.middleware.AvcrowdErrorMiddleware (a readable error page, or a message and a redirect back for
  form posts).
- Management commands: `command_errors()` turns the error into a CommandError with `as_text()` (exit code 1).
Views hold no try/except for AvcrowdError.
"""

from __future__ import annotations

from contextlib import contextmanager
from functools import wraps

from django.core.management.base import CommandError
from django.http import JsonResponse
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from catalog.errors import AvcrowdError
from catalog.models import Dataset

NOT_FOUND_BODY = {"error": "not found"}


def error_body(exc: AvcrowdError, *, quiet_not_found: bool = False) -> dict:
    if quiet_not_found and exc.status_code == 404:
        return dict(NOT_FOUND_BODY)
    return exc.as_dict()


def exception_handler(exc, context):
    """DRF's EXCEPTION_HANDLER: AvcrowdError -> its status and body; the rest as DRF does it."""
    if isinstance(exc, AvcrowdError):
        set_rollback()
        retry = getattr(exc, "retry_after", None)
        return Response(error_body(exc), status=exc.status_code, headers={"Retry-After": str(retry)} if retry else None)
    return drf_exception_handler(exc, context)


def error_response(exc: AvcrowdError, *, quiet_not_found: bool = False) -> JsonResponse:
    """A plain JSON view's answer to an AvcrowdError: its status and body, Retry-After when it has one."""
    response = JsonResponse(error_body(exc, quiet_not_found=quiet_not_found), status=exc.status_code)
    if getattr(exc, "retry_after", None):
        response["Retry-After"] = str(exc.retry_after)
    return response


def json_errors(view=None, *, quiet_not_found: bool = False):
    """Decorator for plain Django JSON views: an AvcrowdError becomes a JsonResponse with its status and body."""

    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            try:
                return view(request, *args, **kwargs)
            except AvcrowdError as exc:
                return error_response(exc, quiet_not_found=quiet_not_found)

        return wrapper

    return decorator(view) if view is not None else decorator


@contextmanager
def command_errors():
    """In a management command: `with command_errors(): ...` reports an AvcrowdError as a CommandError."""
    try:
        yield
    except AvcrowdError as exc:
        raise CommandError(exc.as_text()) from exc


def command_dataset(name: str):
    """In a management command: the dataset called `name`, or a CommandError naming it and the datasets there are."""
    dataset = Dataset.objects.filter(name=name).first()
    if dataset is None:
        known = ", ".join(Dataset.objects.order_by("name").values_list("name", flat=True)[:20]) or "none"
        raise CommandError(f"no dataset named {name!r}: it does not exist; known datasets: {known}")
    return dataset
