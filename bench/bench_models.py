#!/usr/bin/env python
"""Model throughput benchmark (not a test): CAV-MAE forward and Crab token rates.

CAV-MAE base: clips/s and achieved TFLOP/s for the multimodal (132.4 GFLOPs/clip), audio-only (96.8)
and video-only (34.9) forward passes, on synthetic inputs (no PyAV needed).
Crab: prompt (prefill) tokens/s and generated tokens/s at batch 1 and 16, random weights.

GPU (one H100):  python bench/bench_models.py --device cuda
  -> the card's bf16 matrix-product ceiling (8192^3), CAV-MAE base at batch 64 and 256 under bf16
     autocast (what the workers run), with bf16 weights, and with bf16 weights + torch.compile'd
     blocks; Crab at full size (CLIP ViT-L/14 + 12-layer audio encoder + LLaMA-7B shapes) in bf16.
CPU (this machine): python bench/bench_models.py --device cpu
  -> CAV-MAE base fp32 at batch 2, Crab tiny.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

import models_zoo  # noqa: E402
from models_zoo.cavmae import GFLOPS_PER_CLIP  # noqa: E402
from models_zoo.preprocess import synthetic_batch  # noqa: E402

H100_BF16_DENSE_TFLOPS = 989.4  # H100 SXM dense bf16 peak


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, iters, warmup):
    for _ in range(warmup):
        fn()
    sync(device)
    t = time.perf_counter()
    for _ in range(iters):
        fn()
    sync(device)
    return (time.perf_counter() - t) / iters


class Variant(NamedTuple):
    dtype: torch.dtype  # weights
    autocast: bool  # bf16 autocast around the forward
    compile: str | None = None  # torch.compile the blocks in this mode ("default"), or eager
    cudnn_first: bool = False  # SDPA tries cuDNN's fused attention first
    fused_gelu: bool = False  # CAV-MAE config fused_gelu: fc1 + bias + tanh GELU in one cuBLASLt product


BF16, FP32 = torch.bfloat16, torch.float32
VARIANTS = {
    "fp32": Variant(FP32, False),
    "autocast": Variant(FP32, True),  # what the GPU workers run
    "bf16": Variant(BF16, False),
    "bf16-compile": Variant(BF16, False, "default"),  # Inductor fuses LayerNorm/GELU/adds per block
    "autocast-compile": Variant(FP32, True, "default"),
    # + Triton matmul templates autotuned per shape (slow to compile: minutes)
    "bf16-autotune": Variant(BF16, False, "max-autotune-no-cudagraphs"),
    "bf16-cudnn": Variant(BF16, False, cudnn_first=True),
    "bf16-compile-cudnn": Variant(BF16, False, "default", cudnn_first=True),
    "bf16-fusedgelu": Variant(BF16, False, fused_gelu=True),
    "bf16-compile-fusedgelu": Variant(BF16, False, "default", fused_gelu=True),
}


def attention_order(variant: Variant):
    if not variant.cudnn_first:
        return nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel  # noqa: PLC0415

    return sdpa_kernel(
        [SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH],
        set_priority=True,
    )


def bench_cavmae(args, device):
    rows = []
    variants = (
        args.precision.split(",")
        if args.precision
        else (["autocast", "bf16", "bf16-compile"] if device.type == "cuda" else ["fp32"])
    )
    for name in variants:
        if name not in VARIANTS:
            raise SystemExit(f"unknown precision variant {name!r}; allowed: {', '.join(VARIANTS)}")
        var = VARIANTS[name]
        compile_ = (args.compile_mode or var.compile) if var.compile else None
        cfg = {"preset": args.cavmae_preset, "fused_gelu": var.fused_gelu}
        model = models_zoo.build("cavmae", cfg, device=device, dtype=var.dtype)
        if compile_:
            models_zoo.compile_blocks(model, mode=None if compile_ == "default" else compile_)
        ctx = torch.autocast(device.type, dtype=torch.bfloat16) if var.autocast else nullcontext()
        for bs in args.batches:
            batch = synthetic_batch(bs, device=device, dtype=var.dtype)
            for mod in args.cavmae_modalities:

                def step():
                    with torch.inference_mode(), ctx, attention_order(var):
                        model.predict(batch, (mod,))

                if compile_:  # first calls compile; keep that out of the timing
                    t = time.perf_counter()
                    step()
                    step()
                    sync(device)
                    print(f"# compiled cavmae {mod} batch {bs} in {time.perf_counter() - t:.1f}s", flush=True)
                sec = timed(step, device, args.iters, args.warmup)
                cps = bs / sec
                gflops = GFLOPS_PER_CLIP[mod] if args.cavmae_preset in ("base", "full") else float("nan")
                tflops = cps * gflops / 1000
                row = dict(
                    model="cavmae-" + args.cavmae_preset,
                    modality=mod,
                    precision=name,
                    batch=bs,
                    sec_per_batch=round(sec, 4),
                    clips_per_s=round(cps, 2),
                    tflops=round(tflops, 3),
                )
                if device.type == "cuda":
                    row["pct_h100_bf16_peak"] = round(100 * tflops / H100_BF16_DENSE_TFLOPS, 1)
                rows.append(row)
                print(json.dumps(row), flush=True)
            del batch
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rows


def bench_matmul(device, n=8192, iters=20):
    """The machine's own bf16 ceiling: an n x n x n product on random data."""
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    sec = timed(lambda: a @ b, device, iters, 3)
    row = dict(model="matmul", batch=n, sec_per_batch=round(sec, 5), tflops=round(2 * n**3 / sec / 1e12, 1))
    print(json.dumps(row), flush=True)
    return [row]


