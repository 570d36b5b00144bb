"""The quaternion layers' LayerSupport: how they are pruned, scored and fused, in one place.

Channel layout (nn/quaternion.py): a layer with O output quaternions lays its 4*O real channels
out component-major, quaternion q owning real channels {q, q+O, q+2O, q+3O}. The unit of pruning
is therefore a whole quaternion:

* pruning output channels needs complete quaternions (all four real channels of each) and removes
  row q of r, i, j, k plus the four real bias entries;
* pruning input channels likewise removes input column p of r, i, j, k for each complete input
  quaternion p (real input channels {p, p+I, p+2I, p+3I}, I = in/4);
* a real layer next to a quaternion one (the real classifier after a QLinear, a real BN) is pruned
  by Torch-Pruning's own functions with the same real indices and loses the 4 matching channels.

Indices that split a quaternion raise ValueError instead of silently breaking the Hamilton
structure. Fusing: a quaternion layer IS a real layer with a structured kernel, so ``to_real``
builds the ``nn.Conv*`` / ``nn.Linear`` / ``nn.BatchNorm2d`` holding the assembled values (the
same function in eval mode).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from audioprune.nn.layer_support import LayerSupport, real_channels_of, register_layer_support, units_of
from audioprune.nn.quaternion import QBatchNorm2d, QConv1d, QConv2d, QLinear

__all__ = ["QUATERNION_LAYERS"]

_COMPONENTS = ("r_weight", "i_weight", "j_weight", "k_weight")


# ------------------------------------------------------------------------------------ pruning


def _keep(n: int, drop: Sequence[int]) -> torch.Tensor:
    dropped = {int(i) for i in drop}
    return torch.tensor([i for i in range(n) if i not in dropped], dtype=torch.long)


def _select(param: nn.Parameter, keep: torch.Tensor, dim: int) -> nn.Parameter:
    """A new Parameter with `keep` along `dim` (its gradient too, as Torch-Pruning does)."""
    keep = keep.to(param.device)
    new = nn.Parameter(torch.index_select(param.data, dim, keep).contiguous(),
                       requires_grad=param.requires_grad)
    if param.grad is not None:
        new.grad = torch.index_select(param.grad, dim, keep).contiguous()
    return new


def _prune_components(layer: nn.Module, units: Sequence[int], dim: int) -> None:
    keep = _keep(getattr(layer, _COMPONENTS[0]).shape[dim], units)
    for name in _COMPONENTS:
        setattr(layer, name, _select(getattr(layer, name), keep, dim))


def _weights_pruner(out_attr: str, in_attr: str) -> tuple:
    def prune_out(layer: nn.Module, idxs: Sequence[int]) -> None:
        width = getattr(layer, out_attr)
        units = units_of(idxs, width, 4, "output channels")
        _prune_components(layer, units, 0)
        if layer.bias is not None:
            layer.bias = _select(layer.bias, _keep(width, real_channels_of(units, width)), 0)
        setattr(layer, out_attr, width - 4 * len(units))

    def prune_in(layer: nn.Module, idxs: Sequence[int]) -> None:
        width = getattr(layer, in_attr)
        units = units_of(idxs, width, 4, "input channels")
        _prune_components(layer, units, 1)
        setattr(layer, in_attr, width - 4 * len(units))

    return prune_out, prune_in


def _prune_batchnorm(layer: QBatchNorm2d, idxs: Sequence[int]) -> None:
    """mode="quaternion": per-real-channel mean and beta, one gamma and one variance per
    quaternion; mode="real": the inner nn.BatchNorm2d, per real channel. Its channels in and out
    are the same, so pruning its input prunes its output."""
    width = int(layer.num_features)
    units = units_of(idxs, width, 4, "channels")
    keep_real = _keep(width, real_channels_of(units, width))
    if layer.mode == "real":
        bn = layer.bn
        bn.weight = _select(bn.weight, keep_real, 0)
        bn.bias = _select(bn.bias, keep_real, 0)
        bn.running_mean = bn.running_mean.index_select(0, keep_real.to(bn.running_mean.device))
        bn.running_var = bn.running_var.index_select(0, keep_real.to(bn.running_var.device))
        bn.num_features = width - 4 * len(units)
    else:
        keep_q = _keep(width // 4, units)
        layer.gamma = _select(layer.gamma, keep_q, 0)
        layer.beta = _select(layer.beta, keep_real, 0)
        layer.running_mean = layer.running_mean.index_select(0, keep_real.to(layer.running_mean.device))
        layer.running_var = layer.running_var.index_select(0, keep_q.to(layer.running_var.device))
    layer.num_features = width - 4 * len(units)


# ------------------------------------------------------------------------------------ fusing


@torch.no_grad()
def _copy_weight_and_bias(real: nn.Module, q: QConv1d | QConv2d | QLinear) -> nn.Module:
    real.weight.copy_(q.assembled_weight())
    if q.bias is not None:
        real.bias.copy_(q.bias)
    return real


def _real_conv(q: QConv1d | QConv2d) -> nn.Module:
    """nn.Conv{1,2}d with the assembled kernel and the same geometry."""
    cls = nn.Conv2d if isinstance(q, QConv2d) else nn.Conv1d
    w = q.r_weight
    conv = cls(q.in_channels, q.out_channels, q.kernel_size, stride=q.stride,  # type: ignore[arg-type]
               padding=q.padding, dilation=q.dilation,  # type: ignore[arg-type]
               bias=q.bias is not None, device=w.device, dtype=w.dtype)
    return _copy_weight_and_bias(conv, q)


def _real_linear(q: QLinear) -> nn.Linear:
    """nn.Linear with the assembled weight matrix."""
    w = q.r_weight
    lin = nn.Linear(q.in_features, q.out_features, bias=q.bias is not None, device=w.device,
                    dtype=w.dtype)
    return _copy_weight_and_bias(lin, q)  # type: ignore[return-value]


@torch.no_grad()
def _real_batchnorm(q: QBatchNorm2d) -> nn.BatchNorm2d:
    """nn.BatchNorm2d equal to ``q`` in eval mode. Quaternion mode: gamma and the running
    variance of quaternion p go to its four real channels; (x - mean) * gamma / sqrt(var + eps)
    + beta is then per channel."""
    if q.mode == "real":
        return copy.deepcopy(q.bn)
    bn = nn.BatchNorm2d(q.num_features, eps=q.eps, momentum=q.momentum, device=q.beta.device,
                        dtype=q.beta.dtype)
    bn.weight.copy_(q.gamma.repeat(4))
    bn.bias.copy_(q.beta)
    bn.running_mean.copy_(q.running_mean)
    bn.running_var.copy_(q.running_var.repeat(4))
    bn.num_batches_tracked.copy_(q.num_batches_tracked)
    return bn


# ------------------------------------------------------------------------------------ declared

_conv_out, _conv_in = _weights_pruner("out_channels", "in_channels")
_lin_out, _lin_in = _weights_pruner("out_features", "in_features")

QUATERNION_LAYERS = (
    register_layer_support(LayerSupport(
        types=(QConv2d, QConv1d), kind="conv", unit=4, prune_out=_conv_out, prune_in=_conv_in,
        out_channels=lambda m: int(m.out_channels), in_channels=lambda m: int(m.in_channels),
        to_real=_real_conv, components=lambda m: m.components())),
    register_layer_support(LayerSupport(
        types=(QLinear,), kind="linear", unit=4, prune_out=_lin_out, prune_in=_lin_in,
        out_channels=lambda m: int(m.out_features), in_channels=lambda m: int(m.in_features),
        to_real=_real_linear, components=lambda m: m.components())),
    register_layer_support(LayerSupport(
        types=(QBatchNorm2d,), kind="norm", unit=4, prune_out=_prune_batchnorm,
        prune_in=_prune_batchnorm, out_channels=lambda m: int(m.num_features),
        in_channels=lambda m: int(m.num_features), to_real=_real_batchnorm)),
)
"""The registered supports of QConv2d/QConv1d, QLinear and QBatchNorm2d."""
