"""Benchmark (not a test): assembling a model run's chunk results into its artifact (`proposals.services.run_finalize`).

    .venv/bin/python bench/bench_run_finalize.py [--scale 1|10] [--chunk-size 256] [--code DIR]

Makes (in a temporary SQLite database and media folder) a run over 15,446 or 154,460 clips, 3 modalities, 309
classes, as `compute_predictions` leaves it once every chunk is done (one .npz per `--chunk-size` clips), then runs
`run_finalize` in a fresh child process and prints its wall and CPU seconds and its peak resident memory above what
the process held before (VmHWM reset first). ``--code DIR`` runs the child from another source tree (e.g. a
checkout of an older commit, for a "before" figure).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from bench_saves import reset_peak, status_mib  # noqa: E402

CLIPS = {1: 15_446, 10: 154_460}


def child(args) -> None:
    sys.path.insert(0, args.code)
    import django

    django.setup()
    import numpy as np
    from django.core.files.base import ContentFile
    from django.core.management import call_command

    from catalog.models import Dataset
    from catalog.selectors.taxonomy import class_names
    from proposals.core.predictions_io import PredictionArrays, to_npz_bytes
    from proposals.models import ModelRun, RunChunk
    from proposals.services import run_finalize

    call_command("migrate", "--noinput", verbosity=0)
    call_command("load_taxonomy", verbosity=0)
    names = class_names()
    n = CLIPS[args.scale]
    ds = Dataset.objects.create(name="bench-finalize")
    run = ModelRun.objects.create(dataset=ds, external_name="m", kind="scores", modalities=["a", "v", "av"], n_clips=n)
    rng = np.random.default_rng(0)
    for index, start in enumerate(range(0, n, args.chunk_size)):
        vids = [f"v{i:07d}" for i in range(start, min(n, start + args.chunk_size))]
        scores = {m: rng.standard_normal((len(vids), len(names)), dtype=np.float32) for m in ("a", "v", "av")}
        chunk = RunChunk.objects.create(run=run, index=index, video_ids=vids, status="done", n_done=len(vids))
        body = to_npz_bytes(PredictionArrays(vids, names, scores))
        chunk.artifact.save(f"r-{index}.npz", ContentFile(body), save=True)
    del scores, body
    held = status_mib("VmRSS")
    reset_peak()  # VmHWM from here: the finalize's own peak
    t0, c0 = time.perf_counter(), time.process_time()
    run = run_finalize(run.pk)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = status_mib("VmHWM")
    print(
        json.dumps(
            {
                "clips": n,
                "chunks": run.chunks.count(),
                "status": run.status,
                "artifact_mib": round(run.artifact.size / 2**20, 1),
                "seconds": round(seconds, 2),
                "cpu_seconds": round(cpu, 2),
                "peak_above_before_mib": round(peak - held, 1),
                "maxrss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            }
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=int, choices=[1, 10], default=1)
    ap.add_argument("--chunk-size", type=int, default=256)
    ap.add_argument("--code", default=str(ROOT), help="source tree the measured child imports")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(
            os.environ,
            DATABASE_URL=f"sqlite:///{tmp}/bench.sqlite3",
            MEDIA_ROOT=f"{tmp}/media",
            AVCROWD_DEV="1",
            AVCROWD_ENV_FILE="",
            DJANGO_SETTINGS_MODULE="config.settings",
            LOG_LEVEL="WARNING",
            PYTHONPATH=args.code,
        )
        cmd = [sys.executable, __file__, "--child", "--scale", str(args.scale), "--chunk-size", str(args.chunk_size)]
        out = subprocess.run([*cmd, "--code", args.code], env=env, cwd=args.code, capture_output=True, text=True)
        if out.returncode:
            sys.exit(out.stderr[-3000:])
        print(out.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
