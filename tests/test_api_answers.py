"""The Python API answers a new user's mistakes in one line that names the argument or layer and
what to do: models taking one dict, a group that would empty a coupled layer, `ignored_layers`
patterns, an input too short for a layer; and `list_criteria` names `auto`."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from architectures import build
from torch import nn

import audioprune as ap
from audioprune.errors import ArgumentError
from audioprune.pruning.engine import PruningGraph


class DictNet(nn.Module):
    """forward(batch) reads a dict, as models fed by a collate function that builds one."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(1, 8, 3)
        self.conv2 = nn.Conv1d(8, 8, 3)
        self.fc = nn.Linear(8, 4)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        x = F.relu(self.conv1(batch["wave"].unsqueeze(1)))
        x = F.relu(self.conv2(x)) * batch["gain"][:, None, None]
        return self.fc(x.mean(-1))


class KeywordNet(DictNet):
    """forward(wave, gain): keywords, which a dict reaches only through a forward_fn."""

    def forward(self, wave: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward({"wave": wave, "gain": gain})


def _batch(n: int = 2, samples: int = 100) -> dict[str, torch.Tensor]:
    return {"wave": torch.randn(n, samples), "gain": torch.rand(n) + 0.5}


def test_a_dict_is_one_positional_input_for_count_prune_and_load_pruned(tmp_path: Path) -> None:
    x = _batch()
    # conv1: 8*1*3 MACs x 98 positions, conv2: 8*8*3 x 96, fc: 8*4, per example
    assert ap.count(DictNet(), x).macs == 8 * 3 * 98 + 8 * 8 * 3 * 96 + 8 * 4
    model = DictNet()
    result = ap.prune(model, x, "l1", ap.Plan(ratio=0.5))
    assert result.widths_after == {"conv1": 4, "conv2": 4}
    ap.save_pruned(model, tmp_path / "m.safetensors")
    fresh = ap.load_pruned(tmp_path / "m.safetensors", DictNet())  # no inputs given again
    assert fresh.conv1.out_channels == 4 and fresh.conv2.out_channels == 4
    torch.testing.assert_close(fresh.eval()(x), model.eval()(x))
    record = ap.load_pruned(tmp_path / "m.safetensors", DictNet())._audioprune_pruning
    assert set(record["example_inputs"]["dict"]) == {"wave", "gain"}


def test_a_forward_taking_keywords_says_how_and_works_with_forward_fn(tmp_path: Path) -> None:
    x, keywords = _batch(), (lambda m, kw: m(**kw))
    with pytest.raises(ArgumentError) as err:
        ap.count(KeywordNet(), x)
    message = str(err.value)
    assert "\n" not in message and "missing 1 required positional argument" in message
    assert "a dict is ONE positional input" in message and "forward_fn=lambda m, kw: m(**kw)" in message
    assert ap.count(KeywordNet(), x, keywords).macs == ap.count(DictNet(), x).macs
    model = KeywordNet()
    ap.prune(model, x, "l1", ap.Plan(ratio=0.5), forward_fn=keywords)
    ap.save_pruned(model, tmp_path / "k.safetensors")
    with pytest.raises(ArgumentError, match="a callable forward_fn is not recorded"):
        ap.load_pruned(tmp_path / "k.safetensors", KeywordNet())
    fresh = ap.load_pruned(tmp_path / "k.safetensors", KeywordNet(), forward_fn=keywords)
    torch.testing.assert_close(fresh.eval()(**x), model.eval()(**x))


class SplitNet(nn.Module):
    """conv1's channels split in two halves for two branches (as a gated or two-path head):
    pruning only one half's channels leaves a branch without input."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(1, 8, 3)
        self.branch_a = nn.Conv1d(4, 4, 3)
        self.branch_b = nn.Conv1d(4, 4, 3)
        self.fc = nn.Linear(8, 4)
        with torch.no_grad():
            self.conv1.weight[:4] *= 1e-3  # l1 ranks filters 0-3 first: one whole half

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = F.relu(self.conv1(x.unsqueeze(1))).chunk(2, dim=1)
        return self.fc(torch.cat([self.branch_a(a), self.branch_b(b)], 1).mean(-1))


def test_a_group_that_would_empty_a_coupled_layer_names_the_fix() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 100)
    with pytest.raises(ArgumentError) as err:
        ap.prune(SplitNet(), x, "l1", ap.Plan(ratio=0.5))
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("conv1: pruning 4 of its 8 filters would empty branch_")
    assert "(all 4 of its input channels would go)" in message
    assert "ignored_layers=['conv1'], or prune less (a smaller ratio or budget)" in message
    # the fix it names works
    result = ap.prune(SplitNet(), x, "l1", ap.Plan(ratio=0.5), ignored_layers=["conv1"])
    assert result.widths_after["branch_a"] == 2 and "conv1" not in result.widths_after


def test_ignored_layers_take_the_patterns_layers_takes() -> None:
    model, x = build("resnet")
    everything = list(PruningGraph(model, x).layers())
    assert everything == ["stem.0", "layer1.conv1", "layer2.conv1", "layer2.down.0", "layer3.conv1"]

    def prunable(*ignored: str) -> list[str]:
        return list(PruningGraph(model, x, ignored_layers=list(ignored)).layers())

    assert prunable("layer?.conv1") == ["stem.0", "layer2.down.0"]        # a glob
    assert prunable("layer2") == ["stem.0", "layer1.conv1", "layer3.conv1"]  # a block: all of it
    assert prunable("C2-C3") == ["stem.0", "layer2.down.0", "layer3.conv1"]  # aliases as `layers`
    assert prunable("C2") == prunable("layer1.conv1")
    result = ap.prune(copy.deepcopy(model), x, "l1", ap.Plan(ratio=0.5), ignored_layers=["layer3.*"])
    assert "layer3.conv1" not in result.removed and result.removed["layer1.conv1"]
    for bad, expected in ((["layr3.*"], "'layr3.*' matches no layer of the model; its conv / "
                                        "linear layers: stem.0, layer1.conv1,"),
                          (["layer9"], "no layer named 'layer9' in the model; its conv / linear"),
                          (["C9"], "'C9' names no prunable convolution (aliases C1-C5)")):
        with pytest.raises(ArgumentError) as err:
            PruningGraph(model, x, ignored_layers=bad)
        assert str(err.value).startswith("ignored_layers: ") and expected in str(err.value)


class ShortNet(nn.Module):
    """A waveform net (B, samples): Conv1d k9 s2, MaxPool1d 4, Conv1d k5, MaxPool1d 4; it needs
    71 samples (70 leave pool2 nothing to pool)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(1, 8, 9, stride=2)
        self.pool1 = nn.MaxPool1d(4)
        self.conv2 = nn.Conv1d(8, 8, 5)
        self.pool2 = nn.MaxPool1d(4)
        self.fc = nn.Linear(8, 3)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        x = self.pool1(F.relu(self.conv1(wave.unsqueeze(1))))
        return self.fc(self.pool2(F.relu(self.conv2(x))).mean(-1))


@pytest.mark.parametrize("samples, layer", [(5, "conv1"), (20, "conv2"), (60, "pool2")])
def test_an_input_too_short_names_the_layer_and_the_length_it_needs(samples: int, layer: str) -> None:
    with pytest.raises(ArgumentError) as err:
        ap.count(ShortNet(), torch.randn(2, samples))
    assert str(err.value) == (f"input too short for {layer}: needs at least 71 samples; "
                              f"example_inputs has {samples}")
    with pytest.raises(ArgumentError, match=f"input too short for {layer}: needs at least 71"):
        ap.prune(ShortNet(), torch.randn(2, samples), "l1", ap.Plan(ratio=0.5))
    assert ap.count(ShortNet(), torch.randn(1, 71)).macs > 0  # the length it names works
    with pytest.raises(RuntimeError):
        ShortNet()(torch.randn(1, 70))


def test_features_too_few_frames_count_frames() -> None:
    from audioprune.audio.frontend import FrontEndConfig
    from audioprune.models.registry import create_model

    fe = FrontEndConfig(sample_rate=8000, n_fft=256, hop_length=80, n_mels=40, fmin=0.0,
                        fmax=4000.0, clip_seconds=1.0)
    model = create_model("dcase21net", 10, frontend=fe)
    with pytest.raises(ArgumentError, match=r"needs at least 5 frames; example_inputs has 3$"):
        ap.count(model, torch.randn(1, 1, 3, 40), "classify")
    assert ap.count(model, torch.randn(1, 1, 5, 40), "classify").macs > 0
    with pytest.raises(ArgumentError, match=r"^input too short for frontend: needs at least 320 "
                                            r"samples; example_inputs has 50$"):
        ap.count(model, torch.randn(1, 50))


def test_list_criteria_includes_auto_as_a_rule() -> None:
    names = ap.list_criteria()
    assert "auto" in names and names == sorted(names)
    assert "auto" not in ap.list_criteria("weights") and "auto" not in ap.list_criteria("gradients")
    assert set(names) == {"auto", *ap.list_criteria("weights"), *ap.list_criteria("activations"),
                          *ap.list_criteria("gradients")}
    assert "a rule, not a criterion" in ap.list_criteria.__doc__
