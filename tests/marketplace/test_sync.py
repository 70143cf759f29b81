import datetime as dt
import json
from decimal import Decimal

import pytest
from botocore.stub import ANY
from django.core.management import CommandError, call_command
from django.utils import timezone

from catalog.errors import ValidationError
from crowd.models import Assignment, Bonus, ClipAnswer, Hit, HitAssignment, MarketplaceCall, Worker, WorkerBlock
from crowd.services.assignments import assignment_decide, assignment_start
from crowd.services.sync import PAST, bonus_create, marketplace_sync
from tests.crowd_helpers import fill_assignment, gold_perfect_labels

STATUSES = ["Submitted", "Approved", "Rejected"]
T0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.timezone.utc)


def make_hit(batch, hit_id="HIT1", mode="external", **kw):
    kw.setdefault("expires_at", timezone.now() + dt.timedelta(days=3))
    return Hit.objects.create(
        batch=batch,
        external_id=hit_id,
        status="open",
        mode=mode,
        reward=Decimal("1.00"),
        max_assignments=3,
        target_assignments=3,
        sandbox=True,
        unique_request_token=f"tok-{hit_id}",
        **kw,
    )


def remote(aid, worker, hit_id="HIT1", status="Submitted", answer=None):
    out = {
        "AssignmentId": aid,
        "WorkerId": worker,
        "HITId": hit_id,
        "AssignmentStatus": status,
        "AcceptTime": T0,
        "SubmitTime": T0 + dt.timedelta(minutes=12),
    }
    if answer is not None:
        out["Answer"] = answer
    return out


def list_params(hit_id="HIT1", token=None):
    p = {"HITId": hit_id, "MaxResults": 100, "AssignmentStatuses": STATUSES}
    if token:
        p["NextToken"] = token
    return p


def worker_did(batch, taxonomy, worker, aid, *, good=True, hit_id="HIT1"):
    a = assignment_start(
        batch,
        backend="mturk",
        worker_external_id=worker,
        external_assignment_id=aid,
        hit_id=hit_id,
        turk_submit_to="https://workersandbox.mturk.com",
    )
    fill_assignment(a, taxonomy, good=good)
    return a


def test_sync_paginates_approves_rejects_with_feedback_and_reposts(batches, taxonomy, mturk_stub):
    batch = batches[0]
    hit = make_hit(batch)
    good = worker_did(batch, taxonomy, "W1", "A1", good=True)
    bad = worker_did(batch, taxonomy, "W2", "A2", good=False)
    mturk_stub.add("ListAssignmentsForHIT", {"Assignments": [remote("A1", "W1")], "NextToken": "page2"}, list_params())
    mturk_stub.add("ApproveAssignment", {}, {"AssignmentId": "A1", "RequesterFeedback": ANY})
    mturk_stub.add("ListAssignmentsForHIT", {"Assignments": [remote("A2", "W2")]}, list_params(token="page2"))
    feedback = {}

    class Capture:
        def __eq__(self, other):
            feedback["text"] = other
            return True

    mturk_stub.add("RejectAssignment", {}, {"AssignmentId": "A2", "RequesterFeedback": Capture()})
    mturk_stub.add(
        "CreateAdditionalAssignmentsForHIT",
        {},
        {"HITId": "HIT1", "NumberOfAdditionalAssignments": 1, "UniqueRequestToken": f"avcrowd-repost-{hit.pk}-1"},
    )
    summary = marketplace_sync()
    assert summary["approved"] == 1 and summary["rejected"] == 1 and summary["reposted"] == 1
    assert summary["new_submissions"] == 2 and summary["errors"] == []
    good.refresh_from_db()
    bad.refresh_from_db()
    assert good.status == "approved" and good.catch_f1 == 1.0
    assert good.work_seconds == 12 * 60  # AcceptTime -> SubmitTime
    assert bad.status == "rejected" and bad.catch_f1 == 0.0
    assert "quality-control clips" in feedback["text"] and "F1" in feedback["text"]
    hit.refresh_from_db()
    assert hit.max_assignments == 4 and hit.reposted == 1 and hit.status == "open"
    # every call is in the log; a second sync pushes nothing again
    assert MarketplaceCall.objects.filter(ok=True).count() == 5
    mturk_stub.add(
        "ListAssignmentsForHIT",
        {"Assignments": [remote("A1", "W1", status="Approved"), remote("A2", "W2", status="Rejected")]},
        list_params(),
    )
    summary = marketplace_sync()
    assert summary.get("approved", 0) == 0 and summary.get("reposted", 0) == 0


