"""Verified before counted: marketplace work is approved, paid and merged only once the marketplace reported it
for that worker; until then it is "submitted, unverified" (shown on /ops/). In-house work is verified by login."""

import json
from datetime import timedelta

import pytest
from botocore.stub import ANY
from django.utils import timezone

from catalog.errors import ValidationError
from crowd.models import Assignment, Hit, HitAssignment
from crowd.services.assignments import assignment_decide, assignments_approve_due
from crowd.services.sync import marketplace_sync
from labels.services.create import release_create
from labels.services.load import votes_load
from tests.crowd_helpers import complete_payload, gold_perfect_labels

from .test_sync import list_params, make_hit, remote


def _work_through_the_public_api(client, batch, taxonomy, worker, aid, *, good=True):
    """What anyone can do with a HIT URL: arrive with (invented) ids, answer every clip, submit."""
    params = {"assignmentId": aid, "hitId": "HIT1", "workerId": worker, "turkSubmitTo": "https://www.mturk.com"}
    data = client.get(f"/api/hit/{batch.uuid}/session", params).json()
    for clip in data["clips"]:
        vid = clip["video_id"]
        labels = gold_perfect_labels(taxonomy, vid) if vid.startswith("g") and good else []
        client.put(
            f"/api/hit/assignments/{data['assignment']}/answers/{vid}",
            json.dumps(complete_payload(labels)),
            content_type="application/json",
            HTTP_X_HIT_TOKEN=data["token"],
        )
    r = client.post(
        f"/api/hit/assignments/{data['assignment']}/submit",
        "{}",
        content_type="application/json",
        HTTP_X_HIT_TOKEN=data["token"],
    )
    assert r.status_code == 200
    return Assignment.objects.get(uuid=data["assignment"])


def test_phantom_worker_is_never_approved_nor_merged(client, admin_client, make_dataset, taxonomy, mturk_stub):
    from crowd.services.batches import batches_create

    ds = make_dataset(name="phantom", n_regular=3, n_gold=1, annotations_per_clip=2)
    batch = batches_create(ds)[0]
    hit = make_hit(batch)
    Hit.objects.filter(pk=hit.pk).update(max_assignments=2, target_assignments=2)
    real = _work_through_the_public_api(client, batch, taxonomy, "W-REAL", "A-REAL")
    phantom = _work_through_the_public_api(client, batch, taxonomy, "NOBODY", "INVENTED")
    # both perfect on the catch clip, neither approved yet: nobody confirmed them
    for a in (real, phantom):
        a.refresh_from_db()
        assert (a.status, a.catch_f1, a.verified_at) == ("submitted", 1.0, None)
    page = admin_client.get(f"/ops/{ds.name}/").content.decode()
    assert "submitted, unverified: 2" in page
    # MTurk lists only the real worker's assignment
    mturk_stub.add("ListAssignmentsForHIT", {"Assignments": [remote("A-REAL", "W-REAL")]}, list_params())
    mturk_stub.add("ApproveAssignment", {}, {"AssignmentId": "A-REAL", "RequesterFeedback": ANY})
    summary = marketplace_sync()
    assert summary["approved"] == 1
    real.refresh_from_db()
    phantom.refresh_from_db()
    assert real.status == "approved" and real.verified_at is not None
    assert phantom.status == "submitted" and phantom.verified_at is None
    # no path approves it: not the review window, not an admin
    assert assignments_approve_due(timezone.now() + timedelta(days=30)) == 0
    with pytest.raises(ValidationError, match="unverified"):
        assignment_decide(phantom, status="approved", actor=None, reason="")
    phantom.refresh_from_db()
    assert phantom.status == "submitted"
    assert "submitted, unverified: 1" in admin_client.get(f"/ops/{ds.name}/").content.decode()
    listed = admin_client.get(f"/ops/{ds.name}/assignments/?status=unverified").content.decode()
    assert "1 row(s)" in listed and "NOBODY" in listed
    # even an approved-but-unverified row (written by hand) stays out of the merge
    Assignment.objects.filter(pk=phantom.pk).update(status="approved")
    loaded = votes_load(ds)
    assert loaded.counts["crowd_workers"] == 1
    release = release_create(ds, "v1", params={"k": 1})
    assert release.source_counts["crowd_workers"] == 1


def test_an_assignment_id_bound_to_someone_else_stays_unverified(client, batches, taxonomy, mturk_stub):
    batch = batches[0]
    make_hit(batch)
    # a stranger took MTurk assignment A1's id first; MTurk says A1 is W-REAL's
    squatter = _work_through_the_public_api(client, batch, taxonomy, "W-FAKE", "A1")
    mturk_stub.add("ListAssignmentsForHIT", {"Assignments": [remote("A1", "W-REAL")]}, list_params())
    summary = marketplace_sync()
    assert summary["assignment_errors"] == 1 and summary.get("approved", 0) == 0
    squatter.refresh_from_db()
    assert squatter.status == "submitted" and squatter.verified_at is None
    ha = HitAssignment.objects.get(external_id="A1")
    assert "W-REAL" in ha.error and "W-FAKE" in ha.error and ha.decision_pushed == ""


def test_inhouse_work_is_verified_by_login(client, make_dataset, taxonomy, django_user_model):
    from crowd.services.batches import batches_create

    ds = make_dataset(name="inh", n_regular=3, n_gold=1)
    batch = batches_create(ds)[0]
    from django.contrib.auth.models import Group

    from crowd.models import InhouseTask

    ann = django_user_model.objects.create_user("ann", password="pw")
    ann.groups.add(Group.objects.get_or_create(name="annotators")[0])  # an in-house annotator ...
    InhouseTask.objects.create(batch=batch, user=ann)  # ... the batch is assigned to
    client.login(username="ann", password="pw")
    data = client.get(f"/api/hit/{batch.uuid}/session", HTTP_X_HIT_PAGE="1").json()
    for clip in data["clips"]:
        vid = clip["video_id"]
        labels = gold_perfect_labels(taxonomy, vid) if vid.startswith("g") else []
        client.put(
            f"/api/hit/assignments/{data['assignment']}/answers/{vid}",
            json.dumps(complete_payload(labels)),
            content_type="application/json",
            HTTP_X_HIT_TOKEN=data["token"],
        )
    r = client.post(
        f"/api/hit/assignments/{data['assignment']}/submit",
        "{}",
        content_type="application/json",
        HTTP_X_HIT_TOKEN=data["token"],
    )
    assert r.json()["status"] == "approved"
