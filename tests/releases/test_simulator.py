"""The crowd simulator drives the real annotator services end to end, then a release is merged from it."""

import io

import pytest
from django.core.management import call_command

from catalog.core.taxonomy import closure
from catalog.models import Clip, Dataset
from catalog.selectors.taxonomy import relations
from crowd.models import Assignment, ClipAnswer
from crowd.simulator import simulate_crowd, write_truth_csv
from labels.core.quality import macro_f1
from labels.services.create import release_create
from labels.services.export import release_to_dataframe

pytestmark = pytest.mark.django_db

CLASSES = [
    "dog barking",
    "cat meowing",
    "playing piano",
    "raining",
    "church bell ringing",
    "sea waves",
    "male speech, man speaking",
    "helicopter",
    "people clapping",
    "cow lowing",
]


@pytest.fixture
def sim_dataset(taxonomy, tmp_path):
    ds = Dataset.objects.create(
        name="sim",
        batch_size=5,
        gold_per_batch=1,
        annotations_per_clip=3,
        reject_below=0.4,
        block_after=2,
        block_floor=0.4,
    )
    truth, meta = {}, {}
    for i in range(10):
        vid = f"clip{i:02d}"
        Clip.objects.create(dataset=ds, video_id=vid, is_gold=i < 2)
        truth[vid] = {CLASSES[i]: ["A", "AV", "V"][i % 3], CLASSES[(i + 3) % 10]: "AV"}
        meta[vid] = {"background_music": i % 4 == 0, "voice_over": False, "static_image": False}
    path = tmp_path / "truth.csv"
    write_truth_csv(path, truth, meta)
    return ds, truth, path


def test_simulated_crowd_goes_through_scoring_rejection_and_release(sim_dataset):
    ds, truth, path = sim_dataset
    stats = simulate_crowd(ds, str(path), workers=8, profile="diligent:1,spammer:1", seed=3, proposals_per_clip=6)
    assert stats["open_batches_left"] == 0
    by = stats["by_profile"]
    assert by["diligent"]["workers"] == 4 and by["spammer"]["workers"] == 4
    # catch trials separate the profiles: spammers are rejected, their slots re-posted and filled by others
    assert by["spammer"]["rejected"] >= 1 and by["diligent"]["rejected"] == 0
    assert by["diligent"]["mean_catch_f1"] > by["spammer"]["mean_catch_f1"]
    approved = Assignment.objects.filter(batch__dataset=ds, status="approved")
    assert approved.count() == 6  # 2 batches x 3 annotators, after re-posting
    # answers were stored by the HIT services: every approved assignment answered its whole batch
    assert ClipAnswer.objects.filter(assignment__in=approved).count() == approved.count() * 5
    release = release_create(ds, "sim-v1")
    df = release_to_dataframe(release)
    pred = {}
    for vid, label, mod in df[["video_id", "label", "modality"]].itertuples(index=False):
        pred.setdefault(vid, {})[label] = mod
    # the release is closed over synonyms/superclasses (cow lowing -> cattle mooing): so is the truth we compare to
    syn, sup = relations()
    closed = {v: {c: m for c, (m, _src) in closure(t, syn, sup).items()} for v, t in truth.items()}
    merged = [v for v in truth if not Clip.objects.get(dataset=ds, video_id=v).is_gold]
    macro, _ = macro_f1({v: pred.get(v, {}) for v in merged}, {v: closed[v] for v in merged})
    assert release.stats["needs_annotation"] == 0
    assert macro > 0.8


def test_mixed_profile_allocates_workers_deterministically():
    from crowd.simulator import MIXES, allocate

    kinds = allocate(MIXES["mixed"], 50)
    assert [kinds.count(k) for k in ("diligent", "careless", "spammer", "audio-biased", "visual-biased")] == [
        25,
        10,
        5,
        5,
        5,
    ]


