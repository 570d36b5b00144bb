"""The log-mel front end as an nn.Module, so it runs on the GPU and travels inside the model.

torch.stft computes the power spectrogram; the mel filter bank comes from librosa.filters.mel
(Slaney-normalised, as in PANNs). Output layout is (batch, 1, frames, mels): time first, as in
PANNs, so model definitions port directly.

`FrontEndConfig.channels` selects the feature stack: "mono" (the default) is the single log-mel
above; the 4-channel stacks for quaternion models (log-mel + deltas, stereo mid/side/left/right,
...) are built by `audio/quaternion_input.py` (see `FEATURE_STACKS`).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, fields
from typing import Any

import librosa
import torch
from torch import nn

# Feature stacks -> number of feature channels. "mono" is LogMel; the others are documented and
# built in audioprune.audio.quaternion_input.
LOG_MODES = ("offset", "clamp")
FEATURE_STACKS: dict[str, int] = {"mono": 1, "deltas": 4, "deltas-zero": 4, "spec-deltas": 4,
                                  "stereo": 4}


@dataclass(frozen=True)
class FrontEndConfig:
    """Everything that determines the features; its dict goes into model.json and cache keys."""

    sample_rate: int = 32000
    n_fft: int = 1024
    win_length: int | None = None  # defaults to n_fft
    hop_length: int = 320
    n_mels: int = 64
    fmin: float = 50.0
    fmax: float | None = 14000.0  # None = Nyquist (a new sample_rate alone lowers it there)
    log_offset: float = 1e-10  # log-mel = 10 * log10(mel_power + log_offset)
    # "offset": 10 log10(power + log_offset) (smooth, our default); "clamp": 10 log10(max(power,
    # log_offset)), torchlibrosa's power_to_db(ref=1, amin=log_offset, top_db=None), which PANNs
    # checkpoints were trained with (audioprune import panns sets it)
    log_mode: str = "offset"
    clip_seconds: float | None = 10.0  # crop/pad length; None keeps full length (batch size 1)
    # Global standardisation of the log-mel (as AST does): (logmel - mean) / std. Training
    # estimates both from the training split unless given, and model.json records them.
    mean: float = 0.0
    std: float = 1.0
    # Feature stack (a key of FEATURE_STACKS): "mono" = one log-mel channel; quaternion models
    # take a 4-channel stack, e.g. "deltas" = log-mel and its 1st, 2nd, 3rd deltas.
    channels: str = "mono"

    def __post_init__(self) -> None:
        if self.channels not in FEATURE_STACKS:
            raise ValueError(f"unknown feature stack channels={self.channels!r}; choose one of "
                             f"{', '.join(FEATURE_STACKS)}")
        if self.log_mode not in LOG_MODES:
            raise ValueError(f"unknown log_mode={self.log_mode!r}; choose one of {', '.join(LOG_MODES)}")
        _check_numbers(self)

    @property
    def num_channels(self) -> int:
        """Feature channels the front end produces (1 for "mono", 4 for the quaternion stacks)."""
        return FEATURE_STACKS[self.channels]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FrontEndConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown front-end settings {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)

    def replace(self, **changes: Any) -> "FrontEndConfig":
        return FrontEndConfig(**{**self.to_dict(), **changes})

    def overridden(self, changes: dict[str, Any]) -> "FrontEndConfig":
        """These settings with `changes` (a user's overrides, unknown keys refused) on top; a
        new `sample_rate` without an `fmax` puts fmax at the new Nyquist limit when the old
        fmax lies above it (sample_rate=16000 alone works on a 32 kHz layout's 14 kHz fmax)."""
        merged = {**self.to_dict(), **changes}
        rate = merged.get("sample_rate")
        if ("sample_rate" in changes and "fmax" not in changes and merged.get("fmax") is not None
                and isinstance(rate, numbers.Real) and not isinstance(rate, bool)
                and merged["fmax"] > rate / 2):
            merged["fmax"] = None  # = Nyquist
        return FrontEndConfig.from_dict(merged)

    @property
    def clip_samples(self) -> int | None:
        return None if self.clip_seconds is None else int(round(self.clip_seconds * self.sample_rate))

    def num_frames(self, num_samples: int) -> int:
        """Frames produced for a waveform of `num_samples` (torch.stft with center=True)."""
        return num_samples // self.hop_length + 1


def _check_numbers(cfg: FrontEndConfig) -> None:
    """Reject settings that would crash the STFT or put NaN/Inf into the features (log of zero
    power with log_offset <= 0, a zero std) with a ValueError naming the setting."""
    def positive(name: str, value: Any, integer: bool) -> None:
        kind = numbers.Integral if integer else numbers.Real
        if isinstance(value, bool) or not isinstance(value, kind) or not math.isfinite(value) \
                or value <= 0:
            raise ValueError(f"front-end setting {name} must be a positive "
                             f"{'integer' if integer else 'number'}, got {value!r}")

    for name in ("sample_rate", "n_fft", "hop_length", "n_mels"):
        positive(name, getattr(cfg, name), True)
    for name in ("log_offset", "std"):
        positive(name, getattr(cfg, name), False)
    for name in ("win_length", "clip_seconds", "fmax"):
        if getattr(cfg, name) is not None:
            positive(name, getattr(cfg, name), name == "win_length")
    for name in ("fmin", "mean"):
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise ValueError(f"front-end setting {name} must be a number, got {value!r}")


def log_power(power: torch.Tensor, cfg: FrontEndConfig) -> torch.Tensor:
    """Power -> dB as `cfg.log_mode` says: 10 log10(power + log_offset), or with "clamp"
    10 log10(max(power, log_offset)) (torchlibrosa's power_to_db, PANNs' front end)."""
    if cfg.log_mode == "clamp":
        return 10.0 * torch.log10(torch.clamp(power, min=cfg.log_offset))
    return 10.0 * torch.log10(power + cfg.log_offset)


class LogMel(nn.Module):
    """Waveform (batch, samples) -> log-mel (batch, 1, frames, n_mels)."""

    def __init__(self, cfg: FrontEndConfig) -> None:
        super().__init__()
        self.cfg = cfg
        win = cfg.win_length or cfg.n_fft
        if win > cfg.n_fft:
            raise ValueError(f"win_length {win} is larger than n_fft {cfg.n_fft}")
        fmax = cfg.fmax if cfg.fmax is not None else cfg.sample_rate / 2
        if not 0 <= cfg.fmin < fmax <= cfg.sample_rate / 2:
            raise ValueError(f"need 0 <= fmin < fmax <= sample_rate/2, got fmin={cfg.fmin}, "
                             f"fmax={fmax}, sample_rate={cfg.sample_rate}")
        mel = librosa.filters.mel(sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels,
                                  fmin=cfg.fmin, fmax=fmax)  # (n_mels, n_fft // 2 + 1)
        self.register_buffer("mel_basis", torch.from_numpy(mel.T.copy()).float(), persistent=False)
        self.register_buffer("window", torch.hann_window(win), persistent=False)
        self.win_length = win

    def mel_power(self, wave: torch.Tensor) -> torch.Tensor:
        """Waveform (batch, samples) -> mel power spectrogram (batch, frames, n_mels), before log."""
        if wave.ndim != 2:
            raise ValueError(f"LogMel expects (batch, samples), got shape {tuple(wave.shape)}")
        spec = torch.stft(wave, n_fft=self.cfg.n_fft, hop_length=self.cfg.hop_length,
                          win_length=self.win_length, window=self.window, center=True,
                          pad_mode="reflect", return_complex=True)
        power = spec.real.square() + spec.imag.square()  # (B, freq, frames)
        return torch.matmul(power.transpose(1, 2), self.mel_basis)  # (B, frames, n_mels)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        logmel = log_power(self.mel_power(wave), self.cfg)
        return ((logmel - self.cfg.mean) / self.cfg.std).unsqueeze(1)
