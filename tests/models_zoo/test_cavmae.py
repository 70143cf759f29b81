"""CAV-MAE: official key layout, forward modes, checkpoint loading and refusal."""

from __future__ import annotations

import pytest
import torch

import models_zoo
from models_zoo.cavmae import CAVMAE, CAVMAE_PRESETS, flops_per_clip
from models_zoo.preprocess import synthetic_batch

OFFICIAL_KEYS = [  # names and shapes of the official CAVMAEFT (VGGSound, base) state dict
    ("patch_embed_a.proj.weight", (768, 1, 16, 16)),
    ("patch_embed_v.proj.weight", (768, 3, 16, 16)),
    ("pos_embed_a", (1, 512, 768)),
    ("pos_embed_v", (1, 196, 768)),
    ("modality_a", (1, 1, 768)),
    ("blocks_a.10.attn.qkv.weight", (2304, 768)),
    ("blocks_v.10.mlp.fc2.weight", (768, 3072)),
    ("blocks_u.0.norm1_a.weight", (768,)),
    ("blocks_u.0.norm2_v.bias", (768,)),
    ("norm_a.weight", (768,)),
    ("norm.bias", (768,)),
    ("mlp_head.0.weight", (768,)),
    ("mlp_head.1.weight", (309, 768)),
]


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return models_zoo.build("cavmae", "tiny")


def test_base_layout_matches_official_checkpoint_names():
    with torch.device("meta"):
        m = CAVMAE(**CAVMAE_PRESETS["base"])
    sd = m.state_dict()
    for k, shape in OFFICIAL_KEYS:
        assert tuple(sd[k].shape) == shape, k
    assert len(m.blocks_a) == len(m.blocks_v) == 11 and len(m.blocks_u) == 1
    assert "blocks_a.11.attn.qkv.weight" not in sd


def test_flops_formula_gives_the_issue_figures():
    base = CAVMAE_PRESETS["base"]
    assert round(flops_per_clip(base, "av") / 1e9, 1) == 132.4
    assert round(flops_per_clip(base, "a") / 1e9, 1) == 96.8
    assert round(flops_per_clip(base, "v") / 1e9, 1) == 34.9


def test_predict_modes_and_shapes(tiny):
    batch = synthetic_batch(3)
    out = tiny.predict(batch)
    assert set(out) == {"a", "v", "av"}
    for v in out.values():
        assert v.shape == (3, 309) and torch.isfinite(v).all()
    # the audio score depends on audio only, the visual score on the (middle) frame only
    b2 = {**batch, "frames": batch["frames"].clone()}
    b2["frames"][:, 0] += 1.0  # not the middle frame
    assert torch.allclose(tiny.predict(b2, ("v",))["v"], out["v"])
    b2["frames"][:, 5] += 1.0
    o2 = tiny.predict(b2)
    assert torch.allclose(o2["a"], out["a"]) and not torch.allclose(o2["v"], out["v"])
    assert tuple(tiny.predict(batch, ("a",))) == ("a",)
    with pytest.raises(ValueError, match="allowed: a, v, av"):
        tiny.predict(batch, ("x",))


def test_official_forward_modes_agree_with_predict(tiny):
    batch = synthetic_batch(2, seed=1)
    out = tiny.predict(batch)
    img = batch["frames"][:, 5]
    with torch.no_grad():
        assert torch.allclose(tiny(batch["fbank"], img, "multimodal"), out["av"], atol=1e-5)
        assert torch.allclose(tiny(batch["fbank"], None, "audioonly"), out["a"], atol=1e-5)
        assert torch.allclose(tiny(None, img, "videoonly"), out["v"], atol=1e-5)


def test_silent_clip_av_uses_the_missing_audio_path(tiny):
    batch = synthetic_batch(2, seed=2)
    batch["has_audio"][1] = False
    out = tiny.predict(batch)
    with torch.no_grad():
        expect = tiny(None, batch["frames"][1:2, 5], "missingvideoonly")
        joint = tiny(batch["fbank"][1:2], batch["frames"][1:2, 5], "multimodal")
    assert torch.allclose(out["av"][1:2], expect, atol=1e-5)
    assert not torch.allclose(out["av"][1:2], joint, atol=1e-4)


