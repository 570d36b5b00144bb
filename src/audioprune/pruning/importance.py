"""Our criteria as Torch-Pruning importances: one score per unit of a group's root layer.

``CriterionImportance`` (weight criteria) and ``ActiveImportance`` (criteria of feature maps or
gradients) are ``torch_pruning.importance.Importance`` objects: called on a Torch-Pruning group
they return one value per real output channel of the group's root with Torch-Pruning's sign
convention (LOWER = pruned first), i.e. minus our score (our convention: HIGHER = prune first).
So they work inside our engine and inside Torch-Pruning's own pruners alike.

Scope (``scope``, an option of every weight and gradient criterion):
  root   the criterion sees the root layer's filters only - what the papers do. In a unit layout
         (a quaternion layer: unit = 4 real channels) the four components r, i, j, k are scored
         as layers of their own and combined by ``aggregate`` (``quaternion_mode="aggregate"``,
         the QCNN authors' choice), or scored once per quaternion (``"concat"``).
  group  the criterion is applied to every layer of the dependency group the way Torch-Pruning's
         group importances do: the root's filters, the filters of layers coupled to it (a
         residual add), the next layers' input slices (the columns that read each channel; behind
         a flatten, all the columns of a channel together) and, for norm-type criteria (l1, l2,
         opnorm, opnorm-paper, fpgm), the batch-norm scales. Each layer is scored on its own; the
         per-unit scores are then reduced over the layers by ``group_reduction`` (on importances,
         Torch-Pruning's names: "mean" (default), "sum", "max", "min"). A unit's slices of
         several channels (a quaternion's four, a flattened channel's positions) are
         concatenated into one filter. For gradient criteria (taylor) BN layers do not count -
         this makes ``taylor`` with scope=group rank exactly as Torch-Pruning 1.6.1's
         GroupTaylorImportance (whose BN branch tests for GroupNorm), checked in the tests.

Normalisation (``normalize``): ``None`` leaves the values as they are; ``"minmax"`` maps each
group's importances to [0, 1] (the most prunable unit 0, the least 1), which puts every layer on
one scale for a global ranking (Torch-Pruning's ``global_pruning=True``); ``audioprune.importance``
uses it by default.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch_pruning as tp
from torch import nn

from audioprune.errors import ArgumentError
from audioprune.model_inputs import ForwardFn, call_model
from audioprune.nn.layer_support import layer_support
from audioprune.pruning import calibration
from audioprune.pruning.criteria import CriterionInfo, describe_criterion, get_criterion
from audioprune.pruning.criteria.representatives import representatives
from audioprune.pruning.engine import group_unit, is_weight_layer
from audioprune.pruning.plan import normalise_scores

if TYPE_CHECKING:  # pragma: no cover
    from audioprune.pruning.engine import PruningGraph

__all__ = ["AGGREGATES", "ActiveImportance", "CriterionImportance", "GROUP_REDUCTIONS",
           "NORMALIZERS", "QUATERNION_MODES", "SCOPES", "TorchPruningImportance",
           "aggregate_components", "make_importance"]

AGGREGATES = ("mean", "max", "min", "norm")
QUATERNION_MODES = ("aggregate", "concat")
SCOPES = ("root", "group")
GROUP_REDUCTIONS = ("mean", "sum", "max", "min")
NORMALIZERS = (None, "minmax")


def aggregate_components(scores: np.ndarray, how: str) -> np.ndarray:
    """Combine per-component scores (G, O) into one score per unit (O,), OUR convention.

    mean  the authors' choice (QCNN paper: l1 / FPGM / operator-norm averaged over r, i, j, k)
    max   a unit is as prunable as its most prunable component
    min   ... as its least prunable component
    norm  sign(mean) * root-mean-square: like mean, with more weight on extreme components; for
          `l2` (scores = -||w_c||) it is -||w_q|| / 2, the whole quaternion filter's l2 norm
    """
    s = np.asarray(scores, dtype=np.float64)
    if how == "mean":
        return s.mean(axis=0)
    if how == "max":
        return s.max(axis=0)
    if how == "min":
        return s.min(axis=0)
    if how == "norm":
        mean = s.mean(axis=0)
        sign = np.where(mean < 0, -1.0, 1.0)
        return sign * np.sqrt(np.square(s).mean(axis=0))
    raise ArgumentError(f"unknown `aggregate` {how!r}; choose from {', '.join(AGGREGATES)}")


def _choice(value: Any, allowed: Sequence[Any], arg: str) -> Any:
    if value not in allowed:
        raise ArgumentError(f"unknown `{arg}` {value!r}; choose from "
                            f"{', '.join(str(a) for a in allowed)}")
    return value


# ------------------------------------------------------------------------------ weights of a unit


def _root_components(module: nn.Module, unit: int, grads: bool = False) -> list[torch.Tensor]:
    """One weight (or gradient) tensor per component, each (out/unit, ...): the r, i, j, k
    tensors of a quaternion layer; the `unit` real-filter blocks (rows q, q+O, ...) of a real
    layer in a unit layout; [W] when unit = 1."""
    support = layer_support(module)
    comps = list(support.components(module)) if support is not None else []
    if comps and len(comps) == unit:
        out = [c.grad if grads else c for c in comps]
    else:
        weight = getattr(module, "weight", None)
        if not isinstance(weight, torch.Tensor):
            raise TypeError(f"{type(module).__name__} has no weight tensor a criterion can score")
        w = weight.grad if grads else weight
        if w is None:
            out = [None]
        elif unit == 1:
            out = [w]
        else:
            if w.shape[0] % unit:
                raise ValueError(f"a layout of {unit}-channel units needs a multiple of {unit} "
                                 f"filters, got {w.shape[0]}")
            out = list(w.reshape(unit, w.shape[0] // unit, *w.shape[1:]).unbind(0))
    if any(t is None for t in out):
        raise ValueError(f"{type(module).__name__}: no gradient recorded; run calibration batches")
    return [t.detach() for t in out]


def _dep_rows(module: nn.Module, is_out: bool, grads: bool,
              norm_layers: bool) -> tuple[torch.Tensor, np.ndarray] | None:
    """The slices a dependency contributes: (rows, row_of_channel), rows[row_of_channel[c]] being
    what channel c of this layer's pruned dimension holds (weight or gradient values, (C, ...)).
    None when the layer contributes nothing."""
    support = layer_support(module)
    comps = list(support.components(module)) if support is not None else []
    if comps:  # a unit-layout custom layer (quaternion): its components, not the assembled kernel
        comps = [c.grad if grads else c for c in comps]
        if any(c is None for c in comps):
            return None
        comps = [c.detach() for c in comps]
        if is_out:  # real channel q + c*O is component c's row q
            rows = torch.cat(comps, dim=0)
            return rows, np.arange(rows.shape[0])
        # input unit p (real channels p, p+I, ...) is column p of every component, together
        stacked = torch.cat([c.transpose(0, 1) for c in comps], dim=1)  # (I, 4 * out/4, ...)
        n_in = stacked.shape[0]
        return stacked, np.tile(np.arange(n_in), len(comps))
    if is_weight_layer(module):
        weight = module.weight.grad if grads else module.weight
        if weight is None:
            return None
        w = weight.detach()
        transposed = bool(getattr(module, "transposed", False))
        if is_out:
            rows = w.transpose(0, 1) if transposed else w
            return rows, np.arange(rows.shape[0])
        rows = w if transposed else w.transpose(0, 1)
        groups = int(getattr(module, "groups", 1))
        if groups > 1 and groups != getattr(module, "in_channels", -1):
            rows = rows.repeat(groups, *([1] * (rows.dim() - 1)))  # as Torch-Pruning does
        return rows, np.arange(rows.shape[0])
    if norm_layers and isinstance(module, nn.modules.batchnorm._BatchNorm) and module.affine:
        weight = module.weight.grad if grads else module.weight
        if weight is None:
            return None
        rows = weight.detach()[:, None]
        return rows, np.arange(rows.shape[0])
    return None


def group_unit_scores(group: Any, unit: int, scorer: Callable[..., np.ndarray], *,
                      grads: bool = False, norm_layers: bool = False,
                      reduction: str = "mean") -> np.ndarray:
    """Per-unit scores (OUR convention) of the group's root from every layer of the group.

    `scorer(filters)` (or `scorer(weights, gradients)` with `grads`) maps (n, C, K) to n scores.
    For each layer the rows read by the channels of each root unit are concatenated along the
    kernel axis into one filter per unit; the per-layer scores are reduced by `reduction` over
    importances (= minus scores), Torch-Pruning's group reduction.
    """
    dg = group._DG
    root_width = len(group[0].idxs)
    n_units = root_width // unit
    per_layer: list[np.ndarray] = []
    for i, (dep, idxs) in enumerate(group):
        module = dep.target.module
        if not isinstance(module, nn.Module):
            continue
        is_out = dg.is_out_channel_pruning_fn(dep.handler)
        found = _dep_rows(module, is_out, grads, norm_layers)
        if found is None:
            continue
        rows, row_of = found
        root_idxs = group[i].root_idxs
        if any(r is None for r in root_idxs):
            continue
        by_unit: list[list[int]] = [[] for _ in range(n_units)]
        for idx, r in zip(idxs, root_idxs):
            row = int(row_of[int(idx)])
            u = int(r) % n_units
            if row not in by_unit[u]:
                by_unit[u].append(row)
        sizes = {len(rs) for rs in by_unit}
        if len(sizes) != 1 or 0 in sizes:
            continue  # an irregular mapping (not seen in practice): this layer does not vote
        m = sizes.pop()
        take = torch.as_tensor([r for rs in by_unit for r in rs], device=rows.device)

        def filters(t: torch.Tensor) -> torch.Tensor:
            sel = t.index_select(0, take).reshape(n_units, m, t.shape[1] if t.dim() > 1 else 1, -1)
            return sel.permute(0, 2, 1, 3).reshape(n_units, sel.shape[2], -1)

        if grads:
            w_rows, _ = _dep_rows(module, is_out, False, norm_layers)  # type: ignore[misc]
            scores = scorer(filters(w_rows), filters(rows))
        else:
            scores = scorer(filters(rows))
        per_layer.append(np.asarray(scores, dtype=np.float64))
    if not per_layer:
        raise ValueError("no layer of the group can be scored")
    imp = -np.stack(per_layer)
    reduced = {"mean": imp.mean(axis=0), "sum": imp.sum(axis=0), "max": imp.max(axis=0),
               "min": imp.min(axis=0)}[reduction]
    return -reduced


def _unit_of_group(group: Any) -> int:
    """The unit layout of a group, as the engine computes it (from Torch-Pruning's channel
    groups), when the importance is used outside our engine."""
    return group_unit(group._DG, group)


def _to_importance(units: np.ndarray, group: Any, unit: int, normalize: str | None) -> torch.Tensor:
    """Torch-Pruning importances (lower = pruned first) of the group's root channels from per-unit
    scores in our convention; channel q + c*(W/unit) belongs to unit q."""
    imp = -np.asarray(units, dtype=np.float64)
    if normalize is not None:
        imp = normalise_scores(imp, normalize)
    per_channel = np.tile(imp, unit)
    idxs = list(group[0].idxs) if len(group[0].idxs) else range(per_channel.size)
    return torch.as_tensor(per_channel[list(idxs)], dtype=torch.float64)


# ------------------------------------------------------------------------------ importances


class _OurImportance(tp.importance.Importance):
    """Shared by the weight and the active importances: scope, reduction, normalisation."""

    info: CriterionInfo
    unit_override: Mapping[nn.Module, int] | None = None

    def _configure(self, name: str, scope: str | None, group_reduction: str,
                   normalize: str | None, aggregate: str) -> None:
        self.name = name
        self.info = describe_criterion(name)
        self.scope = _choice(scope or self.info.scope, SCOPES, "scope")
        if self.scope == "group" and self.info.inputs == "activations":
            raise ArgumentError(f"`scope` 'group' needs weights or gradients; {name} scores "
                                f"feature maps, one per channel already")
        self.group_reduction = _choice(group_reduction, GROUP_REDUCTIONS, "group_reduction")
        self.normalize = _choice(normalize, NORMALIZERS, "normalize")
        self.aggregate = _choice(aggregate, AGGREGATES, "aggregate")

    def _group_unit(self, group: Any) -> int:
        return _unit_of_group(group)

    def unit_scores_of_group(self, group: Any, unit: int) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def __call__(self, group: Any) -> torch.Tensor:
        unit = self._group_unit(group)
        return _to_importance(self.unit_scores_of_group(group, unit), group, unit, self.normalize)


class CriterionImportance(_OurImportance):
    """A weight criterion (wdc, betweenness, similarity, l1, fpgm, ...) as an importance.

    Quaternion layout, root scope (``quaternion_mode``):
      aggregate (default)  the criterion scores each component r, i, j, k as a layer of its own and
                           the four scores are combined by ``aggregate`` (mean by default). This is
                           what the QCNN authors did, keeps every criterion's published meaning,
                           and works for all criteria alike.
      concat               one score per quaternion filter from ONE call. Graph / similarity
                           criteria (those with a `representative` option) get one node per
                           quaternion whose representative is the concatenation of its four
                           components' representatives (each L2-normalised); the other criteria
                           see the four components concatenated along the input axis as one real
                           filter (for l1 this ranks exactly as the mean). The cosine of two
                           concatenations of four unit vectors is the mean of the four cosines,
                           so `wdc` also equals its mean aggregate; path / spectral measures
                           (betweenness, closeness, eigenvector, pagerank) and the similarity
                           criteria do differ.
    """

    def __init__(self, name: str, options: Mapping[str, Any] | None = None, *,
                 aggregate: str = "mean", quaternion_mode: str = "aggregate",
                 scope: str | None = None, group_reduction: str = "mean",
                 normalize: str | None = None) -> None:
        self.options = dict(options or {})
        self.criterion = get_criterion(name, **self.options)  # validates name and options
        self._configure(name, scope, group_reduction, normalize, aggregate)
        self.quaternion_mode = _choice(quaternion_mode, QUATERNION_MODES, "quaternion_mode")
        self._uses_representatives = "representative" in self.info.options

    def describe(self) -> dict[str, Any]:
        d = {"criterion": self.name, "options": self.options, "aggregate": self.aggregate,
             "quaternion_mode": self.quaternion_mode}
        if self.scope != self.info.scope:
            d["scope"] = self.scope
        if self.scope == "group":
            d["group_reduction"] = self.group_reduction
        return d

    def unit_scores(self, module: nn.Module, unit: int) -> np.ndarray:
        """Root scope: one score per unit of `module`'s filters, higher = prune first."""
        comps = _root_components(module, unit)
        if len(comps) == 1:
            return np.asarray(self.criterion(comps[0]), dtype=np.float64)
        if self.quaternion_mode == "aggregate":
            return aggregate_components(np.stack([self.criterion(c) for c in comps]),
                                        self.aggregate)
        if self._uses_representatives:
            kind = self.options.get("representative", "auto")
            method = self.options.get("rank1_method", "gram")
            reps = np.concatenate([representatives(c, kind, method=method) for c in comps], axis=1)
            opts = {**self.options, "representative": "flat"}
            return np.asarray(get_criterion(self.name, **opts)(reps[:, None, :]), dtype=np.float64)
        return np.asarray(self.criterion(torch.cat(comps, dim=1)), dtype=np.float64)

    def unit_scores_of_group(self, group: Any, unit: int) -> np.ndarray:
        if self.scope == "root":
            return self.unit_scores(group[0].dep.target.module, unit)
        return group_unit_scores(group, unit, self.criterion, norm_layers=self.info.norm_layers,
                                 reduction=self.group_reduction)


