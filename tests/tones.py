"""In-memory tone clips for the tests of the training loop's input side (no audio files)."""

from __future__ import annotations

import numpy as np

from audioprune.data.types import Clip


class ToneWaves:
    """A wave source for ClipDataset: clip "c<i>" is a tone at 200 * (i % classes + 1) Hz plus
    noise (seed 0); with `ramp`, its loudness rises over the clip, so random crops differ from
    epoch to epoch."""

    def __init__(self, n: int, classes: int, samples: int, ramp: bool = False) -> None:
        rng = np.random.default_rng(0)
        t = np.arange(samples) / 8000
        envelope = np.linspace(0.2, 1.0, samples) if ramp else 1.0
        self.waves = {f"c{i}": (0.3 * np.sin(2 * np.pi * 200 * (i % classes + 1) * t) * envelope
                                + 0.05 * rng.standard_normal(samples)).astype(np.float32)
                      for i in range(n)}

    def get(self, clip: Clip) -> np.ndarray:
        return self.waves[clip.key]
