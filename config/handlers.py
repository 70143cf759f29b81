"""The WSGI application: Django's handler, with the HIT page's autosave taken through a shorter path.

The autosave (`PUT|POST /api/hit/assignments/<uuid>/answers/<video id>`, crowd.api_hit.answer) is most of the
server's requests while annotators work (one per change on the HIT page). It is authenticated by its signed HIT
token and browser binding (checked by the crowd services), csrf-exempt, and reads no session, user or message, so
the middleware that serves pages only (settings.AUTOSAVE_SKIPPED_MIDDLEWARE: static files, sessions, CSRF, the
signed-in user, messages) does nothing for it but cost time; and the full URL map tries a hundred patterns before
it. `AvcrowdWSGIHandler` sends exactly the requests that config.urls_autosave resolves (that pattern alone) to
`AutosaveHandler`: still Django's WSGIHandler (request_started/request_finished and so the database connection
management, the same request and response objects, Django's exception handling), with every other middleware in
settings.MIDDLEWARE in the same order (request id, logs and metrics, SecurityMiddleware's HTTPS redirect and
headers, CommonMiddleware's host check and Content-Length, the error middleware, X-Frame-Options, the
Content-Security-Policy), and the view resolved from the one pattern. Everything else goes through Django's
handler unchanged. docs/benchmarks.md, "Autosave overhead".
"""

from __future__ import annotations

import re

from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.core.handlers.exception import convert_exception_to_response
from django.core.handlers.wsgi import WSGIHandler, get_path_info
from django.urls import ResolverMatch, get_resolver
from django.utils.module_loading import import_string

AUTOSAVE_URLCONF = "config.urls_autosave"
AUTOSAVE_METHODS = frozenset({"PUT", "POST"})
# what config.urls_autosave resolves: "api/hit/" + "assignments/<str:assignment_uuid>/answers/<str:video_id>" (a
# `str` converter takes any non-empty text without "/", as is)
AUTOSAVE_PATH = re.compile(r"/api/hit/assignments/(?P<assignment_uuid>[^/]+)/answers/(?P<video_id>[^/]+)")


def autosave_middleware() -> list[str]:
    """settings.MIDDLEWARE in its order, less what the autosave does not need (a middleware added to MIDDLEWARE
    later applies to the autosave too unless it is named in AUTOSAVE_SKIPPED_MIDDLEWARE)."""
    skipped = set(settings.AUTOSAVE_SKIPPED_MIDDLEWARE)
    return [path for path in settings.MIDDLEWARE if path not in skipped]


def is_autosave(environ) -> bool:
    """An autosave: PUT or POST to a path that config.urls_autosave resolves (AUTOSAVE_PATH, the same test without
    the resolver's cost: tests/security/test_autosave_path.py holds them equal)."""
    return environ.get("REQUEST_METHOD") in AUTOSAVE_METHODS and AUTOSAVE_PATH.fullmatch(get_path_info(environ))


class AutosaveHandler(WSGIHandler):
    """Django's WSGIHandler with the middleware of `autosave_middleware()` and the autosave's URL map."""

    def load_middleware(self, is_async=False):
        # BaseHandler.load_middleware for a synchronous stack, over another list than settings.MIDDLEWARE
        self._view_middleware = []
        self._template_response_middleware = []
        self._exception_middleware = []
        handler = convert_exception_to_response(self._get_response)
        for path in reversed(autosave_middleware()):
            middleware = import_string(path)
            if not getattr(middleware, "sync_capable", True):
                raise RuntimeError(f"middleware {path} cannot run synchronously (the autosave path is synchronous)")
            try:
                instance = middleware(handler)
            except MiddlewareNotUsed:
                continue
            if hasattr(instance, "process_view"):
                self._view_middleware.insert(0, instance.process_view)
            if hasattr(instance, "process_template_response"):
                self._template_response_middleware.append(instance.process_template_response)
            if hasattr(instance, "process_exception"):
                self._exception_middleware.append(instance.process_exception)
            handler = convert_exception_to_response(instance)
        self._middleware_chain = handler

    def resolve_request(self, request):
        # the one pattern (same route, name and view as in the full map); the thread's URLconf stays the full
        # map, so reverse() and error handlers behave as on every other request. The path already passed
        # AUTOSAVE_PATH (is_autosave), whose groups are the pattern's arguments: the match is built from them
        # rather than by walking the URLconf again (a few per cent of a save's CPU)
        found = AUTOSAVE_PATH.fullmatch(request.path_info)
        if found is None:  # not through AvcrowdWSGIHandler: resolve as Django does (Resolver404 and all)
            match = get_resolver(AUTOSAVE_URLCONF).resolve(request.path_info)
        else:
            kwargs, model = found.groupdict(), self._resolved_model()
            match = ResolverMatch(
                model.func,
                (),
                kwargs,
                url_name=model.url_name,
                app_names=model.app_names,
                namespaces=model.namespaces,
                route=model.route,
                captured_kwargs=dict(kwargs),
                extra_kwargs={},
            )
        request.resolver_match = match
        return match

    def _resolved_model(self):
        """The URLconf's match of a sample autosave path: its view, name, namespaces and route."""
        model = getattr(self, "_model", None)
        if model is None:
            model = self._model = get_resolver(AUTOSAVE_URLCONF).resolve("/api/hit/assignments/a/answers/b")
        return model


class AvcrowdWSGIHandler(WSGIHandler):
    """config.wsgi.application: the autosave through AutosaveHandler, every other request through Django's own."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.autosave = AutosaveHandler()

    def __call__(self, environ, start_response):
        if is_autosave(environ):
            return self.autosave(environ, start_response)
        return super().__call__(environ, start_response)
