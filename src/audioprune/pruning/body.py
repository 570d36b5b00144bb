"""Pruning an audioprune audio model's body: the model's ``classify`` traced on features of its
clip length (``example_features()``), so its log-mel front end is neither traced, pruned nor
counted; calibration batches are (waveforms, targets) run through the whole model.

Duck-typed on those two methods (pruning/ does not import models/): any model that has them
is pruned this way by the run layer, the benchmarks and the tests.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from audioprune.model_inputs import call_model
from audioprune.pruning.pruner import Pruner
from audioprune.pruning.schedule import prune_in_rounds
from audioprune.pruning.spec import PruneSpec

__all__ = ["body_pruner", "prune_body"]


def body_pruner(model: nn.Module, spec: PruneSpec, batches: list[Any] | None = None) -> Pruner:
    """A Pruner of `model`'s body for `spec` (one trace of the body)."""
    return Pruner.from_spec(model, model.example_features(), spec, forward_fn="classify",
                            calibration_data=batches, calibration_forward=call_model)


def prune_body(model: nn.Module, spec: PruneSpec, batches: list[Any] | None = None) -> dict[str, Any]:
    """Prune `model`'s body in place by `spec` (its rounds back to back, nothing between them):
    returns {"plan": resolved plan, "removed": {layer: indices in the model's numbering}}.
    Passive criteria need no data; active ones take (waveforms, targets) `batches`."""
    pruner = body_pruner(model, spec, batches)
    plan = pruner.plan()
    state = prune_in_rounds(pruner, plan, spec.iterative, shape=spec.prune_schedule)
    return {"plan": plan.to_dict(), "removed": state.removed(plan), "criterion": pruner.record()}
