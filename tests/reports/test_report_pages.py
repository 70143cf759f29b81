"""The report pages people read: releases and runs by name, uploads by their own name, errors without server
paths, and the per-class table from report.json's `per_class` key (sortable, column groups to hide, classes with
too little data marked) - checked in Chromium for sorting and hiding."""

import io
import json
import re

import pytest
from django.conf import settings as django_settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from catalog.models import Dataset
from catalog.services.users import user_create
from labels.services.imports import release_import
from proposals.models import ModelRun
from reports.models import MetricReport

# the schema helper "bm" writes: {model: {modality: {class_name: {"f1": float|null, "ap": float|null, "support": int}}}}
PER_CLASS = {
    "cav-mae": {
        "a": {
            "dog barking": {"f1": 0.8, "ap": 0.9, "support": 40},
            "cat meowing": {"f1": 0.25, "ap": 0.31, "support": 12},
            "people whistling": {"f1": None, "ap": None, "support": 2},
            "cow lowing": {"f1": None, "ap": None, "support": 0},
        },
        "v": {
            "dog barking": {"f1": 0.5, "ap": 0.6, "support": 40},
            "cat meowing": {"f1": 0.75, "ap": 0.7, "support": 12},
            "people whistling": {"f1": 0.0, "ap": 0.1, "support": 2},
        },
        "av": {
            "dog barking": {"f1": 0.9, "ap": 0.95, "support": 40},
            "cat meowing": {"f1": 0.6, "ap": 0.65, "support": 12},
            "people whistling": {"f1": 0.3, "ap": None, "support": 2},
        },
    }
}


@pytest.fixture
def reports(taxonomy, tmp_path, settings):
    settings.MEDIA_ROOT = tmp_path / "media"
    ds = Dataset.objects.create(name="lab")
    csv = "video_id,label,modality,background_music,static_image,voice_over\nc1,dog barking,A,False,False,False\n"
    release = release_import(ds, "v1", io.StringIO(csv), source_name="v1.csv")
    run = ModelRun.objects.create(dataset=ds, external_name="cav-mae", status=ModelRun.DONE)
    path = default_storage.save("reports/1/report.json", ContentFile(json.dumps({"per_class": PER_CLASS}).encode()))
    done = MetricReport.objects.create(
        title="with classes",
        status=MetricReport.DONE,
        params={
            "labels": str(release.pk),
            "predictions": [f"run:{run.pk}", "upload:reports/uploads/0f3a/my-preds.pkl"],
            "regime": "default",
        },
        files={"report.json": path},
    )
    failed = MetricReport.objects.create(
        title="broken",
        status=MetricReport.FAILED,
        params={"labels": "upload:reports/uploads/77/labels.csv", "predictions": ["/srv/data/preds/model-x.pkl"]},
        error=(
            "/srv/avcrowd/media/reports/uploads/77/model-x.pkl: not a VGGSounder pickle "
            "(see /tmp/avcrowd-report-ab12/log)"
        ),
    )
    return {"done": done, "failed": failed, "release": release}


@pytest.fixture
def researcher(client):
    client.force_login(user_create("res", "researcher")["user"])
    return client


@pytest.mark.django_db
def test_the_report_list_names_releases_and_runs_and_hides_server_paths(reports, researcher):
    html = researcher.get("/reports/").content.decode()
    assert '<td class="labels-name">lab/v1</td>' in html
    assert "cav-mae on lab, my-preds.pkl (uploaded)" in html
    assert "labels.csv (uploaded)" in html and "model-x.pkl" in html
    assert "/srv/" not in html and "/tmp/" not in html and "reports/uploads" not in html
    assert "model-x.pkl: not a VGGSounder pickle (see log)" in html


@pytest.mark.django_db
def test_the_per_class_table_reads_report_json(reports, researcher):
    html = researcher.get(f"/reports/{reports['done'].pk}/").content.decode()
    assert 'id="report-labels">lab/v1' in html
    table = re.search(
        r'<table class="data sortable metric-table per-class" data-model="cav-mae">(.*?)</table>', html, re.S
    )
    assert table, "no per-class table"
    rows = re.findall(r'<tr( class="few")?><th scope="row">([^<]+)</th><td data-value="(\d+)">', table.group(1))
    # most clips first; the class with 2 clips is marked as resting on too little data
    assert rows == [("", "dog barking", "40"), ("", "cat meowing", "12"), (' class="few"', "people whistling", "2")]
    heads = re.findall(r"<th scope=\"col\"[^>]*>([^<]+)</th>", table.group(1))
    assert heads == ["Class", "Clips", "A F1", "A AP", "V F1", "V AP", "AV F1", "AV AP"]
    assert 'data-value="80.0">80.0' in table.group(1) and "–" in table.group(1)  # F1 not defined: a dash
    assert "1 of 3 classes with fewer than 5 clips" in html
    assert "1 class(es) have no clip in this label set and are left out." in html and "cow lowing" not in html
    assert 'data-col-group="mod-av"' in html and 'data-col-group="metric-ap"' in html
    # a report made before per_class existed shows no such table (and no error)
    old = MetricReport.objects.create(status=MetricReport.DONE, params={"labels": "1", "predictions": []}, files={})
    page = researcher.get(f"/reports/{old.pk}/").content.decode()
    assert "Per-class results" not in page


@pytest.mark.browser
def test_sorting_and_hiding_column_groups_in_chromium(
    browser, live_server, client, transactional_db, taxonomy, tmp_path, settings
):
    settings.MEDIA_ROOT = tmp_path / "media"
    ds = Dataset.objects.create(name="lab")
    path = default_storage.save("reports/1/report.json", ContentFile(json.dumps({"per_class": PER_CLASS}).encode()))
    report = MetricReport.objects.create(
        status=MetricReport.DONE, params={"labels": "x", "predictions": []}, files={"report.json": path}
    )
    assert ds.pk
    client.force_login(user_create("res2", "researcher")["user"])
    browser.get(f"{live_server.url}/static/frontend/site.css")
    cookie = client.cookies[django_settings.SESSION_COOKIE_NAME].value
    browser.add_cookie({"name": django_settings.SESSION_COOKIE_NAME, "value": cookie})
    browser.set_window_size(1400, 1000)
    browser.get(f"{live_server.url}/reports/{report.pk}/")

    def order():
        return [th.text for th in browser.find_elements("css selector", "table.per-class tbody th[scope=row]")]

    head = browser.find_element("xpath", "//table[contains(@class,'per-class')]//th[normalize-space()='V F1']")
    head.click()  # ascending: the weakest class first
    assert order() == ["people whistling", "dog barking", "cat meowing"]
    head.click()
    assert order() == ["cat meowing", "dog barking", "people whistling"]
    ap = browser.find_elements("css selector", "table.per-class [data-group~='metric-ap']")
    assert ap and all(cell.is_displayed() for cell in ap)
    browser.find_element("css selector", "input[data-col-group='metric-ap']").click()
    assert not any(cell.is_displayed() for cell in ap)
    browser.find_element("css selector", "input[data-col-group='mod-a']").click()
    shown = [th.text for th in browser.find_elements("css selector", "table.per-class thead th") if th.is_displayed()]
    assert shown[:2] == ["Class", "Clips"] and [s.split(" ")[0] for s in shown[2:]] == ["V", "AV"]
