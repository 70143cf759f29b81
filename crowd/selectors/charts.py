"""Figures for the operations dashboard: the distribution of workers' mean catch-trial F1, and spend over time
(committed when a HIT is published, paid when work is approved) against the dataset's budget."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from crowd.models import Assignment, Hit, Worker
from crowd.services.costs import hit_cost_per_assignment

F1_BUCKETS = 10


def worker_f1_histogram(dataset) -> list[tuple[str, int]]:
    """Workers who worked on the dataset, by mean catch F1 in 10 % buckets ("0-10 %" ... "90-100 %"); workers not
    scored yet are counted apart ("not scored")."""
    counts = [0] * F1_BUCKETS
    unscored = 0
    worker_ids = Assignment.objects.filter(batch__dataset=dataset).values("worker_id")
    for f1 in Worker.objects.filter(pk__in=worker_ids).values_list("mean_catch_f1", flat=True):
        if f1 is None:
            unscored += 1
        else:
            counts[min(F1_BUCKETS - 1, int(float(f1) * F1_BUCKETS))] += 1
    step = 100 // F1_BUCKETS
    out = [(f"{i * step}-{(i + 1) * step} %", n) for i, n in enumerate(counts)]
    return out + [("not scored", unscored)]


def spend_over_time(dataset) -> dict:
    """Cumulative USD by day: "committed" (HITs published, at their full cost) and "paid" (approved assignments),
    with the budget. Days in order; empty lists when nothing was published."""
    committed: dict = defaultdict(Decimal)
    paid: dict = defaultdict(Decimal)
    per_hit = {}
    for hit in Hit.objects.filter(batch__dataset=dataset).exclude(status=Hit.FAILED).order_by("created_at", "pk"):
        per = hit_cost_per_assignment(hit)
        per_hit.setdefault(hit.batch_id, per)  # the batch's first live HIT prices its approved work
        committed[hit.created_at.date()] += per * hit.max_assignments
    approved = Assignment.objects.filter(
        batch__dataset=dataset, status=Assignment.APPROVED, decided_at__isnull=False
    ).values_list("batch_id", "decided_at")
    for batch_id, decided in approved:
        per = per_hit.get(batch_id)
        if per is not None:
            paid[decided.date()] += per
    days = sorted(set(committed) | set(paid))
    run_c = run_p = Decimal(0)
    series = []
    for day in days:
        run_c += committed.get(day, Decimal(0))
        run_p += paid.get(day, Decimal(0))
        series.append({"day": day, "committed": run_c, "paid": run_p})
    return {"series": series, "budget": Decimal(dataset.budget_usd)}
