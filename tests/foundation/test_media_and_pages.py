import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token

from catalog.models import Clip, Dataset
from catalog.selectors.clips import clip_media_url
from catalog.services.clips import ClipSpec, clips_import
from catalog.services.users import user_create


@pytest.fixture
def clip(taxonomy, clip_factory):
    dataset = Dataset.objects.create(name="media")
    return clips_import(dataset, [ClipSpec("m1", str(clip_factory("media", seed=3)), ["dog barking"], "test")])[0]


def read(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_media_is_served_whole_and_by_byte_ranges(client, clip):
    url = clip_media_url(clip)
    data = clip.media.open("rb").read()
    whole = client.get(url)
    assert whole.status_code == 200 and whole["Accept-Ranges"] == "bytes" and read(whole) == data
    assert whole["Content-Type"] == "video/mp4"
    part = client.get(url, HTTP_RANGE="bytes=100-199")
    assert part.status_code == 206 and part["Content-Range"] == f"bytes 100-199/{len(data)}"
    assert read(part) == data[100:200]
    tail = client.get(url, HTTP_RANGE="bytes=-50")
    assert read(tail) == data[-50:]
    open_ended = client.get(url, HTTP_RANGE=f"bytes={len(data) - 10}-")
    assert read(open_ended) == data[-10:]
    assert client.get(url, HTTP_RANGE=f"bytes={len(data) + 5}-").status_code == 416
    assert client.get(url, HTTP_RANGE="pages=1-2").status_code == 416


def test_media_tokens_cannot_be_forged(client, clip):
    url = clip_media_url(clip)
    forged = url.replace(f"/{clip.pk}:", f"/{clip.pk + 1}:")
    assert client.get(forged).status_code == 404
    assert client.get("/media/clip/1:abc/").status_code == 404


def test_remote_media_redirects_to_its_url(client, taxonomy):
    dataset = Dataset.objects.create(name="remote")
    clip = Clip.objects.create(dataset=dataset, video_id="r1", media_url="https://cdn.example.org/r1.mp4")
    response = client.get(clip_media_url(clip))
    assert response.status_code == 302 and response["Location"] == "https://cdn.example.org/r1.mp4"


def test_api_lists_classes_in_logit_order_for_token_holders_only(client, taxonomy):
    assert client.get("/api/classes/").status_code == 401
    user = user_create("researcher", "researcher", password="pw")["user"]
    token = Token.objects.get(user=user)
    response = client.get("/api/classes/", HTTP_AUTHORIZATION=f"Token {token.key}")
    assert response.status_code == 200
    body = response.json()
    assert [row["name"] for row in body] == taxonomy and body[2]["name"] == "bird chirping, tweeting"
    # researchers read, only staff write
    assert client.post("/api/datasets/", {"name": "x"}, HTTP_AUTHORIZATION=f"Token {token.key}").status_code == 403
    user.is_staff = True
    user.save()
    created = client.post("/api/datasets/", {"name": "x"}, HTTP_AUTHORIZATION=f"Token {token.key}")
    assert created.status_code == 201 and Dataset.objects.filter(name="x").exists()


def test_openapi_schema_is_served(client, taxonomy):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    assert b"/api/classes/" in response.content


def test_admin_lists_the_classes_in_classes_csv_order(admin_client, taxonomy):
    page = admin_client.get("/admin/catalog/taxonomyclass/").content.decode()
    positions = [
        page.index(f"{i}: {name}") if f"{i}: {name}" in page else page.index(name)
        for i, name in [(0, taxonomy[0]), (1, taxonomy[1]), (150, taxonomy[150]), (308, taxonomy[308])]
    ]
    assert positions == sorted(positions)
    assert "309 classes" in page


def test_pages_refuse_to_be_framed_by_default(client, taxonomy):
    response = client.get("/")
    assert response.status_code == 200
    assert response["Content-Security-Policy"].endswith("frame-ancestors 'none'")
    assert response["X-Frame-Options"] == "DENY"


def test_in_house_annotators_log_in_without_being_staff(client, taxonomy):
    get_user_model().objects.create_user("annotator1", password="s3cret-pass")
    page = client.get("/accounts/login/")
    assert page.status_code == 200 and b"Username" in page.content
    bad = client.post("/accounts/login/", {"username": "annotator1", "password": "wrong"})
    assert b"didn&#x27;t match" in bad.content or b"didn't match" in bad.content
    ok = client.post("/accounts/login/", {"username": "annotator1", "password": "s3cret-pass", "next": "/"})
    assert ok.status_code == 302 and ok["Location"] == "/"
    assert b"annotator1" in client.get("/").content


def test_the_admin_has_a_page_for_every_model(admin_client, taxonomy):
    from django.apps import apps
    from django.contrib import admin

    for app in ("annotation", "proposals"):
        for model in apps.get_app_config(app).get_models():
            assert admin.site.is_registered(model), f"{model.__name__} has no admin page"
            url = f"/admin/{app}/{model._meta.model_name}/"
            assert admin_client.get(url).status_code == 200, url
