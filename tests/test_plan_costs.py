"""Budgets planned by layer arithmetic (pruning/costs.py) give the plans and the counts an exact
recount of a pruned copy gives, on every architecture the suite prunes, and fall back to exact
counting where the arithmetic cannot describe the model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from architectures import ARCHITECTURES, build
from torch import nn

from audioprune.data.registry import get_dataset_info
from audioprune.models.registry import create_model
from audioprune.pruning.costs import PlanCosts
from audioprune.pruning.engine import PruningGraph
from audioprune.pruning.plan import Plan, resolve_plan

FE = get_dataset_info("fsdd").frontend


def _cases() -> dict[str, tuple[nn.Module, torch.Tensor, str | None]]:
    cases = {name: (*build(name), None) for name in ARCHITECTURES}
    for arch, kw in (("dcase21net", {}), ("qdcase21net", {}), ("cnn6", {"width": 0.25}),
                     ("qcnn6", {"width": 0.25})):
        torch.manual_seed(0)
        m = create_model(arch, 10, frontend=FE, **kw)
        cases[arch] = (m, m.example_features(), "classify")
    return cases


CASES = _cases()


@pytest.mark.parametrize("name", sorted(CASES))
def test_layer_costs_equal_exact_counts_and_plans(name: str) -> None:
    model, x, forward = CASES[name]
    graph = PruningGraph(model, x, forward)
    costs = PlanCosts(model, graph)
    assert costs.layer_costs is not None, f"{name}: the layer model should describe it"
    n_units = costs.layer_costs.n_units
    rng = np.random.default_rng(0)
    for _ in range(3):  # random plans, not just the probe it was checked at
        counts = {n: int(rng.integers(0, k)) for n, k in n_units.items()}
        assert costs(counts) == costs.exact(counts), counts
    plans = [Plan(target_macs=0.3)]
    if name in ("dcase21net", "qcnn6", "mobilenet"):  # the slow reference search: a few more
        plans += [Plan(target_params=0.3), Plan(target_macs=0.4, target_params=0.6)]
    for plan in plans:
        fast, slow = resolve_plan(plan, graph), resolve_plan(plan, graph, exact_costs=True)
        assert fast.counts == slow.counts and fast.predicted == slow.predicted, plan


def test_a_layer_model_that_disagrees_with_a_recount_is_not_used(monkeypatch) -> None:
    """The safety net: the layer arithmetic is checked against an exact recount at a probe plan
    before any search uses it; one MAC off, and every count is exact (the same plan results)."""
    from audioprune.pruning import costs as costs_module

    model, x, forward = CASES["mobilenet"]
    graph = PruningGraph(model, x, forward)
    honest = resolve_plan(Plan(target_macs=0.4), graph, exact_costs=True)
    real_call = costs_module.LayerCosts.__call__
    monkeypatch.setattr(costs_module.LayerCosts, "__call__",
                        lambda self, counts: {**real_call(self, counts),
                                              "macs": real_call(self, counts)["macs"] + 1})
    costs = PlanCosts(model, graph)
    assert costs.layer_costs is None
    assert resolve_plan(Plan(target_macs=0.4), graph).counts == honest.counts
