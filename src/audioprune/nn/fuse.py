"""Turn custom layers (quaternion ones) into plain real ones, and fold batch norm into convs.

A quaternion layer IS a real layer with a structured kernel, so after training it can be
replaced by ``nn.Conv*`` / ``nn.Linear`` / ``nn.BatchNorm2d`` holding the assembled values:
ONNX, FLOP counters and runtimes then need to know nothing about quaternions. The fused model
computes the same function in eval mode (batch norm uses running statistics). How each layer
type becomes real is declared with its LayerSupport (nn/layer_support.py).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

import audioprune.nn.quaternion_support  # noqa: F401  (declares the quaternion layers)
from audioprune.nn.layer_support import layer_support

__all__ = ["fold_batchnorm", "fuse_quaternion", "to_real"]


def to_real(module: nn.Module) -> nn.Module:
    """The plain torch equivalent of one registered custom layer (same training flag)."""
    support = layer_support(module)
    if support is None:
        raise TypeError(f"no real equivalent known for {type(module).__name__}: declare one with "
                        f"audioprune.nn.layer_support.register_layer_support")
    real = support.to_real(module)
    real.train(module.training)
    return real


def _set_submodule(root: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, new)


def fuse_quaternion(model: nn.Module) -> nn.Module:
    """Deep copy of ``model`` with every quaternion (any registered custom) layer replaced by its
    real equivalent.

    Module names are kept, so state-dict keys of other layers and (conv, bn) names still apply.
    """
    if layer_support(model) is not None:
        return to_real(model)
    fused = copy.deepcopy(model)
    targets = [name for name, m in fused.named_modules() if name and layer_support(m) is not None]
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
