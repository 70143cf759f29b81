"""HTMLQuestion mode end to end: publish to botocore's Stubber, read back the page MTurk would show, answer it the
way the crowd-form submits it (one field per clip, named by the clip id), build the batch results CSV as MTurk
builds it from that form, import it, score it: the worker's real ticks arrive, and the media stays reachable for
the HIT's lifetime plus the review period."""

import csv
import json
import re
import time
import xml.etree.ElementTree as ET
from decimal import Decimal
from urllib.parse import urlparse

from catalog.models import Clip
from catalog.selectors.clips import clip_from_media_token
from crowd.models import Assignment, ClipAnswer, Hit, MarketplaceCall
from crowd.services.mturk_import import mturk_results_import
from crowd.services.publish import batches_publish, request_token
from tests.crowd_helpers import gold_perfect_labels

from .conftest import hit_response
from .test_import import MTURK_HEADER
from .test_publish import _expected_create


def _page_data(html: str) -> dict:
    """The constants the page's script builds its form from."""
    return {
        name: json.loads(re.search(rf"const {name} = (.*);", html).group(1))
        for name in ("CLIP_IDS", "VIDEO_URLS", "PROPOSALS")
    }


def _form_fields(data, ticks):
    """What the crowd-form collects from the page's inputs: per clip i a hidden input named CLIP_IDS[i] holding
    the JSON of its state (every proposal's audible/visible flag and the three meta questions), and the
    classSearch-i text inputs."""
    fields = {}
    for i, vid in enumerate(data["CLIP_IDS"]):
        state = {"background_music": False, "voice_over": False, "static_image": False}
        for cls in data["PROPOSALS"][i]:
            state[f"{cls} audible"] = state[f"{cls} visible"] = False
        state.update(ticks.get(vid, {}))
        fields[vid] = json.dumps(state)
        fields[f"classSearch-{i}"] = ""
    return fields


def test_html_mode_round_trip(dataset, batches, taxonomy, mturk_stub, tmp_path, monkeypatch):
    batch = batches[0]
    Clip.objects.filter(dataset=dataset).update(media_url="/srv/media/clip.mp4")  # served by avcrowd: signed URLs
    mturk_stub.add("CreateHIT", hit_response("HIT-H"), _expected_create(batch, request_token(batch, 1)))
    batches_publish(dataset, batches=[batch], reward=Decimal("1.00"), mode="html")
    question = MarketplaceCall.objects.get(operation="CreateHIT").request["Question"]
    html = ET.fromstring(question).find("{*}HTMLContent").text
    data = _page_data(html)
    items = list(batch.items.select_related("clip").order_by("position"))
    assert data["CLIP_IDS"] == [i.clip.video_id for i in items]
    assert 'd.querySelector("#ans-"+i).name = CLIP_IDS[i];' in html  # each clip's answer field is its clip id
    # the signed media URLs work for the lifetime (7 d) + assignment (1 h) + auto-approval delay (3 d), not longer
    token = urlparse(data["VIDEO_URLS"][0]).path.rstrip("/").rsplit("/", 1)[1]
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now + 10 * 24 * 3600)
    assert clip_from_media_token(token) == items[0].clip
    monkeypatch.setattr(time, "time", lambda: now + 10 * 24 * 3600 + 2 * 3600)
    assert clip_from_media_token(token) is None
    monkeypatch.undo()

    # the worker: the gold clip exactly right, the first regular clip's first proposal audible, voice over there
    gold = next(i for i in items if i.is_gold)
    regular = next(i for i in items if not i.is_gold)
    ticks = {
        gold.clip.video_id: {
            f"{lab['name']} {k}": lab[k]
            for lab in gold_perfect_labels(taxonomy, gold.clip.video_id)
            for k in (
                "audible",
                "visible",
            )
        },
        regular.clip.video_id: {f"{regular.proposals[0]} audible": True, "voice_over": True},
    }
    task_answers = json.dumps([_form_fields(data, ticks)])
    # MTurk's results CSV for this HIT: no Input.* columns (the HIT was created through the API), one Answer field
    row = {
        "HITId": "HIT-H",
        "HITTypeId": "TYPE1",
        "Title": "Label what you hear and see in short videos",
        "Reward": "$1.00",
        "MaxAssignments": "3",
        "RequesterAnnotation": str(batch.uuid),
        "AssignmentId": "ASG-1",
        "WorkerId": "W-HTML",
        "AssignmentStatus": "Submitted",
        "AcceptTime": "Mon Mar 04 10:00:00 PST 2024",
        "SubmitTime": "Mon Mar 04 10:09:00 PST 2024",
        "WorkTimeInSeconds": "540",
        "LifetimeApprovalRate": "0% (0/0)",
        "Answer.taskAnswers": task_answers,
    }
    header = [h for h in MTURK_HEADER if not h.startswith("Input.")]
    path = tmp_path / "Batch_results.csv"
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=header)
        w.writeheader()
        w.writerow({h: row.get(h, "") for h in header})
    n_clips = Clip.objects.count()
    report = mturk_results_import(dataset, [path])
    assert report.imported == 1 and report.clips_created == 0 and Clip.objects.count() == n_clips
    a = Assignment.objects.get(external_assignment_id="ASG-1")
    assert a.batch == batch and a.catch_f1 == 1.0 and a.status == "approved" and a.verified_at is not None
    got = ClipAnswer.objects.get(assignment=a, clip=regular.clip)
    assert got.voice_over is True and got.labels == [{"name": regular.proposals[0], "audible": True, "visible": False}]
    gold_answer = ClipAnswer.objects.get(assignment=a, clip=gold.clip)
    assert {lab["name"] for lab in gold_answer.labels} == {
        lab["name"] for lab in gold_perfect_labels(taxonomy, gold.clip.video_id)
    }
    assert Hit.objects.get(external_id="HIT-H").imported is False  # our own HIT, still synced
