"""Submit -> score -> policy (approve / reject and re-queue / block), admin overrides, batching invariants."""

import random
from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from catalog.errors import Forbidden, ValidationError
from crowd.models import Assignment, AssignmentDecisionLog, Batch, BatchItem, Worker
from crowd.services.assignments import (
    answer_save,
    assignment_decide,
    assignment_start,
    assignment_submit,
    assignments_approve_due,
)
from crowd.services.batches import batches_create
from tests.crowd_helpers import complete_payload, fill_assignment


def start(batch, worker="W1", **kw):
    return assignment_start(batch, backend="simulated", worker_external_id=worker, **kw)


def test_good_worker_is_approved_and_scores_are_stored(batch, taxonomy):
    a = start(batch)
    fill_assignment(a, taxonomy, good=True)
    a = assignment_submit(a)
    assert a.status == "approved" and (a.catch_f1, a.catch_precision, a.catch_recall) == (1.0, 1.0, 1.0)
    w = Worker.objects.get()
    assert (w.mean_catch_f1, w.n_scored, w.is_blocked) == (1.0, 1, False)


def test_partial_catch_answers_give_the_hand_computed_f1(batch, taxonomy):
    a = start(batch)
    fill_assignment(a, taxonomy, good=False)
    gold_items = list(BatchItem.objects.filter(batch=batch, is_gold=True).select_related("clip"))
    assert len(gold_items) == 2
    # first catch clip: its AV class ticked audible only (1 TP, 1 FN) plus a wrong class (1 FP); its A class
    # missed (1 FN). Second catch clip untouched: 3 FN.  TP=1 FP=1 FN=5 -> F1 = 2/(2+1+5) = 0.25
    vid = gold_items[0].clip.video_id
    i = int(vid[1:])
    answer_save(
        a,
        vid,
        complete_payload(
            [
                {"name": taxonomy[100 + i], "audible": True, "visible": False},
                {"name": taxonomy[0], "audible": True, "visible": False},
            ]
        ),
    )
    a = assignment_submit(a)
    assert a.catch_precision == pytest.approx(0.5) and a.catch_recall == pytest.approx(1 / 6)
    assert a.catch_f1 == pytest.approx(0.25) and a.status == "approved"  # 0.25 is not below 0.25


def test_bad_worker_is_rejected_with_feedback_and_the_batch_reopens(make_dataset, taxonomy):
    ds = make_dataset(annotations_per_clip=1)
    (batch,) = batches_create(ds)
    a = start(batch, "BAD")
    assert Batch.objects.get(pk=batch.pk).status == "closed"  # its only slot is taken
    with pytest.raises(Forbidden):
        start(batch, "OTHER")
    fill_assignment(a, taxonomy, good=False)
    a = assignment_submit(a)
    assert a.status == "rejected" and a.catch_f1 == 0.0 and "quality-control" in a.feedback
    log = AssignmentDecisionLog.objects.filter(assignment=a, new_status="rejected").get()
    assert log.actor is None and "below" in log.reason
    assert Batch.objects.get(pk=batch.pk).status == "open"
    b = start(batch, "OTHER")  # the clips are back in the queue for another worker
    fill_assignment(b, taxonomy, good=True)
    assert assignment_submit(b).status == "approved"


def test_review_window_defers_approval(make_dataset, taxonomy):
    ds = make_dataset(review_window_hours=24)
    (batch,) = batches_create(ds)
    a = start(batch)
    fill_assignment(a, taxonomy)
    a = assignment_submit(a)
    assert a.status == "submitted"
    assert assignments_approve_due() == 0
    assert assignments_approve_due(timezone.now() + timedelta(hours=25)) == 1
    assert Assignment.objects.get(pk=a.pk).status == "approved"


def test_worker_below_floor_after_n_assignments_is_blocked(make_dataset, taxonomy):
    ds = make_dataset(n_regular=54, n_gold=6, block_after=2, reject_below=0.0, block_floor=0.5)
    batches = batches_create(ds, rng=random.Random(3))
    assert len(batches) == 3
    for batch in batches[:2]:
        a = start(batch, "LOW")
        fill_assignment(a, taxonomy, good=False)
        assignment_submit(a)
    w = Worker.objects.get(external_id="LOW")
    assert w.is_blocked and w.n_scored == 2 and w.mean_catch_f1 == 0.0 and "0.500" in w.blocked_reason
    with pytest.raises(Forbidden, match="no longer"):
        start(batches[2], "LOW")


