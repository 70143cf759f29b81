"""Figures on the dashboards: workers by mean catch F1 and spend over time against the budget (/ops/<dataset>/),
and a release's labels per clip, modality, origin and agreement (/releases/<pk>/); too little data is said, not
drawn."""

import datetime as dt
import random
import re
from decimal import Decimal

import pytest
from django.utils import timezone
from django.utils.html import escape

from catalog.services.users import user_create
from crowd.models import Assignment, Hit
from crowd.selectors.charts import spend_over_time, worker_f1_histogram
from crowd.services.assignments import assignment_start, assignment_submit
from crowd.services.batches import batches_create
from labels.services.create import release_create
from tests.crowd_helpers import fill_assignment

pytestmark = pytest.mark.django_db


def bars_of(html, title):
    """{label: value text} of the bar chart with this title."""
    svg = re.search(rf'<svg[^>]*aria-label="{re.escape(escape(title))}"[^>]*>(.*?)</svg>', html, re.S)
    assert svg, f"no chart {title!r}"
    return dict(re.findall(r"<title>([^<:]+): ([^<]+)</title>", svg.group(1)))


def test_ops_dashboard_draws_worker_quality_and_spend_against_the_budget(make_crowd_dataset, taxonomy, client):
    ds = make_crowd_dataset("figs", 3, 1, batch_size=4, gold_per_batch=1, budget_usd=Decimal("10"))
    client.force_login(user_create("boss", "admin")["user"])
    page = client.get("/ops/figs/").content.decode()
    assert "No worker has worked on this dataset yet." in page and "Nothing published yet" in page

    batch = batches_create(ds, rng=random.Random(1))[0]
    hit = Hit.objects.create(
        batch=batch, reward=Decimal("1.00"), max_assignments=3, target_assignments=3, unique_request_token="t1"
    )
    Hit.objects.filter(pk=hit.pk).update(created_at=timezone.now() - dt.timedelta(days=2))
    for worker, good in (("W1", True), ("W2", True), ("W3", False)):
        a = assignment_start(batch, backend="simulated", worker_external_id=worker)
        fill_assignment(a, taxonomy, good=good)
        assignment_submit(a, work_seconds=60)
    assert Assignment.objects.filter(status="approved").count() == 2
    hist = dict(worker_f1_histogram(ds))
    assert hist["90-100 %"] == 2 and hist["0-10 %"] == 1 and sum(hist.values()) == 3
    spend = spend_over_time(ds)
    per = Decimal("1.20")  # $1.00 reward + MTurk's 20 % fee
    assert [p["committed"] for p in spend["series"]] == [3 * per, 3 * per]
    assert [p["paid"] for p in spend["series"]] == [0, 2 * per]

    page = client.get("/ops/figs/").content.decode()
    assert bars_of(page, "Workers by mean catch-trial F1")["90-100 %"] == "2"
    assert 'aria-label="Spend over time (cumulative USD)"' in page and "budget $10.00" in page
    assert "committed: $3.60" in page and "paid: $2.40" in page


def test_the_release_page_draws_label_counts_and_agreement(make_crowd_dataset, taxonomy, client):
    ds = make_crowd_dataset("relfigs", 3, 1, batch_size=4, gold_per_batch=1, annotations_per_clip=3)
    batch = batches_create(ds, rng=random.Random(1))[0]
    for worker in ("W1", "W2", "W3"):
        a = assignment_start(batch, backend="simulated", worker_external_id=worker)
        fill_assignment(a, taxonomy, good=True)
        assignment_submit(a, work_seconds=60)
    release = release_create(ds, "v1", params={"k": 3})
    client.force_login(user_create("res", "researcher")["user"])
    page = client.get(f"/releases/{release.pk}/").content.decode()
    stats = release.stats
    per_clip = bars_of(page, "Clips by number of labels")
    assert per_clip == {k: str(v) for k, v in stats["labels_per_clip_histogram"].items()}
    assert bars_of(page, "Labels by modality") == {k: str(v) for k, v in stats["modality_counts"].items()}
    assert set(bars_of(page, "Labels by origin")) == {"human", "auto", "override"}
    agreement = stats.get("agreement") or {}
    shown = bars_of(page, "Agreement (Krippendorff's alpha)") if agreement.get("audible") else None
    if shown is not None:
        assert shown["audible"] == f"{agreement['audible']:.2f}"
    else:
        assert "Too few overlapping answers to measure agreement." in page
