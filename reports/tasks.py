"""Celery task of the metric reports, and the helper that starts it: thin, idempotent, acks_late; the work is in
reports.services."""

from celery import shared_task

from catalog.services.operations import task_send_on_commit
from reports.services import report_fail, report_request, report_run


@shared_task(
    bind=True, acks_late=True, autoretry_for=(OSError,), retry_backoff=True, retry_backoff_max=300, max_retries=3
)
def metric_report_task(self, report_id: int) -> dict:
    """Run a recorded metric report (a finished report is left as it is)."""
    report = report_run(report_id)
    return {"report": report.pk, "status": report.status}


def report_create(
    *,
    labels: str,
    predictions,
    regime: str = "default",
    confusion: str = "v1.0",
    meta: bool = True,
    title: str = "",
    user=None,
    strict: bool = False,
):
    """Record a report request (checked now; only releases, stored runs and uploaded files, no server paths) and
    run it in the background after the transaction commits."""
    report = report_request(
        labels=labels,
        predictions=predictions,
        regime=regime,
        confusion=confusion,
        meta=meta,
        title=title,
        user=user,
        strict=strict,
    )
    task_send_on_commit(metric_report_task, args=[report.pk], on_failure=lambda message: report_fail(report, message))
    return report
