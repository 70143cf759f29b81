"""Releases against the database: create (merge + closure + override), immutability, diff, import/export."""

import io
from importlib import resources
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from catalog.errors import ImportFailed, ValidationError
from catalog.models import Clip, Dataset
from crowd.models import Batch, BatchItem, ClipAnswer, ExpertAnnotation, Worker
from labels.models import ImmutableReleaseError, Release, ReleaseLabel
from labels.services.create import release_create, release_requeue_needs_annotation
from labels.services.diff import release_diff
from labels.services.export import export_chunks, release_to_dataframe
from labels.services.imports import release_import
from tests.releases.conftest import _answer

DATA = Path(str(resources.files("vggsounder") / "data"))
pytestmark = pytest.mark.django_db


def test_release_merges_top_k_closes_over_relations_and_overrides_gold(crowd):
    ds, clips, _w = crowd
    release = release_create(ds, "v1")
    df = release_to_dataframe(release)
    rows = [tuple(r) for r in df.itertuples(index=False)]
    assert rows == [
        ("a_clip", "cattle mooing", "A", True, False, False),
        ("a_clip", "cow lowing", "A", True, False, False),
        ("b_clip", "dog barking", "V", False, False, False),
        ("b_clip", "dog bow-wow", "V", False, False, False),
        ("g_clip", "playing violin, fiddle", "AV", False, False, False),
    ]
    origins = dict(ReleaseLabel.objects.filter(release=release).values_list("name", "origin"))
    assert origins["cow lowing"] == "human" and origins["cattle mooing"] == "auto"
    assert origins["playing violin, fiddle"] == "override"
    assert ReleaseLabel.objects.get(release=release, name="cattle mooing").origin_source == "cow lowing"
    s = release.stats
    assert s["clips"] == 3 and s["labels"] == 5 and s["needs_annotation"] == 1
    assert s["needs_annotation_sample"] == ["c_clip"] and "needs_annotation_ids" not in s
    assert s["modality_counts"] == {"A": 2, "V": 2, "AV": 1}
    assert s["meta_counts"]["background_music"] == 1
    assert release.source_counts["crowd_annotations"] == 12  # the rejected answer is not loaded
    assert release.source_counts["annotations_used"] == 9


def test_an_answer_reporting_the_clip_as_not_playing_is_not_a_vote(crowd):
    """b_clip has three approved answers; when one of them only says "the clip does not play", it is not an
    empty vote: the clip has two real answers of the three it needs, so it goes back to the queue."""
    ds, clips, w = crowd
    ClipAnswer.objects.filter(clip=clips["b_clip"], assignment__worker=w[1]).update(
        labels=[], background_music=None, voice_over=None, static_image=None, played=False, media_failed=True
    )
    rel = release_create(ds, "with-report")
    assert "b_clip" in rel.stats["needs_annotation_sample"]
    assert not ReleaseLabel.objects.filter(release=rel, release_clip__clip=clips["b_clip"]).exists()
    ClipAnswer.objects.filter(clip=clips["b_clip"], assignment__worker=w[1]).update(media_failed=False)
    rel = release_create(ds, "report-taken-back")
    assert "b_clip" not in rel.stats["needs_annotation_sample"]
    assert ReleaseLabel.objects.filter(
        release=rel, release_clip__clip=clips["b_clip"], name="dog barking", modality="V"
    ).exists()


def test_release_is_immutable_and_names_are_unique(crowd):
    ds, _clips, _w = crowd
    release = release_create(ds, "v1")
    release.method = "weighted"
    with pytest.raises(ImmutableReleaseError):
        release.save()
    label = ReleaseLabel.objects.filter(release=release).first()
    label.modality = "AV"
    with pytest.raises(ImmutableReleaseError):
        label.save()
    with pytest.raises(ValidationError, match="already has a release named 'v1'"):
        release_create(ds, "v1")


def test_release_over_dataset_without_approved_annotations_says_so(taxonomy):
    ds = Dataset.objects.create(name="empty")
    Clip.objects.create(dataset=ds, video_id="x")
    with pytest.raises(ValidationError, match="no approved annotations"):
        release_create(ds, "v1")
    with pytest.raises(CommandError, match="no approved annotations"):
        call_command("release_create", "--dataset", "empty", "--name", "v1", stdout=io.StringIO())


