"""import_predictions with the files VGGSounder publishes: defaultdict pickles with a stray class name, model names
with dots, the LLM-judged CSVs; --strict refuses and leaves the stored runs as they were."""

import io

import pytest
from django.core.management import CommandError, call_command

from catalog.models import Clip
from proposals.models import ModelRun
from proposals.selectors import run_label_sets
from tests.benchmark.test_published_files import published_labels_pickle, verdicts, write_judged

pytestmark = pytest.mark.django_db


@pytest.fixture
def llm_clips(dataset):
    ids = [f"llm{i}_000010" for i in range(8)] + ["glLQrEijrKg_000300", "LDoXsip0BEQ_000177"]
    Clip.objects.bulk_create([Clip(dataset=dataset, video_id=v) for v in ids])
    return ids


def test_published_pickle_imports_with_its_name_and_reports_unknown_names(dataset, llm_clips, taxonomy, tmp_path):
    path = published_labels_pickle(tmp_path / "gemini-1.5-flash.pkl", taxonomy)
    out = io.StringIO()
    call_command("import_predictions", str(path), "--dataset", dataset.name, stdout=out)
    text = out.getvalue()
    assert "imported 8 clips of 'gemini-1.5-flash' (labels: a, v, av)" in text
    assert "2 unknown class name(s) skipped (3 occurrences): 'wind rustiling leaves' (2x); " in text
    assert "'female speech, woman someone' (1x)" in text
    run = ModelRun.objects.get(dataset=dataset, external_name="gemini-1.5-flash")
    assert {"class_name": "wind rustiling leaves", "count": 2, "error": "unknown class name, skipped"} in run.errors
    sets = run_label_sets(run)
    assert sets["llm0_000010"]["a"] == [taxonomy[0]]  # the stray name is gone, the known one kept
    assert sets["llm1_000010"]["av"] == sorted([taxonomy[1], taxonomy[11]], key=taxonomy.index)


def test_strict_refuses_and_changes_nothing(dataset, llm_clips, taxonomy, tmp_path):
    good = tmp_path / "ola.pkl"
    published_labels_pickle(good, taxonomy)
    call_command("import_predictions", str(good), "--dataset", dataset.name, stdout=io.StringIO())
    before = list(ModelRun.objects.values_list("pk", "external_name", "n_clips", "artifact"))
    stray = tmp_path / "again" / "ola.pkl"
    stray.parent.mkdir()
    published_labels_pickle(stray, taxonomy)
    with pytest.raises(CommandError) as err:
        call_command("import_predictions", str(stray), "--dataset", dataset.name, "--strict", stdout=io.StringIO())
    msg = str(err.value)
    assert (
        str(stray) in msg and "clip 'llm0_000010' input 'a': unknown class name 'female speech, woman someone'" in msg
    )
    assert "allowed: the 309 class names of the taxonomy (python manage.py load_taxonomy" in msg
    assert list(ModelRun.objects.values_list("pk", "external_name", "n_clips", "artifact")) == before


def test_judged_csv_directory_becomes_one_label_set_run_per_model(dataset, llm_clips, taxonomy, tmp_path):
    root = tmp_path / "csv"
    yes = ("yes", 5)
    for inp in ("a", "v", "av"):
        write_judged(
            root / inp / "predictions-video-llama-2-av.csv",
            [
                (
                    "glLQrEijrKg_000300.mp4",
                    verdicts(playing_hammond_organ=yes, male_speech__man_speaking=("no", 0)),
                    "",
                ),
                ("LDoXsip0BEQ_000177.mp4", verdicts(parrot_talking=yes if inp != "v" else ("no", 1)), ""),
            ],
        )
    out = io.StringIO()
    call_command("import_predictions", str(root), "--dataset", dataset.name, stdout=out)
    assert "imported 2 clips of 'video-llama-2-av' (labels: a, v, av)" in out.getvalue()
    sets = run_label_sets(ModelRun.objects.get(dataset=dataset, external_name="video-llama-2-av"))
    assert sets["glLQrEijrKg_000300"]["a"] == ["playing hammond organ"]
    assert sets["LDoXsip0BEQ_000177"]["av"] == ["parrot talking"] and sets["LDoXsip0BEQ_000177"]["v"] == []
    # the three files named one by one are the same one model
    files = [str(root / inp / "predictions-video-llama-2-av.csv") for inp in ("a", "v", "av")]
    call_command("import_predictions", *files, "--dataset", dataset.name, "--name", "vl2", stdout=io.StringIO())
    assert ModelRun.objects.get(dataset=dataset, external_name="vl2").modalities == ["a", "v", "av"]


def test_a_plain_directory_is_refused_with_the_layout_it_needs(dataset, taxonomy, tmp_path):
    (tmp_path / "preds").mkdir()
    with pytest.raises(CommandError, match=r"laid out like VGGSounder's judged CSVs \(a/, v/, av/"):
        call_command("import_predictions", str(tmp_path / "preds"), "--dataset", dataset.name)
    assert not ModelRun.objects.exists()


def test_several_files_are_all_checked_before_any_is_imported(dataset, llm_clips, taxonomy, tmp_path):
    import pickle

    clean = tmp_path / "clean-1.0.pkl"
    clean.write_bytes(pickle.dumps({"llm1_000010": {"predictions": {"a": [taxonomy[3]], "v": [], "av": []}}}))
    stray = published_labels_pickle(tmp_path / "stray.pkl", taxonomy)
    with pytest.raises(CommandError, match="stray.pkl: clip 'llm0_000010' input 'a': unknown class name"):
        call_command("import_predictions", str(clean), str(stray), "--dataset", dataset.name, "--strict")
    assert not ModelRun.objects.exists()  # the clean file, first on the line, was not imported either
    call_command("import_predictions", str(clean), str(stray), "--dataset", dataset.name, stdout=io.StringIO())
    assert sorted(ModelRun.objects.values_list("external_name", flat=True)) == ["clean-1.0", "stray"]


def test_the_import_api_reports_skipped_names_and_refuses_them_with_strict(
    admin_client, dataset, llm_clips, taxonomy, tmp_path, monkeypatch, django_capture_on_commit_callbacks
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    monkeypatch.setattr("catalog.services.operations.BACKGROUND_THREAD", False)  # run once the request commits

    def imported(body):
        with django_capture_on_commit_callbacks(execute=True):
            resp = admin_client.post(url, body)
        assert resp.status_code == 202, resp.content
        return admin_client.get(resp.json()["status_url"]).json()

    raw = published_labels_pickle(tmp_path / "ola.pkl", taxonomy).read_bytes()
    url = f"/api/datasets/{dataset.name}/predictions/import/"
    refused = imported({"file": SimpleUploadedFile("ola.pkl", raw), "strict": "true"})
    assert refused["status"] == "failed", refused
    assert (
        "ola.pkl: clip 'llm0_000010' input 'a': unknown class name 'female speech, woman someone'" in refused["message"]
    )
    assert "/tmp" not in refused["message"] and not ModelRun.objects.exists()
    done = imported({"file": SimpleUploadedFile("ola.pkl", raw)})
    assert done["status"] == "done", done
    assert "2 unknown class name(s) skipped (3 occurrences)" in done["message"]
    assert ModelRun.objects.get(dataset=dataset).model_name == "ola"
