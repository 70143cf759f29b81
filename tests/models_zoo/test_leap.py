"""LEAP decoder: shapes, per-second probabilities, missing modalities, partial weight loading."""
from __future__ import annotations

import pytest
import torch

import models_zoo
from models_zoo.preprocess import synthetic_batch


@pytest.fixture(scope="module")
def leap(tmp_path_factory):
    torch.manual_seed(0)
    cache = tmp_path_factory.mktemp("labels")
    return models_zoo.build("leap", {"preset": "tiny", "label_cache_dir": str(cache)})


def test_clip_and_per_second_probabilities(leap):
    batch = synthetic_batch(2)
    out = leap.predict_segments(batch)
    assert out["a"].shape == out["v"].shape == out["av"].shape == (2, 309)
    assert out["a_seg"].shape == out["v_seg"].shape == (2, 10, 309)
    for v in out.values():
        assert ((v >= 0) & (v <= 1)).all()
    assert torch.all(out["av"] >= torch.maximum(out["a"], out["v"]) - 1e-6)
    assert set(leap.predict(batch, ("a", "av"))) == {"a", "av"}


def test_label_queries_come_from_class_name_embeddings(leap):
    assert leap.label_text.shape[0] == 309
    assert len(leap.dec_a.blocks) == len(leap.dec_v.blocks) == 2  # 2 blocks per modality by default
    i, j = leap.class_names.index("dog barking"), leap.class_names.index("dog bow-wow")
    k = leap.class_names.index("playing violin, fiddle")
    sims = leap.label_text @ leap.label_text.T
    assert sims[i, j] > sims[i, k]


def test_audio_segments_follow_time(leap):
    batch = synthetic_batch(1, seed=5)
    b2 = {**batch, "fbank": batch["fbank"].clone()}
    b2["fbank"][:, 900:] += 3.0  # change only the last second of audio
    s1, s2 = leap.predict_segments(batch)["a_seg"], leap.predict_segments(b2)["a_seg"]
    changed = (s1 - s2).abs().amax(-1)[0]
    assert changed[-1] > 0 and changed[-1] >= changed.max() * 0.5


def test_missing_audio_gives_no_audio_events(leap):
    batch = synthetic_batch(2)
    batch["has_audio"][0] = False
    out = leap.predict_segments(batch)
    assert out["a"][0].max() == 0 and out["a_seg"][0].max() == 0
    assert torch.allclose(out["av"][0], out["v"][0])


def test_decoder_weights_load_where_shapes_match(leap, tmp_path, caplog):
    sd = {k: v.clone() + 0.5 for k, v in leap.decoder_state_dict().items()}
    sd["label_bias"] = torch.zeros(10, 7)  # wrong shape: reported and skipped
    path = tmp_path / "leap.pth"
    torch.save({"state_dict": sd}, path)
    fresh = models_zoo.build("leap", "tiny")
    rep = fresh.load_checkpoint(path)
    assert ("label_bias", (10, 7), (309, 32)) in rep.mismatched
    assert "label_bias" in caplog.text
    assert torch.allclose(fresh.dec_a.in_proj.weight, leap.dec_a.in_proj.weight + 0.5)
    assert not torch.allclose(fresh.label_bias, leap.label_bias + 0.5)
    with pytest.raises(models_zoo.CheckpointError, match="label_bias"):
        fresh.load_checkpoint(path, strict=True)
