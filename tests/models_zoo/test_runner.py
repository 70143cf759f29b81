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
    clips = [("c_tone", str(media["tone"])), ("c_broken", str(media["broken"])),
             ("c_silent", str(media["silent"])), ("c_missing", "/nonexistent/x.mp4"),
             ("c_novideo", str(media["novideo"]))]
    seen = []
    res = run_inference(model, clips, chunk_size=2, pool="thread", workers=2,
                        progress=lambda done, failed, total: seen.append((done, failed, total)))
    assert res.video_ids == ["c_tone", "c_silent", "c_novideo"]
    assert set(res.errors) == {"c_broken", "c_missing"}
    assert "broken.mp4" in res.errors["c_broken"] and "does not exist" in res.errors["c_missing"]
    for m in ("a", "v", "av"):
        assert res.scores[m].dtype == np.float32 and res.scores[m].shape == (3, 309)
    assert res.has_audio.tolist() == [True, False, True]
    assert res.has_video.tolist() == [True, True, False]
    assert seen[-1] == (3, 2, 5) and len(seen) == 3
    # same scores as running the model directly on the decoded clip
    direct = model.predict({k: v for k, v in __import__("models_zoo.preprocess", fromlist=["x"]).collate(
        [decode_clip(media["tone"])]).items()})
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

    res = run_inference(Picky(), [("x", media["tone"]), ("y", media["noaudio"])], chunk_size=2,
                        decode_fn=lambda vid, path: decode_clip(path))
    assert res.video_ids == ["x"] and "needs audio" in res.errors["y"]
    assert res.scores["av"].shape == (1, 3)
