import csv
import json
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from catalog.errors import ImportFailed, ValidationError
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
    # the ops dashboard's counters: each clip of the approved rows counts once, the rejected row not at all
    approved = ClipAnswer.objects.filter(assignment__status="approved", media_failed=False)
    for clip in Clip.objects.filter(dataset=dataset):
        assert clip.accepted_answers == approved.filter(clip=clip).count(), clip.video_id
    assert Clip.objects.get(dataset=dataset, video_id="--U7joUcTCo_000000").accepted_answers == 1


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


# --- MTurk's real batch-results layout -------------------------------------------------------------------------

MTURK_HEADER = [
    "HITId",
    "HITTypeId",
    "Title",
    "Description",
    "Keywords",
    "Reward",
    "CreationTime",
    "MaxAssignments",
    "RequesterAnnotation",
    "AssignmentDurationInSeconds",
    "AutoApprovalDelayInSeconds",
    "Expiration",
    "NumberOfSimilarHITs",
    "LifetimeInSeconds",
    "AssignmentId",
    "WorkerId",
    "AssignmentStatus",
    "AcceptTime",
    "SubmitTime",
    "AutoApprovalTime",
    "ApprovalTime",
    "RejectionTime",
    "RequesterFeedback",
    "WorkTimeInSeconds",
    "LifetimeApprovalRate",
    "Last30DaysApprovalRate",
    "Last7DaysApprovalRate",
    "Input.video_urls",
    "Input.proposal_lists",
    "Answer.taskAnswers",
    "Approve",
    "Reject",
]


def mturk_row(hit, aid, worker, urls, props, task, *, status="Approved", submit="Mon Mar 04 10:12:00 PST 2024", **kw):
    return {
        "HITId": hit,
        "HITTypeId": "3T",
        "Title": "Label sounds",
        "Reward": "$1.50",
        "CreationTime": "Mon Mar 04 09:00:00 PST 2024",
        "MaxAssignments": "5",
        "RequesterAnnotation": "BatchId:4623817;OriginalHitTemplateId:928390909;",
        "AssignmentDurationInSeconds": "3600",
        "AutoApprovalDelayInSeconds": "259200",
        "Expiration": "Mon Mar 11 09:00:00 PDT 2024",
        "NumberOfSimilarHITs": "",
        "LifetimeInSeconds": "",
        "AssignmentId": aid,
        "WorkerId": worker,
        "AssignmentStatus": status,
        "AcceptTime": "Mon Mar 04 10:00:00 PST 2024",
        "SubmitTime": submit,
        "WorkTimeInSeconds": "720",
        "LifetimeApprovalRate": "100% (12/12)",
        "Last30DaysApprovalRate": "100% (12/12)",
        "Last7DaysApprovalRate": "100% (12/12)",
        "Input.video_urls": repr(urls),
        "Input.proposal_lists": repr(props),
        "Answer.taskAnswers": task,
        **kw,
    }


def _ticks(taxonomy, i, audible=True, visible=False):
    return {"background_music": False, "voice_over": False, "static_image": False} | {
        f"{taxonomy[i]} audible": audible,
        f"{taxonomy[i]} visible": visible,
    }


def test_max_assignments_and_status_come_from_the_file_and_imported_batches_are_never_published(
    dataset, batches, taxonomy, tmp_path, mturk_stub, settings
):
    from crowd.models import Hit
    from crowd.services.publish import batches_publish, publish_plan

    urls = [URL.format("clipA_000001"), URL.format("clipB_000002")]
    props = [[taxonomy[0]], [taxonomy[1]]]
    rows = [
        mturk_row("H-FULL", f"AF{i}", f"W{i}", urls, props, answer(urls, {urls[0]: _ticks(taxonomy, 0)}))
        for i in range(5)
    ] + [mturk_row("H-SHORT", "AS1", "W1", urls[:1], props[:1], answer(urls[:1], {}))]
    path = write(tmp_path / "Batch_4623817_batch_results.csv", rows, header=MTURK_HEADER)
    report = mturk_results_import(dataset, [path])
    assert report.imported == 6 and report.errors == []
    full, short = Hit.objects.get(external_id="H-FULL"), Hit.objects.get(external_id="H-SHORT")
    assert (full.max_assignments, full.target_assignments, full.status) == (5, 5, "completed")
    assert (short.max_assignments, short.status) == (5, "expired")
    assert full.imported and full.batch.status == "closed" and short.batch.status == "closed"
    # publishing after the import posts nothing for them, on any backend or environment (the stub has no responses)
    for backend, sandbox in (("mturk", True), ("mturk", False), ("prolific", True)):
        plan = publish_plan(dataset, backend=backend, sandbox=sandbox, reward=Decimal("5.00"))
        assert {p.batch.pk for p in plan.hits} == {b.pk for b in batches}
    with pytest.raises(ValidationError) as err:
        batches_publish(dataset, batches=[full.batch], reward=Decimal("1.00"), sandbox=True)
    assert "imported from a results file (HIT H-FULL)" in "\n".join(err.value.details)
    assert Hit.objects.filter(imported=False).count() == 0


