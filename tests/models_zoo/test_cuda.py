"""On a CUDA machine (the GPU host; CI has none, so these skip there): the models give the same
answers on the GPU in bf16 as in fp32, compiled blocks equal eager ones, and a GPU run over real
files scores the clips as a CPU run does.

    python -m pytest -p no:django tests/models_zoo/test_cuda.py     # on the GPU host
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import models_zoo
from models_zoo.preprocess import synthetic_batch
from models_zoo.runner import run_inference

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    out, ref = out.double().cpu(), ref.double().cpu()
    assert torch.isfinite(out).all(), "non-finite output"
    return float((out - ref).norm() / ref.norm())


@pytest.fixture(autouse=True)
def exact_fp32():
    """fp32 references must be real fp32 (no TF32 matrix products)."""
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


@pytest.fixture(scope="module")
def base_on_gpu():
    torch.manual_seed(0)
    return models_zoo.build("cavmae", "base", device="cuda")


@cuda
def test_cavmae_base_fp32_on_gpu_equals_cpu(base_on_gpu):
    batch = synthetic_batch(2, seed=1)
    cpu = models_zoo.build("cavmae", "base")
    cpu.load_state_dict({k: v.cpu() for k, v in base_on_gpu.state_dict().items()})
    with torch.inference_mode():
        ref = cpu.predict(batch)
        out = base_on_gpu.predict({k: v.cuda() for k, v in batch.items()})
    for m in ("a", "v", "av"):
        assert rel_err(out[m], ref[m]) < 1e-4, m


@cuda
@pytest.mark.parametrize("how", ["autocast", "bf16-weights"])
def test_cavmae_base_bf16_is_close_to_fp32(base_on_gpu, how):
    """bf16 operands land between 1e-3 and 1e-2 relative error; the top-5 proposals hardly move."""
    batch = {k: v.cuda() for k, v in synthetic_batch(16, seed=2).items()}
    with torch.inference_mode():
        ref = base_on_gpu.predict(batch)
        if how == "autocast":
            with torch.autocast("cuda", dtype=torch.bfloat16):
                out = base_on_gpu.predict(batch)
        else:
            m16 = models_zoo.build("cavmae", "base", device="cuda", dtype=torch.bfloat16)
            m16.load_state_dict(base_on_gpu.state_dict())
            out = m16.predict({k: (v.bfloat16() if v.is_floating_point() else v) for k, v in batch.items()})
    for m in ("a", "v", "av"):
        assert out[m].shape == (16, 309)
        assert rel_err(out[m], ref[m]) < 2e-2, m
        top_ref = ref[m].topk(5).indices.cpu().tolist()
        top_out = out[m].float().topk(5).indices.cpu().tolist()
        overlap = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(top_ref, top_out)])
        assert overlap >= 0.8, (m, overlap)


@cuda
def test_fused_gelu_option_keeps_the_answers(base_on_gpu):
    """fused_gelu (cuBLASLt bias+GELU epilogue, tanh GELU) changes the logits by less than bf16 does."""
    exact = models_zoo.build("cavmae", "base", device="cuda", dtype=torch.bfloat16)
    exact.load_state_dict(base_on_gpu.state_dict())
    fused = models_zoo.build("cavmae", {"preset": "base", "fused_gelu": True}, device="cuda", dtype=torch.bfloat16)
    fused.load_state_dict(base_on_gpu.state_dict())
    batch = {
        k: (v.bfloat16() if v.is_floating_point() else v) for k, v in synthetic_batch(16, seed=6, device="cuda").items()
    }
    with torch.inference_mode():
        ref = base_on_gpu.predict({k: v.float() if v.is_floating_point() else v for k, v in batch.items()})
        a, b = exact.predict(batch), fused.predict(batch)
    for m in ("a", "v", "av"):
        assert rel_err(b[m], ref[m]) < 2e-2, m
        assert rel_err(b[m], a[m]) < 2e-2, m
        assert not torch.equal(a[m], b[m]), "the option changed nothing: the fused path did not run"


@cuda
def test_compiled_blocks_equal_eager_blocks():
    torch.manual_seed(0)
    eager = models_zoo.build("cavmae", "base", device="cuda", dtype=torch.bfloat16)
    comp = models_zoo.build("cavmae", "base", device="cuda", dtype=torch.bfloat16)
    comp.load_state_dict(eager.state_dict())
    assert models_zoo.compile_blocks(comp) == 23  # 11 audio + 11 visual + 1 joint
    batch = {
        k: (v.bfloat16() if v.is_floating_point() else v) for k, v in synthetic_batch(8, seed=3, device="cuda").items()
    }
    with torch.inference_mode():
        ref, out = eager.predict(batch), comp.predict(batch)
    for m in ("a", "v", "av"):
        assert rel_err(out[m], ref[m]) < 1e-2, m


@cuda
def test_gpu_run_over_files_scores_like_the_cpu_run(media):
    """The worker's path: decode pool + model on CUDA under bf16 autocast, float32 scores out; the
    silent clip and the video-less clip are flagged, the broken file is an error, not a crash."""
    torch.manual_seed(0)
    cpu = models_zoo.build("cavmae", "tiny")
    gpu = models_zoo.build("cavmae", "tiny", device="cuda")
    gpu.load_state_dict(cpu.state_dict())
    clips = [
        ("tone", str(media["tone"])),
        ("silent", str(media["silent"])),
        ("broken", str(media["broken"])),
        ("novideo", str(media["novideo"])),
    ]
    r_cpu = run_inference(cpu, clips, chunk_size=2, pool="thread", workers=2)
    r_gpu = run_inference(gpu, clips, chunk_size=2, pool="thread", workers=2)
    assert r_gpu.video_ids == r_cpu.video_ids == ["tone", "silent", "novideo"]
    assert set(r_gpu.errors) == {"broken"}
    assert r_gpu.has_audio.tolist() == [True, False, True] and r_gpu.has_video.tolist() == [True, True, False]
    for m in ("a", "v", "av"):
        assert r_gpu.scores[m].dtype == np.float32
        assert rel_err(torch.from_numpy(r_gpu.scores[m]), torch.from_numpy(r_cpu.scores[m])) < 2e-2, m


@cuda
def test_leap_and_crab_run_on_gpu_in_bf16(tmp_path):
    pytest.importorskip("transformers")
    from .parity_util import fill_seeded_, leap_inputs

    torch.manual_seed(0)
    leap = fill_seeded_(models_zoo.build("leap", "tiny"))
    x = leap_inputs()
    ref = leap.predict_segments(x)
    leap = leap.to("cuda")
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
        out = leap.predict_segments({k: v.cuda() for k, v in x.items()})
    assert out["av"].shape == (2, 25) and out["a_seg"].shape == (2, 10, 25)
    for k in ("a", "v", "a_seg", "v_seg"):  # bf16 probabilities stay within 2e-2 of fp32
        assert (out[k].float().cpu() - ref[k]).abs().max() < 2e-2, k
    crab = models_zoo.build(
        "crab", {"preset": "tiny", "label_cache_dir": str(tmp_path / "c")}, device="cuda", dtype=torch.bfloat16
    )
    batch = synthetic_batch(2, seed=4, device="cuda", waveform=True)
    texts, ids = crab.generate_text(
        {k: (v.bfloat16() if v.is_floating_point() else v) for k, v in batch.items()},
        "av",
        max_new_tokens=6,
        min_new_tokens=6,
    )
    assert len(texts) == 2 and ids.shape == (2, 6) and ids.device.type == "cuda"
    scores = crab.predict(batch, ("a", "av"))
    assert scores["av"].shape == (2, 309)


@cuda
def test_crab_static_cache_generates_what_the_dynamic_cache_does(tmp_path):
    pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = {"preset": "tiny", "label_cache_dir": str(tmp_path)}
    dyn = models_zoo.build("crab", cfg, device="cuda", dtype=torch.bfloat16)
    sta = models_zoo.build("crab", {**cfg, "static_cache": True}, device="cuda", dtype=torch.bfloat16)
    sta.load_state_dict(dyn.state_dict())
    torch.nn.init.normal_(dyn.llm.lm_head.weight)  # a random head, so greedy tokens vary
    sta.llm.lm_head.weight.data.copy_(dyn.llm.lm_head.weight.data)
    batch = {
        k: (v.bfloat16() if v.is_floating_point() else v)
        for k, v in synthetic_batch(2, seed=7, device="cuda", waveform=True).items()
    }
    _, ids_dyn = dyn.generate_text(batch, "a", max_new_tokens=8, min_new_tokens=8)
    _, ids_sta = sta.generate_text(batch, "a", max_new_tokens=8, min_new_tokens=8)
    assert ids_sta.shape == ids_dyn.shape == (2, 8)
    assert (ids_sta == ids_dyn).float().mean() >= 0.75  # bf16 kernels differ; greedy ties may flip
