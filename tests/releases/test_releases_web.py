"""Release pages and REST API: read/export for researchers, create/import for staff, streamed and background
exports with progress."""

import html
import time

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from catalog.models import Clip, Dataset
from catalog.services.users import user_create
from labels.models import Release, ReleaseExport
from labels.services.export import export_chunks
from labels.services.imports import release_import

pytestmark = pytest.mark.django_db

CSV = (
    "video_id,label,modality,background_music,static_image,voice_over\n"
    "zz_clip,dog barking,A,False,False,True\n"
    'zz_clip,"bird chirping, tweeting",AV,False,False,True\n'
    "aa_clip,playing piano,V,True,False,False\n"
)


@pytest.fixture
def release(taxonomy, tmp_path):
    ds = Dataset.objects.create(name="web")
    Clip.objects.create(dataset=ds, video_id="zz_clip")
    path = tmp_path / "labels.csv"
    path.write_text(CSV)
    return release_import(ds, "pub", path)


@pytest.fixture
def researcher():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {user_create('res', 'researcher', password='x')['token']}")
    return client


@pytest.fixture
def staff():
    user = get_user_model().objects.create_user("boss", password="x", is_staff=True)
    client = APIClient()
    client.force_authenticate(user)
    return client


def _body(response):
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_api_lists_and_streams_exports_with_a_token(release, researcher):
    r = researcher.get("/api/releases/?dataset=web")
    assert r.status_code == 200 and [x["name"] for x in r.json()] == ["pub"]
    r = researcher.get(f"/api/releases/{release.pk}/")
    assert r.json()["stats"]["clips"] == 2 and r.json()["imported"] is True
    r = researcher.get(f"/api/releases/{release.pk}/export/?include_background_music=true")
    assert r.status_code == 200 and r["Content-Type"].startswith("text/csv")
    assert _body(r).decode() == CSV  # file order kept, quoting only where needed
    r = researcher.get(f"/api/releases/{release.pk}/export/")
    assert "aa_clip" not in _body(r).decode()  # background music left out by default
    r = researcher.get(f"/api/releases/{release.pk}/export/?format=xlsx")
    assert r.status_code == 400 and "allowed: vggsounder-csv, jsonl, parquet" in r.json()["error"]
    assert APIClient().get("/api/releases/").status_code in (401, 403)


def test_background_export_reports_progress_and_serves_the_file(
    release, researcher, django_capture_on_commit_callbacks
):
    with_bm = b"".join(export_chunks(release, "jsonl", include_background_music=True))
    with django_capture_on_commit_callbacks(execute=True):
        r = researcher.post(f"/api/releases/{release.pk}/exports/?format=jsonl&include_background_music=1")
    assert r.status_code == 202 and r.json()["status"] == "pending"
    job_id = r.json()["id"]
    # the task is enqueued on commit and runs in-process here (no broker)
    r = researcher.get(f"/api/releases/exports/{job_id}/")
    assert r.json()["status"] == "done" and r.json()["progress"] == 1.0 and r.json()["rows_total"] == 3
    r = researcher.get(r.json()["download"])
    assert r.status_code == 200 and _body(r) == with_bm
    assert ReleaseExport.objects.get(pk=job_id).rows_done == 3


