"""Preprocessing: Kaldi fbank against an independent numpy reference (and torchaudio when present),
decoding of real media files made with PyAV, and the awkward inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from models_zoo import preprocess as pp


def numpy_kaldi_fbank(wave, sr=16000, num_bins=128, low=20.0, preemph=0.97, window_power=1.0):
    """Straight from the Kaldi definition, loops and float64 (independent of the torch code).
    window_power 0.85: Kaldi's "povey" window (the Hann window to the power 0.85)."""
    win, shift = int(sr * 0.025), int(sr * 0.010)
    nfft = 1
    while nfft < win:
        nfft *= 2
    n_frames = 1 + (len(wave) - win) // shift
    mel = lambda f: 1127.0 * math.log(1.0 + f / 700.0)  # noqa: E731
    mlow, mhigh = mel(low), mel(sr / 2)
    delta = (mhigh - mlow) / (num_bins + 1)
    banks = np.zeros((num_bins, nfft // 2 + 1))
    for b in range(num_bins):
        left, center, right = mlow + b * delta, mlow + (b + 1) * delta, mlow + (b + 2) * delta
        for i in range(nfft // 2):
            m = mel(i * sr / nfft)
            if left < m < right:
                banks[b, i] = (m - left) / (center - left) if m <= center else (right - m) / (right - center)
    window = np.array([(0.5 - 0.5 * math.cos(2 * math.pi * n / (win - 1))) ** window_power for n in range(win)])
    out = np.zeros((n_frames, num_bins))
    for t in range(n_frames):
        fr = np.asarray(wave[t * shift : t * shift + win], dtype=np.float64).copy()
        fr -= fr.mean()
        pre = fr.copy()
        for n in range(win - 1, 0, -1):
            pre[n] = fr[n] - preemph * fr[n - 1]
        pre[0] = fr[0] - preemph * fr[0]
        buf = np.zeros(nfft)
        buf[:win] = pre * window
        power = np.abs(np.fft.rfft(buf)) ** 2
        out[t] = np.log(np.maximum(banks @ power, np.finfo(np.float32).eps))
    return out


def _test_wave(seconds=0.5, sr=16000, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    return (
        0.3 * np.sin(2 * np.pi * 440 * t)
        + 0.1 * np.sin(2 * np.pi * 3000 * t)
        + 0.05 * rng.standard_normal(t.size)
        + 0.02
    ).astype(np.float32)


def test_fbank_matches_numpy_reference():
    wave = _test_wave()
    ref = numpy_kaldi_fbank(wave)
    got = pp.kaldi_fbank(torch.from_numpy(wave)).double().numpy()
    assert got.shape == ref.shape == (1 + (len(wave) - 400) // 160, 128)
    diff = np.abs(got - ref)
    # float32 vs float64: a handful of near-empty bins may differ slightly more after the log
    assert diff.max() < 1e-3
    assert np.mean(diff < 1e-4) > 0.999


def test_beats_fbank_is_the_povey_kaldi_fbank_of_the_scaled_waveform():
    from models_zoo.beats import beats_fbank

    wave = _test_wave(seconds=0.3, seed=3)
    ref = (numpy_kaldi_fbank(wave.astype(np.float64) * 32768.0, window_power=0.85) - 15.41663) / (2 * 6.55582)
    got = beats_fbank(torch.from_numpy(wave)).double().numpy()
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() < 1e-3
    # the window matters: the CAV-MAE (Hann) fbank of the same audio differs
    hann = (pp.kaldi_fbank(torch.from_numpy(wave) * 32768.0).double().numpy() - 15.41663) / (2 * 6.55582)
    assert np.abs(hann - ref).max() > 1e-2
    with pytest.raises(ValueError, match="unknown window_type 'hamming'; allowed: hanning, povey"):
        pp.kaldi_fbank(torch.from_numpy(wave), window_type="hamming")


def test_beats_fbank_matches_torchaudio_defaults():
    kaldi = pytest.importorskip("torchaudio.compliance.kaldi")
    from models_zoo.beats import beats_fbank

    wave = torch.from_numpy(_test_wave(seconds=1.0))
    ref = kaldi.fbank(
        wave.unsqueeze(0) * 2**15, num_mel_bins=128, sample_frequency=16000, frame_length=25, frame_shift=10
    )
    assert torch.allclose(beats_fbank(wave), (ref - 15.41663) / (2 * 6.55582), atol=1e-4)


def test_fbank_matches_torchaudio_kaldi():
    kaldi = pytest.importorskip("torchaudio.compliance.kaldi")
    wave = torch.from_numpy(_test_wave(seconds=1.0)).unsqueeze(0)
    ref = kaldi.fbank(
        wave,
        htk_compat=True,
        sample_frequency=16000,
        use_energy=False,
        window_type="hanning",
        num_mel_bins=128,
        dither=0.0,
        frame_shift=10,
    )
    got = pp.kaldi_fbank(wave)
    assert got.shape == ref.shape
    assert torch.allclose(got, ref, atol=1e-4)


def test_tone_energy_lands_in_the_right_mel_bin():
    sr = 16000
    t = np.arange(sr) / sr
    fb = pp.kaldi_fbank(torch.from_numpy(np.sin(2 * np.pi * 1000 * t).astype(np.float32)))
    peak = int(fb.mean(0).argmax())
    # centre frequency of the peak filter must be close to 1 kHz
    mel = lambda f: 1127 * math.log(1 + f / 700)  # noqa: E731
    delta = (mel(8000) - mel(20)) / 129
    centre_mel = mel(20) + (peak + 1) * delta
    centre_hz = 700 * (math.exp(centre_mel / 1127) - 1)
    assert abs(centre_hz - 1000) < 40


def test_waveform_to_fbank_pads_cuts_and_normalises():
    short = pp.waveform_to_fbank(_test_wave(seconds=1.0))
    assert short.shape == (1024, 128)
    n = 1 + (16000 - 400) // 160
    raw = pp.kaldi_fbank(torch.from_numpy(_test_wave(seconds=1.0) - _test_wave(seconds=1.0).mean()))
    torch.testing.assert_close(short[:n], (raw - (-5.081)) / 4.4849, atol=1e-5, rtol=0)
    # CAV-MAE pads with zeros before normalising, so padding reads (0 + 5.081) / 4.4849
    assert torch.allclose(short[n:], torch.full_like(short[n:], 5.081 / 4.4849))
    long = pp.waveform_to_fbank(np.zeros(16000 * 12, dtype=np.float32) + _test_wave(seconds=12.0))
    assert long.shape == (1024, 128)


def test_kaldi_fbank_rejects_multichannel():
    with pytest.raises(ValueError, match="mono"):
        pp.kaldi_fbank(torch.zeros(2, 16000))


def test_frame_positions_uniform():
    assert pp.frame_positions(100, 10) == [0, 10, 20, 30, 40, 50, 60, 70, 80, 90]
    assert pp.frame_positions(5, 10) == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert pp.frame_positions(0, 10) == []


def test_frames_to_tensor_resize_crop_normalise():
    frames = np.zeros((2, 100, 300, 3), dtype=np.uint8)
    frames[:, :, 140:160] = 255  # white vertical bar in the middle
    x = pp.frames_to_tensor(frames)
    assert x.shape == (2, 3, 224, 224)
    white = (1 - torch.tensor(pp.IMAGENET_MEAN)) / torch.tensor(pp.IMAGENET_STD)
    black = -torch.tensor(pp.IMAGENET_MEAN) / torch.tensor(pp.IMAGENET_STD)
    torch.testing.assert_close(x[0, :, 112, 112], white, atol=1e-3, rtol=0)
    torch.testing.assert_close(x[0, :, 112, 5], black, atol=1e-3, rtol=0)


def test_decode_clip_tone_and_moving_square(media):
    ci = pp.decode_clip(media["tone"])
    assert ci.has_audio and ci.has_video
    assert ci.fbank.shape == (1024, 128) and ci.frames.shape == (10, 3, 224, 224)
    # 2 s of audio: ~198 frames of signal, the rest is padding
    pad = 5.081 / 4.4849
    is_pad = (ci.fbank - pad).abs().amax(1) < 1e-5
    assert not is_pad[:190].any() and is_pad[210:].all()
    # 1 kHz tone: loudest mel bin is the same as for the synthetic tone
    assert abs(int(ci.fbank[20:180].mean(0).argmax()) - 40) <= 3

    # the square moves left to right: its column of maximum brightness increases over the frames
    def centre(f):
        prof = f.mean(0).mean(0)
        w = (prof - prof.min()).clamp(min=0) ** 2
        return float((w * torch.arange(prof.numel())).sum() / w.sum())

    cols = [centre(f) for f in ci.frames]
    assert cols[-1] > cols[0] + 100
    assert all(b > a for a, b in zip(cols, cols[1:]))


@pytest.mark.parametrize(
    "name,has_audio,has_video", [("silent", False, True), ("noaudio", False, True), ("novideo", True, False)]
)
def test_missing_modalities_are_zero_filled_and_flagged(media, name, has_audio, has_video):
    ci = pp.decode_clip(media[name])
    assert (ci.has_audio, ci.has_video) == (has_audio, has_video)
    if not has_audio:
        assert torch.count_nonzero(ci.fbank) == 0
    if not has_video:
        assert torch.count_nonzero(ci.frames) == 0
        assert ci.fbank.abs().sum() > 0


def test_undecodable_and_missing_files_name_the_file(media, tmp_path):
    with pytest.raises(pp.DecodeError, match="broken.mp4"):
        pp.decode_clip(media["broken"])
    with pytest.raises(pp.DecodeError, match="nope.mp4: file does not exist"):
        pp.decode_clip(tmp_path / "nope.mp4")


def test_collate_and_validate(media):
    batch = pp.collate([pp.decode_clip(media["tone"]), pp.decode_clip(media["noaudio"])])
    assert pp.validate_batch(batch) == 2
    assert batch["has_audio"].tolist() == [True, False]
    with pytest.raises(ValueError, match="has_video"):
        pp.validate_batch({k: v for k, v in batch.items() if k != "has_video"})
