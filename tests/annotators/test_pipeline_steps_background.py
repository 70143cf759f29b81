"""Imports started from the steps page or the API run in the background: the request checks and saves the upload and
answers 202 with the Operation, which then shows the progress and the outcome (a background thread without a
broker, a Celery worker with one). A refused import changes nothing and its Operation names the upload, never a
server path. LLM-judged prediction CSVs (VGGSounder's published layout) are imported with their input."""

import threading
import time
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from catalog.models import Clip, Dataset, Operation
from catalog.services import clips as clip_services
from catalog.services.operations import operation_queue
from catalog.services.uploads import STAGING_PREFIX
from catalog.services.users import user_create
from crowd.services.steps import gold_import_request
from crowd.tasks import gold_import_task
from proposals.models import ModelRun
from proposals.selectors import run_label_sets


def staged_folders(settings):
    """The uploads waiting in the media storage for their import (a local storage in the tests)."""
    root = Path(settings.MEDIA_ROOT) / STAGING_PREFIX
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


@pytest.fixture
def staging(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings


def wait_for(client, url, check, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        body = client.get(url).json()
        if check(body):
            return body
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting; last: {body}")


@pytest.mark.django_db(transaction=True)
def test_a_clip_import_answers_at_once_and_its_progress_shows_while_a_thread_imports(
    client, taxonomy, monkeypatch, staging
):
    client.force_login(user_create("boss", "admin")["user"])
    staging.OPERATION_PROGRESS_SECONDS = 0  # every step written, so that the test sees it
    gate = threading.Event()
    real_validate = clip_services.clips_validate
    threads = []

    def gated(*args, **kwargs):
        out = real_validate(*args, **kwargs)  # every clip checked: 40/40 written on the Operation
        threads.append(threading.current_thread().name)
        assert gate.wait(30), "the test never opened the gate"
        return out

    monkeypatch.setattr(clip_services, "clips_validate", gated)
    rows = "".join(f"v{i},https://cdn.example.org/v{i}.mp4\n" for i in range(40))
    resp = client.post(
        "/api/datasets/bg-clips/clips/import/",
        {"csv": SimpleUploadedFile("my clips.csv", ("video_id,url\n" + rows).encode())},
    )
    assert resp.status_code == 202, resp.content
    body = resp.json()
    assert body["status"] == "running" and body["summary"]["upload"] == "my_clips.csv"
    # the thread may have begun by the time the answer is written; it cannot have written a clip (the gate)
    assert body["message"] in (
        "queued: import my_clips.csv into dataset bg-clips",
        "reading my_clips.csv",
        "checking clips",
    )
    assert not Clip.objects.exists()
    assert len(staged_folders(staging)) == 1  # the upload waits for the thread

    midway = wait_for(client, body["status_url"], lambda b: b["message"] == "checking clips" and b["done"] == 40)
    assert midway["status"] == "running" and midway["total"] == 40 and midway["percent"] == 100
    page = client.get(body["page"]).content.decode()
    assert 'http-equiv="refresh"' in page and "checking clips" in page and "40/40" in page
    gate.set()
    done = wait_for(client, body["status_url"], lambda b: b["status"] != "running")
    assert done["status"] == "done" and done["message"] == "imported 40 clip(s) into dataset bg-clips"
    assert done["done"] == done["total"] == 40 and done["summary"]["clips"] == 40
    assert done["dataset"] == "bg-clips" and Clip.objects.filter(dataset__name="bg-clips").count() == 40
    assert threads and threads[0].startswith("avcrowd-catalog.tasks.clips_import_task")
    assert staged_folders(staging) == []  # removed once imported


@pytest.mark.django_db(transaction=True)
def test_a_refused_clip_import_fails_its_operation_naming_the_upload_and_leaves_nothing(client, taxonomy, staging):
    client.force_login(user_create("boss", "admin")["user"])
    csv = b"video_id,url\nok1,https://cdn.example.org/ok1.mp4\nbad id!,https://cdn.example.org/x.mp4\n"
    resp = client.post("/api/datasets/bg-bad/clips/import/", {"csv": SimpleUploadedFile("batch.csv", csv)})
    assert resp.status_code == 202
    done = wait_for(client, resp.json()["status_url"], lambda b: b["status"] != "running")
    assert done["status"] == "failed" and "batch.csv:3: field 'video_id' is 'bad id!'" in done["message"]
    assert str(staging.MEDIA_ROOT) not in done["message"] and "/tmp" not in done["message"]
    assert not Clip.objects.exists() and not Dataset.objects.filter(name="bg-bad").exists()
    assert staged_folders(staging) == []
    page = client.get(resp.json()["page"]).content.decode()
    assert 'id="op-retry"' not in page and "batch.csv" in page

    # what can be checked at once is refused by the request itself: 400, nothing saved, no Operation
    media = SimpleUploadedFile("no spaces allowed.mp4", b"\x00\x00")
    refused = client.post("/api/datasets/bg-bad/clips/import/", {"media": [media]})
    assert refused.status_code == 400 and "no spaces allowed.mp4: not allowed" in refused.content.decode()
    assert Operation.objects.count() == 1 and staged_folders(staging) == []


def judged_csv(rows):
    """A judged CSV as VGGSounder publishes it: video_id with .mp4, suggestions as a dict literal, response."""
    lines = ["video_id,suggestions,response"]
    for vid, present, absent in rows:
        sug = {name: {"pred": "yes", "score": 5} for name in present} | {
            name: {"pred": "no", "score": 1} for name in absent
        }
        lines.append(f'{vid}.mp4,"{sug!r}","A {vid} clip, with sound."')
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.django_db
def test_a_judged_vggsounder_csv_is_imported_with_its_input(
    client, make_crowd_dataset, taxonomy, monkeypatch, staging, django_capture_on_commit_callbacks
):
    monkeypatch.setattr("catalog.services.operations.BACKGROUND_THREAD", False)
    client.force_login(user_create("boss", "admin")["user"])
    ds = make_crowd_dataset("judged", 3, 0)
    url = f"/api/datasets/{ds.name}/predictions/import/"
    data = judged_csv(
        [("r000", [taxonomy[0]], [taxonomy[5]]), ("r001", [taxonomy[1], taxonomy[2]], []), ("r002", [], [taxonomy[3]])]
    )

    def post(body):
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(url, body)

    no_input = post({"file": SimpleUploadedFile("predictions-gemini-1.5-pro.csv", data)})
    assert no_input.status_code == 400
    assert "LLM-judged CSV (video_id,suggestions,response)" in no_input.json()["error"]
    assert "choose its input (a, v, av)" in no_input.json()["error"]
    bad_input = post({"file": SimpleUploadedFile("predictions-gemini-1.5-pro.csv", data), "input": "x"})
    assert bad_input.status_code == 400 and "input" in bad_input.json()
    plain = b"video_id,input,label\nr000,a,dog barking\n"
    not_judged = post({"file": SimpleUploadedFile("plain.csv", plain), "input": "a"})
    assert not_judged.status_code == 400 and "only for an LLM-judged CSV" in not_judged.json()["error"]
    assert not Operation.objects.exists() and not ModelRun.objects.exists() and staged_folders(staging) == []

    resp = post({"file": SimpleUploadedFile("predictions-gemini-1.5-pro.csv", data), "input": "v"})
    assert resp.status_code == 202 and resp.json()["summary"]["input"] == "v"
    done = client.get(resp.json()["status_url"]).json()
    assert done["status"] == "done", done["message"]
    assert done["message"] == "imported 3 clips of 'gemini-1.5-pro' (labels: v) into dataset judged"
    run = ModelRun.objects.get(dataset=ds)
    assert run.model_name == "gemini-1.5-pro" and run.modalities == ["v"] and run.n_clips == 3
    got = run_label_sets(run)
    assert {vid: sorted(labels["v"]) for vid, labels in got.items()} == {
        "r000": [taxonomy[0]],
        "r001": sorted([taxonomy[1], taxonomy[2]]),
        "r002": [],
    }

    # a clip outside the dataset: the Operation fails naming the upload, and the run stays as it was
    other = judged_csv([("zzz", [taxonomy[0]], [])])
    failed = post({"file": SimpleUploadedFile("predictions-gemini-1.5-pro.csv", other), "input": "a"})
    failed = client.get(failed.json()["status_url"]).json()
    assert failed["status"] == "failed" and "predictions-gemini-1.5-pro.csv" in failed["message"]
    assert "not in dataset judged" in failed["message"] and str(staging.MEDIA_ROOT) not in failed["message"]
    run.refresh_from_db()
    assert run.modalities == ["v"] and run.n_clips == 3


def test_a_real_worker_imports_gold_and_reports_on_the_operation(celery_worker_process, make_crowd_dataset, taxonomy):
    from django.conf import settings

    ds = make_crowd_dataset("worker-gold", 2, 0)
    for i in range(3):
        Clip.objects.create(dataset=ds, video_id=f"g{i:03d}", media_url=f"https://cdn.example.org/g{i}.mp4")
    lines = ["id,label,original,modality"] + [f"g{i:03d},{taxonomy[100 + i]},True,AV" for i in range(3)]
    upload = SimpleUploadedFile("lab gold.csv", ("\n".join(lines) + "\n").encode())
    op, kwargs = gold_import_request(ds, upload)
    operation_queue(op, gold_import_task, kwargs=kwargs, queue=celery_worker_process, background=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        op.refresh_from_db()
        if op.status != "running":
            break
        time.sleep(0.2)
    assert op.status == "done", op.message
    assert op.message.startswith("imported 3 gold label rows into dataset worker-gold")
    assert op.done == op.total == 1 and op.summary["upload"] == "lab_gold.csv" and op.heartbeat_at
    assert Clip.objects.filter(dataset=ds, is_gold=True).count() == 3
    assert not (Path(settings.MEDIA_ROOT) / STAGING_PREFIX / kwargs["staged"]).exists()  # the worker removed it


@pytest.mark.django_db
def test_the_steps_page_imports_a_judged_csv_with_the_input_chosen(
    client, make_crowd_dataset, taxonomy, monkeypatch, staging, django_capture_on_commit_callbacks
):
    monkeypatch.setattr("catalog.services.operations.BACKGROUND_THREAD", False)
    client.force_login(user_create("boss", "admin")["user"])
    ds = make_crowd_dataset("judgedpage", 2, 0)
    page = client.get(f"/ops/{ds.name}/steps/").content.decode()
    assert '<select name="input">' in page and '<option value="av">' in page
    data = judged_csv([("r000", [taxonomy[7]], []), ("r001", [], [taxonomy[7]])])
    with django_capture_on_commit_callbacks(execute=True):
        resp = client.post(
            f"/ops/{ds.name}/steps/predictions/",
            {"file": SimpleUploadedFile("predictions-video-llama.csv", data), "model": "", "input": "av"},
        )
    op = Operation.objects.get()
    assert resp["Location"] == f"/ops/operations/{op.pk}/"
    assert (
        op.status == "done" and op.message == "imported 2 clips of 'video-llama' (labels: av) into dataset judgedpage"
    )
    run = ModelRun.objects.get(dataset=ds)
    assert run_label_sets(run)["r000"]["av"] == [taxonomy[7]] and run_label_sets(run)["r001"]["av"] == []

    with django_capture_on_commit_callbacks(execute=True):
        back = client.post(
            f"/ops/{ds.name}/steps/predictions/",
            {"file": SimpleUploadedFile("predictions-video-llama.csv", data), "model": ""},
            follow=True,
        )
    assert back.redirect_chain[-1][0] == f"/ops/{ds.name}/steps/"
    assert "choose its input (a, v, av)" in back.content.decode() and Operation.objects.count() == 1


@pytest.mark.django_db
def test_an_unexpected_error_is_shown_without_the_server_path(
    client, make_crowd_dataset, monkeypatch, staging, django_capture_on_commit_callbacks
):
    import proposals.services

    def broken(dataset, name, path, **kwargs):
        raise OSError(f"[Errno 5] Input/output error: '{path}'")

    monkeypatch.setattr("catalog.services.operations.BACKGROUND_THREAD", False)
    monkeypatch.setattr(proposals.services, "run_import", broken)
    client.force_login(user_create("boss", "admin")["user"])
    ds = make_crowd_dataset("ioerr", 1, 0)
    with django_capture_on_commit_callbacks(execute=True):
        resp = client.post(
            f"/api/datasets/{ds.name}/predictions/import/",
            {"file": SimpleUploadedFile("m.csv", b"video_id,input,label\nr000,a,dog barking\n")},
        )
    op = client.get(resp.json()["status_url"]).json()
    assert op["status"] == "failed" and op["message"] == "OSError: [Errno 5] Input/output error: 'm.csv'"
    assert staged_folders(staging) == [] and not ModelRun.objects.exists()


@pytest.mark.django_db
def test_uploads_wait_in_the_s3_media_storage_so_a_worker_elsewhere_reads_them(
    client, make_crowd_dataset, taxonomy, settings, monkeypatch, django_capture_on_commit_callbacks
):
    import boto3
    from moto import mock_aws

    monkeypatch.setattr("catalog.services.operations.BACKGROUND_THREAD", False)
    settings.AWS_S3_ACCESS_KEY_ID, settings.AWS_S3_SECRET_ACCESS_KEY = "k", "s"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "catalog.storage.MediaStorage",
            "OPTIONS": {"bucket_name": "avcrowd-media", "region_name": "us-east-1", "endpoint_url": None},
        },
    }
    client.force_login(user_create("boss", "admin")["user"])
    ds = make_crowd_dataset("s3gold", 1, 0)
    Clip.objects.create(dataset=ds, video_id="g000", media_url="https://cdn.example.org/g0.mp4")
    csv = f"id,label,original,modality\ng000,{taxonomy[100]},True,AV\n".encode()
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="avcrowd-media")
        seen = []

        def keys():
            return [o["Key"] for o in s3.list_objects_v2(Bucket="avcrowd-media").get("Contents", [])]

        from crowd.services import steps

        real_import = steps.gold_import_csv

        def looking(dataset, path):
            seen.extend(keys())
            return real_import(dataset, path)

        monkeypatch.setattr(steps, "gold_import_csv", looking)
        with django_capture_on_commit_callbacks(execute=True):
            resp = client.post(f"/api/datasets/{ds.name}/gold/import/", {"file": SimpleUploadedFile("gold.csv", csv)})
        op = client.get(resp.json()["status_url"]).json()
        assert op["status"] == "done" and op["message"].startswith("imported 1 gold label rows"), op
        assert len(seen) == 1 and seen[0].startswith("uploads-staged/") and seen[0].endswith("/gold.csv")
        assert keys() == []  # removed once imported
    assert Clip.objects.get(dataset=ds, video_id="g000").is_gold