class ActiveImportance(_OurImportance):
    """A criterion of feature maps (hrank, activation) or of weight gradients (taylor), read from
    the criteria registry, as an importance.

    Unlike :class:`CriterionImportance` it needs data: :meth:`calibrate` runs calibration batches
    through the model (again after every pruning round: the maps change) and stores one score per
    unit of every prunable layer; scoring a group then reads them. Feature maps are taken after
    the layer's norm (conv -> BN -> ReLU) and ReLU'd, per real channel; in a unit layout the
    channels of a unit are combined by ``aggregate``. Gradient criteria are computed like weight
    criteria (root or group scope) on the weights and their accumulated gradients.
    """

    def __init__(self, name: str, options: Mapping[str, Any] | None = None, *,
                 aggregate: str = "mean", scope: str | None = None,
                 group_reduction: str = "mean", normalize: str | None = None) -> None:
        info = describe_criterion(name)
        if info.inputs == "weights":
            raise ArgumentError(f"`criterion` {name!r} is a weight criterion; use "
                                f"CriterionImportance")
        self.options = dict(options or {})
        unknown = sorted(set(self.options) - set(info.options))
        if unknown:
            raise ArgumentError(f"`criterion` {name!r} has no option {', '.join(unknown)} "
                                f"(allowed: {', '.join(info.options)})")
        self.batches = int(self.options.get("batches", calibration.DEFAULT_BATCHES))
        if self.batches < 1:
            raise ArgumentError(f"{name}: `batches` must be at least 1, got {self.batches}")
        self._configure(name, scope, group_reduction, normalize, aggregate)
        self.inputs = info.inputs
        fn_options = {k: v for k, v in self.options.items() if k != "batches"}
        self.fn = lambda *a: info.fn(*a, **info.fixed, **fn_options)
        self._unit_scores: dict[nn.Module, np.ndarray] = {}
        self._unscored: dict[nn.Module, str] = {}

    def describe(self) -> dict[str, Any]:
        d = {"criterion": self.name, "options": self.options, "aggregate": self.aggregate,
             "quaternion_mode": "aggregate", "calibration_batches": self.batches}
        if self.scope != self.info.scope:
            d["scope"] = self.scope
        return d

    def calibrate(self, graph: PruningGraph, batches: Sequence[Any],
                  loss_fn: Callable[[Any, Any], torch.Tensor] | None = None,
                  forward: ForwardFn | None = None) -> None:
        """Record this criterion's per-unit scores for every prunable layer of `graph`.

        `batches` are inputs or (inputs, targets) pairs; `forward(model, inputs)` runs a batch
        (default: the model's own call); `loss_fn(outputs, targets)` is the loss whose gradients
        gradient criteria read.
        """
        if not batches:
            raise ArgumentError(f"{self.name} needs `calibration_data` (training batches)")
        forward = forward or call_model
        layers = graph.layers()
        model = graph.model
        if self.inputs == "activations":
            maps = self.info.map_dims
            scored = {n: lay.module for n, lay in layers.items()
                      if maps is None or _weight_ndim(lay.module) == maps + 2}
            self._unscored = {lay.module: n for n, lay in layers.items() if n not in scored}
            taps = calibration.feature_taps(model, scored, graph.example_inputs, graph.forward)
            scores = calibration.record_feature_scores(model, taps, batches, self.fn, forward)
            self._unit_scores = {}
            for n, s in scores.items():
                unit = layers[n].unit
                self._unit_scores[layers[n].module] = (
                    aggregate_components(s.reshape(unit, -1), self.aggregate) if unit > 1 else s)
            return
        if loss_fn is None:
            raise ArgumentError(f"{self.name} reads gradients of a loss: pass `loss_fn(outputs, "
                                f"targets)` or batches of (inputs, class indices | multi-hot)")
        calibration.accumulate_gradients(model, batches, loss_fn, forward)
        try:
            self._unit_scores = {}
            for name, layer in layers.items():
                if self.scope == "group":
                    self._unit_scores[layer.module] = group_unit_scores(
                        graph.group(name, layers), layer.unit, self.fn, grads=True,
                        reduction=self.group_reduction)
                else:
                    ws = _root_components(layer.module, layer.unit)
                    gs = _root_components(layer.module, layer.unit, grads=True)
                    per = np.stack([self.fn(w, g) for w, g in zip(ws, gs)])
                    self._unit_scores[layer.module] = (
                        aggregate_components(per, self.aggregate) if len(ws) > 1 else per[0])
        finally:
            calibration.clear_gradients(model.parameters())

    def unit_scores_of_group(self, group: Any, unit: int) -> np.ndarray:
        module = group[0].dep.target.module
        if module in self._unscored:
            raise ArgumentError(f"{self.name} ranks {self.info.map_dims}-D feature maps; "
                                f"{self._unscored[module]} does not produce them: leave it out "
                                f"with `layers` (e.g. 'conv*')")
        if module not in self._unit_scores:
            raise RuntimeError(f"{self.name}: layer not calibrated; call calibrate() with data "
                               f"after every pruning step")
        return self._unit_scores[module]