def test_simulate_crowd_command_refuses_unknown_truth_and_profile(sim_dataset, tmp_path):
    ds, _truth, path = sim_dataset
    with pytest.raises(Exception, match="no release 'nope'"):
        call_command("simulate_crowd", "--dataset", "sim", "--truth", "nope", stdout=io.StringIO())
    short = tmp_path / "short.csv"
    short.write_text(path.read_text().splitlines()[0] + "\n" + path.read_text().splitlines()[1] + "\n")
    with pytest.raises(Exception, match="profile 'lazy' is not allowed"):
        call_command(
            "simulate_crowd", "--dataset", "sim", "--truth", str(path), "--profile", "lazy", stdout=io.StringIO()
        )
    with pytest.raises(Exception, match="have no truth in"):
        call_command("simulate_crowd", "--dataset", "sim", "--truth", str(short), stdout=io.StringIO())


def test_simulate_crowd_command_reports_and_releases(sim_dataset):
    _ds, _truth, path = sim_dataset
    out = io.StringIO()
    call_command(
        "simulate_crowd",
        "--dataset",
        "sim",
        "--truth",
        str(path),
        "--workers",
        "6",
        "--profile",
        "diligent",
        "--release",
        "v1",
        "--proposals",
        "4",
        stdout=out,
    )
    text = out.getvalue()
    assert "diligent       workers   6" in text
    assert "release sim/v1: 10 clips" in text
    macro = float(text.split("macro-F1 against the (closed) truth ")[1].split(";")[0])
    assert macro > 0.8


def test_original_labels_as_truth_for_demos(taxonomy):
    from catalog.models import TaxonomyClass

    ds = Dataset.objects.create(name="demo-like", batch_size=4, gold_per_batch=1, annotations_per_clip=3)
    for i, name in enumerate(["dog barking", "cat meowing", "playing piano", "raining", "helicopter"] * 2):
        clip = Clip.objects.create(dataset=ds, video_id=f"d{i}", is_gold=i < 2)
        clip.original_labels.add(TaxonomyClass.objects.get(name=name))
    out = io.StringIO()
    call_command(
        "simulate_crowd",
        "--dataset",
        "demo-like",
        "--truth",
        "original",
        "--workers",
        "12",
        "--profile",
        "diligent",
        "--release",
        "demo-v1",
        "--proposals",
        "3",
        stdout=out,
    )
    assert "open batches left 0" in out.getvalue(), out.getvalue()
    assert "release demo-like/demo-v1: 10 clips" in out.getvalue(), out.getvalue()


def test_the_calibrated_mix_marks_audible_only_sources_visible_and_merges_with_modality_ds(sim_dataset):
    import random

    from crowd.simulator import MIXES, PROFILES, allocate, simulated_answer

    assert allocate(MIXES["calibrated"], 100).count("typical") == 70
    # the typical annotator sometimes marks an audible-only class visible too (the asymmetry modality_ds models)
    rng = random.Random(0)
    answers = [
        simulated_answer(PROFILES["typical"], {"dog barking": "A"}, {}, ["dog barking"], CLASSES, rng)["labels"][0]
        for _ in range(400)
    ]
    seen_too = sum(a["visible"] for a in answers) / len(answers)
    assert 0.15 < seen_too < 0.35
    ds, _truth, path = sim_dataset
    stats = simulate_crowd(ds, str(path), workers=10, profile="calibrated", seed=1, proposals_per_clip=6)
    assert stats["open_batches_left"] == 0 and stats["by_profile"]["typical"]["workers"] == 7
    release = release_create(ds, "cal", method="modality_ds")
    assert release.stats["quality_card"]["available"] and release.stats["needs_annotation"] == 0


def test_simulate_crowd_command_prints_the_releases_quality_card(sim_dataset):
    _ds, _truth, path = sim_dataset
    out = io.StringIO()
    call_command(
        "simulate_crowd",
        "--dataset",
        "sim",
        "--truth",
        str(path),
        "--workers",
        "8",
        "--profile",
        "calibrated",
        "--release",
        "v-card",
        stdout=out,
    )
    text = out.getvalue()
    assert "macro-F1 against the (closed) truth" in text
    assert "quality card (leave-one-out" in text and "on 2 gold clips" in text
