"""Metric reports in the product: the `benchmark` command, the REST API (start, status, files) and the pages.

Inputs are real: a release imported from a slice of the published VGGSounder CSV, a model run imported into the
prediction store, and prediction pickles; every number shown is checked against the pure benchmark library.
"""

from __future__ import annotations

import io
import json
import os
import pickle

import pandas as pd
import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from benchmark import LabelSet, default_class_names, evaluate, metric_table
from benchmark.io import load_predictions_pickle
from benchmark.labels import default_labels_csv
from benchmark.synthetic import synthetic_predictions
from catalog.models import Clip, Dataset
from reports.models import MetricReport

pytestmark = pytest.mark.django_db


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A 120-clip slice of the published labels (CSV), and two models' pickles for it."""
    d = tmp_path_factory.mktemp("report_inputs")
    df = pd.read_csv(default_labels_csv(), dtype=str, keep_default_na=False)
    ids = df.video_id.drop_duplicates().iloc[::120][:120]
    labels_csv = d / "labels.csv"
    df[df.video_id.isin(set(ids))].to_csv(labels_csv, index=False)
    classes = default_class_names()
    labels = LabelSet.from_csv(labels_csv, classes)
    preds = d / "preds"
    preds.mkdir()
    with open(preds / "cav-mae.pkl", "wb") as fh:
        pickle.dump(synthetic_predictions(labels, seed=1, skill=4), fh)
    with open(preds / "gemini.pkl", "wb") as fh:
        pickle.dump(synthetic_predictions(labels, seed=2, kind="labels", skill=4), fh)
    return {"dir": d, "labels_csv": labels_csv, "preds": preds, "labels": labels, "classes": classes}


@pytest.fixture
def release_and_run(inputs):
    from labels.services.imports import release_import
    from proposals.services import run_import

    ds = Dataset.objects.create(name="vggs-slice")
    Clip.objects.bulk_create([Clip(dataset=ds, video_id=v) for v in inputs["labels"].video_ids])
    release = release_import(ds, "v1", str(inputs["labels_csv"]))
    run = run_import(ds, "cav-mae", str(inputs["preds"] / "cav-mae.pkl"))
    return release, run


def expected_table(inputs, names=("cav-mae", "gemini"), regime="default"):
    models = [load_predictions_pickle(inputs["preds"] / f"{n}.pkl", inputs["classes"]) for n in names]
    return metric_table(evaluate(inputs["labels"], models, regime=regime))


def test_command_with_label_csv_and_pickle_directory(inputs, tmp_path, capsys):
    out = tmp_path / "out"
    call_command(
        "benchmark",
        "--labels",
        str(inputs["labels_csv"]),
        "--predictions",
        str(inputs["preds"]),
        "--regime",
        "all",
        "--out",
        str(out),
    )
    printed = capsys.readouterr().out
    assert "model cav-mae: scores" in printed and "model gemini: labels" in printed and "wrote" in printed
    rep = json.loads((out / "report.json").read_text())
    want = expected_table(inputs, regime="all")
    got = pd.read_csv(out / "paper.csv", index_col=0)
    assert got.loc["gemini", "f1 a only"] == pytest.approx(want.loc["gemini", ("f1", "a only")], abs=1e-5)
    assert got.loc["cav-mae", "mu av"] == pytest.approx(want.loc["cav-mae", ("mu", "av")], abs=1e-5)
    assert rep["params"]["regime"] == "all" and rep["labels"]["clips_in_regime"] == len(inputs["labels"])
    for name in ("radar.png", "radar.svg", "cooccurrence.svg", "metrics.tex", "delta_f1.md"):
        assert (out / name).stat().st_size > 0


def test_command_with_release_and_stored_run(inputs, release_and_run, tmp_path):
    release, run = release_and_run
    out = tmp_path / "out"
    call_command(
        "benchmark", "--labels", "vggs-slice/v1", "--predictions", f"run:{run.pk}", "--out", str(out), "--no-figures"
    )
    got = pd.read_csv(out / "metrics.csv", index_col=0)
    want = expected_table(inputs, names=("cav-mae",))
    # stored runs keep float32 scores: equal to the pickle's numbers up to float32 rounding of the ranking
    assert got.loc["cav-mae", "f1@3 av"] == pytest.approx(want.loc["cav-mae", ("f1@3", "av")], abs=0.5)
    assert got.loc["cav-mae", "auc_roc a"] == pytest.approx(want.loc["cav-mae", ("auc_roc", "a")], abs=0.1)
    assert not (out / "radar.png").exists()


