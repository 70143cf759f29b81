"""The WSGI application: Django's handler, with the HIT page's autosave taken through a shorter path.

The autosave (`PUT|POST /api/hit/assignments/<uuid>/answers/<video id>`, crowd.api_hit.answer) is most of the
server's requests while annotators work (one per change on the HIT page). It is authenticated by its signed HIT
token and browser binding (checked by the crowd services), csrf-exempt, and reads no session, user or message, so
the middleware that serves pages only (settings.AUTOSAVE_SKIPPED_MIDDLEWARE: static files, sessions, CSRF, the
signed-in user, messages) does nothing for it but cost time; and the full URL map tries a hundred patterns before
it. `AvcrowdWSGIHandler` sends exactly the requests that config.urls_autosave resolves (that pattern alone) to
`AutosaveFastPath`, which does what `AutosaveHandler` does without Django's middleware chain (see its docstring).
`AutosaveHandler` is Django's WSGIHandler (request_started/request_finished and so the database connection
management, the same request and response objects, Django's exception handling) with every other middleware in
settings.MIDDLEWARE in the same order (request id, logs and metrics, SecurityMiddleware's HTTPS redirect and
headers, CommonMiddleware's host check and Content-Length, the error middleware, X-Frame-Options, the
Content-Security-Policy) and the view resolved from the one pattern; the fast path hands it the requests it leaves
(redirects, bad hosts) and every autosave when the middleware is not the set it was reviewed for. Everything else
goes through Django's handler unchanged. docs/benchmarks.md, "Autosave overhead" and "Autosave, third pass".
"""

from __future__ import annotations

import json
import logging
import re
import time
import weakref

from django.conf import settings
from django.core import signals
from django.core.cache import caches, close_caches
from django.core.cache.backends.base import BaseCache
from django.core.exceptions import MiddlewareNotUsed
from django.core.handlers.base import reset_urlconf
from django.core.handlers.exception import convert_exception_to_response, response_for_exception
from django.core.handlers.wsgi import WSGIHandler, WSGIRequest, get_path_info, get_script_name
from django.core.signals import setting_changed
from django.db import close_old_connections, connections, reset_queries
from django.dispatch.dispatcher import NONE_ID
from django.http import HttpResponse
from django.urls import ResolverMatch, get_resolver, set_script_prefix, set_urlconf
from django.utils.log import log_response
from django.utils.module_loading import import_string

from catalog.errors import AvcrowdError
from catalog.observability import record_request, request_id, request_id_var
from crowd import api_hit

logger = logging.getLogger(__name__)

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
            kwargs, model = found.groupdict(), self.resolved_model()
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

    def resolved_model(self):
        """The URLconf's match of a sample autosave path: its view, name, namespaces and route."""
        model = getattr(self, "_model", None)
        if model is None:
            model = self._model = get_resolver(AUTOSAVE_URLCONF).resolve("/api/hit/assignments/a/answers/b")
        return model


# The middleware whose work on an autosave AutosaveFastPath does without Django's middleware chain (reviewed one by
# one: see AutosaveFastPath). settings.MIDDLEWARE less AUTOSAVE_SKIPPED_MIDDLEWARE must be exactly this, in this
# order, or the autosave goes through AutosaveHandler (a warning says so when the application is made).
FAST_PATH_MIDDLEWARE = (
    "catalog.observability.RequestMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "frontend.middleware.AvcrowdErrorMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "frontend.middleware.FrameAncestorsMiddleware",
)
_SKIP_IN_ANSWER_HEADERS = frozenset({"Content-Type", "Content-Length"})


def _not_called(request):  # the get_response of middleware whose process_* methods are called one by one
    raise AssertionError("AutosaveFastPath calls its middleware's methods, never the chain")