def test_one_vote_per_worker_and_clip_the_later_submission_counts(dataset, taxonomy, tmp_path):
    """Worker WA labelled clip X in two HITs: both answers are kept, the earlier one is flagged, and every merge
    sees WA once on X (with the later ticks)."""
    from labels.services.load import votes_load

    x, y, z = (URL.format(v) for v in ("clipX_000001", "clipY_000002", "clipZ_000003"))
    rows = [
        mturk_row(
            "H1",
            "A-early",
            "WA",
            [x, y],
            [[taxonomy[0]], [taxonomy[1]]],
            answer([x, y], {x: _ticks(taxonomy, 0)}),
            submit="Mon Mar 04 10:12:00 PST 2024",
        ),
        mturk_row(
            "H2",
            "A-late",
            "WA",
            [x, z],
            [[taxonomy[0]], [taxonomy[2]]],
            answer([x, z], {x: _ticks(taxonomy, 0, audible=False, visible=True)}),
            submit="Tue Mar 05 10:12:00 PST 2024",
        ),
        mturk_row("H2", "A-other", "WB", [x, z], [[taxonomy[0]], [taxonomy[2]]], answer([x, z], {})),
    ]
    report = mturk_results_import(dataset, [write(tmp_path / "r.csv", rows, header=MTURK_HEADER)])
    assert report.imported == 3 and report.superseded == 1
    assert any("A-late counts, A-early superseded" in line for line in report.lines())
    early = ClipAnswer.objects.get(assignment__external_assignment_id="A-early", clip__video_id="clipX_000001")
    late = ClipAnswer.objects.get(assignment__external_assignment_id="A-late", clip__video_id="clipX_000001")
    assert early.superseded and not late.superseded
    loaded = votes_load(dataset)
    assert loaded.counts["duplicate_votes_dropped"] == 1
    v = loaded.votes
    cx = loaded.clip_ids.index("clipX_000001")
    assert (v.ann_clip == cx).sum() == 2  # WA once, WB once
    wa = next(i for i, k in enumerate(loaded.annotator_keys) if k == ("worker", early.assignment.worker_id))
    ann = [a for a in range(len(v.ann_clip)) if v.ann_clip[a] == cx and v.ann_worker[a] == wa]
    ticks = [(bool(au), bool(vi)) for t, au, vi in zip(v.tick_ann, v.tick_audible, v.tick_visible) if t == ann[0]]
    assert ticks == [(False, True)]  # the later submission's ticks
    # re-importing (in any order) flags nothing more
    assert mturk_results_import(dataset, [tmp_path / "r.csv"]).superseded == 0


def test_gold_imported_after_the_results_marks_catch_trials_and_rescores_without_deciding(
    make_dataset, taxonomy, tmp_path, capsys
):
    from crowd.models import BatchItem

    ds = make_dataset(name="late-gold", n_regular=0, n_gold=0)
    urls = [URL.format("goldclip_000001"), URL.format("plain_000002")]
    props = [[taxonomy[100]], [taxonomy[3]]]
    right = answer(urls, {urls[0]: _ticks(taxonomy, 100, audible=True, visible=True)})
    rows = [
        mturk_row("HG", "A-right", "WR", urls, props, right, status="Submitted"),
        mturk_row("HG", "A-wrong", "WW", urls, props, answer(urls, {}), status="Submitted"),
        mturk_row("HG", "A-done", "WD", urls, props, answer(urls, {}), status="Approved"),
    ]
    mturk_results_import(ds, [write(tmp_path / "r.csv", rows, header=MTURK_HEADER)])
    before = {a.external_assignment_id: (a.status, a.catch_f1) for a in Assignment.objects.all()}
    assert before == {"A-right": ("submitted", None), "A-wrong": ("submitted", None), "A-done": ("approved", None)}
    gold = tmp_path / "gold.csv"
    gold.write_text(f"id,label,original,modality\ngoldclip_000001,{taxonomy[100]},True,AV\n")
    # dry run: lists the catch trial and the new scores, writes nothing
    call_command("import_gold", str(gold), "--dataset", ds.name, "--dry-run")
    out = capsys.readouterr().out
    assert "would import 1 gold label rows" in out and "catch trial: clip goldclip_000001" in out
    assert "A-right (worker WR): F1 - -> 1.000" in out and "A-wrong (worker WW): F1 - -> 0.000" in out
    assert {a.external_assignment_id: (a.status, a.catch_f1) for a in Assignment.objects.all()} == before
    assert not BatchItem.objects.filter(is_gold=True).exists()
    # for real: scores only, no approve/reject (a marketplace decision) unless asked
    call_command("import_gold", str(gold), "--dataset", ds.name)
    assert "no approve/reject decision was taken" in capsys.readouterr().out
    after = {a.external_assignment_id: (a.status, a.catch_f1) for a in Assignment.objects.all()}
    assert after == {"A-right": ("submitted", 1.0), "A-wrong": ("submitted", 0.0), "A-done": ("approved", 0.0)}
    assert BatchItem.objects.get(clip__video_id="goldclip_000001").is_gold
    call_command("rescore_catch_trials", "--dataset", ds.name, "--decide")
    decided = {a.external_assignment_id: a.status for a in Assignment.objects.all()}
    assert decided == {"A-right": "approved", "A-wrong": "rejected", "A-done": "approved"}


