import csv
import json

import pytest
from django.core.management import CommandError, call_command

from catalog.errors import ImportFailed
from catalog.models import Clip
from crowd.models import Assignment, Batch, ClipAnswer, Worker
from crowd.services.mturk_import import mturk_results_import

HEADER = [
    "HITId",
    "HITTypeId",
    "Reward",
    "AssignmentId",
    "WorkerId",
    "AssignmentStatus",
    "AcceptTime",
    "SubmitTime",
    "WorkTimeInSeconds",
    "Input.video_urls",
    "Input.proposal_lists",
    "Answer.taskAnswers",
]
URL = "https://cdn.example.org/vggsound/{}.mp4"


def answer(urls, per_clip, extra=None):
    obj = {
        url: per_clip.get(url, {"background_music": False, "voice_over": False, "static_image": False}) for url in urls
    }
    obj.update(extra or {})
    return json.dumps([obj])


def write(path, rows, header=HEADER):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for r in rows:
            w.writerow([r.get(h, "") for h in header])
    return path


@pytest.fixture
def results_csv(tmp_path, dataset, taxonomy):
    """Two HITs: the first with a gold clip of the dataset (g000) and two unknown clips; one row is broken."""
    urls1 = [URL.format("--U7joUcTCo_000000"), URL.format("g000"), URL.format("0AbCdEfGhIj_000030")]
    props1 = [[taxonomy[0], taxonomy[1]], [taxonomy[100], taxonomy[200]], [taxonomy[5], "not a class"]]
    gold_right = {
        "background_music": False,
        "voice_over": True,
        "static_image": False,
        f"{taxonomy[100]} audible": True,
        f"{taxonomy[100]} visible": True,
        f"{taxonomy[200]} audible": True,
        f"{taxonomy[200]} visible": False,
    }
    first = {
        "background_music": True,
        "voice_over": False,
        "static_image": False,
        f"{taxonomy[0]} audible": True,
        f"{taxonomy[0]} visible": True,
        f"{taxonomy[1]} audible": False,
        f"{taxonomy[1]} visible": False,
        "dragon roaring audible": True,
    }
    third = {
        "background_music": False,
        "voice_over": False,
        "static_image": True,
        "dragon roaring visible": True,
        f"{taxonomy[5]} visible": True,
    }
    base = {
        "HITId": "H1",
        "HITTypeId": "T",
        "Reward": "$1.50",
        "AcceptTime": "Mon Mar 04 10:00:00 PST 2024",
        "SubmitTime": "Mon Mar 04 10:12:00 PST 2024",
        "WorkTimeInSeconds": "720",
        "Input.video_urls": repr(urls1),
        "Input.proposal_lists": repr(props1),
    }
    rows = [
        {
            **base,
            "AssignmentId": "AS1",
            "WorkerId": "WA",
            "AssignmentStatus": "Approved",
            "Answer.taskAnswers": answer(
                urls1,
                {urls1[0]: first, urls1[1]: gold_right, urls1[2]: third},
                {"classSearch-0": "thunder", "classSearch-2": ""},
            ),
        },
        {
            **base,
            "AssignmentId": "AS2",
            "WorkerId": "WB",
            "AssignmentStatus": "Submitted",
            "Answer.taskAnswers": answer(urls1, {}),
        },  # nothing ticked: F1 0 on the gold clip
        {
            **base,
            "AssignmentId": "AS3",
            "WorkerId": "WC",
            "AssignmentStatus": "Approved",
            "Answer.taskAnswers": '[{"broken": ',
        },
    ]
    urls2 = [URL.format("zzz_000010")]
    rows.append(
        {
            **base,
            "HITId": "H2",
            "AssignmentId": "AS4",
            "WorkerId": "WA",
            "AssignmentStatus": "Rejected",
            "Input.video_urls": repr(urls2),
            "Input.proposal_lists": repr([[taxonomy[7]]]),
            "Answer.taskAnswers": answer(urls2, {}),
        }
    )
    return write(tmp_path / "Batch_123_batch_results.csv", rows)


