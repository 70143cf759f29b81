"""compute_predictions: chunks on the 'gpu' queue (in-process here) with a tiny CAV-MAE."""

import io

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from catalog.models import Clip
from proposals import gpu
from proposals.models import ModelRun, RunChunk
from proposals.selectors import run_scores
from proposals.services import chunk_process


@pytest.fixture
def media_clips(dataset, clip_factory, tmp_path):
    good = [clip_factory(f"p{i}", seed=i) for i in range(3)]
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"this is not a video")
    for i, p in enumerate(good):
        Clip.objects.create(dataset=dataset, video_id=f"clip{i}", media_url=str(p))
    Clip.objects.create(dataset=dataset, video_id="clip_broken", media_url=str(broken))
    return dataset


def test_compute_predictions_tiny_cavmae_with_a_bad_clip(
    media_clips, taxonomy, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setenv("AVCROWD_DECODE_POOL", "thread")  # no process spawn on the 2-core test box
    gpu.clear_model_cache()
    out = io.StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command(
            "compute_predictions",
            "--dataset",
            media_clips.name,
            "--checkpoint",
            "tiny-cavmae",
            "--register",
            "cavmae",
            "",
            "--config",
            '{"preset": "tiny"}',
            "--chunk-size",
            "2",
            stdout=out,
        )
    run = ModelRun.objects.get(dataset=media_clips, checkpoint__name="tiny-cavmae")
    assert run.status == "done", out.getvalue()
    assert run.n_clips == 4 and run.n_done == 4 and run.clips_per_s and run.clips_per_s > 0
    assert RunChunk.objects.filter(run=run).count() == 2
    vids, scores = run_scores(run)
    # the undecodable clip is reported by name and left out; the others are scored
    assert vids == ["clip0", "clip1", "clip2"]
    assert set(scores) == {"a", "v", "av"} and scores["av"].shape == (3, 309)
    assert np.isfinite(scores["a"]).all()
    bad = [e for e in run.errors if e["video_id"] == "clip_broken"]
    assert bad and "warning" not in bad[0]
    # the model was built once for the whole run, and both chunks decoded in one warm pool
    assert len(gpu._MODEL_CACHE) == 1
    assert len(gpu._POOLS) == 1
    # a redelivered chunk (acks_late after a worker died) changes nothing
    first = RunChunk.objects.filter(run=run).first()
    assert chunk_process(first.pk) == "skipped"
    assert ModelRun.objects.get(pk=run.pk).n_done == 4
    # re-running the command resumes: nothing to redo, same scores
    with django_capture_on_commit_callbacks(execute=True):
        call_command(
            "compute_predictions", "--dataset", media_clips.name, "--checkpoint", "tiny-cavmae", stdout=io.StringIO()
        )
    vids2, scores2 = run_scores(ModelRun.objects.get(pk=run.pk))
    assert vids2 == vids and np.array_equal(scores2["av"], scores["av"])


def test_unknown_checkpoint_and_architecture_are_refused(media_clips):
    with pytest.raises(CommandError, match="unknown checkpoint 'nope'; registered: none"):
        call_command("compute_predictions", "--dataset", media_clips.name, "--checkpoint", "nope")
    with pytest.raises(CommandError, match="unknown architecture 'resnet'; allowed: cavmae, leap, crab"):
        call_command(
            "compute_predictions", "--dataset", media_clips.name, "--checkpoint", "x", "--register", "resnet", ""
        )


@pytest.fixture
def thread_decode(monkeypatch):
    monkeypatch.setenv("AVCROWD_DECODE_POOL", "thread")


@pytest.mark.worker
def test_real_worker_computes_a_chunk_through_the_broker(thread_decode, celery_worker_process, clip_factory, taxonomy):
    """A real Celery worker process (started by the fixture) runs a chunk task; a redelivery is a no-op."""
    from catalog.models import Dataset
    from proposals.models import ModelCheckpoint
    from proposals.tasks import compute_chunk

    ds = Dataset.objects.create(name="worker-props")
    for i in range(2):
        Clip.objects.create(dataset=ds, video_id=f"w{i}", media_url=str(clip_factory(f"w{i}", seed=i)))
    ckpt = ModelCheckpoint.objects.create(name="tiny-w", architecture="cavmae", config={"preset": "tiny"})
    run = ModelRun.objects.create(dataset=ds, checkpoint=ckpt, status="running", n_clips=2, modalities=["a", "v", "av"])
    chunk = RunChunk.objects.create(run=run, index=0, video_ids=["w0", "w1"])
    assert compute_chunk.apply_async(args=[chunk.pk], queue=celery_worker_process).get(timeout=120) == "done"
    assert compute_chunk.apply_async(args=[chunk.pk], queue=celery_worker_process).get(timeout=60) == "skipped"
    run.refresh_from_db()
    assert run.n_done == 2


@pytest.fixture
def process_decode(monkeypatch):
    monkeypatch.setenv("AVCROWD_DECODE_POOL", "process")
    monkeypatch.setenv("AVCROWD_DECODE_WORKERS", "2")


@pytest.mark.worker
def test_real_solo_worker_decodes_in_one_warm_process_pool(
    process_decode, celery_worker_process, clip_factory, taxonomy, tmp_path
):
    """The GPU worker's setup (`--pool solo`, process decoding): decoder processes can be started from
    the worker, one pool serves every chunk, and a run with a broken clip still finishes."""
    from catalog.models import Dataset
    from proposals.models import ModelCheckpoint
    from proposals.tasks import compute_chunk

    ds = Dataset.objects.create(name="worker-procs")
    for i in range(3):
        Clip.objects.create(dataset=ds, video_id=f"w{i}", media_url=str(clip_factory(f"w{i}", seed=i)))
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"this is not a video")
    Clip.objects.create(dataset=ds, video_id="wbad", media_url=str(broken))
    ckpt = ModelCheckpoint.objects.create(name="tiny-p", architecture="cavmae", config={"preset": "tiny"})
    run = ModelRun.objects.create(dataset=ds, checkpoint=ckpt, status="running", n_clips=4, modalities=["a", "v", "av"])
    chunks = [
        RunChunk.objects.create(run=run, index=0, video_ids=["w0", "w1"]),
        RunChunk.objects.create(run=run, index=1, video_ids=["w2", "wbad"]),
    ]
    for chunk in chunks:
        assert compute_chunk.apply_async(args=[chunk.pk], queue=celery_worker_process).get(timeout=180) == "done"
    log = (tmp_path / "worker.log").read_text()
    started = [line for line in log.splitlines() if "decode pool started" in line]
    assert len(started) == 1, log
    assert "ProcessPoolExecutor, 2 workers" in started[0]
    run.refresh_from_db()
    assert run.status == ModelRun.DONE and run.n_done == 4
    assert [e["video_id"] for e in run.errors] == ["wbad"] and "broken.mp4" in run.errors[0]["error"]
    video_ids, scores = run_scores(run)
    assert video_ids == ["w0", "w1", "w2"] and sorted(scores) == ["a", "av", "v"]
    assert all(np.isfinite(a).all() and a.shape == (3, 309) for a in scores.values())


