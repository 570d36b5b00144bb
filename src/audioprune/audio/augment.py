"""Training-time augmentation: SpecAugment masks on log-mels and mixup on batches."""

from __future__ import annotations

import torch
from torch import nn


class SpecAugment(nn.Module):
    """Zero out random time and frequency stripes of a (B, C, frames, mels) batch in training only.

    As in Park et al. 2019 and PANNs' SpecAugmentation: `time_masks` stripes of up to
    `time_width` frames and `freq_masks` stripes of up to `freq_width` mel bins per example.
    """

    def __init__(self, time_masks: int = 2, time_width: int = 64, freq_masks: int = 2,
                 freq_width: int = 8) -> None:
        super().__init__()
        self.time_masks, self.time_width = time_masks, time_width
        self.freq_masks, self.freq_width = freq_masks, freq_width

    def _mask(self, x: torch.Tensor, dim: int, count: int, width: int) -> torch.Tensor:
        size = x.shape[dim]
        if count == 0 or width == 0 or size < 2:
            return x
        b = x.shape[0]
        widths = torch.randint(0, min(width, size) + 1, (b, count), device=x.device)
        starts = (torch.rand(b, count, device=x.device) * (size - widths + 1)).long()
        pos = torch.arange(size, device=x.device).view(1, 1, size)
        hit = ((pos >= starts.unsqueeze(-1)) & (pos < (starts + widths).unsqueeze(-1))).any(1)
        shape = [b] + [1] * (x.ndim - 1)
        shape[dim] = size
        return x.masked_fill(hit.view(shape), 0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        x = self._mask(x, 2, self.time_masks, self.time_width)
        return self._mask(x, 3, self.freq_masks, self.freq_width)


def mixup(x: torch.Tensor, y: torch.Tensor, alpha: float,
          generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix each example with a shuffled partner: lambda ~ Beta(alpha, alpha), targets mixed alike.

    `y` must be a float target matrix (one-hot or multi-hot), so the loss sees soft targets.
    """
    if alpha <= 0:
        return x, y
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    perm = torch.randperm(x.shape[0], generator=generator).to(x.device)
    return lam * x + (1 - lam) * x[perm], lam * y + (1 - lam) * y[perm]