def test_command_refuses_bad_input_with_the_reason(inputs, tmp_path):
    with pytest.raises(CommandError, match="no release 'nope' and no such label CSV file"):
        call_command("benchmark", "--labels", "nope", "--predictions", str(inputs["preds"]), "--out", str(tmp_path))
    evil = tmp_path / "evil"
    evil.mkdir()
    with open(evil / "m.pkl", "wb") as fh:
        pickle.dump({"x": Evil()}, fh)
    with pytest.raises(CommandError, match=r"global '(posix|os)\.system'"):
        call_command(
            "benchmark", "--labels", str(inputs["labels_csv"]), "--predictions", str(evil), "--out", str(tmp_path / "o")
        )
    with pytest.raises(CommandError, match="neither a predictions file/directory nor the name or id"):
        call_command(
            "benchmark",
            "--labels",
            str(inputs["labels_csv"]),
            "--predictions",
            "no-such-model",
            "--out",
            str(tmp_path / "o"),
        )


@pytest.fixture
def researcher():
    from catalog.services.users import user_create

    info = user_create("rita", "researcher", password="pw-rita-123")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {info['token']}")
    return client


def test_api_starts_a_report_and_serves_its_files(
    inputs, release_and_run, researcher, django_capture_on_commit_callbacks
):
    release, run = release_and_run
    with open(inputs["preds"] / "gemini.pkl", "rb") as fh:
        upload = io.BytesIO(fh.read())
    upload.name = "gemini.pkl"
    with django_capture_on_commit_callbacks(execute=True):
        resp = researcher.post(
            "/api/reports/",
            {
                "labels": str(release.pk),
                "predictions": [f"run:{run.pk}"],
                "prediction_files": [upload],
                "title": "slice",
            },
            format="multipart",
        )
    assert resp.status_code == 202, resp.content
    pk = resp.json()["id"]
    detail = researcher.get(f"/api/reports/{pk}/").json()
    assert detail["status"] == "done", detail["error"]
    assert detail["summary"]["labels"]["clips"] == len(inputs["labels"])
    assert set(detail["summary"]["models"]) == {"cav-mae", "gemini"}
    links = detail["links"]
    assert {"report.json", "paper.csv", "paper.tex", "radar.png", "delta_f1.svg"} <= set(links)
    png = researcher.get(links["radar.png"])
    assert png.status_code == 200 and b"".join(png.streaming_content)[:4] == b"\x89PNG"
    csv = researcher.get(links["paper.csv"])
    table = pd.read_csv(io.BytesIO(b"".join(csv.streaming_content)), index_col=0)
    want = expected_table(inputs, names=("gemini",))
    assert table.loc["gemini", "f1 av"] == pytest.approx(want.loc["gemini", ("f1", "av")], abs=1e-5)
    assert researcher.get(f"/api/reports/{pk}/files/nope.csv").status_code == 404


def test_api_refuses_bad_requests_and_outsiders(release_and_run, researcher, inputs):
    release, run = release_and_run
    r = researcher.post("/api/reports/", {"labels": "nope", "predictions": [f"run:{run.pk}"]}, format="json")
    assert r.status_code == 400 and "no release 'nope'" in r.json()["error"]
    r = researcher.post("/api/reports/", {"labels": str(release.pk), "predictions": ["run:999999"]}, format="json")
    assert r.status_code == 400 and "no model run 999999" in r.json()["error"]
    r = researcher.post(
        "/api/reports/",
        {"labels": str(release.pk), "regime": "sometimes", "predictions": [f"run:{run.pk}"]},
        format="json",
    )
    assert r.status_code == 400 and r.json()["field"] == "regime"
    assert MetricReport.objects.count() == 0
    from catalog.services.users import user_create

    user_create("anna", "annotator", password="pw-anna-123")
    other = APIClient()
    other.login(username="anna", password="pw-anna-123")
    assert other.get("/api/reports/").status_code == 403
    assert APIClient().get("/api/reports/").status_code in (401, 403)


def test_failed_report_records_the_reason(inputs, researcher, django_capture_on_commit_callbacks, tmp_path):
    bad = io.BytesIO(
        b"video_id,label,modality,background_music,static_image,voice_over\nc1,unicorn,A,False,False,False\n"
    )
    bad.name = "labels.csv"
    with open(inputs["preds"] / "gemini.pkl", "rb") as fh:
        upload = io.BytesIO(fh.read())
    upload.name = "gemini.pkl"
    with django_capture_on_commit_callbacks(execute=True):
        resp = researcher.post("/api/reports/", {"labels_file": bad, "prediction_files": [upload]}, format="multipart")
    assert resp.status_code == 202
    detail = researcher.get(f"/api/reports/{resp.json()['id']}/").json()
    assert detail["status"] == "failed" and "unknown class name" in detail["error"] and "unicorn" in detail["error"]