@pytest.mark.django_db
def test_an_import_no_worker_picked_up_is_retried_with_its_upload(
    make_crowd_dataset, taxonomy, staging, monkeypatch, django_capture_on_commit_callbacks
):
    import datetime as dt

    from django.utils import timezone

    from catalog.services.operations import operation_retry, operations_fail_stale

    ds = make_crowd_dataset("stale", 1, 0)
    Clip.objects.create(dataset=ds, video_id="g000", media_url="https://cdn.example.org/g0.mp4")
    upload = SimpleUploadedFile("gold.csv", f"id,label,original,modality\ng000,{taxonomy[100]},True,AV\n".encode())
    op, kwargs = gold_import_request(ds, upload)
    operation_queue(op, gold_import_task, kwargs=kwargs, queue="default", background=True)  # never sent: no commit
    later = timezone.now() + dt.timedelta(seconds=staging.OPERATION_QUEUED_SECONDS + 1)
    assert operations_fail_stale(now=later) == 1
    op.refresh_from_db()
    assert op.status == "failed" and op.message.startswith("Never started") and op.can_retry
    assert len(staged_folders(staging)) == 1  # the upload waits for the retry

    monkeypatch.setattr("catalog.services.operations.BACKGROUND_THREAD", False)
    with django_capture_on_commit_callbacks(execute=True):
        again = operation_retry(op)
    again.refresh_from_db()
    assert again.status == "done" and again.message.startswith("imported 1 gold label rows"), again.message
    assert again.summary["upload"] == "gold.csv" and not again.can_retry and staged_folders(staging) == []
