#!/usr/bin/env python
"""End-to-end clips/s from mp4 files (not a test): decoding + preprocessing in a CPU pool with all
cores, overlapping the model, through models_zoo.runner.run_inference.

Makes N synthetic 10-second clips like VGGSound's (H.264 360p 25 fps + AAC 44.1 kHz stereo, a moving
square and a tone) with PyAV unless --clips-dir is given, then reports:
  decode-only clips/s (pool of --workers processes, no model),
  end-to-end clips/s with the model (CAV-MAE tiny on CPU / base on CUDA, all three modalities),
  and which stage bounds it: the time the model loop waited for decoded chunks, stacking the batch,
  copying it to the device, or the model itself.

  python bench/bench_decode.py --clips 24                 # CPU, this machine
  python bench/bench_decode.py --clips 512 --device cuda  # GPU host (needs PyAV installed there)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import models_zoo  # noqa: E402
from models_zoo.runner import make_pool, run_inference  # noqa: E402


def make_clip(path: Path, seconds=10.0, fps=25, size=(640, 360), sr=44100, seed=0):
    import av

    rng = np.random.default_rng(seed)
    w, h = size
    with av.open(str(path), "w") as c:
        vs = c.add_stream("h264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.options = {"preset": "ultrafast"}
        as_ = c.add_stream("aac", rate=sr)
        as_.layout = "stereo"
        bg = rng.integers(0, 255, (h, w, 3), dtype=np.uint8) // 2
        n = int(seconds * fps)
        for i in range(n):
            img = bg.copy()
            x = int((w - 60) * i / max(1, n - 1))
            img[h // 2 - 30 : h // 2 + 30, x : x + 60] = (255, 220, 40)
            for p in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in vs.encode():
            c.mux(p)
        t = np.arange(int(seconds * sr)) / sr
        f0 = 300 + 100 * seed % 2000
        sig = (0.3 * np.sin(2 * np.pi * f0 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
        sig = np.stack([sig, sig])
        for s in range(0, sig.shape[1], 1024):
            fr = av.AudioFrame.from_ndarray(np.ascontiguousarray(sig[:, s : s + 1024]), format="fltp", layout="stereo")
            fr.sample_rate, fr.pts, fr.time_base = sr, s, Fraction(1, sr)
            for p in as_.encode(fr):
                c.mux(p)
        for p in as_.encode():
            c.mux(p)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=24)
    ap.add_argument("--clips-dir", default=None, help="use these media files instead of synthetic ones")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--preset", default=None, help="CAV-MAE preset (default: base on CUDA, tiny on CPU)")
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--chunk", type=int, default=None)
    ap.add_argument("--pool", default="process")
    ap.add_argument("--prefetch", type=int, default=2, help="chunks decoded ahead of the model")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    device = torch.device(
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else ("cpu" if args.device == "auto" else args.device)
    )
    preset = args.preset or ("base" if device.type == "cuda" else "tiny")
    chunk = args.chunk or (64 if device.type == "cuda" else 8)

    tmp = None
    if args.clips_dir:
        files = sorted(p for p in Path(args.clips_dir).iterdir() if p.is_file())[: args.clips]
    else:
        tmp = tempfile.TemporaryDirectory(prefix="bench_decode_")
        t = time.perf_counter()
        uniq = min(args.clips, 8)
        base = [Path(tmp.name) / f"u{i}.mp4" for i in range(uniq)]
        for i, p in enumerate(base):
            make_clip(p, seed=i)
        files = []
        for i in range(args.clips):  # hard links: distinct paths, no extra encoding time
            dst = Path(tmp.name) / f"clip{i:05d}.mp4"
            os.link(base[i % uniq], dst)
            files.append(dst)
        print(f"# made {uniq} distinct 10 s 640x360 H.264/AAC clips in {time.perf_counter() - t:.1f}s", flush=True)
    clips = [(p.stem, str(p)) for p in files]
    info = dict(
        device=str(device),
        preset=preset,
        workers=args.workers,
        chunk=chunk,
        clips=len(clips),
        cpus=os.cpu_count(),
        torch=torch.__version__,
    )
    print("# " + json.dumps(info), flush=True)

    # one pool with all cores, warmed up (workers started, torch imported), kept for both runs
    from models_zoo.runner import _decode_one

    pool = make_pool(args.pool, args.workers)
    try:
        kw = {"codec_threads": 1} if args.workers > 1 else {}  # as run_inference does in a pool
        list(pool.map(_decode_one, [(vid, path, kw) for vid, path in clips[: args.workers]]))
        # decode only, no model
        t = time.perf_counter()
        res = list(pool.map(_decode_one, [(vid, path, kw) for vid, path in clips], chunksize=1))
        dec_s = time.perf_counter() - t
        bad = [r[2] for r in res if r[2]]
        row_dec = dict(
            stage="decode+preprocess",
            clips_per_s=round(len(clips) / dec_s, 2),
            ms_per_clip_per_core=round(1000 * dec_s * args.workers / len(clips), 1),
            errors=len(bad),
        )
        print(json.dumps(row_dec), flush=True)

        model = models_zoo.build("cavmae", preset, device=device)
        run_inference(model, clips[:chunk], chunk_size=chunk, device=device, pool=pool)  # warm-up: CUDA init
        r = run_inference(model, clips, chunk_size=chunk, device=device, pool=pool, prefetch=args.prefetch)
    finally:
        pool.shutdown()
    row_e2e = dict(
        stage=f"end-to-end cavmae-{preset} a+v+av",
        pool=args.pool,
        workers=args.workers,
        clips_per_s=round(r.clips_per_s, 2),
        wall_s=round(r.wall_s, 2),
        decode_wait_s=round(r.decode_wait_s, 2),
        collate_s=round(r.collate_s, 2),
        transfer_s=round(r.transfer_s, 2),
        compute_s=round(r.compute_s, 2),
        bound_by=r.bound_by(),
        errors=len(r.errors),
    )
    print(json.dumps(row_e2e), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(dict(info=info, rows=[row_dec, row_e2e]), indent=1))
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
