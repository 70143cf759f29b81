"""The HIT page's own assets: small, plain ES modules, no build step (no browser needed)."""

import re
from pathlib import Path

import pytest

STATIC = Path(__file__).resolve().parents[2] / "frontend" / "static" / "frontend" / "hit"


@pytest.fixture
def batch(db, taxonomy):
    from catalog.models import Dataset
    from crowd.models import Batch

    return Batch.objects.create(dataset=Dataset.objects.create(name="assets"))


def test_own_js_and_css_stay_under_200_kb_and_need_no_build_step(client, batch):
    files = sorted(p for p in STATIC.iterdir() if p.suffix in (".js", ".css"))
    total = sum(p.stat().st_size for p in files)
    assert 0 < total < 200 * 1024, f"{total} bytes"
    html = client.get(f"/hit/{batch.uuid}/").content.decode()
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
    assert assets and all(a.startswith("/static/frontend/hit/") for a in assets)  # nothing else is loaded
    # every ES module import resolves to a file that is there (no bundler, no node_modules)
    for path in files:
        for target in re.findall(r'from "(\.[^"]+)"', path.read_text()):
            assert (path.parent / target).resolve().is_file(), f"{path.name} imports missing {target}"


def test_hit_page_is_frameable_by_mturk_only_and_unknown_batches_are_404(client, batch, settings):
    settings.FRAME_ANCESTORS_EXTRA = ["https://lab.example.org"]
    response = client.get(f"/hit/{batch.uuid}/?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE")
    csp = response["Content-Security-Policy"]
    assert response.status_code == 200 and "X-Frame-Options" not in response
    assert "frame-ancestors 'self' " in csp and "https://worker.mturk.com" in csp and "script-src 'self';" in csp
    assert "https://lab.example.org" in csp
    missing = client.get("/hit/00000000-0000-4000-8000-000000000000/")
    assert missing.status_code == 404 and str(batch.uuid) not in missing.content.decode()


@pytest.fixture
def gold_clip(batch, clip_factory):
    from catalog.services.clips import ClipSpec, clips_import

    return clips_import(
        batch.dataset, [ClipSpec("g1", str(clip_factory("g1", seed=1)), ["dog barking"], "t")], gold_ids={"g1"}
    )[0]


def test_gold_pages_need_a_login(client, gold_clip):
    for url in ("/gold/", f"/gold/clip/{gold_clip.pk}/"):
        response = client.get(url)
        assert response.status_code == 302 and "login" in response["Location"]


def test_gold_form_with_a_bad_value_is_refused_naming_the_field_and_keeps_the_ticks(client, gold_clip):

    from catalog.services.users import user_create
    from crowd.models import ExpertAnnotation

    client.force_login(user_create("expert9", "annotator")["user"])
    url = f"/gold/clip/{gold_clip.pk}/"
    bad = client.post(url, {"audible": ["dog barking"], "voice_over": "maybe"})
    assert bad.status_code == 400
    text = bad.content.decode()
    assert "voice_over" in text and "allowed: yes, no" in text
    assert 'aria-label="dog barking audible" checked' in text  # what the expert ticked is still there
    unknown = client.post(url, {"audible": ["not a class"]})
    assert unknown.status_code == 400 and "not a class" in unknown.content.decode()
    assert not ExpertAnnotation.objects.exists()
    ok = client.post(
        url, {"audible": ["dog barking"], "visible": ["dog barking"], "background_music": "no", "then": "next"}
    )
    assert ok.status_code == 302
    ann = ExpertAnnotation.objects.get()
    assert ann.labels == [{"name": "dog barking", "audible": True, "visible": True}]
    assert ann.background_music is False and ann.voice_over is None
