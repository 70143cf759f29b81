"""Logs, metrics and error reports: what every process of avcrowd shares (web, Celery worker, beat, commands).

* A request id per request (the caller's ``X-Request-ID`` when it is a plain token, else a new one), sent back in
  the response header and written on every log line of that request; a Celery task's log lines carry its task id.
* ``LOG_FORMAT=json``: one JSON object per line (``JsonFormatter``).
* Prometheus metrics kept in the process (request latency, answer saves; gunicorn's workers share them through
  ``PROMETHEUS_MULTIPROC_DIR``) and Celery task outcomes, which workers count in the broker's Redis so that the
  web process can report them (``task_outcomes``). ``frontend.health`` serves them with the figures read from the
  database at scrape time (open HITs, spend, queue depth).
* Sentry (``sentry_init``), only when ``SENTRY_DSN`` is set.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import functools
import json
import logging
import os
import random
import re
import time

import redis
from django.conf import settings
from prometheus_client import Counter, Histogram

log = logging.getLogger(__name__)
request_log = logging.getLogger("avcrowd.request")

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("avcrowd_request_id", default="-")
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

REQUEST_LATENCY = Histogram(
    "avcrowd_http_request_duration_seconds",
    "Time to answer an HTTP request, by method, route and status code.",
    ["method", "route", "status"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
ANSWER_SAVES = Counter(
    "avcrowd_answer_saves_total",
    "Answers saved by annotators (autosaves of the HIT page and the expert page), by kind.",
    ["kind"],
)
_TASKS_LOCAL: dict[tuple[str, str], int] = {}  # tasks run in-process (no broker): counted here
TASK_OUTCOMES_KEY = "avcrowd:metrics:celery_tasks"


# --- request id and logs --------------------------------------------------------------------------------------


class RequestIdFilter(logging.Filter):
    """Puts the current request id (or task id) on every record as ``record.request_id``."""

    def filter(self, record):
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, request_id, and the exception's
    traceback as one string when there is one."""

    def format(self, record):
        out = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", request_id_var.get()),
        }
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def _route(request) -> str:
    match = getattr(request, "resolver_match", None)
    if match is not None:
        return match.route or match.view_name or "?"
    if request.path.startswith(settings.STATIC_URL):
        return "(static)"
    return "(unmatched)"  # 404s and redirects before routing: one label, not one per URL a stranger tries


# New request ids: 128 random bits as 32 hex digits (the length of a uuid4's hex). They need to be unique, not secret,
# so they come from a generator of this process's own, reseeded from the system in every forked child (gunicorn's
# workers), rather than from uuid4's os.urandom: a system call that lets go of the GIL on every request.
_ids = random.Random()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_ids.seed)


def request_id(meta) -> str:
    """The id of a request: the caller's X-Request-ID when it is a plain token, else a new one."""
    incoming = meta.get("HTTP_X_REQUEST_ID", "")  # request.headers would parse every header
    return incoming if REQUEST_ID_RE.match(incoming) else f"{_ids.getrandbits(128):032x}"


def count_answer_save(kind: str) -> None:
    """One answer saved: "answer", "media_failed" (the HIT page) or "expert" (the expert page)."""
    _answer_saves(kind).inc()


@functools.lru_cache(maxsize=16)
def _answer_saves(kind: str):
    return ANSWER_SAVES.labels(kind)


@functools.lru_cache(maxsize=4096)  # routes are patterns, not URLs: a few hundred (method, route, status) at most
def _latency(method: str, route: str, status: int):
    """REQUEST_LATENCY's child for these labels (`labels()` checks and looks them up under a lock on every call)."""
    return REQUEST_LATENCY.labels(method, route, str(status))


def record_request(method: str, route: str, path: str, status: int, elapsed: float) -> None:
    """A finished request: its latency in the metrics and, with LOG_REQUESTS, one log line (the path only: query
    strings carry worker and assignment ids)."""
    _latency(method, route, status).observe(elapsed)
    if settings.LOG_REQUESTS:
        request_log.info("%s %s %s %.0fms", method, path, status, 1000 * elapsed)


class RequestMiddleware:
    """Outermost middleware: request id (contextvar + X-Request-ID response header), request latency, and one
    log line per request (LOG_REQUESTS; off under `runserver`, which logs its own). The HIT page's autosave does the
    same through config.handlers.AutosaveFastPath, with these functions."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        rid = request.request_id = request_id(request.META)
        token = request_id_var.set(rid)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            response["X-Request-ID"] = rid
            elapsed = time.perf_counter() - started
            record_request(request.method, _route(request), request.path, response.status_code, elapsed)
            return response
        finally:
            request_id_var.reset(token)


# --- Celery task outcomes -------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _redis(url: str):
    return redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)


def broker_redis():
    """A client of the broker's Redis, or None when the broker is not Redis (or tasks run in-process)."""
    url = getattr(settings, "CELERY_BROKER_URL", "") or ""
    if not url.startswith(("redis://", "rediss://")) or getattr(settings, "CELERY_TASK_ALWAYS_EAGER", False):
        return None
    return _redis(url)


def record_task_outcome(task_name: str, state: str) -> None:
    """Count a finished task: in the broker's Redis when there is one (workers and web are separate processes,
    often separate hosts), else in this process."""
    client = broker_redis()
    if client is None:
        _TASKS_LOCAL[(task_name, state)] = _TASKS_LOCAL.get((task_name, state), 0) + 1
        return
    try:
        client.hincrby(TASK_OUTCOMES_KEY, f"{task_name}|{state}", 1)
    except redis.RedisError as exc:  # metrics never fail a task
        log.warning("could not count the outcome of %s in Redis: %s", task_name, exc)


def task_outcomes() -> dict[tuple[str, str], int]:
    """{(task, state): count}: counted by the workers in the broker's Redis, or by this process (no broker)."""
    client = broker_redis()
    if client is None:
        return dict(_TASKS_LOCAL)
    raw = client.hgetall(TASK_OUTCOMES_KEY)
    out = {}
    for field, value in raw.items():
        name, _, state = field.decode().partition("|")
        out[(name, state)] = int(value)
    return out


def connect_celery_signals() -> None:
    """Task ids on log lines, and task outcomes counted (called by config.celery)."""
    from celery import signals  # noqa: PLC0415 - only processes that load the Celery app need the signals

    tokens = {}

    @signals.task_prerun.connect(weak=False)
    def _prerun(task_id=None, **_):
        tokens[task_id] = request_id_var.set(f"task-{task_id}")

    @signals.task_postrun.connect(weak=False)
    def _postrun(task_id=None, task=None, state=None, **_):
        token = tokens.pop(task_id, None)
        if token is not None:
            request_id_var.reset(token)
        if task is not None and state:
            record_task_outcome(task.name, state)


# --- Sentry -------------------------------------------------------------------------------------------------------


def sentry_init(dsn: str, *, environment: str = "production") -> None:
    """Error reports (unhandled exceptions of requests and tasks, logged errors) with the Django and Celery
    integrations; no personal data (no cookies, no user ids, no request bodies)."""
    import sentry_sdk  # noqa: PLC0415 - only when SENTRY_DSN is set
    from sentry_sdk.integrations.celery import CeleryIntegration  # noqa: PLC0415
    from sentry_sdk.integrations.django import DjangoIntegration  # noqa: PLC0415

    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        integrations=[DjangoIntegration(), CeleryIntegration()],
        send_default_pii=False,
        traces_sample_rate=0.0,
    )
