"""The per-clip accepted-annotation counters behind the ops dashboard stay equal to the count recomputed from the
answers through every decision: automatic approve / reject, an admin's override either way, re-deciding back."""

import threading

import pytest
from django.db import connection
from django.db.models import Count

from catalog.models import Clip
from crowd.models import Assignment, BatchItem, ClipAnswer
from crowd.services.assignments import (
    answer_save,
    assignment_decide,
    assignment_start,
    assignment_submit,
    assignment_verify,
)
from crowd.services.progress import clips_accepted_recount
from tests.crowd_helpers import fill_assignment


def _recomputed(dataset) -> dict[int, int]:
    """Every clip's approved annotations counted from the answers (the aggregate the counters replace)."""
    counted = dict(
        ClipAnswer.objects.filter(clip__dataset=dataset, assignment__status=Assignment.APPROVED, media_failed=False)
        .values("clip_id")
        .annotate(n=Count("id"))
        .values_list("clip_id", "n")
    )
    return {pk: counted.get(pk, 0) for pk in Clip.objects.filter(dataset=dataset).values_list("pk", flat=True)}


def _counters(dataset) -> dict[int, int]:
    return dict(Clip.objects.filter(dataset=dataset).values_list("pk", "accepted_answers"))


def _work(batch, worker, taxonomy, *, good=True, report_first=False):
    a = assignment_start(
        batch, backend="mturk", worker_external_id=worker, external_assignment_id=f"A-{worker}-{batch.pk}"
    )
    fill_assignment(a, taxonomy, good=good)
    if report_first:
        item = BatchItem.objects.filter(batch=batch, is_gold=False).select_related("clip").order_by("position")[0]
        answer_save(a, item.clip.video_id, {"media_failed": True})
    assignment_submit(a, work_seconds=300)
    return assignment_verify(a, worker_external_id=worker, source="MTurk ListAssignmentsForHIT")


def test_counters_follow_approve_reject_and_re_decide(admin_client, admin_user, make_dataset, taxonomy):
    from crowd.services.batches import batches_create

    dataset = make_dataset(name="counted", n_regular=6, n_gold=2, annotations_per_clip=3)
    b0, b1 = batches_create(dataset)[:2]
    assert _counters(dataset) == _recomputed(dataset) and set(_counters(dataset).values()) == {0}

    good1 = _work(b0, "W1", taxonomy)
    good2 = _work(b0, "W2", taxonomy)
    bad = _work(b0, "W3", taxonomy, good=False)
    reporter = _work(b1, "W1", taxonomy, report_first=True)
    assert (good1.status, good2.status, bad.status, reporter.status) == ("approved", "approved", "rejected", "approved")
    counters = _counters(dataset)
    assert counters == _recomputed(dataset)
    regular0 = list(BatchItem.objects.filter(batch=b0, is_gold=False).values_list("clip_id", flat=True))
    regular1 = list(
        BatchItem.objects.filter(batch=b1, is_gold=False).order_by("position").values_list("clip_id", flat=True)
    )
    assert [counters[c] for c in regular0] == [2] * len(regular0)
    assert [counters[c] for c in regular1] == [0] + [1] * (len(regular1) - 1)  # a media report is no annotation

    # an admin rejects an approved assignment, approves the rejected one, then re-decides both back
    steps = [
        (good1, "rejected", 1),
        (bad, "approved", 2),
        (good1, "approved", 3),
        (bad, "rejected", 2),
        (bad, "rejected", 2),  # deciding again to the same status changes nothing
    ]
    for a, status, expected in steps:
        assignment_decide(a, status=status, actor=admin_user, reason="checked by hand")
        counters = _counters(dataset)
        assert counters == _recomputed(dataset), (a.worker.external_id, status)
        assert [counters[c] for c in regular0] == [expected] * len(regular0), (a.worker.external_id, status)

    # the dashboard and the clip list read the counters
    html = admin_client.get("/ops/counted/").content.decode()
    assert 'data-figure="progress-2"' in html
    page = admin_client.get("/ops/counted/clips/?accepted=2").content.decode()
    assert f"{len(regular0)} row(s)" in page
    # a recount from the answers (the migration, a bulk load) agrees with what the services kept
    before = _counters(dataset)
    Clip.objects.filter(dataset=dataset).update(accepted_answers=0)
    clips_accepted_recount(dataset.pk)
    assert _counters(dataset) == before


@pytest.mark.django_db(transaction=True)
def test_concurrent_decisions_on_the_same_clips_keep_every_count(admin_user, make_dataset, taxonomy):
    """Four admins approve four workers' answers to the same batch at the same moment (and two of them reject
    again): every decision's answers are counted once, no decision is lost or deadlocked."""
    if connection.vendor != "postgresql":
        pytest.skip("concurrency against PostgreSQL: set DATABASE_URL")
    from crowd.services.batches import batches_create

    dataset = make_dataset(name="racing", n_regular=6, n_gold=2, annotations_per_clip=5, review_window_hours=72)
    batch = batches_create(dataset)[0]
    waiting = [_work(batch, f"W{i}", taxonomy) for i in range(4)]
    assert {a.status for a in waiting} == {"submitted"}  # the review window holds them for a person

    def decide_all(steps):
        start = threading.Barrier(len(steps))
        errors = []

        def run(a, status):
            start.wait()
            try:
                assignment_decide(a, status=status, actor=admin_user, reason="checked by hand")
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
            finally:
                connection.close()

        threads = [threading.Thread(target=run, args=step) for step in steps]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []

    decide_all([(a, "approved") for a in waiting])
    regular = list(BatchItem.objects.filter(batch=batch, is_gold=False).values_list("clip_id", flat=True))
    assert [_counters(dataset)[c] for c in regular] == [4] * len(regular)
    decide_all([(waiting[0], "rejected"), (waiting[1], "rejected")])
    assert _counters(dataset) == _recomputed(dataset)
    assert [_counters(dataset)[c] for c in regular] == [2] * len(regular)
