"""4-channel feature stacks for quaternion models, as an nn.Module that runs inside the model.

A quaternion model's first layer reads 4 real channels as the r, i, j, k components of one
quaternion per time-frequency bin. `FrontEndConfig.channels` picks what the four channels are:

- ``"deltas"`` (the default of the quaternion models; the QCNN authors' recipe): the log-mel and
  its 1st, 2nd and 3rd deltas along time. A delta is librosa's (``librosa.feature.delta``, width
  9, ``mode="interp"``): the least-squares slope over 9 frames; the 4 frames at each end take the
  slope of the line fitted to the first / last 9 frames. Higher deltas are deltas of deltas
  (``delta(delta(x))``, as HTK and torchaudio do; librosa's ``order=2`` is a different,
  quadratic-fit filter).
- ``"deltas-zero"``: log-mel, delta, delta-delta and a channel of zeros.
- ``"spec-deltas"``: what the authors' public code computes: torchaudio's ``compute_deltas``
  (width 5, edges replicated) of the POWER spectrogram, then the log-mel of each. Mel projection
  and delta commute (both linear), so this is the log of the deltas of the mel power; negative
  deltas are clamped to ``log_offset`` (-100 dB), as torchlibrosa's ``amin`` does.
- ``"stereo"``: log-mels of (mid, side, left, right) = ((L+R)/2, (L-R)/2, L, R) for a waveform
  (batch, 2, samples). A mono waveform (batch, samples) is read as dual mono (L = R), so its side
  channel is silence; this keeps MAC counting and mono data working.

Standardisation: ``FrontEndConfig.mean`` / ``std`` (estimated from training audio on the mono
log-mel) standardise every log-mel channel (the log-mel itself; in "stereo" and "spec-deltas" all
four channels are log-mels in dB). Deltas are computed FROM the standardised log-mel, so they are
the deltas of the log-mel divided by ``std`` (the mean cancels: the delta of a constant is 0).
They are therefore much smaller than the log-mel (on FSDD at 10 ms hops: std 1, 0.067, 0.013,
0.003 for the log-mel and its three deltas). That is the authors' layout and the default; the
quaternion models can rescale the four channels with an affine-free per-channel batch norm
(model option `input_norm=True`, saved with the weights), which trained worse on FSDD (see
models/qmodels.py). The front end itself holds no state, so its output is a pure function of the
audio (and the run directory's weights file, which leaves out ``frontend.*`` entries, loses
nothing).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from audioprune.audio.frontend import FEATURE_STACKS, FrontEndConfig, LogMel, log_power

__all__ = ["DELTA_WIDTH", "QuaternionInput", "build_frontend", "delta", "deltas"]

DELTA_WIDTH = 9  # librosa.feature.delta's default
SPEC_DELTA_WIDTH = 5  # torchaudio.functional.compute_deltas' default (the authors' code)


def delta(x: Tensor, width: int = DELTA_WIDTH, edge: str = "interp") -> Tensor:
    """First-order delta along the time axis (-2) of ``x`` (..., frames, mels).

    Interior frames: sum_n n * x[t+n] / sum_n n^2 for n in [-width//2, width//2].
    ``edge="interp"`` (librosa): the first / last width//2 frames take the slope of the
    least-squares line through the first / last ``width`` frames, i.e. the nearest interior
    value. ``edge="replicate"`` (HTK, torchaudio): the input is padded by repeating its edge
    frames. Clips shorter than ``width`` frames always use "replicate" (librosa refuses them).
    """
    if width < 3 or width % 2 == 0:
        raise ValueError(f"delta width must be odd and >= 3, got {width}")
    if edge not in ("interp", "replicate"):
        raise ValueError(f"edge must be 'interp' or 'replicate', got {edge!r}")
    if x.ndim < 2:
        raise ValueError(f"delta expects (..., frames, mels), got shape {tuple(x.shape)}")
    half = width // 2
    frames, mels = x.shape[-2:]
    y = x.reshape(-1, 1, frames, mels)
    n = torch.arange(-half, half + 1, dtype=x.dtype, device=x.device)
    kernel = (n / n.square().sum()).view(1, 1, width, 1)
    if edge == "interp" and frames >= width:
        out = F.pad(F.conv2d(y, kernel), (0, 0, half, half), mode="replicate")
    else:
        out = F.conv2d(F.pad(y, (0, 0, half, half), mode="replicate"), kernel)
    return out.reshape(x.shape)


def deltas(x: Tensor, order: int, width: int = DELTA_WIDTH, edge: str = "interp") -> list[Tensor]:
    """[delta(x), delta(delta(x)), ...] up to ``order``."""
    out: list[Tensor] = []
    for _ in range(order):
        x = delta(x, width, edge)
        out.append(x)
    return out


class QuaternionInput(nn.Module):
    """Waveform (batch, samples) -- or (batch, 2, samples) for "stereo" -- to a 4-channel feature
    stack (batch, 4, frames, n_mels) chosen by ``cfg.channels`` (see the module docstring)."""

    def __init__(self, cfg: FrontEndConfig) -> None:
        super().__init__()
        if cfg.channels == "mono" or cfg.num_channels != 4:
            raise ValueError(f"QuaternionInput builds 4-channel stacks, got channels="
                             f"{cfg.channels!r}; use LogMel for 'mono'")
        self.cfg = cfg
        self.stack = cfg.channels
        self.logmel = LogMel(cfg)

    def _standardise(self, logmel: Tensor) -> Tensor:
        return (logmel - self.cfg.mean) / self.cfg.std

    def _log(self, mel_power: Tensor) -> Tensor:
        return log_power(mel_power, self.cfg)

    def forward(self, wave: Tensor) -> Tensor:
        if self.stack == "stereo":
            return self._stereo(wave)
        if wave.ndim != 2:
            raise ValueError(f"the {self.stack!r} feature stack expects a mono waveform "
                             f"(batch, samples), got shape {tuple(wave.shape)}")
        if self.stack == "spec-deltas":
            power = self.logmel.mel_power(wave).unsqueeze(1)  # (B, 1, frames, mels)
            d = deltas(power, 3, SPEC_DELTA_WIDTH, edge="replicate")
            floor = self.cfg.log_offset
            logs = [self._log(power)] + [10.0 * torch.log10(p.clamp_min(floor)) for p in d]
            return self._standardise(torch.cat(logs, dim=1))
        z = self.logmel(wave)  # standardised log-mel (B, 1, frames, mels)
        if self.stack == "deltas":
            return torch.cat([z, *deltas(z, 3)], dim=1)
        # "deltas-zero"
        return torch.cat([z, *deltas(z, 2), torch.zeros_like(z)], dim=1)

    def _stereo(self, wave: Tensor) -> Tensor:
        if wave.ndim == 2:  # dual mono
            left = right = wave
        elif wave.ndim == 3 and wave.shape[1] == 2:
            left, right = wave[:, 0], wave[:, 1]
        else:
            raise ValueError(f"the 'stereo' feature stack expects (batch, 2, samples) (or a mono "
                             f"(batch, samples)), got shape {tuple(wave.shape)}")
        chans = torch.stack([(left + right) / 2, (left - right) / 2, left, right], dim=1)
        batch, _, samples = chans.shape
        power = self.logmel.mel_power(chans.reshape(batch * 4, samples))
        logmel = self._log(power).reshape(batch, 4, *power.shape[1:])
        return self._standardise(logmel)

    def extra_repr(self) -> str:
        return f"channels={self.stack!r}"


def build_frontend(cfg: FrontEndConfig) -> nn.Module:
    """The front end module for ``cfg``: LogMel for "mono", QuaternionInput for a 4-channel stack."""
    if cfg.channels not in FEATURE_STACKS:  # FrontEndConfig checks this too
        raise ValueError(f"unknown feature stack {cfg.channels!r}")
    return LogMel(cfg) if cfg.channels == "mono" else QuaternionInput(cfg)