def test_admin_override_is_audited_and_needs_a_reason(batch, taxonomy, django_user_model):
    admin = django_user_model.objects.create_user("boss", is_staff=True)
    a = start(batch)
    with pytest.raises(ValidationError):
        assignment_decide(a, status="approved")  # not submitted yet
    fill_assignment(a, taxonomy)
    assignment_submit(a)
    with pytest.raises(ValidationError, match="reason"):
        assignment_decide(a, status="rejected", actor=admin)
    with pytest.raises(ValidationError, match="allowed"):
        assignment_decide(a, status="paid", actor=admin, reason="x")
    a = assignment_decide(a, status="rejected", actor=admin, reason="copied answers", feedback="Please don't copy")
    assert a.status == "rejected" and a.feedback == "Please don't copy"
    log = AssignmentDecisionLog.objects.filter(actor=admin).get()
    assert (log.old_status, log.new_status, log.reason) == ("approved", "rejected", "copied answers")


def test_admin_action_rejects_with_reason(admin_client, batch, taxonomy):
    a = start(batch)
    fill_assignment(a, taxonomy)
    assignment_submit(a)
    url = "/admin/crowd/assignment/"
    r = admin_client.post(url, {"action": "reject_override", "_selected_action": [a.pk], "reason": ""})
    assert Assignment.objects.get(pk=a.pk).status == "approved"
    r = admin_client.post(url, {"action": "reject_override", "_selected_action": [a.pk], "reason": "spam"}, follow=True)
    assert r.status_code == 200 and Assignment.objects.get(pk=a.pk).status == "rejected"
    assert AssignmentDecisionLog.objects.filter(reason="spam", actor__username="admin").exists()


def test_batches_hold_each_clip_once_with_rotating_gold_and_distinct_workers(make_dataset, taxonomy):
    ds = make_dataset(n_regular=72, n_gold=6)
    batches = batches_create(ds, rng=random.Random(11))
    assert len(batches) == 4
    items = list(BatchItem.objects.filter(batch__in=batches).select_related("clip"))
    regular = Counter(it.clip.video_id for it in items if not it.is_gold)
    assert len(regular) == 72 and set(regular.values()) == {1}
    for b in batches:
        gold_pos = [it.position for it in items if it.batch_id == b.pk and it.is_gold]
        assert len(gold_pos) == 2 and sorted(it.position for it in items if it.batch_id == b.pk) == list(range(20))
    gold_use = Counter(it.clip.video_id for it in items if it.is_gold)
    assert len(gold_use) == 6 and max(gold_use.values()) - min(gold_use.values()) <= 1
    # a worker meets different gold clips batch after batch, and is refused a batch repeating one
    seen, taken = set(), 0
    for b in batches:
        golds = {it.clip.video_id for it in items if it.batch_id == b.pk and it.is_gold}
        if golds & seen:
            with pytest.raises(Forbidden, match="already worked on a video"):
                start(b, "W1")
        else:
            start(b, "W1")
            seen |= golds
            taken += 1
    assert taken >= 3 and len(seen) == 2 * taken
    # same worker + batch -> same assignment; three distinct workers fill a batch
    b = batches[0]
    assert start(b, "W1").pk == start(b, "W1").pk
    start(b, "W2"), start(b, "W3")
    workers = list(Assignment.objects.filter(batch=b).values_list("worker__external_id", flat=True))
    assert sorted(workers) == ["W1", "W2", "W3"]
    with pytest.raises(Forbidden):
        start(b, "W4")
    # a second call only batches clips that are in no batch yet
    assert batches_create(ds) == []


def test_explicit_proposals_and_unknown_classes(dataset, taxonomy):
    with pytest.raises(ValidationError, match="not in the taxonomy"):
        batches_create(dataset, proposals={"r000": ["no such class"]})
    with pytest.raises(ValidationError, match="not in dataset"):
        batches_create(dataset, clips=["nope"])
    (batch,) = batches_create(dataset, proposals={"r000": [taxonomy[7], taxonomy[3]]})
    assert BatchItem.objects.get(batch=batch, clip__video_id="r000").proposals == [taxonomy[7], taxonomy[3]]


def test_create_batches_command(dataset, capsys):
    from django.core.management import CommandError, call_command

    call_command("create_batches", "--dataset", dataset.name, "--seed", "1")
    assert "created 1 batch(es) with 20 clip slots" in capsys.readouterr().out
    with pytest.raises(CommandError, match="does not exist"):
        call_command("create_batches", "--dataset", "nope")
