"""In-house gold standard: expert majority, coverage, CSV import (all or nothing, line numbers)."""

import random

import pytest
from django.core.management import CommandError, call_command

from catalog.errors import ImportFailed, ValidationError
from catalog.models import Clip, GoldLabel
from crowd.services.gold import expert_annotation_save, gold_coverage, gold_import_csv, gold_recompute


def lab(name, audible, visible):
    return {"name": name, "audible": audible, "visible": visible}


@pytest.fixture
def experts(django_user_model):
    return [django_user_model.objects.create_user(f"e{i}") for i in range(4)]


def test_gold_is_the_majority_of_three_experts(dataset, experts, taxonomy):
    clip = Clip.objects.get(video_id="r010")  # original label: taxonomy[10]
    dog, cat, car = taxonomy[1], taxonomy[2], taxonomy[3]
    payloads = [
        {
            "labels": [lab(dog, True, True), lab(cat, True, False)],
            "original_present": True,
            "original_audible": True,
            "original_visible": False,
            "background_music": False,
        },
        {
            "labels": [lab(dog, True, False), lab(car, False, True)],
            "original_present": True,
            "original_audible": True,
            "original_visible": True,
        },
        {"labels": [lab(dog, True, True)], "original_present": False},
    ]
    expert_annotation_save(clip, experts[0], payloads[0])
    expert_annotation_save(clip, experts[1], payloads[1])
    assert not GoldLabel.objects.filter(clip=clip).exists()  # only 2 experts so far
    expert_annotation_save(clip, experts[2], payloads[2])
    gold = {g.cls.name: (g.modality, g.original, g.source) for g in GoldLabel.objects.filter(clip=clip)}
    # dog: audible 3/3, visible 2/3 -> AV; cat 1/3, car 1/3 -> absent; original: audible 2/3, visible 1/3 -> A
    assert gold == {dog: ("AV", False, "experts"), taxonomy[10]: ("A", True, "experts")}
    clip.refresh_from_db()
    assert clip.is_gold
    # the same expert saving again replaces their vote (dog visible now 1/3 -> A), it does not add one
    expert_annotation_save(clip, experts[2], {"labels": [], "original_present": False})
    assert GoldLabel.objects.get(clip=clip, cls__name=dog).modality == "A"
    # a configurable minimum
    assert gold_recompute(clip, min_experts=4) == []


def test_expert_payload_errors_name_the_field(dataset, experts):
    clip = Clip.objects.get(video_id="r001")
    with pytest.raises(ValidationError) as exc:
        expert_annotation_save(clip, experts[0], {"labels": [lab("nope", True, False)]})
    assert exc.value.field == "labels"
    with pytest.raises(ValidationError) as exc:
        expert_annotation_save(clip, experts[0], {"original_present": "maybe"})
    assert exc.value.field == "original_present"


def test_coverage_counts_classes_and_suggests_clips_for_missing_ones(dataset, taxonomy):
    cov = gold_coverage(dataset, rng=random.Random(0))
    # fixture gold: 4 clips x 2 present classes each
    assert cov["total"] == 309 and cov["covered"] == 8 and len(cov["missing"]) == 301
    assert taxonomy[100] not in cov["missing"] and taxonomy[0] in cov["missing"]
    suggested = Clip.objects.filter(pk__in=cov["suggested_clips"])
    # regular clips r000..r017 carry original labels taxonomy[0..17], all missing from gold
    assert sorted(c.video_id for c in suggested) == [f"r{i:03d}" for i in range(18)]


def write(tmp_path, text, name="gold.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_import_gold_csv(dataset, taxonomy, tmp_path):
    path = write(
        tmp_path,
        "id,label,original,modality\n"
        f'r001,{taxonomy[1]},True,AV\nr001,"{taxonomy[50]}",False,-\nr002,{taxonomy[9]},False,V\n',
    )
    assert gold_import_csv(dataset, path) == 3
    rows = {
        (g.clip.video_id, g.cls.name): (g.modality, g.original)
        for g in GoldLabel.objects.filter(clip__video_id__in=["r001", "r002"])
    }
    assert rows == {
        ("r001", taxonomy[1]): ("AV", True),
        ("r001", taxonomy[50]): ("-", False),
        ("r002", taxonomy[9]): ("V", False),
    }
    assert Clip.objects.get(video_id="r002").is_gold


def test_import_gold_errors_have_line_numbers_and_change_nothing(dataset, taxonomy, tmp_path):
    before = GoldLabel.objects.count()
    path = write(
        tmp_path,
        "id,label,original,modality\n"
        f"r001,{taxonomy[1]},True,AV\n"
        "r001,not a class,True,A\n"
        f"r001,{taxonomy[2]},maybe,A\n"
        f"r001,{taxonomy[3]},True,AVX\n"
        f"zzz,{taxonomy[4]},True,A\n"
        f"r001,{taxonomy[1]},True,A\n",
    )
    with pytest.raises(ImportFailed) as exc:
        gold_import_csv(dataset, path)
    text = exc.value.as_text()
    for needle in (
        "gold.csv:3: field 'label'",
        "gold.csv:4: field 'original'",
        "gold.csv:5: field 'modality'",
        "allowed: A, V, AV, -",
        "gold.csv:6: field 'id' is 'zzz'",
        "gold.csv:7: clip 'r001'",
    ):
        assert needle in text
    assert GoldLabel.objects.count() == before and not Clip.objects.get(video_id="r001").is_gold
    with pytest.raises(ImportFailed, match="missing column"):
        gold_import_csv(dataset, write(tmp_path, "video_id,label\nr001,x\n", "bad_header.csv"))
    with pytest.raises(CommandError, match="nothing was imported"):
        call_command("import_gold", str(path), "--dataset", dataset.name)


def test_gold_coverage_command(dataset, capsys):
    call_command("gold_coverage", "--dataset", dataset.name)
    out = capsys.readouterr().out
    assert "gold covers 8 of 309 classes" in out and "suggested clips to label: r0" in out
