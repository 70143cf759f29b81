"""Media probing and synthetic test clips with PyAV (pure: paths in, facts out)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MEDIA_EXTENSIONS = {".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v"}


@dataclass(frozen=True)
class MediaInfo:
    duration: float
    has_audio: bool
    has_video: bool


class MediaError(ValueError):
    pass


def probe(path: str | Path, *, require_audio: bool = True, require_video: bool = True) -> MediaInfo:
    """Open a media file and decode its first video frame and audio frame. Raises MediaError with the reason."""
    import av  # noqa: PLC0415 - PyAV (FFmpeg) is loaded only when media is decoded

    path = Path(path)
    try:
        with av.open(str(path)) as container:
            has_video = bool(container.streams.video)
            has_audio = bool(container.streams.audio)
            duration = container.duration / 1_000_000 if container.duration else None
            missing = [
                what
                for what, need, has in (("audio", require_audio, has_audio), ("video", require_video, has_video))
                if need and not has
            ]
            if missing:
                raise MediaError(f"{path.name}: no {' and no '.join(missing)} stream")
            for stream_kind in ("video", "audio"):
                streams = getattr(container.streams, stream_kind)
                if not streams:
                    continue
                container.seek(0)
                frame = next(container.decode(streams[0]), None)
                if frame is None:
                    raise MediaError(f"{path.name}: the {stream_kind} stream holds no decodable frame")
            if duration is None:
                stream = (container.streams.video or container.streams.audio)[0]
                duration = float(stream.duration * stream.time_base) if stream.duration else 0.0
    except MediaError:
        raise
    except (av.error.FFmpegError, OSError, StopIteration) as exc:
        raise MediaError(f"{path.name}: not decodable audio+video ({exc.__class__.__name__}: {exc})") from exc
    return MediaInfo(duration=round(float(duration), 3), has_audio=has_audio, has_video=has_video)


def make_synthetic_clip(
    path: str | Path,
    *,
    seconds: float = 3.0,
    fps: int = 12,
    size: tuple[int, int] = (160, 120),
    tone_hz: float | None = 440.0,
    noise: float = 0.0,
    shape_color=(230, 60, 40),
    seed: int = 0,
    with_audio: bool = True,
    with_video: bool = True,
) -> Path:
    """Write a small H.264/AAC mp4: a square moving across a gradient, a tone (plus optional noise).

    Audio and video differ per clip (colour, direction, pitch), so annotators can hear and see different things.
    """
    import av  # noqa: PLC0415 - PyAV (FFmpeg) is loaded only when media is decoded

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    width, height = size
    sample_rate = 16000
    with av.open(str(path), mode="w") as container:
        vstream = astream = None
        if with_video:
            vstream = container.add_stream("libx264", rate=fps)
            vstream.width, vstream.height, vstream.pix_fmt = width, height, "yuv420p"
            vstream.options = {"preset": "ultrafast", "tune": "zerolatency"}
        if with_audio:
            astream = container.add_stream("aac", rate=sample_rate)
            astream.layout = "mono"
        if vstream is not None:
            yy, xx = np.mgrid[0:height, 0:width]
            background = np.stack(
                [(xx * 255 // max(width - 1, 1)), (yy * 255 // max(height - 1, 1)), np.full_like(xx, 80)], axis=-1
            ).astype(np.uint8)
            side = max(8, height // 4)
            n_frames = int(round(seconds * fps))
            direction = 1 if seed % 2 == 0 else -1
            for i in range(n_frames):
                img = background.copy()
                t = i / max(n_frames - 1, 1)
                x = int((t if direction > 0 else 1 - t) * (width - side))
                y = int((height - side) / 2 + (height / 4) * math.sin(2 * math.pi * t))
                img[y : y + side, x : x + side] = shape_color
                frame = av.VideoFrame.from_ndarray(img, format="rgb24")
                for packet in vstream.encode(frame):
                    container.mux(packet)
            for packet in vstream.encode():
                container.mux(packet)
        if astream is not None:
            n = int(seconds * sample_rate)
            t = np.arange(n) / sample_rate
            signal = np.zeros(n, dtype=np.float32)
            if tone_hz:
                signal += 0.3 * np.sin(2 * np.pi * tone_hz * t).astype(np.float32)
            if noise:
                signal += (noise * rng.standard_normal(n)).astype(np.float32)
            chunk = 1024
            for start in range(0, n, chunk):
                block = signal[start : start + chunk]
                frame = av.AudioFrame.from_ndarray(block.reshape(1, -1), format="flt", layout="mono")
                frame.sample_rate = sample_rate
                frame.pts = start
                for packet in astream.encode(frame):
                    container.mux(packet)
            for packet in astream.encode():
                container.mux(packet)
    return path
