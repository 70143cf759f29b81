"""The boundary between the Celery task and the model zoo (no Django here).

``run_chunk`` hands the chunk's media files to ``models_zoo.runner.run_inference`` (a CPU decode
pool overlapping the model; bf16 autocast on CUDA, fp32 on CPU) and returns per input modality a
float32 [n, 309] score array plus per-clip errors. A clip that cannot be decoded gets an error entry
and a row of NaN (it is dropped from the run's artifact), so one bad clip never fails the chunk.
The model is built once per worker process (module-level cache).
"""
from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

_MODEL_CACHE: dict[tuple, Any] = {}
_MODEL_LOCK = threading.Lock()


@dataclass
class ChunkResult:
    scores: dict[str, np.ndarray]
    ok: np.ndarray  # bool [n]: decoded and scored
    errors: list[dict[str, str]] = field(default_factory=list)
    flags: list[dict[str, Any]] = field(default_factory=list)  # missing audio/video per clip
    seconds: float = 0.0


def default_device() -> str:
    import torch  # noqa: PLC0415

    return os.environ.get("AVCROWD_GPU_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")


def get_model(architecture: str, path: str, config: dict | None, device: str):
    """Build (once per process) the model of a checkpoint."""
    from models_zoo import build  # noqa: PLC0415

    key = (architecture, path or "", json.dumps(config or {}, sort_keys=True), device)
    with _MODEL_LOCK:
        model = _MODEL_CACHE.get(key)
        if model is None:
            model = build(architecture, config or "base", checkpoint=path or None, device=device)
            _MODEL_CACHE[key] = model
    return model


def clear_model_cache() -> None:
    with _MODEL_LOCK:
        _MODEL_CACHE.clear()


def run_chunk(architecture: str, path: str, config: dict | None, media_paths: list[str],
              video_ids: list[str], modalities: list[str], *, batch_size: int = 32,
              device: str | None = None, decode_workers: int | None = None) -> ChunkResult:
    """Score the clips with ``models_zoo.runner.run_inference`` (decode pool overlapping the model,
    bf16 autocast on CUDA). The decode pool kind comes from AVCROWD_DECODE_POOL (auto|process|thread;
    default auto: processes, or threads inside a daemonic Celery prefork child)."""
    from models_zoo.runner import run_inference  # noqa: PLC0415

    t0 = time.perf_counter()
    device = device or default_device()
    model = get_model(architecture, path, config, device)
    n = len(media_paths)
    num_classes = getattr(model, "num_classes", 309)
    scores = {m: np.full((n, num_classes), np.nan, dtype=np.float32) for m in modalities}
    ok = np.zeros(n, dtype=bool)
    row = {v: i for i, v in enumerate(video_ids)}
    clips = [(v, p) for v, p in zip(video_ids, media_paths) if p]
    errors = [{"video_id": v, "error": "no media"} for v, p in zip(video_ids, media_paths) if not p]
    flags: list[dict[str, Any]] = []
    if clips:
        res = run_inference(model, clips, chunk_size=batch_size, modalities=tuple(modalities), device=device,
                            pool=os.environ.get("AVCROWD_DECODE_POOL", "auto"), workers=decode_workers)
        idx = np.array([row[v] for v in res.video_ids], dtype=np.int64)
        for m in modalities:
            if idx.size:
                scores[m][idx] = res.scores[m]
        ok[idx] = True
        errors += [{"video_id": v, "error": e} for v, e in res.errors.items()]
        for v, a, vis in zip(res.video_ids, res.has_audio, res.has_video):
            if not (a and vis):
                flags.append({"video_id": v, "has_audio": bool(a), "has_video": bool(vis)})
    return ChunkResult(scores=scores, ok=ok, errors=errors, flags=flags, seconds=time.perf_counter() - t0)