def bench_crab(args, device):
    rows = []
    preset = args.crab_preset or ("base" if device.type == "cuda" else "tiny")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    t = time.perf_counter()
    model = models_zoo.build("crab", {"preset": preset, "text_backend": "hash"}, device=device, dtype=dtype)
    print(
        f"# crab-{preset} built in {time.perf_counter() - t:.1f}s, "
        f"{sum(p.numel() for p in model.parameters()) / 1e9:.2f}B parameters",
        flush=True,
    )
    for cache in args.crab_cache:
        for bs in args.crab_batches:
            batch = synthetic_batch(bs, device=device, dtype=dtype, waveform=True)
            with torch.inference_mode():
                emb = model.build_inputs(batch, "av")
            mask = torch.ones(emb.shape[:2], dtype=torch.long, device=device)
            prompt_len = emb.shape[1]

            def encode():
                with torch.inference_mode():
                    model.build_inputs(batch, "av")

            def prefill():
                with torch.inference_mode():
                    model.llm(inputs_embeds=emb, attention_mask=mask, use_cache=True)

            n_new = args.gen_tokens
            # "static": a fixed-size KV cache, which lets transformers compile the decoding step
            # (CUDA graphs) on CUDA; "dynamic": the default growing cache, eager
            extra = {"cache_implementation": "static"} if cache == "static" else {}

            def generate():
                with torch.inference_mode():
                    model.llm.generate(
                        inputs_embeds=emb,
                        attention_mask=mask,
                        max_new_tokens=n_new,
                        min_new_tokens=n_new,
                        do_sample=False,
                        pad_token_id=model.tokenizer.pad_token_id,
                        eos_token_id=model.tokenizer.eos_token_id,
                        **extra,
                    )

            iters = max(1, args.iters // 2)
            t_enc = timed(encode, device, iters, 1)
            t_pre = timed(prefill, device, iters, 1)
            t = time.perf_counter()
            generate()  # first call: static-cache compile happens here
            sync(device)
            first = time.perf_counter() - t
            t_gen = timed(generate, device, iters, 1)
            decode_s = max(t_gen - t_pre, 1e-9)
            row = dict(
                model=f"crab-{preset}",
                cache=cache,
                batch=bs,
                prompt_tokens=prompt_len,
                new_tokens=n_new,
                encoders_s=round(t_enc, 4),
                prefill_s=round(t_pre, 4),
                generate_s=round(t_gen, 4),
                first_generate_s=round(first, 2),
                ms_per_step=round(1000 * decode_s / n_new, 2),
                prompt_tok_per_s=round(bs * prompt_len / t_pre, 1),
                gen_tok_per_s=round(bs * n_new / decode_s, 1),
            )
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda")
    ap.add_argument("--models", default="matmul,cavmae,crab")
    ap.add_argument(
        "--batch",
        "--batches",
        dest="batches",
        default=None,
        type=lambda s: [int(x) for x in s.split(",")],
        help="CAV-MAE batch sizes, comma list (default 64,256 on CUDA, 2 on CPU)",
    )
    ap.add_argument("--iters", type=int, default=None)
    ap.add_argument("--warmup", type=int, default=None)
    ap.add_argument(
        "--precision",
        default=None,
        help="comma list of " + ",".join(VARIANTS) + " (default autocast,bf16,bf16-compile on CUDA)",
    )
    ap.add_argument("--compile-mode", default=None, help="override the torch.compile mode of the compiled variants")
    ap.add_argument("--cavmae-preset", default="base")
    ap.add_argument("--cavmae-modalities", type=lambda s: s.split(","), default=["av", "a", "v"])
    ap.add_argument("--crab-preset", default=None, help="default: base on CUDA, tiny on CPU")
    ap.add_argument("--crab-batches", type=lambda s: [int(x) for x in s.split(",")], default=[1, 16])
    ap.add_argument("--gen-tokens", type=int, default=None)
    ap.add_argument(
        "--crab-cache",
        type=lambda s: s.split(","),
        default=["dynamic"],
        help="comma list of KV caches to time: dynamic (eager), static (compiled step on CUDA)",
    )
    ap.add_argument("--json", default=None, help="write all rows to this file")
    args = ap.parse_args(argv)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    args.batches = args.batches or ([64, 256] if cuda else [2])
    args.iters = args.iters or (20 if cuda else 2)
    args.warmup = args.warmup if args.warmup is not None else (3 if cuda else 1)
    args.gen_tokens = args.gen_tokens or (64 if cuda else 16)
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    info = dict(
        torch=torch.__version__,
        device=torch.cuda.get_device_name(device) if cuda else platform.processor() or platform.machine(),
        threads=torch.get_num_threads(),
        cpus=os.cpu_count(),
    )
    print("# " + json.dumps(info), flush=True)
    rows = []
    mods = args.models.split(",")
    if cuda and "matmul" in mods:
        rows += bench_matmul(device)
    if "cavmae" in mods:
        rows += bench_cavmae(args, device)
    if "crab" in mods:
        rows += bench_crab(args, device)
    if args.json:
        Path(args.json).write_text(json.dumps(dict(info=info, rows=rows), indent=1))


if __name__ == "__main__":
    main()
