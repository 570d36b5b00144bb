"""Active criteria (hrank, activation, taylor): the score formulas on hand-made maps, exact
batch averaging, where feature maps are tapped, that a dead or zeroed filter goes first through
the whole engine (real and quaternion layers), and an end-to-end `audioprune prune` run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from audioprune.audio.frontend import FrontEndConfig
from audioprune.cli import main
from audioprune.models.registry import create_model
from audioprune.pruning.body import prune_body
from audioprune.pruning.calibration import feature_taps, record_feature_scores
from audioprune.pruning.criteria.active import (
    activation_scores,
    hrank_scores,
    taylor_scores,
)
from audioprune.pruning.plan import Plan
from audioprune.pruning.spec import PruneSpec

FE = FrontEndConfig(sample_rate=8000, clip_seconds=0.5, n_mels=40, fmax=4000, n_fft=256,
                    win_length=256, hop_length=80)


def _batches(n: int = 2, size: int = 6, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(size, 4000, generator=g), torch.randint(0, 10, (size,), generator=g))
            for _ in range(n)]


def test_activation_and_hrank_formulas_on_hand_made_maps() -> None:
    maps = torch.zeros(2, 3, 4, 5)
    maps[:, 0] = 2.0                                   # constant map: rank 1, mean |a| 2
    maps[0, 1] = torch.eye(4, 5) * 3                   # rank 4 in example 0 ...
    maps[1, 1, 0, 0] = -3.0                            # ... rank 1 in example 1
    # channel 2 stays zero: rank 0, never active
    np.testing.assert_allclose(activation_scores(maps), [-2.0, -(12 + 3) / 40, 0.0])
    np.testing.assert_allclose(hrank_scores(maps), [-1.0, -2.5, 0.0])
    with pytest.raises(ValueError, match="2-D feature maps"):
        hrank_scores(torch.zeros(2, 3, 7))


def test_taylor_formula() -> None:
    w = torch.tensor([[1.0, -2.0], [0.5, 0.0]])
    g = torch.tensor([[3.0, 1.0], [-4.0, 9.0]])
    np.testing.assert_allclose(taylor_scores(w, g), [-(3 + 2), -2.0])


def test_batch_averaging_is_exact_and_taps_follow_execution_order() -> None:
    torch.manual_seed(0)
    model = create_model("cnn10", num_classes=10, frontend=FE, width=0.25).eval()
    layers = {"block1.conv1": model.block1.conv1, "block1.conv2": model.block1.conv2,
              "fc1": model.fc1}
    example = torch.zeros(1, *model.feature_shape(4000))
    taps = feature_taps(model, layers, example, lambda m, x: m.classify(x))
    # each conv's map is read after the norm that runs right after it
    assert taps["block1.conv1"] is model.block1.bn1 and taps["block1.conv2"] is model.block1.bn2
    assert taps["fc1"] is model.fc1  # no norm after the hidden linear layer

    waves = torch.randn(8, 4000, generator=torch.Generator().manual_seed(1))
    y = torch.zeros(8, dtype=torch.long)
    split = record_feature_scores(model, taps, [(waves[:3], y[:3]), (waves[3:], y[3:])],
                                  activation_scores)
    whole = record_feature_scores(model, taps, [(waves, y)], activation_scores)
    for name in layers:
        np.testing.assert_allclose(split[name], whole[name], rtol=1e-5, atol=1e-7)  # float32 convs
    # and the recorded map is the ReLU'd BN output the model really computes
    feats = model.features(waves)
    bn1_out = torch.relu(model.block1.bn1(model.block1.conv1(feats)))
    np.testing.assert_allclose(whole["block1.conv1"], activation_scores(bn1_out), rtol=1e-5)


@pytest.mark.parametrize("criterion", ["activation", "hrank"])
def test_a_dead_filter_is_pruned_first(criterion: str) -> None:
    torch.manual_seed(0)
    model = create_model("dcase21net", num_classes=10, frontend=FE).eval()
    with torch.no_grad():  # filter 5 of conv1 never fires: its BN shift drives ReLU to zero
        model.bn1.bias[5] = -1e4
    result = prune_body(model, PruneSpec(criterion, Plan(ratios={"conv1": 1 / 16})),
                         _batches())
    assert result["removed"] == {"conv1": [5]}
    assert model.conv1.out_channels == 15


@pytest.mark.parametrize("model_name, layer", [("dcase21net", "conv2"), ("qdcase21net", "conv2")])
def test_taylor_prunes_a_zeroed_filter_first_real_and_quaternion(model_name: str, layer: str) -> None:
    torch.manual_seed(0)
    model = create_model(model_name, num_classes=10, frontend=FE).eval()
    conv = getattr(model, layer)
    with torch.no_grad():  # a filter with zero weights has zero first-order Taylor importance
        if model_name == "qdcase21net":
            for comp in conv.components():
                comp[1].zero_()  # quaternion 1: all of r, i, j, k
        else:
            conv.weight[1].zero_()
    plan = Plan(ratios={layer: 0.25})
    result = prune_body(model, PruneSpec("taylor", plan), _batches())
    assert 1 in result["removed"][layer]
    assert all(p.grad is None for p in model.parameters())  # calibration leaves no gradients


def test_active_criterion_errors_are_clear() -> None:
    model = create_model("dcase21net", num_classes=10, frontend=FE)
    with pytest.raises(Exception, match="calibration"):
        prune_body(model, PruneSpec("activation", Plan(ratio=0.5)))
    with pytest.raises(Exception, match="fc1 does not produce them"):
        prune_body(model, PruneSpec("hrank", Plan(ratio=0.5)), _batches())


@pytest.mark.slow
def test_prune_cli_with_an_active_criterion_iterative(fsdd_small: Path, tmp_path: Path) -> None:
    from audioprune.runs.data import DataSpec
    from audioprune.runs.train import train_run
    from audioprune.train.fit import TrainConfig

    parent = tmp_path / "parent"
    spec = DataSpec("fsdd", str(fsdd_small), frontend={"clip_seconds": 0.5})
    train_run("dcase21net", {}, spec, TrainConfig(epochs=1, batch_size=8, progress=False), parent)
    out = tmp_path / "pruned"
    rc = main(["prune", str(parent), "--criterion", "hrank", "--ratios", "C1=0.5,C2=0.5",
               "--criterion-arg", "batches=2", "--iterative", "2", "--finetune-epochs", "1",
               "--out", str(out), "--no-progress"])
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["pruning"]["criterion"] == "hrank" and m["pruning"]["calibration_batches"] == 2
    assert m["pruning"]["widths_after"]["conv1"] == 8 and len(m["pruning"]["rounds"]) == 2
