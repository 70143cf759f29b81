"""The boundary between the Celery task and the model zoo (no Django here).

``run_chunk`` decodes a list of media files in a CPU thread pool (overlapping the model), runs the
model in batches (bf16 autocast on CUDA, fp32 on CPU) and returns per input modality a float32
[n, 309] score array plus per-clip errors. A clip that cannot be decoded gets an error entry and a
row of NaN (it is dropped from the run's artifact), so one bad clip never fails the chunk.
The model is built once per worker process (module-level cache).
"""
from __future__ import annotations

import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
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
    import torch  # noqa: PLC0415

    from models_zoo.preprocess import collate, decode_clip  # noqa: PLC0415

    t0 = time.perf_counter()
    device = device or default_device()
    model = get_model(architecture, path, config, device)
    n = len(media_paths)
    num_classes = getattr(model, "num_classes", 309)
    scores = {m: np.full((n, num_classes), np.nan, dtype=np.float32) for m in modalities}
    ok = np.zeros(n, dtype=bool)
    errors: list[dict[str, str]] = []
    flags: list[dict[str, Any]] = []

    def decode(i: int):
        try:
            return i, decode_clip(media_paths[i]), None
        except Exception as exc:  # noqa: BLE001 - any decode failure is reported per clip
            return i, None, f"{type(exc).__name__}: {exc}"

    workers = decode_workers or max(1, min(8, (os.cpu_count() or 2)))
    use_cuda = str(device).startswith("cuda")
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: list = []
        for result in pool.map(decode, range(n)):
            i, inputs, err = result
            if err is not None:
                errors.append({"video_id": video_ids[i], "error": err})
                continue
            if not (inputs.has_audio and inputs.has_video):
                flags.append({"video_id": video_ids[i], "has_audio": inputs.has_audio,
                              "has_video": inputs.has_video})
            pending.append((i, inputs))
            if len(pending) >= batch_size:
                _forward(model, pending, scores, ok, modalities, device, use_cuda, collate, torch)
                pending = []
        if pending:
            _forward(model, pending, scores, ok, modalities, device, use_cuda, collate, torch)
    return ChunkResult(scores=scores, ok=ok, errors=errors, flags=flags, seconds=time.perf_counter() - t0)


def _forward(model, pending, scores, ok, modalities, device, use_cuda, collate, torch) -> None:
    idx = [i for i, _ in pending]
    batch = collate([x for _, x in pending])
    batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    with torch.inference_mode():
        if use_cuda:
            with torch.autocast("cuda", dtype=torch.bfloat16):
                out = model.predict(batch, tuple(modalities))
        else:
            out = model.predict(batch, tuple(modalities))
    for m in modalities:
        scores[m][idx] = out[m].float().cpu().numpy()
    ok[idx] = True
