"""The operations dashboard (staff only; every number links to the list behind it) and the marketplace API."""

import re
from decimal import Decimal

import pytest

from catalog.models import Operation
from crowd.models import Hit, Worker
from crowd.services.assignments import assignment_start, assignment_submit, assignment_verify
from tests.crowd_helpers import fill_assignment


@pytest.fixture
def worked(dataset, batches, taxonomy):
    """One HIT with three assignments: approved, rejected (F1 0), in progress."""
    batch = batches[0]
    Hit.objects.create(
        batch=batch,
        external_id="HIT1",
        status="open",
        reward=Decimal("1.00"),
        max_assignments=3,
        target_assignments=3,
        unique_request_token="t1",
    )
    out = {}
    for worker, good in (("W-good", True), ("W-bad", False)):
        a = assignment_start(batch, backend="mturk", worker_external_id=worker, external_assignment_id=f"A-{worker}")
        fill_assignment(a, taxonomy, good=good)
        assignment_submit(a, work_seconds=600)
        # the marketplace reported it for this worker (what a sync does): only then is it decided
        out[worker] = assignment_verify(a, worker_external_id=worker, source="MTurk ListAssignmentsForHIT")
    out["W-new"] = assignment_start(batch, backend="mturk", worker_external_id="W-new")
    return out


def _links(html):
    return {
        m.group(2): m.group(1).replace("&amp;", "&")
        for m in re.finditer(r'<a class="num" data-figure="([^"]+)" href="([^"]+)"', html)
    }


def _figures(html):
    return {
        m.group(1): (m.group(2).replace("&amp;", "&"), m.group(3))
        for m in re.finditer(r'<a class="num" data-figure="([^"]+)" href="([^"]+)">([^<]*)</a>', html)
    }


def test_dashboard_is_staff_only(client, django_user_model, dataset):
    assert client.get("/ops/").status_code == 302
    django_user_model.objects.create_user("ann", password="pw")
    client.login(username="ann", password="pw")
    resp = client.get(f"/ops/{dataset.name}/")
    assert resp.status_code == 403 and "admins (staff) only" in resp.content.decode()  # signed in, not an admin
    assert client.post(f"/ops/{dataset.name}/sync/").status_code == 403
    assert Operation.objects.count() == 0


def test_every_number_links_to_the_list_behind_it(admin_client, dataset, worked):
    html = admin_client.get(f"/ops/{dataset.name}/").content.decode()
    figs = _figures(html)
    # assignments by status: the number shown equals the rows of the linked list
    for status, expected in (("approved", 1), ("rejected", 1), ("in_progress", 1), ("submitted", 0)):
        href, text = figs[f"assignments-{status}"]
        assert text.endswith(f": {expected}")
        page = admin_client.get(href).content.decode()
        assert f"{expected} row(s)" in page
    # clip progress: 3 regular clips, each with 1 approved annotation (the good worker)
    href, text = figs["progress-1"]
    assert text == "1: 3"
    page = admin_client.get(href).content.decode()
    assert "3 row(s)" in page and "r000" in page
    assert figs["progress-0"][1] == "0: 0"
    # open HITs
    href, text = figs["open-hits"]
    assert text == "open: 1" and "HIT1" in admin_client.get(href).content.decode()
    # spend: 1 approved assignment at $1.00 + 20 % fee paid; 2 slots still committed (3 - 1 rejected)
    assert figs["spend"][1].startswith("$1.20 paid, $2.40 committed of $100.00")
    # work time and implied hourly pay: 600 s median, $1.00 reward -> $6.00/h
    assert "median 600 s" in figs["work"][1] and "$6.00/h" in figs["work"][1]
    # workers table: the rejected count links to that worker's rejected assignments
    bad = Worker.objects.get(external_id="W-bad")
    link = f"/ops/{dataset.name}/assignments/?worker={bad.pk}&amp;status=rejected"
    assert link in html
    page = admin_client.get(link.replace("&amp;", "&")).content.decode()
    assert "1 row(s)" in page and "W-bad" in page and "below the dataset" in page
    # recent rejections with reasons
    assert "catch-trial F1 0.000 is below" in html


