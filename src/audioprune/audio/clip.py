"""Crop or pad a waveform to a fixed number of samples."""

from __future__ import annotations

from typing import Literal

import numpy as np

CropMode = Literal["random", "centre", "start"]


def fit_length(wave: np.ndarray, length: int, mode: CropMode = "centre",
               rng: np.random.Generator | None = None) -> np.ndarray:
    """Return `wave[..., :length]`-sized audio: crop long clips (random, centre or start) and
    zero-pad short ones (random offset in training, centred otherwise, so evaluation is stable)."""
    n = wave.shape[-1]
    if n == length:
        return wave
    if n > length:
        if mode == "random":
            if rng is None:
                raise ValueError("random cropping needs an rng")
            start = int(rng.integers(0, n - length + 1))
        elif mode == "centre":
            start = (n - length) // 2
        else:
            start = 0
        return wave[..., start:start + length]
    pad = length - n
    if mode == "random":
        if rng is None:
            raise ValueError("random padding needs an rng")
        left = int(rng.integers(0, pad + 1))
    elif mode == "centre":
        left = pad // 2
    else:
        left = 0
    widths = [(0, 0)] * (wave.ndim - 1) + [(left, pad - left)]
    return np.pad(wave, widths)