def test_pages_list_start_and_show_a_report(
    inputs, release_and_run, client, django_user_model, django_capture_on_commit_callbacks
):
    release, run = release_and_run
    django_user_model.objects.create_user("boss", password="pw-boss-123", is_staff=True)
    client.login(username="boss", password="pw-boss-123")
    page = client.get("/reports/")
    assert page.status_code == 200 and b"vggs-slice/v1" in page.content and b"cav-mae" in page.content
    with django_capture_on_commit_callbacks(execute=True):
        resp = client.post(
            "/reports/new/",
            {"labels": str(release.pk), "runs": [str(run.pk)], "regime": "all", "confusion": "v1.0", "meta": "on"},
        )
    assert resp.status_code == 302
    report = MetricReport.objects.get()
    assert report.status == "done", report.error
    detail = client.get(resp["Location"]).content.decode()
    assert 'class="sortable metric-table"' in detail and "frontend/reports/sortable.js" in detail
    assert f"/reports/{report.pk}/files/radar.svg" in detail
    svg = client.get(f"/reports/{report.pk}/files/radar.svg")
    assert svg.status_code == 200 and svg["Content-Type"].startswith("image/svg")
    # a missing release is reported on the list page, nothing is created
    resp = client.post("/reports/new/", {"labels": "", "runs": [str(run.pk)]}, follow=True)
    assert b"no label set given" in resp.content and MetricReport.objects.count() == 1


def test_command_judges_free_text_captions(inputs, tmp_path, capsys):
    labels = inputs["labels"]
    classes = labels.classes
    T = labels.truth("a")
    lines, named = [], 0
    for i, vid in enumerate(labels.video_ids[:40]):
        names = [classes[j] for j in T[i].nonzero()[0]]
        if i % 2 == 0 and names:
            text, named = f"One can hear {names[0]}.", named + 1
        else:
            text = "Nothing in particular happens."
        lines.append(json.dumps({"video_id": vid, "a": text, "av": text}))
    path = tmp_path / "video-llm.jsonl"
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    call_command(
        "benchmark",
        "--labels",
        str(inputs["labels_csv"]),
        "--captions",
        str(path),
        "--regime",
        "all",
        "--no-figures",
        "--no-meta",
        "--out",
        str(out),
    )
    assert "model video-llm: labels" in capsys.readouterr().out
    rep = json.loads((out / "report.json").read_text())
    assert rep["params"]["judge"] == "embedding"
    assert rep["params"]["judge_stats"]["video-llm"]["asked"] >= 40
    a = rep["results"]["video-llm"]["a"]
    # the descriptions that name an audible class of their clip are hits; clips without one are misses
    assert a["hit_rate"] == pytest.approx(named / int(T.any(axis=1).sum()))
    assert a["precision"] == 1.0  # the judge is only asked about the clip's audible classes


def test_a_release_name_in_two_datasets_is_refused_naming_both(taxonomy):
    from catalog.errors import ValidationError
    from labels.models import Release
    from reports.services import release_lookup

    for ds_name in ("ds-one", "ds-two"):
        Release.objects.create(dataset=Dataset.objects.create(name=ds_name), name="v1", method=Release.IMPORT)
    with pytest.raises(ValidationError) as exc:
        release_lookup("v1")
    assert "ds-one/v1" in exc.value.message and "ds-two/v1" in exc.value.message and exc.value.field == "labels"
    assert release_lookup("ds-two/v1").dataset.name == "ds-two"
    assert release_lookup(str(release_lookup("ds-one/v1").pk)).dataset.name == "ds-one"


def test_api_lists_every_report_a_page_at_a_time_newest_first(researcher):
    from reports.models import MetricReport

    made = [MetricReport.objects.create(title=f"r{i}", status="done" if i % 3 else "failed") for i in range(250)]
    first = researcher.get("/api/reports/").json()
    assert first["count"] == 250 and len(first["results"]) == 100 and first["previous"] is None
    assert [r["title"] for r in first["results"][:2]] == ["r249", "r248"]
    seen, url = [], "/api/reports/?limit=120"
    while url:
        page = researcher.get(url).json()
        seen += [r["id"] for r in page["results"]]
        url = page["next"]
    assert sorted(seen) == sorted(m.pk for m in made) and len(seen) == 250  # nothing beyond 100 is lost
    failed = researcher.get("/api/reports/?status=failed&limit=1000").json()
    assert failed["count"] == 84 and {r["status"] for r in failed["results"]} == {"failed"}
    for query, field in (
        ("limit=0", "limit"),
        ("limit=5000", "limit"),
        ("offset=-1", "offset"),
        ("limit=ten", "limit"),
        ("status=finished", "status"),
    ):
        resp = researcher.get(f"/api/reports/?{query}")
        assert resp.status_code == 400 and resp.json()["field"] == field and "allowed" in resp.json()["error"]