def test_html_mode_answers_are_parsed_stored_scored_and_approved(batches, taxonomy, mturk_stub):
    batch = batches[0]
    make_hit(batch, "HITH", mode="html")
    items = list(batch.items.select_related("clip").order_by("position"))
    task = {}
    for i, item in enumerate(items):
        url = item.clip.media_url
        obj = {"background_music": i == 0, "voice_over": False, "static_image": False}
        if item.is_gold:
            for lab in gold_perfect_labels(taxonomy, item.clip.video_id):
                obj[f"{lab['name']} audible"] = lab["audible"]
                obj[f"{lab['name']} visible"] = lab["visible"]
        else:
            obj[f"{item.proposals[0]} audible"] = True
            obj[f"{item.proposals[0]} visible"] = False
        task[url] = json.dumps(obj)  # the page stores each clip as a JSON string
    task["classSearch-0"] = "a lawnmower"
    answer = (
        '<?xml version="1.0" encoding="ASCII"?><QuestionFormAnswers xmlns="http://mechanicalturk.amazonaws.com/'
        'AWSMechanicalTurkDataSchemas/2005-10-01/QuestionFormAnswers.xsd"><Answer><QuestionIdentifier>'
        f"taskAnswers</QuestionIdentifier><FreeText>{_xml_escape(json.dumps([task]))}</FreeText></Answer>"
        "</QuestionFormAnswers>"
    )
    mturk_stub.add(
        "ListAssignmentsForHIT",
        {"Assignments": [remote("A9", "W9", hit_id="HITH", answer=answer)]},
        list_params("HITH"),
    )
    mturk_stub.add("ApproveAssignment", {}, {"AssignmentId": "A9", "RequesterFeedback": ANY})
    marketplace_sync()
    a = Assignment.objects.get(external_assignment_id="A9")
    assert a.worker.external_id == "W9" and a.status == "approved" and a.catch_f1 == 1.0
    first = ClipAnswer.objects.get(assignment=a, clip=items[0].clip)
    assert first.background_music is True and first.comment == "a lawnmower"
    regular = next(i for i in items if not i.is_gold)
    labels = ClipAnswer.objects.get(assignment=a, clip=regular.clip).labels
    assert labels == [{"name": regular.proposals[0], "audible": True, "visible": False}]


def _xml_escape(text):
    from xml.sax.saxutils import escape

    return escape(text)


def test_throttling_is_retried_with_backoff_then_succeeds(batches, mturk_stub):
    make_hit(batches[0])
    mturk_stub.error("ListAssignmentsForHIT", "ThrottlingException", "Rate exceeded", expected=list_params())
    mturk_stub.error(
        "ListAssignmentsForHIT",
        "RequestError",
        "You have exceeded the maximum number of requests per second (rate limit)",
        expected=list_params(),
    )
    mturk_stub.add("ListAssignmentsForHIT", {"Assignments": []}, list_params())
    summary = marketplace_sync()
    assert summary["errors"] == []
    assert len(mturk_stub.sleeps) == 2
    assert 0 <= mturk_stub.sleeps[0] <= 0.5 and 0 <= mturk_stub.sleeps[1] <= 1.0  # exponential cap, jittered
    calls = list(
        MarketplaceCall.objects.filter(operation="ListAssignmentsForHIT")
        .order_by("id")
        .values_list("ok", "attempt", "error_code")
    )
    assert calls == [(False, 1, "ThrottlingException"), (False, 2, "RequestError"), (True, 3, "")]


