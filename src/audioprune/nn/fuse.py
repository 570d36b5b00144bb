"""Turn quaternion layers into plain real ones, and fold batch norm into convs, for export.

A quaternion layer IS a real layer with a structured kernel, so after training it can be
replaced by ``nn.Conv*`` / ``nn.Linear`` / ``nn.BatchNorm2d`` holding the assembled values:
ONNX, FLOP counters and runtimes then need to know nothing about quaternions. The fused model
computes the same function in eval mode (batch norm uses running statistics).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

from audioprune.nn.quaternion import QBatchNorm2d, QConv1d, QConv2d, QLinear, is_quaternion

__all__ = ["fold_batchnorm", "fuse_quaternion", "to_real"]


def _real_conv(q: QConv1d | QConv2d, cls: type[nn.Conv1d] | type[nn.Conv2d]) -> nn.Module:
    """nn.Conv{1,2}d with the assembled kernel and the same geometry."""
    w = q.r_weight
    conv = cls(
        q.in_channels,
        q.out_channels,
        q.kernel_size,  # type: ignore[arg-type]
        stride=q.stride,  # type: ignore[arg-type]
        padding=q.padding,  # type: ignore[arg-type]
        dilation=q.dilation,  # type: ignore[arg-type]
        bias=q.bias is not None,
        device=w.device,
        dtype=w.dtype,
    )
    _copy_weight_and_bias(conv, q)
    return conv


def _real_linear(q: QLinear) -> nn.Linear:
    """nn.Linear with the assembled weight matrix."""
    w = q.r_weight
    lin = nn.Linear(
        q.in_features, q.out_features, bias=q.bias is not None, device=w.device, dtype=w.dtype
    )
    _copy_weight_and_bias(lin, q)
    return lin


@torch.no_grad()
def _copy_weight_and_bias(real: nn.Module, q: QConv1d | QConv2d | QLinear) -> None:
    real.weight.copy_(q.assembled_weight())
    if q.bias is not None:
        real.bias.copy_(q.bias)


@torch.no_grad()
def _real_batchnorm(q: QBatchNorm2d) -> nn.BatchNorm2d:
    """nn.BatchNorm2d equal to ``q`` in eval mode.

    Quaternion mode: gamma and the running variance of quaternion p go to its four real
    channels; the normalisation (x - mean) * gamma / sqrt(var + eps) + beta is then per channel.
    """
    if q.mode == "real":
        return copy.deepcopy(q.bn)
    bn = nn.BatchNorm2d(
        q.num_features, eps=q.eps, momentum=q.momentum, device=q.beta.device, dtype=q.beta.dtype
    )
    bn.weight.copy_(q.gamma.repeat(4))
    bn.bias.copy_(q.beta)
    bn.running_mean.copy_(q.running_mean)
    bn.running_var.copy_(q.running_var.repeat(4))
    bn.num_batches_tracked.copy_(q.num_batches_tracked)
    return bn


_CONVERTERS: dict[type[nn.Module], Callable[[nn.Module], nn.Module]] = {
    QConv2d: lambda m: _real_conv(m, nn.Conv2d),  # type: ignore[arg-type]
    QConv1d: lambda m: _real_conv(m, nn.Conv1d),  # type: ignore[arg-type]
    QLinear: _real_linear,  # type: ignore[dict-item]
    QBatchNorm2d: _real_batchnorm,  # type: ignore[dict-item]
}


def to_real(module: nn.Module) -> nn.Module:
    """The real equivalent of one quaternion module (same training flag)."""
    for cls, convert in _CONVERTERS.items():
        if type(module) is cls:
            real = convert(module)
            real.train(module.training)
            return real
    raise TypeError(f"no real equivalent known for {type(module).__name__}")


def _set_submodule(root: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, new)


def fuse_quaternion(model: nn.Module) -> nn.Module:
    """Deep copy of ``model`` with every quaternion layer replaced by its real equivalent.

    Module names are kept, so state-dict keys of other layers and (conv, bn) names still apply.
    """
    if is_quaternion(model):
        return to_real(model)
    fused = copy.deepcopy(model)
    targets = [name for name, m in fused.named_modules() if name and is_quaternion(m)]
    for name in targets:  # parents come before children; a quaternion layer has no children
        _set_submodule(fused, name, to_real(fused.get_submodule(name)))
    return fused


def _fold_pair(layer: nn.Module, bn: nn.Module) -> nn.Module:
    is_bn = isinstance(bn, nn.modules.batchnorm._BatchNorm)
    if is_bn and isinstance(layer, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        return fuse_conv_bn_eval(layer, bn)  # type: ignore[arg-type]
    if is_bn and isinstance(layer, nn.Linear):
        return fuse_linear_bn_eval(layer, bn)  # type: ignore[arg-type]
    raise TypeError(
        f"cannot fold {type(bn).__name__} into {type(layer).__name__}: need a conv or linear "
        "followed by a batch norm"
    )


def fold_batchnorm(model: nn.Module, pairs: Iterable[tuple[str, str]]) -> nn.Module:
    """Inference-only copy where each batch norm in ``pairs`` is folded into its conv/linear.

    ``pairs`` are (layer_name, bn_name) as in ``named_modules()``: the caller says which BN
    follows which layer, since module order does not prove data flow. Quaternion layers are
    first made real; the folded BN becomes ``nn.Identity``. The result is in eval mode.
    """
    folded = fuse_quaternion(model).eval()
    for layer_name, bn_name in pairs:
        layer = folded.get_submodule(layer_name)
        bn = folded.get_submodule(bn_name)
        _set_submodule(folded, layer_name, _fold_pair(layer, bn))
        _set_submodule(folded, bn_name, nn.Identity())
    return folded
