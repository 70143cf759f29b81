"""Celery task of the metric reports: thin, idempotent, acks_late; the work is in annotation.services.reports."""
from celery import shared_task


@shared_task(bind=True, acks_late=True, autoretry_for=(OSError,), retry_backoff=True, retry_backoff_max=300,
             max_retries=3)
def metric_report_task(self, report_id: int) -> dict:
    """Run a recorded metric report (a finished report is left as it is)."""
    from reports.services import report_run

    report = report_run(report_id)
    return {"report": report.pk, "status": report.status}
