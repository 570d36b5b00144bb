"""`audioprune prune` end to end on real FSDD speech (a small subset): the run directory
contract, the parent / before_finetune / pruning blocks, prune-only, iterative schedules,
resuming, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import audioprune.runs.prune as run_module
import pytest
import torch

from audioprune.cli import main
from audioprune.measure.counting import count_macs, count_params
from audioprune.pruning.criteria import get_criterion, select_prune
from audioprune.runs.data import DataSpec, prepare_data
from audioprune.runs.run_dir import load_model
from audioprune.runs.train import train_run
from audioprune.train.fit import TrainConfig, evaluate


@pytest.fixture(scope="module")
def parent(fsdd_small: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("prune") / "parent"
    spec = DataSpec("fsdd", str(fsdd_small), frontend={"clip_seconds": 0.5})  # short: fast tests
    train_run("dcase21net", {}, spec, TrainConfig(epochs=1, batch_size=8, lr=3e-3, progress=False), out)
    return out


def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def test_prune_cli_end_to_end_and_resume(parent: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "pruned"
    rc = main(["prune", str(parent), "--criterion", "wdc", "--ratios", "C1=0.5,C2=0.5",
               "--finetune-epochs", "1", "--out", str(out), "--no-progress"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "before fine-tuning" in printed and "MACs -" in printed

    m = _metrics(out)
    trained = _metrics(parent)
    assert set(trained) <= set(m)  # every key of a trained run's metrics.json
    for key in ("task", "accuracy", "params", "macs", "size_bytes", "dataset", "split"):
        assert key in m, key
    assert m["dataset"] == "fsdd" and m["split"] == trained["split"]
    assert m["num_examples"] == trained["num_examples"] and len(m["history"]) == 1

    # the final model is the run's model: load_model rebuilds the pruned widths
    model, info = load_model(out)
    assert info["widths"] == {"conv1": 8, "conv2": 8, "conv3": 32, "fc1": 100}
    assert m["params"] == count_params(model) == 23_726
    assert m["macs"] == count_macs(model)["model"]

    assert m["parent"]["run"] == str(parent.resolve())
    assert m["parent"]["params"] == 46_118 and m["parent"]["accuracy"] == trained["accuracy"]
    assert m["parent"]["macs"] == trained["macs"]
    assert m["parent"]["train_seconds"] == trained["train_seconds"] > 0  # total compute survives its deletion
    assert m["before_finetune"]["params"] == m["params"]
    assert m["before_finetune"]["macs"] == m["macs"]
    # the accuracy before fine-tuning is the pruned, not yet fine-tuned model's (kept in rounds/)
    pruned_only, _ = load_model(out / "rounds" / "round1", weights_name=run_module.PRUNED_WEIGHTS)
    bundle = prepare_data(DataSpec(**json.loads((out / "config.json").read_text())["data"]),
                          progress=False)
    before = evaluate(pruned_only, bundle.test, TrainConfig(progress=False))["accuracy"]
    assert m["before_finetune"]["accuracy"] == before != m["accuracy"]
    assert m["reduction"]["macs"] > 0.65 and m["reduction"]["params"] > 0.45

    p = m["pruning"]
    assert p["criterion"] == "wdc" and p["plan"]["requested"]["ratios"] == {"C1": 0.5, "C2": 0.5}
    assert p["plan"]["resolved"]["counts"] == {"conv1": 8, "conv2": 8}
    assert p["widths_before"]["conv1"] == 16 and p["widths_after"]["conv1"] == 8
    assert len(p["layers"]["conv1"]["removed"]) == 8 and len(p["layers"]["conv2"]["kept"]) == 8
    # the removed filters are wdc's selection on the parent's weights
    parent_model, _ = load_model(parent)
    expect = select_prune(get_criterion("wdc")(parent_model.conv1.weight), 8).tolist()
    assert p["layers"]["conv1"]["removed"] == expect
    kept = p["layers"]["conv1"]["kept"]
    right_after, _ = load_model(out / "rounds" / "round1", weights_name="pruned.safetensors")
    assert torch.equal(right_after.conv1.weight, parent_model.conv1.weight[kept])

    cfg = json.loads((out / "config.json").read_text())
    parent_cfg = json.loads((parent / "config.json").read_text())
    assert cfg["command"] == "prune" and cfg["train"]["epochs"] == 1
    assert cfg["train"]["lr"] == pytest.approx(parent_cfg["train"]["lr"] / 10)
    assert cfg["data"]["data_root"] == parent_cfg["data"]["data_root"]
    assert not (out / "rounds" / "round1" / "checkpoint").exists()

    # resuming a run whose rounds are done re-does no pruning and no fine-tuning
    (out / "metrics.json").unlink()

    def no_fit(*args, **kwargs):
        raise AssertionError("a finished round was fine-tuned again")

    monkeypatch.setattr(run_module, "fit", no_fit)
    assert main(["prune", "--resume", str(out), "--no-progress"]) == 0
    again = _metrics(out)
    assert again["accuracy"] == m["accuracy"] and again["pruning"] == m["pruning"]


def test_budget_prune_only_and_iterative(parent: Path, tmp_path: Path) -> None:
    only = tmp_path / "only"
    assert main(["prune", str(parent), "--criterion", "l2", "--target-macs", "10M", "--layers",
                 "C1-C2", "--finetune-epochs", "0", "--out", str(only), "--no-progress"]) == 0
    m = _metrics(only)
    assert m["macs"] <= 10_000_000 < m["parent"]["macs"]
    assert m["accuracy"] == m["before_finetune"]["accuracy"] and m["history"] == []
    assert m["pruning"]["plan"]["resolved"]["mode"] == "target_macs"

    it = tmp_path / "iterative"
    assert main(["prune", str(parent), "--criterion", "l1", "--ratio", "0.5", "--layers",
                 "conv1,conv2", "--iterative", "2", "--finetune-epochs", "1", "--out", str(it),
                 "--no-progress"]) == 0
    m2 = _metrics(it)
    assert {k: m2["pruning"]["widths_after"][k] for k in ("conv1", "conv2")} == {"conv1": 8, "conv2": 8}
    rounds = m2["pruning"]["rounds"]
    first = 16 - round(16 * 0.5 ** 0.5)  # the kept fraction shrinks geometrically: 16 -> 11 -> 8
    assert [len(r["removed"]["conv1"]) for r in rounds] == [first, 8 - first]
    removed_all = sorted(rounds[0]["removed"]["conv1"] + rounds[1]["removed"]["conv1"])
    assert removed_all == m2["pruning"]["layers"]["conv1"]["removed"]  # numbered as in the parent
    assert len(m2["history"]) == 1 and m2["pruning"]["schedule"]["rounds"] == 2


def test_prune_errors_are_clear(parent: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    def err(*argv: str) -> str:
        assert main(["prune", str(parent), "--criterion", "l1", "--out", str(tmp_path / "x"),
                     "--no-progress", *argv]) == 2
        return capsys.readouterr().err

    assert "in [0, 1)" in err("--ratio", "1.2")
    assert "prunable layers: conv1, conv2, conv3, fc1" in err("--ratio", "0.5", "--layers", "conv7")
    assert "exactly one" in err("--ratio", "0.5", "--target-params", "10k")
    assert "smallest achievable" in err("--target-macs", "1M", "--layers", "conv1")
    assert main(["prune", str(tmp_path / "nope"), "--criterion", "l1", "--ratio", "0.5",
                 "--out", str(tmp_path / "y")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["prune", str(parent), "--criterion", "nope", "--ratio", "0.5",
                 "--out", str(tmp_path / "z")]) == 2
    assert "unknown criterion" in capsys.readouterr().err