def _weight_ndim(module: nn.Module) -> int:
    support = layer_support(module)
    comps = list(support.components(module)) if support is not None else []
    weight = comps[0] if comps else getattr(module, "weight", None)
    return int(weight.dim()) if isinstance(weight, torch.Tensor) else -1


class TorchPruningImportance(tp.importance.Importance):
    """Torch-Pruning's own group importance (tp-magnitude, tp-lamp, tp-fpgm) under a criterion
    name, so that it runs in our engine - our budgets, plans, records and reports - exactly as
    Torch-Pruning computes it. Only groups rooted at torch.nn convolutions and linears are
    scored: Torch-Pruning skips layers it does not know (our quaternion layers), so on them it
    would rank by the batch norm alone; that is refused instead."""

    inputs = "weights"

    def __init__(self, name: str, options: Mapping[str, Any] | None = None, *,
                 group_reduction: str = "mean", normalize: str | None = None) -> None:
        self.name = name
        self.info = describe_criterion(name)
        self.inputs = self.info.inputs  # "weights", or "gradients" for tp-taylor
        self.options = dict(options or {})
        unknown = sorted(set(self.options) - set(self.info.options))
        if unknown:
            raise ArgumentError(f"`criterion` {name!r} has no option {', '.join(unknown)} "
                                f"(allowed: {', '.join(self.info.options)})")
        self.batches = int(self.options.get("batches", calibration.DEFAULT_BATCHES))
        self.group_reduction = _choice(group_reduction, GROUP_REDUCTIONS, "group_reduction")
        self.normalize = _choice(normalize, NORMALIZERS, "normalize")
        cls = getattr(tp.importance, str(self.info.torch_pruning))
        tp_options = {k: v for k, v in self.options.items() if k != "batches"}
        try:
            self.tp_importance = cls(group_reduction=self.group_reduction, **tp_options)
        except (TypeError, ValueError) as exc:
            raise ArgumentError(f"`criterion` {name}: {exc}") from None
        self._scored: dict[nn.Module, torch.Tensor] = {}  # gradient criteria: per root, calibrated

    def calibrate(self, graph: PruningGraph, batches: Sequence[Any],
                  loss_fn: Callable[[Any, Any], torch.Tensor] | None = None,
                  forward: ForwardFn | None = None) -> None:
        """A gradient criterion (tp-taylor): accumulate the loss's gradients on `batches`, let
        Torch-Pruning score every prunable group with them, keep the scores, drop the
        gradients (again before every pruning step: the weights change)."""
        if self.inputs != "gradients":
            return
        if loss_fn is None:
            raise ArgumentError(f"{self.name} reads gradients of a loss: pass `loss_fn(outputs, "
                                f"targets)` or batches of (inputs, class indices | multi-hot)")
        model, layers = graph.model, graph.layers()
        calibration.accumulate_gradients(model, batches, loss_fn, forward or call_model)
        try:
            self._scored = {layer.module: self._score(graph.group(name, layers))
                            for name, layer in layers.items()}
        finally:
            calibration.clear_gradients(model.parameters())

    def describe(self) -> dict[str, Any]:
        return {"criterion": self.name, "options": self.options,
                "torch_pruning": f"{self.info.torch_pruning} (torch-pruning {tp.__version__})",
                "group_reduction": self.group_reduction,
                **({"calibration_batches": self.batches} if self.inputs == "gradients" else {})}

    def __call__(self, group: Any) -> torch.Tensor:
        root = group[0].dep.target.module
        if self.inputs == "gradients":
            if root not in self._scored:
                raise RuntimeError(f"{self.name}: layer not calibrated; call calibrate() with "
                                   f"data before every pruning step")
            return self._scored[root]
        return self._score(group)

    def _score(self, group: Any) -> torch.Tensor:
        root = group[0].dep.target.module
        if not isinstance(root, (nn.modules.conv._ConvNd, nn.Linear)):
            raise ArgumentError(f"{self.name} is Torch-Pruning's {self.info.torch_pruning}, which "
                                f"scores torch.nn convolutions and linears only, not "
                                f"{type(root).__name__}; use our group form instead (e.g. "
                                f"criterion l2 with scope 'group')")
        imp = self.tp_importance(group)
        if imp is None:
            raise ArgumentError(f"{self.name}: Torch-Pruning scored nothing in the group of a "
                                f"{type(root).__name__}")
        imp = imp.detach().double().cpu()
        if self.normalize is not None:
            imp = torch.as_tensor(normalise_scores(imp.numpy(), self.normalize))
        return imp


