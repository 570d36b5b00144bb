"""The log-mel front end against librosa, and waveform loading/cropping on real and odd audio."""

from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf
import torch

from audioprune.audio.augment import SpecAugment, mixup
from audioprune.audio.clip import fit_length
from audioprune.audio.frontend import FrontEndConfig, LogMel
from audioprune.audio.io import load_audio
from audioprune.errors import AudioDecodeError


def test_logmel_matches_librosa_on_real_speech(fsdd_root: Path) -> None:
    wave = load_audio(fsdd_root / "recordings" / "3_theo_7.flac", 8000)
    cfg = FrontEndConfig(sample_rate=8000, n_fft=256, hop_length=80, n_mels=40, fmin=0, fmax=4000,
                         clip_seconds=None)
    ours = LogMel(cfg)(torch.from_numpy(wave)[None])[0, 0].numpy()  # (frames, mels)
    ref = librosa.feature.melspectrogram(y=wave, sr=8000, n_fft=256, hop_length=80, n_mels=40,
                                         fmin=0, fmax=4000, center=True, pad_mode="reflect",
                                         power=2.0)
    ref_db = 10 * np.log10(ref + cfg.log_offset).T
    assert ours.shape == ref_db.shape == (cfg.num_frames(len(wave)), 40)
    np.testing.assert_allclose(ours, ref_db, atol=2e-3)


def test_logmel_standardisation_and_shape() -> None:
    cfg = FrontEndConfig(sample_rate=16000, n_fft=512, hop_length=160, n_mels=64, fmax=8000)
    x = torch.randn(3, 16000)
    raw = LogMel(cfg)(x)
    std = LogMel(cfg.replace(mean=-20.0, std=5.0))(x)
    assert raw.shape == (3, 1, 101, 64)
    torch.testing.assert_close(std, (raw + 20.0) / 5.0)


def test_bad_frontend_settings_are_named() -> None:
    with pytest.raises(ValueError, match="fmax"):
        LogMel(FrontEndConfig(sample_rate=8000, fmax=14000))
    with pytest.raises(ValueError, match="unknown front-end settings"):
        FrontEndConfig.from_dict({"sample_rate": 8000, "n_mel": 40})


def test_load_audio_resamples_and_mixes_down(tmp_path: Path) -> None:
    sr = 44100
    t = np.arange(sr) / sr
    left, right = np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 440 * t + 0.5)
    for fmt, ext in (("WAV", "wav"), ("FLAC", "flac"), ("OGG", "ogg"), ("AIFF", "aiff"), ("AU", "au")):
        path = tmp_path / f"tone.{ext}"
        sf.write(path, np.stack([left, right], 1) * 0.5, sr, format=fmt)
        wave = load_audio(path, 16000)
        assert wave.dtype == np.float32 and wave.ndim == 1
        assert abs(len(wave) - 16000) <= 1, fmt
        # the mono mix of two 440 Hz tones is a 440 Hz tone: its spectrum peaks there
        spec = np.abs(np.fft.rfft(wave))
        assert abs(np.argmax(spec) * 16000 / len(wave) - 440) < 2, fmt


def test_load_audio_errors_name_the_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, dtype=np.float32), 8000)
    with pytest.raises(AudioDecodeError, match="empty.wav.*no samples"):
        load_audio(empty)
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF\x00\x00junk" * 3)
    with pytest.raises(AudioDecodeError, match="junk.wav"):
        load_audio(junk)
    nan = tmp_path / "nan.wav"
    sf.write(nan, np.array([0.1, np.nan, 0.2], dtype=np.float32), 8000, subtype="FLOAT")
    with pytest.raises(AudioDecodeError, match="NaN"):
        load_audio(nan)


def test_fit_length_crops_and_pads() -> None:
    wave = np.arange(10, dtype=np.float32)
    np.testing.assert_array_equal(fit_length(wave, 4, "centre"), [3, 4, 5, 6])
    np.testing.assert_array_equal(fit_length(wave, 4, "start"), [0, 1, 2, 3])
    np.testing.assert_array_equal(fit_length(wave, 14, "centre"), [0, 0] + list(range(10)) + [0, 0])
    rng = np.random.default_rng(0)
    crops = {tuple(fit_length(wave, 4, "random", rng)) for _ in range(50)}
    assert len(crops) > 3 and all(len(c) == 4 and list(c) == list(range(int(c[0]), int(c[0]) + 4)) for c in crops)
    with pytest.raises(ValueError, match="rng"):
        fit_length(wave, 4, "random")


def test_spec_augment_masks_only_in_training() -> None:
    aug = SpecAugment(time_masks=2, time_width=10, freq_masks=2, freq_width=5)
    x = torch.ones(8, 1, 100, 40)
    aug.eval()
    assert torch.equal(aug(x), x)
    aug.train()
    y = aug(x)
    zeros = (y == 0).float().mean()
    assert 0 < zeros < 0.6
    # masks are whole stripes: a masked time frame is zero across every mel band
    frame_zero = (y == 0).all(dim=3)
    band_zero = (y == 0).all(dim=2)
    assert ((y == 0) <= (frame_zero.unsqueeze(3) | band_zero.unsqueeze(2))).all()


def test_mixup_mixes_inputs_and_targets_alike() -> None:
    torch.manual_seed(1)
    x = torch.eye(4).repeat_interleave(3, dim=1)  # example i is constant i-pattern
    y = torch.eye(4)
    xm, ym = mixup(x, y, alpha=0.4, generator=torch.Generator().manual_seed(0))
    # each mixed input is the same convex combination as its target
    torch.testing.assert_close(xm, ym.repeat_interleave(3, dim=1))
    torch.testing.assert_close(ym.sum(1), torch.ones(4))
