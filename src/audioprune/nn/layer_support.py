"""What audioprune must know about a custom layer type, declared in one place.

Built-in torch layers (``nn.Conv*``, ``nn.Linear``, the norms) need no entry: Torch-Pruning prunes
them, FlopCounterMode counts them and they are already plain. A custom layer - the quaternion
layers of this package, or a user's own - registers ONE :class:`LayerSupport` and every part of
audioprune reads it from there:

  unit            real channels pruned together: 4 for a quaternion layer (quaternion q owns real
                  channels q, q+O, q+2O, q+3O), 1 otherwise
  kind            "conv", "linear" or "norm": convs and linears can root a pruning group and are
                  numbered C1, C2, ... (convs only); a norm's input and output channels are the
                  same ones (pruning one prunes the other) and it follows its producer
  components      the weight tensors a criterion scores, each (out/unit, in/unit, *kernel)
                  (r, i, j, k for a quaternion layer); empty for a norm
  prune_out       remove output channels (real indices, whole units) in place
  prune_in        remove input channels (real indices, whole units) in place
  out_channels / in_channels
  to_real         a plain torch layer computing the same function (ONNX export, deployment,
                  fusing): ``audioprune.nn.fuse.fuse_quaternion`` replaces every registered layer
  flop_rules      extra FlopCounterMode rules for aten ops the layer runs that torch cannot count
                  (the quaternion layers run one real convolution / matmul: none needed)

The Torch-Pruning adapter (``audioprune.pruning.engine``) turns each entry into a
``BasePruningFunc``; this module imports nothing from Torch-Pruning, so models and layers stay
free of it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

__all__ = [
    "LayerSupport",
    "layer_support",
    "real_channels_of",
    "register_layer_support",
    "registered_layer_supports",
    "units_of",
]


@dataclass(frozen=True)
class LayerSupport:
    """Everything audioprune needs to prune, score, fuse and count one custom layer type."""

    types: tuple[type[nn.Module], ...]
    kind: str  # "conv" | "linear" | "norm"
    prune_out: Callable[[nn.Module, Sequence[int]], None]
    prune_in: Callable[[nn.Module, Sequence[int]], None]
    out_channels: Callable[[nn.Module], int]
    in_channels: Callable[[nn.Module], int]
    to_real: Callable[[nn.Module], nn.Module]
    unit: int = 1
    components: Callable[[nn.Module], Sequence[Tensor]] = lambda m: ()
    flop_rules: Mapping[Any, Callable[..., int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in ("conv", "linear", "norm"):
            raise ValueError(f"kind must be 'conv', 'linear' or 'norm', got {self.kind!r}")
        if self.unit < 1:
            raise ValueError(f"unit must be >= 1, got {self.unit}")
        if not self.types:
            raise ValueError("types must name at least one layer class")


_SUPPORT: dict[type[nn.Module], LayerSupport] = {}


def register_layer_support(support: LayerSupport) -> LayerSupport:
    """Declare how audioprune handles `support.types`; a type can be declared once."""
    for cls in support.types:
        if cls in _SUPPORT and _SUPPORT[cls] is not support:
            raise ValueError(f"layer type {cls.__name__} already has a LayerSupport")
    for cls in support.types:
        _SUPPORT[cls] = support
    return support


def layer_support(module: nn.Module) -> LayerSupport | None:
    """The declared support of `module`'s type (exact type first, then a registered base class)."""
    found = _SUPPORT.get(type(module))
    if found is not None:
        return found
    for cls, support in _SUPPORT.items():
        if isinstance(module, cls):
            return support
    return None


def component_unit(module: nn.Module) -> int:
    """The channels one filter of `module`'s declared layer type spans (4 for the quaternion
    layers: r, i, j, k), 1 for a layer that is not declared: what every part of audioprune
    asks, instead of looking at class names or attributes."""
    support = layer_support(module)
    return support.unit if support is not None else 1


def is_norm_layer(module: nn.Module) -> bool:
    """A normalisation layer: torch's batch / instance norms, or a type declared as kind
    "norm" (the quaternion batch norm, or your own: register_layer_support)."""
    if isinstance(module, nn.modules.batchnorm._NormBase):
        return True
    support = layer_support(module)
    return support is not None and support.kind == "norm"


def registered_layer_supports() -> dict[type[nn.Module], LayerSupport]:
    """Every registered layer type and its support (a copy)."""
    return dict(_SUPPORT)


# ---------------------------------------------------------------------------------- the layout


def real_channels_of(units: Sequence[int], width: int, unit: int = 4) -> list[int]:
    """Real channel indices of units `units` in a layer of `width` real channels, where unit q
    owns channels q, q + width/unit, q + 2 width/unit, ... (the quaternion and grouped layout)."""
    if unit == 1:
        return sorted(int(u) for u in units)
    per = width // unit
    return sorted(int(u) + c * per for u in units for c in range(unit))


def units_of(idxs: Sequence[int], width: int, unit: int = 4, what: str = "channels") -> list[int]:
    """The units whose real channels `idxs` lists completely, or ValueError if `idxs` splits one."""
    if width % unit:
        raise ValueError(f"a layout of {unit}-channel units needs a multiple of {unit} {what}, "
                         f"got {width}")
    per = width // unit
    idx_set = {int(i) for i in idxs}
    units = sorted({i % per for i in idx_set})
    if set(real_channels_of(units, width, unit)) != idx_set:
        split = sorted(u for u in units
                       if not set(real_channels_of([u], width, unit)) <= idx_set)
        raise ValueError(
            f"these layers are pruned by whole units of {unit} channels (real {what} q, q+{per}, "
            f"...); the indices split unit(s) {split[:8]}")
    return units
