"""Quaternion layers (one autograd Function each, so Torch-Pruning can trace them), fusing to
plain torch layers, and the LayerSupport registry that declares how a custom layer is pruned,
scored, fused and counted."""

from audioprune.nn import quaternion_support  # noqa: F401  (declares the quaternion layers)
from audioprune.nn.fuse import fold_batchnorm, fuse_quaternion, to_real
from audioprune.nn.layer_support import LayerSupport, layer_support, register_layer_support
from audioprune.nn.quaternion import QBatchNorm2d, QConv1d, QConv2d, QLinear, is_quaternion

__all__ = [
    "LayerSupport",
    "QBatchNorm2d",
    "QConv1d",
    "QConv2d",
    "QLinear",
    "fold_batchnorm",
    "fuse_quaternion",
    "is_quaternion",
    "layer_support",
    "register_layer_support",
    "to_real",
]
