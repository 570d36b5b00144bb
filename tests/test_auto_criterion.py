"""`criterion="auto"` (issues 18, 25): the measured rule (tp-magnitude at every measured budget, on
FSDD and RAVDESS alike), its record of the budget it read, and its wiring through ap.prune,
`audioprune prune` and recipes so that it prunes exactly what the chosen criterion prunes."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from architectures import small_cnn
from torch import nn

import audioprune as ap
from audioprune.cli import main
from audioprune.errors import ArgumentError, UserError
from audioprune.pipeline.recipe import parse_recipe
from audioprune.pruning.auto import EVIDENCE, EVIDENCE_FILES, rule
from audioprune.runs.data import DataSpec
from audioprune.runs.train import train_run
from audioprune.train.fit import TrainConfig


def _batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(5)
    return [(torch.randn(4, 1, 12, 12, generator=g), torch.randint(0, 5, (4,), generator=g))
            for _ in range(3)]


def test_the_rule_is_the_one_both_datasets_support() -> None:
    for kept in (0.5, 0.3, 0.15):  # the measured budgets; with or without batches
        assert rule(kept, calibration=True)[0] == rule(kept, calibration=False)[0] == "tp-magnitude"
    # every record the rule cites exists and measured tp-magnitude on both datasets
    results = Path(__file__).resolve().parents[1] / "bench" / "results"
    datasets = set()
    for name in EVIDENCE_FILES:
        assert name in EVIDENCE
        record = json.loads((results / name).read_text())
        assert any(m["criterion"] == "tp-magnitude" for m in record["methods"]), name
        datasets.add(name.split("-")[0])
    assert datasets == {"fsdd", "ravdess"}


def test_the_cli_help_names_the_rule_in_force(capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """`prune --help` once still described the retired rule (taylor above 40% of the MACs)."""
    monkeypatch.setenv("COLUMNS", "1000")  # argparse wraps at hyphens otherwise
    with pytest.raises(SystemExit):
        main(["prune", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    said = text[text.index("auto:"):text.index("auto:") + 160]
    assert "tp-magnitude at every measured budget" in said and "taylor" not in said


def test_heavy_budget_prunes_what_tp_magnitude_prunes() -> None:
    model, x = small_cnn()
    twin = copy.deepcopy(model)
    auto = ap.prune(model, x, "auto", ap.Plan(target_macs=0.3))
    explicit = ap.prune(twin, x, "tp-magnitude", ap.Plan(target_macs=0.3))
    assert auto.criterion == "tp-magnitude"
    assert auto.removed == explicit.removed and auto.macs_after == explicit.macs_after
    choice = auto.plan["auto"]
    assert choice["chosen"] == "tp-magnitude" and abs(choice["kept_macs"] - 0.3) < 0.03


def test_moderate_budget_with_batches_still_prunes_what_tp_magnitude_prunes() -> None:
    """Batches once switched `auto` to tp-taylor at moderate budgets; the re-measurement on
    both datasets does not support that, so they change nothing."""
    model, x = small_cnn()
    twin = copy.deepcopy(model)
    auto = ap.prune(model, x, "auto", ap.Plan(ratio=0.3), calibration_data=_batches())
    explicit = ap.prune(twin, x, "tp-magnitude", ap.Plan(ratio=0.3))
    assert auto.criterion == "tp-magnitude" and auto.plan["auto"]["kept_macs"] > 0.4
    assert auto.removed == explicit.removed and auto.macs_after == explicit.macs_after


def test_quaternion_layers_are_refused_with_a_pointer() -> None:
    qcnn = nn.Sequential(ap.nn.QConv2d(4, 16, 3, padding=1), nn.ReLU(),
                         ap.nn.QConv2d(16, 16, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 3))
    with pytest.raises(ArgumentError, match="auto.*quaternion.*l1"):
        ap.prune(qcnn, torch.randn(1, 4, 8, 8), "auto", ap.Plan(ratio=0.5))


def _recipe(criteria: list) -> dict:
    return {"name": "auto", "dataset": {"name": "fsdd", "root": "x"},
            "models": [{"name": "dcase21net", "train": {"epochs": 1}}],
            "prune": {"criteria": criteria, "target_macs": [0.3]}}


def test_recipes_accept_auto_but_not_its_options() -> None:
    recipe = parse_recipe(_recipe(["auto"]), "r.yaml")
    assert [c.name for c in recipe.prune[0].criteria] == ["auto"]
    with pytest.raises(UserError, match=r"prune\[0\]\.criteria\[0\]: criterion auto takes no "
                                        r"criterion options, got seed"):
        parse_recipe(_recipe([{"name": "auto", "options": {"seed": 1}}]), "r.yaml")


def test_cli_records_the_choice(fsdd_small: Path, tmp_path: Path,
                                capsys: pytest.CaptureFixture) -> None:
    parent = tmp_path / "parent"
    spec = DataSpec("fsdd", str(fsdd_small), frontend={"clip_seconds": 0.5})
    train_run("dcase21net", {}, spec, TrainConfig(epochs=1, batch_size=8, progress=False), parent)
    out = tmp_path / "auto"
    assert main(["prune", str(parent), "--criterion", "auto", "--target-macs", "0.3",
                 "--finetune-epochs", "0", "--out", str(out), "--no-progress"]) == 0
    pruning = json.loads((out / "metrics.json").read_text())["pruning"]
    assert pruning["criterion"] == "tp-magnitude"
    assert pruning["auto"]["chosen"] == "tp-magnitude" and pruning["auto"]["asked"] == "auto"
    config = json.loads((out / "config.json").read_text())
    assert config["prune"]["criterion"] == "tp-magnitude"  # a resume re-runs the same criterion
    capsys.readouterr()
    assert main(["prune", str(parent), "--criterion", "auto", "--ratio", "0.5",
                 "--criterion-arg", "seed=1", "--out", str(tmp_path / "bad"),
                 "--no-progress"]) != 0
    assert "auto takes no criterion options, got seed" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_the_api_refuses_options_meant_for_another_criterion() -> None:
    model, x = small_cnn()
    with pytest.raises(ArgumentError, match="auto takes no criterion options, got p"):
        ap.prune(model, x, "auto", ap.Plan(ratio=0.3), p=1)
