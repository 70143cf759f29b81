"""Crab as the authors built it (tiny, seeded weights): their parameter names and shapes, their encoders and
hyper-LoRA LLaMA computing what their code computes, strict loading of their checkpoint layout, their prompts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import models_zoo
from models_zoo.crab import INSTRUCTIONS, PEFT_PREFIX, HyperLoRALinear, llama2_chat
from models_zoo.preprocess import synthetic_batch

from .parity_util import crab_inputs, fill_seeded_, state_dict_shapes

pytest.importorskip("transformers")
DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def crab(tmp_path_factory):
    model = models_zoo.build("crab", {"preset": "tiny", "label_cache_dir": str(tmp_path_factory.mktemp("l"))})
    return fill_seeded_(model).eval()


def test_state_dict_equals_the_authors_model_without_the_peft_wrapper(crab):
    expected = json.loads((DATA / "crab_tiny_keys.json").read_text())
    assert all(k.startswith(PEFT_PREFIX) for k in expected)
    expected = {k[len(PEFT_PREFIX) :]: v for k, v in expected.items()}
    got = state_dict_shapes(crab)
    assert list(got) == list(expected) and got == expected
    # the parts the issue names, under the authors' names
    for key in (
        "model.layers.1.mlp.down_proj.lora_route.weight",
        "model.layers.0.self_attn.q_proj.lora_B2.weight",
        "model.vl_projector.visual_Qformer.bert.encoder.layer.1.crossattention.self.key.weight",
        "model.audio_encoder.audio_encoder.encoder.layers.0.self_attn.grep_a",
        "model.al_projector.audio_proj.2.weight",
        "lm_head.weight",
    ):
        assert key in got
    assert any(k.startswith("model.visual_encoder.vision_tower.") for k in got)  # transformers' CLIPVisionModel
    assert crab.n_lora == 7 * 2  # q, k, v, o, gate, up, down in both layers


def test_encoders_and_llm_compute_what_the_authors_code_computes(crab):
    ref = np.load(DATA / "crab_tiny_forward.npz")
    x = crab_inputs()
    with torch.no_grad():
        audio = crab.model.al_projector(crab.model.audio_encoder(x["fbank"]))
        visual = crab.model.vl_projector(crab.model.visual_encoder(x["pixels"]))
        logits = crab.llm(inputs_embeds=x["embeds"]).logits
    np.testing.assert_allclose(audio.numpy(), ref["audio_tokens"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(visual.numpy(), ref["visual_tokens"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(logits.numpy(), ref["logits"], atol=1e-5, rtol=0)
    # the hyper-LoRA heads take part: changing one B head changes the logits
    lora = crab.model.layers[1].self_attn.v_proj
    saved = lora.lora_B1.weight.detach().clone()
    with torch.no_grad():
        lora.lora_B1.weight.add_(0.1)
        moved = crab.llm(inputs_embeds=x["embeds"]).logits
        lora.lora_B1.weight.copy_(saved)
    assert (moved - logits).abs().max() > 1e-3


def test_hyper_lora_layer_is_the_base_layer_plus_routed_heads():
    torch.manual_seed(0)
    base = torch.nn.Linear(6, 5)
    layer = HyperLoRALinear(base, r=2, lora_alpha=4, lora_nums=3)
    x = torch.randn(2, 3, 6)
    assert torch.allclose(layer(x), base(x))  # B heads start at zero
    for i in range(3):
        torch.nn.init.normal_(getattr(layer, f"lora_B{i}").weight)
    route = torch.softmax(layer.lora_route(x), -1)
    expected = base(x) + sum(
        route[..., i : i + 1] * getattr(layer, f"lora_B{i}")(layer.lora_A(x)) * 2.0 for i in range(3)
    )
    assert torch.allclose(layer(x), expected, atol=1e-6)
    assert layer.weight is base.weight


def test_checkpoint_keys_are_what_the_authors_finetune_file_holds(crab):
    expected = json.loads((DATA / "crab_tiny_checkpoint_keys.json").read_text())
    assert list(crab.checkpoint_state_dict()) == expected


def test_the_authors_checkpoint_layout_loads_strictly(crab, tmp_path):
    path = tmp_path / "finetune_weights.bin"
    torch.save(crab.checkpoint_state_dict(), path)
    fresh = models_zoo.build("crab", "tiny", checkpoint=path)
    assert fresh.checkpoint_keys() == crab.checkpoint_keys()
    for k in fresh.checkpoint_keys():
        assert torch.equal(fresh.state_dict()[k], crab.state_dict()[k]), k


def test_a_checkpoint_that_does_not_fit_is_refused_naming_every_key(crab, tmp_path):
    sd = crab.checkpoint_state_dict()
    lora_key = PEFT_PREFIX + "model.layers.0.mlp.up_proj.lora_B2.weight"
    sd.pop(lora_key)
    sd[PEFT_PREFIX + "model.al_projector.audio_ln.weight"] = torch.ones(512)
    sd[PEFT_PREFIX + "model.seg_module.no_mask_embed.weight"] = torch.zeros(1, 256)
    bad = tmp_path / "avs_finetune_weights.bin"
    torch.save(sd, bad)
    fresh = models_zoo.build("crab", "tiny")
    before = fresh.model.vl_projector.visual_ln.weight.clone()
    with pytest.raises(models_zoo.CheckpointError) as err:
        fresh.load_checkpoint(bad)
    msg = str(err.value)
    assert str(bad) in msg
    for key in (
        "model.layers.0.mlp.up_proj.lora_B2.weight",
        "model.al_projector.audio_ln.weight checkpoint [512] vs model [768]",
        "model.seg_module.no_mask_embed.weight",
    ):
        assert key in msg
    assert torch.equal(fresh.model.vl_projector.visual_ln.weight, before)  # nothing was loaded


def test_beats_weights_load_from_the_release_format(crab, tmp_path):
    beats = crab.model.audio_encoder.audio_encoder
    cfg = dict(models_zoo.crab.CRAB_PRESETS["tiny"]["beats"], dropout=0.1, layer_wise_gradient_decay_ratio=0.6)
    path = tmp_path / "BEATs_tiny.pt"
    torch.save({"cfg": cfg, "model": beats.state_dict()}, path)
    fresh = models_zoo.build("crab", {"preset": "tiny", "beats_checkpoint": str(path)})
    x = crab_inputs()["fbank"]
    with torch.no_grad():
        assert torch.allclose(fresh.model.audio_encoder(x), crab.model.audio_encoder(x), atol=1e-6)
    torch.save({"model": beats.state_dict()}, path)
    with pytest.raises(models_zoo.CheckpointError, match="is not {'cfg': dict, 'model': state_dict}"):
        models_zoo.build("crab", {"preset": "tiny", "beats_checkpoint": str(path)})
    sd = dict(beats.state_dict())
    sd.pop("encoder.layer_norm.bias")
    torch.save({"cfg": cfg, "model": sd}, path)
    with pytest.raises(models_zoo.CheckpointError, match="missing: encoder.layer_norm.bias"):
        models_zoo.build("crab", {"preset": "tiny", "beats_checkpoint": str(path)})


def test_prompts_are_the_authors_in_the_llama2_chat_format(crab):
    text = crab.tokenizer.chat(INSTRUCTIONS["avvp"])
    assert text == llama2_chat(INSTRUCTIONS["avvp"])
    assert text.startswith(
        "<s>[INST] <<SYS>>\nYou are a helpful assistant.\n<</SYS>>\n\nThis is a video:\n"
        "<video_start><video><video_end>\nThis is an audio:\n<audio_start><audio><audio_end>\n"
        "Please determine the events that occur"
    )
    assert text.endswith("start and end times of these events. [/INST]")
    assert crab.prompts == {"a": "audio", "v": "video", "av": "avvp"}
    with pytest.raises(ValueError, match="bad prompts {'av': 'caption'}"):
        models_zoo.build("crab", {"preset": "tiny", "prompts": {"av": "caption"}})


def test_the_clip_features_replace_the_audio_and_video_tokens(crab):
    batch = synthetic_batch(2, seed=1, waveform=True)
    n_text = {m: len(crab.prompt_ids(m)) - sum(m2 in m for m2 in ("a", "v")) for m in ("a", "v", "av")}
    nq = 4  # tiny: 4 queries per second of audio and per frame
    lengths = {m: crab.build_inputs(batch, m).shape[1] for m in ("a", "v", "av")}
    assert lengths["a"] == n_text["a"] + 10 * nq  # ten 1-second audio segments
    assert lengths["v"] == n_text["v"] + 2 * nq  # num_frames (tiny: 2) frames
    assert lengths["av"] == n_text["av"] + 10 * nq + 2 * nq
    other = dict(batch, waveform=batch["waveform"].flip(1))
    with torch.no_grad():
        assert not torch.allclose(crab.build_inputs(other, "a"), crab.build_inputs(batch, "a"))
        assert torch.allclose(crab.build_inputs(other, "v"), crab.build_inputs(batch, "v"))
    with pytest.raises(ValueError, match="Crab needs the clip waveform"):
        crab.build_inputs(synthetic_batch(1), "a")


def test_generate_and_predict_give_class_scores(crab):
    batch = synthetic_batch(2, seed=2, waveform=True)
    texts, ids = crab.generate_text(batch, "av", max_new_tokens=4, min_new_tokens=4)
    assert len(texts) == 2 and ids.shape == (2, 4)
    batch["has_audio"][1] = False
    out = crab.predict(batch, ("a", "av"))
    assert set(out) == {"a", "av"} and out["av"].shape == (2, 309)
    assert float(out["a"][1].abs().sum()) == 0.0  # no audio: nothing heard
