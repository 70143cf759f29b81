"""Long work recorded on an Operation row, so that it never looks as if it were still going when it is not.

* Starting: the request checks and creates the Operation, then ``operation_queue`` sends the Celery task once the
  transaction commits. A task that cannot be queued (the broker is down) fails its Operation at once with the
  reason; the request still answers in a few seconds (CELERY_BROKER_CONNECTION_TIMEOUT).
* Running: ``operation_finish`` (work done in one call) and ``Progress`` (work done step by step, also by
  commands) write a heartbeat on the row while the work runs.
* Dying: a running Operation without a heartbeat for OPERATION_STALE_SECONDS, or never picked up by a worker
  within OPERATION_QUEUED_SECONDS, is failed by ``operations_fail_stale`` (Celery beat every minute, and the pages
  that show operations) with what happened; ``operation_retry`` queues the same work again as a new Operation.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
import time
from typing import Callable

from celery import current_app
from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from catalog.errors import AvcrowdError, ValidationError
from catalog.models import Operation
from catalog.services.uploads import staged_discard, staged_hide

log = logging.getLogger(__name__)


# --- starting -------------------------------------------------------------------------------------------------------


# Without a broker (the embedded set-up: Celery runs tasks in-process), work queued with ``background=True`` runs in
# a background thread instead of inside the request; its progress is on the Operation. Tests turn it off to run
# the work in the request (with the on-commit callbacks captured).
BACKGROUND_THREAD = True


def operation_queue(
    op: Operation, task, *, kwargs: dict | None = None, queue: str | None = None, background: bool = False
) -> Operation:
    """Record how ``op``'s work is queued (for a retry) and send ``task(**kwargs, operation_id=op.pk)`` once the
    current transaction commits. If it cannot be sent, ``op`` is failed with the reason (nothing was done).
    ``background``: without a broker, run the task in a background thread (the request returns at once)."""
    kwargs = dict(kwargs or {})
    op.queued = {"task": task.name, "kwargs": kwargs, "queue": queue, "summary": dict(op.summary)}
    op.save(update_fields=["queued"])
    if background and BACKGROUND_THREAD and task.app.conf.task_always_eager:
        transaction.on_commit(lambda: _task_in_thread(task, {**kwargs, "operation_id": op.pk}))
        return op
    task_send_on_commit(
        task,
        kwargs={**kwargs, "operation_id": op.pk},
        queue=queue,
        on_failure=lambda message: operation_fail(op.pk, message),
    )
    return op


def task_send_on_commit(
    task, *, args=(), kwargs: dict | None = None, queue: str | None = None, on_failure: Callable[[str], object]
) -> None:
    """Send a Celery task once the current transaction commits; if the broker cannot take it (or, without a
    broker, the work run in-process raised), call ``on_failure(message)`` so that the row the user watches says
    so at once, instead of raising into the request that started it."""

    def send():
        options = {"queue": queue} if queue else {}
        try:
            # ignore_result: nobody waits for it here (the outcome is on the row), and not subscribing to the
            # result keeps an unreachable Redis to one short broker timeout
            task.apply_async(args=args, kwargs=kwargs or {}, ignore_result=True, **options)
        except Exception as exc:  # noqa: BLE001 - whatever stopped it is recorded where the user looks
            if task.app.conf.task_always_eager:  # the work itself ran here and raised
                log.exception("%s failed", task.name)
                message = f"{type(exc).__name__}: {getattr(exc, 'message', None) or exc}"
            else:
                log.error("%s could not be queued: %s: %s", task.name, type(exc).__name__, exc)
                message = (
                    f"Could not queue the work: the task broker did not answer ({type(exc).__name__}: {exc}). "
                    "Nothing was done; retry once the broker (Redis) is back."
                )
            on_failure(message)

    transaction.on_commit(send)


def _task_in_thread(task, kwargs: dict) -> threading.Thread:
    def work():
        try:
            task.apply(kwargs=kwargs)  # in this thread; a task's own errors end on its Operation
        except Exception as exc:  # noqa: BLE001 - recorded where the user looks
            log.exception("%s failed in a background thread", task.name)
            operation_fail(kwargs["operation_id"], f"{type(exc).__name__}: {exc}")
        finally:
            connection.close()

    thread = threading.Thread(target=work, name=f"avcrowd-{task.name}-{kwargs['operation_id']}", daemon=True)
    thread.start()
    return thread


def operation_retry(op: Operation, user=None) -> Operation:
    """Queue the work of a failed Operation again, as a new Operation (the failed one stays as it was, so a late
    delivery of its task finds it failed and does nothing). Returns the new Operation."""
    if op.status != Operation.FAILED:
        raise ValidationError(f"operation {op.pk} is {op.status}; only a failed operation can be retried")
    if not op.queued.get("task"):
        raise ValidationError(
            f"operation {op.pk} was run by a command or by the schedule, not queued from a page: run it again there"
        )
    if op.retries.exists():
        raise ValidationError(f"operation {op.pk} was retried already as operation {op.retries.first().pk}")
    task = current_app.tasks.get(op.queued["task"])
    if task is None:
        raise ValidationError(f"operation {op.pk}: its task {op.queued['task']!r} is not known to this version")
    with transaction.atomic():
        new = Operation.objects.create(
            kind=op.kind,
            dataset=op.dataset,
            total=op.total,
            started_by=user or op.started_by,
            summary=dict(op.queued.get("summary") or {}),
            retry_of=op,
            message=f"retry of operation {op.pk}",
        )
        operation_queue(new, task, kwargs=op.queued.get("kwargs") or {}, queue=op.queued.get("queue"))
    new.refresh_from_db()
    return new


# --- running --------------------------------------------------------------------------------------------------------


def operation_beat(op_pk: int) -> None:
    """Write a sign of life on a running Operation."""
    Operation.objects.filter(pk=op_pk, status=Operation.RUNNING).update(heartbeat_at=timezone.now())


@contextlib.contextmanager
def operation_heartbeat(op_pk: int | None):
    """While the block runs, beat every OPERATION_HEARTBEAT_SECONDS from a background thread (work done in one
    long call, e.g. a merge, writes no progress of its own)."""
    if op_pk is None:
        yield
        return
    operation_beat(op_pk)
    stop = threading.Event()

    def loop():
        try:
            while not stop.wait(settings.OPERATION_HEARTBEAT_SECONDS):
                try:
                    operation_beat(op_pk)
                except Exception as exc:  # noqa: BLE001 - a missed beat is harmless; the work goes on
                    log.warning("operation %s: heartbeat not written: %s", op_pk, exc)
                    close_old_connections()
        finally:
            connection.close()  # this thread's own database connection

    thread = threading.Thread(target=loop, name=f"operation-{op_pk}-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)


def operation_finish(operation_id: int, work: Callable[[Operation], tuple[str, dict]]) -> Operation:
    """Run ``work(op)`` for a running Operation and record the outcome. ``work`` returns (message, summary
    additions, e.g. {"url": the result's page}). A bad-input error fails the operation with its message, any
    other error with its type and text (the traceback goes to the log); a finished Operation (a repeated
    delivery of the task, or one failed as stale meanwhile) is returned unchanged."""
    op = Operation.objects.select_related("dataset", "started_by").get(pk=operation_id)
    if op.status != Operation.RUNNING:
        return op
    summary = dict(op.summary)
    try:
        with operation_heartbeat(op.pk):
            message, extra = work(op)
    except AvcrowdError as exc:
        op.status, op.message = Operation.FAILED, exc.message
        if isinstance(exc.details, (list, tuple)) and exc.details:
            details = [str(d) for d in exc.details]
            summary["details"] = details[:50]
            shown = "; ".join(details[:10]) + (f"; and {len(details) - 10} more" if len(details) > 10 else "")
            op.message = f"{exc.message}: {shown}"[:2000]
    except Exception as exc:  # noqa: BLE001 - recorded for the admin
        log.exception("%s operation %s failed", op.kind, op.pk)
        op.status, op.message = Operation.FAILED, f"{type(exc).__name__}: {exc}"
    else:
        # the work may have counted its own steps on the row (OperationBar): keep its total
        op.total = Operation.objects.filter(pk=op.pk).values_list("total", flat=True).first() or op.total
        op.status, op.done, op.message = Operation.DONE, op.total or 1, message
        summary.update(extra)
    op.summary = summary
    op.finished_at = timezone.now()
    op.save(update_fields=["status", "done", "total", "message", "summary", "finished_at"])
    return op


class StagedWorkFailed(AvcrowdError):
    """An unexpected error of work on staged uploads, its text without the uploads' server path."""


def operation_finish_staged(operation_id: int, staged: str, work: Callable[[Operation], tuple[str, dict]]):
    """``operation_finish`` for work that reads uploads the request staged (catalog.services.uploads). Before the
    Operation says it ended, the uploads are removed and it is no longer offered for retry (its files are gone:
    upload them again), and an unexpected error's text loses their server path. A worker that dies leaves them, so
    that its stale Operation can be retried; a late delivery for an ended Operation touches nothing."""

    def staged_work(op):
        try:
            return work(op)
        except AvcrowdError:
            raise
        except Exception as exc:
            log.exception("%s operation %s failed", op.kind, op.pk)
            raise StagedWorkFailed(f"{type(exc).__name__}: {staged_hide(str(exc), staged)}") from exc
        finally:
            staged_discard(staged)
            Operation.objects.filter(pk=op.pk).update(queued={})

    return operation_finish(operation_id, staged_work)


def operation_run(kind: str, work: Callable[[Operation], tuple[str, dict]], *, dataset=None, user=None) -> Operation:
    """Run short work now (an upload read in the request) recorded as an Operation, so that it is listed with the
    long work and its outcome has a page. A refusal fails the Operation and is raised again (as a ValidationError
    with the same message) for the page or the API to show."""
    op = Operation.objects.create(kind=kind, dataset=dataset, started_by=user, heartbeat_at=timezone.now(), total=1)
    op = operation_finish(op.pk, work)
    if op.status == Operation.FAILED:
        raise ValidationError(op.message, details=op.summary.get("details") or [])
    return op


def operation_fail(op_pk: int, message: str) -> bool:
    """Fail a running Operation with ``message``; False when it had finished already."""
    return bool(
        Operation.objects.filter(pk=op_pk, status=Operation.RUNNING).update(
            status=Operation.FAILED, message=message[:2000], finished_at=timezone.now()
        )
    )


@contextlib.contextmanager
def operation_guard(op_pk: int | None, *, retried: tuple = (OSError,)):
    """For tasks whose service writes its own progress: beat while the block runs, and if it raises, fail the
    Operation with the error (the error is raised again for Celery). Errors of the ``retried`` types leave it
    running: the task is retried and goes on with it."""
    try:
        with operation_heartbeat(op_pk):
            yield
    except retried:
        raise
    except Exception as exc:
        if op_pk is not None:
            detail = exc.message if isinstance(exc, AvcrowdError) else getattr(exc, "message", None) or str(exc)
            prefix = "" if isinstance(exc, AvcrowdError) else f"{type(exc).__name__}: "
            if operation_fail(op_pk, prefix + str(detail)):
                log.warning("operation %s failed: %s%s", op_pk, prefix, detail)
        raise


def operation_running(op_pk: int | None) -> Operation | None:
    """The Operation a task was given, or None when it has none; raises OperationFinished when it is not running
    any more (a late or repeated delivery: the task must do nothing)."""
    if op_pk is None:
        return None
    op = Operation.objects.filter(pk=op_pk).first()
    if op is None or op.status != Operation.RUNNING:
        raise OperationFinished(op_pk)
    return op


class OperationFinished(Exception):
    def __init__(self, op_pk):
        super().__init__(f"operation {op_pk} is not running (finished, failed or deleted): nothing to do")


class Progress:
    """Writes progress (and a heartbeat) to an Operation row (when given) and lines to a callback (commands)."""

    def __init__(self, kind: str, *, dataset=None, user=None, echo=None, operation=None, record: bool = True):
        self.echo = echo
        self.op = operation
        if self.op is None and record:
            self.op = Operation.objects.create(kind=kind, dataset=dataset, started_by=user, heartbeat_at=timezone.now())
        elif self.op is not None:
            self.op.heartbeat_at = timezone.now()
            self.op.save(update_fields=["heartbeat_at"])

    def total(self, n: int):
        if self.op:
            self.op.total = n
            self.op.heartbeat_at = timezone.now()
            self.op.save(update_fields=["total", "heartbeat_at"])

    def step(self, message: str = "", n: int = 1):
        if self.echo and message:
            self.echo(message)
        if self.op:
            self.op.done += n
            if message:
                self.op.message = message[:2000]
            self.op.heartbeat_at = timezone.now()
            self.op.save(update_fields=["done", "message", "heartbeat_at"])

    def finish(self, summary: dict, *, failed: bool = False, message: str = ""):
        if self.op:
            self.op.status = self.op.FAILED if failed else self.op.DONE
            self.op.summary = summary
            self.op.finished_at = timezone.now()
            if message:
                self.op.message = message[:2000]
            self.op.save()


class OperationBar:
    """A progress bar (the catalog.progress interface) that writes to a running Operation: ``done``/``total`` and the
    step's name as its message, at most every OPERATION_PROGRESS_SECONDS (and at each new step), with a heartbeat.
    Services that take ``bar=`` report live progress to a page this way."""

    n = 0

    def __init__(self, op_pk: int, *, interval: float | None = None):
        self.op_pk = op_pk
        self.interval = interval if interval is not None else getattr(settings, "OPERATION_PROGRESS_SECONDS", 1.0)
        self.desc = ""
        self.total = None
        self._written = 0.0

    def _write(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._written < self.interval:
            return
        self._written = now
        fields = {"done": self.n, "heartbeat_at": timezone.now()}
        if self.total is not None:
            fields["total"] = self.total
        if self.desc:
            fields["message"] = self.desc[:2000]
        Operation.objects.filter(pk=self.op_pk, status=Operation.RUNNING).update(**fields)

    def set_description(self, desc: str) -> None:
        self.desc = desc
        self._write(force=True)

    def reset(self, total: int | None = None) -> None:
        self.n, self.total = 0, total
        self._write(force=True)

    def update(self, n: int = 1) -> None:
        self.n += n
        self._write(force=self.total is not None and self.n >= self.total)

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


# --- dying ----------------------------------------------------------------------------------------------------------


def operations_fail_stale(now: dt.datetime | None = None) -> int:
    """Fail running Operations whose process died (no heartbeat for OPERATION_STALE_SECONDS) or that no worker
    picked up (OPERATION_QUEUED_SECONDS), saying which. Returns how many were failed."""
    now = now or timezone.now()
    stale_before = now - dt.timedelta(seconds=settings.OPERATION_STALE_SECONDS)
    queued_before = now - dt.timedelta(seconds=settings.OPERATION_QUEUED_SECONDS)
    n = 0
    running = Operation.objects.filter(status=Operation.RUNNING)
    for op in running.filter(heartbeat_at__lt=stale_before):
        n += Operation.objects.filter(pk=op.pk, status=Operation.RUNNING, heartbeat_at=op.heartbeat_at).update(
            status=Operation.FAILED,
            finished_at=now,
            message=(
                f"Stopped: no sign of life since {op.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC (the worker or command "
                f"doing it died). Last progress: {op.done}/{op.total}. {_retry_hint(op)}"
            )[:2000],
        )
    for op in running.filter(heartbeat_at__isnull=True, started_at__lt=queued_before):
        n += Operation.objects.filter(pk=op.pk, status=Operation.RUNNING, heartbeat_at__isnull=True).update(
            status=Operation.FAILED,
            finished_at=now,
            message=(
                f"Never started: no worker picked it up within {settings.OPERATION_QUEUED_SECONDS / 60:g} min "
                f"(is a Celery worker running for queue {op.queued.get('queue') or 'default'!r}?). {_retry_hint(op)}"
            )[:2000],
        )
    return n


def _retry_hint(op: Operation) -> str:
    if op.queued.get("task"):
        return "Retry it from its page."
    return "Run it again (it was started by a command or by the schedule)."
