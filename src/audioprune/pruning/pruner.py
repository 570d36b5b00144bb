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
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from audioprune.errors import ArgumentError, ArgumentTypeError
from audioprune.measure.counting import count, run_on_meta
from audioprune.model_inputs import ForwardFn, first_example, inputs_spec, output_tensors
from audioprune.pruning import calibration
from audioprune.pruning.auto import AutoChoice, choose_criterion
from audioprune.pruning.criteria import select_prune
from audioprune.pruning.engine import PrunableLayer, PruningGraph, out_width
from audioprune.pruning.plan import Plan, ResolvedPlan, resolve_plan
from audioprune.pruning.schedule import prune_in_rounds
from audioprune.pruning.sensitivity import SensitivityCurve, layer_sensitivity
from audioprune.pruning.spec import PruneSpec

log = logging.getLogger("audioprune.prune")

__all__ = ["Plan", "PruneResult", "PruneSpec", "Pruner", "default_loss", "prune", "pruning_record"]

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
    """Prune `model` in place, step by step: the machinery of :func:`prune` for callers that
    fine-tune between rounds themselves. Built from a :class:`PruneSpec` (``Pruner.from_spec``)
    or from the same keywords as :func:`prune` (which it turns into one). The model is traced
    ONCE, here; the graph stays valid across steps (Torch-Pruning updates it as it prunes,
    fine-tuning changes weights, not structure): a model whose modules were replaced since
    needs a new Pruner."""

    def __init__(self, model: nn.Module, example_inputs: Any, criterion: str = "wdc", *,
                 forward_fn: ForwardFn | str | None = None,
                 ignored_layers: Iterable[str | nn.Module] = (),
                 protect_outputs: bool = True, protect_frozen: bool = True,
                 quaternion: str = "auto", aggregate: str = "mean", scope: str | None = None,
                 group_reduction: str = "mean",
                 criterion_options: Mapping[str, Any] | None = None,
                 calibration_data: Iterable[Any] | None = None,
                 calibration_forward: ForwardFn | None = None,
                 loss_fn: Callable[[Any, Any], torch.Tensor] | None = None,
                 plan: Plan | None = None, spec: PruneSpec | None = None) -> None:
        if not isinstance(model, nn.Module):
            raise ArgumentTypeError(f"`model` must be a torch.nn.Module, got {type(model).__name__}")
        if spec is None:
            if quaternion not in QUATERNION_OPTIONS:
                raise ArgumentError(f"unknown `quaternion` {quaternion!r}; choose from "
                                    f"{', '.join(QUATERNION_OPTIONS)}")
            spec = PruneSpec(criterion, plan, criterion_options or {},
                             scope=scope, group_reduction=group_reduction, aggregate=aggregate,
                             quaternion_mode="aggregate" if quaternion == "auto" else quaternion)
        if isinstance(ignored_layers, (str, nn.Module)):
            ignored_layers = [ignored_layers]
        self.model = model
        self.example_inputs = example_inputs
        self.forward_fn = forward_fn
        self.ignored_layers = list(ignored_layers)
        self.protect = {"protect_outputs": protect_outputs, "protect_frozen": protect_frozen}
        self.spec = spec
        self.calibration_forward = calibration_forward
        self.loss_fn = loss_fn
        self._batches: list[Any] | None = None
        if calibration_data is not None:  # active criteria, and sensitivity allocation
            self.calibrate_with(calibration_data)
        self.graph = self._trace()
        self.auto: AutoChoice | None = None  # what `auto` chose, once it is resolved
        self.criterion = spec.criterion
        self.importance: Any = None if spec.is_auto else spec.importance()

    @classmethod
    def from_spec(cls, model: nn.Module, example_inputs: Any, spec: PruneSpec,
                  **kwargs: Any) -> Pruner:
        """A Pruner for `spec` (forward_fn, ignored_layers, calibration_data, ... as keywords)."""
        if not isinstance(spec, PruneSpec):
            raise ArgumentTypeError(f"`spec` must be a PruneSpec, got {type(spec).__name__}")
        return cls(model, example_inputs, spec=spec, **kwargs)

    @property
    def active(self) -> bool:
        """The criterion reads feature maps or gradients: calibrate before each step."""
        return getattr(self.importance, "inputs", "weights") != "weights"

    def _trace(self) -> PruningGraph:
        return PruningGraph(self.model, self.example_inputs, self.forward_fn, self.ignored_layers,
                            **self.protect)

    def layers(self) -> dict[str, PrunableLayer]:
        return self.graph.layers()

    def calibrate_with(self, batches: Iterable[Any]) -> None:
        """The calibration batches active criteria and sensitivity allocation read (the first
        `batches` option's worth, default 8), given now or later (the run layer loads its data
        after planning)."""
        n = int(self.spec.options.get("batches", calibration.DEFAULT_BATCHES)) \
            if self.spec.needs_data else calibration.DEFAULT_BATCHES
        self._batches = list(itertools.islice(iter(batches), n))
        if not self._batches:
            raise ArgumentError("`calibration_data` yielded no batch")

    @property
    def calibration(self) -> list[Any] | None:
        return self._batches

    def resolve_auto(self, plan: Plan | None = None, *, calibration: bool | None = None) -> None:
        """`auto`: pick the criterion for this model and budget on the graph traced above
        (`calibration`: whether batches will be there for taylor; default: whether they are)."""
        plan = self.spec.plan if plan is None else plan
        if not self.spec.is_auto or self.auto is not None:
            return
        if plan is None:
            raise ArgumentError("`criterion` auto chooses from the budget: give a `plan`")
        ready = self._batches is not None if calibration is None else calibration
        self.auto = choose_criterion(self.graph, plan, calibration=ready)
        self.criterion = self.auto.criterion
        self.spec = self.spec.resolved(self.auto.criterion)
        self.importance = self.spec.importance()

    def _calibrate(self) -> None:
        assert self.active
        if self._batches is None:
            raise ArgumentError(f"{self.criterion} is an active criterion: pass "
                                f"`calibration_data` (an iterable of training batches: inputs, "
                                f"or (inputs, targets))")
        loss = self.loss_fn
        if loss is None and self.importance.inputs == "gradients":
            loss = default_loss
        self.importance.calibrate(self.graph, self._batches, loss,
                                  self.calibration_forward or self.graph.forward)

    def plan(self, plan: Plan | None = None, *, exact_costs: bool = False) -> ResolvedPlan:
        """How many units to remove from each layer for `plan` (default the spec's), on the
        model as it is now. Resolves `auto` first. `exact_costs`: search a budget counting
        each candidate on a pruned copy (the slow reference; the same plan)."""
        plan = self.spec.plan if plan is None else plan
        if plan is None:
            raise ArgumentError("give a `plan`, e.g. ap.Plan(ratio=0.5), here or in the spec")
        if not isinstance(plan, Plan):
            raise ArgumentTypeError(f"`plan` must be an audioprune.Plan, got {type(plan).__name__}")
        if self.importance is None:
            self.resolve_auto(plan)
        if (plan.global_ranking or plan.allocation == "sensitivity") and self.active:
            self._calibrate()
        return resolve_plan(plan, self.graph, scores=lambda names: self.scores(names),
                            sensitivity=self.sensitivity, exact_costs=exact_costs)

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
        if self.importance is None:
            raise ArgumentError("`criterion` auto chooses from the budget: call plan() first")
        try:
            return self.graph.scores(self.importance, names)
        except ArgumentError:
            raise
        except ValueError as exc:
            raise ArgumentError(f"`criterion` {self.criterion}: {exc}") from None

    def step(self, counts: Mapping[str, int]) -> dict[str, list[int]]:
        """Remove counts[name] units from each layer, the criterion's top-scored ones; return the
        removed indices, numbered as the layers were before this step. Active criteria are
        calibrated first."""
        names = [n for n, c in counts.items() if c > 0]
        if self.importance is None:
            raise ArgumentError("`criterion` auto chooses from the budget: call plan() first")
        if self.active:
            self._calibrate()
        layers = self.graph.layers()
        scores = self.scores(names)
        removal = {n: [int(i) for i in select_prune(scores[n], counts[n])] for n in names}
        self.graph.prune(removal)
        _append_record(self.model, self.example_inputs, self.forward_fn,
                       {n: layers[n].unit for n in removal}, removal)
        return removal

    def replay(self, removal: Mapping[str, list[int]]) -> None:
        """Remove exactly these units (a recorded step, numbered as the layers are now): rebuilds
        a pruned shape without scoring again, e.g. to resume a progressive prune."""
        layers = self.graph.layers()
        self.graph.prune({n: list(v) for n, v in removal.items() if v})
        _append_record(self.model, self.example_inputs, self.forward_fn,
                       {n: layers[n].unit for n in removal}, dict(removal))

    def record(self) -> dict[str, Any]:
        """The criterion as used (with what `auto` chose, when it was asked)."""
        assert self.importance is not None
        return {**self.importance.describe(), **({"auto": self.auto.to_dict()} if self.auto else {})}


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