def test_experts_take_part_as_annotators(crowd):
    ds, clips, w = crowd
    user_model = get_user_model()
    # b_clip with k=3: two experts say dog barking AV; they rank by their gold F1 (none here -> last)
    for i in range(2):
        ExpertAnnotation.objects.create(
            clip=clips["c_clip"],
            user=user_model.objects.create(username=f"e{i}"),
            labels=[{"name": "raining", "audible": True, "visible": True}],
        )
    release = release_create(ds, "v2")
    # c_clip now has 2 crowd + 2 expert annotations -> merged: raining A (3 of 3 kept say audible; visible 1/3)
    labels = dict(
        ReleaseLabel.objects.filter(release=release, release_clip__video_id="c_clip").values_list("name", "modality")
    )
    assert labels == {"raining": "A"}
    assert release.source_counts["expert_annotations"] == 2 and release.stats["needs_annotation"] == 0


def test_diff_lists_added_removed_modality_and_meta_changes(crowd):
    ds, clips, w = crowd
    v1 = release_create(ds, "v1")
    # a fourth, better worker turns b_clip's dog into AV, and a_clip's music flips
    better = Worker.objects.create(backend="simulated", external_id="best", mean_catch_f1=0.95)
    _answer(ds, better, clips["b_clip"], [("dog barking", True, True)])
    _answer(ds, better, clips["c_clip"], [("raining", True, False)])
    v2 = release_create(ds, "v2")
    d = release_diff(v1, v2)
    assert d["clips"]["b_clip"]["modality_changed"] == [("dog barking", "V", "AV"), ("dog bow-wow", "V", "AV")]
    assert d["clips"]["c_clip"]["only_in"] == "b"
    assert d["totals"]["clips_only_in_b"] == 1 and d["totals"]["modality_changed"] == 2
    out = io.StringIO()
    call_command("release_diff", "v1", "v2", "--dataset", "rel", stdout=out)
    assert "~dog barking V->AV" in out.getvalue()


def test_import_refuses_bad_rows_with_line_numbers_and_stores_nothing(taxonomy, tmp_path):
    ds = Dataset.objects.create(name="imp")
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "video_id,label,modality,background_music,static_image,voice_over\n"
        "x,dog barking,A,False,False,False\n"
        "x,no such class,A,False,False,False\n"
        "x,cat meowing,AX,False,False,False\n"
        "x,cat meowing,A,True,False,False\n"
        "x,dog barking,V,False,False,False\n"
        "y,dog barking,A,maybe,False,False\n"
    )
    with pytest.raises(ImportFailed) as exc:
        release_import(ds, "bad", bad)
    details = "\n".join(exc.value.details)
    assert "bad.csv:3: field 'label' names unknown class 'no such class'" in details
    assert "bad.csv:4: field 'modality' is 'AX'; allowed: A, V, AV" in details
    assert "bad.csv:5: meta flags of clip 'x' disagree" in details and "background_music False (line 2)" in details
    assert "bad.csv:6: duplicate row for clip 'x' and class 'dog barking' (first on line 2)" in details
    assert "bad.csv:7: field 'background_music' is 'maybe'; allowed: True, False" in details
    assert not Release.objects.exists()
    with pytest.raises(CommandError, match="bad.csv:3"):
        call_command("import_labels", str(bad), "--name", "bad", "--dataset", "imp", stdout=io.StringIO())


def test_import_export_round_trip_of_the_published_vggsounder_files(taxonomy, tmp_path):
    published_bm = (DATA / "vggsounder+background-music.csv").read_bytes()
    published = (DATA / "vggsounder.csv").read_bytes()
    call_command(
        "import_labels",
        str(DATA / "vggsounder+background-music.csv"),
        "--name",
        "published",
        "--dataset",
        "vggsound",
        stdout=io.StringIO(),
    )
    release = Release.objects.get(name="published")
    assert release.imported and release.stats["clips"] == 15069
    out_bm, out_default = tmp_path / "bm.csv", tmp_path / "default.csv"
    call_command(
        "export_labels",
        "--release",
        "published",
        "--format",
        "vggsounder-csv",
        "--include-background-music",
        "--out",
        str(out_bm),
        stderr=io.StringIO(),
    )
    call_command("export_labels", "--release", "published", "--out", str(out_default), stderr=io.StringIO())
    assert out_bm.read_bytes() == published_bm
    assert out_default.read_bytes() == published
    df = release_to_dataframe(release)
    assert list(df.columns) == ["video_id", "label", "modality", "background_music", "static_image", "voice_over"]
    assert len(df) == published_bm.count(b"\n") - 1
    assert df.iloc[0].tolist()[:3] == published_bm.split(b"\n")[1].decode().split(",")[:3]


