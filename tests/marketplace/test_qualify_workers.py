"""Worker quality beyond gold: the catch-F1 trend and agreement with the merged labels on /ops/, and qualifying the
good workers on MTurk (botocore's Stubber checks every call against the MTurk service model)."""

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from catalog.models import Clip, Dataset, GoldLabel, TaxonomyClass
from crowd.marketplace import mturk
from crowd.models import Assignment, Batch, BatchItem, ClipAnswer, MarketplaceQualification, Worker
from labels.core.votes import MOD_A, MOD_V, Votes
from labels.core.workers import agreement_with_merged, catch_trend
from labels.services.create import release_create
from tests.marketplace.test_prolific import prolific_server  # noqa: F401  (the fake Prolific API fixture)


def test_catch_trend_and_agreement_by_hand():
    t = catch_trend([0.2, 0.4, 0.6, 0.8])
    assert t["n"] == 4 and t["slope"] == pytest.approx(0.2) and t["first"] == pytest.approx(0.5)
    assert catch_trend([0.5])["slope"] is None and catch_trend([])["mean"] is None
    votes, _ = Votes.from_records(
        ["c0", "c1"],
        ["dog", "cat", "rain"],
        [
            {"clip": "c0", "worker": "w", "labels": [("dog", True, True), ("cat", True, False)]},
            {"clip": "c1", "worker": "w", "labels": [("rain", True, False)]},
            {"clip": "c0", "worker": "u", "labels": []},
        ],
    )
    merged = {0: {0: MOD_A | MOD_V}, 1: {2: MOD_V}}
    out = agreement_with_merged(votes, merged)
    # w: dog A+V right (2 tp), cat A wrong (fp), rain A wrong (fp), rain V missed (fn) -> 4 / 7
    assert out[0] == {
        "clips": 2,
        "f1": pytest.approx(4 / 7, abs=1e-4),
        "precision": 0.5,
        "recall": pytest.approx(2 / 3, abs=1e-4),
    }
    assert out[1]["f1"] == 0.0 and out[1]["clips"] == 1
    assert agreement_with_merged(votes, merged, clips=[1])[0]["clips"] == 1


QUALIFY = ("--min-f1", "0.6", "--min-assignments", "1")


def _answer(ds, worker, clip, labels, f1, when):
    batch = Batch.objects.create(dataset=ds)
    BatchItem.objects.create(
        batch=batch, clip=clip, position=0, is_gold=clip.is_gold, proposals=[n for n, *_ in labels]
    )
    a = Assignment.objects.create(
        batch=batch,
        worker=worker,
        backend=worker.backend,
        status=Assignment.APPROVED,
        catch_f1=f1,
        submitted_at=when,
        verified_at=when,  # the marketplace confirmed it (a sync saw it)
    )
    ClipAnswer.objects.create(
        assignment=a, clip=clip, played=True, labels=[{"name": n, "audible": au, "visible": vi} for n, au, vi in labels]
    )


@pytest.fixture
def crowd_world(taxonomy):
    import datetime as dt

    ds = Dataset.objects.create(name="wq", annotations_per_clip=2)
    gold = Clip.objects.create(dataset=ds, video_id="g", is_gold=True)
    GoldLabel.objects.create(clip=gold, cls=TaxonomyClass.objects.get(name="dog barking"), modality="AV")
    clips = [Clip.objects.create(dataset=ds, video_id=f"c{i}") for i in range(3)]
    good = [Worker.objects.create(backend="mturk", external_id=f"GOOD{i}") for i in range(2)]
    bad = Worker.objects.create(backend="mturk", external_id="BAD")
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    for i, w in enumerate(good):
        _answer(ds, w, gold, [("dog barking", True, True)], 1.0, t0 + dt.timedelta(hours=i))
        for j, c in enumerate(clips):
            _answer(ds, w, c, [("cat meowing", True, False)], None, t0 + dt.timedelta(hours=10 + j))
    # the bad worker improves over time (0.0 then 0.5) but answers the clips wrongly
    _answer(ds, bad, gold, [("playing piano", True, True)], 0.0, t0 + dt.timedelta(hours=3))
    for c in clips:
        _answer(ds, bad, c, [("playing piano", False, True)], 0.5, t0 + dt.timedelta(hours=20))
    release_create(ds, "v1", params={"k": 2})
    return ds


def test_worker_quality_page_shows_trend_and_agreement(crowd_world, client):
    admin = get_user_model().objects.create_user("boss", password="x", is_staff=True)
    client.force_login(admin)
    page = client.get(f"/ops/{crowd_world.name}/worker-quality/").content.decode()
    assert "Worker quality" in page and "release <a" in page
    rows = {
        line.split("</a>")[0].rsplit(">", 1)[-1]: line.replace("\n", "")
        for line in page.split("<tr>")
        if "?worker=" in line
    }
    assert set(rows) == {"GOOD0", "GOOD1", "BAD"}
    # the good workers agree with the merged labels (cat meowing A on every clip), the bad one not at all
    assert "<td>1.0</td><td>3</td>" in rows["GOOD0"] and "<td>0.0</td><td>3</td>" in rows["BAD"]
    # the bad worker's catch F1 went up: 0.0, then 0.5 three times
    assert 'aria-label="catch F1 0.0, 0.5, 0.5, 0.5"' in rows["BAD"]
    assert f'href="/ops/{crowd_world.name}/worker-quality/"' in client.get(f"/ops/{crowd_world.name}/").content.decode()


