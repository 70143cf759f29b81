#!/usr/bin/env python
"""Where CAV-MAE base's GPU time goes (not a test): one multimodal forward profiled with
torch.profiler, kernels grouped into matrix products, attention, and the rest (LayerNorm, GELU,
residual adds, copies), eager and with compiled blocks.

    python bench/profile_cavmae.py --batch 256        # GPU host
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

import models_zoo  # noqa: E402
from models_zoo.cavmae import GFLOPS_PER_CLIP  # noqa: E402
from models_zoo.preprocess import synthetic_batch  # noqa: E402


def category(name: str) -> str:
    n = name.lower()
    if any(k in n for k in ("flash", "fmha", "attention", "sdpa", "cudnn_generated")):
        return "attention"
    if any(k in n for k in ("gemm", "xmma", "cutlass", "nvjet", "sm90", "matmul", "addmm")):
        return "matmul"
    if "conv" in n or "implicit" in n:
        return "patch conv"
    return "other (norm, gelu, adds, copies)"


def profile_one(model, batch, iters=3, top=0):
    def step():
        with torch.inference_mode():
            model.predict(batch, ("av",))

    for _ in range(3):
        step()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(iters):
            step()
        torch.cuda.synchronize()
    per = defaultdict(float)
    kernels = []
    for evt in prof.key_averages():
        t = getattr(evt, "device_time_total", None) or getattr(evt, "cuda_time_total", 0)
        if evt.device_type == torch.autograd.DeviceType.CUDA and t:
            per[category(evt.key)] += t / 1000 / iters  # ms per forward
            kernels.append((t / 1000 / iters, evt.count // iters, evt.key))
    for ms, n, key in sorted(kernels, reverse=True)[:top]:
        print(f"#   {ms:7.2f} ms  x{n:<4d} {category(key):12.12s} {key[:110]}", flush=True)
    return dict(per)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--top", type=int, default=0, help="also list the N most expensive kernels")
    args = ap.parse_args()
    dev = torch.device("cuda")
    batch = synthetic_batch(args.batch, device=dev, dtype=torch.bfloat16)
    flops = args.batch * GFLOPS_PER_CLIP["av"] * 1e9
    for name in ("eager", "compiled"):
        torch.manual_seed(0)
        model = models_zoo.build("cavmae", "base", device=dev, dtype=torch.bfloat16)
        if name == "compiled":
            models_zoo.compile_blocks(model)
        per = profile_one(model, batch, top=args.top)
        total = sum(per.values())
        row = dict(
            variant=name,
            batch=args.batch,
            gpu_ms=round(total, 2),
            tflops_on_gpu_time=round(flops / (total / 1000) / 1e12, 1),
            split_ms={k: round(v, 2) for k, v in sorted(per.items(), key=lambda kv: -kv[1])},
            split_pct={k: round(100 * v / total, 1) for k, v in sorted(per.items(), key=lambda kv: -kv[1])},
        )
        print(json.dumps(row), flush=True)
        del model
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