def test_clips_reported_as_not_playing_are_counted_and_listed(admin_client, dataset, batches, taxonomy):
    from crowd.models import BatchItem
    from crowd.services.assignments import answer_save

    html = admin_client.get(f"/ops/{dataset.name}/").content.decode()
    assert _figures(html)["media-reports"][1] == "0 clip(s), 0 report(s)"
    # a worker answers every clip but reports one as not playing, submits, and is approved
    a = assignment_start(batches[0], backend="mturk", worker_external_id="W-good", external_assignment_id="A-1")
    fill_assignment(a, taxonomy, good=True)
    item = BatchItem.objects.filter(batch=batches[0], is_gold=False).select_related("clip").order_by("position")[0]
    answer_save(a, item.clip.video_id, {"media_failed": True})
    assignment_submit(a, work_seconds=600)
    a = assignment_verify(a, worker_external_id="W-good", source="MTurk ListAssignmentsForHIT")
    assert a.status == "approved"
    html = admin_client.get(f"/ops/{dataset.name}/").content.decode()
    figs = _figures(html)
    href, text = figs["media-reports"]
    assert text == "1 clip(s), 1 report(s)"
    page = admin_client.get(href).content.decode()
    assert "1 row(s)" in page and item.clip.video_id in page and "W-good" in page
    # the report is not an annotation: that clip has 0 accepted annotations, the other two 1
    assert figs["progress-0"][1] == "0: 1" and figs["progress-1"][1] == "1: 2"
    page = admin_client.get(figs["progress-0"][0]).content.decode()
    assert "1 row(s)" in page and item.clip.video_id in page
    summary = admin_client.get(f"/api/marketplace/datasets/{dataset.name}/summary/").json()
    assert summary["media_reports"] == {"clips": 1, "reports": 1}


def test_workers_list_shows_quality_and_approval_rate(admin_client, dataset, worked):
    page = admin_client.get(f"/ops/{dataset.name}/workers/").content.decode()
    assert "W-good" in page and "1.00" in page and "100 %" in page
    assert "W-bad" in page and "0 %" in page


def test_sync_now_runs_and_shows_progress_and_summary(
    admin_client, dataset, worked, monkeypatch, django_capture_on_commit_callbacks
):
    from crowd.services import sync

    monkeypatch.setattr(sync.mturk, "get_backend", lambda sandbox: _NoCalls(sandbox))
    with django_capture_on_commit_callbacks(execute=True):
        resp = admin_client.post(f"/ops/{dataset.name}/sync/")
    op = Operation.objects.get(kind="sync")
    assert resp.status_code == 302 and resp["Location"] == f"/ops/operations/{op.pk}/"
    assert (op.status, op.done, op.total) == ("done", 1, 1)  # HIT1, listed empty by the fake backend
    page = admin_client.get(resp["Location"]).content.decode()
    assert "done" in page and 'id="op-summary"' in page and "nothing new" in page


class _NoCalls:
    backend = "mturk"

    def __init__(self, sandbox):
        self.sandbox = sandbox

    def paginate(self, *a, **k):
        return iter(())

    def call(self, *a, **k):
        raise AssertionError("no call expected")


def test_api_publish_dry_run_estimate_and_refusals(admin_client, client, dataset, batches, mturk_stub):
    resp = admin_client.post(
        "/api/marketplace/publish/",
        {"dataset": dataset.name, "dry_run": True, "reward": "1.00"},
        content_type="application/json",
    )
    assert resp.status_code == 200
    body = resp.json()
    assert body["dry_run"] is True and body["hits"] == len(batches)
    assert body["cost_usd"] == str(Decimal("3.60") * len(batches))
    resp = admin_client.post(
        "/api/marketplace/publish/", {"dataset": dataset.name, "reward": "500"}, content_type="application/json"
    )
    assert resp.status_code == 400 and resp.json()["field"] == "budget"
    assert client.post("/api/marketplace/publish/", {"dataset": dataset.name}).status_code in (401, 403)
    assert Hit.objects.count() == 0