def test_decode_pool_settings_from_the_environment(monkeypatch):
    monkeypatch.delenv("AVCROWD_DECODE_POOL", raising=False)
    monkeypatch.delenv("AVCROWD_DECODE_WORKERS", raising=False)
    assert gpu.decode_settings() == ("auto", None)
    monkeypatch.setenv("AVCROWD_DECODE_POOL", "process")
    monkeypatch.setenv("AVCROWD_DECODE_WORKERS", "6")
    assert gpu.decode_settings() == ("process", 6)
    assert gpu.decode_settings(3) == ("process", 3)  # an explicit size wins
    monkeypatch.setenv("AVCROWD_DECODE_WORKERS", "lots")
    with pytest.raises(ValueError, match=r"AVCROWD_DECODE_WORKERS='lots'; allowed: a positive integer"):
        gpu.decode_settings()
    monkeypatch.setenv("AVCROWD_DECODE_WORKERS", "2")
    monkeypatch.setenv("AVCROWD_DECODE_POOL", "gpu")
    with pytest.raises(ValueError, match=r"AVCROWD_DECODE_POOL='gpu'; allowed: auto, process, thread"):
        gpu.decode_settings()


def test_a_broken_decode_pool_is_replaced_and_the_chunk_still_scored(clip_factory, monkeypatch):
    """A decoder process that dies breaks the warm pool; the chunk is decoded again in a new pool."""
    import concurrent.futures as cf

    monkeypatch.setenv("AVCROWD_DECODE_POOL", "thread")
    monkeypatch.setenv("AVCROWD_DECODE_WORKERS", "2")
    gpu.clear_model_cache()
    broken = cf.ThreadPoolExecutor(2)
    broken._broken = "a decoder died"  # submit() now raises BrokenThreadPool, as after a killed worker
    gpu._POOLS[("thread", 2)] = broken
    paths = [str(clip_factory(f"bp{i}", seed=i)) for i in range(2)]
    try:
        res = gpu.run_chunk("cavmae", "", {"preset": "tiny"}, paths, ["b0", "b1"], ["a", "av"], device="cpu")
        assert res.ok.tolist() == [True, True] and not res.errors
        assert np.isfinite(res.scores["av"]).all()
        assert gpu._POOLS[("thread", 2)] is not broken  # the broken pool was dropped and replaced
    finally:
        gpu.clear_model_cache()
