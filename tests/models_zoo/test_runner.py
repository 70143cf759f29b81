"""Batch inference over real files: bad clips are reported, the rest scored, float32 out."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import models_zoo
from models_zoo.preprocess import decode_clip
from models_zoo.runner import run_inference


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return models_zoo.build("cavmae", "tiny")


def test_run_reports_bad_clips_and_scores_the_rest(model, media):
    clips = [
        ("c_tone", str(media["tone"])),
        ("c_broken", str(media["broken"])),
        ("c_silent", str(media["silent"])),
        ("c_missing", "/nonexistent/x.mp4"),
        ("c_novideo", str(media["novideo"])),
    ]
    seen = []
    res = run_inference(
        model,
        clips,
        chunk_size=2,
        pool="thread",
        workers=2,
        progress=lambda done, failed, total: seen.append((done, failed, total)),
    )
    assert res.video_ids == ["c_tone", "c_silent", "c_novideo"]
    assert set(res.errors) == {"c_broken", "c_missing"}
    assert "broken.mp4" in res.errors["c_broken"] and "does not exist" in res.errors["c_missing"]
    for m in ("a", "v", "av"):
        assert res.scores[m].dtype == np.float32 and res.scores[m].shape == (3, 309)
    assert res.has_audio.tolist() == [True, False, True]
    assert res.has_video.tolist() == [True, True, False]
    assert seen[-1] == (3, 2, 5) and len(seen) == 3
    # same scores as running the model directly on the decoded clip
    direct = model.predict(
        {
            k: v
            for k, v in __import__("models_zoo.preprocess", fromlist=["x"])
            .collate([decode_clip(media["tone"])])
            .items()
        }
    )
    assert np.allclose(res.scores["av"][0], direct["av"][0].numpy(), atol=1e-5)


def test_process_pool_gives_the_same_scores(model, media):
    clips = [("a", str(media["tone"])), ("b", str(media["noaudio"]))]
    r_proc = run_inference(model, clips, chunk_size=4, pool="process", workers=1, modalities=("a", "v"))
    r_thr = run_inference(model, clips, chunk_size=1, pool="thread", workers=1, modalities=("a", "v"))
    assert r_proc.video_ids == r_thr.video_ids == ["a", "b"]
    assert set(r_proc.scores) == {"a", "v"}
    assert np.allclose(r_proc.scores["v"], r_thr.scores["v"], atol=1e-5)


def test_model_failure_on_one_clip_is_isolated(media):
    class Picky(torch.nn.Module):
        num_classes = 3

        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def predict(self, batch, mods):
            if (~batch["has_audio"]).any():
                raise RuntimeError("needs audio")
            return {m: torch.ones(batch["fbank"].shape[0], 3) for m in mods}

    res = run_inference(
        Picky(),
        [("x", media["tone"]), ("y", media["noaudio"])],
        chunk_size=2,
        decode_fn=lambda vid, path: decode_clip(path),
    )
    assert res.video_ids == ["x"] and "needs audio" in res.errors["y"]
    assert res.scores["av"].shape == (1, 3)


def test_a_callers_pool_stays_up_and_prefetch_changes_nothing(model, media):
    import concurrent.futures as cf

    clips = [(f"c{i}", str(media["tone" if i % 2 else "silent"])) for i in range(5)]
    with cf.ThreadPoolExecutor(2) as pool:
        r1 = run_inference(model, clips, chunk_size=2, pool=pool, prefetch=1)
        r3 = run_inference(model, clips, chunk_size=2, pool=pool, prefetch=3)
        assert pool.submit(lambda: "still up").result() == "still up"  # not shut down by the runs
    assert r1.video_ids == r3.video_ids == [c for c, _ in clips]
    assert np.array_equal(r1.scores["av"], r3.scores["av"])
    # the time is split by stage, and the stage the run waited on most is named
    assert r3.collate_s > 0 and r3.compute_s > 0 and r3.model_s >= r3.compute_s
    assert r3.bound_by() in ("decode", "collate", "transfer", "compute")


def test_prefetch_and_chunk_size_must_be_positive(model, media):
    with pytest.raises(ValueError, match="prefetch must be >= 1, got 0"):
        run_inference(model, [("a", str(media["tone"]))], prefetch=0)
    with pytest.raises(ValueError, match="chunk_size must be >= 1, got 0"):
        run_inference(model, [("a", str(media["tone"]))], chunk_size=0)


def test_collate_into_preallocated_buffers(media):
    from models_zoo.preprocess import collate

    items = [decode_clip(media["tone"]), decode_clip(media["noaudio"])]
    plain = collate(items)
    out = {"fbank": torch.full((4, 1024, 128), float("nan")), "frames": torch.full((4, 10, 3, 224, 224), float("nan"))}
    got = collate(items, out=out)
    assert got["fbank"].data_ptr() == out["fbank"].data_ptr()  # written into the buffer, not a copy
    for k in plain:
        assert torch.equal(got[k], plain[k])
    # a buffer of the wrong shape is not used
    odd = collate(items, out={"fbank": torch.empty(4, 10, 10), "frames": torch.empty(1, 10, 3, 224, 224)})
    assert torch.equal(odd["fbank"], plain["fbank"]) and torch.equal(odd["frames"], plain["frames"])


def test_codec_threads_do_not_change_the_frames(media):
    from models_zoo.preprocess import decode_video_frames

    assert np.array_equal(
        decode_video_frames(media["tone"], codec_threads=1), decode_video_frames(media["tone"], codec_threads=0)
    )
