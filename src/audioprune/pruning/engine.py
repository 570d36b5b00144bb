"""The structural engine: a traced model and Torch-Pruning's dependency graph over it.

Torch-Pruning's DependencyGraph traces the model once and then removes channels for real, keeping
every coupled layer consistent: the layer's BN, the next layer's input channels, residual adds,
squeeze-excitation products, and the input of a classifier behind a flatten (dcase21net's fc1
sees conv3's channels x mel positions: pruning conv3 channel c removes fc1's columns c*P ..
c*P+P-1). This module and importance.py are the only ones that import torch_pruning.

Works on any ``nn.Module``:

* Tracing. ``PruningGraph(model, example_inputs, forward_fn)`` runs ``forward_fn(model, inputs)``
  (default ``model(inputs)``; a method name such as "classify" runs an audio model's body on
  features, so the log-mel front end never enters the graph). Every parameter takes part in the
  trace, frozen ones too, so the graph sees all dependencies.
* Prunable layers are the roots of Torch-Pruning's groups among conv / linear layers (and custom
  layers registered as such in nn/layer_support.py), in model order, minus the groups that
  - would change a model OUTPUT: found from the outputs' autograd nodes, so the classifier of a
    plain model, and the embedding layer of a model that returns
    ``{"clipwise_output": ..., "embedding": ...}`` as PANNs' do, are never pruned;
  - touch a frozen layer (all its parameters with ``requires_grad=False``, e.g. an STFT
    implemented as a conv), whose weights stay as they are;
  - have an ``ignored_layers`` entry among the layers whose output channels they prune (the
    Torch-Pruning meaning).
* Units. A group is pruned in units of G real channels {q, q + W/G, q + 2W/G, ...} where G is
  the least common multiple of the channel groups of its layers: 4 when a quaternion layer takes
  part (quaternion q owns real channels q, q+O, q+2O, q+3O), g for a grouped convolution (one
  channel of each group goes, so the groups stay equal), 1 otherwise. This is Torch-Pruning's own
  channel-group layout. Filter index q then means unit q. Depthwise convolutions follow their
  input channels one to one and add no constraint.
* Selection is ours: :meth:`PruningGraph.prune` removes exactly the unit indices it is given,
  never all of them (every layer keeps one unit).

Torch-Pruning notes (1.6.1): its tracer maps a module by the grad_fn of its output, so the
quaternion layers run as one autograd Function each (nn/quaternion.py); their pruning functions
are declared with the layer (nn/quaternion_support.py) and adapted here. ``_trace`` leaves the
model in eval mode; we restore the mode.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch_pruning as tp
from torch import nn

from audioprune.errors import ArgumentError, ArgumentTypeError
from audioprune.measure.counting import CALL_ERRORS, explain_call_failure
from audioprune.model_inputs import ForwardFn, output_tensors, resolve_forward
from audioprune.nn import quaternion_support  # noqa: F401  (declares the quaternion layers)
from audioprune.nn.layer_support import LayerSupport, layer_support, real_channels_of, registered_layer_supports
from audioprune.nn.quaternion import is_quaternion
from audioprune.pruning.layers import is_alias, is_pattern, layer_aliases, match_layers

log = logging.getLogger("audioprune.prune")

__all__ = ["PrunableLayer", "PruningGraph", "customized_pruners", "group_unit", "is_weight_layer",
           "out_width", "root_types"]


# ------------------------------------------------------------------------------ layer types


class _SupportPruner(tp.pruner.BasePruningFunc):
    """A LayerSupport (nn/layer_support.py) as Torch-Pruning's pruning function."""

    def __init__(self, support: LayerSupport) -> None:
        super().__init__()
        self.support = support

    def prune_out_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        self.support.prune_out(layer, idxs)
        return layer

    def prune_in_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        self.support.prune_in(layer, idxs)
        return layer

    def get_out_channels(self, layer: nn.Module) -> int:
        return self.support.out_channels(layer)

    def get_in_channels(self, layer: nn.Module) -> int:
        return self.support.in_channels(layer)

    def get_out_channel_groups(self, layer: nn.Module) -> int:
        return self.support.unit

    def get_in_channel_groups(self, layer: nn.Module) -> int:
        return self.support.unit


class _CoupledSupportPruner(_SupportPruner):
    """A norm-kind layer: its input and output channels are the same ones. Torch-Pruning reads
    that from prune_in_channels BEING prune_out_channels (its intra-layer dependency rule)."""

    prune_in_channels = _SupportPruner.prune_out_channels
    get_in_channels = _SupportPruner.get_out_channels


