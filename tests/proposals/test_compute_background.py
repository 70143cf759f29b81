"""Without a broker (the embedded set-up), "compute" from the page does not run the model inside the request: the
request returns at once and a background thread computes the chunks, the run's progress showing on the page."""

import threading
import time

import pytest
from django.contrib.auth import get_user_model

from catalog.models import Clip, Dataset
from proposals import gpu, tasks
from proposals.models import ModelCheckpoint, ModelRun


@pytest.mark.django_db(transaction=True)
def test_compute_from_the_page_returns_at_once_and_finishes_in_the_background(
    client, taxonomy, clip_factory, monkeypatch
):
    monkeypatch.setenv("AVCROWD_DECODE_POOL", "thread")
    gpu.clear_model_cache()
    ds = Dataset.objects.create(name="bg-props")
    for i in range(3):
        Clip.objects.create(dataset=ds, video_id=f"p{i}", media_url=str(clip_factory(f"p{i}", seed=i)))
    ModelCheckpoint.objects.create(name="tiny-bg", architecture="cavmae", config={"preset": "tiny"})
    client.force_login(get_user_model().objects.create_user("boss", password="pw-123456", is_staff=True))

    # the first chunk waits until the test has seen the request come back: the request cannot have computed it
    gate = threading.Event()
    real = tasks.chunk_process
    started = []

    def gated(chunk_id, **kw):
        started.append(threading.current_thread().name)
        assert gate.wait(30), "the test never opened the gate"
        return real(chunk_id, **kw)

    monkeypatch.setattr(tasks, "chunk_process", gated)
    resp = client.post(
        f"/proposals/datasets/{ds.name}/compute/", {"checkpoint": "tiny-bg", "modalities": ["a"], "chunk_size": "2"}
    )
    assert resp.status_code == 302
    run = ModelRun.objects.get(checkpoint__name="tiny-bg")
    assert run.status == "running" and run.n_done == 0 and run.n_clips == 3
    page = client.get("/proposals/", follow=True).content.decode()
    assert "computing in the background" in page and "0/3" in page
    gate.set()
    deadline = time.time() + 120
    while time.time() < deadline:
        run.refresh_from_db()
        if run.status == "done":
            break
        time.sleep(0.2)
    assert run.status == "done" and run.n_done == 3, (run.status, run.n_done, run.errors)
    assert started and all(name.startswith("avcrowd-compute-run") for name in started)
    assert "3/3 (100.0%)" in client.get("/proposals/").content.decode()
