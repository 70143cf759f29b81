"""Crab (tiny, random weights): the pieces are wired, generation runs, outputs become class scores."""
from __future__ import annotations

import pytest
import torch

import models_zoo
from models_zoo.crab import IALoRALinear
from models_zoo.preprocess import synthetic_batch

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def crab(tmp_path_factory):
    torch.manual_seed(0)
    return models_zoo.build("crab", {"preset": "tiny", "label_cache_dir": str(tmp_path_factory.mktemp("l"))})


def test_parts_are_transformers_models_with_ia_lora(crab):
    from transformers import CLIPVisionModel, LlamaForCausalLM

    assert isinstance(crab.vision, CLIPVisionModel) and isinstance(crab.llm, LlamaForCausalLM)
    loras = [m for m in crab.llm.modules() if isinstance(m, IALoRALinear)]
    assert len(loras) == 2 * crab.llm.config.num_hidden_layers  # q_proj and v_proj of every layer
    lo = loras[0]
    assert lo.lora_A.weight.shape[0] == 4 and lo.num_heads == 3
    assert lo.lora_B.weight.shape == (lo.base.out_features * 3, 4) and lo.router.out_features == 3


def test_ia_lora_mixes_heads_per_token():
    torch.manual_seed(0)
    lin = IALoRALinear(torch.nn.Linear(8, 6), rank=2, num_heads=3, alpha=2.0)
    x = torch.randn(4, 8)
    assert torch.allclose(lin(x), lin.base(x))  # B starts at zero: the base model is unchanged
    torch.nn.init.normal_(lin.lora_B.weight)
    torch.nn.init.normal_(lin.router.weight)
    g = torch.softmax(lin.router(x), -1)
    heads = lin.lora_B.weight.view(3, 6, 2)
    expect = lin.base(x) + 1.0 * torch.einsum("nk,kor,nr->no", g, heads, lin.lora_A(x))
    assert torch.allclose(lin(x), expect, atol=1e-5)


def test_prompt_contains_the_modality_tokens(crab):
    batch = synthetic_batch(2)
    la, lv, lav = (crab.build_inputs(batch, m).shape[1] for m in ("a", "v", "av"))
    nq = crab.qformer_a.queries.shape[1]
    assert lav > la > nq and lav > lv > nq
    # changing the audio changes the audio-prompt embeddings, not the visual-prompt ones
    b2 = {**batch, "fbank": batch["fbank"] + 1}
    assert not torch.allclose(crab.build_inputs(b2, "a"), crab.build_inputs(batch, "a"))
    assert torch.allclose(crab.build_inputs(b2, "v"), crab.build_inputs(batch, "v"))


def test_generate_and_predict(crab):
    batch = synthetic_batch(2)
    texts, ids = crab.generate_text(batch, "av", max_new_tokens=5, min_new_tokens=5)
    assert len(texts) == 2 and ids.shape == (2, 5)
    batch["has_audio"][1] = False
    out = crab.predict(batch)
    assert {k: tuple(v.shape) for k, v in out.items()} == {"a": (2, 309), "v": (2, 309), "av": (2, 309)}
    assert out["a"][1].abs().sum() == 0


def test_crab_checkpoint_roundtrip_and_refusal(crab, tmp_path):
    path = tmp_path / "crab.pth"
    torch.save(crab.crab_state_dict(), path)
    torch.manual_seed(7)
    other = models_zoo.build("crab", "tiny", checkpoint=path)
    batch = synthetic_batch(1)
    with torch.no_grad():  # the Crab parts (audio encoder, Q-Former, projection) come from the checkpoint
        assert torch.allclose(other.encode_audio(batch["fbank"]), crab.encode_audio(batch["fbank"]), atol=1e-6)
    cav = models_zoo.build("cavmae", "tiny")
    bad = tmp_path / "cav.pth"
    torch.save(cav.state_dict(), bad)
    with pytest.raises(models_zoo.CheckpointError, match="does not fit Crab"):
        models_zoo.build("crab", "tiny", checkpoint=bad)