# Django's own receivers of the request signals, in the order Django connects them (django.db, django.core.cache,
# django.core.handlers.base). While they are all the signals have, a saved answer does their work without sending
# the signals (RequestLifecycle).
DJANGO_REQUEST_STARTED = (reset_queries, close_old_connections)
DJANGO_REQUEST_FINISHED = (close_old_connections, close_caches, reset_urlconf)


def reviewed_receivers(entries: list, expected: tuple) -> bool:
    """Whether a signal's receiver entries (`Signal.receivers`) are exactly the functions `expected`, each once,
    synchronous, for any sender (in any order: Django's test client disconnects and connects close_old_connections
    again, which moves it last; the receivers are independent of each other)."""
    found = []
    for (_, sender_key), ref, is_async in entries:
        if is_async or sender_key != NONE_ID:
            return False
        found.append(ref() if isinstance(ref, weakref.ReferenceType) else ref)
    return len(found) == len(expected) and set(found) == set(expected)


class DjangoReceiversOnly:
    """Whether `signal` has Django's receivers `expected` only, now. Its receiver list is looked at again only when it
    changed since (compared with its copy: the same entries, well under a microsecond)."""

    def __init__(self, signal, expected: tuple):
        self.signal, self.expected = signal, expected
        # the receiver list as last looked at, with the answer for it (one tuple, replaced whole, so that a thread
        # never sees a list with another list's answer)
        self._seen = (None, False)

    def __call__(self) -> bool:
        seen, answer = self._seen
        if self.signal.receivers != seen:
            seen = list(self.signal.receivers)
            answer = reviewed_receivers(seen, self.expected)
            self._seen = (seen, answer)
        return answer


def caches_need_closing() -> bool:
    """Whether a configured cache does anything on close() (close_caches' work): BaseCache.close does nothing, and
    neither Django's memory cache nor its Redis cache (catalog.cache's included) overrides it; memcached does."""
    return any(import_string(c["BACKEND"]).close is not BaseCache.close for c in settings.CACHES.values())


class RequestLifecycle:
    """request_started and request_finished of a saved answer. Sending them was a fifth of the instructions a save
    costs on the fast path, about 0.1 ms of CPU (docs/benchmarks.md, "Autosave, fourth pass"): the dispatch, then
    each receiver in turn asking asgiref's `Local` for this thread's connections or caches, and `reset_urlconf`
    looking for a URLconf the save never set. While Django's own receivers are the only ones connected (checked on
    every request: a receiver connected later, by a test or a library, gets the signals again), their work is
    done here:

    - started: reset_queries and close_old_connections, over this thread's connections listed once;
    - finished: close_old_connections (a connection past CONN_MAX_AGE, with errors or left out of autocommit is
      closed, as Django does it); close_caches when a configured cache does anything on close(); not
      reset_urlconf, since a saved answer's path sets no URLconf (only the exception path does, and its response
      ends the request with the signal itself, through Django's response).
    """

    def __init__(self, sender):
        self.sender = sender
        self.started_by_django_only = DjangoReceiversOnly(signals.request_started, DJANGO_REQUEST_STARTED)
        self.finished_by_django_only = DjangoReceiversOnly(signals.request_finished, DJANGO_REQUEST_FINISHED)
        self.close_caches = caches_need_closing()
        setting_changed.connect(self._setting_changed, weak=True)  # a test's override_settings(CACHES=...)

    def _setting_changed(self, setting, **kwargs):
        if setting == "CACHES":
            self.close_caches = caches_need_closing()

    def started(self, environ) -> None:
        if not self.started_by_django_only():
            signals.request_started.send(sender=self.sender, environ=environ)
            return
        initialized = connections.all(initialized_only=True)
        for conn in initialized:  # reset_queries
            conn.queries_log.clear()
        for conn in initialized:  # close_old_connections
            conn.close_if_unusable_or_obsolete()

    def finished(self) -> None:
        """The end of a request that set no URLconf."""
        if not self.finished_by_django_only():
            signals.request_finished.send(sender=self.sender)
            return
        for conn in connections.all(initialized_only=True):  # close_old_connections
            conn.close_if_unusable_or_obsolete()
        if self.close_caches:  # close_caches
            caches.close_all()


