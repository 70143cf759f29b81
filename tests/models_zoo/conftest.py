"""Small media files made with PyAV: a tone + a moving square, and the awkward cases."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

av = pytest.importorskip("av")

SR_IN = 44100


def write_clip(path, *, seconds=2.0, fps=10, size=(96, 64), tone_hz=1000.0, audio="tone", video=True):
    """audio: "tone", "silent" (zeros) or None (no audio stream)."""
    w, h = size
    with av.open(str(path), "w") as c:
        vs = as_ = None
        if video:
            vs = c.add_stream("mpeg4", rate=fps)
            vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        if audio is not None:
            as_ = c.add_stream("aac", rate=SR_IN)
            as_.layout = "stereo"
        if vs is not None:
            n = int(seconds * fps)
            for i in range(n):
                img = np.zeros((h, w, 3), dtype=np.uint8)
                x = int((w - 16) * i / max(1, n - 1))
                img[h // 2 - 8 : h // 2 + 8, x : x + 16] = (255, 255, 255)
                frame = av.VideoFrame.from_ndarray(img, format="rgb24")
                for p in vs.encode(frame):
                    c.mux(p)
            for p in vs.encode():
                c.mux(p)
        if as_ is not None:
            t = np.arange(int(seconds * SR_IN)) / SR_IN
            sig = 0.5 * np.sin(2 * np.pi * tone_hz * t) if audio == "tone" else np.zeros_like(t)
            sig = np.stack([sig, sig]).astype(np.float32)
            step = 1024
            for s in range(0, sig.shape[1], step):
                fr = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(sig[:, s : s + step]), format="fltp", layout="stereo"
                )
                fr.sample_rate = SR_IN
                fr.pts = s
                fr.time_base = Fraction(1, SR_IN)
                for p in as_.encode(fr):
                    c.mux(p)
            for p in as_.encode():
                c.mux(p)
    return path


@pytest.fixture(scope="session")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("mz_media")
    clips = {
        "tone": write_clip(d / "tone.mp4"),
        "silent": write_clip(d / "silent.mp4", audio="silent"),
        "noaudio": write_clip(d / "noaudio.mp4", audio=None),
        "novideo": write_clip(d / "novideo.m4a", video=False),
    }
    bad = d / "broken.mp4"
    bad.write_bytes(b"this is not a video file" * 10)
    clips["broken"] = bad
    return clips
