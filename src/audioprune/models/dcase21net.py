"""The DCASE 2021 Task 1A baseline CNN (Heittola et al.), as used by the centrality-pruning paper.

Keras original on 40 log-mels x 500 frames: Conv16 7x7-BN-ReLU, Conv16 7x7-BN-ReLU, MaxPool(5,5),
Dropout .3, Conv32 7x7-BN-ReLU, MaxPool(4,100), Dropout .3, Dense 100, Dropout .3, Dense 10.
46,246 parameters when BN running statistics are counted as Keras does (46,118 trainable in torch).

Our layout is (frames, mels), so the second pool is (100, 4). To accept clips shorter (or longer)
than 10 s without changing the 10 s behaviour, the second pool takes the max over all remaining
frames: after the first pool a 10 s clip has exactly 100 frames, where this is identical.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from audioprune.audio.frontend import FrontEndConfig
from audioprune.models.base import AudioClassifier, resolve_width
from audioprune.models.registry import register_model

# The baseline's front end: 44.1 kHz, 40 ms window, 20 ms hop, 40 mels -> 500 frames per 10 s
# (torch.stft with center=True gives 501; the extra frame does not change the pooled shape).
DCASE21_FRONTEND = FrontEndConfig(sample_rate=44100, n_fft=2048, win_length=1764, hop_length=882,
                                  n_mels=40, fmin=0.0, fmax=22050.0, clip_seconds=10.0)


class Dcase21Net(AudioClassifier):
    classifier_name = "fc_out"

    def __init__(self, num_classes: int, frontend: FrontEndConfig, widths: dict[str, int] | None,
                 width: float = 1.0, dropout: float = 0.3, in_channels: int | None = None,
                 width_multiple_of: int = 1,
                 spec_augment: dict[str, int] | None = None) -> None:
        super().__init__(num_classes, frontend, spec_augment)
        c1 = resolve_width("conv1", 16, width, widths, width_multiple_of)
        c2 = resolve_width("conv2", 16, width, widths, width_multiple_of)
        c3 = resolve_width("conv3", 32, width, widths, width_multiple_of)
        hidden = resolve_width("fc1", 100, 1.0, widths, width_multiple_of)
        # default: the front end's channel count (1 for log-mel)
        self._in_channels = frontend.num_channels if in_channels is None else in_channels
        self.conv1 = self.make_conv(self._in_channels, c1, 7)
        self.bn1 = self.make_norm(c1)
        self.conv2 = self.make_conv(c1, c2, 7)
        self.bn2 = self.make_norm(c2)
        self.conv3 = self.make_conv(c2, c3, 7)
        self.bn3 = self.make_norm(c3)
        self.drop = nn.Dropout(dropout)
        mel_out = frontend.n_mels // 5 // 4
        if mel_out < 1:
            raise ValueError(f"dcase21net needs at least 20 mel bands, got {frontend.n_mels}")
        self.fc1 = self.make_linear(c3 * mel_out, hidden)
        self.fc_out = nn.Linear(hidden, num_classes)

    # Layer factories: a twin model (e.g. quaternion) overrides these and keeps the names.
    def make_conv(self, c_in: int, c_out: int, kernel_size: int) -> nn.Module:
        return nn.Conv2d(c_in, c_out, kernel_size, padding=kernel_size // 2)

    def make_norm(self, channels: int) -> nn.Module:
        # Keras' eps; torch's default momentum (0.1) instead of Keras' 0.01, so running statistics
        # settle within the few hundred steps of a short fine-tune after pruning.
        return nn.BatchNorm2d(channels, eps=1e-3)

    def make_linear(self, n_in: int, n_out: int) -> nn.Module:
        return nn.Linear(n_in, n_out)

    @property
    def in_channels(self) -> int:
        return self._in_channels

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = self.drop(F.max_pool2d(x, 5))
        x = F.relu(self.bn3(self.conv3(x)))
        x = torch.amax(x, dim=2, keepdim=True)  # max over all frames: MaxPool(100) at 10 s
        x = self.drop(F.max_pool2d(x, (1, 4)))
        x = self.drop(F.relu(self.fc1(x.flatten(1))))
        return self.fc_out(x)


@register_model("dcase21net", "DCASE 2021 Task 1A baseline CNN (3 conv layers, 46 K parameters)")
def dcase21net(num_classes: int, frontend: FrontEndConfig, widths: dict[str, int] | None = None,
               **kwargs: Any) -> Dcase21Net:
    return Dcase21Net(num_classes, frontend, widths, **kwargs)
