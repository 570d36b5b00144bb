"""Torch-Pruning's group importances as criteria of our own (tp-magnitude, tp-lamp, tp-fpgm):
inside our engine they remove exactly the filters Torch-Pruning's own pruner removes, work with
budgets and global ranking, and refuse what they cannot score (issue 18)."""

from __future__ import annotations

import pytest
import torch
import torch_pruning as tp
from torch import nn

import audioprune as ap
from audioprune.errors import ArgumentError
from audioprune.pruning.criteria import get_criterion
from architectures import small_cnn


@pytest.mark.parametrize("name, tp_cls", [("tp-magnitude", tp.importance.GroupMagnitudeImportance),
                                          ("tp-fpgm", tp.importance.FPGMImportance)])
def test_same_filters_as_torch_pruning_own_pruner(name: str, tp_cls: type) -> None:
    ours, x = small_cnn()
    theirs, _ = small_cnn()
    result = ap.prune(ours, x, name, ap.Plan(ratio=0.5))
    tp.pruner.BasePruner(theirs, x, importance=tp_cls(p=2), pruning_ratio=0.5,
                         ignored_layers=[theirs[11]]).step()
    for i in (0, 3, 6):
        assert ours[i].out_channels == theirs[i].out_channels
        assert torch.equal(ours[i].weight, theirs[i].weight), f"layer {i}"
    assert torch.allclose(ours(x), theirs(x))
    assert result.macs_after < 0.35 * result.macs_before


def test_magnitude_is_not_the_root_l2_ranking() -> None:
    """The group sum (conv filter + BN scale and shift + the next conv's input slices) must
    choose differently from the root filter's l2 norm here, or the test above proves nothing."""
    a, x = small_cnn()
    b, _ = small_cnn()
    ap.prune(a, x, "tp-magnitude", ap.Plan(ratio=0.5))
    ap.prune(b, x, "l2", ap.Plan(ratio=0.5), scope="root")
    assert not torch.equal(a[3].weight, b[3].weight)


def test_lamp_global_ranking_meets_a_mac_budget() -> None:
    model, x = small_cnn()
    result = ap.prune(model, x, "tp-lamp", ap.Plan(target_macs=0.3, global_ranking=True))
    assert result.macs_after <= 0.3 * result.macs_before
    assert result.macs_after >= 0.3 * 0.9 * result.macs_before
    widths = [model[i].out_channels for i in (0, 3, 6)]
    assert len(set(widths)) > 1  # global: not one ratio for every layer
    assert model(x).shape == (2, 5)


def test_what_torch_pruning_cannot_score_is_refused_clearly() -> None:
    qcnn = nn.Sequential(ap.nn.QConv2d(4, 16, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 3))
    with pytest.raises(ArgumentError, match="QConv2d.*scope 'group'"):
        ap.prune(qcnn, torch.randn(1, 4, 8, 8), "tp-magnitude", ap.Plan(ratio=0.5))
    model, x = small_cnn()
    with pytest.raises(ArgumentError, match="no option q"):
        ap.prune(model, x, "tp-magnitude", ap.Plan(ratio=0.5), q=3)
    with pytest.raises(ArgumentError, match="scope"):
        ap.prune(model, x, "tp-lamp", ap.Plan(ratio=0.5), scope="root")
    with pytest.raises(ValueError, match="whole dependency group"):
        get_criterion("tp-fpgm")
    assert {"tp-magnitude", "tp-lamp", "tp-fpgm"} <= set(ap.list_criteria("weights"))


def test_a_criterion_is_a_scoring_function_or_a_torch_pruning_importance() -> None:
    from audioprune.pruning.criteria import register_criterion

    with pytest.raises(ValueError, match="not both or neither"):
        register_criterion("neither-fn-nor-tp", None)
    with pytest.raises(ValueError, match="not both or neither"):
        register_criterion("both-fn-and-tp", lambda w: w, torch_pruning="GroupMagnitudeImportance")
    with pytest.raises(ValueError, match="scores a whole dependency group"):
        get_criterion("tp-magnitude")


def test_tp_taylor_removes_what_torch_pruning_own_taylor_pruner_removes() -> None:
    """tp-taylor: gradients of the loss on the calibration batches, scored by Torch-Pruning's
    TaylorImportance over each group; the same filters as its own BasePruner with the same
    gradients, and the gradients are gone afterwards."""
    from audioprune.pruning.calibration import accumulate_gradients
    from audioprune.pruning.pruner import default_loss

    ours, x = small_cnn()
    theirs, _ = small_cnn()
    gen = torch.Generator().manual_seed(0)
    batches = [(torch.randn(4, *x.shape[1:], generator=gen),
                torch.randint(0, 5, (4,), generator=gen)) for _ in range(3)]
    with pytest.raises(ValueError, match="tp-taylor is an active criterion"):
        ap.prune(ours, x, "tp-taylor", ap.Plan(ratio=0.5))
    ap.prune(ours, x, "tp-taylor", ap.Plan(ratio=0.5), calibration_data=batches)
    accumulate_gradients(theirs, batches, default_loss)
    tp.pruner.BasePruner(theirs, x, importance=tp.importance.TaylorImportance(), pruning_ratio=0.5,
                         ignored_layers=[theirs[11]]).step()
    for i in (0, 3, 6):
        assert ours[i].out_channels == theirs[i].out_channels
        assert torch.equal(ours[i].weight, theirs[i].weight), f"layer {i}"
    assert all(p.grad is None for p in ours.parameters())
