"""Figures for the operations dashboard: the distribution of workers' mean catch-trial F1, and spend over time
(committed when a HIT is published, paid when work is approved) against the dataset's budget."""

from __future__ import annotations

import datetime as dt
import functools
from collections import defaultdict
from decimal import Decimal

from django.db.models import Count, OuterRef, Subquery
from django.db.models.functions import TruncDate

from crowd.models import Assignment, Hit, Worker
from crowd.services.costs import cost_per_assignment

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
    """Cumulative USD by day: "committed" (HITs published, at their full cost) and "paid" (approved assignments,
    priced by their batch's first live HIT), with the budget. Days in order; empty lists when nothing was published.
    Two GROUP BY queries (day x price); the price of each distinct (backend, reward, assignments, masters) is
    computed once in Python."""
    live = Hit.objects.filter(batch__dataset=dataset).exclude(status=Hit.FAILED)
    committed: dict = defaultdict(Decimal)
    paid: dict = defaultdict(Decimal)
    price = functools.cache(cost_per_assignment)
    rows = (
        live.annotate(day=TruncDate("created_at", tzinfo=dt.UTC))
        .values_list("day", "backend", "reward", "max_assignments", "masters")
        .annotate(n=Count("id"))
        .order_by()
    )
    for day, backend, reward, max_assignments, masters, n in rows:
        committed[day] += price(backend, reward, max_assignments, masters) * max_assignments * n
    first_live = live.filter(batch_id=OuterRef("batch_id")).order_by("created_at", "pk").values("pk")[:1]
    rows = (
        live.filter(pk=Subquery(first_live))
        .filter(batch__assignments__status=Assignment.APPROVED, batch__assignments__decided_at__isnull=False)
        .annotate(day=TruncDate("batch__assignments__decided_at", tzinfo=dt.UTC))
        .values_list("day", "backend", "reward", "max_assignments", "masters")
        .annotate(n=Count("batch__assignments"))
        .order_by()
    )
    for day, backend, reward, max_assignments, masters, n in rows:
        paid[day] += price(backend, reward, max_assignments, masters) * n
    days = sorted(set(committed) | set(paid))
    run_c = run_p = Decimal(0)
    series = []
    for day in days:
        run_c += committed.get(day, Decimal(0))
        run_p += paid.get(day, Decimal(0))
        series.append({"day": day, "committed": run_c, "paid": run_p})
    return {"series": series, "budget": Decimal(dataset.budget_usd)}