def customized_pruners() -> dict[type, tp.pruner.BasePruningFunc]:
    """Torch-Pruning pruning functions for every registered custom layer type; pass them as
    ``customized_pruners=`` to Torch-Pruning's DependencyGraph or pruners."""
    return {cls: (_CoupledSupportPruner if s.kind == "norm" else _SupportPruner)(s)
            for cls, s in registered_layer_supports().items()}


def root_types() -> tuple[type, ...]:
    """Layer types whose output channels can root a pruning group."""
    custom = tuple(cls for cls, s in registered_layer_supports().items() if s.kind != "norm")
    return (nn.modules.conv._ConvNd, nn.Linear, *custom)


def is_weight_layer(module: Any) -> bool:
    """A conv / linear layer (built-in or registered custom), not a norm or an op."""
    if isinstance(module, (nn.modules.conv._ConvNd, nn.Linear)):
        return True
    support = layer_support(module) if isinstance(module, nn.Module) else None
    return support is not None and support.kind != "norm"


def _is_depthwise(module: Any) -> bool:
    return (isinstance(module, nn.modules.conv._ConvNd) and module.groups > 1
            and module.groups == module.out_channels == module.in_channels)


# ------------------------------------------------------------------------------ the graph


@dataclass
class PrunableLayer:
    """One prunable layer (the root of a Torch-Pruning group)."""

    name: str
    module: nn.Module
    width: int  # real output channels now
    unit: int  # real channels pruned together (4 in quaternion layout, g for grouped convs)
    kind: str  # "conv" or "linear"
    coupled: tuple[str, ...] = field(default_factory=tuple)  # other layers pruned with it
    quaternion: bool = False  # a quaternion layer takes part in the group

    @property
    def n_units(self) -> int:
        """Filters (units of `unit` channels) the layer has."""
        return self.width // self.unit


def out_width(module: nn.Module) -> int:
    support = layer_support(module)
    if support is not None:
        return support.out_channels(module)
    for attr in ("out_channels", "out_features"):
        if hasattr(module, attr):
            return int(getattr(module, attr))
    raise ValueError(f"{type(module).__name__} has no out_channels / out_features")


