"""The admins' review screen (/ops/<dataset>/review/): one assignment clip by clip with the gold answer and the other
workers' answers, decisions with a reason through the crowd services (audited), bulk decisions for a batch, and the
Django admin's answers read-only."""

import random
import re

import pytest

from catalog.services.users import user_create
from crowd.models import Assignment, AssignmentDecisionLog, BatchItem, ClipAnswer
from crowd.services.assignments import answer_save, assignment_start, assignment_submit
from crowd.services.batches import batches_create
from tests.crowd_helpers import complete_payload, fill_assignment

pytestmark = pytest.mark.django_db


@pytest.fixture
def review_world(make_crowd_dataset, taxonomy, client):
    """A batch of 4 clips (1 catch trial) answered by three workers, all waiting for a review (72 h window)."""
    ds = make_crowd_dataset(
        "rev", 6, 2, batch_size=4, gold_per_batch=1, annotations_per_clip=3, review_window_hours=72, reject_below=0
    )
    batches = batches_create(ds, rng=random.Random(3))
    assert len(batches) == 2
    batch = batches[0]
    gold_item = BatchItem.objects.get(batch=batch, is_gold=True)
    made = {}
    for worker, good in (("W-GOOD", True), ("W-BAD", False), ("W-MID", None)):
        a = assignment_start(batch, backend="simulated", worker_external_id=worker)
        fill_assignment(a, taxonomy, good=bool(good))
        if good is None:  # the catch trial's first class, audible only (gold says AV): half right
            i = int(gold_item.clip.video_id[1:])
            answer_save(a, gold_item.clip.video_id, complete_payload([{"name": taxonomy[100 + i], "audible": True}]))
            regular = BatchItem.objects.filter(batch=batch, is_gold=False).select_related("clip").first()
            answer_save(a, regular.clip.video_id, {**complete_payload(), "comment": "Dog is off screen."})
        made[worker] = assignment_submit(a, work_seconds=300)
    admin = user_create("boss", "admin")["user"]
    client.force_login(admin)
    return {
        "ds": ds,
        "batch": batch,
        "other_batch": batches[1],
        "gold": gold_item,
        "a": made,
        "admin": admin,
        "client": client,
    }


def test_the_review_screen_shows_each_clip_with_the_workers_gold_and_other_answers(review_world, taxonomy):
    w, client = review_world, review_world["client"]
    mid = w["a"]["W-MID"]
    assert mid.status == "submitted"
    page = client.get(f"/ops/rev/review/{mid.uuid}/")
    assert page.status_code == 200
    html = page.content.decode()
    # catch F1 as a percentage (the mid worker: 1 of 3 gold atoms, nothing extra -> F1 2/4 = 50 %)
    assert re.search(r'id="catch-f1">50 %<', html), "catch F1 not shown as a percentage"
    assert "0.5" not in re.search(r'id="catch-f1">[^<]*<', html).group(0)
    # every clip with its video (a signed media link), the catch trial marked and compared with gold
    assert html.count('<li class="review-clip') == 4 and html.count("/media/clip/") == 4
    assert html.count("catch trial</span>") == 1
    i = int(w["gold"].clip.video_id[1:])
    gold_row = re.search(rf'<tr class="v-(\w+)"><td>{re.escape(taxonomy[100 + i])}</td><td>AV</td><td>A ', html)
    assert gold_row and gold_row.group(1) == "partial"
    missed = re.search(rf'<tr class="v-(\w+)"><td>{re.escape(taxonomy[200 + i])}</td><td>A</td><td>-', html)
    assert missed and missed.group(1) == "missed"
    # the worker's comment, and the other two workers' answers side by side on each clip
    assert "Dog is off screen." in html
    assert html.count("W-GOOD</a>") == 4 and html.count("W-BAD</a>") == 4
    # read-only: the only form on the page is the decision
    assert html.count("<form") == 2  # the decision form and the site header's logout form
    assert 'name="labels' not in html and "<textarea" not in html


