"""Progressive pruning inside one fine-tuning run (issue 26): the pruned fraction rises on a
cubic schedule at the start of the first K epochs, with knowledge distillation from the unpruned
parent; the result has the one-shot plan's widths, only epochs after the last step can be the
best, and a run stopped half-way resumes to exactly the model an uninterrupted run gives."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import audioprune.train.fit as fit_module
from audioprune.distill.config import DistillConfig
from audioprune.pruning.plan import Plan
from audioprune.pruning.schedule import schedule_counts
from audioprune.pruning.spec import PruneSpec
from audioprune.runs.data import DataSpec
from audioprune.runs.parents import finetune_config, parent_data_spec
from audioprune.runs.prune import prune_run, resume_prune
from audioprune.runs.run_dir import load_model
from audioprune.runs.train import train_run
from audioprune.train.fit import TrainConfig


def test_the_cubic_schedule_removes_most_early_and_ends_at_the_plan() -> None:
    steps = schedule_counts({"a": 12, "b": 30}, {"a": 16, "b": 64}, 3, "cubic")
    assert [s["a"] for s in steps] == [8, 12, 12] and [s["b"] for s in steps] == [21, 29, 30]
    geometric = schedule_counts({"a": 12, "b": 30}, {"a": 16, "b": 64}, 3)
    assert steps[0]["b"] > geometric[0]["b"] and geometric[-1] == steps[-1]
    with pytest.raises(ValueError, match="progressive spreads iterative pruning steps"):
        PruneSpec("l1", Plan(ratio=0.5), progressive=True)


@pytest.fixture(scope="module")
def parent(fsdd_small: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("progressive") / "parent"
    spec = DataSpec("fsdd", str(fsdd_small), frontend={"clip_seconds": 0.5})
    train_run("dcase21net", {}, spec, TrainConfig(epochs=2, batch_size=8, lr=3e-3, progress=False),
              out)
    return out


SPEC = PruneSpec("l1", Plan(target_macs=0.3), iterative=3, prune_schedule="cubic",
                 progressive=True, distill=DistillConfig("parent"))


def _run(parent: Path, out: Path) -> dict:
    cfg = finetune_config(parent, 4, batch_size=8, progress=False)
    return prune_run(parent, out, SPEC, cfg, parent_data_spec(parent))


def test_progressive_pruning_inside_distillation(parent: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    whole = _run(parent, tmp_path / "whole")
    one_shot = prune_run(parent, tmp_path / "one-shot",
                         PruneSpec("l1", Plan(target_macs=0.3)),
                         finetune_config(parent, 0, batch_size=8, progress=False),
                         parent_data_spec(parent))
    assert whole["pruning"]["widths_after"] == one_shot["pruning"]["widths_after"]
    assert whole["macs"] == one_shot["macs"] <= 0.3 * whole["parent"]["macs"]
    sched = whole["pruning"]["schedule"]
    assert sched["progressive"] and sched["shape"] == "cubic" and sched["finetune_epochs"] == 4
    assert whole["epochs_run"] == 4 and whole["best_epoch"] >= 3  # not before the last step
    assert whole["distill"]["loss"] and whole["distill"]["teacher"]["params"] == 46_118
    steps = json.loads((tmp_path / "whole" / "rounds" / "round1" / "round.json").read_text())
    removed = [sum(len(v) for v in step.values()) for step in steps["progressive_steps"]]
    assert len(removed) == 3 and removed[0] > removed[1] > 0  # cubic: most comes off first
    assert not (tmp_path / "whole" / "rounds" / "round1" / "checkpoint").exists()

    # stopped after its second epoch (mid-schedule), then resumed: the same model
    real_save = fit_module.save_checkpoint
    calls = {"n": 0}

    def stop_after_two(*args, **kwargs):
        real_save(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(fit_module, "save_checkpoint", stop_after_two)
    with pytest.raises(KeyboardInterrupt):
        _run(parent, tmp_path / "stopped")
    monkeypatch.setattr(fit_module, "save_checkpoint", real_save)
    resumed = resume_prune(tmp_path / "stopped")
    assert resumed["accuracy"] == whole["accuracy"] and resumed["best_epoch"] == whole["best_epoch"]
    a, _ = load_model(tmp_path / "whole")
    b, _ = load_model(tmp_path / "stopped")
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), name
