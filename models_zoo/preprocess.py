"""Clip preprocessing: pure functions from media files to model-ready tensors.

Audio follows CAV-MAE's fine-tuning dataloader: 16 kHz mono waveform, mean removed, Kaldi-compatible
log-mel filterbank (128 bins, 25 ms Hanning window, 10 ms shift, HTK mel, no dither, no energy,
per-frame DC removal, pre-emphasis 0.97), padded/cut to 1024 frames, normalised as
``(fbank - (-5.081)) / 4.4849`` (the official ``src/dataloader.py`` divides by ``norm_std`` itself,
not by ``2 * std`` as AST does).

Video: ``num_frames`` frames at uniform positions (frame ``int(i * n / num_frames)``), resized so
that the shorter side is 224 (bicubic, antialiased like PIL) and centre-cropped to 224x224,
scaled to [0, 1] and normalised with the ImageNet mean/std.

PyAV is imported lazily inside the decode functions; everything else needs torch + numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

SAMPLE_RATE = 16000
NUM_MEL_BINS = 128
TARGET_LENGTH = 1024
NUM_FRAMES = 10
IMAGE_SIZE = 224
FBANK_MEAN = -5.081
FBANK_STD = 4.4849
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
WAVEFORM_SAMPLES = 10 * SAMPLE_RATE


class DecodeError(Exception):
    """A media file could not be decoded; the message names the file."""


# --------------------------------------------------------------------------------------------
# Kaldi-compatible filterbank (torch)
# --------------------------------------------------------------------------------------------


def _mel(freq):
    return 1127.0 * np.log(1.0 + np.asarray(freq, dtype=np.float64) / 700.0)


def kaldi_mel_banks(
    num_bins: int, padded_window_size: int, sample_rate: float, low_freq: float = 20.0, high_freq: float = 0.0
) -> torch.Tensor:
    """Triangular mel filters as Kaldi builds them (in mel space), shape [num_bins, padded/2 + 1].

    The last column (Nyquist bin) is zero, as in Kaldi/torchaudio."""
    nyquist = 0.5 * sample_rate
    if high_freq <= 0.0:
        high_freq += nyquist
    if not (0.0 <= low_freq < nyquist and 0.0 < high_freq <= nyquist and low_freq < high_freq):
        raise ValueError(f"bad mel frequency range low={low_freq} high={high_freq} (nyquist {nyquist})")
    num_fft_bins = padded_window_size // 2
    fft_bin_width = sample_rate / padded_window_size
    mel_low, mel_high = _mel(low_freq), _mel(high_freq)
    delta = (mel_high - mel_low) / (num_bins + 1)
    b = np.arange(num_bins, dtype=np.float64)[:, None]
    left = mel_low + b * delta
    center = mel_low + (b + 1.0) * delta
    right = mel_low + (b + 2.0) * delta
    mel = _mel(fft_bin_width * np.arange(num_fft_bins, dtype=np.float64))[None, :]
    up = (mel - left) / (center - left)
    down = (right - mel) / (right - center)
    w = np.maximum(0.0, np.minimum(up, down))
    w = np.concatenate([w, np.zeros((num_bins, 1))], axis=1)
    return torch.from_numpy(w.astype(np.float32))


_BANK_CACHE: dict[tuple, torch.Tensor] = {}


def kaldi_fbank(
    waveform: torch.Tensor,
    sample_rate: int = SAMPLE_RATE,
    num_mel_bins: int = NUM_MEL_BINS,
    frame_length_ms: float = 25.0,
    frame_shift_ms: float = 10.0,
    preemphasis: float = 0.97,
    low_freq: float = 20.0,
    high_freq: float = 0.0,
    window_type: str = "hanning",
) -> torch.Tensor:
    """Log-mel filterbank equal to ``torchaudio.compliance.kaldi.fbank(waveform, htk_compat=True,
    sample_frequency=sr, use_energy=False, window_type='hanning', num_mel_bins=128, dither=0.0,
    frame_shift=10)`` (snip_edges, remove_dc_offset, power spectrum, padded FFT size).
    ``window_type="povey"`` (Kaldi's default: Hann to the power 0.85) gives what BEATs uses.

    waveform: [N] or [1, N] float. Returns [num_frames, num_mel_bins] float32."""
    if window_type not in ("hanning", "povey"):
        raise ValueError(f"unknown window_type {window_type!r}; allowed: hanning, povey")
    w = torch.as_tensor(waveform, dtype=torch.float32)
    if w.dim() == 2:
        if w.shape[0] != 1:
            raise ValueError(f"kaldi_fbank expects a mono waveform [N] or [1, N], got shape {tuple(w.shape)}")
        w = w[0]
    if w.dim() != 1:
        raise ValueError(f"kaldi_fbank expects a mono waveform [N] or [1, N], got shape {tuple(w.shape)}")
    win = int(sample_rate * frame_length_ms * 0.001)
    shift = int(sample_rate * frame_shift_ms * 0.001)
    if w.numel() < win:
        return torch.zeros(0, num_mel_bins)
    padded = 1 << (win - 1).bit_length()
    frames = w.unfold(0, win, shift)  # [T, win], snip_edges=True
    frames = frames - frames.mean(dim=1, keepdim=True)  # remove DC offset
    if preemphasis != 0.0:
        prev = torch.cat([frames[:, :1], frames[:, :-1]], dim=1)
        frames = frames - preemphasis * prev
    window = torch.hann_window(win, periodic=False, dtype=torch.float32)
    if window_type == "povey":
        window = window.pow(0.85)
    frames = frames * window
    frames = F.pad(frames, (0, padded - win))
    power = torch.fft.rfft(frames).abs().pow(2.0)
    key = (num_mel_bins, padded, sample_rate, low_freq, high_freq)
    banks = _BANK_CACHE.get(key)
    if banks is None:
        banks = _BANK_CACHE[key] = kaldi_mel_banks(num_mel_bins, padded, sample_rate, low_freq, high_freq)
    mel = power @ banks.T
    eps = torch.finfo(torch.float32).eps
    return torch.log(torch.clamp(mel, min=eps))


def waveform_to_fbank(
    waveform, sample_rate: int = SAMPLE_RATE, target_length: int = TARGET_LENGTH, normalize: bool = True
) -> torch.Tensor:
    """CAV-MAE audio input: mean-removed waveform -> fbank -> pad/cut to target_length -> normalise.
    Returns [target_length, 128] float32."""
    w = torch.as_tensor(np.asarray(waveform, dtype=np.float32)).reshape(-1)
    w = w - w.mean() if w.numel() else w
    fb = kaldi_fbank(w, sample_rate=sample_rate)
    n = fb.shape[0]
    if n < target_length:
        fb = F.pad(fb, (0, 0, 0, target_length - n))
    else:
        fb = fb[:target_length]
    if normalize:
        fb = (fb - FBANK_MEAN) / FBANK_STD
    return fb.contiguous()


# --------------------------------------------------------------------------------------------
# Frames
# --------------------------------------------------------------------------------------------


def frame_positions(total: int, num_frames: int = NUM_FRAMES) -> list[int]:
    """Uniform frame indices int(i * total / num_frames); repeats frames when the clip is short."""
    if total <= 0:
        return []
    return [min(total - 1, int(i * total / num_frames)) for i in range(num_frames)]


def frames_to_tensor(frames: np.ndarray, size: int = IMAGE_SIZE) -> torch.Tensor:
    """uint8 frames [T, H, W, 3] -> normalised float32 [T, 3, size, size]
    (shorter side resized to `size` with antialiased bicubic, centre crop, ImageNet mean/std)."""
    arr = np.asarray(frames)
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 [T, H, W, 3], got shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {arr.dtype}")
    # resize in uint8 like PIL does (and ~20x faster than float on CPU), then crop and scale
    x = torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2)
    h, w = x.shape[-2:]
    if h <= w:
        nh, nw = size, max(size, int(size * w / h))
    else:
        nh, nw = max(size, int(size * h / w)), size
    if (nh, nw) != (h, w):
        x = F.interpolate(
            x.contiguous(memory_format=torch.channels_last),
            size=(nh, nw),
            mode="bicubic",
            align_corners=False,
            antialias=True,
        )
    top, left = (nh - size) // 2, (nw - size) // 2
    x = x[:, :, top : top + size, left : left + size].float().div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous()


# --------------------------------------------------------------------------------------------
# Decoding (PyAV, imported lazily)
# --------------------------------------------------------------------------------------------


def _open(path):
    try:
        import av  # noqa: PLC0415  (lazy: PyAV is optional for the package)
    except ImportError as exc:  # pragma: no cover - depends on the host
        raise DecodeError(f"{path}: PyAV (package 'av') is not installed; cannot decode media") from exc
    p = str(path)
    if not Path(p).exists() and "://" not in p:
        raise DecodeError(f"{p}: file does not exist")
    try:
        return av.open(p)
    except Exception as exc:  # av.error.* and OSError
        raise DecodeError(f"{p}: cannot open media ({type(exc).__name__}: {exc})") from exc


def decode_audio(path, sample_rate: int = SAMPLE_RATE, container=None) -> np.ndarray | None:
    """Decode the first audio stream resampled to `sample_rate` mono float32 in [-1, 1].
    Returns None when the file has no audio stream."""
    import av  # noqa: PLC0415

    own = container is None
    c = _open(path) if own else container
    try:
        if not c.streams.audio:
            return None
        stream = c.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        chunks = []
        try:
            for frame in c.decode(stream):
                frame.pts = None
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        except av.error.FFmpegError as exc:
            raise DecodeError(f"{path}: audio stream cannot be decoded ({exc})") from exc
        if not chunks:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate(chunks).astype(np.float32, copy=False)
    finally:
        if own:
            c.close()


def decode_video_frames(
    path, num_frames: int = NUM_FRAMES, container=None, codec_threads: int = 0
) -> np.ndarray | None:
    """Decode `num_frames` RGB frames at uniform positions: uint8 [T, H, W, 3], or None when the file
    has no video stream (or no decodable frame). codec_threads: FFmpeg decoder threads (0 = one per
    core; 1 inside a pool that already has a process per core, where more would only contend)."""
    import av  # noqa: PLC0415

    own = container is None
    c = _open(path) if own else container
    try:
        if not c.streams.video:
            return None
        stream = c.streams.video[0]
        if codec_threads != 1:
            stream.thread_type = "AUTO"
            stream.codec_context.thread_count = codec_threads
        total = stream.frames or 0
        decoded = []
        try:
            if total > 0:
                wanted = frame_positions(total, num_frames)
                want_set = set(wanted)
                last = max(wanted)
                got: dict[int, np.ndarray] = {}
                for i, frame in enumerate(c.decode(stream)):
                    if i in want_set:
                        got[i] = frame.to_ndarray(format="rgb24")
                    if i >= last:
                        break
                if got:
                    keys = sorted(got)
                    # a container may announce more frames than it holds: fall back to the nearest
                    decoded = [got[min(keys, key=lambda k: abs(k - w))] for w in wanted]
            if not decoded:
                # frame count unknown (or wrong): decode everything at low cost, then pick
                c.seek(0)
                allf = [f.to_ndarray(format="rgb24") for f in c.decode(stream)]
                decoded = [allf[i] for i in frame_positions(len(allf), num_frames)]
        except av.error.FFmpegError as exc:
            raise DecodeError(f"{path}: video stream cannot be decoded ({exc})") from exc
        if not decoded:
            return None
        return np.stack(decoded)
    finally:
        if own:
            c.close()


@dataclass
class ClipInputs:
    fbank: torch.Tensor  # [1024, 128]
    frames: torch.Tensor  # [T, 3, 224, 224]
    has_audio: bool
    has_video: bool
    waveform: torch.Tensor | None = None  # [WAVEFORM_SAMPLES] 16 kHz mono, only when decoded with keep_waveform

    def as_dict(self) -> dict[str, Any]:
        d = {"fbank": self.fbank, "frames": self.frames, "has_audio": self.has_audio, "has_video": self.has_video}
        if self.waveform is not None:
            d["waveform"] = self.waveform
        return d


def fixed_length_waveform(wave, samples: int = WAVEFORM_SAMPLES) -> torch.Tensor:
    """The first `samples` samples of a mono waveform, zero-padded at the end when shorter."""
    w = torch.zeros(samples, dtype=torch.float32)
    if wave is not None and len(wave):
        n = min(samples, len(wave))
        w[:n] = torch.as_tensor(np.asarray(wave[:n], dtype=np.float32))
    return w


def decode_clip(
    path,
    num_frames: int = NUM_FRAMES,
    target_length: int = TARGET_LENGTH,
    image_size: int = IMAGE_SIZE,
    codec_threads: int = 0,
    keep_waveform: bool = False,
) -> ClipInputs:
    """Decode one media file into model inputs. A missing or silent audio track gives a zero fbank
    with has_audio=False; a missing video track gives zero frames with has_video=False; a file with
    neither, or that cannot be decoded, raises DecodeError naming the file. keep_waveform: also return
    the first 10 s of the 16 kHz mono waveform (zero-padded), for models with their own audio features
    (Crab's BEATs)."""
    c = _open(path)
    try:
        try:
            wave = decode_audio(path, container=c)
        except DecodeError:
            raise
        except Exception as exc:
            raise DecodeError(f"{path}: audio cannot be decoded ({type(exc).__name__}: {exc})") from exc
        try:
            c.seek(0)
        except Exception:  # noqa: BLE001 - some containers cannot seek; reopen instead
            c.close()
            c = _open(path)
        try:
            frames = decode_video_frames(path, num_frames=num_frames, container=c, codec_threads=codec_threads)
        except DecodeError:
            raise
        except Exception as exc:
            raise DecodeError(f"{path}: video cannot be decoded ({type(exc).__name__}: {exc})") from exc
    finally:
        c.close()
    if wave is None and frames is None:
        raise DecodeError(f"{path}: no audio or video stream found")
    has_audio = wave is not None and wave.size >= int(0.025 * SAMPLE_RATE) and float(np.abs(wave).max()) > 1e-5
    if has_audio:
        fbank = waveform_to_fbank(wave, target_length=target_length)
    else:
        fbank = torch.zeros(target_length, NUM_MEL_BINS)
    has_video = frames is not None
    if has_video:
        frames_t = frames_to_tensor(frames, size=image_size)
    else:
        frames_t = torch.zeros(num_frames, 3, image_size, image_size)
    waveform = None
    if keep_waveform:
        waveform = fixed_length_waveform(wave if has_audio else None)
    return ClipInputs(
        fbank=fbank, frames=frames_t, has_audio=bool(has_audio), has_video=bool(has_video), waveform=waveform
    )


def collate(items: Sequence[ClipInputs | dict], out: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Stack decoded clips into the model batch {"fbank","frames","has_audio","has_video"}.
    out: optional preallocated "fbank" [>=B, ...] and "frames" [>=B, ...] tensors (pinned host memory
    for a fast copy to the GPU); the batch then holds views of their first B rows."""
    if not items:
        raise ValueError("collate needs at least one clip")
    ds = [it.as_dict() if isinstance(it, ClipInputs) else it for it in items]
    b = len(ds)
    stacked = {}
    for key in ("fbank", "frames"):
        buf = None if out is None else out.get(key)
        if buf is not None and buf.shape[0] >= b and buf.shape[1:] == ds[0][key].shape:
            stacked[key] = torch.stack([d[key] for d in ds], out=buf[:b])
        else:
            stacked[key] = torch.stack([d[key] for d in ds])
    if all(d.get("waveform") is not None for d in ds):
        stacked["waveform"] = torch.stack([d["waveform"] for d in ds])
    return {
        **stacked,
        "has_audio": torch.tensor([bool(d["has_audio"]) for d in ds]),
        "has_video": torch.tensor([bool(d["has_video"]) for d in ds]),
    }


def synthetic_batch(
    batch_size: int,
    num_frames: int = NUM_FRAMES,
    seed: int = 0,
    device="cpu",
    dtype=torch.float32,
    waveform: bool = False,
) -> dict[str, torch.Tensor]:
    """Random model inputs of the right shapes (benchmarks on hosts without PyAV); waveform=True adds a
    10 s 16 kHz "waveform" (models with their own audio features, e.g. Crab)."""
    g = torch.Generator().manual_seed(seed)
    batch = {
        "fbank": torch.randn(batch_size, TARGET_LENGTH, NUM_MEL_BINS, generator=g).to(device, dtype),
        "frames": torch.randn(batch_size, num_frames, 3, IMAGE_SIZE, IMAGE_SIZE, generator=g).to(device, dtype),
        "has_audio": torch.ones(batch_size, dtype=torch.bool, device=device),
        "has_video": torch.ones(batch_size, dtype=torch.bool, device=device),
    }
    if waveform:
        batch["waveform"] = (0.1 * torch.randn(batch_size, WAVEFORM_SAMPLES, generator=g)).to(device, dtype)
    return batch


def validate_batch(batch: dict) -> int:
    """Check the batch contract; returns the batch size or raises ValueError naming the field."""
    for key in ("fbank", "frames", "has_audio", "has_video"):
        if key not in batch:
            raise ValueError(f"batch is missing '{key}' (needs fbank, frames, has_audio, has_video)")
    fb, fr = batch["fbank"], batch["frames"]
    if fb.dim() != 3:
        raise ValueError(f"batch['fbank'] must be [B, frames, 128], got {tuple(fb.shape)}")
    if fr.dim() != 5 or fr.shape[2] != 3:
        raise ValueError(f"batch['frames'] must be [B, T, 3, H, W], got {tuple(fr.shape)}")
    b = fb.shape[0]
    for key in ("frames", "has_audio", "has_video"):
        if batch[key].shape[0] != b:
            raise ValueError(f"batch['{key}'] has batch size {batch[key].shape[0]}, fbank has {b}")
    return b


__all__ = [
    "DecodeError",
    "ClipInputs",
    "kaldi_fbank",
    "kaldi_mel_banks",
    "waveform_to_fbank",
    "frame_positions",
    "frames_to_tensor",
    "decode_audio",
    "decode_video_frames",
    "decode_clip",
    "collate",
    "synthetic_batch",
    "validate_batch",
]