_PLAN_KEYWORDS = ("ratio", "ratios", "target_macs", "target_params", "budget", "precision",
                  "clip_seconds", "round_to", "layers", "global_ranking", "normalise",
                  "allocation")


def prune(model: nn.Module, example_inputs: Any, criterion: str = "wdc",
          plan: Plan | None = None, *,
          ignored_layers: Iterable[str | nn.Module] = (), iterative: int = 1,
          prune_schedule: str = "geometric",
          finetune: Callable[[nn.Module, int], None] | None = None,
          calibration_data: Iterable[Any] | None = None,
          loss_fn: Callable[[Any, Any], torch.Tensor] | None = None,
          forward_fn: ForwardFn | str | None = None,
          quaternion: str = "auto", aggregate: str = "mean", scope: str | None = None,
          group_reduction: str = "mean", protect_outputs: bool = True,
          protect_frozen: bool = True, spec: PruneSpec | None = None,
          **criterion_options: Any) -> PruneResult:
    """Prune `model` IN PLACE: remove the filters `criterion` ranks first, for real::

        ap.prune(model, x, "l1", ap.Plan(target_macs=0.5))

    model            any nn.Module (convs, linears, quaternion layers; residual adds, grouped and
                     depthwise convs, squeeze-excitation, attention heads: Torch-Pruning's
                     dependency graph keeps coupled layers consistent)
    example_inputs   what the model takes (a tensor, a tuple of tensors, or a dict: one
                     positional input unless `forward_fn` says otherwise), used to trace it and
                     to count MACs per example (its first item)
    criterion        a name from ``audioprune.list_criteria()``: graph centralities (wdc,
                     betweenness, ...), similarity, norms (l1, opnorm, fpgm, ...), random,
                     Torch-Pruning's group importances (tp-magnitude, tp-taylor, tp-lamp,
                     tp-fpgm), or active ones (hrank, activation, taylor) that need
                     `calibration_data`; or "auto": what our cross-validated measurements
                     support at this budget (see audioprune.pruning.auto), recorded in
                     plan["auto"]
    plan             an :class:`audioprune.Plan`: how much, and where. One of
                     ``ratio`` (a fraction of every selected layer's filters), ``ratios``
                     ({layer / glob pattern / C<k> alias: fraction}), ``target_macs`` /
                     ``target_params`` (a count such as "30M", or a fraction of the model's own
                     such as 0.5), ``budget`` ("dcase2024": 128 kB of parameters at
                     ``precision`` and 30 MMACs per second of ``clip_seconds`` of audio); with
                     ``layers``, ``round_to`` (widths in SIMD blocks), ``global_ranking`` (+
                     ``normalise``) or ``allocation="sensitivity"`` (budgets split by each
                     layer's loss rise on `calibration_data`). The same fields as keywords of
                     this function (``ratio=0.5``) still work and warn: they are deprecated.
    ignored_layers   layers (names, glob patterns as in ``layers``, or modules) whose outputs
                     are never pruned; model outputs and frozen layers are left alone anyway
                     (`protect_outputs`, `protect_frozen`)
    iterative        K rounds, each re-scoring the model; `finetune(model, round)` runs after
                     every round but the last (your own training loop); `prune_schedule` is how the
                     pruned fraction rises: "geometric" (the same fraction of what is left each
                     round) or "cubic" (Zhu & Gupta 2017: much early, little late)
    calibration_data batches (inputs, or (inputs, targets) for gradient criteria) for the active
                     criteria; `loss_fn(outputs, targets)` the loss taylor differentiates
                     (default cross-entropy / BCE-with-logits on a tensor output)
    forward_fn       how to call the model on `example_inputs` and calibration batches:
                     a callable (model, inputs) or a method name such as "classify"; e.g.
                     ``lambda m, kw: m(**kw)`` for a forward taking keywords from a dict
                     (load_pruned replays a method name, a callable must be given again)
    quaternion       "auto" (= "aggregate"): quaternion layers are scored per component r, i, j,
                     k and combined by `aggregate`; "concat": one score per quaternion
    scope            "root" (the layer's own filters, the papers' setting; default for weight
                     criteria) or "group" (every layer of the dependency group, as
                     Torch-Pruning's group importances; default for taylor), reduced by
                     `group_reduction` ("mean", "sum", "max", "min")
    spec             a whole :class:`audioprune.pruning.spec.PruneSpec` instead of `criterion`,
                     `plan` and the scoring keywords (what the CLI and recipes pass)
    **criterion_options  the criterion's own options (e.g. paper_compat=True, approx="knn")

    Returns a :class:`PruneResult` (MACs/params before and after, per-layer widths, the removed
    indices). Raises ArgumentError (a ValueError) naming the argument at fault.
    """
    old = {k: criterion_options.pop(k) for k in _PLAN_KEYWORDS if k in criterion_options}
    if finetune is not None and not callable(finetune):
        raise ArgumentTypeError("`finetune` must be a callable (model, round) -> None")
    if spec is None:
        plan = _plan_argument(plan, old)
        if quaternion not in QUATERNION_OPTIONS:
            raise ArgumentError(f"unknown `quaternion` {quaternion!r}; choose from "
                                f"{', '.join(QUATERNION_OPTIONS)}")
        spec = PruneSpec(criterion, plan, criterion_options, scope=scope,
                         group_reduction=group_reduction, aggregate=aggregate,
                         quaternion_mode="aggregate" if quaternion == "auto" else quaternion,
                         iterative=iterative, prune_schedule=prune_schedule)
    elif plan is not None or old or criterion_options:
        raise ArgumentError("`spec` holds the criterion, its options and the plan: give it "
                            "alone, or `criterion` and `plan`")
    if spec.plan is None:
        raise ArgumentError("give a `plan`, e.g. ap.Plan(ratio=0.5) or ap.Plan(target_macs=0.5)")
    if spec.resolution is not None:
        raise ArgumentError("`resolution` changes the features a model reads, so it makes a new "
                            "model: coarsen an audioprune model with ap.coarsen(model, time, "
                            "freq) and prune that, or split a budget with ap.split_budget")
    if calibration_data is None and spec.plan.allocation == "sensitivity":
        raise ArgumentError("`allocation` 'sensitivity' measures the loss: pass "
                            "`calibration_data` (an iterable of (inputs, targets) batches)")
    if calibration_data is None and spec.needs_data:
        raise ArgumentError(f"{spec.criterion} is an active criterion: pass `calibration_data` "
                            f"(an iterable of training batches: inputs, or (inputs, targets))")
    pruner = Pruner.from_spec(model, example_inputs, spec, forward_fn=forward_fn,
                              ignored_layers=ignored_layers, protect_outputs=protect_outputs,
                              protect_frozen=protect_frozen, calibration_data=calibration_data,
                              loss_fn=loss_fn)
    before = count(model, example_inputs, pruner.graph.forward)
    widths_before = _prunable_widths(pruner.graph)
    resolved = pruner.plan()
    units = {n: pruner.graph.layers()[n].unit for n in resolved.counts}

    def between_rounds(k: int, _removed: dict[str, list[int]], _state: Any) -> None:
        if finetune is not None and k < spec.iterative:
            finetune(model, k)

    state = prune_in_rounds(pruner, resolved, spec.iterative, after_round=between_rounds,
                            shape=spec.prune_schedule)
    after = count(model, example_inputs, pruner.graph.forward)
    _check_outputs(model, example_inputs, pruner.graph.forward)
    return PruneResult(model=model, criterion=pruner.criterion, macs_before=before.macs,
                       macs_after=after.macs, params_before=before.params,
                       params_after=after.params, widths_before=widths_before,
                       widths_after=_current_widths(model, widths_before),
                       removed=state.removed(resolved), units=units,
                       plan={**resolved.to_dict(), "criterion": pruner.importance.describe(),
                             **({"auto": pruner.auto.to_dict()} if pruner.auto else {})},
                       rounds=state.rounds)


def _plan_argument(plan: Any, old: Mapping[str, Any]) -> Plan:
    """`plan`, or the deprecated plan keywords made into one (with a DeprecationWarning)."""
    if plan is not None and old:
        raise ArgumentError(f"give the plan once: `plan` or {', '.join(f'`{k}`' for k in old)} "
                            f"(deprecated), not both")
    if plan is not None:
        if not isinstance(plan, Plan):
            raise ArgumentTypeError(f"`plan` must be an audioprune.Plan, e.g. "
                                    f"ap.Plan(ratio=0.5), got {type(plan).__name__}")
        return plan
    if not old:
        raise ArgumentError("give a `plan`, e.g. ap.Plan(ratio=0.5) or ap.Plan(target_macs=0.5)")
    shown = ", ".join(f"{k}={v!r}" for k, v in old.items())
    warnings.warn(f"ap.prune({shown}) is deprecated: pass plan=ap.Plan({shown})",
                  DeprecationWarning, stacklevel=3)
    if "layers" in old and old["layers"] is not None and not isinstance(old["layers"], str):
        old = {**old, "layers": list(old["layers"])}
    return Plan(**old)


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

