"""The examples/ scripts run as a user runs them (small settings, real FSDD recordings): your own
model in your own loop with audioprune in between, and audioprune's criteria inside
Torch-Pruning's BasePruner.

Both start from one DigitNet trained here with the examples' own code (`--init`), so what they
pruned can be checked against the criterion: the filters removed are the ones it ranks first,
recomputed here from the parent's weights (a constant or inverted importance, or scores that
never reach the pruner, prune other filters or none)."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch_pruning as tp
from torch import nn

import audioprune as ap
from audioprune.pruning.criteria import get_criterion, select_prune
from audioprune.pruning.record import read_record

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TAKES = 10  # takes 0-4 of every digit and speaker are the 300 test clips, 5-9 the 300 training ones
EPOCHS = 1  # enough for trained weights that tell every filter apart


def _run(script: str, *args: str, cwd: Path) -> str:
    done = subprocess.run([sys.executable, str(EXAMPLES / script), *args], capture_output=True,
                          text=True, cwd=cwd, timeout=900)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def examples():
    """The examples' modules, imported as the scripts import each other."""
    sys.path.insert(0, str(EXAMPLES))
    try:
        import fsdd_data
        import prune_your_model
        import torch_pruning_with_audioprune
    finally:
        sys.path.remove(str(EXAMPLES))
    return SimpleNamespace(data=fsdd_data, net=prune_your_model.DigitNet,
                           prune_copy=torch_pruning_with_audioprune.prune_copy)


@pytest.fixture(scope="module")
def parent(examples, fsdd_root: Path, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """DigitNet trained as the scripts train it (seed 0, their loop), saved for their --init."""
    torch.manual_seed(0)
    train, test = examples.data.load_fsdd(fsdd_root, takes=TAKES)
    model = examples.net()
    examples.data.train_epochs(model, train, EPOCHS)
    path = tmp_path_factory.mktemp("examples") / "parent.pt"
    torch.save(model.state_dict(), path)
    return SimpleNamespace(path=path, model=model.eval(), train=train, test=test,
                           example=train[:1][0])


def _kept_as_ranked(parent: nn.Module, pruned: nn.Module, example: torch.Tensor,
                    importance: tp.importance.Importance) -> int:
    """Check that in every group of coupled channels (BasePruner's groups of the parent) the
    channels `pruned` kept are the ones `importance` scores highest, seen in the group's batch
    norms, whose trained weights tell the channels apart; the number of channels removed."""
    ref = copy.deepcopy(parent).eval()
    graph = tp.DependencyGraph().build_dependency(ref, example,
                                                  customized_pruners=ap.customized_pruners())
    names = {m: n for n, m in ref.named_modules()}
    removed = 0
    for group in graph.get_all_groups(ignored_layers=[ref.fc], root_module_types=[nn.Conv2d]):
        root = group[0].dep.target.module
        k = pruned.get_submodule(names[root]).out_channels
        keep = torch.argsort(importance(group), descending=True)[:k].sort().values
        bns = [d.target.module for d, _ in group if isinstance(d.target.module, nn.BatchNorm2d)]
        assert bns, names[root]
        for bn in bns:
            assert torch.equal(pruned.get_submodule(names[bn]).weight, bn.weight[keep]), names[bn]
        removed += root.out_channels - k
    return removed


def test_prune_your_own_model_in_your_own_loop(examples, parent, fsdd_root: Path,
                                              tmp_path: Path) -> None:
    out = _run("prune_your_model.py", "--data-root", str(fsdd_root), "--init", str(parent.path),
               "--epochs", "0", "--finetune-epochs", "1", "--takes", str(TAKES),
               "--out", "m.safetensors", cwd=tmp_path)
    assert "FSDD: 300 training clips, 300 test clips (official split)" in out
    assert "trained 0 epochs in" in out
    macs = re.search(r"MACs ([\d,]+) -> ([\d,]+) \(([\d.]+)% fewer\)", out)
    assert macs is not None, out
    before, after = (int(g.replace(",", "")) for g in macs.groups()[:2])
    assert 0.475 <= after / before <= 0.5  # --target-macs 0.5 (the default)
    assert re.search(rf"total\s+[\d,]+\s+[\d,]+\s+{before:,}\s+{after:,}", out)
    assert "reloaded onto a fresh DigitNet: identical outputs True" in out
    pruned = ap.load_pruned(tmp_path / "m.safetensors", examples.net()).eval()
    assert ap.count(pruned, parent.example).macs == after
    # the filters removed are the ones wdc ranks first in each layer of the parent
    steps = read_record(tmp_path / "m.safetensors")["steps"]
    assert len(steps) == 1 and len(steps[0]["removed"]) >= 6
    for name, removed in steps[0]["removed"].items():
        scores = get_criterion("wdc")(parent.model.get_submodule(name).weight)
        assert sorted(removed) == sorted(select_prune(scores, len(removed)).tolist()), name


def test_audioprune_criteria_inside_torch_pruning(examples, parent, fsdd_root: Path,
                                                  tmp_path: Path) -> None:
    out = _run("torch_pruning_with_audioprune.py", "--data-root", str(fsdd_root),
               "--init", str(parent.path), "--epochs", "0", "--finetune-epochs", "0",
               "--takes", str(TAKES), cwd=tmp_path)
    base = ap.count(parent.model, parent.example)
    for label, criterion in (("Torch-Pruning GroupMagnitudeImportance", None),
                             ("audioprune betweenness", "betweenness"), ("audioprune wdc", "wdc")):
        line = next(x for x in out.splitlines() if x.startswith(label))
        got = re.search(r"MACs ([\d.]+) of the parent, params ([\d.]+); accuracy ([\d.]+) right "
                        r"after", line)
        assert got is not None, line
        macs, params, right_after = (float(g) for g in got.groups())
        assert macs < 0.9, line  # Torch-Pruning removed channels
        if criterion is None:
            continue
        # what the script pruned is what our importance makes BasePruner prune from the parent
        importance = ap.importance(criterion)
        pruned = examples.prune_copy(parent.model, parent.example, importance, 0.5)
        counts = ap.count(pruned, parent.example)
        assert (macs, params) == (round(counts.macs / base.macs, 3),
                                  round(counts.params / base.params, 3)), line
        assert right_after == pytest.approx(examples.data.accuracy(pruned, parent.test), abs=2e-3)
        # ... the channels our importance scores lowest, in every layer
        assert _kept_as_ranked(parent.model, pruned, parent.example, importance) > 0