def test_a_failing_hit_does_not_stop_the_others(make_dataset, taxonomy, mturk_stub):
    from crowd.services.batches import batches_create

    ds = make_dataset(name="two", n_regular=6, n_gold=2)
    b1, b2 = sorted(batches_create(ds), key=lambda b: b.id)
    make_hit(b1, "BROKEN")
    make_hit(b2, "FINE")
    mturk_stub.error(
        "ListAssignmentsForHIT", "RequestError", "Hit BROKEN does not exist.", expected=list_params("BROKEN")
    )
    mturk_stub.add("ListAssignmentsForHIT", {"Assignments": []}, list_params("FINE"))
    summary = marketplace_sync()
    assert summary["hit_errors"] == 1 and "does not exist" in summary["errors"][0]
    assert Hit.objects.get(external_id="BROKEN").error.endswith("does not exist.")
    assert Hit.objects.get(external_id="FINE").last_synced_at is not None
    with pytest.raises(CommandError, match="BROKEN"):
        mturk_stub.error(
            "ListAssignmentsForHIT", "RequestError", "Hit BROKEN does not exist.", expected=list_params("BROKEN")
        )
        mturk_stub.add("ListAssignmentsForHIT", {"Assignments": []}, list_params("FINE"))
        call_command("sync_marketplace")


def test_bonus_is_sent_once_with_unique_request_token(batches, taxonomy, mturk_stub):
    batch = batches[0]
    hit = make_hit(batch)
    a = worker_did(batch, taxonomy, "W1", "A1")
    HitAssignment.objects.create(
        hit=hit,
        assignment=a,
        external_id="A1",
        worker_external_id="W1",
        remote_status="Approved",
        decision_pushed="approved",
    )
    from crowd.services.assignments import assignment_submit

    assignment_submit(a)
    with pytest.raises(ValidationError, match="unverified"):  # MTurk has not reported it yet: no bonus
        bonus_create(a, "0.50", "Great accuracy on the check clips")
    mturk_stub.add("ListAssignmentsForHIT", {"Assignments": [remote("A1", "W1", status="Approved")]}, list_params())
    marketplace_sync()  # MTurk lists it for W1: verified (approved there already)
    bonus = bonus_create(a, "0.50", "Great accuracy on the check clips")
    mturk_stub.add("ListAssignmentsForHIT", {"Assignments": [remote("A1", "W1", status="Approved")]}, list_params())
    mturk_stub.add(
        "SendBonus",
        {},
        {
            "WorkerId": "W1",
            "BonusAmount": "0.50",
            "AssignmentId": "A1",
            "Reason": "Great accuracy on the check clips",
            "UniqueRequestToken": bonus.unique_request_token,
        },
    )
    summary = marketplace_sync()
    assert summary["bonuses_paid"] == 1
    bonus.refresh_from_db()
    assert bonus.status == Bonus.PAID and bonus.paid_at is not None
    mturk_stub.add("ListAssignmentsForHIT", {"Assignments": []}, list_params())
    assert marketplace_sync().get("bonuses_paid", 0) == 0  # never paid twice


def test_blocked_worker_is_blocked_on_mturk_with_reason_and_qualification(batches, taxonomy, mturk_stub):
    from crowd.models import MarketplaceQualification

    batch = batches[0]
    hit = make_hit(batch)
    MarketplaceQualification.objects.create(sandbox=True, qualification_type_id="QBLOCK")
    a = worker_did(batch, taxonomy, "WBAD", "A7", good=False)
    Worker.objects.filter(pk=a.worker_id).update(is_blocked=True, blocked_reason="mean catch-trial F1 0.05 after 5")
    HitAssignment.objects.create(
        hit=hit,
        external_id="A7",
        worker_external_id="WBAD",
        remote_status="Rejected",
        decision_pushed="rejected",
        reposted=True,
        assignment=a,
    )
    mturk_stub.add("ListAssignmentsForHIT", {"Assignments": []}, list_params())
    mturk_stub.add("CreateWorkerBlock", {}, {"WorkerId": "WBAD", "Reason": "mean catch-trial F1 0.05 after 5"})
    mturk_stub.add(
        "AssociateQualificationWithWorker",
        {},
        {"QualificationTypeId": "QBLOCK", "WorkerId": "WBAD", "IntegerValue": 1, "SendNotification": False},
    )
    assert marketplace_sync()["blocked"] == 1
    assert WorkerBlock.objects.get(worker__external_id="WBAD").pushed
    mturk_stub.add("ListAssignmentsForHIT", {"Assignments": []}, list_params())
    assert marketplace_sync().get("blocked", 0) == 0