def make_importance(name: str, options: Mapping[str, Any] | None = None, *, aggregate: str = "mean",
                    quaternion_mode: str = "aggregate", scope: str | None = None,
                    group_reduction: str = "mean", normalize: str | None = None
                    ) -> CriterionImportance | ActiveImportance | TorchPruningImportance:
    """The importance for criterion `name`: a weight criterion, Torch-Pruning's group importance,
    or an active one (calibrate it)."""
    try:
        info = describe_criterion(name)
    except ValueError as exc:
        raise ArgumentError(f"`criterion`: {exc}") from None
    if info.torch_pruning:
        if scope == "root" or quaternion_mode != "aggregate":
            raise ArgumentError(f"{name} is Torch-Pruning's group importance: `scope` 'root' and "
                                f"`quaternion_mode` do not apply")
        return TorchPruningImportance(name, options, group_reduction=group_reduction,
                                      normalize=normalize)
    common = {"aggregate": aggregate, "scope": scope, "group_reduction": group_reduction,
              "normalize": normalize}
    if info.inputs == "weights":
        try:
            return CriterionImportance(name, options, quaternion_mode=quaternion_mode, **common)
        except ArgumentError:
            raise
        except ValueError as exc:  # the registry names the criterion and the option
            raise ArgumentError(str(exc)) from None
    if quaternion_mode != "aggregate":
        raise ArgumentError(f"{name} is an active criterion: it scores real output channels, so "
                            f"only `quaternion_mode` 'aggregate' applies")
    return ActiveImportance(name, options, **common)
