"""Health, readiness and metrics endpoints for the people and machines that run avcrowd.

* ``GET /healthz``: the process answers (no database access). Public.
* ``GET /readyz``: the database answers and every migration is applied, the Celery broker answers, the media
  store answers. 200 when all do, else 503; the body says which part failed by name and error type only (no
  host names, no credentials). Public.
* ``GET /metrics``: Prometheus text format, for ``Authorization: Bearer <METRICS_TOKEN>`` only (404 when
  METRICS_TOKEN is unset). Request latency and answer saves come from the web processes (shared by gunicorn's
  workers through PROMETHEUS_MULTIPROC_DIR); Celery task outcomes and queue depth from the broker's Redis; open
  HITs, spend and running operations from the database, read at scrape time.

Access (catalog.access): /healthz and /readyz are `public` on purpose (load balancers and container healthchecks
have no account); /metrics is `public_token`: its own bearer token (METRICS_TOKEN), not a login, so that a
Prometheus server can scrape it.
"""

from __future__ import annotations

import hmac
import logging
import os

from celery import current_app as celery_app
from django.conf import settings
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from catalog.access import public_page, public_token
from catalog.models import Dataset, Operation
from catalog.observability import broker_redis, task_outcomes
from catalog.storage import s3_client
from crowd.models import Hit
from crowd.services.costs import dataset_spend

log = logging.getLogger(__name__)
_migrations_applied = False  # once true in a process it stays true (migrations are never unapplied live)


def _json(body: dict, status: int = 200) -> JsonResponse:
    response = JsonResponse(body, status=status)
    response["Cache-Control"] = "no-store"
    return response


@public_page
@never_cache
@require_GET
def healthz(request):
    """The process is alive and serving requests."""
    return _json({"status": "ok"})


def _check(fn) -> dict:
    try:
        detail = fn()
    except Exception as exc:  # noqa: BLE001 - reported by type only: messages may carry hosts or credentials
        log.warning("readiness check %s failed: %s: %s", fn.__name__, type(exc).__name__, exc)
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True, **({"detail": detail} if detail else {})}


def database():
    global _migrations_applied
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    if not _migrations_applied:
        executor = MigrationExecutor(connection)
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
        if pending:
            raise MigrationsPending(f"{len(pending)} migration(s) not applied: run `python manage.py migrate`")
        _migrations_applied = True
    return None


class MigrationsPending(Exception):
    pass


def broker():
    if celery_app.conf.task_always_eager:
        return "not used: tasks run in-process"
    with celery_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=settings.CELERY_BROKER_CONNECTION_TIMEOUT)
    return None


def storage():
    if settings.AWS_STORAGE_BUCKET_NAME:
        s3_client().head_bucket(Bucket=settings.AWS_STORAGE_BUCKET_NAME)
        return None
    root = os.path.abspath(settings.MEDIA_ROOT)
    while not os.path.exists(root):  # created on the first upload: its nearest existing parent must be writable
        root = os.path.dirname(root)
    if not os.path.isdir(root) or not os.access(root, os.W_OK):
        raise PermissionError("MEDIA_ROOT is not a writable directory")
    return None


@public_page
@never_cache
@require_GET
def readyz(request):
    """Ready to serve: database (migrated), broker and media store reachable."""
    checks = {"database": _check(database), "broker": _check(broker), "storage": _check(storage)}
    ok = all(c["ok"] for c in checks.values())
    return _json({"status": "ok" if ok else "unavailable", "checks": checks}, status=200 if ok else 503)


# --- metrics -----------------------------------------------------------------------------------------------------


def _queue_names() -> list[str]:
    names = {settings.CELERY_TASK_DEFAULT_QUEUE}
    names.update(route["queue"] for route in settings.CELERY_TASK_ROUTES.values() if "queue" in route)
    return sorted(names)


class AppCollector:
    """Figures read at scrape time from the database and the broker."""

    def collect(self):
        hits = GaugeMetricFamily(
            "avcrowd_open_hits", "Open HITs / studies on a marketplace.", labels=["backend", "env"]
        )
        counts = {}
        for backend, sandbox in Hit.objects.filter(status=Hit.OPEN).values_list("backend", "sandbox"):
            key = (backend, "sandbox" if sandbox else "production")
            counts[key] = counts.get(key, 0) + 1
        for (backend, env), n in sorted(counts.items()):
            hits.add_metric([backend, env], n)
        yield hits

        spend = GaugeMetricFamily(
            "avcrowd_spend_usd",
            "Marketplace spend in production, with fees: paid (approved work and bonuses) and committed.",
            labels=["dataset", "kind"],
        )
        budget = GaugeMetricFamily("avcrowd_budget_usd", "Budget of the dataset.", labels=["dataset"])
        for dataset in Dataset.objects.order_by("name"):
            s = dataset_spend(dataset, sandbox=False)
            spend.add_metric([dataset.name, "paid"], float(s.paid))
            spend.add_metric([dataset.name, "committed"], float(s.committed))
            budget.add_metric([dataset.name], float(s.budget))
        yield spend
        yield budget

        running = GaugeMetricFamily("avcrowd_operations_running", "Long operations running now.", labels=["kind"])
        for kind, _ in Operation.KINDS:
            running.add_metric([kind], Operation.objects.filter(kind=kind, status=Operation.RUNNING).count())
        yield running

        tasks = CounterMetricFamily(
            "avcrowd_celery_tasks", "Celery tasks finished, by task and final state.", labels=["task", "state"]
        )
        try:
            outcomes = task_outcomes()
        except Exception as exc:  # noqa: BLE001 - the broker down must not hide the other figures
            log.warning("metrics: task outcomes unavailable: %s", exc)
            outcomes = {}
        for (task, state), n in sorted(outcomes.items()):
            tasks.add_metric([task, state], n)
        yield tasks

        client = broker_redis()
        if client is not None:
            depth = GaugeMetricFamily("avcrowd_celery_queue_length", "Tasks waiting in a queue.", labels=["queue"])
            unacked = GaugeMetricFamily("avcrowd_celery_unacked", "Tasks taken by a worker and not yet finished.")
            try:
                for queue in _queue_names():
                    # kombu keeps priorities 3, 6 and 9 in lists of their own beside the queue's list
                    keys = [queue] + [f"{queue}\x06\x16{p}" for p in (3, 6, 9)]
                    depth.add_metric([queue], sum(client.llen(k) for k in keys))
                unacked.add_metric([], client.zcard("unacked_index"))
            except Exception as exc:  # noqa: BLE001
                log.warning("metrics: queue depth unavailable: %s", exc)
            else:
                yield depth
                yield unacked


def _authorized(request) -> bool:
    expected = settings.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected.encode())


@public_token
@never_cache
@require_GET
def metrics(request):
    """Prometheus metrics (see the module doc); needs ``Authorization: Bearer <METRICS_TOKEN>``."""
    if not settings.METRICS_TOKEN:
        return _json({"error": "metrics are off: set METRICS_TOKEN and scrape with that bearer token"}, 404)
    if not _authorized(request):
        response = _json({"error": "send the metrics token as 'Authorization: Bearer <METRICS_TOKEN>'"}, 401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        process = CollectorRegistry()
        MultiProcessCollector(process)
    else:
        process = REGISTRY
    app = CollectorRegistry()
    app.register(AppCollector())
    response = HttpResponse(generate_latest(process) + generate_latest(app), content_type=CONTENT_TYPE_LATEST)
    response["Cache-Control"] = "no-store"
    return response
