"""Sensible defaults before money moves: a new dataset's $0.00 budget does not refuse the first dry run (it says what
budget to set and where); publishing for real is refused until then. A reward below the estimate is warned with the
numbers (command, API, admin page)."""

import random
from decimal import Decimal

import pytest
from django.core.management import call_command

from catalog.errors import ValidationError
from catalog.services.users import user_create
from crowd.models import Hit
from crowd.services.batches import batches_create
from crowd.services.costs import reward_for_batch
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
