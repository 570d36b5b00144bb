"""The examples/ scripts run as a user runs them (small settings, real FSDD recordings): your own
model in your own loop with audioprune in between, and audioprune's criteria inside
Torch-Pruning's BasePruner."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _run(script: str, *args: str, cwd: Path) -> str:
    done = subprocess.run([sys.executable, str(EXAMPLES / script), *args], capture_output=True,
                          text=True, cwd=cwd, timeout=900)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_prune_your_own_model_in_your_own_loop(fsdd_root: Path, tmp_path: Path) -> None:
    out = _run("prune_your_model.py", "--data-root", str(fsdd_root), "--epochs", "1",
               "--finetune-epochs", "1", "--takes", "10", "--out", "m.safetensors",
               cwd=tmp_path)
    assert "FSDD: 300 training clips, 300 test clips (official split)" in out
    macs = re.search(r"MACs ([\d,]+) -> ([\d,]+) \(([\d.]+)% fewer\)", out)
    assert macs is not None, out
    before, after = (int(g.replace(",", "")) for g in macs.groups()[:2])
    assert 0.475 <= after / before <= 0.5  # --target-macs 0.5 (the default)
    assert re.search(rf"total\s+[\d,]+\s+[\d,]+\s+{before:,}\s+{after:,}", out)
    assert "reloaded onto a fresh DigitNet: identical outputs True" in out
    assert (tmp_path / "m.safetensors").is_file()


def test_audioprune_criteria_inside_torch_pruning(fsdd_root: Path, tmp_path: Path) -> None:
    out = _run("torch_pruning_with_audioprune.py", "--data-root", str(fsdd_root), "--epochs", "1",
               "--finetune-epochs", "1", "--takes", "8", cwd=tmp_path)
    for label in ("Torch-Pruning GroupMagnitudeImportance", "audioprune betweenness",
                  "audioprune wdc"):
        line = next(x for x in out.splitlines() if x.startswith(label))
        ratio = float(re.search(r"MACs ([\d.]+) of the parent", line).group(1))
        assert ratio < 0.9, line  # Torch-Pruning removed channels with our importance too
