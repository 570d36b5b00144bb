"""Budgets spread by layer sensitivity (allocation="sensitivity", issue 18): the loss-rise curves,
the tolerance search, and a model where one layer is provably free to prune."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import audioprune as ap
from audioprune.errors import ArgumentError
from audioprune.pipeline.recipe import PruneSection
from audioprune.pipeline.steps import group_plans, plan_tag
from audioprune.pruning.sensitivity import SensitivityCurve, probe_counts, tolerance_counts


def test_probe_counts_cover_eighths_and_the_floor() -> None:
    assert probe_counts(16) == (2, 4, 6, 8, 10, 12, 14, 15)
    assert probe_counts(4) == (1, 2, 3)
    assert probe_counts(1) == ()


def test_tolerance_counts_grow_with_the_level_and_favour_the_insensitive_layer() -> None:
    curves = {"flat": SensitivityCurve((2, 4, 6, 7), (0.0, 0.01, 0.02, 0.5)),
              "steep": SensitivityCurve((2, 4, 6, 7), (0.3, 0.9, 1.5, 2.0)),
              "noisy": SensitivityCurve((2, 4, 6, 7), (0.2, 0.1, 0.4, 0.6))}
    assert tolerance_counts(0.0, curves) == {"flat": 0, "steep": 0, "noisy": 0}
    assert tolerance_counts(1.0, curves) == {"flat": 7, "steep": 7, "noisy": 7}
    prev = None
    for level in [i / 50 for i in range(51)]:
        c = tolerance_counts(level, curves)
        assert c["flat"] >= c["steep"]
        if prev is not None:
            assert all(c[n] >= prev[n] for n in c)  # monotone: the bisection relies on it
        prev = c
    # tolerance 0.2 (level 0.1 of the largest rise, 2.0): flat to 6 + 0.18/0.48, steep 2*0.2/0.3,
    # noisy to 4: its dip at 4 (0.1) is read as the envelope, 0.2 from 2 to 4
    assert tolerance_counts(0.1, curves) == {"flat": 6, "steep": 1, "noisy": 4}


def _model_with_a_free_half() -> nn.Module:
    """conv1's filters 8-15 are small (l1 prunes them first) and conv2 never reads them: removing
    them leaves every output exactly as it was, while every other filter matters."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                          nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4)).eval()
    with torch.no_grad():
        model[0].weight[8:] *= 0.01
        model[3].weight[:, 8:] = 0.0
        model[3].weight[:, :8] *= 3.0
        model[8].weight *= 30.0  # confident on its own predictions: losing a used filter costs
    return model


def _batches(model: nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    xs = [torch.randn(16, 1, 10, 10, generator=g) for _ in range(3)]
    with torch.no_grad():  # the model's own predictions: a loss it is good at
        return [(x, model(x).argmax(1)) for x in xs]


def _loss(model: nn.Module, batches: list) -> float:
    with torch.no_grad():
        return sum(float(F.cross_entropy(model(x), y)) for x, y in batches) / len(batches)


def test_sensitivity_takes_the_free_filters_that_a_uniform_ratio_leaves() -> None:
    batches = _batches(_model_with_a_free_half())
    x = batches[0][0][:2]
    losses, results = {}, {}
    for allocation in ("uniform", "sensitivity"):
        model = _model_with_a_free_half()
        results[allocation] = ap.prune(model, x, "l1", ap.Plan(target_macs=0.6, allocation=allocation), calibration_data=batches, ignored_layers=[model[8]])
        losses[allocation] = _loss(model, batches)
    sens, uni = results["sensitivity"], results["uniform"]
    base = _loss(_model_with_a_free_half(), batches)
    # only free filters go (the budget needs 7 of the 8), so the loss is exactly what it was;
    # one ratio for both layers takes used filters of conv2 (and conv1)
    assert set(sens.removed["0"]) <= set(range(8, 16)) and len(sens.removed["0"]) >= 7
    assert not sens.removed.get("3") and len(uni.removed["3"]) > 0
    assert sens.macs_after <= 0.6 * sens.macs_before
    assert losses["sensitivity"] == pytest.approx(base, abs=1e-5)
    assert losses["uniform"] > base + 0.05
    curve = sens.plan["sensitivity"]["0"]
    assert curve["counts"][:4] == [2, 4, 6, 8]
    assert max(abs(r) for r in curve["loss_rise"][:4]) < 1e-6  # the free half really is free
    assert sens.plan["sensitivity"]["3"]["loss_rise"][2] > 0.1


def test_sensitivity_errors_name_the_argument() -> None:
    model = _model_with_a_free_half()
    batches = _batches(model)
    x = batches[0][0][:2]
    with pytest.raises(ArgumentError, match="allocation 'sensitivity' measures the loss: pass calibration_data"):
        ap.prune(model, x, "l1", ap.Plan(target_macs=0.5, allocation="sensitivity"))
    with pytest.raises(ArgumentError, match="spreads a budget"):
        ap.prune(model, x, "l1", ap.Plan(ratio=0.5, allocation="sensitivity"), calibration_data=batches)
    with pytest.raises(ArgumentError, match="choose one"):
        ap.prune(model, x, "l1", ap.Plan(target_macs=0.5, allocation="sensitivity", global_ranking=True), calibration_data=batches)
    with pytest.raises(ArgumentError, match="unknown .?allocation"):
        ap.prune(model, x, "l1", ap.Plan(target_macs=0.5, allocation="greedy"))


def test_recipe_allocation_reaches_budget_plans_only_and_names_them() -> None:
    group = PruneSection.model_validate({"criteria": ["l1"], "ratios": [0.5],
                                         "target_macs": [0.3], "allocation": "sensitivity"})
    plans = group_plans(group)
    assert "allocation" not in plans[0]  # a ratio is not a budget to spread
    assert plans[1]["allocation"] == "sensitivity"
    assert plan_tag(plans[1]) == "macs30pct-sens"
