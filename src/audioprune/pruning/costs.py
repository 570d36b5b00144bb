"""What a plan costs: the parameters and MACs of the model with some filters removed.

Two ways to know, with the same answers:

* Exact (:meth:`PlanCosts.exact`): a structural copy of the model on the meta device (no memory,
  no arithmetic; Torch-Pruning and FlopCounterMode work on shapes alone) is traced, pruned and
  counted. Models whose forward needs real values are copied for real instead. On PANNs'
  MobileNetV2 one recount takes about 1.4 s, almost all of it Torch-Pruning's trace of the copy,
  so a budget search that recounts ~90 times cost 108 s against 2.8 s for a ratio prune.
* By layer (:class:`LayerCosts`): a convolution's or linear layer's MACs are its MACs now times
  the kept fraction of its output channels times that of its input channels (for a depthwise
  convolution, of its channels once), and its parameters likewise (weights by both fractions,
  biases and norm parameters by the output fraction). Which prunable layer's filters make up
  which module's input and output channels is read once from Torch-Pruning's dependency graph:
  a layer's group lists every module it prunes, on which side and how many channels (a flatten
  maps one filter to several inputs of the next linear; a concatenation gives a module's input
  channels to several layers). Counting a plan is then arithmetic.

:class:`PlanCosts` builds the layer model when every module that costs anything is one it can
describe, checks it once against an exact recount at a probe plan (every layer with a third of
its filters removed), and uses it for the search only if the two agree to the MAC and the
parameter; otherwise (attention computed outside the layers it depends on, a module it cannot
describe) every count is exact, as before. Plans are the same either way; the final plan's
predicted counts are always exact.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from audioprune.measure.counting import Counts, count, meta_copy
from audioprune.model_inputs import move_inputs
from audioprune.nn.layer_support import layer_support

log = logging.getLogger("audioprune.prune")

__all__ = ["LayerCosts", "PlanCosts", "make_cost_fn"]


def _channels(module: nn.Module, side: str) -> int | None:
    """A module's input or output channels, when it is a kind whose costs scale with them."""
    support = layer_support(module)
    if support is not None:
        return support.out_channels(module) if side == "out" or support.kind == "norm" \
            else support.in_channels(module)
    if isinstance(module, nn.modules.conv._ConvNd):
        return module.out_channels if side == "out" else module.in_channels
    if isinstance(module, nn.Linear):
        return module.out_features if side == "out" else module.in_features
    if isinstance(module, nn.modules.batchnorm._NormBase):
        return module.num_features
    return None


def _depthwise(module: nn.Module) -> bool:
    return (isinstance(module, nn.modules.conv._ConvNd) and module.groups > 1
            and module.groups == module.in_channels == module.out_channels)


@dataclass
class _Module:
    """One module's costs now and which layers' filters make up its channels."""

    macs: int
    weight_params: int  # tensors of 2+ dims: scale with both sides
    other_params: int  # biases, norm affine parameters: scale with the output side
    total: dict[str, int]  # side -> channels now
    shares: dict[str, dict[str, int]] = field(default_factory=dict)  # side -> layer -> channels
    depthwise: bool = False

    def kept(self, side: str, removed: Mapping[str, float]) -> float:
        """The kept fraction of this side's channels when removed[layer] of each layer's go."""
        if side not in self.shares:
            return 1.0
        gone = sum(removed.get(layer, 0.0) * ch for layer, ch in self.shares[side].items())
        return 1.0 - gone / self.total[side]