def test_only_staff_create_and_import(release, researcher, staff):
    r = researcher.post("/api/releases/", {"dataset": "web", "name": "v9"}, format="json")
    assert r.status_code == 403
    r = staff.post("/api/releases/", {"dataset": "web", "name": "v9"}, format="json")
    assert r.status_code == 400 and "no approved annotations" in r.json()["error"]
    bad = SimpleUploadedFile(
        "bad.csv",
        b"video_id,label,modality,background_music,static_image,voice_over\nx,not a class,A,False,False,False\n",
    )
    r = staff.post("/api/releases/import/", {"dataset": "web", "name": "bad", "file": bad}, format="multipart")
    assert r.status_code == 400 and "bad.csv:2: field 'label' names unknown class 'not a class'" in r.json()["details"]
    good = SimpleUploadedFile("good.csv", CSV.encode())
    r = staff.post("/api/releases/import/", {"dataset": "web", "name": "again", "file": good}, format="multipart")
    assert r.status_code == 201 and r.json()["source_counts"]["rows"] == 3
    assert Release.objects.filter(dataset__name="web").count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_label_set_is_imported_in_the_background_on_request(taxonomy, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    Dataset.objects.create(name="bgrel")
    staff = APIClient()
    staff.force_authenticate(user_create("boss", "admin")["user"])
    good = SimpleUploadedFile("pub.csv", CSV.encode())
    r = staff.post(
        "/api/releases/import/",
        {"dataset": "bgrel", "name": "pub", "file": good, "background": True},
        format="multipart",
    )
    assert r.status_code == 202 and r.json()["summary"]["upload"] == "pub.csv"
    deadline = time.time() + 30
    while (op := staff.get(r.json()["status_url"]).json())["status"] == "running" and time.time() < deadline:
        time.sleep(0.1)
    release = Release.objects.get(dataset__name="bgrel", name="pub")
    assert op["status"] == "done" and op["summary"]["release"] == release.pk and op["done"] == op["total"] == 3
    assert op["message"] == "imported 3 labels of 2 clips as bgrel/pub" and release.source_counts["rows"] == 3
    assert list((tmp_path / "media" / "uploads-staged").iterdir()) == []  # the upload removed once imported


def test_release_pages_show_stats_clips_diff_and_download(release, client, tmp_path):
    client.force_login(user_create("reader", "researcher", password="x")["user"])
    other_csv = tmp_path / "other.csv"
    other_csv.write_text(CSV.replace("dog barking,A", "dog barking,AV"))
    other = release_import(release.dataset, "pub2", other_csv)
    page = client.get("/releases/").content.decode()
    assert "pub2" in page and "Create a release" not in page  # not staff
    page = client.get(f"/releases/{release.pk}/").content.decode()
    assert "zz_clip" in page and "bird chirping, tweeting" in page and "Releases are immutable" in page
    r = client.get(f"/releases/{release.pk}/download/?format=vggsounder-csv&include_background_music=1")
    assert _body(r).decode() == CSV
    page = client.get(f"/releases/{release.pk}/diff/?other={other.pk}").content.decode()
    assert "dog barking A→AV" in page
    assert client.get(f"/releases/{release.pk}/diff/?other=x").status_code == 404


def test_merged_release_page_shows_agreement_and_staff_can_create(crowd, client, django_capture_on_commit_callbacks):
    staff_user = get_user_model().objects.create_user("admin2", password="x", is_staff=True)
    client.force_login(staff_user)
    with django_capture_on_commit_callbacks(execute=True):
        r = client.post("/releases/new/", {"dataset": "rel", "name": "web-v1", "method": "majority", "k": "3"})
    release = Release.objects.get(name="web-v1")
    assert r.status_code == 302
    assert f'href="/releases/{release.pk}/"' in client.get(r["Location"]).content.decode()
    page = client.get(f"/releases/{release.pk}/").content.decode()
    assert "Krippendorff" in page and "Least reliable classes" in page
    # the quality card: the gold clip scored without its gold label (the crowd's cello against gold violin)
    assert "Quality card" in page and "leave-one-out" in page and "on 1 gold clips" in page
    assert "<th>all</th><td>0.0</td>" in page
    assert "cattle mooing <small>A · auto</small>" in page  # auto-added label shown with its origin
    assert "1 clips with fewer than k approved annotations" in page
    r = client.post("/releases/new/", {"dataset": "rel", "name": "web-v1", "method": "majority"}, follow=True)
    assert "already has a release named" in r.content.decode()


def test_a_release_requested_on_the_page_is_made_in_the_background_and_linked_when_done(
    crowd, client, django_capture_on_commit_callbacks
):
    """The request only checks and queues; the operation page shows the running merge, then links the release."""
    from catalog.models import Operation

    staff_user = get_user_model().objects.create_user("admin3", password="x", is_staff=True)
    client.force_login(staff_user)
    with django_capture_on_commit_callbacks(execute=False) as queued:  # as with a real worker: not run yet
        r = client.post("/releases/new/", {"dataset": "rel", "name": "bg-v1", "method": "dawid_skene"})
    op = Operation.objects.get(kind="release")
    assert r.status_code == 302 and r["Location"] == f"/ops/operations/{op.pk}/"
    assert op.status == "running" and not Release.objects.filter(name="bg-v1").exists() and len(queued) == 1
    page = client.get(r["Location"]).content.decode()
    assert 'http-equiv="refresh"' in page and "bg-v1" in page and 'id="op-result"' not in page
    queued[0]()  # the worker's turn
    op.refresh_from_db()
    release = Release.objects.get(dataset__name="rel", name="bg-v1")
    assert op.status == "done" and op.summary["release"] == release.pk and release.method == "dawid_skene"
    page = client.get(r["Location"]).content.decode()
    assert f'href="/releases/{release.pk}/"' in page and "3 clips, " in page and 'http-equiv="refresh"' not in page
    # a redelivered task changes nothing
    from labels.services.create import release_create_run

    assert release_create_run(op.pk).status == "done" and Release.objects.filter(name="bg-v1").count() == 1


def test_bad_release_requests_are_refused_before_anything_is_queued(crowd, client):
    from catalog.models import Operation

    staff_user = get_user_model().objects.create_user("admin4", password="x", is_staff=True)
    client.force_login(staff_user)
    Dataset.objects.create(name="empty")
    for body, text in (
        ({"dataset": "rel", "name": "x", "method": "vote"}, "unknown merge method 'vote'"),
        ({"dataset": "rel", "name": "a/b"}, "is not allowed"),
        ({"dataset": "empty", "name": "v1"}, "has no approved annotations yet"),
    ):
        r = client.post("/releases/new/", body, follow=True)
        assert text in html.unescape(r.content.decode()), body
    assert Operation.objects.count() == 0


def test_api_background_creation_returns_the_operation_to_poll(crowd, staff, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        r = staff.post("/api/releases/", {"dataset": "rel", "name": "api-bg", "background": True}, format="json")
    assert r.status_code == 202, r.content
    op = staff.get(r.json()["status_url"]).json()
    release = Release.objects.get(name="api-bg")
    assert op["kind"] == "release" and op["status"] == "done" and op["summary"]["release"] == release.pk
    card = staff.get(f"/api/releases/{release.pk}/").json()["stats"]["quality_card"]
    assert card["available"] and card["clips"] == 1 and card["micro_f1"] == 0.0 and "micro_f1_ci95" in card
    assert set(card["modality"]) == {"audible", "visible"} and "playing violin, fiddle" in card["per_class"]
    r = staff.post("/api/releases/", {"dataset": "rel", "name": "api-bg", "background": True}, format="json")
    assert r.status_code == 400 and r.json()["field"] == "name"


def test_a_release_that_fails_in_the_background_says_why(crowd, monkeypatch):
    from catalog.models import Operation
    from labels.services import create as releases

    op = Operation.objects.create(
        kind="release",
        dataset=Dataset.objects.get(name="rel"),
        total=1,
        summary={"name": "boom", "method": "majority", "params": {"k": 3}, "gold_override": True},
    )
    monkeypatch.setattr(releases, "release_create", lambda *a, **k: (_ for _ in ()).throw(MemoryError("out of memory")))
    op = releases.release_create_run(op.pk)
    assert op.status == "failed" and op.message == "MemoryError: out of memory" and op.finished_at
    assert not Release.objects.filter(name="boom").exists()