def test_a_decision_needs_a_reason_is_audited_and_opens_the_next_waiting_assignment(review_world):
    w, client = review_world, review_world["client"]
    mid, bad = w["a"]["W-MID"], w["a"]["W-BAD"]
    url = f"/ops/rev/review/{mid.uuid}/"
    refused = client.post(url, {"decision": "approve", "reason": "  "}, follow=True)
    assert "type a reason" in refused.content.decode()
    mid.refresh_from_db()
    assert mid.status == "submitted" and not AssignmentDecisionLog.objects.filter(actor=w["admin"]).exists()
    bogus = client.post(url, {"decision": "pay double", "reason": "x"}, follow=True)
    assert "allowed: approve, reject" in bogus.content.decode()

    done = client.post(url, {"decision": "approve", "reason": "checked the clips", "then": "next"})
    mid.refresh_from_db()
    assert mid.status == "approved" and mid.decision_reason == "checked the clips"
    log = AssignmentDecisionLog.objects.get(assignment=mid, actor=w["admin"])
    assert (log.old_status, log.new_status, log.reason) == ("submitted", "approved", "checked the clips")
    # the next waiting assignment opens (oldest submitted first, this one excluded)
    assert done.status_code == 302 and done["Location"] == f"/ops/rev/review/{w['a']['W-GOOD'].uuid}/"

    rejected = client.post(
        f"/ops/rev/review/{bad.uuid}/",
        {"decision": "reject", "reason": "ticks nothing", "feedback": "Please tick what you hear.", "then": "stay"},
    )
    bad.refresh_from_db()
    assert rejected["Location"] == f"/ops/rev/review/{bad.uuid}/"
    assert bad.status == "rejected" and bad.feedback == "Please tick what you hear."


def test_bulk_decisions_for_a_batch_decide_the_selected_and_name_the_refused(review_world, taxonomy):
    w, client = review_world, review_world["client"]
    batch = w["batch"]
    # an MTurk assignment the marketplace has not confirmed yet cannot be approved
    extra = make_unverified(w["other_batch"], taxonomy)
    good, bad = w["a"]["W-GOOD"], w["a"]["W-BAD"]
    page = client.get(f"/ops/rev/review/batch/{batch.uuid}/").content.decode()
    assert page.count('name="assignment"') == 3 and "100 %" in page and "0 %" in page

    nothing = client.post(f"/ops/rev/review/batch/{batch.uuid}/", {"decision": "approve", "reason": "ok"}, follow=True)
    assert "select at least one assignment" in nothing.content.decode()

    resp = client.post(
        f"/ops/rev/review/batch/{batch.uuid}/",
        {"assignment": [str(good.uuid), str(w["a"]["W-MID"].uuid)], "decision": "approve", "reason": "spot-checked"},
        follow=True,
    )
    assert "2 assignment(s) approved" in resp.content.decode()
    assert {a.worker.external_id for a in Assignment.objects.filter(batch=batch, status="approved")} == {
        "W-GOOD",
        "W-MID",
    }
    bad.refresh_from_db()
    assert bad.status == "submitted"  # not selected: untouched

    other_batch = f"/ops/rev/review/batch/{extra.batch.uuid}/"
    resp = client.post(
        other_batch, {"assignment": [str(extra.uuid)], "decision": "approve", "reason": "looks fine"}, follow=True
    )
    text = resp.content.decode()
    assert "unverified" in text and str(extra.uuid)[:8] in text
    extra.refresh_from_db()
    assert extra.status == "submitted"


def make_unverified(batch, taxonomy):
    a = assignment_start(batch, backend="mturk", worker_external_id="W-TURK", external_assignment_id="A-TURK")
    fill_assignment(a, taxonomy, good=True)
    return assignment_submit(a, work_seconds=200)


def test_the_review_pages_are_for_admins_only_and_unknown_ids_are_404(review_world):
    w = review_world
    from django.test import Client

    researcher = Client()
    researcher.force_login(user_create("res", "researcher")["user"])
    mid = w["a"]["W-MID"]
    assert researcher.get(f"/ops/rev/review/{mid.uuid}/").status_code == 403
    assert researcher.post(f"/ops/rev/review/{mid.uuid}/", {"decision": "reject", "reason": "x"}).status_code == 403
    mid.refresh_from_db()
    assert mid.status == "submitted"
    client = w["client"]
    assert client.get("/ops/rev/review/00000000-0000-0000-0000-000000000000/").status_code == 404
    assert client.get("/ops/nope/review/").status_code == 404
    index = client.get("/ops/rev/review/").content.decode()
    assert index.count(f"/ops/rev/review/{w['batch'].uuid}") == 0  # assignments link to themselves, batches apart
    assert all(str(a.uuid) in index for a in w["a"].values())


def test_the_django_admin_shows_answers_read_only(review_world):
    w, client = review_world, review_world["client"]
    mid = w["a"]["W-MID"]
    answer = ClipAnswer.objects.filter(assignment=mid).first()
    before = (answer.labels, answer.background_music)
    page = client.get(f"/admin/crowd/assignment/{mid.pk}/change/").content.decode()
    assert "answers-0-labels" not in page and "review screen" in page and "50 %" in page
    change = client.get(f"/admin/crowd/clipanswer/{answer.pk}/change/").content.decode()
    assert 'name="labels"' not in change and 'name="background_music"' not in change
    client.post(
        f"/admin/crowd/clipanswer/{answer.pk}/change/",
        {"labels": "[]", "background_music": "on", "assignment": mid.pk, "clip": answer.clip_id},
    )
    answer.refresh_from_db()
    assert (answer.labels, answer.background_music) == before
