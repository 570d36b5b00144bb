"""Active (data-driven) criteria: pure functions from ONE layer's recorded feature maps (or its
weights and their loss gradients) to one score per output channel, higher = prune first.

They see data, so they can tell a filter that looks unusual but never fires from one that carries
the signal; the price is a few forward (and, for Taylor, backward) passes over training batches.
The engine records the maps (audioprune.pruning.calibration) and feeds them here batch by batch;
every score below is a mean over examples, so averaging per-batch scores weighted by batch size
gives exactly the score of all the batches at once.

Feature maps are taken where the published methods take them: after the layer's batch norm and
ReLU (HRank hooks the ReLU outputs; APoZ-style activation criteria too). Every model here applies
ReLU after conv -> BN (and after hidden linear layers).

  hrank       -mean over examples of rank(feature map (H, W)) per channel (Lin et al., CVPR 2020:
              low-rank maps carry less information; the LOWEST average rank is pruned first).
              A map of a 1-D layer (C, T) or a linear layer (C,) has rank 0/1 only: hrank is meant
              for 2-D conv layers and says so on anything else.
  activation  -mean over examples and positions of |a| per channel (the weakest channel first).
  taylor      first-order Taylor on the weights (Molchanov et al., CVPR 2019, as Torch-Pruning's
              TaylorImportance): -sum over a filter's weights of |w * dL/dw|, with the gradient
              accumulated over the calibration batches. Its default scope is the dependency group
              (pruning/importance.py), which ranks as Torch-Pruning's GroupTaylorImportance.
"""

from __future__ import annotations

import numpy as np
import torch


def _channels_first(acts: torch.Tensor) -> torch.Tensor:
    """(N, C, ...) -> float64 with at least one position axis: (N, C, P...)."""
    if acts.dim() < 2:
        raise ValueError(f"feature maps need a batch and a channel axis, got shape {tuple(acts.shape)}")
    acts = acts.detach().to(torch.float64)
    return acts.unsqueeze(-1) if acts.dim() == 2 else acts


def activation_scores(acts: torch.Tensor) -> np.ndarray:
    """-mean |a| per channel over examples and positions (higher = prune first)."""
    a = _channels_first(acts)
    return -a.abs().flatten(2).mean(dim=(0, 2)).cpu().numpy()


def hrank_scores(acts: torch.Tensor, tol: float | None = None) -> np.ndarray:
    """-mean rank of each channel's 2-D feature map over examples (higher = prune first).

    `tol` is the singular-value threshold below which a direction does not count (default:
    torch.linalg.matrix_rank's, max(H, W) * eps * largest singular value, in float64).
    """
    if acts.dim() != 4:
        raise ValueError(f"hrank needs 2-D feature maps (N, C, H, W), got shape {tuple(acts.shape)}; "
                         f"use it on 2-D conv layers only")
    a = acts.detach().to(torch.float64)
    ranks = torch.linalg.matrix_rank(a, atol=tol) if tol is not None else torch.linalg.matrix_rank(a)
    return -ranks.to(torch.float64).mean(dim=0).cpu().numpy()


def taylor_scores(weight: torch.Tensor, grad: torch.Tensor) -> np.ndarray:
    """-sum over each output filter of |w * dL/dw| (higher = prune first)."""
    if grad is None or weight.shape != grad.shape:
        raise ValueError("taylor needs the weight's accumulated gradient (run calibration batches)")
    contrib = (weight.detach().to(torch.float64) * grad.detach().to(torch.float64)).abs()
    return -contrib.flatten(1).sum(dim=1).cpu().numpy()

