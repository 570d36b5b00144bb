"""Decode audio files with soundfile and resample with soxr: one function, float32 mono out."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from audioprune.errors import AudioDecodeError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".aiff", ".aif", ".au", ".mp3")
# sample rates outside these are corrupt headers, not audio (and 1 Hz resampled to 32 kHz would
# ask for 32,000 output samples per input sample)
MIN_RATE, MAX_RATE = 1000, 768000


def resample(wave: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample a 1-D or (frames, channels) array with soxr's high-quality filter."""
    if orig_sr == target_sr:
        return wave
    return soxr.resample(wave, orig_sr, target_sr, quality="HQ").astype(np.float32, copy=False)


def load_audio(path: str | Path, sample_rate: int | None = None, mono: bool = True) -> np.ndarray:
    """Read `path` as float32 in [-1, 1]; mix down to mono; resample to `sample_rate` if given.

    Returns shape (samples,) when mono, else (channels, samples). Raises AudioDecodeError naming
    the file and the reason when it is missing, cannot be read, is truncated (a WAV/AIFF/AU
    header that declares more audio than the file holds: an incomplete download), holds no
    samples, holds NaN/Inf, or holds only zeros (digital silence).
    """
    path = Path(path)
    if not path.is_file():
        if path.is_dir():
            raise AudioDecodeError(f"{path} is a directory, not an audio file; pass the audio "
                                   f"files it holds")
        what = "a broken link" if path.is_symlink() else "not a file" if path.exists() else "missing"
        raise AudioDecodeError(f"{path}: {what}; restore the file or remove it from the dataset")
    try:
        with sf.SoundFile(str(path)) as fh:
            truncated = _truncation(fh.extra_info)
            data = fh.read(dtype="float32", always_2d=True)
            sr = fh.samplerate
    except Exception as exc:  # soundfile raises several types (LibsndfileError, RuntimeError, ...)
        why = str(exc)
        if "does not exist or is not a regular file" in why:  # libsndfile's MPEG probe on junk
            why = "not a recognised audio format, or corrupt"
        raise AudioDecodeError(f"{path}: cannot decode audio ({why}); check the file is complete "
                               f"and in a format libsndfile reads (wav, flac, ogg, aiff, au)") from exc
    if not MIN_RATE <= sr <= MAX_RATE:
        raise AudioDecodeError(f"{path}: sample rate {sr} Hz is outside {MIN_RATE}-{MAX_RATE} Hz; "
                               f"the header is probably corrupt")
    if truncated:
        declared, present = truncated
        raise AudioDecodeError(f"{path}: truncated: the header declares {declared:,} bytes of audio "
                               f"but the file holds {present:,} (an incomplete copy or download?)")
    if data.shape[0] == 0:
        raise AudioDecodeError(f"{path}: the file holds no samples")
    if not np.isfinite(data).all():
        raise AudioDecodeError(f"{path}: the file holds NaN or Inf samples")
    if not data.any():
        raise AudioDecodeError(f"{path}: every sample is 0 (digital silence, often a failed "
                               f"recording or export); nothing to learn from")
    wave = data.mean(axis=1) if mono else data
    if sample_rate is not None and sr != sample_rate:
        wave = resample(wave, sr, sample_rate)
    wave = np.ascontiguousarray(wave if mono else wave.T, dtype=np.float32)
    return wave


# libsndfile's parser log reports a data chunk longer than the file as
# "data : 32000 (should be 15978)" (WAV), "SSND : ..." (AIFF), "Data Size : ..." (AU)
_DATA_SIZE = re.compile(r"^\s*(?:data|SSND|Data Size)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
_UNKNOWN_SIZES = {0xFFFFFFFF, 0x7FFFFFFF}  # what streaming writers put when the length is unknown
_SLACK = 8  # bytes: a missing pad byte or a partial last frame is not worth skipping a file for


def _truncation(log: str) -> tuple[int, int] | None:
    """(declared, present) bytes when libsndfile's header log shows a cut-off data chunk."""
    m = _DATA_SIZE.search(log)
    if not m:
        return None
    declared, present = int(m.group(1)), int(m.group(2))
    if declared - present <= _SLACK or declared in _UNKNOWN_SIZES:
        return None
    return declared, present
