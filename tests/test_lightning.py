"""audioprune.integrations.lightning: a Lightning callback that prunes a LightningModule's model
structurally at given epochs with one Pruner (one trace), the pruned fraction rising over the
steps to the plan, the optimizer re-created after each step so training goes on with the pruned
parameters."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import audioprune as ap

L = pytest.importorskip("lightning.pytorch")

from audioprune.integrations.lightning import PruningCallback  # noqa: E402


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(32)
        self.fc = nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        return self.fc(x.mean(dim=(2, 3)))


class Module(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.model = Net()
        self.seen: list[tuple[int, set[int], set[int]]] = []  # epoch, optimizer / model params

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _idx: int) -> torch.Tensor:
        opt = self.trainer.optimizers[0]
        in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
        self.seen.append((self.current_epoch, in_opt, {id(p) for p in self.model.parameters()}))
        x, y = batch
        return nn.functional.cross_entropy(self.model(x), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _loader() -> torch.utils.data.DataLoader:
    g = torch.Generator().manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(32, 1, 12, 12, generator=g),
                                          torch.randint(0, 4, (32,), generator=g))
    return torch.utils.data.DataLoader(data, batch_size=8)


def _fit(callback: PruningCallback, epochs: int) -> Module:
    module = Module()
    trainer = L.Trainer(max_epochs=epochs, callbacks=[callback], accelerator="cpu", devices=1,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)
    trainer.fit(module, _loader())
    return module


def test_prunes_at_the_given_epochs_rising_to_the_plan(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    from audioprune.pruning import pruner as pruner_module

    traces = []
    graph = pruner_module.PruningGraph
    monkeypatch.setattr(pruner_module, "PruningGraph",
                        lambda *a, **k: traces.append(1) or graph(*a, **k))
    x = torch.randn(1, 1, 12, 12)
    before = ap.count(Net(), x)
    cb = PruningCallback(x, "l1", ap.Plan(target_macs=0.4), epochs=[1, 2, 3],
                         save_to=str(tmp_path / "pruned.safetensors"))
    module = _fit(cb, 5)
    assert len(traces) == 1  # one trace, at the first pruning epoch
    assert [h["epoch"] for h in cb.history] == [1, 2, 3] and cb.done
    ratios = [h["macs_ratio"] for h in cb.history]
    assert 1.0 > ratios[0] > ratios[1] > ratios[2]  # the pruned fraction rises over the steps
    after = ap.count(module.model, x)
    assert after.macs == cb.history[-1]["macs"] and after.macs <= 0.4 * before.macs
    assert after.macs / before.macs == pytest.approx(ratios[-1])
    # every step after the first pruning epoch trains exactly the model's current parameters
    for epoch, in_opt, in_model in module.seen:
        assert in_opt == in_model, epoch
    assert {e for e, *_ in module.seen} == {0, 1, 2, 3, 4}
    # the pruned model reloads onto a fresh, unpruned one
    fresh = ap.load_pruned(tmp_path / "pruned.safetensors", Net()).eval()
    assert torch.equal(fresh(x), module.model.eval()(x))


def test_active_criterion_calibrates_on_the_training_batches() -> None:
    x = torch.randn(1, 1, 12, 12)
    cb = PruningCallback(x, "taylor", ap.Plan(ratio=0.5), epochs=[0, 1],
                         criterion_options={"batches": 2})
    module = _fit(cb, 2)
    assert module.model.conv1.out_channels == 8 and module.model.conv2.out_channels == 16
    assert len(cb.pruner.calibration) == 2


def test_bad_arguments_are_named() -> None:
    x = torch.randn(1, 1, 12, 12)
    with pytest.raises(ValueError, match="epochs"):
        PruningCallback(x, "l1", ap.Plan(ratio=0.5), epochs=[])
    with pytest.raises(ValueError, match="plan"):
        PruningCallback(x, "l1", epochs=[1])
    with pytest.raises(ValueError, match="prune_schedule"):
        PruningCallback(x, "l1", ap.Plan(ratio=0.5), epochs=[1], prune_schedule="linear")
    with pytest.raises(ValueError, match="attribute"):
        PruningCallback(x, "l1", ap.Plan(ratio=0.5), epochs=[0], attribute="net").model_of(Module())