def test_qualify_workers_grants_the_mturk_qualification_once_created(crowd_world, mturk_stub):
    mturk_stub.add(
        "CreateQualificationType",
        {"QualificationType": {"QualificationTypeId": "QUAL1", "Name": "avcrowd: qualified annotator"}},
        {
            "Name": "avcrowd: qualified annotator",
            "Keywords": "avcrowd",
            "Description": "Given to workers whose video labels agreed well with our check clips (catch-trial F1).",
            "QualificationTypeStatus": "Active",
        },
    )
    for w in ("GOOD0", "GOOD1"):
        mturk_stub.add(
            "AssociateQualificationWithWorker",
            {},
            {"QualificationTypeId": "QUAL1", "WorkerId": w, "IntegerValue": 100, "SendNotification": False},
        )
    out = io.StringIO()
    call_command(
        "qualify_workers", "--dataset", crowd_world.name, "--min-f1", "0.6", "--min-assignments", "1", stdout=out
    )
    assert "wq: qualified 2 of 3 workers on mturk (QUAL1)" in out.getvalue()
    assert MarketplaceQualification.objects.get(purpose="qualified").qualification_type_id == "QUAL1"
    # the second time the type is reused (no CreateQualificationType), values refreshed
    mturk_stub.add(
        "AssociateQualificationWithWorker",
        {},
        {"QualificationTypeId": "QUAL1", "WorkerId": "GOOD0", "IntegerValue": 100, "SendNotification": False},
    )
    Worker.objects.filter(external_id="GOOD1").update(is_blocked=True)  # blocked workers are never qualified
    call_command(
        "qualify_workers", "--dataset", crowd_world.name, "--min-f1", "0.6", "--min-assignments", "1", stdout=out
    )
    assert "qualified 1 of 3 workers" in out.getvalue()
    # later HITs can require it (settings MTURK_HIT["qualifications"]), in the shape MTurk's model takes
    policy = mturk.QualificationPolicy(required_qualification_id="QUAL1", required_min=60, locales=())
    reqs = mturk.qualification_requirements(policy, sandbox=True)
    assert reqs[-1] == {
        "QualificationTypeId": "QUAL1",
        "Comparator": "GreaterThanOrEqualTo",
        "IntegerValues": [60],
        "ActionsGuarded": "DiscoverPreviewAndAccept",
    }


def test_qualify_workers_dry_run_and_bad_input_send_nothing(crowd_world, mturk_stub, settings):
    out = io.StringIO()
    call_command(
        "qualify_workers",
        "--dataset",
        crowd_world.name,
        "--min-f1",
        "0.6",
        "--min-assignments",
        "1",
        "--dry-run",
        stdout=out,
    )
    assert "would qualify 2 of 3 workers" in out.getvalue() and "GOOD0" in out.getvalue()
    with pytest.raises(CommandError, match="min F1 must be between 0 and 1"):
        call_command("qualify_workers", "--dataset", crowd_world.name, "--min-f1", "60", stdout=out)
    Worker.objects.update(backend="prolific")
    settings.PROLIFIC_WORKSPACE_ID = ""
    settings.PROLIFIC_API_TOKEN = "token"
    with pytest.raises(CommandError, match="PROLIFIC_WORKSPACE_ID"):
        call_command(
            "qualify_workers",
            "--dataset",
            crowd_world.name,
            "--min-f1",
            "0.6",
            "--min-assignments",
            "1",
            "--backend",
            "prolific",
            stdout=out,
        )
    assert not MarketplaceQualification.objects.exists()


def test_qualify_workers_adds_prolific_participants_to_the_allow_list(crowd_world, prolific_server, settings):  # noqa: F811
    # a fake Prolific API over HTTP (tests/marketplace/test_prolific.py), checking each request's shape
    Worker.objects.update(backend="prolific")
    settings.PROLIFIC_WORKSPACE_ID = "WS1"
    out = io.StringIO()
    call_command("qualify_workers", "--dataset", crowd_world.name, *QUALIFY, "--backend", "prolific", stdout=out)
    assert "wq: qualified 2 of 3 workers on prolific (GROUP1)" in out.getvalue()
    assert prolific_server.groups == {"GROUP1": {"GOOD0", "GOOD1"}}
    # the group is created once and reused
    call_command("qualify_workers", "--dataset", crowd_world.name, *QUALIFY, "--backend", "prolific", stdout=out)
    assert set(prolific_server.groups) == {"GROUP1"}
    assert MarketplaceQualification.objects.get(purpose="prolific-qualified").qualification_type_id == "GROUP1"
