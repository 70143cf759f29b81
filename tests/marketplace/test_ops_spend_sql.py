"""The dashboard's spend figures come from GROUP BY queries (one price per distinct reward/backend/size); they must
equal a plain per-HIT, per-assignment recomputation on a dataset with HITs on several days, in every state, on both
marketplaces, with re-posted batches (a batch's approved work is priced by its first live HIT)."""

import datetime as dt
import random
from collections import defaultdict
from decimal import Decimal

import pytest

from crowd.marketplace.mturk import to_cents
from crowd.models import Assignment, Hit
from crowd.selectors.charts import spend_over_time
from crowd.services.batches import batches_create
from crowd.services.costs import dataset_spend, hit_cost_per_assignment

pytestmark = pytest.mark.django_db

DAY0 = dt.datetime(2026, 3, 1, 23, 30, tzinfo=dt.UTC)  # late in the day: a day boundary in local time would show


def build(make_crowd_dataset):
    ds = make_crowd_dataset("spendsql", 24, 1, batch_size=4, gold_per_batch=1, budget_usd=Decimal("50"))
    batches = batches_create(ds, rng=random.Random(3))
    rng = random.Random(7)
    hit_specs = [  # (batch index, backend, status, external id, reward, max assignments, masters, day)
        (0, "mturk", Hit.OPEN, "H0", "1.00", 3, False, 0),
        (0, "mturk", Hit.COMPLETED, "H0b", "1.10", 2, False, 2),  # a re-post: the first HIT prices approvals
        (1, "mturk", Hit.COMPLETED, "H1", "0.50", 12, True, 1),
        (2, "prolific", Hit.OPEN, "S2", "2.00", 4, False, 1),
        (3, "mturk", Hit.PENDING, "", "1.00", 3, False, 3),  # never confirmed: counts in full
        (4, "mturk", Hit.FAILED, "", "9.00", 9, False, 0),  # failed: costs nothing, prices nothing
        (4, "mturk", Hit.EXPIRED, "H4", "0.75", 5, False, 4),
    ]
    for n, (b, backend, status, ext, reward, k, masters, day) in enumerate(hit_specs):
        h = Hit.objects.create(
            batch=batches[b],
            backend=backend,
            status=status,
            external_id=ext,
            reward=Decimal(reward),
            max_assignments=k,
            target_assignments=k,
            masters=masters,
            unique_request_token=f"t{n}",
        )
        Hit.objects.filter(pk=h.pk).update(created_at=DAY0 + dt.timedelta(days=day, minutes=n))
    for n in range(40):
        b = rng.randrange(5)
        hit = rng.choice([h for h in Hit.objects.filter(batch=batches[b])])
        status = rng.choice([Assignment.APPROVED, Assignment.APPROVED, Assignment.REJECTED, Assignment.SUBMITTED])
        Assignment.objects.create(
            batch=batches[b],
            backend=hit.backend if rng.random() < 0.8 else "simulated",
            external_hit_id=rng.choice([hit.external_id, ""]),
            external_assignment_id=f"A{n}",
            status=status,
            decided_at=DAY0 + dt.timedelta(days=rng.randrange(6), hours=rng.randrange(3))
            if status != Assignment.SUBMITTED
            else None,
        )
    return ds


def test_spend_over_time_equals_a_per_assignment_recomputation(make_crowd_dataset):
    ds = build(make_crowd_dataset)
    committed, paid, first = defaultdict(Decimal), defaultdict(Decimal), {}
    for hit in Hit.objects.filter(batch__dataset=ds).exclude(status=Hit.FAILED).order_by("created_at", "pk"):
        first.setdefault(hit.batch_id, hit_cost_per_assignment(hit))
        committed[hit.created_at.date()] += hit_cost_per_assignment(hit) * hit.max_assignments
    for a in Assignment.objects.filter(batch__dataset=ds, status=Assignment.APPROVED):
        if a.batch_id in first:
            paid[a.decided_at.date()] += first[a.batch_id]
    days = sorted(set(committed) | set(paid))
    assert len(days) >= 5 and len(paid) >= 3
    expected, c, p = [], Decimal(0), Decimal(0)
    for day in days:
        c, p = c + committed[day], p + paid[day]
        expected.append({"day": day, "committed": c, "paid": p})
    got = spend_over_time(ds)
    assert got["series"] == expected and got["budget"] == Decimal("50")
    assert expected[-1]["paid"] > 0


@pytest.mark.parametrize("sandbox", [None, True, False])
def test_dataset_spend_equals_a_per_hit_recomputation(make_crowd_dataset, sandbox):
    ds = build(make_crowd_dataset)
    Hit.objects.filter(external_id__in=("H1", "S2")).update(sandbox=False)
    hits = Hit.objects.filter(batch__dataset=ds).exclude(status=Hit.FAILED)
    if sandbox is not None:
        hits = hits.filter(sandbox=sandbox)
    paid = committed = Decimal(0)
    for hit in hits:
        mine = Assignment.objects.filter(batch=hit.batch, backend=hit.backend).filter(
            external_hit_id__in=[hit.external_id, ""] if hit.external_id else [""]
        )
        per = hit_cost_per_assignment(hit)
        paid += per * mine.filter(status=Assignment.APPROVED).count()
        if hit.status == Hit.PENDING and not hit.external_id:
            committed += per * hit.max_assignments
        else:
            committed += per * max(0, hit.max_assignments - mine.filter(status=Assignment.REJECTED).count())
    spend = dataset_spend(ds, sandbox=sandbox)
    assert spend.paid == to_cents(paid) and spend.committed == to_cents(committed)
    if sandbox is None:
        assert paid > 0 and committed > paid