def test_jsonl_and_parquet_exports(crowd, tmp_path):
    import json

    import pyarrow.parquet as pq

    ds, _clips, _w = crowd
    release = release_create(ds, "v1")
    lines = b"".join(export_chunks(release, "jsonl", include_background_music=True)).decode().splitlines()
    first = json.loads(lines[0])
    assert first["video_id"] == "a_clip" and first["background_music"] is True
    assert {"label": "cattle mooing", "modality": "A", "origin": "auto", "origin_source": ["cow lowing"]} in first[
        "labels"
    ]
    # default leaves the background-music clip out
    assert [json.loads(x)["video_id"] for x in b"".join(export_chunks(release, "jsonl")).decode().splitlines()] == [
        "b_clip",
        "g_clip",
    ]
    path = tmp_path / "x.parquet"
    call_command(
        "export_labels",
        "--release",
        "rel/v1",
        "--format",
        "parquet",
        "--include-background-music",
        "--out",
        str(path),
        stderr=io.StringIO(),
    )
    table = pq.read_table(path).to_pandas()
    assert table["label"].tolist() == release_to_dataframe(release)["label"].tolist()
    assert table["background_music"].dtype == bool


def test_other_methods_and_leave_out_comparison_command(crowd):
    ds, _clips, _w = crowd
    ds_release = release_create(ds, "ds", method="dawid_skene", gold_override=False)
    assert ds_release.params["gold_clamped"] == 1
    # clamped: the gold clip carries the gold answer even without the override
    assert dict(
        ReleaseLabel.objects.filter(release=ds_release, release_clip__video_id="g_clip").values_list("name", "origin")
    ) == {"playing violin, fiddle": "human"}
    weighted = release_create(ds, "w", method="weighted", params={"k": 3})
    assert weighted.method == "weighted" and weighted.stats["clips"] == 3
    out = io.StringIO()
    call_command("compare_merge_methods", "--dataset", "rel", stdout=out)
    text = out.getvalue()
    assert "1 gold clips with >= 3 approved crowd annotations" in text
    # left out, the crowd's cello never matches the gold violin: every method scores 0 on this clip
    for method in ("majority", "weighted", "dawid_skene", "shrunk_ds", "modality_ds"):
        row = next(line.split() for line in text.splitlines() if line.startswith(method + " "))
        assert row[1:5] == ["0.0000", "0.000-0.000", "0.0000", "0.000-0.000"], row
    # the release's own card says the same, although its gold clip carries the gold label (override)
    card = weighted.stats["quality_card"]
    assert card["available"] and card["clips"] == 1 and card["method"] == "weighted"
    assert card["micro_f1"] == 0.0 and card["macro_f1"] == 0.0 and card["micro_f1_ci95"] == [0.0, 0.0]
    assert card["per_class"]["playing violin, fiddle"]["fn"] >= 1
    with pytest.raises(CommandError, match="unknown method"):
        call_command("compare_merge_methods", "--dataset", "rel", "--methods", "median", stdout=io.StringIO())


def test_clips_that_need_annotation_go_back_to_the_queue(crowd):
    ds, clips, _w = crowd
    release = release_create(ds, "v1")
    before = set(Batch.objects.filter(dataset=ds).values_list("pk", flat=True))
    out = io.StringIO()
    call_command("release_create", "--dataset", "rel", "--name", "v2", "--requeue", stdout=out)
    assert "1 clips need annotation" in out.getvalue() and "re-queued as 1 new batches" in out.getvalue()
    new = Batch.objects.filter(dataset=ds).exclude(pk__in=before)
    assert (
        set(BatchItem.objects.filter(batch__in=new, is_gold=False).values_list("clip__video_id", flat=True))
        == set(release.stats["needs_annotation_sample"])
        == {"c_clip"}
    )


def test_a_release_made_early_stores_counts_and_a_sample_and_requeues_every_left_out_clip(crowd):
    """60 more clips nobody annotated yet: the stats keep their count and 20 example ids (not every id: megabytes
    at 150k clips), and re-queueing still sends all 61 back."""
    ds, _clips, _w = crowd
    Clip.objects.bulk_create(
        [Clip(dataset=ds, video_id=f"late{i:02d}", media_url=f"https://cdn.example.org/late{i}.mp4") for i in range(60)]
    )
    release = release_create(ds, "early")
    assert release.stats["needs_annotation"] == 61 and release.stats["needs_annotation_with_some"] == 1  # c_clip
    assert release.stats["needs_annotation_sample"] == ["c_clip"] + [f"late{i:02d}" for i in range(19)]
    assert "needs_annotation_ids" not in release.stats
    batches = release_requeue_needs_annotation(release)
    requeued = set(BatchItem.objects.filter(batch__in=batches, is_gold=False).values_list("clip__video_id", flat=True))
    assert requeued == {"c_clip"} | {f"late{i:02d}" for i in range(60)}
