"""Batch inference: decode clips in a CPU pool while the model runs, collect float32 scores.

``run_inference(model, clips)`` walks the clips in chunks; the next ``prefetch`` chunks are decoded
(process or thread pool) while the current one is on the model, so the pool's workers never idle at
a chunk boundary. CUDA runs under bf16 autocast, CPU in fp32.
A clip that fails to decode is recorded in ``errors`` (video id -> message) and left out of the
score arrays; it never fails the run.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import multiprocessing as mp
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np
import torch

from .base import MODALITIES
from .preprocess import ClipInputs, DecodeError, collate, decode_clip


@dataclass
class InferenceResult:
    video_ids: list[str]
    scores: dict[str, np.ndarray]  # modality -> float32 [len(video_ids), num_classes]
    has_audio: np.ndarray
    has_video: np.ndarray
    errors: dict[str, str] = field(default_factory=dict)
    wall_s: float = 0.0
    decode_wait_s: float = 0.0  # time the model loop waited for decoded clips
    model_s: float = 0.0  # collate + transfer + compute + results back
    collate_s: float = 0.0  # stacking decoded clips into the batch (host memory)
    transfer_s: float = 0.0  # host -> device copy of the batch
    compute_s: float = 0.0  # the model's forward passes, scores back on the host

    def bound_by(self) -> str:
        """The stage the run waited on most: decode, collate, transfer or compute."""
        parts = {
            "decode": self.decode_wait_s,
            "collate": self.collate_s,
            "transfer": self.transfer_s,
            "compute": self.compute_s,
        }
        return max(parts, key=parts.get)

    @property
    def clips_per_s(self) -> float:
        return len(self.video_ids) / self.wall_s if self.wall_s > 0 else 0.0


def _decode_one(args):
    video_id, path, kwargs = args
    try:
        return video_id, decode_clip(path, **kwargs), None
    except DecodeError as exc:
        return video_id, None, str(exc)
    except Exception as exc:  # noqa: BLE001 - any failure of one clip is that clip's error
        return video_id, None, f"{path}: {type(exc).__name__}: {exc}"


def _flag(item, name: str) -> bool:
    """has_audio / has_video of a decoded clip (ClipInputs) or of a model's own input dict."""
    return bool(item[name] if isinstance(item, dict) else getattr(item, name))


def _init_worker():
    torch.set_num_threads(1)