def test_wrong_input_shape_is_named(tiny):
    batch = synthetic_batch(1)
    batch["fbank"] = batch["fbank"][:, :512]
    with pytest.raises(ValueError, match=r"fbank must be \[B, 1024, 128\]"):
        tiny.predict(batch, ("a",))


def test_checkpoint_roundtrip_with_module_prefix(tiny, tmp_path):
    path = tmp_path / "ft.pth"
    torch.save({"module." + k: v for k, v in tiny.state_dict().items()}, path)
    torch.manual_seed(123)
    other = models_zoo.build("cavmae", "tiny", checkpoint=path)
    batch = synthetic_batch(2, seed=3)
    a, b = tiny.predict(batch), other.predict(batch)
    for m in a:
        assert torch.allclose(a[m], b[m], atol=1e-6)


def test_checkpoint_that_does_not_fit_is_refused_with_key_names(tiny, tmp_path, caplog):
    sd = dict(tiny.state_dict())
    sd["mlp_head.1.weight"] = torch.zeros(527, 32)  # AudioSet head
    sd["mlp_head.1.bias"] = torch.zeros(527)
    del sd["norm_v.weight"]
    sd["decoder_embed.weight"] = torch.zeros(4, 4)  # pretraining-only key
    path = tmp_path / "as.pth"
    torch.save({"model": sd}, path)
    fresh = models_zoo.build("cavmae", "tiny")
    before = fresh.mlp_head[1].weight.clone()
    with pytest.raises(models_zoo.CheckpointError) as err:
        fresh.load_checkpoint(path)
    msg = str(err.value)
    assert "mlp_head.1.weight checkpoint [527, 32] vs model [309, 32]" in msg
    assert "missing in checkpoint (1): norm_v.weight" in msg
    assert "unexpected in checkpoint (1): decoder_embed.weight" in msg
    assert torch.equal(fresh.mlp_head[1].weight, before)  # nothing loaded
    assert "decoder_embed.weight" in caplog.text
    # non-strict: everything that fits is loaded, the rest reported
    rep = fresh.load_checkpoint(path, strict=False)
    assert "norm_v.weight" in rep.missing and not rep.fits
    assert torch.equal(fresh.blocks_a[0].attn.qkv.weight, tiny.blocks_a[0].attn.qkv.weight)


def test_unreadable_checkpoint_and_unknown_arch(tmp_path):
    bad = tmp_path / "x.pth"
    bad.write_bytes(b"garbage")
    with pytest.raises(models_zoo.CheckpointError, match="x.pth cannot be read"):
        models_zoo.build("cavmae", "tiny", checkpoint=bad)
    with pytest.raises(models_zoo.CheckpointError, match="does not exist"):
        models_zoo.build("cavmae", "tiny", checkpoint=tmp_path / "missing.pth")
    with pytest.raises(ValueError, match="allowed: cavmae, crab, leap"):
        models_zoo.build("vit", "tiny")
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        models_zoo.build("cavmae", "huge")


def test_config_overrides():
    m = models_zoo.build("cavmae", {"preset": "tiny", "num_classes": 5, "frame_index": "mean"})
    out = m.predict(synthetic_batch(2), ("v", "av"))
    assert out["v"].shape == (2, 5) and out["av"].shape == (2, 5)


def test_fused_gelu_is_a_cuda_only_option_that_cpu_ignores():
    torch.manual_seed(0)
    plain = models_zoo.build("cavmae", "tiny")
    fused = models_zoo.build("cavmae", {"preset": "tiny", "fused_gelu": True})
    fused.load_state_dict(plain.state_dict())
    assert fused.config["fused_gelu"] is True and plain.config["fused_gelu"] is False
    batch = synthetic_batch(2, seed=9)
    a, b = plain.predict(batch), fused.predict(batch)
    for m in ("a", "v", "av"):
        assert torch.equal(a[m], b[m])  # on the CPU the exact GELU runs either way
