"""Admin forms and actions write through the services: a bonus is checked as the API checks it (and made by
bonus_create), and unblocking a worker leaves an audit record naming the admin, as blocking does."""

import pytest
from django.db import transaction
from django.utils import timezone

from crowd.models import Assignment, Bonus, Worker, WorkerStatusLog
from crowd.services.assignments import assignment_start, worker_update_stats
from crowd.services.workers import worker_block


@pytest.fixture
def assignment(batches):
    """MTurk work that a sync verified (the only kind that may get a bonus)."""
    a = assignment_start(batches[0], backend="mturk", worker_external_id="W1", external_assignment_id="A1")
    Assignment.objects.filter(pk=a.pk).update(verified_at=timezone.now())
    return a


def test_admin_bonus_form_refuses_a_negative_amount_and_stores_nothing(admin_client, assignment):
    url = "/admin/crowd/bonus/add/"
    page = admin_client.post(url, {"assignment": assignment.pk, "amount": "-5.00", "reason": "thanks"})
    assert page.status_code == 200 and "bonus $-5.00 is too low; at least $0.01" in page.content.decode()
    page = admin_client.post(url, {"assignment": assignment.pk, "amount": "500.00", "reason": "thanks"})
    assert "is above dataset mt&#x27;s cap of $5.00 per bonus" in page.content.decode()
    Assignment.objects.filter(pk=assignment.pk).update(verified_at=None)
    page = admin_client.post(url, {"assignment": assignment.pk, "amount": "0.50", "reason": "thanks"})
    assert f"assignment {assignment.uuid} is unverified" in page.content.decode()
    assert Bonus.objects.count() == 0


def test_the_api_refuses_the_same_amounts_with_the_same_messages(admin_client, assignment):
    for amount, message in (
        ("-5.00", "bonus $-5.00 is too low; at least $0.01"),
        ("1.005", "bonus amount $1.005 has fractions of a cent; use whole cents, e.g. 0.50"),
        ("NaN", "bonus amount 'NaN' is not a number of dollars, e.g. 0.50"),
    ):
        r = admin_client.post(
            "/api/marketplace/bonuses/",
            {"assignment": str(assignment.uuid), "amount": amount, "reason": "thanks"},
            content_type="application/json",
        )
        assert r.status_code == 400 and r.json() == {"error": message, "field": "amount"}, amount
    assert Bonus.objects.count() == 0


def test_admin_bonus_form_makes_the_bonus_through_the_service(admin_client, admin_user, assignment):
    response = admin_client.post(
        "/admin/crowd/bonus/add/", {"assignment": assignment.pk, "amount": "0.50", "reason": "careful work"}
    )
    assert response.status_code == 302
    bonus = Bonus.objects.get()
    assert bonus.amount == 0.5 and bonus.status == Bonus.PENDING and bonus.created_by == admin_user
    assert bonus.unique_request_token.startswith("avcrowd-bonus-")  # paid once by the next sync
    # the same bonus again is the first one (nothing new, paid once), and the admin says so
    again = admin_client.post(
        "/admin/crowd/bonus/add/",
        {"assignment": assignment.pk, "amount": "0.50", "reason": "careful work"},
        follow=True,
    )
    assert "This assignment already has this bonus" in again.content.decode() and Bonus.objects.count() == 1
    # money records are not edited in the admin: the change page is read only
    assert "careful work" in admin_client.get(f"/admin/crowd/bonus/{bonus.pk}/change/").content.decode()
    edit = admin_client.post(
        f"/admin/crowd/bonus/{bonus.pk}/change/", {"assignment": assignment.pk, "amount": "-5.00", "reason": "x"}
    )
    assert edit.status_code == 403
    bonus.refresh_from_db()
    assert bonus.amount == 0.5


def test_unblocking_in_the_admin_is_audited_naming_the_admin(admin_client, admin_user, make_dataset):
    dataset = make_dataset("blk", block_after=1, block_floor=0.5)
    from crowd.services.batches import batches_create

    batch = batches_create(dataset)[0]
    a = assignment_start(batch, backend="mturk", worker_external_id="W-LOW", external_assignment_id="A-LOW")
    Assignment.objects.filter(pk=a.pk).update(status=Assignment.REJECTED, catch_f1=0.1, verified_at=timezone.now())
    with transaction.atomic():
        worker = worker_update_stats(a.worker, dataset)  # the quality policy blocks it
    assert worker.is_blocked
    blocked = WorkerStatusLog.objects.get(worker=worker)
    assert blocked.action == "blocked" and blocked.actor is None and "below the block floor" in blocked.reason

    changelist = "/admin/crowd/worker/"
    page = admin_client.post(
        changelist, {"action": "unblock", "_selected_action": [worker.pk], "reason": ""}, follow=True
    ).content.decode()
    assert "Type a reason in the Reason box: every unblock is audited." in page
    worker.refresh_from_db()
    assert worker.is_blocked and WorkerStatusLog.objects.filter(worker=worker).count() == 1

    reason = "appeal accepted: gold clip g001 was mislabelled"
    page = admin_client.post(
        changelist, {"action": "unblock", "_selected_action": [worker.pk], "reason": reason}, follow=True
    ).content.decode()
    assert "1 worker(s) unblocked." in page
    worker.refresh_from_db()
    assert not worker.is_blocked and worker.blocked_reason == ""
    unblocked = WorkerStatusLog.objects.filter(worker=worker, action="unblocked").get()
    assert unblocked.actor == admin_user
    assert unblocked.reason.startswith(reason) and "below the block floor" in unblocked.reason  # what it undid
    # the worker's admin page shows the history
    history = admin_client.get(f"/admin/crowd/worker/{worker.pk}/change/").content.decode()
    assert reason in history and "below the block floor" in history


def test_unblocking_a_worker_who_is_not_blocked_records_nothing(admin_client, db):
    worker = Worker.objects.create(backend="mturk", external_id="OK")
    admin_client.post("/admin/crowd/worker/", {"action": "unblock", "_selected_action": [worker.pk], "reason": "x"})
    assert not WorkerStatusLog.objects.exists()
    assert worker_block(worker, "on the block list") is True and worker_block(worker, "again") is False
    assert list(WorkerStatusLog.objects.values_list("action", "reason")) == [("blocked", "on the block list")]
