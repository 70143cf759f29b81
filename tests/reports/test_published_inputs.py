"""Reports from the files VGGSounder publishes: defaultdict pickles with stray class names, judged CSVs; --strict /
``strict`` refuses; a failed report's error names the uploaded file, never a server path."""

from __future__ import annotations

import io
import json
import pickle
from collections import defaultdict

import pandas as pd
import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from benchmark import LabelSet, default_class_names
from benchmark.labels import default_labels_csv
from benchmark.synthetic import synthetic_predictions
from reports.models import MetricReport
from tests.benchmark.test_published_files import verdicts, write_judged

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def slice_inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("published_inputs")
    df = pd.read_csv(default_labels_csv(), dtype=str, keep_default_na=False)
    ids = df.video_id.drop_duplicates().iloc[::150][:90]
    labels_csv = d / "labels.csv"
    df[df.video_id.isin(set(ids))].to_csv(labels_csv, index=False)
    classes = default_class_names()
    labels = LabelSet.from_csv(labels_csv, classes)
    preds = d / "preds"
    preds.mkdir()
    data = defaultdict(dict)  # the published container, with one stray name as in a published file
    for vid, entry in synthetic_predictions(labels, seed=3, kind="labels", skill=4).items():
        data[vid].update(entry)
    first = next(iter(data))
    data[first]["predictions"]["v"] = list(data[first]["predictions"]["v"]) + ["wind rustiling leaves"]
    with open(preds / "gemini-1.5-flash.pkl", "wb") as fh:
        pickle.dump(data, fh, protocol=4)
    return {"labels_csv": labels_csv, "preds": preds, "labels": labels, "first": first}


def test_benchmark_reads_published_pickles_and_reports_skipped_names(slice_inputs, tmp_path, taxonomy, capsys):
    out = tmp_path / "out"
    call_command(
        "benchmark",
        "--labels",
        str(slice_inputs["labels_csv"]),
        "--predictions",
        str(slice_inputs["preds"]),
        "--no-figures",
        "--no-meta",
        "--out",
        str(out),
    )
    printed = capsys.readouterr().out
    assert "model gemini-1.5-flash: labels" in printed
    assert "1 unknown class name(s) skipped (1 occurrences): 'wind rustiling leaves' (1x)" in printed
    rep = json.loads((out / "report.json").read_text())
    assert rep["models"]["gemini-1.5-flash"]["unknown_names"] == {"wind rustiling leaves": 1}
    with pytest.raises(CommandError) as err:
        call_command(
            "benchmark",
            "--labels",
            str(slice_inputs["labels_csv"]),
            "--predictions",
            str(slice_inputs["preds"]),
            "--strict",
            "--no-figures",
            "--out",
            str(tmp_path / "strict"),
        )
    assert f"clip {slice_inputs['first']!r} input 'v': unknown class name 'wind rustiling leaves'" in str(err.value)
    assert "gemini-1.5-flash.pkl" in str(err.value)


def test_benchmark_reads_a_judged_csv_directory(slice_inputs, tmp_path, taxonomy, capsys):
    labels = slice_inputs["labels"]
    root = tmp_path / "csv"
    vids = list(labels.video_ids)[:30]
    for inp in ("a", "v", "av"):
        rows = []
        for i, vid in enumerate(vids):
            truth = [labels.classes[j] for j in labels.truth("all")[i].nonzero()[0]]
            rows.append(
                (
                    f"{vid}.mp4",
                    "[]"
                    if (inp == "v" and i == 0)
                    else {**verdicts(raining=("no", 0)), **{t: {"pred": "yes", "score": 5} for t in truth}},
                    "x",
                )
            )
        write_judged(root / inp / "predictions-video-llama-2-av.csv", rows)
    out = tmp_path / "out"
    call_command(
        "benchmark",
        "--labels",
        str(slice_inputs["labels_csv"]),
        "--predictions",
        str(root),
        "--regime",
        "all",
        "--no-figures",
        "--no-meta",
        "--out",
        str(out),
    )
    printed = capsys.readouterr().out
    assert "model video-llama-2-av: labels, 29 clips, inputs a/v/av; 1 clips left out" in printed
    rep = json.loads((out / "report.json").read_text())
    assert rep["results"]["video-llama-2-av"]["av"]["hit_rate"] > 0


@pytest.fixture
def researcher():
    from catalog.services.users import user_create

    info = user_create("rosa", "researcher", password="pw-rosa-123")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {info['token']}")
    return client


def _post(researcher, slice_inputs, capture, **extra):
    labels = io.BytesIO(slice_inputs["labels_csv"].read_bytes())
    labels.name = "labels.csv"
    upload = io.BytesIO((slice_inputs["preds"] / "gemini-1.5-flash.pkl").read_bytes())
    upload.name = "gemini-1.5-flash.pkl"
    with capture(execute=True):
        resp = researcher.post(
            "/api/reports/", {"labels_file": labels, "prediction_files": [upload], **extra}, format="multipart"
        )
    assert resp.status_code == 202, resp.content
    return researcher.get(f"/api/reports/{resp.json()['id']}/").json()


def test_api_strict_report_fails_naming_the_upload_not_a_server_path(
    slice_inputs, researcher, taxonomy, django_capture_on_commit_callbacks
):
    done = _post(researcher, slice_inputs, django_capture_on_commit_callbacks, meta="false")
    assert done["status"] == "done", done["error"]
    assert done["summary"]["models"]["gemini-1.5-flash"]["unknown_names"] == {"wind rustiling leaves": 1}
    failed = _post(researcher, slice_inputs, django_capture_on_commit_callbacks, strict="true")
    assert failed["status"] == "failed"
    error = failed["error"]
    assert error.startswith("gemini-1.5-flash.pkl: clip ") and "unknown class name 'wind rustiling leaves'" in error
    assert str(settings.MEDIA_ROOT) not in error and "reports/uploads" not in error and "/tmp" not in error
    assert MetricReport.objects.get(pk=failed["id"]).params["strict"] is True


def test_public_message_names_uploads_and_cuts_other_server_paths(tmp_path):
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    from reports.services import public_message

    stored = default_storage.save("reports/uploads/abc123/ola.pkl", ContentFile(b"x"))
    local = default_storage.path(stored)
    params = {"labels": "3", "predictions": [f"upload:{stored}", "run:4"]}
    work = str(tmp_path / "avcrowd-report-xyz")
    msg = (
        f"{local}: clip 'c1' input 'a': unknown class name 'x'; see {work}/report.json and "
        "/srv/avcrowd/var/secret/model.npz; inputs a/v/av; https://example.org/docs/page"
    )
    out = public_message(msg, params, tmp_dir=work)
    assert out.startswith("ola.pkl: clip 'c1' input 'a'")
    assert "see report.json and model.npz;" in out
    assert "inputs a/v/av; https://example.org/docs/page" in out
    assert str(settings.MEDIA_ROOT) not in out and "/srv/" not in out and str(tmp_path) not in out
