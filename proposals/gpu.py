"""The boundary between the Celery task and the model zoo (no Django here).

``run_chunk`` hands the chunk's media files to ``models_zoo.runner.run_inference`` (a CPU decode
pool overlapping the model; bf16 autocast on CUDA, fp32 on CPU) and returns per input modality a
float32 [n, 309] score array plus per-clip errors. A clip that cannot be decoded gets an error entry
and a row of NaN (it is dropped from the run's artifact), so one bad clip never fails the chunk.
The model and the decode pool are made once per worker process (module-level caches): a process
pool of one decoder per core, kept warm across chunks. Measured on the GPU host (16 cores, H100),
decoding bounds the run and processes decode 9x faster than threads, which share one GIL; threads
are used only where processes cannot be started (a daemonic Celery prefork child: run the GPU
worker with ``--pool solo``, as docker-compose.yml does).
"""

from __future__ import annotations

import atexit
import concurrent.futures as cf
import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

_MODEL_CACHE: dict[tuple, Any] = {}
_MODEL_LOCK = threading.Lock()
_POOLS: dict[tuple, Any] = {}
log = logging.getLogger(__name__)


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
        for pool in _POOLS.values():
            pool.shutdown(wait=False, cancel_futures=True)
        _POOLS.clear()


def shutdown_pools() -> None:
    """Stop the process's warm decode pools and wait for their workers; registered to run at interpreter exit:
    a process pool still alive while Python finalises its modules ends the run (e.g. compute_predictions on
    CPU) with an "Exception ignored ... _ExecutorManagerThread" traceback."""
    with _MODEL_LOCK:
        pools = list(_POOLS.values())
        _POOLS.clear()
    for pool in pools:
        pool.shutdown(wait=True, cancel_futures=True)


def clear_pool(pool) -> None:
    with _MODEL_LOCK:
        for key, p in list(_POOLS.items()):
            if p is pool:
                del _POOLS[key]
    pool.shutdown(wait=False, cancel_futures=True)


def decode_settings(workers: int | None = None) -> tuple[str, int | None]:
    """(pool kind, pool size) from AVCROWD_DECODE_POOL (auto|process|thread, default auto) and
    AVCROWD_DECODE_WORKERS (a positive integer, default one per core); a bad value is refused by name."""
    kind = os.environ.get("AVCROWD_DECODE_POOL", "auto")
    if kind not in ("auto", "process", "thread"):
        raise ValueError(f"AVCROWD_DECODE_POOL={kind!r}; allowed: auto, process, thread")
    raw = os.environ.get("AVCROWD_DECODE_WORKERS", "")
    if workers is None and raw:
        try:
            workers = int(raw)
        except ValueError:
            workers = 0
        if workers < 1:
            raise ValueError(f"AVCROWD_DECODE_WORKERS={raw!r}; allowed: a positive integer (default: one per core)")
    return kind, workers


def decode_pool(kind: str, workers: int | None):
    """The process's decode pool of this kind and size, started once and reused by every chunk
    (a fresh process pool would re-import torch in every worker, seconds per chunk)."""
    from models_zoo.runner import make_pool  # noqa: PLC0415

    workers = workers or max(1, os.cpu_count() or 1)
    key = (kind, workers)
    with _MODEL_LOCK:
        pool = _POOLS.get(key)
        if pool is None:
            if not _POOLS:
                atexit.register(shutdown_pools)  # once per first pool; a second call finds nothing to stop
            pool = _POOLS[key] = make_pool(kind, workers)
            log.info(
                "decode pool started: %s, %d workers (pid %d), kept for the following chunks",
                type(pool).__name__,
                workers,
                os.getpid(),
            )
    return pool


def run_chunk(
    architecture: str,
    path: str,
    config: dict | None,
    media_paths: list[str],
    video_ids: list[str],
    modalities: list[str],
    *,
    batch_size: int = 32,
    device: str | None = None,
    decode_workers: int | None = None,
    class_names: list[str] | None = None,
) -> ChunkResult:
    """Score the clips with ``models_zoo.runner.run_inference`` (decode pool overlapping the model,
    bf16 autocast on CUDA). The decode pool kind comes from AVCROWD_DECODE_POOL (auto|process|thread;
    default auto: processes, or threads inside a daemonic Celery prefork child).

    ``class_names``: the taxonomy's classes (the score columns of the run; default: VGGSound's 309). A model
    with its own class list (``model.class_names``, e.g. LEAP's 25 LLP classes) is mapped onto them through
    its ``class_map`` (``models_zoo.classmap.map_scores``): a taxonomy class it cannot propose scores below
    every mapped class. A model that reads precomputed inputs by video id (``reads_media`` False) needs no
    media file."""
    from models_zoo.classmap import UNMAPPED_SCORE, map_scores  # noqa: PLC0415
    from models_zoo.runner import run_inference  # noqa: PLC0415

    t0 = time.perf_counter()
    device = device or default_device()
    model = get_model(architecture, path, config, device)
    own_classes = getattr(model, "class_names", None)
    if own_classes is not None and class_names is None:
        from models_zoo.text_embed import default_class_names  # noqa: PLC0415

        class_names = default_class_names()
    num_classes = len(class_names) if own_classes is not None else getattr(model, "num_classes", 309)
    n = len(media_paths)
    scores = {m: np.full((n, num_classes), np.nan, dtype=np.float32) for m in modalities}
    ok = np.zeros(n, dtype=bool)
    row = {v: i for i, v in enumerate(video_ids)}
    reads_media = getattr(model, "reads_media", True)
    clips = [(v, p or "") for v, p in zip(video_ids, media_paths) if p or not reads_media]
    errors = [{"video_id": v, "error": "no media"} for v, p in zip(video_ids, media_paths) if not p and reads_media]
    flags: list[dict[str, Any]] = []
    if clips:
        if not reads_media:  # the model loads its own inputs in this process (cheap file reads): no pool
            res = run_inference(model, clips, chunk_size=batch_size, modalities=tuple(modalities), device=device)
        else:
            kind, decode_workers = decode_settings(decode_workers)
            for attempt in (1, 2):  # a decoder process that died (OOM-killed...) breaks the pool: a new one, once
                pool = decode_pool(kind, decode_workers)
                try:
                    res = run_inference(
                        model,
                        clips,
                        chunk_size=batch_size,
                        modalities=tuple(modalities),
                        device=device,
                        pool=pool,
                        workers=decode_workers,
                    )
                    break
                except cf.BrokenExecutor:
                    clear_pool(pool)
                    if attempt == 2:
                        raise
        idx = np.array([row[v] for v in res.video_ids], dtype=np.int64)
        for m in modalities:
            got = res.scores[m]
            if own_classes is not None:
                got = map_scores(
                    got,
                    own_classes,
                    class_names,
                    getattr(model, "class_map", None),
                    fill=getattr(model, "unmapped_score", UNMAPPED_SCORE),
                )
            if idx.size:
                scores[m][idx] = got
        ok[idx] = True
        errors += [{"video_id": v, "error": e} for v, e in res.errors.items()]
        for v, a, vis in zip(res.video_ids, res.has_audio, res.has_video):
            if not (a and vis):
                flags.append({"video_id": v, "has_audio": bool(a), "has_video": bool(vis)})
    return ChunkResult(scores=scores, ok=ok, errors=errors, flags=flags, seconds=time.perf_counter() - t0)
