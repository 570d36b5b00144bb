"""The structural engine: the one module (with quaternion_pruner.py) that knows Torch-Pruning.

Torch-Pruning's DependencyGraph traces the model once and then removes channels for real, keeping
every coupled layer consistent: the layer's BN, the next layer's input channels, residual adds, and
the input of the classifier (through flattens: dcase21net's fc1 sees conv3's channels x mel
positions, and pruning conv3 channel c removes fc1's columns c*P .. c*P+P-1).

How it is used here:

* Tracing. The model BODY is traced: example features (1, C, frames, mels) of the model's clip
  length are fed through ``model.classify``; the log-mel front end (torch.stft) and SpecAugment
  never enter the graph, so they are neither traced nor pruned. The clip-length input matters:
  the flatten in front of dcase21net's fc1 maps channels to mel positions.
* Prunable layers are the roots of Torch-Pruning's groups among conv / linear / quaternion
  conv / quaternion linear layers, in model order, minus the classifier (``model.classifier_name``)
  and any group that would change the classifier's output. A group may couple several layers
  (a residual add); it is named after its root and the others are listed as ``coupled``.
* Quaternion layout. A layer is pruned by whole quaternions (unit = 4 real channels
  {q, q+O, q+2O, q+3O}) when it is a quaternion layer, or when any layer of its group is (e.g. a
  real conv feeding a QConv2d). Filter index q then means quaternion q.
* Criteria plug in as Torch-Pruning importances: :class:`CriterionImportance` calls one of our
  criteria (``audioprune.prune.criteria``) on the group's root layer and returns one importance
  per real channel of the root with Torch-Pruning's sign convention (LOWEST importance pruned
  first), i.e. minus our score (our convention: HIGHEST score pruned first). Any other
  ``tp.importance.Importance`` works in its place.
* Selection is ours, not Torch-Pruning's high-level pruner: :meth:`PruningGraph.prune` removes
  exactly the filter indices it is given, so which filters go is decided by the criterion and the
  plan (plan.py), and never more than ``n - 1`` filters of a layer (every layer keeps >= 1 filter,
  >= 1 quaternion for quaternion layers).

Torch-Pruning notes (1.6.1): its tracer maps a module by the grad_fn of its output, so the
quaternion layers run as one autograd Function each (nn/quaternion.py) and need custom pruning
functions (quaternion_pruner.py); the QBatchNorm2d's internal ops appear as element-wise nodes,
which is harmless. ``DependencyGraph._trace`` leaves the model in eval mode; we restore the mode.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch_pruning as tp
from torch import nn

from audioprune.nn.quaternion import QConv1d, QConv2d, QLinear, is_quaternion
from audioprune.prune import calibration
from audioprune.prune.criteria import describe_criterion, get_criterion
from audioprune.prune.criteria.active import ACTIVATION_CRITERIA, taylor_scores
from audioprune.prune.criteria.representatives import representatives
from audioprune.prune.quaternion_pruner import QUATERNION_PRUNERS, real_channels_of

log = logging.getLogger("audioprune.prune")

__all__ = [
    "AGGREGATES",
    "ActiveImportance",
    "QUATERNION_MODES",
    "CriterionImportance",
    "PrunableLayer",
    "PruningGraph",
    "aggregate_components",
    "build_graph",
    "group_importance",
    "make_importance",
]

ROOT_TYPES: tuple[type, ...] = (nn.modules.conv._ConvNd, nn.Linear, QConv1d, QConv2d, QLinear)
_QUATERNION_WEIGHTS = (QConv1d, QConv2d, QLinear)

AGGREGATES = ("mean", "max", "min", "norm")
QUATERNION_MODES = ("aggregate", "concat")


# ------------------------------------------------------------------------------------ importance


def aggregate_components(scores: np.ndarray, how: str) -> np.ndarray:
    """Combine per-component scores (4, O) into one score per quaternion (O,), OUR convention.

    mean  the authors' choice (QCNN paper: l1 / FPGM / operator-norm averaged over r, i, j, k)
    max   a quaternion is as prunable as its most prunable component
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
    raise ValueError(f"unknown quaternion aggregate {how!r}; choose from {', '.join(AGGREGATES)}")


