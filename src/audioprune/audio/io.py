"""Decode audio files with soundfile and resample with soxr: one function, float32 mono out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from audioprune.errors import AudioDecodeError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".aiff", ".aif", ".au", ".mp3")


def resample(wave: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample a 1-D or (frames, channels) array with soxr's high-quality filter."""
    if orig_sr == target_sr:
        return wave
    return soxr.resample(wave, orig_sr, target_sr, quality="HQ").astype(np.float32, copy=False)


def load_audio(path: str | Path, sample_rate: int | None = None, mono: bool = True) -> np.ndarray:
    """Read `path` as float32 in [-1, 1]; mix down to mono; resample to `sample_rate` if given.

    Returns shape (samples,) when mono, else (channels, samples). Raises AudioDecodeError naming
    the file when it cannot be read, holds no samples or holds NaN/Inf.
    """
    path = Path(path)
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises several types (LibsndfileError, RuntimeError, ...)
        raise AudioDecodeError(f"{path}: cannot decode audio ({exc}); check the file is complete "
                               f"and in a format libsndfile reads (wav, flac, ogg, aiff, au)") from exc
    if data.shape[0] == 0:
        raise AudioDecodeError(f"{path}: the file holds no samples")
    if not np.isfinite(data).all():
        raise AudioDecodeError(f"{path}: the file holds NaN or Inf samples")
    wave = data.mean(axis=1) if mono else data
    if sample_rate is not None and sr != sample_rate:
        wave = resample(wave, sr, sample_rate)
    wave = np.ascontiguousarray(wave if mono else wave.T, dtype=np.float32)
    return wave
