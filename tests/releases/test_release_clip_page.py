"""A release's clip drilled down: the video, the released labels, the proposals the workers saw and every vote side
by side, reached from the release page."""

import random
import re

import pytest

from catalog.services.users import user_create
from crowd.models import Assignment, BatchItem
from crowd.services.assignments import answer_save, assignment_start, assignment_submit
from crowd.services.batches import batches_create
from labels.services.create import release_create
from tests.crowd_helpers import complete_payload, fill_assignment

pytestmark = pytest.mark.django_db


def test_a_clip_of_a_release_shows_its_video_proposals_and_every_vote(make_crowd_dataset, taxonomy, client):
    ds = make_crowd_dataset("drill", 3, 1, batch_size=4, gold_per_batch=1, annotations_per_clip=3)
    batch = batches_create(ds, rng=random.Random(1))[0]
    first = BatchItem.objects.get(batch=batch, clip__video_id="r000")
    proposal = first.proposals[0]
    ticks = {"W1": (True, False), "W2": (True, True), "W3": (False, False)}
    for worker, (audible, visible) in ticks.items():
        a = assignment_start(batch, backend="simulated", worker_external_id=worker)
        fill_assignment(a, taxonomy, good=True)
        labels = [{"name": proposal, "audible": audible, "visible": visible}] if audible or visible else []
        answer_save(a, "r000", {**complete_payload(labels), "comment": "barks twice" if worker == "W2" else ""})
        assignment_submit(a, work_seconds=60)
    assert Assignment.objects.filter(status="approved").count() == 3
    release = release_create(ds, "v1", params={"k": 3})
    client.force_login(user_create("res", "researcher")["user"])

    detail = client.get(f"/releases/{release.pk}/").content.decode()
    assert f'href="/releases/{release.pk}/clips/r000/"' in detail
    html = client.get(f"/releases/{release.pk}/clips/r000/").content.decode()
    assert '<video id="video"' in html
    assert proposal in re.search(r'<p id="proposals">([^<]*)</p>', html).group(1)
    # three voters' columns, each with status and catch F1, and the per-class counts
    assert html.count("<small>approved · 100 %</small>") == 3
    row = re.search(rf'<tr class="released"><th scope="row">{re.escape(proposal)}</th>(.*?)</tr>', html, re.S)
    assert row, "the released class is not marked"
    cells = re.findall(r"<td[^>]*>([^<]*)", row.group(1))
    assert cells[1:3] == ["2", "1"] and cells[3:] == ["A", "AV", ""]
    assert "W2:</b> barks twice" in html
    assert client.get(f"/releases/{release.pk}/clips/nope/").status_code == 404


def test_the_ops_clip_list_links_each_clip_to_its_video_proposals_and_votes(make_crowd_dataset, taxonomy, client):
    ds = make_crowd_dataset("opsclips", 3, 1, batch_size=4, gold_per_batch=1, annotations_per_clip=3)
    batch = batches_create(ds, rng=random.Random(1))[0]
    a = assignment_start(batch, backend="simulated", worker_external_id="W9")
    fill_assignment(a, taxonomy, good=True)
    assignment_submit(a, work_seconds=60)
    client.force_login(user_create("boss", "admin")["user"])
    listing = client.get("/ops/opsclips/clips/?accepted=1").content.decode()
    assert 'href="/ops/opsclips/clips/r000/"' in listing
    html = client.get("/ops/opsclips/clips/r000/").content.decode()
    assert '<video id="video"' in html and "Released labels" not in html
    assert f'href="/ops/opsclips/review/{a.uuid}/">simulated:W9</a>' in html  # each vote links to its review
    assert "<small>approved · 100 %</small>" in html
    assert client.get("/ops/opsclips/clips/nope/").status_code == 404
    researcher = client.__class__()
    researcher.force_login(user_create("res", "researcher")["user"])
    assert researcher.get("/ops/opsclips/clips/r000/").status_code == 403
