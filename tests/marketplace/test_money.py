"""Money moves exactly once: deterministic CreateHIT tokens across ambiguous failures, idempotent bonuses (also
under concurrent requests), amounts checked in the service, and serialized syncs (threads against PostgreSQL)."""

import threading
from decimal import Decimal

import pytest
from botocore.stub import ANY
from django.db import connection
from django.test import Client

from catalog.errors import ValidationError
from crowd.models import Assignment, Bonus, Hit, MarketplaceCall
from crowd.services.assignments import assignment_start, assignment_submit, assignment_verify
from crowd.services.publish import batches_publish, request_token
from crowd.services.sync import bonus_create, marketplace_sync
from tests.crowd_helpers import fill_assignment

from .test_publish import _expected_create
from .test_sync import list_params, make_hit, remote

ALREADY = 'The idempotency token "avcrowd-hit" has already been processed. (1626172412406)'


def _verified_work(batch, taxonomy, worker="W1", aid="A1"):
    a = assignment_start(batch, backend="mturk", worker_external_id=worker, external_assignment_id=aid)
    fill_assignment(a, taxonomy)
    assignment_submit(a)
    return assignment_verify(a, worker_external_id=worker, source="MTurk ListAssignmentsForHIT")


def _found(batch, hit_id="HIT-1"):
    return {"HITs": [{"HITId": hit_id, "HITTypeId": "T", "RequesterAnnotation": str(batch.uuid)}]}


def test_create_hit_that_failed_after_creating_is_found_on_the_retry_not_posted_twice(dataset, batches, mturk_stub):
    """First CreateHIT: MTurk created the HIT, then answered 503. The retry carries the same token and gets
    "already processed": the HIT is found by its RequesterAnnotation and recorded; nothing is created twice."""
    batch = batches[0]
    token = request_token(batch, 1)
    expected = _expected_create(batch, token)
    mturk_stub.error("CreateHIT", "ServiceUnavailable", "Service Unavailable", expected=expected, http_status=503)
    mturk_stub.error("CreateHIT", "RequestError", ALREADY, expected=expected)
    mturk_stub.add("ListHITs", _found(batch), {"MaxResults": 100})
    result = batches_publish(dataset, batches=[batch], reward=Decimal("1.00"))
    assert [h.external_id for h in result.created] == ["HIT-1"] and result.failed == []
    hit = Hit.objects.get(batch=batch)
    assert (hit.status, hit.unique_request_token) == ("open", token)
    tokens = {c.request["UniqueRequestToken"] for c in MarketplaceCall.objects.filter(operation="CreateHIT")}
    assert tokens == {token}


def test_ambiguous_failure_leaves_the_hit_pending_and_the_rerun_sends_the_same_token(dataset, batches, mturk_stub):
    batch = batches[0]
    token = request_token(batch, 1)
    for _ in range(4):  # every retry of the first run: 503 (the HIT was created by the first)
        mturk_stub.error(
            "CreateHIT",
            "ServiceUnavailable",
            "Service Unavailable",
            expected=_expected_create(batch, token),
            http_status=503,
        )
    first = batches_publish(dataset, batches=[batch], reward=Decimal("1.00"))
    assert first.created == [] and "outcome unknown" in first.failed[0][1]
    hit = Hit.objects.get(batch=batch)
    assert hit.status == "pending" and hit.unique_request_token == token
    # the re-run: same token -> "already processed" (a ServiceFault carrying the idempotency message counts too)
    mturk_stub.error("CreateHIT", "ServiceFault", ALREADY, expected=_expected_create(batch, token), http_status=500)
    mturk_stub.add("ListHITs", _found(batch), {"MaxResults": 100})
    second = batches_publish(dataset, batches=[batch], reward=Decimal("1.00"))
    assert [h.external_id for h in second.created] == ["HIT-1"]
    assert Hit.objects.filter(batch=batch).count() == 1 and Hit.objects.get(batch=batch).status == "open"
    tokens = {c.request["UniqueRequestToken"] for c in MarketplaceCall.objects.filter(operation="CreateHIT")}
    assert tokens == {token}
    assert MarketplaceCall.objects.filter(operation="CreateHIT", error_code="ServiceFault").count() == 1  # no retry


def test_a_definite_refusal_ends_the_round(dataset, batches, mturk_stub):
    batch = batches[0]
    mturk_stub.error(
        "CreateHIT", "ParameterValidationError", "Reward is not valid", expected=_expected_create(batch, ANY)
    )
    batches_publish(dataset, batches=[batch], reward=Decimal("1.00"))
    assert Hit.objects.get(batch=batch).status == "failed"