class _Answer:
    """The body of a saved answer, as a WSGI server iterates it; closing it ends the request (request_finished's work:
    the database connections' age and health, the caches)."""

    __slots__ = ("chunks", "lifecycle")

    def __init__(self, data: bytes, lifecycle: RequestLifecycle):
        self.chunks, self.lifecycle = [data], lifecycle

    def __iter__(self):
        return iter(self.chunks)

    def close(self):
        self.lifecycle.finished()


class AutosaveFastPath:
    """The autosave without Django's middleware chain, URL resolution and response object on a saved answer; every
    check and header of AutosaveHandler's path kept, with Django's and the project's own code:

    - the request starts and ends as Django's handler starts and ends it (RequestLifecycle: while Django's own
      receivers are the only ones, their work is done without sending request_started / request_finished;
      otherwise the signals are sent). A refused or failed request ends through Django's response, with the signal;
    - the request middleware's checks: SecurityMiddleware.process_request (HTTPS redirect) and
      CommonMiddleware.process_request (host check, user agents, www redirect). When either answers or raises, the
      request goes to AutosaveHandler before anything happened, which answers it as it always did;
    - the request id, latency metric and request log line of catalog.observability (RequestMiddleware's functions);
    - the view's work is crowd.api_hit.autosave (rate limits, body, service), the function the view calls;
    - a saved answer's headers: its Content-Type, Content-Length, Cache-Control and X-Request-ID, and the headers
      the response middleware (Security, Common, X-Frame-Options, FrameAncestors) gives a 200 JSON answer. For
      those four that depends on nothing but the request's scheme (HSTS on HTTPS only), so they are computed by
      the middleware itself once per scheme and reused;
    - a refusal (crowd.api_hit.refusal) or any other exception (the view-exception middleware, then Django's
      response_for_exception: logging, got_request_exception, handler500) becomes a Django response that passes
      through every response middleware's method, in the chain's order, and is logged as Django logs >= 400;
    - what fails after that (the metrics, a response middleware) gets Django's response for the exception, as
      Django's outermost handler gives it for what RequestMiddleware raises.

    Which middleware applies is checked once (FAST_PATH_MIDDLEWARE; and no database with ATOMIC_REQUESTS). With the
    rate limits' one-step count and the health check's kept poll object, what a save costs in one process beyond
    the bare-SQL floor fell from 0.41 to 0.25 ms of CPU (docs/benchmarks.md, "Autosave, third pass")."""

    def __init__(self, handler: AutosaveHandler):
        self.handler = handler
        self.sender = type(handler)
        paths = autosave_middleware()
        atomic = any(db.get("ATOMIC_REQUESTS") for db in settings.DATABASES.values())
        self.enabled = tuple(paths) == FAST_PATH_MIDDLEWARE and not atomic
        if not self.enabled:
            logger.warning(
                "the autosave takes Django's middleware chain (AutosaveHandler): %s",
                "a database has ATOMIC_REQUESTS"
                if atomic
                else f"its middleware {paths} is not the set config.handlers.FAST_PATH_MIDDLEWARE was reviewed for",
            )
            return
        middleware = [import_string(path)(_not_called) for path in paths[1:]]  # RequestMiddleware: done here
        self.request_steps = [m.process_request for m in middleware if hasattr(m, "process_request")]
        self.exception_steps = [m.process_exception for m in middleware if hasattr(m, "process_exception")]
        self.response_steps = [m.process_response for m in reversed(middleware) if hasattr(m, "process_response")]
        self.route = handler.resolved_model().route
        self._answer_headers: dict[bool, list] = {}
        self.lifecycle = RequestLifecycle(self.sender)

    def __call__(self, environ, start_response):
        if not self.enabled:
            return self.handler(environ, start_response)
        request = WSGIRequest(environ)
        try:
            for step in self.request_steps:
                if step(request) is not None:  # a redirect: Django's handler answers it (nothing was done yet)
                    return self.handler(environ, start_response)
        except Exception:  # DisallowedHost, PermissionDenied...: Django's handler answers (and logs) them
            return self.handler(environ, start_response)
        self.lifecycle.started(environ)
        rid = request.request_id = request_id(environ)
        token = request_id_var.set(rid)
        started = time.perf_counter()
        try:
            found = AUTOSAVE_PATH.fullmatch(request.path_info)
            try:
                body = api_hit.autosave(request, found["assignment_uuid"], found["video_id"])
            except AvcrowdError as exc:
                response = api_hit.refusal(exc)
            except Exception as exc:  # noqa: BLE001 - what Django's handler does with it, below
                response = self._exception_response(request, exc)
            else:
                data = json.dumps(body).encode()
                headers = [
                    ("Content-Type", "application/json"),
                    ("Content-Length", str(len(data))),
                    api_hit.NO_STORE,
                    *self.answer_headers(request),
                    ("X-Request-ID", rid),
                ]
                record_request(request.method, self.route, request.path, 200, time.perf_counter() - started)
                start_response("200 OK", headers)
                return _Answer(data, self.lifecycle)
            return self._finish(request, response, rid, started, start_response)
        except Exception as exc:  # noqa: BLE001 - past the view (the metrics, a response middleware): as Django's
            # outermost handler answers what RequestMiddleware raises: its response for the exception, as is
            return self._start(response_for_exception(request, exc), start_response)
        finally:
            request_id_var.reset(token)

    def answer_headers(self, request) -> list:
        """What the response middleware adds to a 200 JSON answer on a request of this scheme."""
        secure = request.is_secure()
        headers = self._answer_headers.get(secure)
        if headers is None:
            sample = HttpResponse(b"{}", content_type="application/json")
            for step in self.response_steps:
                sample = step(request, sample)
            headers = [(k, v) for k, v in sample.items() if k not in _SKIP_IN_ANSWER_HEADERS]
            self._answer_headers[secure] = headers
        return headers

    def _exception_response(self, request, exc):
        """As BaseHandler._get_response and convert_exception_to_response: the view-exception middleware, then
        Django's response for the exception (logged, got_request_exception sent, handler500)."""
        set_script_prefix(get_script_name(request.environ))
        set_urlconf(settings.ROOT_URLCONF)
        self.handler.resolve_request(request)
        for step in self.exception_steps:
            response = step(request, exc)
            if response is not None:
                return response
        return response_for_exception(request, exc)

    def _finish(self, request, response, rid, started, start_response):
        """A Django response through the response middleware, then as RequestMiddleware and the WSGI handler."""
        for step in self.response_steps:
            response = step(request, response)
        response["X-Request-ID"] = rid
        record_request(request.method, self.route, request.path, response.status_code, time.perf_counter() - started)
        if response.status_code >= 400:
            log_response("%s: %s", response.reason_phrase, request.path, response=response, request=request)
        response._resource_closers.append(request.close)
        return self._start(response, start_response)

    def _start(self, response, start_response):
        """As WSGIHandler.__call__: the status line and headers (cookies too); closing the response ends the
        request (request_finished, sent by this handler's class)."""
        response._handler_class = self.sender
        headers = [*response.items(), *(("Set-Cookie", c.output(header="")) for c in response.cookies.values())]
        start_response(f"{response.status_code} {response.reason_phrase}", headers)
        return response


class AvcrowdWSGIHandler(WSGIHandler):
    """config.wsgi.application: the autosave through AutosaveFastPath, every other request through Django's own."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.autosave = AutosaveFastPath(AutosaveHandler())

    def __call__(self, environ, start_response):
        if is_autosave(environ):
            return self.autosave(environ, start_response)
        return super().__call__(environ, start_response)