def test_import_clips_skip_existing(dataset, tmp_path, capsys):
    from catalog.models import Clip

    csv_path = tmp_path / "clips.csv"
    csv_path.write_text(
        "video_id,url\nr000,https://cdn.example.org/clips/r000.mp4\nnew_1,https://cdn.example.org/n.mp4\n"
    )
    with pytest.raises(CommandError, match="already in dataset"):
        call_command("import_clips", str(csv_path), "--dataset", dataset.name)
    assert not Clip.objects.filter(video_id="new_1").exists()
    call_command("import_clips", str(csv_path), "--dataset", dataset.name, "--skip-existing")
    out = capsys.readouterr().out
    assert "imported 1 clips" in out and "1 already there, left as they are" in out
    assert Clip.objects.filter(dataset=dataset, video_id="new_1").count() == 1


def test_avcrowds_own_results_csv_creates_no_junk_clips(dataset, batches, taxonomy, tmp_path):
    """The requester-UI route: export_mturk_input -> MTurk -> results CSV. Clips served by avcrowd have signed
    media URLs; the rows are matched to our batch by Input.batch_id, and rows without it are refused, not turned
    into clips named after URL tokens."""
    from catalog.models import Clip

    Clip.objects.filter(dataset=dataset).update(media_url="/srv/media/local.mp4")  # served here: signed URLs
    inp = tmp_path / "input.csv"
    call_command("export_mturk_input", "--dataset", dataset.name, "--out", str(inp))
    row = next(csv.DictReader(open(inp)))
    urls = __import__("ast").literal_eval(row["video_urls"])
    ids = __import__("ast").literal_eval(row["clip_ids"])
    assert all("/media/clip/" in u for u in urls)
    batch = next(b for b in batches if str(b.uuid) == row["batch_id"])
    gold_vid = next(i.clip.video_id for i in batch.items.all() if i.is_gold)
    from tests.crowd_helpers import gold_perfect_labels

    task = {vid: json.dumps({"background_music": False, "voice_over": False, "static_image": False}) for vid in ids}
    task[gold_vid] = json.dumps(
        {"background_music": False, "voice_over": True, "static_image": False}
        | {
            f"{lab['name']} {k}": lab[k]
            for lab in gold_perfect_labels(taxonomy, gold_vid)
            for k in ("audible", "visible")
        }
    )
    header = (
        MTURK_HEADER[:-5]
        + ["Input.batch_id", "Input.clip_ids", "Input.video_urls", "Input.proposal_lists"]
        + MTURK_HEADER[-3:]
    )
    good = mturk_row("HR", "A-ours", "WO", urls, [[]] * len(urls), json.dumps([task]), status="Submitted")
    good |= {
        "Input.batch_id": row["batch_id"],
        "Input.clip_ids": row["clip_ids"],
        "Input.proposal_lists": row["proposal_lists"],
    }
    stray = mturk_row("HS", "A-stray", "WS", urls, [[]] * len(urls), json.dumps([task]))
    n_clips = Clip.objects.count()
    report = mturk_results_import(dataset, [write(tmp_path / "r.csv", [good, stray], header=header)])
    assert report.imported == 1 and report.clips_created == 0 and Clip.objects.count() == n_clips
    assert "A-stray" in report.errors[0] and "signed media URL" in report.errors[0]
    a = Assignment.objects.get(external_assignment_id="A-ours")
    assert a.batch == batch and a.catch_f1 == 1.0 and a.status == "approved"
    assert ClipAnswer.objects.get(assignment=a, clip__video_id=gold_vid).voice_over is True


def test_clip_ids_from_urls_follow_the_clip_id_rule(dataset, taxonomy, tmp_path):
    from catalog.models import Clip

    evil = "https://cdn.example.org/=SUM(1+1)*cmd|' /C calc'!A0.mp4"
    rows = [mturk_row("HE", "A-evil", "WE", [evil], [[taxonomy[0]]], answer([evil], {}))]
    report = mturk_results_import(dataset, [write(tmp_path / "r.csv", rows, header=MTURK_HEADER)])
    assert report.imported == 0 and "clip-id rule" in report.errors[0]
    assert not Clip.objects.filter(video_id__startswith="=").exists()
