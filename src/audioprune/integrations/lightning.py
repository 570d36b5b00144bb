"""PyTorch Lightning: prune a LightningModule's model structurally while it trains.

    import audioprune as ap
    from audioprune.integrations.lightning import PruningCallback

    prune = PruningCallback(example_inputs=torch.randn(1, 16000), criterion="l1",
                            plan=ap.Plan(target_macs=0.5), epochs=[1, 2, 3])
    trainer = lightning.Trainer(max_epochs=6, callbacks=[prune])
    trainer.fit(module, train_loader)             # module.model ends at half its MACs
    ap.save_pruned(module.model, "pruned.safetensors")

At the start of each epoch in `epochs` the callback removes filters for real (the same
:class:`audioprune.Pruner` as ``ap.prune``: Torch-Pruning's dependency graph, BN and the next
layers shrinking with them), so the model trained afterwards is the smaller one. The model is
traced ONCE, at the first pruning epoch, and the plan is resolved then, on the trained weights;
the steps follow ``ap.prune``'s iterative schedule (pruning/schedule.py): the pruned fraction
rises over the steps ("geometric": about the same fraction of what is left each step;
"cubic": much early, little late) and reaches the plan at the last one, each step re-scoring
the model as it is then. Pruning replaces the pruned layers' parameters, so after each step the
optimizers and learning-rate schedulers are created again from the module's
``configure_optimizers`` (``trainer.strategy.setup_optimizers``): optimizer state (Adam's moments)
and scheduler progress start afresh.

Limits: one device (a model wrapped by DDP/FSDP cannot change shape under its wrapper), and a
Lightning checkpoint of a pruned model holds the pruned shapes: reload it with
``ap.load_pruned`` from the file ``save_to`` writes (safetensors + the pruning record), not by
``load_from_checkpoint`` on a freshly built, unpruned module.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from audioprune.errors import ArgumentError, ArgumentTypeError, UserError

try:
    import lightning.pytorch as pl
except ImportError:
    raise UserError("audioprune.integrations.lightning needs PyTorch Lightning, which is not "
                    "installed: pip install 'audioprune[lightning]'") from None

from audioprune.measure.counting import count  # noqa: E402
from audioprune.pruning.plan import Plan, ResolvedPlan  # noqa: E402
from audioprune.pruning.pruner import Pruner  # noqa: E402
from audioprune.pruning.record import save_pruned  # noqa: E402
from audioprune.pruning.schedule import ScheduleState, prune_round, schedule_counts  # noqa: E402
from audioprune.pruning.spec import PruneSpec  # noqa: E402

__all__ = ["PruningCallback"]

log = logging.getLogger("audioprune.prune")


def _to_device(value: Any, device: torch.device) -> Any:
    if torch.is_tensor(value):
        return value.to(device)
    if isinstance(value, dict):
        return {k: _to_device(v, device) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_device(v, device) for v in value)
    return value


class PruningCallback(pl.Callback):
    """Prune ``pl_module.<attribute>`` (default ``model``; None: the LightningModule itself) in
    place at the start of each epoch in `epochs` (0-based, as ``trainer.current_epoch``).

    example_inputs    what the model takes (a tensor, tuple or dict), to trace it and count
                      MACs per example; moved to the module's device
    criterion, plan   as ``ap.prune`` (a name of ``ap.list_criteria()``, an ``ap.Plan``); or a
                      whole ``spec`` (``audioprune.pruning.spec.PruneSpec``) instead
    epochs            the epochs that prune, one step each; the last reaches the plan
    prune_schedule    "geometric" or "cubic": how the pruned fraction rises over the steps
    calibration_data  batches for active criteria (taylor, hrank, activation) and
                      ``allocation="sensitivity"``: (inputs, targets) as the model takes them;
                      default: the first batches of ``trainer.train_dataloader``, as they come
                      (give them yourself when a batch is not (inputs, targets))
    save_to           write the pruned model there at the end of training (``ap.save_pruned``)
    **pruner_options  more keywords of :class:`audioprune.Pruner`: forward_fn, ignored_layers,
                      loss_fn, scope, criterion_options, ...

    After training, ``history`` holds one entry per step: epoch, MACs and parameters after it
    and their ratios to the model before the first step; each step is also logged (INFO, logger
    ``audioprune.prune``) and, when the trainer has a logger, as ``pruning/macs_ratio`` and
    ``pruning/params_ratio``.
    """

    def __init__(self, example_inputs: Any, criterion: str = "wdc", plan: Plan | None = None, *,
                 epochs: Iterable[int], attribute: str | None = "model",
                 prune_schedule: str = "geometric", spec: PruneSpec | None = None,
                 calibration_data: Iterable[Any] | None = None, save_to: str | None = None,
                 **pruner_options: Any) -> None:
        super().__init__()
        self.epochs = sorted(set(int(e) for e in epochs))
        if not self.epochs or self.epochs[0] < 0:
            raise ArgumentError("`epochs` must name at least one epoch, each >= 0 (0-based, as "
                                "trainer.current_epoch)")
        if spec is None:
            if plan is None:
                raise ArgumentError("give a `plan`, e.g. ap.Plan(target_macs=0.5), or a `spec`")
            if not isinstance(plan, Plan):
                raise ArgumentTypeError(f"`plan` must be an audioprune.Plan, got "
                                        f"{type(plan).__name__}")
            spec = PruneSpec(criterion, plan, pruner_options.pop("criterion_options", None) or {},
                             **{k: pruner_options.pop(k) for k in
                                ("scope", "group_reduction", "aggregate") if k in pruner_options})
        elif not isinstance(spec, PruneSpec):
            raise ArgumentTypeError(f"`spec` must be a PruneSpec, got {type(spec).__name__}")
        if spec.plan is None:
            raise ArgumentError("the `spec` needs a plan")
        schedule_counts({}, {}, len(self.epochs), prune_schedule)  # checks the shape's name
        self.example_inputs = example_inputs
        self.spec = spec
        self.attribute = attribute
        self.prune_schedule = prune_schedule
        self.calibration_data = calibration_data
        self.save_to = save_to
        self.pruner_options = pruner_options
        self.pruner: Pruner | None = None
        self.resolved: ResolvedPlan | None = None
        self.history: list[dict[str, Any]] = []
        self._steps: list[dict[str, int]] = []
        self._state: ScheduleState | None = None
        self._base: Any = None

    def model_of(self, pl_module: pl.LightningModule) -> nn.Module:
        """The module this callback prunes."""
        if self.attribute is None:
            return pl_module
        model = getattr(pl_module, self.attribute, None)
        if not isinstance(model, nn.Module):
            raise ArgumentError(f"the LightningModule has no nn.Module attribute "
                                f"{self.attribute!r}; pass `attribute` (None: the module itself)")
        return model

    def _start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        model = self.model_of(pl_module)
        self.example_inputs = _to_device(self.example_inputs, pl_module.device)
        batches = self.calibration_data
        if batches is None and (self.spec.needs_data or self.spec.plan.allocation == "sensitivity"):
            n = int(self.spec.options.get("batches", 8))
            batches = [trainer.strategy.batch_to_device(b) for b in
                       itertools.islice(iter(trainer.train_dataloader), n)]
        elif batches is not None:
            batches = [_to_device(b, pl_module.device) for b in batches]
        self.pruner = Pruner.from_spec(model, self.example_inputs, self.spec,
                                       calibration_data=batches, **self.pruner_options)
        self._base = count(model, self.example_inputs, self.pruner.graph.forward)
        self.resolved = self.pruner.plan()
        self._steps = schedule_counts(self.resolved.counts, self.resolved.n_units,
                                      len(self.epochs), self.prune_schedule)
        self._state = ScheduleState.start(self.resolved)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epoch = trainer.current_epoch
        if epoch not in self.epochs:
            return
        k = self.epochs.index(epoch)
        if self._state is None:
            self._start(trainer, pl_module)
        assert self.pruner is not None and self._state is not None
        if self._state.done > k:  # this step is done (a second fit() call on the same module)
            return
        was_training = pl_module.training
        model = self.model_of(pl_module)
        model.eval()
        with torch.enable_grad():  # active criteria differentiate
            prune_round(self.pruner, self._state, self._steps[k])
        model.train(was_training)
        trainer.strategy.setup_optimizers(trainer)
        after = count(model, self.example_inputs, self.pruner.graph.forward)
        entry = {"epoch": epoch, "step": k + 1, "steps": len(self.epochs), "macs": after.macs,
                 "params": after.params,
                 "macs_ratio": after.macs / self._base.macs if self._base.macs else 1.0,
                 "params_ratio": after.params / self._base.params if self._base.params else 1.0}
        self.history.append(entry)
        log.info("epoch %d: pruning step %d/%d (%s): MACs %s (%.3f of the model's), params %s "
                 "(%.3f)", epoch, k + 1, len(self.epochs), self.pruner.criterion,
                 f"{after.macs:,}", entry["macs_ratio"], f"{after.params:,}",
                 entry["params_ratio"])
        if trainer.logger is not None:
            pl_module.log_dict({"pruning/macs_ratio": entry["macs_ratio"],
                                "pruning/params_ratio": entry["params_ratio"]},
                               on_epoch=True, on_step=False)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.save_to is not None and self.history:
            save_pruned(self.model_of(pl_module), self.save_to)

    @property
    def done(self) -> bool:
        """Every step has run: the model is at the plan."""
        return self._state is not None and self._state.done == len(self.epochs)

    @property
    def steps(self) -> Sequence[dict[str, int]]:
        """The cumulative units removed per layer after each step (once planned)."""
        return self._steps