# --- bonuses ---------------------------------------------------------------------------------------------


def _post(client, a, amount="0.50", reason="Great accuracy", **extra):
    body = {"assignment": str(a.uuid), "amount": amount, "reason": reason, **extra}
    return client.post("/api/marketplace/bonuses/", body, content_type="application/json")


def test_the_same_bonus_posted_twice_is_one_bonus(admin_client, batches, taxonomy):
    a = _verified_work(batches[0], taxonomy)
    first = _post(admin_client, a, idempotency_key="k-1")
    again = _post(admin_client, a, idempotency_key="k-1")
    assert first.status_code == 201 and again.status_code == 200
    assert again.json() == {**first.json(), "replayed": True}
    # the header works too; without any key, the same assignment, amount and reason are the same bonus
    header = admin_client.post(
        "/api/marketplace/bonuses/",
        {"assignment": str(a.uuid), "amount": "0.50", "reason": "Great accuracy"},
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="k-1",
    )
    assert header.json()["bonus"] == first.json()["bonus"]
    plain = [_post(admin_client, a, reason="No key") for _ in range(2)]
    assert [r.status_code for r in plain] == [201, 200] and plain[0].json()["bonus"] == plain[1].json()["bonus"]
    assert Bonus.objects.count() == 2
    # a key reused for a different bonus is refused, nothing created
    reuse = _post(admin_client, a, amount="0.75", idempotency_key="k-1")
    assert reuse.status_code == 400 and reuse.json()["field"] == "idempotency_key"
    assert Bonus.objects.count() == 2


@pytest.mark.parametrize(
    "amount, field, words",
    [
        ("-5.00", "amount", "at least $0.01"),
        ("0", "amount", "at least $0.01"),
        ("0.005", "amount", "whole cents"),
        ("NaN", "amount", "not a number"),
        ("lots", "amount", "not a number"),
        ("5.01", "amount", "cap of $5.00"),
    ],
)
def test_bad_amounts_are_refused_by_the_service_and_nothing_is_queued(
    admin_client, batches, taxonomy, amount, field, words
):
    a = _verified_work(batches[0], taxonomy)
    r = _post(admin_client, a, amount=amount)
    assert r.status_code == 400 and r.json()["field"] == field and words in r.json()["error"]
    with pytest.raises(ValidationError):
        bonus_create(a, amount, "direct call")
    assert Bonus.objects.count() == 0


def test_the_cap_is_per_dataset(batches, taxonomy):
    a = _verified_work(batches[0], taxonomy)
    dataset = a.batch.dataset
    dataset.bonus_cap_usd = Decimal("10.00")
    dataset.save()
    assert bonus_create(a, "7.50", "a long task").amount == Decimal("7.50")


@pytest.mark.django_db(transaction=True)
def test_concurrent_posts_of_one_bonus_create_it_once(batches, taxonomy, admin_user):
    if connection.vendor != "postgresql":
        pytest.skip("concurrency against PostgreSQL: set DATABASE_URL")
    a = _verified_work(batches[0], taxonomy)
    start = threading.Barrier(3)
    out = []

    def post():
        client = Client()
        client.force_login(admin_user)
        start.wait()
        try:
            out.append(_post(client, a, idempotency_key="same"))
        finally:
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.status_code for r in out) == [200, 200, 201]
    assert len({r.json()["bonus"] for r in out}) == 1 and Bonus.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_syncs_send_approve_assignment_once(batches, taxonomy, mturk_stub):
    if connection.vendor != "postgresql":
        pytest.skip("concurrency against PostgreSQL: set DATABASE_URL")
    batch = batches[0]
    make_hit(batch)
    a = assignment_start(batch, backend="mturk", worker_external_id="W1", external_assignment_id="A1")
    fill_assignment(a, taxonomy)
    mturk_stub.add("ListAssignmentsForHIT", {"Assignments": [remote("A1", "W1")]}, list_params())
    mturk_stub.add("ApproveAssignment", {}, {"AssignmentId": "A1", "RequesterFeedback": ANY})
    mturk_stub.add("ListAssignmentsForHIT", {"Assignments": [remote("A1", "W1")]}, list_params())
    start = threading.Barrier(2)
    summaries = []

    def sync():
        start.wait()
        try:
            summaries.append(marketplace_sync())
        finally:
            connection.close()

    threads = [threading.Thread(target=sync) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [s["errors"] for s in summaries] == [[], []]
    assert sorted(s.get("approved", 0) for s in summaries) == [0, 1]
    assert MarketplaceCall.objects.filter(operation="ApproveAssignment").count() == 1
    assert Assignment.objects.get(external_assignment_id="A1").status == "approved"
