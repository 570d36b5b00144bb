"""audioprune.prune on models it has never seen: residual adds, MobileNet blocks with depthwise
convs and squeeze-excitation, grouped convs, a Conv1d waveform net, attention pooling, a frozen
STFT front end, a dict output and quaternion layers (tests/architectures.py). For each: the
output shapes survive, the counts equal an independent recount, ratio 0 changes nothing, the
saved model loads back identical, and a 50% MAC budget lands within 5% of it."""

from __future__ import annotations

import copy

import pytest
import torch

import audioprune as ap
from architectures import ARCHITECTURES, build, independent_macs, outputs_of

NAMES = list(ARCHITECTURES)


@pytest.mark.parametrize("name", NAMES)
def test_counts_equal_an_independent_recount(name: str) -> None:
    model, x = build(name)
    counts = ap.count(model, x)
    assert counts.macs == independent_macs(model, x)
    assert counts.params == sum(p.numel() for p in model.parameters())
    assert sum(row.macs for row in counts.layers.values()) == counts.macs
    assert sum(row.params for row in counts.layers.values()) == counts.params


@pytest.mark.parametrize("name", NAMES)
def test_ratio_zero_leaves_the_outputs_identical(name: str) -> None:
    model, x = build(name)
    before = outputs_of(model, x)
    state = copy.deepcopy(model.state_dict())
    result = ap.prune(model, x, "wdc", ap.Plan(ratio=0.0))
    after = outputs_of(model, x)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert result.macs_after == result.macs_before and result.params_after == result.params_before
    assert all(not idx for idx in result.removed.values())


@pytest.mark.parametrize("name", NAMES)
def test_half_the_macs_keeps_outputs_counts_and_reloads(name: str, tmp_path) -> None:
    model, x = build(name)
    shapes = {k: v.shape for k, v in outputs_of(model, x).items()}
    result = ap.prune(model, x, "wdc", ap.Plan(target_macs=0.5))
    # the budget is met, and not overshot by more than 5% of it
    assert 0.475 <= result.macs_after / result.macs_before <= 0.5, result.summary()
    assert result.params_after < result.params_before
    out = outputs_of(model, x)
    assert {k: v.shape for k, v in out.items()} == shapes
    assert all(torch.isfinite(v).all() for v in out.values())
    # the reported counts are the pruned model's, recounted independently
    assert result.macs_after == independent_macs(model, x)
    assert result.params_after == sum(p.numel() for p in model.parameters())
    for layer, width in result.widths_after.items():
        kept = result.widths_before[layer] // result.units[layer] - len(result.removed[layer])
        assert width == kept * result.units[layer]
    # saved as safetensors + record, replayed on a fresh unpruned model: identical outputs
    path = ap.save_pruned(model, tmp_path / "pruned.safetensors")
    fresh, _ = build(name, seed=123)  # other weights: all of them must come from the file
    ap.load_pruned(path, fresh)
    again = outputs_of(fresh.eval(), x)
    assert all(torch.equal(out[k], again[k]) for k in out)


def test_frozen_layers_and_outputs_are_left_alone() -> None:
    model, x = build("frozen-frontend")
    stft = model.stft_real.weight.clone()
    result = ap.prune(model, x, "l1", ap.Plan(ratio=0.5))
    assert torch.equal(model.stft_real.weight, stft)  # frozen: untouched, not even listed
    assert "stft_real" not in result.widths_before and "fc" not in result.widths_before
    model, x = build("dict-output")
    result = ap.prune(model, x, "l1", ap.Plan(ratio=0.5))
    assert set(result.widths_before) == {"block1.0", "block2.0"}  # fc1 makes the embedding
    assert model.fc1.out_features == 64 and model.fc_audioset.out_features == 10
    with pytest.raises(ValueError, match="fc1 is left alone because its channels reach a model "
                                         "output"):
        ap.prune(model, x, "l1", ap.Plan(ratio=0.5, layers=["fc1"]))


def test_grouped_and_quaternion_layers_are_pruned_in_whole_units() -> None:
    model, x = build("grouped")
    result = ap.prune(model, x, "l2", ap.Plan(ratio=0.5))
    assert result.units["conv2.0"] == 4  # groups=4: one channel of each group goes at a time
    assert model.conv2[0].out_channels % 4 == 0 and model.conv3[0].in_channels % 4 == 0
    model, x = build("quaternion")
    result = ap.prune(model, x, "fpgm", ap.Plan(ratio=0.25))
    assert result.units == {"conv1": 4, "conv2": 4}
    assert (model.conv1.out_channels, model.conv2.out_channels) == (48, 96)