def _weight_components(module: nn.Module, quaternion_layout: bool) -> list[torch.Tensor]:
    """One weight tensor per component: [W] for a real layout; (r, i, j, k) for a quaternion layer;
    the four real-filter blocks (rows q, q+O, q+2O, q+3O) for a real layer in quaternion layout."""
    if isinstance(module, _QUATERNION_WEIGHTS):
        return [c.detach() for c in module.components()]
    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"{type(module).__name__} has no weight tensor a criterion can score")
    weight = weight.detach()
    if not quaternion_layout:
        return [weight]
    out = weight.shape[0]
    if out % 4:
        raise ValueError(f"a quaternion layout needs a multiple of 4 filters, got {out}")
    return list(weight.reshape(4, out // 4, *weight.shape[1:]).unbind(0))


class CriterionImportance(tp.importance.Importance):
    """Our criterion as a Torch-Pruning importance.

    ``imp(group)`` -> a float tensor with one value per index of ``group[0]`` (the root layer's
    real output channels); LOWER = pruned first, as Torch-Pruning expects: it is minus our score.
    :meth:`unit_scores` gives the same ranking in our convention, one score per filter (per
    quaternion in quaternion layout).

    Quaternion layout (``quaternion_mode``):
      aggregate (default)  the criterion scores each component r, i, j, k as a layer of its own and
                           the four scores are combined by ``aggregate`` (mean by default). This is
                           what the QCNN authors did, keeps every criterion's published meaning,
                           and works for all criteria alike, so it is the default.
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
                 aggregate: str = "mean", quaternion_mode: str = "aggregate") -> None:
        self.name = name
        self.options = dict(options or {})
        self.criterion = get_criterion(name, **self.options)  # validates name and options
        if aggregate not in AGGREGATES:
            raise ValueError(f"unknown quaternion aggregate {aggregate!r}; choose from "
                             f"{', '.join(AGGREGATES)}")
        if quaternion_mode not in QUATERNION_MODES:
            raise ValueError(f"unknown quaternion mode {quaternion_mode!r}; choose from "
                             f"{', '.join(QUATERNION_MODES)}")
        self.aggregate = aggregate
        self.quaternion_mode = quaternion_mode
        self._uses_representatives = "representative" in describe_criterion(name).options

    def describe(self) -> dict[str, Any]:
        return {"criterion": self.name, "options": self.options, "aggregate": self.aggregate,
                "quaternion_mode": self.quaternion_mode}

    def unit_scores(self, module: nn.Module, quaternion_layout: bool) -> np.ndarray:
        """One score per filter of `module` (per quaternion in quaternion layout), higher = prune first."""
        comps = _weight_components(module, quaternion_layout)
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

    def __call__(self, group: Any) -> torch.Tensor:
        return group_importance(self.unit_scores, group)


class ActiveImportance(tp.importance.Importance):
    """An active criterion (hrank, activation, taylor) as a Torch-Pruning importance.

    Unlike :class:`CriterionImportance` it needs data: :meth:`calibrate` runs calibration batches
    through the model (again after every pruning round: the maps change) and stores one score per
    real output channel of every prunable layer; scoring a group then reads them. In quaternion
    layout the four real channels of a quaternion (q, q+O, q+2O, q+3O: its r, i, j, k outputs)
    are combined by ``aggregate`` (mean by default), as for the passive criteria.

    taylor uses Torch-Pruning's GroupTaylorImportance (weights x gradients over the whole group:
    the layer, its BN and the next layer's inputs) for real layers; Torch-Pruning skips the
    quaternion layers (custom modules are outside its target types and it would score nothing),
    so a QConv2d / QLinear root is scored by ``criteria.active.taylor_scores`` on each of its
    r, i, j, k weights.
    """

    def __init__(self, name: str, options: Mapping[str, Any] | None = None, *,
                 aggregate: str = "mean") -> None:
        info = describe_criterion(name)
        if info.inputs == "weights":
            raise ValueError(f"{name!r} is a passive criterion; use CriterionImportance")
        self.name, self.inputs = name, info.inputs
        self.options = dict(options or {})
        unknown = sorted(set(self.options) - set(info.options))
        if unknown:
            raise ValueError(f"criterion {name!r} has no option {', '.join(unknown)} "
                             f"(allowed: {', '.join(info.options)})")
        self.batches = int(self.options.get("batches", calibration.DEFAULT_BATCHES))
        if self.batches < 1:
            raise ValueError(f"{name}: batches must be at least 1, got {self.batches}")
        if aggregate not in AGGREGATES:
            raise ValueError(f"unknown quaternion aggregate {aggregate!r}; choose from "
                             f"{', '.join(AGGREGATES)}")
        self.aggregate = aggregate
        self._channel_scores: dict[nn.Module, np.ndarray] = {}
        self._unscored: dict[nn.Module, str] = {}  # hrank: layers without 2-D feature maps

    def describe(self) -> dict[str, Any]:
        return {"criterion": self.name, "options": self.options, "aggregate": self.aggregate,
                "quaternion_mode": "aggregate", "calibration_batches": self.batches}

    def calibrate(self, graph: PruningGraph, batches: Sequence[calibration.Batch],
                  loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
        """Record this criterion's per-channel scores for every prunable layer of `graph`."""
        if not batches:
            raise ValueError(f"{self.name} needs calibration batches (training data)")
        layers = graph.layers()
        model = graph.model
        if self.inputs == "activations":
            forward = lambda m, x: m.classify(x) if hasattr(m, "classify") else m(x)
            scored = {n: lay.module for n, lay in layers.items()
                      if self.name != "hrank" or isinstance(lay.module, (nn.Conv2d, QConv2d))}
            self._unscored = {lay.module: n for n, lay in layers.items() if n not in scored}
            taps = calibration.feature_taps(model, scored, graph.example_inputs, forward)
            fn = ACTIVATION_CRITERIA[self.name]
            scores = calibration.record_feature_scores(model, taps, batches, fn)
            self._channel_scores = {layers[n].module: s for n, s in scores.items()}
            return
        calibration.accumulate_gradients(model, batches, loss_fn)
        try:
            tp_taylor = tp.importance.GroupTaylorImportance()
            self._channel_scores = {}
            for name, layer in layers.items():
                root = layer.module
                if isinstance(root, _QUATERNION_WEIGHTS):
                    per = [taylor_scores(w, w.grad) for w in root.components()]
                    self._channel_scores[root] = np.concatenate(per)  # channel q + c*O
                    continue
                imp = tp_taylor(graph.group(name, layers))
                if imp is None:  # nothing in the group Torch-Pruning can score
                    self._channel_scores[root] = taylor_scores(root.weight, root.weight.grad)
                else:
                    self._channel_scores[root] = -imp.detach().cpu().double().numpy()
        finally:
            calibration.clear_gradients(model.parameters())

    def unit_scores(self, module: nn.Module, quaternion_layout: bool) -> np.ndarray:
        if module in self._unscored:
            raise ValueError(f"hrank ranks 2-D feature maps; {self._unscored[module]} is not a 2-D "
                             f"conv layer: leave it out with --layers (e.g. --layers 'conv*')")
        if module not in self._channel_scores:
            raise RuntimeError(f"{self.name}: layer not calibrated; call calibrate() with data "
                               f"after every pruning step")
        s = self._channel_scores[module]
        return aggregate_components(s.reshape(4, -1), self.aggregate) if quaternion_layout else s

    def __call__(self, group: Any) -> torch.Tensor:
        return group_importance(self.unit_scores, group)


def make_importance(name: str, options: Mapping[str, Any] | None = None, *, aggregate: str = "mean",
                    quaternion_mode: str = "aggregate") -> CriterionImportance | ActiveImportance:
    """The importance for criterion `name`: passive (weights only) or active (needs calibrate)."""
    if describe_criterion(name).inputs == "weights":
        return CriterionImportance(name, options, aggregate=aggregate, quaternion_mode=quaternion_mode)
    if quaternion_mode != "aggregate":
        raise ValueError(f"{name} is an active criterion: it scores real output channels, so only "
                         f"--quaternion-mode aggregate applies")
    return ActiveImportance(name, options, aggregate=aggregate)


def group_importance(unit_scores: Callable[[nn.Module, bool], np.ndarray], group: Any) -> torch.Tensor:
    """Torch-Pruning importance (lower = pruned first) of the group's root channels from
    per-filter scores in our convention; in quaternion layout channel q + c*O belongs to unit q."""
    root = group[0].dep.target.module
    quaternion_layout = group_is_quaternion(group)
    units = unit_scores(root, quaternion_layout)
    per_channel = np.tile(units, 4) if quaternion_layout else units
    idxs = list(group[0].idxs) if len(group[0].idxs) else range(per_channel.size)
    return -torch.as_tensor(per_channel[list(idxs)], dtype=torch.float64)


def group_is_quaternion(group: Any) -> bool:
    """True when any layer in the Torch-Pruning group uses the quaternion channel layout."""
    return any(is_quaternion(dep.target.module) for dep, _ in group
               if isinstance(dep.target.module, nn.Module))


# ------------------------------------------------------------------------------------ the graph


@dataclass
class PrunableLayer:
    """One prunable layer (the root of a Torch-Pruning group)."""

    name: str
    module: nn.Module
    width: int  # real output channels now
    quaternion: bool  # pruned by whole quaternions (4 real channels)
    kind: str  # "conv" or "linear"
    coupled: tuple[str, ...] = field(default_factory=tuple)  # other layers pruned with it

    @property
    def unit(self) -> int:
        return 4 if self.quaternion else 1

    @property
    def n_units(self) -> int:
        """Filters (quaternions in quaternion layout) the layer has."""
        return self.width // self.unit


def _out_width(module: nn.Module) -> int:
    for attr in ("out_channels", "out_features"):
        if hasattr(module, attr):
            return int(getattr(module, attr))
    raise ValueError(f"{type(module).__name__} has no out_channels / out_features")


def default_example_inputs(model: nn.Module) -> torch.Tensor:
    """Features (1, C, frames, mels) of the model's clip length: what the body sees in use."""
    fe = model.frontend_cfg
    n = fe.clip_samples or fe.sample_rate
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    gen = torch.Generator().manual_seed(0)
    return torch.randn(1, *model.feature_shape(n), generator=gen).to(device)


class PruningGraph:
    """A traced model and the Torch-Pruning dependency graph over its body.

    ``PruningGraph(model)`` traces an AudioClassifier through ``model.classify`` with features of
    its clip length; pass ``example_inputs`` / ``forward_fn`` for anything else. The classifier
    (``model.classifier_name``, or ``protect``) is never pruned.
    """

    def __init__(self, model: nn.Module, example_inputs: Any = None,
                 forward_fn: Callable[[nn.Module, Any], torch.Tensor] | None = None,
                 protect: Iterable[str] = ()) -> None:
        self.model = model
        if example_inputs is None:
            example_inputs = default_example_inputs(model)
        if forward_fn is None and hasattr(model, "classify"):
            forward_fn = lambda m, x: m.classify(x)
        self.example_inputs = example_inputs
        self._names = {mod: name for name, mod in model.named_modules()}
        modules = dict(model.named_modules())
        protected = set(protect)
        classifier = getattr(model, "classifier_name", None)
        if classifier:
            protected.add(classifier)
        missing = sorted(p for p in protected if p not in modules)
        if missing:
            raise ValueError(f"protected layer(s) {missing} not found in the model")
        self.protected = sorted(protected)
        self._ignored = [modules[p] for p in self.protected]
        was_training = model.training
        try:
            with warnings.catch_warnings(), torch.enable_grad():
                warnings.simplefilter("ignore")  # "unwrapped parameters" notes about e.g. bn0
                self.DG = tp.DependencyGraph().build_dependency(
                    model, example_inputs=example_inputs, forward_fn=forward_fn,
                    customized_pruners=dict(QUATERNION_PRUNERS), verbose=False)
        finally:
            model.train(was_training)

    # -- inspection

    def layers(self) -> dict[str, PrunableLayer]:
        """The prunable layers now, in model order (a fresh view after each prune)."""
        found: dict[str, PrunableLayer] = {}
        for group in self.DG.get_all_groups(ignored_layers=self._ignored,
                                            root_module_types=ROOT_TYPES):
            root = group[0].dep.target.module
            name = self._names[root]
            coupled = []
            for dep, _ in group:
                mod = dep.target.module
                if (mod is not root and isinstance(mod, ROOT_TYPES)
                        and self.DG.is_out_channel_pruning_fn(dep.handler)):
                    coupled.append(self._names[mod])
            kind = "linear" if isinstance(root, (nn.Linear, QLinear)) else "conv"
            found[name] = PrunableLayer(name, root, _out_width(root), group_is_quaternion(group),
                                        kind, tuple(sorted(set(coupled))))
        order = {name: i for i, name in enumerate(self._names.values())}
        return dict(sorted(found.items(), key=lambda kv: order[kv[0]]))

    def group(self, name: str, layers: Mapping[str, PrunableLayer] | None = None) -> Any:
        """The Torch-Pruning group of layer `name` with all its output channels."""
        layers = self.layers() if layers is None else layers
        if name not in layers:
            raise KeyError(f"{name!r} is not a prunable layer; prunable: {', '.join(layers)}")
        layer = layers[name]
        pruner = self.DG.get_pruner_of_module(layer.module)
        return self.DG.get_pruning_group(layer.module, pruner.prune_out_channels,
                                         list(range(layer.width)))

    def scores(self, importance: tp.importance.Importance,
               names: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """Per-filter scores in OUR convention (higher = prune first) from a Torch-Pruning importance.

        In quaternion layout the importance covers the 4 real channels of each quaternion; the
        score of quaternion q is read from channel q (CriterionImportance gives all four the same
        value; any other importance is averaged over the four, as Torch-Pruning does).
        """
        layers = self.layers()
        out: dict[str, np.ndarray] = {}
        for name in (names if names is not None else layers):
            layer = layers[name]
            imp = importance(self.group(name, layers))
            imp = np.asarray(imp.detach().cpu().double() if torch.is_tensor(imp) else imp,
                             dtype=np.float64)
            if imp.shape != (layer.width,):
                raise ValueError(f"importance for {name} has shape {imp.shape}, expected "
                                 f"({layer.width},)")
            if layer.quaternion:
                imp = imp.reshape(4, -1).mean(axis=0)
            out[name] = -imp
        return out

    # -- pruning

    def predicted_widths(self, counts: Mapping[str, int],
                         widths: Mapping[str, int]) -> dict[str, int]:
        """`widths` (name -> real out width of every conv / linear layer) after removing
        counts[name] filters from each named layer (coupled layers shrink along)."""
        layers = self.layers()
        new = dict(widths)
        for name, n in counts.items():
            layer = layers[name]
            for member in (name, *layer.coupled):
                if member in new:
                    new[member] = int(new[member]) - int(n) * layer.unit
        return new

    def prune(self, removal: Mapping[str, Sequence[int]]) -> dict[str, list[int]]:
        """Remove filters for real: removal[name] = filter indices of layer `name` (quaternion
        indices in quaternion layout), numbered as the layer is now. Returns the kept indices.

        Every layer keeps at least one filter: asking for all of them raises ValueError.
        """
        layers = self.layers()
        for name, idxs in removal.items():
            if name not in layers:
                raise KeyError(f"{name!r} is not a prunable layer; prunable: {', '.join(layers)}")
            layer = layers[name]
            bad = [i for i in idxs if not 0 <= int(i) < layer.n_units]
            if bad:
                raise ValueError(f"{name}: filter indices {bad[:5]} outside 0..{layer.n_units - 1}")
            if len({int(i) for i in idxs}) >= layer.n_units:
                raise ValueError(f"{name}: cannot remove all {layer.n_units} filters; every layer "
                                 f"keeps at least one")
        kept: dict[str, list[int]] = {}
        for name, idxs in removal.items():
            layer = layers[name]
            units = sorted({int(i) for i in idxs})
            kept[name] = [i for i in range(layer.n_units) if i not in set(units)]
            if not units:
                continue
            real = real_channels_of(units, layer.width) if layer.quaternion else units
            pruner = self.DG.get_pruner_of_module(layer.module)
            group = self.DG.get_pruning_group(layer.module, pruner.prune_out_channels, real)
            if not self.DG.check_pruning_group(group):
                raise ValueError(f"{name}: pruning {len(units)} filters would empty a coupled layer")
            group.prune()
            log.debug("pruned %d of %d filters of %s", len(units), layer.n_units, name)
        return kept


def build_graph(model: nn.Module, **kwargs: Any) -> PruningGraph:
    """Trace `model` (see PruningGraph) and return its dependency graph."""
    return PruningGraph(model, **kwargs)