class LayerCosts:
    """costs(counts) by arithmetic on each module's costs now (see the module doc); `build`
    returns None when a module that costs something is not one it can describe."""

    def __init__(self, modules: dict[str, _Module], n_units: Mapping[str, int],
                 outside: dict[str, int]) -> None:
        self.modules, self.n_units, self.outside = modules, dict(n_units), outside

    @classmethod
    def build(cls, graph: Any, base: Counts) -> LayerCosts | None:
        model = graph.model
        layers = graph.layers()
        named = dict(model.named_modules())
        modules: dict[str, _Module] = {}
        outside = {"params": 0, "macs": 0}
        for name, lc in base.layers.items():
            mod = named.get(name)
            if name == "(model)" or mod is None:
                outside["macs"] += lc.macs  # work outside any module: unaffected by pruning
                outside["params"] += lc.params  # only if no layer touches it (checked below)
                continue
            params = list(mod.parameters(recurse=False))
            weight = sum(p.numel() for p in params if p.dim() >= 2)
            other = sum(p.numel() for p in params if p.dim() < 2)
            total = {s: c for s in ("in", "out") if (c := _channels(mod, s)) is not None}
            modules[name] = _Module(lc.macs, weight, other, total, depthwise=_depthwise(mod))
        for layer_name, layer in layers.items():
            for dep, idxs in graph.group(layer_name, layers):
                mod = dep.target.module
                if not isinstance(mod, nn.Module) or mod not in graph._names:
                    continue  # Torch-Pruning's own ops (concat, add): no costs of their own
                name = graph._names[mod]
                side = "out" if graph.DG.is_out_channel_pruning_fn(dep.handler) else "in"
                entry = modules.get(name)
                if entry is None and _channels(mod, side) is not None:  # costs sit in children
                    entry = modules[name] = _Module(0, 0, 0, {
                        s: c for s in ("in", "out") if (c := _channels(mod, s)) is not None})
                if entry is None or side not in entry.total:
                    if entry is not None and (entry.macs or entry.weight_params or
                                              entry.other_params):
                        return None  # it costs something and we cannot count its channels
                    continue
                shares = entry.shares.setdefault(side, {})
                shares[layer_name] = shares.get(layer_name, 0) + len(idxs)
        # a pruned wrapper's parameters may sit in a child (a quaternion batch norm's inner
        # BatchNorm2d): the child's channels are the wrapper's
        for name, entry in list(modules.items()):
            if not entry.shares:
                continue
            for child, sub in modules.items():
                if child.startswith(name + ".") and not sub.shares and sub.total == entry.total:
                    sub.shares = {side: dict(v) for side, v in entry.shares.items()}
        for entry in modules.values():
            for side, shares in entry.shares.items():
                if sum(shares.values()) > entry.total[side]:
                    return None  # channels counted twice: a layout we do not understand
        return cls(modules, {n: layer.width // layer.unit for n, layer in layers.items()},
                   outside)

    def __call__(self, counts: Mapping[str, int]) -> dict[str, int]:
        removed = {n: c / self.n_units[n] for n, c in counts.items() if c}
        macs, params = self.outside["macs"], self.outside["params"]
        for entry in self.modules.values():
            f_out = entry.kept("out", removed)
            f_in = 1.0 if entry.depthwise else entry.kept("in", removed)
            macs += round(entry.macs * f_out * f_in)
            params += round(entry.weight_params * f_out * f_in) + round(entry.other_params * f_out)
        return {"params": int(params), "macs": int(macs)}


class PlanCosts:
    """costs(counts) -> {"params": ..., "macs": ...} of `model` with counts[name] units removed
    from each layer (MACs per example, as `graph`'s forward runs), cached per counts: by layer
    when that was checked to agree with an exact recount, else exact (see the module doc)."""

    def __init__(self, model: nn.Module, graph: Any, by_layer: bool = True) -> None:
        self.model, self.graph = model, graph
        counted = count(model, graph.example_inputs, graph.forward)
        self.base = {"params": counted.params, "macs": counted.macs}
        self._cache: dict[tuple, dict[str, int]] = {}
        self.device: str | None = "meta"
        self._counted, self._by_layer = counted, by_layer
        self._layer_costs: LayerCosts | None = None
        self._built = False

    @property
    def layer_costs(self) -> LayerCosts | None:
        """The checked layer model, built on first use (a plan that only needs its final counts,
        such as a ratio, never pays for the probe)."""
        if not self._built:
            self._built = True
            if self._by_layer:
                self._layer_costs = self._checked(LayerCosts.build(self.graph, self._counted))
        return self._layer_costs

    def _checked(self, model: LayerCosts | None) -> LayerCosts | None:
        """`model` if it gives the exact counts at a probe plan, else None."""
        if model is None:
            log.debug("plan costs: a module the layer model cannot describe; counting exactly")
            return None
        probe = {n: max(1, k // 3) for n, k in model.n_units.items() if k > 1}
        if not probe:
            return model
        exact, predicted = self.exact(probe), model(probe)
        if exact != predicted:
            log.debug("plan costs: the layer model gives %s, an exact count %s; counting exactly",
                      predicted, exact)
            return None
        return model

    def _measure(self, m: nn.Module, inputs: Any) -> dict[str, int]:
        counted = count(m, inputs, self.graph.forward)
        return {"params": counted.params, "macs": counted.macs}

    def _pruned(self, counts: Mapping[str, int]) -> dict[str, int]:
        from audioprune.pruning.engine import PruningGraph

        g = self.graph
        clone = meta_copy(self.model) if self.device == "meta" else copy.deepcopy(self.model)
        inputs = move_inputs(g.example_inputs, "meta") if self.device == "meta" else g.example_inputs
        pg = PruningGraph(clone, inputs, g.forward_fn, g.protected,
                          protect_outputs=g.protect_outputs, protect_frozen=g.protect_frozen)
        pg.prune({name: list(range(c)) for name, c in counts.items() if c})
        return self._measure(clone, inputs)

    def exact(self, counts: Mapping[str, int]) -> dict[str, int]:
        """The counts of a pruned copy (see the module doc), cached."""
        key = tuple(sorted((k, int(v)) for k, v in counts.items() if v))
        if not key:
            return self.base
        if key not in self._cache:
            try:
                self._cache[key] = self._pruned(dict(key))
            except Exception:  # noqa: BLE001  (no meta kernel, a value-dependent forward)
                if self.device is None:
                    raise
                self.device = None  # from now on on real copies
                self._cache[key] = self._pruned(dict(key))
        return self._cache[key]

    def __call__(self, counts: Mapping[str, int]) -> dict[str, int]:
        if not any(counts.values()):
            return self.base
        model = self.layer_costs
        return model(counts) if model is not None else self.exact(counts)


def make_cost_fn(model: nn.Module, graph: Any, metric: str,
                 costs: PlanCosts | None = None) -> Callable[[Mapping[str, int]], int]:
    """cost(counts) -> the parameters or MACs of `model` with counts[name] units removed from
    each layer (see PlanCosts; pass `costs` to share its cache between metrics)."""
    if metric not in ("macs", "params"):
        raise ValueError(f"metric must be 'macs' or 'params', got {metric!r}")
    costs = costs or PlanCosts(model, graph)
    return lambda counts: costs(counts)[metric]