def make_pool(kind: str = "auto", workers: int | None = None):
    """kind: "process", "thread" or "auto" (processes unless this is a daemon process, e.g. a Celery
    prefork child, which may not start children)."""
    workers = workers or max(1, os.cpu_count() or 1)
    if kind == "auto":
        kind = "thread" if mp.current_process().daemon else "process"
    if kind == "process":
        return cf.ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_init_worker)
    if kind == "thread":
        return cf.ThreadPoolExecutor(workers)
    raise ValueError(f"unknown pool kind {kind!r}; allowed: auto, process, thread")


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def run_inference(
    model,
    clips: Iterable[tuple[str, str]],
    *,
    chunk_size: int = 32,
    modalities: Sequence[str] = MODALITIES,
    device=None,
    pool: str | cf.Executor = "auto",
    workers: int | None = None,
    decode_kwargs: dict | None = None,
    progress: Callable[[int, int, int], None] | None = None,
    decode_fn: Callable | None = None,
    prefetch: int = 2,
) -> InferenceResult:
    """Score `clips` ((video_id, path) pairs) with `model` (a ClipModel).

    progress(done, failed, total) is called after every chunk. decode_fn(video_id, path) ->
    ClipInputs may replace file decoding (then no pool is used); a model with ``input_loader()``
    (LEAP: precomputed feature files) supplies its own, and its ``collate_inputs`` stacks them. pool: a kind for
    make_pool (a pool
    made for this call and shut down after it) or an Executor the caller keeps warm across calls
    (left running). prefetch: chunks decoded ahead of the one on the model (>= 1). On CUDA the
    batch is stacked into reused pinned buffers and the host side runs one torch thread; the
    result splits the time into decode wait, collate, transfer and compute (see bound_by())."""
    clips = list(clips)
    loader = getattr(model, "input_loader", None)
    if decode_fn is None and callable(loader):
        decode_fn = loader()  # models that read precomputed inputs (LEAP: feature files), not media
    collate_fn = getattr(model, "collate_inputs", None) or collate
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if prefetch < 1:
        raise ValueError(f"prefetch must be >= 1, got {prefetch}")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    mods = tuple(modalities)
    kw = {**getattr(model, "decode_kwargs", {}), **(decode_kwargs or {})}  # e.g. Crab keeps the waveform
    t0 = time.perf_counter()
    out_ids: list[str] = []
    out_scores: dict[str, list[np.ndarray]] = {m: [] for m in mods}
    has_a: list[bool] = []
    has_v: list[bool] = []
    errors: dict[str, str] = {}
    wait_s = model_s = 0.0
    chunks = [clips[i : i + chunk_size] for i in range(0, len(clips), chunk_size)]

    own_pool = decode_fn is None and not isinstance(pool, cf.Executor)
    executor = None if decode_fn is not None else (make_pool(pool, workers) if own_pool else pool)
    if executor is not None and getattr(executor, "_max_workers", 1) > 1:
        kw.setdefault("codec_threads", 1)  # a decoder per pool worker already fills the cores
    cuda = device.type == "cuda"
    main_threads = torch.get_num_threads()
    if cuda and executor is not None:
        # the host side of a GPU run is copies: with the cores busy decoding, a wide intra-op
        # thread team only contends (and decode threads in this process share the setting)
        torch.set_num_threads(1)
    pinned: dict[str, torch.Tensor] = {}
    col_s = xfer_s = comp_s = 0.0

    def sync():
        if cuda:
            torch.cuda.synchronize(device)

    def submit(chunk):
        if decode_fn is not None:
            return None, chunk
        return [executor.submit(_decode_one, (vid, path, kw)) for vid, path in chunk], chunk

    def gather(handle):
        futs, chunk = handle
        if decode_fn is None:
            return [f.result() for f in futs]
        res = []
        for vid, path in chunk:
            try:
                res.append((vid, decode_fn(vid, path), None))
            except Exception as exc:  # noqa: BLE001
                res.append((vid, None, f"{path}: {type(exc).__name__}: {exc}"))
        return res

    pending: collections.deque = collections.deque()
    try:
        pending.extend(submit(c) for c in chunks[:prefetch])
        for ci in range(len(chunks)):
            tw = time.perf_counter()
            decoded = gather(pending.popleft())
            wait_s += time.perf_counter() - tw
            if ci + prefetch < len(chunks):  # keep `prefetch` chunks decoding while the model runs
                pending.append(submit(chunks[ci + prefetch]))
            good: list[tuple[str, ClipInputs]] = []
            for vid, item, err in decoded:
                if err is not None:
                    errors[vid] = err
                else:
                    good.append((vid, item))
            if good:
                tm = time.perf_counter()
                if cuda and not pinned and collate_fn is collate:
                    first = good[0][1]
                    pinned = {
                        k: torch.empty((chunk_size, *getattr(first, k).shape), pin_memory=True)
                        for k in ("fbank", "frames")
                    }
                sync()  # the previous chunk's copies out of the pinned buffers are done
                items = [it for _, it in good]
                batch = collate(items, out=pinned or None) if collate_fn is collate else collate_fn(items)
                t1 = time.perf_counter()
                batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
                sync()
                t2 = time.perf_counter()
                col_s += t1 - tm
                xfer_s += t2 - t1
                try:
                    with torch.inference_mode(), _autocast(device):
                        scores = model.predict(batch, mods)
                except Exception:  # noqa: BLE001 - retry clip by clip so one bad clip stays alone
                    scores = None
                    for vid, it in good:
                        single = {k: v.to(device) for k, v in collate_fn([it]).items()}
                        try:
                            with torch.inference_mode(), _autocast(device):
                                s = model.predict(single, mods)
                        except Exception as exc1:  # noqa: BLE001
                            errors[vid] = f"model failed: {type(exc1).__name__}: {exc1}"
                            continue
                        out_ids.append(vid)
                        has_a.append(_flag(it, "has_audio"))
                        has_v.append(_flag(it, "has_video"))
                        for m in mods:
                            out_scores[m].append(s[m].float().cpu().numpy())
                if scores is not None:
                    for m in mods:
                        out_scores[m].append(scores[m].float().cpu().numpy())
                    out_ids.extend(v for v, _ in good)
                    has_a.extend(_flag(it, "has_audio") for _, it in good)
                    has_v.extend(_flag(it, "has_video") for _, it in good)
                sync()
                comp_s += time.perf_counter() - t2
                model_s += time.perf_counter() - tm
            if progress is not None:
                progress(len(out_ids), len(errors), len(clips))
    finally:
        torch.set_num_threads(main_threads)
        if own_pool:
            executor.shutdown(wait=True, cancel_futures=True)
        else:  # a caller's pool (or none) stays up; drop the decodes this run no longer needs
            for futs, _ in pending:
                for fut in futs or ():
                    fut.cancel()
    n_cls = getattr(model, "num_classes", 0)
    scores_np = {
        m: (
            np.concatenate(out_scores[m]).astype(np.float32, copy=False)
            if out_scores[m]
            else np.zeros((0, n_cls), dtype=np.float32)
        )
        for m in mods
    }
    return InferenceResult(
        video_ids=out_ids,
        scores=scores_np,
        has_audio=np.array(has_a, dtype=bool),
        has_video=np.array(has_v, dtype=bool),
        errors=errors,
        wall_s=time.perf_counter() - t0,
        decode_wait_s=wait_s,
        model_s=model_s,
        collate_s=col_s,
        transfer_s=xfer_s,
        compute_s=comp_s,
    )