def test_api_summary_and_inhouse_and_bonus(admin_client, dataset, worked, django_user_model):
    from catalog.models import Operation

    Operation.objects.create(kind=Operation.KINDS[0][0], dataset=dataset, done=3, total=3, message="done")
    s = admin_client.get(f"/api/marketplace/datasets/{dataset.name}/summary/").json()
    assert s["assignments"]["approved"] == 1 and s["open_hits"] == 1
    assert s["operations"][0]["done"] == 3 and s["operations"][0]["message"] == "done"
    assert {w["worker"] for w in s["workers"]} == {"W-good", "W-bad", "W-new"}
    django_user_model.objects.create_user("ann", password="pw")
    batch = worked["W-good"].batch
    r = admin_client.post(
        "/api/marketplace/inhouse/assign/",
        {"batch": str(batch.uuid), "username": "ann"},
        content_type="application/json",
    )
    assert r.status_code == 201 and r.json()["url"] == f"/hit/{batch.uuid}/"
    r = admin_client.post(
        "/api/marketplace/inhouse/assign/",
        {"batch": str(batch.uuid), "username": "nobody"},
        content_type="application/json",
    )
    assert r.status_code == 400 and r.json()["field"] == "username"
    r = admin_client.post(
        "/api/marketplace/bonuses/",
        {"assignment": str(worked["W-good"].uuid), "amount": "0.5", "reason": "thanks"},
        content_type="application/json",
    )
    assert r.status_code == 201 and r.json()["status"] == "pending"


def test_admin_publish_action_shows_cost_before_publishing(admin_client, dataset, batches):
    resp = admin_client.post(
        "/admin/crowd/batch/", {"action": "publish_to_marketplace", "_selected_action": [b.pk for b in batches]}
    )
    assert resp.status_code == 200
    page = resp.content.decode()
    assert 'id="publish-estimate"' in page and "HIT(s) on mturk sandbox" in page and "incl. fees" in page
    assert Hit.objects.count() == 0


def test_api_publish_runs_the_task_and_reports_progress(
    admin_client, dataset, batches, mturk_stub, django_capture_on_commit_callbacks
):
    from .conftest import hit_response

    for i in range(len(batches)):
        mturk_stub.add("CreateHIT", hit_response(f"H{i}"), None)
    with django_capture_on_commit_callbacks(execute=True):
        resp = admin_client.post(
            "/api/marketplace/publish/", {"dataset": dataset.name, "reward": "1.00"}, content_type="application/json"
        )
    assert resp.status_code == 202
    op = admin_client.get(f"/api/marketplace/operations/{resp.json()['operation']}/").json()
    assert op["status"] == "done" and op["done"] == op["total"] == len(batches) and op["percent"] == 100
    assert op["summary"]["created"] == len(batches)
    hits = admin_client.get(f"/api/marketplace/hits/?dataset={dataset.name}").json()
    assert sorted(h["external_id"] for h in hits) == [f"H{i}" for i in range(len(batches))]


def test_beat_sync_is_skipped_while_another_sync_runs(dataset):
    from crowd.tasks import marketplace_sync_task

    Operation.objects.create(kind="sync", status="running")
    assert marketplace_sync_task.delay().get() == {"skipped": "another sync is still running"}


def test_admin_publish_action_confirm_publishes(
    admin_client, dataset, batches, mturk_stub, django_capture_on_commit_callbacks
):
    from .conftest import hit_response

    for i, _ in enumerate(batches):
        mturk_stub.add("CreateHIT", hit_response(f"HA{i}"), None)
    form = {
        "action": "publish_to_marketplace",
        "_selected_action": [b.pk for b in batches],
        "backend": "mturk",
        "environment": "sandbox",
        "mode": "external",
        "reward": "0.75",
        "confirm": "1",
    }
    with django_capture_on_commit_callbacks(execute=True):
        resp = admin_client.post("/admin/crowd/batch/", form, follow=True)
    assert "Publishing %d batch(es)" % len(batches) in resp.content.decode()
    assert sorted(Hit.objects.values_list("external_id", flat=True)) == [f"HA{i}" for i in range(len(batches))]
    assert set(Hit.objects.values_list("reward", flat=True)) == {Decimal("0.75")}
    # over budget: the confirmation page shows the refusal, nothing is sent
    form.update(reward="999", confirm="1")
    Hit.objects.all().delete()
    resp = admin_client.post("/admin/crowd/batch/", form)
    assert 'id="publish-error"' in resp.content.decode() and "over budget" in resp.content.decode()
    assert Hit.objects.count() == 0
