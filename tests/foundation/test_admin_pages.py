"""Admin pages say why they refuse (a message on the page, never a 500), and the pages an admin uses to get a
dataset going: import clips (uploads and URLs), create batches, publish (whose first page is the dry run)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile

from catalog.models import Clip, Dataset, Operation
from crowd.models import Batch, Hit
from crowd.services.batches import batches_create


@pytest.fixture
def admin_client(client, db):
    user = get_user_model().objects.create_superuser("boss", "boss@example.org", "pw")
    client.force_login(user)
    return client


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def test_publishing_with_an_http_public_address_is_refused_on_the_page(admin_client, make_crowd_dataset, settings):
    settings.PUBLIC_BASE_URL = "http://127.0.0.1:8000"
    settings.MTURK_ENDPOINT_URL = ""
    ds = make_crowd_dataset("pub", 4, 0, batch_size=2, gold_per_batch=0, budget_usd=100)
    batches = batches_create(ds)
    form = {
        "action": "publish_to_marketplace",
        "_selected_action": [b.pk for b in batches],
        "backend": "mturk",
        "environment": "sandbox",
        "mode": "external",
        "reward": "",
    }
    dry = admin_client.post("/admin/crowd/batch/", {**form, "estimate": "1"})
    assert dry.status_code == 200 and b'id="publish-estimate"' in dry.content  # the dry run: a plan, nothing sent
    r = admin_client.post("/admin/crowd/batch/", {**form, "confirm": "1"})
    assert r.status_code == 200
    page = r.content.decode()
    assert 'id="publish-error"' in page and "ExternalQuestion needs an HTTPS page" in page
    assert "PUBLIC_BASE_URL is &#x27;http://127.0.0.1:8000&#x27;" in page
    assert not Operation.objects.exists() and not Hit.objects.exists()

    api = admin_client.post(
        "/api/marketplace/publish/", {"dataset": "pub", "sandbox": True}, content_type="application/json"
    )
    assert api.status_code == 400 and api.json()["field"] == "PUBLIC_BASE_URL"
    assert not Operation.objects.exists()


def _mp4(clip_factory, name, **kw) -> SimpleUploadedFile:
    return SimpleUploadedFile(f"{name}.mp4", clip_factory(name, **kw).read_bytes(), content_type="video/mp4")


def test_clips_are_imported_from_uploads_and_urls(admin_client, taxonomy, clip_factory):
    csv = (
        "video_id,url,original_label\n"
        "first,up_a.mp4,dog barking\n"
        "remote,https://cdn.example.org/r.mp4,cat meowing|dog barking\n"
    )
    r = admin_client.post(
        "/admin/catalog/dataset/import-clips/",
        {
            "dataset": "uploads",
            "media": [_mp4(clip_factory, "up_a", seed=1), _mp4(clip_factory, "up_b", seed=2)],
            "csv": SimpleUploadedFile("clips.csv", csv.encode()),
        },
        follow=True,
    )
    assert "Imported 3 clip(s) into dataset uploads." in _messages(r)
    clips = {c.video_id: c for c in Clip.objects.filter(dataset__name="uploads")}
    assert set(clips) == {"first", "up_b", "remote"}
    assert clips["first"].media.name.endswith("first.mp4") and clips["first"].duration == pytest.approx(1.0, abs=0.2)
    assert sorted(c.name for c in clips["remote"].original_labels.all()) == ["cat meowing", "dog barking"]
    assert clips["remote"].media_url == "https://cdn.example.org/r.mp4" and not clips["remote"].media


def test_an_import_naming_server_paths_or_bad_files_is_refused_line_by_line_and_changes_nothing(
    admin_client, taxonomy, clip_factory
):
    csv = "video_id,url,original_label\nsecret,/etc/passwd,\nok,https://cdn.example.org/ok.mp4,no such class\n"
    r = admin_client.post(
        "/admin/catalog/dataset/import-clips/",
        {"dataset": "refused", "media": [SimpleUploadedFile("notes.txt", b"hello")]},
        follow=True,
    )
    assert r.status_code == 200
    assert any(m.startswith("notes.txt: not allowed; media files are named <video id>") for m in _messages(r))
    r = admin_client.post(
        "/admin/catalog/dataset/import-clips/",
        {"dataset": "refused", "csv": SimpleUploadedFile("clips.csv", csv.encode())},
        follow=True,
    )
    said = _messages(r)
    assert said[0] == "clips.csv: 1 problem(s); nothing was imported"
    assert said[1].startswith("clips.csv:2: field 'url' is '/etc/passwd'; allowed: an http(s):// or s3:// URL")
    r = admin_client.post(
        "/admin/catalog/dataset/import-clips/",
        {
            "dataset": "refused",
            "csv": SimpleUploadedFile("c.csv", b"video_id,url,original_label\nok,https://x.org/a.mp4,nope\n"),
        },
        follow=True,
    )
    assert "c.csv:2: field 'original_label' names unknown class 'nope'" in _messages(r)
    assert not Dataset.objects.filter(name="refused").exists() and not Clip.objects.exists()


def test_batches_are_created_from_the_admin(admin_client, make_crowd_dataset):
    ds = make_crowd_dataset("tobatch", 5, 1, batch_size=3, gold_per_batch=1)
    r = admin_client.post("/admin/crowd/batch/create/", {"dataset": "tobatch"}, follow=True)
    n = Batch.objects.filter(dataset=ds).count()
    assert n >= 2 and f"Created {n} batch(es) in dataset tobatch." in _messages(r)
    r = admin_client.post("/admin/crowd/batch/create/", {"dataset": "tobatch"}, follow=True)
    assert "Every clip of dataset tobatch is in a batch already." in _messages(r)
    page = admin_client.get("/admin/crowd/batch/").content.decode()
    assert 'id="create-batches-link"' in page
