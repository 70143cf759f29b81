"""Every pipeline step on a page and in the API, through the same services as the commands, each recorded as an
Operation: batches refused without gold (by name) and rebuilt once gold exists; gold, predictions and label sets
imported from uploads, with errors that name the file and never a server path."""

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError

from catalog.models import Clip, Dataset, Operation
from catalog.services.users import user_create
from crowd.models import Batch, BatchItem
from labels.models import Release
from proposals.models import ModelRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, monkeypatch, django_capture_on_commit_callbacks):
    """An admin whose background work (imports) runs once each request's transaction commits, before the next
    request: in this process, not in a thread (tests/annotators/test_pipeline_steps_background.py has the thread
    and a real worker)."""
    monkeypatch.setattr("catalog.services.operations.BACKGROUND_THREAD", False)
    client.force_login(user_create("boss", "admin")["user"])
    post = client.post

    def post_then_run(*args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return post(*args, **kwargs)

    client.post = post_then_run
    return client


@pytest.fixture
def no_gold(make_crowd_dataset):
    """5 regular clips and no gold yet; batches of 3 with 1 catch trial."""
    return make_crowd_dataset("nogold", 5, 0, batch_size=3, gold_per_batch=1)


def polled(client, resp) -> dict:
    """The Operation a 202 answer started, as its status_url gives it (the work ran once the request committed)."""
    assert resp.status_code == 202, resp.content
    body = resp.json()
    assert body["status_url"] == f"/api/marketplace/operations/{body['id']}/"
    return client.get(body["status_url"]).json()


def add_gold_clips(ds):
    """The clips of a gold set, imported after the first batches were built."""
    for i in range(3):
        Clip.objects.create(dataset=ds, video_id=f"g{i:03d}", media_url=f"https://cdn.example.org/g{i}.mp4")


def gold_csv(taxonomy, rows=3, modality="AV"):
    lines = ["id,label,original,modality"] + [f"g{i:03d},{taxonomy[100 + i]},True,{modality}" for i in range(rows)]
    return SimpleUploadedFile("gold.csv", ("\n".join(lines) + "\n").encode(), content_type="text/csv")


def test_batches_are_refused_by_name_without_gold_then_rebuilt_with_catch_trials(admin_client, no_gold, taxonomy):
    page = admin_client.get("/ops/nogold/steps/").content.decode()
    assert "dataset nogold has no gold clips with gold labels" in page and 'id="gold-refusal"' in page

    refused = admin_client.post("/ops/nogold/steps/batches/", follow=True)
    text = refused.content.decode()
    assert refused.redirect_chain[-1][0] == "/ops/nogold/steps/"
    assert "dataset nogold has no gold clips" in text and "Import gold labels first" in text
    assert Batch.objects.count() == 0
    failed = Operation.objects.get()
    assert failed.status == "failed" and "no gold clips" in failed.message  # the refusal is on record too

    # built anyway on request: no catch trials, said so
    made = admin_client.post("/ops/nogold/steps/batches/", {"allow_without_gold": "on"}, follow=True)
    assert "WITHOUT catch trials" in made.content.decode()
    assert Batch.objects.count() == 2 and not BatchItem.objects.filter(is_gold=True).exists()
    old = set(Batch.objects.values_list("uuid", flat=True))
    assert admin_client.post("/ops/nogold/steps/rebuild/", follow=True).status_code == 200
    assert set(Batch.objects.values_list("uuid", flat=True)) == old  # refused while there is no gold

    add_gold_clips(no_gold)
    imported = admin_client.post("/ops/nogold/steps/gold/", {"file": gold_csv(taxonomy)}, follow=True)
    op = Operation.objects.filter(status="done").latest("pk")
    assert imported.redirect_chain[-1][0] == f"/ops/operations/{op.pk}/"
    assert "imported 3 gold label rows into dataset nogold" in op.message
    page = admin_client.get("/ops/nogold/steps/").content.decode()
    assert "2 batch(es) have no catch trial" in page and "gold-refusal" not in page
    assert "only 3 gold clip(s)" in page  # fewer than 10: a warning with the numbers

    admin_client.post("/ops/nogold/steps/rebuild/")
    op = Operation.objects.latest("pk")
    assert op.status == "done" and "rebuilt 2 batch(es) without catch trials" in op.message
    batches = list(Batch.objects.all())
    assert not (old & {b.uuid for b in batches})
    assert all(b.items.filter(is_gold=True).count() == 1 for b in batches)
    assert sorted(BatchItem.objects.filter(is_gold=False).values_list("clip__video_id", flat=True)) == [
        f"r{i:03d}" for i in range(5)
    ]
    assert "have no catch trial" not in admin_client.get("/ops/nogold/steps/").content.decode()


def test_a_bad_gold_file_names_the_file_and_line_never_a_server_path_and_changes_nothing(admin_client, no_gold):
    add_gold_clips(no_gold)
    bad = SimpleUploadedFile("my gold.csv", b"id,label,original,modality\ng000,dog barking,True,XY\n")
    resp = admin_client.post("/ops/nogold/steps/gold/", {"file": bad})
    op = Operation.objects.get()
    assert resp["Location"] == f"/ops/operations/{op.pk}/"
    text = admin_client.get(resp["Location"]).content.decode()
    error = re.search(r'<p id="op-message">([^<]*)</p>', text).group(1)
    assert "my_gold.csv" in error and "XY" in error
    assert "/tmp" not in text and "avcrowd-upload" not in text and "uploads" not in error
    assert op.status == "failed" and "/tmp" not in op.message and "avcrowd-upload" not in op.message
    assert 'id="op-retry"' not in text  # its upload is gone: upload a corrected file instead
    assert not Clip.objects.filter(is_gold=True).exists()
    # and the API says the same with 400
    api = admin_client.post(
        "/api/datasets/nogold/gold/import/", {"file": SimpleUploadedFile("g.csv", b"id,label\ng000,dog barking\n")}
    )
    failed = polled(admin_client, api)
    assert failed["status"] == "failed" and "/tmp" not in failed["message"] and "uploads" not in failed["message"]
    assert failed["message"].startswith("g.csv: missing column(s) original, modality")
    assert not Clip.objects.filter(is_gold=True).exists()


def test_the_api_runs_each_step_and_answers_with_its_operation(admin_client, no_gold, taxonomy):
    refused = admin_client.post("/api/datasets/nogold/batches/", {}, content_type="application/json")
    assert refused.status_code == 400 and "has no gold clips" in refused.content.decode()
    add_gold_clips(no_gold)
    gold = admin_client.post("/api/datasets/nogold/gold/import/", {"file": gold_csv(taxonomy)})
    body = gold.json()
    assert body["status"] == "running" and body["kind"] == "import" and body["dataset"] == "nogold"
    assert body["page"] == f"/ops/operations/{body['id']}/" and body["summary"]["upload"] == "gold.csv"
    done = polled(admin_client, gold)
    assert done["status"] == "done" and done["done"] == done["total"] == 1
    assert "imported 3 gold label rows into dataset nogold" in done["message"]
    made = admin_client.post("/api/datasets/nogold/batches/", {}, content_type="application/json").json()
    assert made["status"] == "done" and len(made["summary"]["batches"]) == 3  # 5 regular clips, 2 per batch
    assert "only 3 gold clip(s)" in made["message"]

    preds = "video_id,input,label\n" + "".join(f'r{i:03d},a,"{taxonomy[i]}"\n' for i in range(5))
    run = admin_client.post(
        "/api/datasets/nogold/predictions/import/",
        {"file": SimpleUploadedFile("gemini-1.5-flash.csv", preds.encode()), "name": ""},
    )
    assert polled(admin_client, run)["status"] == "done"
    assert ModelRun.objects.get(dataset=no_gold).model_name == "gemini-1.5-flash"
    unknown = admin_client.post(
        "/api/datasets/nogold/predictions/import/",
        {"file": SimpleUploadedFile("m2.csv", b"video_id,input,label\nzzz,a,dog barking\n")},
    )
    unknown = polled(admin_client, unknown)
    assert unknown["status"] == "failed" and "m2.csv" in unknown["message"] and "/tmp" not in unknown["message"]

    clips = admin_client.post(
        "/api/datasets/newset/clips/import/",
        {"csv": SimpleUploadedFile("clips.csv", b"video_id,url\nv1,https://cdn.example.org/v1.mp4\n")},
    )
    assert polled(admin_client, clips)["message"] == "imported 1 clip(s) into dataset newset"
    assert Dataset.objects.filter(name="newset").exists()
    assert admin_client.post("/api/datasets/missing/batches/", {}, content_type="application/json").status_code == 404

    schema = admin_client.get("/api/schema/").content.decode()
    for route in ("gold/import/", "batches/", "batches/rebuild/", "predictions/import/", "clips/import/"):
        assert f"/api/datasets/{{name}}/{route}" in schema, route


def test_label_sets_and_predictions_are_imported_from_the_page(admin_client, no_gold, taxonomy):
    csv = "video_id,label,modality,background_music,static_image,voice_over\nr000,dog barking,AV,False,False,False\n"
    admin_client.post(
        "/ops/nogold/steps/labels/",
        {"file": SimpleUploadedFile("published.csv", csv.encode()), "release": "published-v1"},
    )
    release = Release.objects.get(dataset=no_gold, name="published-v1")
    op = Operation.objects.latest("pk")
    assert op.summary["url"] == f"/releases/{release.pk}/"
    preds = "video_id,input,label\nr000,v,dog barking\n"
    admin_client.post(
        "/ops/nogold/steps/predictions/", {"file": SimpleUploadedFile("x.csv", preds.encode()), "model": "my-model"}
    )
    assert ModelRun.objects.get(dataset=no_gold).model_name == "my-model"
    page = admin_client.get("/ops/nogold/steps/").content.decode()
    assert re.search(r"1 run\(s\)\s*:?\s*my-model", page)


def test_the_commands_refuse_warn_and_rebuild(no_gold, taxonomy, tmp_path, capsys):
    with pytest.raises(CommandError, match="dataset nogold has no gold clips"):
        call_command("create_batches", "--dataset", "nogold")
    call_command("create_batches", "--dataset", "nogold", "--allow-without-gold")
    assert "run rebuild_batches after import_gold" in capsys.readouterr().err
    add_gold_clips(no_gold)
    path = tmp_path / "gold.csv"
    path.write_bytes(gold_csv(taxonomy).read())
    call_command("import_gold", str(path), "--dataset", "nogold")
    call_command("rebuild_batches", "--dataset", "nogold")
    captured = capsys.readouterr()
    assert "rebuilt 2 batch(es) without catch trials as 3 batch(es)" in captured.out
    assert "only 3 gold clip(s) for 1 catch trial(s) per batch" in captured.err
    assert all(b.items.filter(is_gold=True).exists() for b in Batch.objects.all())


def test_clips_are_imported_from_an_allowed_server_folder_only(
    admin_client, taxonomy, clip_factory, tmp_path, settings
):
    import shutil

    root = tmp_path / "incoming"
    (root / "batch1").mkdir(parents=True)
    for i in range(2):
        shutil.copy(clip_factory(f"f{i}", seed=i), root / "batch1" / f"vid{i}.mp4")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    shutil.copy(clip_factory("x", seed=9), outside / "secret.mp4")
    (root / "escape").symlink_to(outside, target_is_directory=True)

    settings.MEDIA_IMPORT_ROOTS = []
    off = admin_client.post("/api/datasets/folders/clips/import/", {"folder": "batch1"})
    assert off.status_code == 400 and "set MEDIA_IMPORT_ROOTS" in off.json()["error"]

    settings.MEDIA_IMPORT_ROOTS = [str(root)]
    for bad in ("../elsewhere", str(outside), "escape"):
        resp = admin_client.post("/api/datasets/folders/clips/import/", {"folder": bad})
        assert resp.status_code == 400 and "not inside an allowed import folder" in resp.json()["error"], bad
    assert not Clip.objects.exists() and not Dataset.objects.filter(name="folders").exists()

    page = admin_client.post("/ops/nofolder/steps/clips/", {"folder": "batch1"})
    assert page.status_code == 404  # the page is per existing dataset
    Dataset.objects.create(name="folders")
    assert str(root) in admin_client.get("/ops/folders/steps/").content.decode()
    admin_client.post("/ops/folders/steps/clips/", {"folder": "batch1"})
    op = Operation.objects.filter(status="done").latest("pk")
    assert op.message == "imported 2 clip(s) from folder batch1 into dataset folders"
    clips = Clip.objects.filter(dataset__name="folders").order_by("video_id")
    assert [c.video_id for c in clips] == ["vid0", "vid1"]
    assert clips[0].media_url == str(root / "batch1" / "vid0.mp4") and clips[0].duration  # in place, probed
    again = admin_client.post("/api/datasets/folders/clips/import/", {"folder": str(root / "batch1")})
    again = polled(admin_client, again)
    assert "imported 0 clip(s)" in again["message"] and "2 already there" in again["message"]
