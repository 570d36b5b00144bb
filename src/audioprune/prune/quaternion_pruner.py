"""Torch-Pruning pruning functions for the quaternion layers (QConv1d/QConv2d, QLinear, QBatchNorm2d).

Torch-Pruning's dependency graph passes REAL channel indices between layers. A quaternion layer
with O output quaternions lays its 4*O real channels out component-major: quaternion q owns real
channels {q, q+O, q+2O, q+3O} (nn/quaternion.py). So the unit of pruning is a whole quaternion:

* ``prune_out_channels(layer, idxs)`` needs ``idxs`` to be complete quaternions (all four real
  channels of each) and removes row q of r, i, j, k plus the four real bias entries;
* ``prune_in_channels(layer, idxs)`` likewise removes input column p of r, i, j, k for each
  complete input quaternion p (real input channels {p, p+I, p+2I, p+3I}, I = in/4);
* a real layer next to a quaternion one (the real classifier after a QLinear, a real BN) is pruned
  by Torch-Pruning's own functions with the same real indices, so it loses the 4 matching channels.

``get_out_channel_groups`` / ``get_in_channel_groups`` return 4: Torch-Pruning's high-level
pruners read that as "the channels form 4 equal contiguous blocks pruned together", which is
exactly the component-major layout. Indices that split a quaternion raise ValueError instead of
silently breaking the Hamilton structure. Only this module and engine.py import torch_pruning.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch_pruning as tp
from torch import nn

from audioprune.nn.quaternion import QBatchNorm2d, QConv1d, QConv2d, QLinear

__all__ = [
    "QUATERNION_PRUNERS",
    "QBatchNormPruner",
    "QConvPruner",
    "QLinearPruner",
    "quaternion_units",
    "real_channels_of",
]

_COMPONENTS = ("r_weight", "i_weight", "j_weight", "k_weight")


def real_channels_of(units: Sequence[int], width: int) -> list[int]:
    """Real channel indices of quaternions `units` in a layer of `width` REAL channels."""
    n_q = width // 4
    return sorted(int(u) + c * n_q for u in units for c in range(4))


def quaternion_units(idxs: Sequence[int], width: int, what: str = "channels") -> list[int]:
    """The quaternions whose four real channels `idxs` lists, or ValueError if `idxs` splits one."""
    if width % 4:
        raise ValueError(f"a quaternion layout needs a multiple of 4 {what}, got {width}")
    n_q = width // 4
    idx_set = {int(i) for i in idxs}
    units = sorted({i % n_q for i in idx_set})
    expected = set(real_channels_of(units, width))
    if expected != idx_set:
        split = sorted(u for u in units if not set(real_channels_of([u], width)) <= idx_set)
        raise ValueError(
            f"quaternion layers are pruned by whole quaternions (real {what} q, q+{n_q}, q+{2 * n_q},"
            f" q+{3 * n_q}); the indices split quaternion(s) {split[:8]}"
        )
    return units


def _keep(n: int, drop: Sequence[int]) -> torch.Tensor:
    dropped = {int(i) for i in drop}
    return torch.tensor([i for i in range(n) if i not in dropped], dtype=torch.long)


def _select(param: nn.Parameter, keep: torch.Tensor, dim: int) -> nn.Parameter:
    """A new Parameter with `keep` along `dim` (the gradient too, as Torch-Pruning does)."""
    keep = keep.to(param.device)
    new = nn.Parameter(torch.index_select(param.data, dim, keep).contiguous(),
                       requires_grad=param.requires_grad)
    if param.grad is not None:
        new.grad = torch.index_select(param.grad, dim, keep).contiguous()
    return new


def _prune_components(layer: nn.Module, units: Sequence[int], dim: int) -> None:
    n = getattr(layer, _COMPONENTS[0]).shape[dim]
    keep = _keep(n, units)
    for name in _COMPONENTS:
        setattr(layer, name, _select(getattr(layer, name), keep, dim))


class _QuaternionWeightPruner(tp.pruner.BasePruningFunc):
    """Shared by the conv and linear pruners; subclasses name the in/out size attributes."""

    TARGET_MODULES: tuple[type, ...] = ()
    out_attr = "out_channels"
    in_attr = "in_channels"

    def prune_out_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        width = getattr(layer, self.out_attr)
        units = quaternion_units(idxs, width, "output channels")
        _prune_components(layer, units, 0)
        if layer.bias is not None:
            layer.bias = _select(layer.bias, _keep(width, real_channels_of(units, width)), 0)
        setattr(layer, self.out_attr, width - 4 * len(units))
        return layer

    def prune_in_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        width = getattr(layer, self.in_attr)
        units = quaternion_units(idxs, width, "input channels")
        _prune_components(layer, units, 1)
        setattr(layer, self.in_attr, width - 4 * len(units))
        return layer

    def get_out_channels(self, layer: nn.Module) -> int:
        return int(getattr(layer, self.out_attr))

    def get_in_channels(self, layer: nn.Module) -> int:
        return int(getattr(layer, self.in_attr))

    def get_out_channel_groups(self, layer: nn.Module) -> int:
        return 4

    def get_in_channel_groups(self, layer: nn.Module) -> int:
        return 4


class QConvPruner(_QuaternionWeightPruner):
    """QConv1d / QConv2d: output quaternion = row of r,i,j,k; input quaternion = column."""

    TARGET_MODULES = (QConv1d, QConv2d)


class QLinearPruner(_QuaternionWeightPruner):
    """QLinear: as QConvPruner on (out/4, in/4) components."""

    TARGET_MODULES = (QLinear,)
    out_attr = "out_features"
    in_attr = "in_features"


class QBatchNormPruner(tp.pruner.BasePruningFunc):
    """QBatchNorm2d in either mode. mode="quaternion": per-real-channel mean and beta, one gamma and
    one variance per quaternion; mode="real": the inner nn.BatchNorm2d, per real channel. Channels
    in and out are the same, so pruning its input prunes its output (intra-layer dependency)."""

    TARGET_MODULES = (QBatchNorm2d,)

    def prune_out_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        width = int(layer.num_features)
        units = quaternion_units(idxs, width, "channels")
        keep_real = _keep(width, real_channels_of(units, width))
        if layer.mode == "real":
            tp.prune_batchnorm_out_channels(layer.bn, real_channels_of(units, width))
        else:
            keep_q = _keep(width // 4, units)
            layer.gamma = _select(layer.gamma, keep_q, 0)
            layer.beta = _select(layer.beta, keep_real, 0)
            layer.running_mean = layer.running_mean.index_select(0, keep_real.to(layer.running_mean.device))
            layer.running_var = layer.running_var.index_select(0, keep_q.to(layer.running_var.device))
        layer.num_features = width - 4 * len(units)
        return layer

    prune_in_channels = prune_out_channels

    def get_out_channels(self, layer: nn.Module) -> int:
        return int(layer.num_features)

    get_in_channels = get_out_channels

    def get_out_channel_groups(self, layer: nn.Module) -> int:
        return 4

    get_in_channel_groups = get_out_channel_groups


QUATERNION_PRUNERS: dict[type, tp.pruner.BasePruningFunc] = {
    QConv2d: QConvPruner(),
    QConv1d: QConvPruner(),
    QLinear: QLinearPruner(),
    QBatchNorm2d: QBatchNormPruner(),
}
"""customized_pruners for DependencyGraph.build_dependency: one instance per layer type."""
