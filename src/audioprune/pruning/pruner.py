"""Prune any nn.Module in memory: score filters, plan how many go, remove them for real.

``prune(model, example_inputs, "wdc", ratio=0.5)`` is the public entry point
(``audioprune.prune``); :class:`Pruner` is the same machinery in steps, for callers that fine-tune
between rounds themselves (the run-directory layer, audioprune.runs.prune, is one). Nothing here knows run
directories, datasets, the CLI or the model registry: a model, example inputs, optionally a
forward function, calibration batches and a loss.

Each call that removes filters appends to a pruning record kept on the model (removed unit
indices per layer and step, numbered as the layer was at that step, plus the example inputs'
shapes), which :func:`audioprune.pruning.record.save_pruned` writes beside the weights so that
``load_pruned`` can replay it on a freshly built model.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from audioprune.errors import ArgumentError, ArgumentTypeError
from audioprune.measure.counting import count, run_on_meta
from audioprune.model_inputs import ForwardFn, first_example, inputs_spec, output_tensors
from audioprune.pruning.criteria import describe_criterion, list_criteria, select_prune
from audioprune.pruning.engine import PrunableLayer, PruningGraph, out_width
from audioprune.pruning.importance import ActiveImportance, make_importance
from audioprune.pruning import calibration
from audioprune.pruning.auto import AUTO, check_no_options, choose_criterion
from audioprune.pruning.plan import PlanSpec, ResolvedPlan, resolve_plan, schedule_counts
from audioprune.pruning.sensitivity import SensitivityCurve, layer_sensitivity

log = logging.getLogger("audioprune.prune")

__all__ = ["PruneResult", "Pruner", "default_loss", "prune", "pruning_record"]

RECORD_ATTR = "_audioprune_pruning"
QUATERNION_OPTIONS = ("auto", "aggregate", "concat")


def default_loss(outputs: Any, targets: torch.Tensor) -> torch.Tensor:
    """The loss gradient criteria read when none is given: cross-entropy for class indices,
    binary cross-entropy with logits for multi-hot targets. Needs logits as the output."""
    if not torch.is_tensor(outputs):
        raise ArgumentError("the model returns several outputs (a dict or tuple); pass "
                            "`loss_fn(outputs, targets)` saying which one the loss reads")
    if targets.dtype == torch.long:
        return torch.nn.functional.cross_entropy(outputs, targets)
    return torch.nn.functional.binary_cross_entropy_with_logits(outputs, targets.float())


def pruning_record(model: nn.Module) -> dict[str, Any] | None:
    """The pruning record audioprune keeps on a model it pruned (None if never pruned by it)."""
    return getattr(model, RECORD_ATTR, None)


@dataclass
class PruneResult:
    """What :func:`prune` did. Counts are per example of `example_inputs` (its first item)."""

    model: nn.Module
    criterion: str
    macs_before: int
    macs_after: int
    params_before: int
    params_after: int
    widths_before: dict[str, int]  # real output channels of each prunable layer
    widths_after: dict[str, int]
    removed: dict[str, list[int]]  # unit indices per layer, numbered as in the model given
    units: dict[str, int]  # real channels per unit (4 for quaternion layers)
    plan: dict[str, Any]
    rounds: list[dict[str, list[int]]] = field(default_factory=list)  # as numbered at each round

    @property
    def macs_ratio(self) -> float:
        return self.macs_after / self.macs_before if self.macs_before else 1.0

    @property
    def params_ratio(self) -> float:
        return self.params_after / self.params_before if self.params_before else 1.0

    def summary(self) -> str:
        layers = ", ".join(f"{n} {self.widths_before[n]}->{self.widths_after[n]}"
                           for n in self.removed if self.removed[n])
        return (f"{self.criterion}: params {self.params_before:,} -> {self.params_after:,} "
                f"({100 * (1 - self.params_ratio):.1f}% fewer), MACs {self.macs_before:,} -> "
                f"{self.macs_after:,} ({100 * (1 - self.macs_ratio):.1f}% fewer); "
                f"{layers or 'nothing removed'}")


class Pruner:
    """Prune `model` in place, step by step (see :func:`prune` for the arguments)."""

    def __init__(self, model: nn.Module, example_inputs: Any, criterion: str = "wdc", *,
                 forward_fn: ForwardFn | str | None = None,
                 ignored_layers: Iterable[str | nn.Module] = (),
                 protect_outputs: bool = True, protect_frozen: bool = True,
                 quaternion: str = "auto", aggregate: str = "mean", scope: str | None = None,
                 group_reduction: str = "mean",
                 criterion_options: Mapping[str, Any] | None = None,
                 calibration_data: Iterable[Any] | None = None,
                 calibration_forward: ForwardFn | None = None,
                 loss_fn: Callable[[Any, Any], torch.Tensor] | None = None) -> None:
        if not isinstance(model, nn.Module):
            raise ArgumentTypeError(f"`model` must be a torch.nn.Module, got {type(model).__name__}")
        if not isinstance(criterion, str):
            raise ArgumentTypeError(f"`criterion` must be a name (see audioprune.list_criteria()), "
                                f"got {type(criterion).__name__}")
        if quaternion not in QUATERNION_OPTIONS:
            raise ArgumentError(f"unknown `quaternion` {quaternion!r}; choose from "
                                f"{', '.join(QUATERNION_OPTIONS)}")
        if isinstance(ignored_layers, (str, nn.Module)):
            ignored_layers = [ignored_layers]
        self.model = model
        self.example_inputs = example_inputs
        self.forward_fn = forward_fn
        self.ignored_layers = list(ignored_layers)
        self.protect = {"protect_outputs": protect_outputs, "protect_frozen": protect_frozen}
        self.importance = make_importance(
            criterion, criterion_options, aggregate=aggregate,
            quaternion_mode="aggregate" if quaternion == "auto" else quaternion,
            scope=scope, group_reduction=group_reduction)
        self.criterion = criterion
        self.calibration_forward = calibration_forward
        self.loss_fn = loss_fn
        self._batches: list[Any] | None = None
        if calibration_data is not None:  # active criteria, and sensitivity allocation
            n = getattr(self.importance, "batches", calibration.DEFAULT_BATCHES)
            self._batches = list(itertools.islice(iter(calibration_data), n))
            if not self._batches:
                raise ArgumentError("`calibration_data` yielded no batch")
        self.graph = self._trace()

    @property
    def active(self) -> bool:
        return isinstance(self.importance, ActiveImportance)

    def _trace(self) -> PruningGraph:
        return PruningGraph(self.model, self.example_inputs, self.forward_fn, self.ignored_layers,
                            **self.protect)

    def layers(self) -> dict[str, PrunableLayer]:
        return self.graph.layers()

    def _calibrate(self) -> None:
        assert isinstance(self.importance, ActiveImportance)
        if self._batches is None:
            raise ArgumentError(f"{self.criterion} is an active criterion: pass "
                                f"`calibration_data` (an iterable of training batches: inputs, "
                                f"or (inputs, targets))")
        loss = self.loss_fn
        if loss is None and self.importance.inputs == "gradients":
            loss = default_loss
        self.importance.calibrate(self.graph, self._batches, loss,
                                  self.calibration_forward or self.graph.forward)

    def plan(self, spec: PlanSpec) -> ResolvedPlan:
        """How many units to remove from each layer for `spec`, on the model as it is now."""
        spec.validate()
        if (spec.global_ranking or spec.allocation == "sensitivity") and self.active:
            self._calibrate()
        return resolve_plan(spec, self.graph, scores=lambda names: self.scores(names),
                            sensitivity=self.sensitivity)

    def sensitivity(self, names: Iterable[str]) -> dict[str, SensitivityCurve]:
        """Each named layer's loss rise on the calibration batches as it alone loses its
        criterion-first units (pruning/sensitivity.py), the model left as it is."""
        if self._batches is None:
            raise ArgumentError("`allocation` 'sensitivity' measures the loss: pass "
                                "`calibration_data` (batches of (inputs, targets))")
        names = list(names)
        layers = self.graph.layers()
        scores = self.scores(names)
        module_names = {m: n for n, m in self.model.named_modules()}
        ignored = [module_names.get(x, x) if isinstance(x, nn.Module) else x
                   for x in self.ignored_layers]

        def prune_copy(clone: nn.Module, name: str, idxs: list[int]) -> None:
            PruningGraph(clone, self.example_inputs, self.forward_fn, ignored,
                         **self.protect).prune({name: idxs})

        return layer_sensitivity(self.model, scores, {n: layers[n].n_units for n in names},
                                 prune_copy, self._batches, self.loss_fn or default_loss,
                                 self.calibration_forward or self.graph.forward)

    def scores(self, names: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """Per-unit scores (higher = pruned first) of the named layers, as the model is now."""
        try:
            return self.graph.scores(self.importance, names)
        except ArgumentError:
            raise
        except ValueError as exc:
            raise ArgumentError(f"`criterion` {self.criterion}: {exc}") from None

    def step(self, counts: Mapping[str, int]) -> dict[str, list[int]]:
        """Remove counts[name] units from each layer, the criterion's top-scored ones; return the
        removed indices, numbered as the layers were before this step. Active criteria are
        calibrated first. The graph traced at construction stays valid across steps (Torch-
        Pruning updates it as it prunes; fine-tuning changes weights, not structure): a model
        whose modules were replaced since needs a new Pruner."""
        names = [n for n, c in counts.items() if c > 0]
        if self.active:
            self._calibrate()
        layers = self.graph.layers()
        scores = self.scores(names)
        removal = {n: [int(i) for i in select_prune(scores[n], counts[n])] for n in names}
        self.graph.prune(removal)
        _append_record(self.model, self.example_inputs, self.forward_fn,
                       {n: layers[n].unit for n in removal}, removal)
        return removal


def _append_record(model: nn.Module, example_inputs: Any, forward_fn: Any,
                   units: Mapping[str, int], removal: Mapping[str, list[int]]) -> None:
    record = pruning_record(model)
    if record is None:
        record = {"format": "audioprune-pruning", "version": 1,
                  "example_inputs": inputs_spec(example_inputs),
                  "forward_fn": forward_fn if isinstance(forward_fn, str) else None,
                  "steps": []}
        object.__setattr__(model, RECORD_ATTR, record)
    record["steps"].append({"units": dict(units), "removed": {k: list(v) for k, v in removal.items()}})


def _prunable_widths(graph: PruningGraph) -> dict[str, int]:
    return {name: layer.width for name, layer in graph.layers().items()}


def prune(model: nn.Module, example_inputs: Any, criterion: str = "wdc", *,
          ratio: float | None = None, ratios: Mapping[str, float] | None = None,
          target_macs: int | float | str | None = None,
          target_params: int | float | str | None = None,
          budget: str | None = None, precision: str = "int8", clip_seconds: float | None = None,
          round_to: int | None = None, layers: Iterable[str] | None = None,
          ignored_layers: Iterable[str | nn.Module] = (),
          global_ranking: bool = False, normalise: str = "minmax",
          allocation: str = "uniform", iterative: int = 1,
          finetune: Callable[[nn.Module, int], None] | None = None,
          calibration_data: Iterable[Any] | None = None,
          loss_fn: Callable[[Any, Any], torch.Tensor] | None = None,
          forward_fn: ForwardFn | str | None = None,
          quaternion: str = "auto", aggregate: str = "mean", scope: str | None = None,
          group_reduction: str = "mean", protect_outputs: bool = True,
          protect_frozen: bool = True, **criterion_options: Any) -> PruneResult:
    """Prune `model` IN PLACE: remove the filters `criterion` ranks first, for real.

    model            any nn.Module (convs, linears, quaternion layers; residual adds, grouped and
                     depthwise convs, squeeze-excitation, attention heads: Torch-Pruning's
                     dependency graph keeps coupled layers consistent)
    example_inputs   what the model takes (a tensor, a tuple of tensors or a dict), used to trace
                     it and to count MACs per example (its first item)
    criterion        a name from ``audioprune.list_criteria()``: graph centralities (wdc,
                     betweenness, ...), similarity, norms (l1, opnorm, fpgm, ...), random,
                     Torch-Pruning's group importances (tp-magnitude, tp-lamp, tp-fpgm), or
                     active ones (hrank, activation, taylor) that need `calibration_data`; or
                     "auto": what our cross-validated measurements support at this budget
                     (taylor keeping >= 40% of the MACs, tp-magnitude below or without
                     `calibration_data`; see audioprune.pruning.auto), recorded in plan["auto"]
    ratio            the fraction of the filters (units) removed from every selected layer, or
    ratios           {layer name / glob pattern / C<k> alias: fraction}, or
    target_macs      a MAC budget: a count (30_000_000, "30M") or a fraction (0.5) of the
                     model's own; or
    target_params    a parameter budget, likewise ("128k", 0.3); or
    budget           a challenge's limits at once: "dcase2024" (128 kB of parameters at
                     `precision`, 30 MMACs per second of audio; also 2022, 2023, 2025) or
                     "params_bytes=128k,macs=30M"; `clip_seconds` says how much audio one
                     example holds (an audioprune AudioClassifier knows its own)
    round_to         every pruned layer keeps a multiple of this many units (e.g. 16: the fp32
                     lanes of AVX-512; see audioprune.measure.blocking), so the MACs saved are
                     time saved
    layers           the layers to prune (names, patterns such as 'block4.*', aliases C7-C12);
                     default every prunable layer
    ignored_layers   layers (names or modules) whose outputs are never pruned; model outputs
                     and frozen layers are left alone anyway (`protect_outputs`,
                     `protect_frozen`)
    global_ranking   rank the filters of all selected layers together (scores normalised per
                     layer by `normalise`: "minmax" or "zscore")
    allocation       how a budget is split between layers: "uniform" (one ratio, then filters
                     given back while it holds) or "sensitivity" (each layer's loss rise on
                     `calibration_data` when it alone is pruned; every layer pruned up to one
                     loss tolerance, searched to meet the budget)
    iterative        K rounds, each re-scoring the model; `finetune(model, round)` runs after
                     every round but the last (your own training loop)
    calibration_data batches (inputs, or (inputs, targets) for gradient criteria) for the active
                     criteria; `loss_fn(outputs, targets)` the loss taylor differentiates
                     (default cross-entropy / BCE-with-logits on a tensor output)
    forward_fn       how to call the model on `example_inputs` and calibration batches:
                     a callable (model, inputs) or a method name such as "classify"
    quaternion       "auto" (= "aggregate"): quaternion layers are scored per component r, i, j,
                     k and combined by `aggregate`; "concat": one score per quaternion
    scope            "root" (the layer's own filters, the papers' setting; default for weight
                     criteria) or "group" (every layer of the dependency group, as
                     Torch-Pruning's group importances; default for taylor), reduced by
                     `group_reduction` ("mean", "sum", "max", "min")
    **criterion_options  the criterion's own options (e.g. paper_compat=True, approx="knn")

    Returns a :class:`PruneResult` (MACs/params before and after, per-layer widths, the removed
    indices). Raises ArgumentError (a ValueError) naming the argument at fault.
    """
    if isinstance(iterative, bool) or not isinstance(iterative, int) or iterative < 1:
        raise ArgumentError(f"`iterative` needs at least 1 round, got {iterative!r}")
    if finetune is not None and not callable(finetune):
        raise ArgumentTypeError("`finetune` must be a callable (model, round) -> None")
    spec = PlanSpec(ratio=ratio, ratios=dict(ratios) if ratios is not None else None,
                    target_macs=target_macs, target_params=target_params, budget=budget,
                    precision=precision, clip_seconds=clip_seconds, round_to=round_to,
                    layers=list(layers) if layers is not None and not isinstance(layers, str)
                    else layers, global_ranking=global_ranking, normalise=normalise,
                    allocation=allocation).validate()
    auto = None
    if criterion == AUTO:
        check_no_options(criterion_options)
        auto = choose_criterion(model, example_inputs, spec, calibration=calibration_data is not None,
                                forward_fn=forward_fn, ignored_layers=ignored_layers,
                                protect_outputs=protect_outputs, protect_frozen=protect_frozen)
        criterion = auto.criterion
    if calibration_data is None and allocation == "sensitivity":
        raise ArgumentError("`allocation` 'sensitivity' measures the loss: pass "
                            "`calibration_data` (an iterable of (inputs, targets) batches)")
    if calibration_data is None and criterion in list_criteria() and \
            describe_criterion(criterion).inputs != "weights":
        raise ArgumentError(f"{criterion} is an active criterion: pass `calibration_data` (an "
                            f"iterable of training batches: inputs, or (inputs, targets))")
    pruner = Pruner(model, example_inputs, criterion, forward_fn=forward_fn,
                    ignored_layers=ignored_layers, protect_outputs=protect_outputs,
                    protect_frozen=protect_frozen, quaternion=quaternion, aggregate=aggregate,
                    scope=scope, group_reduction=group_reduction,
                    criterion_options=criterion_options, calibration_data=calibration_data,
                    loss_fn=loss_fn)
    before = count(model, example_inputs, pruner.graph.forward)
    widths_before = _prunable_widths(pruner.graph)
    plan = pruner.plan(spec)
    units = {n: pruner.graph.layers()[n].unit for n in plan.counts}
    index_map = {n: list(range(k)) for n, k in plan.n_units.items()}  # now -> as given
    rounds: list[dict[str, list[int]]] = []
    prev = {n: 0 for n in plan.counts}
    for k, cumulative in enumerate(schedule_counts(plan.counts, plan.n_units, iterative), start=1):
        removal = pruner.step({n: cumulative[n] - prev[n] for n in cumulative})
        rounds.append(removal)
        for name, idxs in removal.items():
            gone = set(idxs)
            index_map[name] = [p for i, p in enumerate(index_map[name]) if i not in gone]
        prev = cumulative
        if finetune is not None and k < iterative:
            finetune(model, k)
    after = count(model, example_inputs, pruner.graph.forward)
    widths_after = _current_widths(model, widths_before)
    removed = {n: sorted(set(range(plan.n_units[n])) - set(index_map[n])) for n in plan.counts}
    _check_outputs(model, example_inputs, pruner.graph.forward)
    return PruneResult(model=model, criterion=criterion, macs_before=before.macs,
                       macs_after=after.macs, params_before=before.params,
                       params_after=after.params, widths_before=widths_before,
                       widths_after=widths_after, removed=removed, units=units,
                       plan={**plan.to_dict(), "criterion": pruner.importance.describe(),
                             **({"auto": auto.to_dict()} if auto else {})},
                       rounds=rounds)


def _current_widths(model: nn.Module, names: Iterable[str]) -> dict[str, int]:
    modules = dict(model.named_modules())
    return {n: out_width(modules[n]) for n in names}


@torch.no_grad()
def _check_outputs(model: nn.Module, example_inputs: Any, forward: ForwardFn) -> None:
    """The pruned model still runs (a broken dependency shows up here, not in the user's loop);
    on a meta-device copy where it can, so no arithmetic is spent on it."""
    def run(m: nn.Module, x: Any) -> Any:
        was_training = m.training
        m.eval()
        try:
            return forward(m, x)
        finally:
            m.train(was_training)

    if not output_tensors(run_on_meta(model, first_example(example_inputs), forward, run)):
        raise RuntimeError("the pruned model returned no tensor")