class PruningGraph:
    """A traced model and the Torch-Pruning dependency graph over it (see the module docs).

    ``ignored_layers``: modules, module names, glob patterns (``block4.*``) or C<k> / C<i>-C<j>
    aliases, as a plan's ``layers`` takes them, whose output channels are never pruned (with
    every group that would prune them; a block's name covers its submodules);
    ``protect_outputs`` / ``protect_frozen`` switch off the automatic protection of output
    layers and frozen layers.
    """

    def __init__(self, model: nn.Module, example_inputs: Any,
                 forward_fn: ForwardFn | str | None = None,
                 ignored_layers: Iterable[str | nn.Module] = (), *,
                 protect_outputs: bool = True, protect_frozen: bool = True) -> None:
        if not isinstance(model, nn.Module):
            raise ArgumentTypeError(f"`model` must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self.example_inputs = example_inputs
        self.forward_fn = forward_fn
        self.forward = forward = resolve_forward(forward_fn, model)
        self._names = {mod: name for name, mod in model.named_modules()}
        ignored, aliased = self._resolve_ignored(ignored_layers)
        self._ignored = ignored
        self._frozen = ({m for m in model.modules() if is_weight_layer(m) and _all_frozen(m)}
                        if protect_frozen else set())
        self.protect_outputs, self.protect_frozen = protect_outputs, protect_frozen
        output_fns: set[Any] = set()

        def traced(m: nn.Module, x: Any) -> Any:
            out = forward(m, x)
            output_fns.update(t.grad_fn for t in output_tensors(out) if t.grad_fn is not None)
            return out

        was_training = model.training
        frozen_params = [p for p in model.parameters() if not p.requires_grad]
        try:
            for p in frozen_params:  # frozen layers take part in the trace (their deps count)
                p.requires_grad_(True)
            with warnings.catch_warnings(), torch.enable_grad():
                warnings.simplefilter("ignore")  # "unwrapped parameters" notes about e.g. bn0
                self.DG = tp.DependencyGraph().build_dependency(
                    model, example_inputs=example_inputs, forward_fn=traced,
                    customized_pruners=customized_pruners(), verbose=False)
        except CALL_ERRORS as exc:
            raise ArgumentError(explain_call_failure(model, example_inputs, forward, exc,
                                                     "tracing the model with")) from exc
        finally:
            for p in frozen_params:
                p.requires_grad_(False)
            model.train(was_training)
        self._output_nodes = {node for node in self.DG.module2node.values()
                              if node.grad_fn in output_fns
                              or type(node.module).__name__ == "_OutputOp"}
        if aliased:  # C<k> aliases number the prunable convolutions: known once traced
            aliases = layer_aliases(self.layers())
            modules = dict(model.named_modules())
            for pattern in aliased:
                hit = match_layers(pattern, [], aliases)
                if not hit:
                    raise ArgumentError(f"`ignored_layers`: {pattern!r} names no prunable "
                                        f"convolution (aliases C1-C{len(aliases)})")
                self._ignored += [m for name in hit for m in modules[name].modules()]
        self.protected = sorted({self._names[m] for m in self._ignored})

    def _resolve_ignored(self, items: Iterable[str | nn.Module]) -> tuple[list[nn.Module], list[str]]:
        """The modules `ignored_layers` names - modules, names or glob patterns as `layers` takes
        them, each with all its submodules (a block's name leaves the whole block alone, as in
        Torch-Pruning's pruners) - and the C<k> aliases left to resolve after tracing."""
        modules = {name: mod for name, mod in self.model.named_modules() if name}
        ignored: list[nn.Module] = []
        aliased: list[str] = []
        for item in items:
            if isinstance(item, nn.Module):
                if item not in self._names:
                    raise ArgumentError(f"`ignored_layers`: a {type(item).__name__} that is not "
                                        f"part of the model")
                hit = [item]
            elif not isinstance(item, str):
                raise ArgumentTypeError(f"`ignored_layers` holds layer names, glob patterns or "
                                        f"modules, got a {type(item).__name__}")
            elif is_alias(item) and item not in modules:
                aliased.append(item)
                continue
            else:
                hit = [modules[n] for n in match_layers(item, list(modules), {})]
                if not hit:
                    weight = [n for n, m in modules.items() if is_weight_layer(m)]
                    shown = ", ".join(weight[:12]) + (", ..." if len(weight) > 12 else "")
                    what = (f"{item!r} matches no layer of the model" if is_pattern(item)
                            else f"no layer named {item!r} in the model")
                    raise ArgumentError(f"`ignored_layers`: {what}; its conv / linear layers: "
                                        f"{shown}")
            ignored += [m for mod in hit for m in mod.modules()]
        return ignored, aliased

    # -- inspection

    def _reaches_output(self, group: Any) -> bool:
        """True when pruning the group changes the shape of a model output."""
        for dep, _ in group:
            if dep.target not in self._output_nodes:
                continue
            module = dep.target.module
            reads_only_inputs = (is_weight_layer(module) and not _is_depthwise(module)
                                 and self.DG.is_in_channel_pruning_fn(dep.handler))
            if not reads_only_inputs:
                return True
        return False

    def _touches_frozen(self, group: Any) -> bool:
        return any(dep.target.module in self._frozen for dep, _ in group)

    def layers(self) -> dict[str, PrunableLayer]:
        """The prunable layers now, in model order (a fresh view after each prune)."""
        found: dict[str, PrunableLayer] = {}
        self.skipped: dict[str, str] = {self._names[m]: "listed in `ignored_layers`"
                                        for m in self._ignored}
        for group in self.DG.get_all_groups(ignored_layers=self._ignored,
                                            root_module_types=root_types()):
            root = group[0].dep.target.module
            name = self._names[root]
            if self.protect_outputs and self._reaches_output(group):
                self.skipped[name] = "its channels reach a model output (an output layer)"
                continue
            if self._touches_frozen(group):
                self.skipped[name] = "it is, or is coupled to, a frozen layer (requires_grad=False)"
                continue
            coupled = sorted({self._names[dep.target.module] for dep, _ in group
                              if dep.target.module is not root
                              and is_weight_layer(dep.target.module)
                              and self.DG.is_out_channel_pruning_fn(dep.handler)})
            unit = group_unit(self.DG, group)
            width = out_width(root)
            kind = "linear" if (isinstance(root, nn.Linear) or
                                getattr(layer_support(root), "kind", "") == "linear") else "conv"
            found[name] = PrunableLayer(name, root, width, unit, kind, tuple(coupled),
                                        quaternion=any(is_quaternion(dep.target.module)
                                                       for dep, _ in group
                                                       if isinstance(dep.target.module, nn.Module)))
        order = {name: i for i, name in enumerate(self._names.values())}
        return dict(sorted(found.items(), key=lambda kv: order[kv[0]]))

    def group(self, name: str, layers: Mapping[str, PrunableLayer] | None = None) -> Any:
        """The Torch-Pruning group of layer `name` with all its output channels."""
        layers = self.layers() if layers is None else layers
        if name not in layers:
            raise KeyError(f"{name!r} is not a prunable layer; prunable: {', '.join(layers)}")
        return self._group_of(layers[name].module, range(layers[name].width))

    def _group_of(self, module: nn.Module, channels: Iterable[int]) -> Any:
        pruner = self.DG.get_pruner_of_module(module)
        return self.DG.get_pruning_group(module, pruner.prune_out_channels, list(channels))

    def scores(self, importance: tp.importance.Importance,
               names: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """Per-unit scores in OUR convention (higher = prune first) from a Torch-Pruning importance.

        Where a unit is several real channels the importance of the unit is the mean over them
        (our importances give all of them the same value already), as Torch-Pruning does.
        """
        layers = self.layers()
        out: dict[str, np.ndarray] = {}
        for name in (names if names is not None else layers):
            layer = layers[name]
            imp = importance(self.group(name, layers))
            if imp is None:
                raise ValueError(f"{type(importance).__name__} scores nothing in the group of {name}")
            imp = np.asarray(imp.detach().cpu().double() if torch.is_tensor(imp) else imp,
                             dtype=np.float64)
            if imp.shape != (layer.width,):
                raise ValueError(f"importance for {name} has shape {imp.shape}, expected "
                                 f"({layer.width},)")
            out[name] = -imp.reshape(layer.unit, -1).mean(axis=0)
        return out

    # -- pruning

    def prune(self, removal: Mapping[str, Sequence[int]], *, units: Mapping[str, int] | None = None
              ) -> dict[str, list[int]]:
        """Remove filters for real: removal[name] = unit indices of layer `name`, numbered as the
        layer is now. Returns the kept indices. Every layer keeps at least one unit.

        With `units` (name -> unit size, as recorded when the model was first pruned) the layers
        are not looked up among the prunable ones: this replays a record on a fresh model.
        """
        modules = dict(self.model.named_modules())
        plans: list[tuple[str, nn.Module, int, int, list[int]]] = []
        layers = self.layers() if units is None else {}
        for name, idxs in removal.items():
            if units is None:
                if name not in layers:
                    raise KeyError(f"{name!r} is not a prunable layer; prunable: "
                                   f"{', '.join(layers)}")
                module, width, unit = layers[name].module, layers[name].width, layers[name].unit
            else:
                if name not in modules:
                    raise KeyError(f"no layer named {name!r} in the model")
                module, unit = modules[name], int(units[name])
                width = out_width(module)
            n_units = width // unit
            bad = [i for i in idxs if not 0 <= int(i) < n_units]
            if bad:
                raise ValueError(f"{name}: filter indices {bad[:5]} outside 0..{n_units - 1}")
            chosen = sorted({int(i) for i in idxs})
            if len(chosen) >= n_units:
                raise ValueError(f"{name}: cannot remove all {n_units} filters; every layer "
                                 f"keeps at least one")
            plans.append((name, module, width, unit, chosen))
        kept: dict[str, list[int]] = {}
        for name, module, width, unit, chosen in plans:
            kept[name] = [i for i in range(width // unit) if i not in set(chosen)]
            if not chosen:
                continue
            group = self._group_of(module, real_channels_of(chosen, width, unit))
            if not self.DG.check_pruning_group(group):
                raise ArgumentError(f"{name}: pruning {len(chosen)} of its {width // unit} "
                                    f"filters would empty {self._emptied(group)}; leave it "
                                    f"alone with `ignored_layers`=[{name!r}], or prune less "
                                    f"(a smaller `ratio` or budget)")
            group.prune()
            log.debug("pruned %d of %d filters of %s", len(chosen), width // unit, name)
        return kept

    def _emptied(self, group: Any) -> str:
        """Which coupled layer a group's removal would leave without channels, in words."""
        for dep, idxs in group:
            module = dep.target.module
            for is_fn, get, side in ((self.DG.is_out_channel_pruning_fn, self.DG.get_out_channels,
                                      "output"),
                                     (self.DG.is_in_channel_pruning_fn, self.DG.get_in_channels,
                                      "input")):
                if not is_fn(dep.handler):
                    continue
                have = get(module)
                if have is not None and have <= len(idxs):
                    name = self._names.get(module, type(module).__name__)
                    return f"{name} (all {have} of its {side} channels would go)"
        return "a coupled layer"


def group_unit(dg: Any, group: Any) -> int:
    """Real channels pruned together in `group`: the least common multiple of the channel groups
    of its layers (Torch-Pruning's get_*_channel_groups; depthwise convs add no constraint)."""
    unit = 1
    for dep, _ in group:
        module = dep.target.module
        if not isinstance(module, nn.Module) or _is_depthwise(module):
            continue
        pruner = dg.get_pruner_of_module(module)
        if pruner is None:
            continue
        groups = (pruner.get_out_channel_groups(module) if dg.is_out_channel_pruning_fn(dep.handler)
                  else pruner.get_in_channel_groups(module))
        unit = math.lcm(unit, max(int(groups or 1), 1))
    return unit


def _all_frozen(module: nn.Module) -> bool:
    params = list(module.parameters(recurse=False))
    return bool(params) and not any(p.requires_grad for p in params)