def test_override_of_a_rejection_and_completed_hit_is_expired(batches, taxonomy, mturk_stub, admin_user):
    batch = batches[0]
    hit = make_hit(batch)
    for w in ("W1", "W2"):
        worker_did(batch, taxonomy, w, f"A-{w}")
    bad = worker_did(batch, taxonomy, "W3", "A-W3", good=False)
    mturk_stub.add(
        "ListAssignmentsForHIT", {"Assignments": [remote(f"A-W{i}", f"W{i}") for i in (1, 2, 3)]}, list_params()
    )
    mturk_stub.add("ApproveAssignment", {}, {"AssignmentId": "A-W1", "RequesterFeedback": ANY})
    mturk_stub.add("ApproveAssignment", {}, {"AssignmentId": "A-W2", "RequesterFeedback": ANY})
    mturk_stub.add("RejectAssignment", {}, {"AssignmentId": "A-W3", "RequesterFeedback": ANY})
    mturk_stub.add(
        "CreateAdditionalAssignmentsForHIT",
        {},
        {"HITId": "HIT1", "NumberOfAdditionalAssignments": 1, "UniqueRequestToken": ANY},
    )
    marketplace_sync()
    # an admin overrides the automatic rejection: the next sync approves it on MTurk (OverrideRejection)
    assignment_decide(bad, status="approved", actor=admin_user, reason="checked by hand: fine")
    mturk_stub.add(
        "ListAssignmentsForHIT",
        {
            "Assignments": [
                remote("A-W1", "W1", status="Approved"),
                remote("A-W2", "W2", status="Approved"),
                remote("A-W3", "W3", status="Rejected"),
            ]
        },
        list_params(),
    )
    mturk_stub.add(
        "ApproveAssignment", {}, {"AssignmentId": "A-W3", "RequesterFeedback": ANY, "OverrideRejection": True}
    )
    mturk_stub.add("UpdateExpirationForHIT", {}, {"HITId": "HIT1", "ExpireAt": PAST})
    summary = marketplace_sync()
    assert summary["completed"] == 1
    hit.refresh_from_db()
    assert hit.status == "completed"
    assert marketplace_sync()["hits"] == 0  # completed HITs are no longer synced


def test_expired_hit_short_of_its_target_is_extended(batches, mturk_stub):
    hit = make_hit(batches[0], expires_at=timezone.now() - dt.timedelta(hours=1))
    mturk_stub.add("ListAssignmentsForHIT", {"Assignments": []}, list_params())
    mturk_stub.add("UpdateExpirationForHIT", {}, {"HITId": "HIT1", "ExpireAt": ANY})
    assert marketplace_sync()["extended"] == 1
    hit.refresh_from_db()
    assert hit.expires_at > timezone.now()


def test_unreadable_answer_is_kept_for_an_admin_and_the_rest_goes_on(batches, taxonomy, mturk_stub):
    batch = batches[0]
    make_hit(batch, "HITH", mode="html")
    bad_xml = (
        "<QuestionFormAnswers><Answer><QuestionIdentifier>taskAnswers</QuestionIdentifier>"
        '<FreeText>[{"oops": </FreeText></Answer></QuestionFormAnswers>'
    )
    good = worker_did(batch, taxonomy, "W1", "A1", hit_id="HITH")
    mturk_stub.add(
        "ListAssignmentsForHIT",
        {"Assignments": [remote("A0", "W0", "HITH", answer=bad_xml), remote("A1", "W1", "HITH")]},
        list_params("HITH"),
    )
    mturk_stub.add("ApproveAssignment", {}, {"AssignmentId": "A1", "RequesterFeedback": ANY})
    summary = marketplace_sync()
    assert summary["assignment_errors"] == 1 and summary["approved"] == 1
    ha = HitAssignment.objects.get(external_id="A0")
    assert "not valid JSON" in ha.error and ha.decision_pushed == ""
    good.refresh_from_db()
    assert good.status == "approved"