def test_import_creates_clips_batches_answers_and_scores(dataset, taxonomy, results_csv):
    report = mturk_results_import(dataset, [results_csv])
    assert (report.rows, report.imported, report.clips_created, report.batches_created) == (4, 3, 3, 2)
    assert len(report.errors) == 1 and "AssignmentId AS3" in report.errors[0] and ":4:" in report.errors[0]
    assert report.unknown_classes == {"dragon roaring": 2, "not a class": 1}  # proposals: once per HIT
    assert Clip.objects.filter(
        dataset=dataset, video_id="--U7joUcTCo_000000", media_url=URL.format("--U7joUcTCo_000000")
    ).exists()
    a1 = Assignment.objects.get(external_assignment_id="AS1")
    assert a1.status == "approved" and a1.catch_f1 == 1.0 and a1.work_seconds == 720
    first = ClipAnswer.objects.get(assignment=a1, clip__video_id="--U7joUcTCo_000000")
    assert first.background_music is True and first.comment == "thunder"
    assert first.labels == [{"name": taxonomy[0], "audible": True, "visible": True}]
    third = ClipAnswer.objects.get(assignment=a1, clip__video_id="0AbCdEfGhIj_000030")
    assert third.static_image is True and third.labels == [{"name": taxonomy[5], "audible": False, "visible": True}]
    # scored like live work: the Submitted row with nothing right on the gold clip is rejected by the policy
    a2 = Assignment.objects.get(external_assignment_id="AS2")
    assert a2.catch_f1 == 0.0 and a2.status == "rejected"
    assert Worker.objects.get(external_id="WA").n_scored == 1
    batch = Batch.objects.get(hits__external_id="H1")
    assert [i.proposals for i in batch.items.order_by("position")][2] == [taxonomy[5]]
    assert batch.items.get(clip__video_id="g000").is_gold


def test_imported_work_blocks_a_worker_below_the_floor_like_live_work(make_dataset, taxonomy, results_csv):
    ds = make_dataset(name="strict", block_after=1, block_floor=0.5)
    mturk_results_import(ds, [results_csv])
    # WB's only (Submitted) assignment scored F1 0 on the gold clip: after 1 assignment below 0.5 -> blocked
    wb = Worker.objects.get(external_id="WB")
    assert wb.n_scored == 1 and wb.is_blocked and wb.blocked_reason
    assert not Worker.objects.get(external_id="WA").is_blocked


def test_reimport_changes_nothing(dataset, taxonomy, results_csv):
    mturk_results_import(dataset, [results_csv])
    counts = (Assignment.objects.count(), ClipAnswer.objects.count(), Clip.objects.count(), Batch.objects.count())
    report = mturk_results_import(dataset, [results_csv])
    assert report.imported == 0 and report.already_imported == 3
    assert (
        Assignment.objects.count(),
        ClipAnswer.objects.count(),
        Clip.objects.count(),
        Batch.objects.count(),
    ) == counts


def test_missing_columns_are_named_and_nothing_imported(dataset, taxonomy, tmp_path):
    path = write(tmp_path / "bad.csv", [{"HITId": "H"}], header=["HITId", "AssignmentId", "WorkerId"])
    with pytest.raises(ImportFailed) as err:
        mturk_results_import(dataset, [path])
    text = err.value.as_text()
    for col in ("AssignmentStatus", "Input.video_urls", "Input.proposal_lists", "Answer.taskAnswers"):
        assert col in text
    assert Assignment.objects.count() == 0


def test_command_prints_report(dataset, taxonomy, results_csv, capsys):
    call_command("import_mturk_results", str(results_csv), "--dataset", dataset.name)
    out = capsys.readouterr().out
    assert "3 assignment(s) imported" in out and "AssignmentId AS3" in out and "'dragon roaring': 2" in out
    with pytest.raises(CommandError, match="no such file"):
        call_command("import_mturk_results", "/nonexistent.csv", "--dataset", dataset.name)


def test_export_input_csv_round_trips_through_the_importer(dataset, batches, taxonomy, tmp_path):
    """The exported batch-input CSV, answered and downloaded, comes back in through the importer."""
    import ast

    out = tmp_path / "input.csv"
    tpl = tmp_path / "template.html"
    call_command("export_mturk_input", "--dataset", dataset.name, "--out", str(out), "--template", str(tpl))
    rows = list(csv.DictReader(open(out)))
    assert len(rows) == len(batches)
    urls = ast.literal_eval(rows[0]["video_urls"])
    props = ast.literal_eval(rows[0]["proposal_lists"])
    items = list(batches[0].items.select_related("clip").order_by("position"))
    assert urls == [i.clip.media_url for i in items] and props == [i.proposals for i in items]
    assert "${video_urls}" in tpl.read_text() and "<crowd-form>" in tpl.read_text()
    result = tmp_path / "results.csv"
    write(
        result,
        [
            {
                "HITId": "HX",
                "AssignmentId": "AX",
                "WorkerId": "WX",
                "AssignmentStatus": "Submitted",
                "Input.video_urls": rows[0]["video_urls"],
                "Input.proposal_lists": rows[0]["proposal_lists"],
                "Answer.taskAnswers": answer(urls, {}),
            }
        ],
    )
    report = mturk_results_import(dataset, [result])
    assert report.imported == 1 and report.clips_created == 0
