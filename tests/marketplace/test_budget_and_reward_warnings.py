"""Sensible defaults before money moves: a new dataset's $0.00 budget does not refuse the first dry run (it says what
budget to set and where); publishing for real is refused until then. A reward below the estimate is warned with the
numbers (command, API, admin page)."""

import random
from decimal import Decimal

import pytest
from django.core.management import call_command

from catalog.errors import ValidationError
from catalog.services.users import user_create
from crowd.marketplace import mturk
from crowd.models import Hit
from crowd.services.batches import batches_create
from crowd.services.costs import reward_for_batch, seconds_per_clip
from crowd.services.publish import publish_plan

pytestmark = pytest.mark.django_db


@pytest.fixture
def fresh(make_crowd_dataset):
    """A new dataset as a lab makes it: default budget ($0.00), two batches of 20 clips (1 catch trial each)."""
    ds = make_crowd_dataset("fresh", 38, 2, batch_size=20, gold_per_batch=1)
    assert ds.budget_usd == 0
    batches_create(ds, rng=random.Random(2))
    return ds


def test_the_first_dry_run_of_a_new_dataset_is_shown_with_a_prompt_to_set_the_budget(fresh):
    plan = publish_plan(fresh, dry_run=True)
    needed = plan.total
    assert needed > 0 and len(plan.hits) == 2
    (warning,) = plan.warnings
    assert "dataset fresh has no budget yet ($0.00)" in warning and f"at least ${needed}" in warning
    assert "PATCH /api/datasets/fresh/" in warning
    assert any(line.startswith("WARNING: dataset fresh has no budget yet") for line in plan.lines())
    with pytest.raises(ValidationError, match=r"has no budget yet \(\$0\.00\)"):
        publish_plan(fresh)
    fresh.budget_usd = needed
    fresh.save()
    assert publish_plan(fresh).warnings == []


def test_a_reward_below_the_estimate_is_warned_with_the_numbers(fresh):
    fresh.budget_usd = Decimal("1000")
    fresh.save()
    estimate = reward_for_batch(20)
    assert estimate > Decimal("0.50")
    plan = publish_plan(fresh, reward=Decimal("0.50"))
    (warning,) = plan.warnings  # one line for both 20-clip batches
    assert f"reward $0.50 for a 20-clip HIT is below the estimate ${estimate}" in warning
    assert "/h" in warning and "workers would earn about $" in warning
    assert publish_plan(fresh, reward=estimate).warnings == []
    assert publish_plan(fresh).warnings == []  # the default reward is the estimate


def test_the_command_and_the_api_show_the_warnings(fresh, client, capsys):
    call_command("publish_batches", "--dataset", "fresh", "--dry-run", "--reward", "0.50")
    out = capsys.readouterr().out
    assert "WARNING: reward $0.50 for a 20-clip HIT is below the estimate" in out
    assert "WARNING: dataset fresh has no budget yet ($0.00)" in out
    assert not Hit.objects.exists()

    client.force_login(user_create("boss", "admin")["user"])
    body = {"dataset": "fresh", "reward": "0.50", "dry_run": True}
    dry = client.post("/api/marketplace/publish/", body, content_type="application/json")
    assert dry.status_code == 200 and len(dry.json()["warnings"]) == 2
    real = client.post("/api/marketplace/publish/", {**body, "dry_run": False}, content_type="application/json")
    assert real.status_code == 400 and "has no budget yet" in real.content.decode()
    assert not Hit.objects.exists()


def test_a_reward_below_the_minimum_wage_the_dataset_declares_is_warned_with_the_numbers(fresh):
    fresh.budget_usd = Decimal("1000")
    fresh.save()
    estimate = reward_for_batch(20)  # the default reward: the US federal minimum wage
    assert publish_plan(fresh).warnings == []  # no wage declared: no check
    fresh.min_hourly_wage_usd = Decimal("15.00")
    fresh.save()
    (warning,) = publish_plan(fresh).warnings  # one line for both 20-clip batches
    hourly = (estimate * 60 / Decimal(str(mturk.expected_minutes(20, seconds_per_clip())))).quantize(Decimal("0.01"))
    needed = mturk.default_reward(mturk.expected_minutes(20, seconds_per_clip()), Decimal("15.00"))
    assert needed > estimate
    assert f"reward ${estimate} for a 20-clip HIT pays about ${hourly}/h" in warning
    assert "below the minimum wage dataset fresh declares ($15.00/h)" in warning
    assert f"a reward of at least ${needed} would meet it" in warning
    assert publish_plan(fresh, reward=needed).warnings == []
    below = publish_plan(fresh, reward=Decimal("0.50")).warnings  # under both the estimate and the wage
    assert len(below) == 2 and "below the estimate" in below[0] and "declares ($15.00/h)" in below[1]


def test_the_minimum_wage_is_shown_and_edited_in_the_django_admin(fresh, client):
    client.force_login(user_create("boss", "admin")["user"])
    listing = client.get("/admin/catalog/dataset/")
    assert listing.status_code == 200 and "min hourly wage usd" in listing.content.decode().lower()
    page = client.get(f"/admin/catalog/dataset/{fresh.pk}/change/")
    assert page.status_code == 200 and 'name="min_hourly_wage_usd"' in page.content.decode()
    form = page.context["adminform"].form
    data = {k: ("" if v is None else v) for k, v in form.initial.items() if k in form.fields}
    data.update(min_hourly_wage_usd="12.50", budget_usd="100")
    saved = client.post(f"/admin/catalog/dataset/{fresh.pk}/change/", data)
    assert saved.status_code == 302, saved.content.decode()[:2000]
    fresh.refresh_from_db()
    assert fresh.min_hourly_wage_usd == Decimal("12.50")
    data["min_hourly_wage_usd"] = "0"
    refused = client.post(f"/admin/catalog/dataset/{fresh.pk}/change/", data)
    assert refused.status_code == 200 and "greater than or equal to 0.01" in refused.content.decode()
