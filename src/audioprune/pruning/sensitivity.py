"""Layer sensitivity: how much the loss on calibration batches rises when ONE layer loses its
criterion-first filters while every other layer stays whole (Li et al., "Pruning filters for
efficient ConvNets", ICLR 2017, section 3.4; the sensitivity analysis of Intel's Distiller).

A budget can then be spread by it instead of one ratio for every layer: each layer gets the most
filters whose loss rise stays within one tolerance, and the tolerance is searched until the
budget holds (pruning/plan.py, ``allocation="sensitivity"``). A layer whose loss hardly moves
gives more; one that the classifier depends on gives less. The rises are measured one layer at a
time, so the plan assumes they add up; fine-tuning afterwards absorbs the rest.

Each probe really removes the filters, from a deep copy of the model, through the same
dependency graph the final pruning uses: a removed filter's batch-norm shift and the next
layer's input slice go with it, which zeroing its weights would not do.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from audioprune.model_inputs import ForwardFn, move_inputs
from audioprune.pruning.calibration import split_batch
from audioprune.pruning.criteria import select_prune

__all__ = ["PROBE_RATIOS", "SensitivityCurve", "layer_sensitivity", "mean_loss", "tolerance_counts"]

# the fractions of a layer probed (besides its floor of one kept filter): eighths, as fine as the
# narrowest layers (8-16 filters) make sense
PROBE_RATIOS = (0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875)


@dataclass(frozen=True)
class SensitivityCurve:
    """Loss rise (mean calibration loss of the model with `counts[i]` units of this layer removed,
    minus the intact model's) at each probed count, counts ascending."""

    counts: tuple[int, ...]
    rises: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"counts": list(self.counts), "loss_rise": [round(r, 6) for r in self.rises]}


def _device(model: nn.Module) -> torch.device:
    return next((p.device for p in model.parameters()), torch.device("cpu"))


@torch.no_grad()
def mean_loss(model: nn.Module, batches: Sequence[Any], loss_fn: Callable[[Any, Any], torch.Tensor],
              forward: ForwardFn) -> float:
    """The loss averaged over `batches` ((inputs, targets) pairs), in eval mode."""
    was_training = model.training
    model.eval()
    device = _device(model)
    total = 0.0
    try:
        for batch in batches:
            inputs, y = split_batch(batch)
            if y is None:
                raise ValueError("sensitivity allocation needs (inputs, targets) calibration "
                                 "batches: the loss is what it measures")
            total += float(loss_fn(forward(model, move_inputs(inputs, device)),
                                   move_inputs(y, device)))
    finally:
        model.train(was_training)
    return total / len(batches)


def probe_counts(n_units: int, ratios: Sequence[float] = PROBE_RATIOS) -> tuple[int, ...]:
    """The unit counts probed in a layer of `n_units`: floor(r * n) for each ratio, and n - 1."""
    found = {min(math.floor(r * n_units), n_units - 1) for r in ratios} | {n_units - 1}
    return tuple(sorted(c for c in found if c > 0))


def layer_sensitivity(model: nn.Module, scores: Mapping[str, np.ndarray],
                      n_units: Mapping[str, int],
                      prune_copy: Callable[[nn.Module, str, list[int]], None],
                      batches: Sequence[Any], loss_fn: Callable[[Any, Any], torch.Tensor],
                      forward: ForwardFn, ratios: Sequence[float] = PROBE_RATIOS,
                      ) -> dict[str, SensitivityCurve]:
    """The loss-rise curve of every layer in `scores` (per-unit scores, our convention: the
    criterion's order). `prune_copy(copy, layer, unit_indices)` removes units from a deep copy
    of `model` for real."""
    if not batches:
        raise ValueError("sensitivity allocation needs calibration batches")
    base = mean_loss(model, batches, loss_fn, forward)
    curves: dict[str, SensitivityCurve] = {}
    for name, layer_scores in scores.items():
        counts = probe_counts(n_units[name], ratios)
        rises = []
        for c in counts:
            clone = copy.deepcopy(model)
            prune_copy(clone, name, select_prune(layer_scores, c).tolist())
            rises.append(mean_loss(clone, batches, loss_fn, forward) - base)
            del clone
        curves[name] = SensitivityCurve(counts, tuple(rises))
    return curves


def _allowed(curve: SensitivityCurve, tolerance: float) -> int:
    """The most units removable with the (monotone envelope of the) loss rise <= tolerance,
    linear between probed counts."""
    xs = np.array((0,) + curve.counts, dtype=np.float64)
    ys = np.maximum.accumulate(np.maximum(np.array((0.0,) + curve.rises), 0.0))
    if tolerance >= ys[-1]:
        return int(xs[-1])
    k = int(np.searchsorted(ys, tolerance, side="right"))  # ys[k-1] <= tolerance < ys[k]
    x0, x1, y0, y1 = xs[k - 1], xs[k], ys[k - 1], ys[k]
    return int(math.floor(x0 + (x1 - x0) * (tolerance - y0) / (y1 - y0)))


def tolerance_counts(level: float, curves: Mapping[str, SensitivityCurve]) -> dict[str, int]:
    """Units to remove per layer at `level` in [0, 1]: the tolerance is `level` times the largest
    rise any layer shows, so level 0 removes nothing and level 1 takes every layer to its floor;
    counts only grow with the level (the budget search bisects it). If no probe raised the loss
    at all, the tolerance cannot tell layers apart and every layer gets the same fraction."""
    if level <= 0:
        return {n: 0 for n in curves}
    top = max((max(c.rises) for c in curves.values() if c.rises), default=0.0)
    if top <= 0:
        return {n: min(math.floor(level * (c.counts[-1] + 1)), c.counts[-1]) if c.counts else 0
                for n, c in curves.items()}
    return {n: _allowed(c, level * top) if c.counts else 0 for n, c in curves.items()}
